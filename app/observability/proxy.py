"""Whether a request came through the trusted proxy, said once, by the server.

uvicorn replaces the peer's address with the client's from X-Forwarded-For when
the peer is trusted (FORWARDED_ALLOW_IPS), so inside the app the peer is gone.
gunicorn.conf.py wraps each worker's app in `behind_proxy`: the same trust decides
both, and the app reads the verdict from the scope (`came_via_trusted_proxy`).
Served otherwise (tests, `make dev`), no request is marked: none is trusted."""

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

VIA_TRUSTED_PROXY = "app.via_trusted_proxy"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """FORWARDED_ALLOW_IPS as uvicorn reads it: addresses and networks,
    comma-separated, or `*`."""

    def __init__(self, allowed: str) -> None:
        entries = [entry.strip() for entry in allowed.split(",") if entry.strip()]
        self.everyone = "*" in entries
        self.networks: list[Network] = []
        self.literals: set[str] = set()
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.literals.add(entry)  # a unix socket path, say

    def __contains__(self, host: str | None) -> bool:
        if host is None:
            return False
        if self.everyone or host in self.literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class MarkTrustedProxy:
    def __init__(self, app: ASGIApp, trusted: TrustedPeers) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            scope[VIA_TRUSTED_PROXY] = peer is not None and peer[0] in self.trusted
        await self.app(scope, receive, send)


def behind_proxy(app: ASGIApp, forwarded_allow_ips: str) -> ASGIApp:
    """The app as uvicorn would wrap it (its ProxyHeadersMiddleware, with the same
    trusted addresses), marked first, while the peer is still the peer."""
    proxied = ProxyHeadersMiddleware(app, trusted_hosts=forwarded_allow_ips)  # type: ignore[arg-type]
    return MarkTrustedProxy(proxied, TrustedPeers(forwarded_allow_ips))  # type: ignore[arg-type]


def came_via_trusted_proxy(scope: Scope) -> bool:
    return bool(scope.get(VIA_TRUSTED_PROXY, False))
