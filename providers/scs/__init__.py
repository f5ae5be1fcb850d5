"""Sovereign Cloud Stack: the adapter (:mod:`.adapter`) and its API emulator (:mod:`.emulator`) side
by side, so the contract and its executable model are read together. ``designate.openapi.yaml`` is
the hand-written Designate v2 spec (OpenStack publishes none); Keystone, the Cluster API CRDs and
the status page are checked against the vendors' own specs."""
