"""The lab's Kubernetes API emulator: an in-memory object store with real API-server semantics
(resourceVersion, 201/409/404 Status, selectors, patches, watch, /scale and /status), served over
aiohttp so kubernetes-asyncio's typed clients use it unchanged, plus in-process controllers."""
