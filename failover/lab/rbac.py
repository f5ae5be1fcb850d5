"""Least-privilege RBAC from a recorded lab run.

The lab's Kubernetes APIs record every admitted request in RBAC terms (:mod:`failover.lab.kube.auth`,
``kube_access`` in ``lab status --json``). :func:`rules_from` turns those records into the rules of a
ClusterRole (exact verbs per resource and subresource, the non-resource URLs), and :func:`uncovered`
lists the requests a given ClusterRole would have refused, which is how the tests prove that a
failover needs nothing outside ``deploy/base/rbac.yaml``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

Rule = dict[str, list[str]]


def _resource(record: Mapping[str, str]) -> str:
    sub = record.get("subresource") or ""
    return f"{record['resource']}/{sub}" if sub else str(record["resource"])


def rules_from(records: Iterable[Mapping[str, str]]) -> list[Rule]:
    """ClusterRole rules allowing exactly the recorded requests (one rule per API group and verb set)."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    urls: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.get("non_resource"):
            urls[str(record["non_resource"])].add(str(record["verb"]))
        else:
            verbs[(str(record["group"]), _resource(record))].add(str(record["verb"]))
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource), vs in verbs.items():
        grouped[(group, tuple(sorted(vs)))].append(resource)
    rules: list[Rule] = [{"apiGroups": [group], "resources": sorted(resources), "verbs": list(vs)}
                         for (group, vs), resources in sorted(grouped.items())]
    by_verbs: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for url, vs in urls.items():
        by_verbs[tuple(sorted(vs))].append(url)
    rules += [{"nonResourceURLs": sorted(u), "verbs": list(vs)} for vs, u in sorted(by_verbs.items())]
    return rules


def allows(rules: Iterable[Mapping[str, Any]], record: Mapping[str, str]) -> bool:
    verb = str(record["verb"])
    for rule in rules:
        if verb not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
            continue
        if record.get("non_resource"):
            if record["non_resource"] in rule.get("nonResourceURLs", []):
                return True
            continue
        if record["group"] in rule.get("apiGroups", []) and _resource(record) in rule.get("resources", []):
            return True
    return False


def uncovered(rules: Iterable[Mapping[str, Any]], records: Iterable[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """The recorded requests the rules would refuse."""
    frozen = list(rules)
    return [r for r in records if not allows(frozen, r)]
