"""Playbook YAML → :class:`~failover.playbook.model.Playbook`, rejecting a bad one up front.

A failover must never stop half-way because of a typo, so every problem of a playbook is found
*before* anything runs and reported at once, each as ``file:line: message`` in one
:class:`~failover.core.errors.PlaybookError` (Velero's ``ValidationErrors``): unknown actions, ``with:``
parameters the action's pydantic model rejects, duplicate step ids, templates naming unknown
parameters, steps or variables (or steps of the same or a later stage, whose outputs cannot
exist yet), bad timeouts and retries, YAML syntax errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from failover.config import yamlpos
from failover.core import errors
from failover.playbook import registry, templating
from failover.playbook.model import PARAM_TYPES, OnFailure, ParamSpec, Playbook, Stage, Step
from failover.store import JSON

PathKey = yamlpos.PathKey
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOP_KEYS = {"name", "description", "params", "stages"}
STEP_KEYS = {"id", "uses", "with", "timeout", "retries", "on_failure", "foreach", "as", "sequential"}
RUN_VARS = {"id", "epoch"}
MAX_TIMEOUT_S = 24 * 3600.0  #: no step of a failover may wait longer than a day
MAX_NAME = 100


def parse_duration(value: object) -> float | None:
    """``500ms`` / ``30s`` / ``5m`` / ``1h`` / a number of seconds → seconds; None if invalid or
    outside (0, :data:`MAX_TIMEOUT_S`] (``.inf``, ``10**400``)."""
    seconds: float | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        seconds = float(value) if 0 < value <= MAX_TIMEOUT_S else None
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str) and len(value) <= 40:
        match = DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT_S:
        return None
    return seconds


class _Checker:
    """Walks one parsed document, collecting issues instead of stopping at the first."""

    def __init__(self, located: yamlpos.Located) -> None:
        self.loc = located
        self.issues: list[errors.Issue] = []

    def add(self, path: PathKey, message: str) -> None:
        self.issues.append(self.loc.issue(path, message))

    def playbook(self) -> Playbook:
        doc = self.loc.data
        if not isinstance(doc, dict):
            self.add((), "a playbook is a mapping with name, params and stages")
            raise errors.PlaybookError(self.issues)
        for key in sorted(set(doc) - TOP_KEYS, key=str):
            self.add((key,), f"unknown key {key!r} (expected one of {', '.join(sorted(TOP_KEYS))})")
        name = doc.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            self.add(("name",), f"name: required, a non-empty string of at most {MAX_NAME} characters")
        params = self.params(doc.get("params") or {})
        stages = self.stages(doc.get("stages"))
        self.cross_check(stages, params)
        if self.issues:
            raise errors.PlaybookError(sorted(self.issues, key=lambda i: (i.line or 0, i.message)))
        return Playbook(name=str(name), description=str(doc.get("description") or ""), params=params,
                        stages=tuple(Stage(name=n, steps=tuple(s for s, _ in steps)) for n, steps in stages),
                        source=self.loc.file)

    def params(self, raw: object) -> dict[str, ParamSpec]:
        out: dict[str, ParamSpec] = {}
        if not isinstance(raw, dict):
            self.add(("params",), "params: a mapping of name → {type, required, default}")
            return out
        for name, spec in raw.items():
            path: PathKey = ("params", name)
            if not isinstance(spec, dict) or not isinstance(spec.get("type"), str) or spec["type"] not in PARAM_TYPES:
                self.add(path, f"param {name}: needs type: one of {', '.join(PARAM_TYPES)}")
                continue
            extra = set(spec) - {"type", "required", "default"}
            if extra:
                self.add(path, f"param {name}: unknown keys {sorted(extra)}")
            p = ParamSpec(name=str(name), type=str(spec["type"]), required=bool(spec.get("required", False)),
                          default=spec.get("default"))
            if p.default is not None and not p.accepts(p.default):
                self.add((*path, "default"), f"param {name}: default {p.default!r} is not a {p.type}")
            out[str(name)] = p
        return out

    def stages(self, raw: object) -> list[tuple[str, list[tuple[Step, PathKey]]]]:
        out: list[tuple[str, list[tuple[Step, PathKey]]]] = []
        if not isinstance(raw, list) or not raw:
            self.add(("stages",), "stages: required, a non-empty list")
            return out
        for i, stage in enumerate(raw):
            path: PathKey = ("stages", i)
            if not isinstance(stage, dict) or not isinstance(stage.get("name"), str):
                self.add(path, "a stage needs a name and steps")
                continue
            if not isinstance(stage.get("steps"), list) or not stage["steps"]:
                self.add((*path, "steps"), f"stage {stage['name']}: steps: required, a non-empty list")
                continue
            steps = [(s, (*path, "steps", j)) for j, raw_step in enumerate(stage["steps"])
                     if (s := self.step(raw_step, (*path, "steps", j))) is not None]
            out.append((stage["name"], steps))
        return out

    def step(self, raw: object, path: PathKey) -> Step | None:
        if not isinstance(raw, dict):
            self.add(path, "a step is a mapping with id and uses")
            return None
        for key in sorted(set(raw) - STEP_KEYS, key=str):
            self.add((*path, key), f"unknown step key {key!r} (expected one of "
                                   f"{', '.join(sorted(STEP_KEYS))})")
        sid, uses = raw.get("id"), raw.get("uses")
        if not isinstance(sid, str) or not STEP_ID.match(sid):
            self.add((*path, "id"), f"step id {sid!r}: required, lowercase letters, digits, '-' and '_'")
            return None
        if not isinstance(uses, str):
            self.add((*path, "uses"), f"step {sid}: uses: required, an action name")
            return None
        with_ = raw.get("with") or {}
        if not isinstance(with_, dict):
            self.add((*path, "with"), f"step {sid}: with: must be a mapping")
            with_ = {}
        return Step(id=sid, uses=uses, with_=with_, timeout=self._timeout(raw, sid, path),
                    retries=self._retries(raw, sid, path), on_failure=self._on_failure(raw, sid, path),
                    foreach=raw.get("foreach"), as_=self._as(raw, sid, path),
                    sequential=self._sequential(raw, sid, path), line=self.loc.line_of(path))

    def _timeout(self, raw: Mapping[str, Any], sid: str, path: PathKey) -> float | None:
        if raw.get("timeout") is None:
            return None
        seconds = parse_duration(raw["timeout"])
        if seconds is None:
            shown = repr(raw["timeout"])
            shown = shown if len(shown) <= 40 else shown[:40] + "…"
            self.add((*path, "timeout"), f"step {sid}: timeout {shown}: expected a positive duration up to "
                                         "24h like 500ms, 30s, 5m")
        return seconds

    def _retries(self, raw: Mapping[str, Any], sid: str, path: PathKey) -> int:
        value = raw.get("retries", 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            self.add((*path, "retries"), f"step {sid}: retries {value!r}: expected an integer from 0 to 100")
            return 0
        return value

    def _on_failure(self, raw: Mapping[str, Any], sid: str, path: PathKey) -> OnFailure:
        value = raw.get("on_failure", "abort")
        if not isinstance(value, str) or value not in {f.value for f in OnFailure}:
            self.add((*path, "on_failure"), f"step {sid}: on_failure {value!r}: expected abort or continue")
            return OnFailure.ABORT
        return OnFailure(value)

    def _as(self, raw: Mapping[str, Any], sid: str, path: PathKey) -> str:
        value = raw.get("as", "item")
        if not isinstance(value, str) or not IDENT.match(value) or value in {"params", "outputs", "run"}:
            self.add((*path, "as"), f"step {sid}: as {value!r}: expected a plain name")
            return "item"
        if "as" in raw and "foreach" not in raw:
            self.add((*path, "as"), f"step {sid}: as: only with foreach")
        return value

    def _sequential(self, raw: Mapping[str, Any], sid: str, path: PathKey) -> bool:
        value = raw.get("sequential", False)
        if not isinstance(value, bool):
            self.add((*path, "sequential"), f"step {sid}: sequential: expected true or false")
            return False
        if "sequential" in raw and "foreach" not in raw:
            self.add((*path, "sequential"), f"step {sid}: sequential: only with foreach")
        return value

    # --- checks across steps ---------------------------------------------------------------------------
    def cross_check(self, stages: Sequence[tuple[str, list[tuple[Step, PathKey]]]],
                    params: Mapping[str, ParamSpec]) -> None:
        stage_of: dict[str, int] = {}
        for index, (_, steps) in enumerate(stages):
            for step, path in steps:
                if step.id in stage_of:
                    self.add((*path, "id"), f"duplicate step id {step.id!r}")
                else:
                    stage_of[step.id] = index
        for index, (_, steps) in enumerate(stages):
            for step, path in steps:
                self.check_action(step, path)
                self.check_foreach(step, path)
                for key, value in step.with_.items():
                    self.check_refs(value, step, (*path, "with", key), stage=index, stage_of=stage_of,
                                    params=params)
                if step.foreach is not None:
                    self.check_refs(step.foreach, step, (*path, "foreach"), stage=index, stage_of=stage_of,
                                    params=params, in_foreach=True)

    def check_foreach(self, step: Step, path: PathKey) -> None:
        value = step.foreach
        if value is None or isinstance(value, list):
            return
        if not (isinstance(value, str) and templating.TEMPLATE.fullmatch(value.strip())):
            self.add((*path, "foreach"), f"step {step.id}: foreach: expected a list or one "
                                         "{{ template }}")

    def check_action(self, step: Step, path: PathKey) -> None:
        try:
            spec = registry.get(step.uses)
        except registry.UnknownActionError as exc:
            self.add((*path, "uses"), f"step {step.id}: {exc}")
            return
        templated = {k for k, v in step.with_.items() if templating.has_template(v)}
        concrete = {k: v for k, v in step.with_.items() if k not in templated}
        try:
            spec.params.model_validate(concrete)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(str(p) if not isinstance(p, int) else p for p in err["loc"])
                if loc and loc[0] in templated:
                    continue  # checked when the step runs, with the rendered value
                what = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
                field = ".".join(str(p) for p in loc) or "with"
                self.add((*path, "with", *loc), f"step {step.id}: {step.uses}: with.{field}: {what}")
        if spec.params.model_config.get("extra") != "forbid":
            fields = spec.params.model_fields
            known = set(fields) | {f.alias for f in fields.values() if f.alias}
            for key in step.with_:
                if key not in known:
                    self.add((*path, "with", key),
                             f"step {step.id}: {step.uses}: with.{key}: unknown parameter")

    def check_refs(self, value: JSON, step: Step, path: PathKey, *, stage: int, stage_of: Mapping[str, int],
                   params: Mapping[str, ParamSpec], in_foreach: bool = False) -> None:
        broken = templating.unclosed(value)
        if broken is not None:
            self.add(path, f"step {step.id}: unclosed template in {broken!r}: write {{{{ name.path }}}}")
        for expr in templating.references(value):
            try:
                parts = templating.parse_path(expr)
            except templating.TemplateError as exc:
                self.add(path, f"step {step.id}: {exc}")
                continue
            problem = _ref_problem(parts, step, stage=stage, stage_of=stage_of, params=params,
                                   in_foreach=in_foreach)
            if problem:
                self.add(path, f"step {step.id}: {{{{ {expr} }}}}: {problem}")


def _ref_problem(parts: tuple[str, ...], step: Step, *, stage: int, stage_of: Mapping[str, int],
                 params: Mapping[str, ParamSpec], in_foreach: bool) -> str | None:
    root = parts[0]
    if root == "params":
        if len(parts) < 2 or parts[1] not in params:
            return f"unknown parameter (declared: {', '.join(params) or 'none'})"
    elif root == "outputs":
        if len(parts) < 2 or parts[1] not in stage_of:
            return "unknown step"
        if stage_of[parts[1]] >= stage:
            return f"step {parts[1]} does not run in an earlier stage, so its outputs do not exist yet"
    elif root == "run":
        if len(parts) != 2 or parts[1] not in RUN_VARS:
            return f"unknown run variable (known: {', '.join(sorted(RUN_VARS))})"
    elif root in {"item", step.as_}:
        if step.foreach is None or in_foreach:
            return f"{root} is only defined inside a foreach step's with:"
    else:
        return "unknown variable (use params., outputs.<step>., run.id, run.epoch or item)"
    return None


def load_text(text: str, file: str = "<text>") -> Playbook:
    """Parse and validate a playbook from ``text``; PlaybookError lists every problem."""
    registry.ensure_builtin()
    try:
        located = yamlpos.load_text(text, file)
    except errors.ConfigError as exc:
        raise errors.PlaybookError(exc.issues) from exc
    return _Checker(located).playbook()


def load_playbook(path: Path) -> Playbook:
    """Read and validate ``path``; PlaybookError lists every problem with its line."""
    try:
        text = yamlpos.read_text(Path(path))
    except errors.ConfigError as exc:
        raise errors.PlaybookError(exc.issues) from None
    return load_text(text, str(path))


def load_playbook_by_name(name: str, search: Sequence[Path]) -> Playbook:
    """The first ``<name>.yaml`` (or ``.yml``) found in ``search``, validated."""
    if not IDENT.match(name.replace("-", "_")):
        raise errors.PlaybookError([errors.Issue("<playbook>", None, f"invalid playbook name {name!r}")])
    for directory in search:
        for suffix in (".yaml", ".yml"):
            candidate = Path(directory) / f"{name}{suffix}"
            if candidate.is_file():
                return load_playbook(candidate)
    where = ", ".join(str(d) for d in search) or "no directories"
    raise errors.PlaybookError([errors.Issue("<playbook>", None, f"no playbook named {name!r} in {where}")])
