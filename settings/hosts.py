"""Is a URL's host this machine or a private network? Used wherever we refuse to send data
to such hosts outside the embedded profile (callbacks, the tax-authority endpoint).

Plain string comparison missed ``http://127.1``, ``http://localhost.``, ``[::ffff:127.0.0.1]``
and every private address (the fault suite found it), which is how server-side request forgery
reaches internal services. Names are not resolved here: a public name pointing inside is a DNS
matter for the firewall, said in docs/security.md.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["host_of", "is_internal_host", "is_loopback_host"]


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the shorthand forms libc accepts: 127.1, 2130706433, 0x7f.1
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and (address.is_loopback or address.is_unspecified)


def is_internal_host(host: str) -> bool:
    """Loopback, private, link-local, shared or reserved address (or a localhost name)."""
    if is_loopback_host(host):
        return True
    address = _address(host.lower().rstrip("."))
    return address is not None and not address.is_global
