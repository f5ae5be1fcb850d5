"""Contract validation of recorded emulator exchanges against a vendor's OpenAPI spec.

Both sides are checked: the *request* the adapter sent (path, parameters, body) and the
*response* the emulator returned (status, body schema). The emulator serves on loopback under
some base path; ``server_url`` is the spec's own server URL that stands for it, so openapi-core
matches paths exactly as it would for the real service.

Specs are loaded once per process (the IONOS Cloud API spec is 2 MB). Vendor specs that lack a
``securitySchemes`` entry for a declared ``security`` requirement (STACKIT) are patched in memory
with a bearer scheme, as providers.md notes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from providers.emulator import Exchange

SPECS = Path(__file__).resolve().parents[1] / "specs"


def spec_path(*parts: str) -> Path:
    """A vendored spec under tests/specs (see SOURCES.md there), or a hand-written one given as an absolute path."""
    return SPECS.joinpath(*parts)


@functools.cache
def load(path: Path) -> OpenAPI:
    text = path.read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    components = doc.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    for requirement in doc.get("security", []) or []:
        for name in requirement:
            schemes.setdefault(name, {"type": "http", "scheme": "bearer"})
    return OpenAPI.from_dict(doc)


def _content_type(headers: dict[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";")[0].strip()
    return "application/json"


def validate(
    spec: Path,
    exchanges: Iterable[Exchange],
    *,
    server_url: str,
    strip_prefix: str = "",
    check_request: bool = True,
    check_response: bool = True,
) -> int:
    """Validate every exchange; raise AssertionError naming the first violation. Returns the
    number of exchanges validated (so a test can assert it validated something)."""
    api = load(spec)
    count = 0
    for ex in exchanges:
        path = ex.path[len(strip_prefix):] if strip_prefix and ex.path.startswith(strip_prefix) else ex.path
        request = MockRequest(
            server_url, ex.method.lower(), path, args=ex.query, headers=ex.request_headers,
            data=ex.request_body or None, content_type=_content_type(ex.request_headers),
        )
        try:
            if check_request:
                api.validate_request(request)
            if check_response:
                response = MockResponse(ex.response_body, status_code=ex.status,
                                        headers=ex.response_headers,
                                        content_type=_content_type(ex.response_headers))
                api.validate_response(request, response)
        except Exception as exc:  # openapi-core raises a family of its own errors
            detail = getattr(exc, "schema_errors", None) or getattr(exc, "__cause__", None) or exc
            raise AssertionError(f"{spec.name}: {ex.method} {ex.path} -> {ex.status}: {detail}") from exc
        count += 1
    return count
