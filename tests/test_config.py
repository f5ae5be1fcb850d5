"""Config loading: the embedded default is valid; bad input names every problem with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from failover import cli
from failover.config import loader
from failover.core import errors

REPO = Path(__file__).resolve().parents[1]


def test_embedded_lab_config_and_opendesk_profile_are_valid() -> None:
    loaded = loader.load(REPO / "config" / "lab.yaml")
    assert [s.name for s in loaded.config.sites] == ["ionos-de-fra", "stackit-eu01", "otc-eu-de", "scs-pco-prod1"]
    assert loaded.config.active_site().name == "ionos-de-fra"
    names = {c.name for c in loaded.profile.components}
    assert len(names) == 17
    assert loaded.profile.groups() == [0, 1, 2, 3, 4]
    assert {c.name for c in loaded.profile.components if c.strategy.value == "scale"} == {"jitsi", "collabora"}
    hosts = {h for c in loaded.profile.components for h in c.hostnames}
    assert {"portal", "id", "files", "webmail", "chat", "matrix", "meet", "office", "projects", "wiki",
            "pad", "notes"} <= hosts


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "workplaces").mkdir(exist_ok=True)
    (tmp_path / "workplaces" / "opendesk.yaml").write_text(
        (REPO / "config" / "workplaces" / "opendesk.yaml").read_text())
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


BAD = """\
version: 1
workplace: {zone: ckki.example.}
providers:
  ionos: {kind: ionos}
  powerdns: {kind: powerdns}
sites:
  - name: a
    provider: ionos
    region: de/fra
    role: active
  - name: b
    provider: nowhere
    region: x
policy:
  preference: [b, zz]
  rpo: -5
"""


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError) as info:
        loader.load(write(tmp_path, BAD))
    text = [str(i) for i in info.value.issues]
    assert any(t.startswith(f"{tmp_path}/c.yaml:16:") and "rpo" in t for t in text), text


def test_cross_references_are_checked_together(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError) as info:
        loader.load(write(tmp_path, BAD.replace("  rpo: -5\n", "")))
    text = "\n".join(str(i) for i in info.value.issues)
    assert "c.yaml:12: sites[1].provider: unknown provider 'nowhere'" in text
    assert "c.yaml:15: policy.preference: unknown site 'zz'" in text
    assert len(info.value.issues) == 2


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError) as info:
        loader.load(write(tmp_path, "version: 1\nsites: [\n  - a: b\n"))
    assert info.value.issues[0].line is not None and "YAML syntax error" in info.value.issues[0].message


def test_cli_validate_exit_codes_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(REPO / "config" / "lab.yaml"), "config", "validate", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] and doc["components"] == 17
    assert cli.main(["--config", str(write(tmp_path, BAD)), "config", "validate"]) == 2
    err = capsys.readouterr().err
    assert "c.yaml:16" in err and "Traceback" not in err
    assert cli.main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "sites" in schema["properties"]


def test_unknown_command_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2


def lab_with_dns(provider: str) -> str:
    return (REPO / "config" / "lab.yaml").read_text().replace("  provider: powerdns\n", f"  provider: {provider}\n")


def test_otc_dns_warns_about_the_eu_de_control_plane(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, lab_with_dns("otc"))
    loaded = loader.load(path)
    assert any("eu-de" in w and "de/fra" in w for w in loaded.warnings), loaded.warnings
    assert cli.main(["--config", str(path), "config", "validate"]) == 0
    assert "warning:" in capsys.readouterr().out


def test_stackit_dns_needs_a_ttl_of_60(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="STACKIT DNS accepts a TTL of 60"):
        loader.load(write(tmp_path, lab_with_dns("stackit")))
