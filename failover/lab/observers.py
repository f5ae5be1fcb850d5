"""The lab's HA parts: the etcd cluster, and every observer's own network paths.

With several daemon instances the question is never only "is IONOS down?" but "who can see
IONOS?". So each observer named in ``lab.observers`` reaches every site (its Kubernetes API and its
ingress) and every etcd member through its *own* fault proxies, chained in front of the site's
proxies — a site fault still reaches every observer, and a path fault reaches only one:

* ``lab break SITE --mode observer=NAME`` — NAME can no longer reach SITE (refused);
* ``lab break etcd --mode observer=NAME`` — NAME is cut off from every etcd member;
* ``lab break etcd-N --mode observer=NAME`` — from one member; ``--mode down`` stops member N;
* ``lab heal SITE|etcd|etcd-N`` — removes them (a stopped member restarts with its data).

``runtime.json`` carries ``coordination: {endpoints}`` and ``observers: {NAME: {etcd: [...],
sites: {SITE: {kube_api, ingress_port}}}}``; the runtime resolver gives a daemon started with
``--name NAME`` its own view.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failover.lab import etcd as lab_etcd
from failover.lab.proxy import FaultProxy, ProxyMode

logger = logging.getLogger(__name__)

OBSERVER = "observer="


@dataclass(frozen=True)
class SiteTargets:
    """Where a site's (already proxied) parts listen, to chain an observer's proxies in front."""

    name: str
    address: str  #: the site's ingress address (127.0.N.1)
    kube: tuple[str, int]
    ingress: tuple[str, int]


@dataclass
class ObserverPaths:
    name: str
    kube: dict[str, FaultProxy] = field(default_factory=dict)
    ingress: dict[str, FaultProxy] = field(default_factory=dict)
    etcd: dict[str, FaultProxy] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"etcd": [p.url for p in self.etcd.values()],
                "sites": {s: {"kube_api": self.kube[s].url, "ingress_port": self.ingress[s].port} for s in self.kube}}

    def proxies(self) -> list[FaultProxy]:
        return [*self.kube.values(), *self.ingress.values(), *self.etcd.values()]


class Coordination:
    """The etcd cluster plus per-observer paths, and their faults (see module docstring)."""

    def __init__(self, cluster: lab_etcd.EtcdCluster | None) -> None:
        self.cluster = cluster
        self.observers: dict[str, ObserverPaths] = {}
        self.faults: dict[str, set[str]] = {}  #: target (site, etcd, etcd-N) -> faults

    @classmethod
    async def start(cls, directory: Path, *, members: int,
                    on_spawn: Any = None) -> Coordination:
        cluster = await lab_etcd.start_cluster(directory, size=members, on_spawn=on_spawn) if members else None
        return cls(cluster)

    async def add_observers(self, names: tuple[str, ...], sites: list[SiteTargets]) -> None:
        for name in names:
            paths = ObserverPaths(name)
            for s in sites:
                paths.kube[s.name] = FaultProxy(target_host=s.kube[0], target_port=s.kube[1],
                                                name=f"{name} -> {s.name} kube API")
                paths.ingress[s.name] = FaultProxy(target_host=s.ingress[0], target_port=s.ingress[1],
                                                   listen_host=s.address, name=f"{name} -> {s.name} ingress")
            for m in self.cluster.members if self.cluster else []:
                paths.etcd[m.name] = FaultProxy(target_host=m.host, target_port=m.client_port,
                                                name=f"{name} -> {m.name}")
            await asyncio.gather(*(p.start() for p in paths.proxies()))
            self.observers[name] = paths

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"observers": {n: p.describe() for n, p in self.observers.items()}}
        if self.cluster is not None:
            doc["coordination"] = {
                "backend": "etcd", "endpoints": self.cluster.endpoints,
                "members": {m.name: {"url": m.client_url, "running": m.running,
                                     "faults": sorted(self.faults.get(m.name, ()))}
                            for m in self.cluster.members},
                "faults": sorted(self.faults.get("etcd", ())),
            }
        return doc

    def handles(self, target: str, mode: str) -> bool:
        """Whether a break/heal of ``target`` is ours (etcd, etcd-N, or an observer's path to a site)."""
        return target == "etcd" or target.startswith("etcd-") or mode.startswith(OBSERVER)

    def _observer(self, mode: str) -> ObserverPaths:
        name = mode[len(OBSERVER):]
        if name not in self.observers:
            raise ValueError(f"{mode}: no observer {name!r} in this lab (lab.observers: "
                             f"{', '.join(self.observers) or 'none'})")
        return self.observers[name]

    async def break_(self, target: str, mode: str) -> list[str]:
        """Add a fault; KeyError for an unknown member, ValueError for a bad mode."""
        if target.startswith("etcd-") and self.cluster is not None:
            self.cluster.member(target)  # KeyError when unknown
        elif target.startswith("etcd") and self.cluster is None:
            raise ValueError("this lab runs no etcd (lab.etcd_members: 0)")
        if mode == "down" and target.startswith("etcd-"):
            assert self.cluster is not None
            await self.cluster.stop_member(target)
        elif mode.startswith(OBSERVER):
            paths = self._observer(mode)
            for proxy in self._paths(paths, target):
                await proxy.set_mode(ProxyMode.DOWN)
        else:
            raise ValueError(f"{target}: unknown fault {mode!r}; use observer=NAME"
                             + (" or down" if target.startswith("etcd-") else ""))
        self.faults.setdefault(target, set()).add(mode)
        logger.info("break %s: %s", target, mode)
        return sorted(self.faults[target])

    def _paths(self, paths: ObserverPaths, target: str) -> list[FaultProxy]:
        if target == "etcd":
            return list(paths.etcd.values())
        if target.startswith("etcd-"):
            return [paths.etcd[target]]
        return [paths.kube[target], paths.ingress[target]]

    async def heal(self, target: str) -> list[str]:
        """Remove every fault of ``target`` (a stopped etcd member restarts with its data)."""
        for mode in self.faults.pop(target, set()):
            if mode == "down" and self.cluster is not None:
                await self.cluster.start_member(target)
            elif mode.startswith(OBSERVER) and mode[len(OBSERVER):] in self.observers:
                for proxy in self._paths(self.observers[mode[len(OBSERVER):]], target):
                    await proxy.set_mode(ProxyMode.PASS)
        return []

    async def close(self) -> None:
        for paths in self.observers.values():
            await asyncio.gather(*(p.close() for p in paths.proxies()), return_exceptions=True)
        if self.cluster is not None:
            await self.cluster.close()
