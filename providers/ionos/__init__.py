"""IONOS Cloud: the adapter (:mod:`.adapter`) and its API emulator (:mod:`.emulator`), side by side.

The adapter follows the vendor specs in ``tests/specs/ionos`` (see tests/specs/SOURCES.md) (Cloud API v6 for managed
Kubernetes, Auth API v1 for tokens) plus two hand-written ones beside this file for what IONOS
publishes no spec for: Cloud DNS (``dns.openapi.yaml``, from the generated Go SDK) and the
Atlassian Statuspage v2 summary of status.ionos.cloud (``statuspage.openapi.yaml``).
"""
