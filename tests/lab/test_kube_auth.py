"""The lab's Kubernetes API authenticates like a real cluster, and the product's client
(:class:`failover.kube.KubeClient`, kubernetes-asyncio underneath) gets in with what real clouds hand
out: a kubeconfig with CA data and a bearer token, a client certificate, an exec plugin, or one
fetched from the provider and fetched again when its credentials are rejected."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509

from failover.core import errors, http, serving
from failover.core import kubetypes as kt
from failover.kube import KubeClient
from failover.lab.kube.cluster import Cluster
from tests.lab.kubeauth import Credentials


def kubeconfig_text(creds: Credentials, server: str, variant: str) -> str:
    return yaml.safe_dump(creds.kubeconfig(server, variant=variant))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-known-token"}])
async def test_requests_without_valid_credentials_get_401_with_a_status(
        kube: Cluster, lab_credentials: Credentials, headers: dict[str, str]) -> None:
    connector = aiohttp.TCPConnector(ssl=lab_credentials.ca.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        for path in ("/readyz", "/api/v1/namespaces"):
            async with session.get(f"{kube.api.url}{path}", headers=headers) as resp:
                body = await resp.json()
                assert resp.status == 401
                assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401


async def test_plain_http_is_not_served(kube: Cluster) -> None:
    assert kube.api.url.startswith("https://")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(kube.api.url.replace("https://", "http://") + "/readyz") as resp:
                await resp.read()


@pytest.mark.parametrize("variant", ["token", "cert"])
async def test_the_product_client_works_with_token_and_certificate_kubeconfigs(
        kube: Cluster, lab_credentials: Credentials, variant: str) -> None:
    assert kube.api.auth is not None
    kube.api.auth.records = set()
    client = KubeClient(site="t", kubeconfig=kubeconfig_text(lab_credentials, kube.api.url, variant))
    try:
        await client.readyz()
        await client.ensure(kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "od"}})
        _, created = await client.ensure(kt.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": "od"}})
        assert not created
        assert await client.get(kt.NAMESPACES, None, "missing") is None
        names = {n["metadata"]["name"] for n in await client.list(kt.NAMESPACES)}
        assert "od" in names
        assert await client.delete(kt.NAMESPACES, None, "od") is True
        assert await client.delete(kt.NAMESPACES, None, "od") is False
    finally:
        await client.aclose()
    users = {record.user for record in kube.api.auth.records}
    assert users == {"token-admin" if variant == "token" else "cert-admin"}


async def test_an_exec_plugin_supplies_the_token(kube: Cluster, lab_credentials: Credentials) -> None:
    doc = lab_credentials.kubeconfig(kube.api.url, variant="token")
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": lab_credentials.token}}
    doc["users"][0]["user"] = {"exec": {  # type: ignore[index]
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": ["-c", f"print({json.dumps(json.dumps(credential))})"], "interactiveMode": "Never"}}
    client = KubeClient(site="t", kubeconfig=yaml.safe_dump(doc))
    try:
        await client.readyz()
    finally:
        await client.aclose()


async def test_a_fetched_kubeconfig_is_fetched_again_after_a_401(kube: Cluster, lab_credentials: Credentials) -> None:
    good = kubeconfig_text(lab_credentials, kube.api.url, "token")
    revoked = good.replace(lab_credentials.token, "revoked-token-0123456789")
    handed_out = [revoked, good]
    fetched: list[str] = []

    async def fetch() -> str:
        fetched.append(handed_out[min(len(fetched), 1)])
        return fetched[-1]

    client = KubeClient(site="t", fetch=fetch)
    try:
        await client.readyz()
        assert len(fetched) == 2
    finally:
        await client.aclose()


async def test_wrong_credentials_are_a_permanent_auth_error(kube: Cluster, lab_credentials: Credentials) -> None:
    client = KubeClient(site="t", kubeconfig=kubeconfig_text(lab_credentials, kube.api.url, "token")
                        .replace(lab_credentials.token, "wrong-token-0123456789"))
    try:
        with pytest.raises(errors.AuthError, match="401"):
            await client.readyz()
    finally:
        await client.aclose()


@pytest.fixture
async def flaky_api() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def unavailable(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"kind": "Status", "message": "etcd unavailable", "code": 503}, status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unavailable)
    runner, port = await serving.serve(app, host="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


async def test_a_probe_is_one_attempt_and_5xx_is_temporary(flaky_api: tuple[str, list[str]]) -> None:
    url, hits = flaky_api
    client = KubeClient(site="t", base_url=url, token="some-token-0123456789")
    try:
        with pytest.raises(errors.TemporaryError, match="503: etcd unavailable"):
            await client.readyz()
        assert hits == ["/readyz"]
        with pytest.raises(errors.TemporaryError):
            await client.get(kt.NAMESPACES, None, "x")
    finally:
        await client.aclose()


async def test_an_unreachable_api_is_temporary_and_a_conflict_keeps_its_status(
        kube: Cluster, lab_credentials: Credentials) -> None:
    dead = KubeClient(site="t", base_url="http://127.0.0.1:9", timeout=2)
    try:
        with pytest.raises(errors.TemporaryError, match="cannot connect"):
            await dead.readyz()
    finally:
        await dead.aclose()
    client = KubeClient(site="t", kubeconfig=kubeconfig_text(lab_credentials, kube.api.url, "cert"))
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dup"}}
    try:
        await client.create(kt.NAMESPACES, ns)
        with pytest.raises(http.ApiError) as info:
            await client.create(kt.NAMESPACES, ns)
        assert info.value.status == 409
    finally:
        await client.aclose()


async def test_credentials_are_renewed_before_they_expire(kube: Cluster, lab_credentials: Credentials) -> None:
    """The renewal time comes from the credentials themselves: a client certificate's notAfter, a
    JWT's exp; a fetched kubeconfig is fetched again at most ``max_age`` later."""
    cert_client = KubeClient(site="t", kubeconfig=kubeconfig_text(lab_credentials, kube.api.url, "cert"),
                             refresh_before=300)
    fetched: list[str] = []

    async def fetch() -> str:
        fetched.append(kubeconfig_text(lab_credentials, kube.api.url, "token"))
        return fetched[-1]

    fetching = KubeClient(site="t", fetch=fetch, max_age=600)
    try:
        await cert_client.readyz()
        await fetching.readyz()
        await fetching.readyz()
        not_after = x509.load_pem_x509_certificate(lab_credentials.cert.cert_pem).not_valid_after_utc.timestamp()
        renew_at = cert_client._session.renew_at if cert_client._session else None
        assert renew_at == not_after - 300
        fetch_renew = fetching._session.renew_at if fetching._session else None
        assert fetch_renew is not None and fetch_renew - time.time() <= 600
        assert len(fetched) == 1  # one fetch serves until then
    finally:
        await cert_client.aclose()
        await fetching.aclose()
