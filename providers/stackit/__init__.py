"""STACKIT: the adapter (:mod:`.adapter`) and its API emulator (:mod:`.emulator`), side by side.

The adapter follows the vendor specs in ``tests/specs/stackit`` (see tests/specs/SOURCES.md) (SKE v2, DNS v1) plus two
hand-written ones beside this file for what STACKIT publishes no spec for: the service-account
token endpoint (``token.openapi.yaml``) and the Statuspage v2 summary (``status.openapi.yaml``).
"""
