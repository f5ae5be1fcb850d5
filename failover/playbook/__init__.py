"""Playbooks: typed YAML graphs of idempotent steps, executed as journaled, resumable runs.

Modules, imported by name at call sites: :mod:`~failover.playbook.model` (the typed playbook),
:mod:`~failover.playbook.loader` (YAML → model, every problem with file:line),
:mod:`~failover.playbook.templating`, :mod:`~failover.playbook.registry` (actions),
:mod:`~failover.playbook.engine` (runs) and :mod:`~failover.playbook.observers`.
"""
