"""Who a request is from: the peer's own address, unless the peer is a proxy named in
`--forwarded-allow-ips`; then the visitor that proxy reports in X-Forwarded-For.

A header is only as trustworthy as whoever wrote it: any client can send X-Forwarded-For, so it
counts only from a named proxy, and only the entries appended by named proxies. Reading the list
from its right end, every entry a named proxy added is skipped; the first address that is not a
named proxy is the visitor (gunicorn's and uvicorn's `--forwarded-allow-ips` convention).
"""

from __future__ import annotations

import ipaddress

ALL = "*"
MAX_FORWARDED_ENTRIES = 16  # more hops than any real chain of proxies; the rest is not read


class ProxyListError(ValueError):
    """A bad --forwarded-allow-ips; str() is the one-line reason."""


class Proxies:
    """The proxies whose X-Forwarded-For counts: addresses and networks, or '*' for any peer."""

    def __init__(self, spec: str = ""):
        self.spec = spec.strip()
        self.any = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in filter(None, (part.strip() for part in self.spec.split(","))):
            if item == ALL:
                self.any = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ProxyListError(
                    f"--forwarded-allow-ips: {item!r} is not an address or network; "
                    "allowed a comma-separated list such as 127.0.0.1,::1 or 10.0.0.0/8, or '*'"
                ) from None

    def __bool__(self) -> bool:
        return self.any or bool(self.networks)

    def named(self, address: str | None) -> bool:
        if self.any:
            return True
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The address to count a request against."""
        peer = peer or "?"
        if not forwarded_for or not self.named(peer):
            return peer
        entries = [e.strip() for e in forwarded_for.split(",")][-MAX_FORWARDED_ENTRIES:]
        for entry in reversed(entries):
            ip = _ip(entry)
            if ip is None:
                return peer  # a proxy that writes something other than an address is not followed
            if not self.named(str(ip)) or self.any:
                return str(ip)
        return peer


def _ip(text: str | None):
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
