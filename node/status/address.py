"""`[node] http`: HOST:PORT of the node's status server, loopback unless the operator says otherwise."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = ("localhost",)


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 hosts in brackets: [::1]:9200) -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or len(port) > 5 or not 0 <= int(port) <= 65535:
        raise ValueError(f"http takes HOST:PORT, e.g. 127.0.0.1:9200, not {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_http(http: str, public: bool) -> None:
    """ValueError unless `http` is off (""), a well-formed loopback address, or any address with `public`."""
    if not http:
        return
    host, _ = parse_address(http)
    if not public and not is_loopback(host):
        raise ValueError(
            f"http = {http!r} would serve the status page beyond this machine; bind it to 127.0.0.1 "
            "(reach it through an SSH tunnel), or set http_public = true to expose it deliberately"
        )


def url_of(http: str) -> str:
    host, port = parse_address(http)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
