"""Where a webhook may be sent (API.md "Webhooks", SSRF): an https URL whose
host resolves only to public addresses. Checked when the endpoint is created
and again before every attempt, since DNS can change; the attempt then
connects to the very address that was checked, so a second lookup cannot
swap in another (DNS rebinding).

WEBHOOK_ALLOW_PRIVATE=1 (development and tests) lets http and non-public
hosts through; `check --deploy` warns while it is on (catalog/checks.py)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from catalog.errors import DomainError


class TargetRefused(DomainError):
    code = "validation_error"


@dataclass(frozen=True)
class Target:
    scheme: str  # "https", or "http" where private targets are allowed
    host: str  # as the URL names it: TLS checks the certificate against it
    port: int
    path: str  # with the query
    address: str  # the checked IP the attempt connects to

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _non_public(address: str) -> str | None:
    """Why `address` is not a public one, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # The most telling name first: link-local, reserved and unspecified addresses count as private too.
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "non-public"
    return None


def resolve(url: str, *, allow_private: bool | None = None) -> Target:
    """The URL's target, its host resolved and checked; TargetRefused says why not."""
    allow = settings.WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"Not a URL: {exc}.") from None
    schemes = ("https", "http") if allow else ("https",)
    if parts.scheme not in schemes:
        raise TargetRefused("A webhook URL must be https.")
    if not parts.hostname:
        raise TargetRefused("A webhook URL needs a host.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("A webhook URL may not carry credentials; the signature authenticates the sender.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"The host {parts.hostname} does not resolve: {exc}.") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise TargetRefused(f"The host {parts.hostname} does not resolve.")
    if not allow:
        for address in addresses:
            why = _non_public(address)
            if why:
                raise TargetRefused(f"The host {parts.hostname} resolves to {address}, a {why} address.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])
