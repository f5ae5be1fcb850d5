"""Open Telekom Cloud: the adapter (:mod:`.adapter`) and its API emulator (:mod:`.emulator`) side by
side, so the contract and its executable model are read together; ``*.openapi.yaml`` are the
hand-written CCE and DNS specs (OTC publishes none)."""
