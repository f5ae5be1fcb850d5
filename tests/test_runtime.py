"""Runtime resolution: the lab's runtime.json fills the endpoints; lab secrets travel as files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from failover.config import loader, runtime
from failover.core import errors, secrets

REPO = Path(__file__).resolve().parents[1]


def lab_status(state: Path) -> None:
    sites = {name: {"provider": p, "region": r, "role": "standby", "kube_api": f"http://127.0.0.1:{7000 + i}",
                    "ingress": f"127.0.{i + 1}.1", "ingress_port": 18080, "cluster": f"id-{name}",
                    "s3": {"endpoint": f"http://127.0.0.1:{9000 + i}", "bucket": f"velero-{name}",
                           "access_key": "lab", "secret_key": f"lab-secret-{name}", "region": "us-east-1"},
                    "faults": []}
             for i, (name, p, r) in enumerate([("ionos-de-fra", "ionos", "de/fra"), ("stackit-eu01", "stackit", "eu01"),
                                               ("otc-eu-de", "otc", "eu-de"), ("scs-pco-prod1", "scs", "prod1")])}
    doc = {"sites": sites, "dns": {"server": "127.0.0.1", "port": 15353, "api": "http://127.0.0.1:18081",
                                   "api_key": "lab-pdns-api-key-123", "zone": "ckki.lab."},
           "workplace": {"hostnames": {}},
           "providers": {"ionos": {"api": {"cloudapi": "http://127.0.0.1:1/cloudapi/v6"},
                                   "credentials": {"username": "lab", "password": "lab-ionos-password"}}}}
    (state / "lab").mkdir(parents=True)
    (state / "lab" / "runtime.json").write_text(json.dumps(doc))


def test_lab_endpoints_come_from_the_running_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_STATE_DIR", str(tmp_path))
    loaded = loader.load(REPO / "config" / "lab.yaml")
    with pytest.raises(errors.PermanentError, match="failover lab up"):
        runtime.resolve(loaded)
    lab_status(tmp_path)
    rt = runtime.resolve(loaded)
    ep = rt.sites["stackit-eu01"]
    assert ep.kube_api == "http://127.0.0.1:7001" and ep.ingress_address == "127.0.2.1"
    assert ep.storage is not None and ep.storage.bucket == "velero-stackit-eu01"
    assert ep.cluster.cluster == "id-stackit-eu01" and ep.cluster.region == "eu01"
    assert rt.resolver == ("127.0.0.1", 15353)
    assert rt.fqdn("files") == "files.ckki.lab"
    ionos = rt.providers["ionos"]
    assert ionos.endpoints["cloudapi"].endswith("/cloudapi/v6")
    cred = ionos.credentials["password"]
    assert cred.file is not None and oct(os.stat(cred.file).st_mode & 0o777) == "0o600"
    assert ionos.secret("password") == "lab-ionos-password"
    assert rt.providers["powerdns"].secret("api_key") == "lab-pdns-api-key-123"
    assert "lab-secret-otc-eu-de" in secrets.known()  # S3 keys are registered for redaction
    assert "lab-ionos-password" not in repr(rt.providers["ionos"])
