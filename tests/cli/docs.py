"""Status and history documents as the daemon and the store produce them (shared by the CLI tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SITES = ("ionos-de-fra", "stackit-eu01", "otc-eu-de", "scs-pco-prod1")
LONG_REASON = "component collabora: 3 failed probes (HTTP 503 from https://office.ckki.lab/hosting/discovery)"


def site(provider: str, region: str, role: str, health: str = "healthy", *, ready: bool = False,
         reasons: list[str] | None = None, ready_reasons: list[str] | None = None,
         lag: float | None = None) -> dict[str, Any]:
    return {"provider": provider, "region": region, "role": role, "health": health, "reasons": reasons or [],
            "ready": ready, "ready_reasons": ready_reasons or [], "replication_lag_s": lag,
            "newest_backup": "velero-daily-20261130" if ready else None, "provider_state": "available",
            "checks": {}}


def status_doc(*, updated_at: datetime | None = None, scs_health: str = "down") -> dict[str, Any]:
    return {
        "active": "ionos-de-fra", "paused": False, "epoch": 3,
        "updated_at": (updated_at or datetime.now(UTC)).isoformat(),
        "sites": {
            "ionos-de-fra": site("ionos", "de/fra", "active"),
            "stackit-eu01": site("stackit", "eu01", "standby", ready=True, lag=3.2),
            "otc-eu-de": site("otc", "eu-de", "standby", "degraded", reasons=[LONG_REASON],
                              ready_reasons=["no replicated complete backup within the RPO"], lag=12),
            "scs-pco-prod1": site("scs", "prod1", "standby", scs_health,
                                  reasons=["kube: connection refused (127.0.4.1:6443)",
                                           "critical components down: 9 of 12"] if scs_health == "down" else []),
        },
        "run": None,
    }
