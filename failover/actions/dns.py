"""Moving the workplace's names to the target, and proving users reach it there.

``dns-switch`` sets every hostname's A record to the target's ingress address through the
configured DNS provider (PowerDNS, or a cloud DNS service), then verifies with a **real DNS
query** until the authoritative answer is the new address. ``verify`` resolves each name like a
user would and runs every component's probe against the address it got.
Both are idempotent: setting a record to the value it has is a no-op.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict

from failover.actions import common
from failover.core import errors
from failover.health import probes
from failover.playbook import registry
from failover.playbook.engine import StepContext, StepResult


class SwitchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str
    ttl: int | None = None
    timeout: float = 120.0


@registry.action("dns-switch", params=SwitchParams, timeout=300)
async def dns_switch(ctx: StepContext, p: SwitchParams) -> StepResult:
    """Point every workplace hostname at the target's ingress and verify with real queries."""
    svc = common.services(ctx)
    target = svc.site(p.to)
    address = target.ingress_address
    if not address:
        raise errors.PermanentError(f"site {p.to} has no ingress address configured")
    zone = svc.runtime.config.workplace.zone
    ttl = p.ttl or svc.runtime.config.dns.ttl
    adapter = svc.dns_provider()
    names = sorted(svc.runtime.hostnames.values())
    limit = asyncio.Semaphore(4)  # a few at a time: async provider APIs poll each change

    async def one(fqdn: str) -> bool:
        async with limit:
            current = await adapter.dns_get(zone, f"{fqdn}.", "A")
            if current is not None and current.values == (address,) and current.ttl == ttl:
                return False
            await adapter.dns_set(zone, f"{fqdn}.", "A", (address,), ttl)
            return True

    changed = sum(await asyncio.gather(*(one(fqdn) for fqdn in names)))
    ctx.progress(f"{changed} of {len(names)} records set to {address} (ttl {ttl}s); verifying")
    if svc.resolver is not None:
        resolver = svc.resolver

        async def answered() -> bool | None:
            try:
                for fqdn in names:
                    await probes.dns_answer(resolver, fqdn, address)
            except probes.ProbeFailed:
                return None
            return True

        await common.poll(answered, timeout=p.timeout, interval=0.2,
                          what=f"DNS answers for {len(names)} names to become {address}")
    return {"address": address, "names": len(names), "changed": changed, "ttl": ttl}


class VerifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    timeout: float = 180.0
    via_dns: bool = True


@registry.action("verify", params=VerifyParams, timeout=300, mutating=False)
async def verify(ctx: StepContext, p: VerifyParams) -> StepResult:
    """Every component's probe passes on the site, reached through DNS like a user would."""
    svc = common.services(ctx)
    site = svc.site(p.site)
    checks = [(c, pr) for c in svc.runtime.profile.components for pr in c.probes
              if pr.type == "http" and pr.hostname]
    passed: set[str] = set()

    async def one(component: str, hostname: str, probe_index: int) -> None:
        comp = svc.runtime.profile.component(component)
        pr = comp.probes[probe_index]
        fqdn = svc.runtime.fqdn(hostname)
        address = site.ingress_address
        if p.via_dns and svc.resolver is not None:
            await probes.dns_answer(svc.resolver, fqdn, str(site.ingress_address))
        await probes.http_component(svc.probe_session(), scheme=site.ingress_scheme, address=str(address),
                                    port=site.ingress_port, fqdn=fqdn, probe=pr)

    async def all_pass() -> bool | None:
        pending = [(c.name, str(pr.hostname), c.probes.index(pr)) for c, pr in checks
                   if f"{c.name}/{pr.hostname}" not in passed]
        results = await asyncio.gather(*(one(*args) for args in pending), return_exceptions=True)
        failing = []
        for args, res in zip(pending, results, strict=True):
            if isinstance(res, BaseException):
                failing.append(f"{args[1]}: {res}")
            else:
                passed.add(f"{args[0]}/{args[1]}")
        if failing:
            ctx.progress(f"{len(passed)}/{len(checks)} probes pass; waiting for {', '.join(failing[:3])}")
            return None
        return True

    await common.poll(all_pass, timeout=p.timeout, interval=0.5, what=f"every component probe on {p.site}")
    verified_at = svc.clock()
    return {"probes": len(checks), "verified_at": verified_at.isoformat()}
