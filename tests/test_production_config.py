"""The production example config validates offline, names the four clouds' real endpoints, and
holds no secret inline (every credential is an env or file reference)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from failover import cli
from failover.config import loader

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "production.example.yaml"


def test_the_example_validates_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(EXAMPLE), "config", "validate"]) == 0
    assert "4 sites" in capsys.readouterr().out


def test_every_credential_is_a_reference_and_endpoints_are_real() -> None:
    loaded = loader.load(EXAMPLE)
    cfg = loaded.config
    assert {p.kind for p in cfg.providers.values()} == {"ionos", "stackit", "otc", "scs"}
    for name, provider in cfg.providers.items():
        assert provider.credentials, name
        for credential in provider.credentials.values():
            assert credential.env or credential.file
        assert all(url.startswith("https://") for url in provider.endpoints.values()), name
    for site in cfg.sites:
        assert site.storage.access_key is not None and (site.storage.access_key.env or site.storage.access_key.file)
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for provider in raw["providers"].values():
        for credential in provider["credentials"].values():
            assert set(credential) <= {"env", "file"}, credential
    endpoints = {url for p in cfg.providers.values() for url in p.endpoints.values()}
    assert {"https://api.ionos.com/cloudapi/v6", "https://ske.api.stackit.cloud",
            "https://cce.eu-de.otc.t-systems.com"} <= endpoints
