"""Package data mapped from the repository's top level (see setup.py and failover.core.resources).

``failover._data.config`` is the repository's ``config/`` and ``failover._data.playbooks`` its
``playbooks/``; nothing lives in this directory itself.
"""
