"""What a2d-fetch refuses to fetch: schemes not allowed, and cloud-metadata / link-local
addresses, so a hostile URL list cannot pull instance credentials into a dataset.

Literal addresses are checked before the request; every address libcurl is about to
connect to (after DNS, at every redirect) through its open-socket callback (curl.py).
"""

import ipaddress
from urllib.parse import urlsplit

from .options import DEFAULT_SCHEMES

# Link-local (which holds 169.254.169.254, the metadata address of most clouds) and the
# metadata addresses that live elsewhere (AWS over IPv6, Alibaba Cloud).
DENIED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)


class Guard:
    def __init__(self, allowed_schemes=DEFAULT_SCHEMES, allowed_networks=()):
        self.schemes = frozenset(s.lower() for s in allowed_schemes)
        self.allowed_networks = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        self._verdicts: dict[str, bool] = {}  # per host: the same hosts come back again and again

    def address_allowed(self, address: str) -> bool:
        verdict = self._verdicts.get(address)
        if verdict is None:
            if len(self._verdicts) > 100_000:
                self._verdicts.clear()
            verdict = self._verdicts[address] = self._check_address(address)
        return verdict

    def _check_address(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return True  # not an address (a host name): the resolver checks it
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed_networks):
            return True
        return not any(ip in net for net in DENIED_NETWORKS)

    def problem(self, url, redirected: bool = False) -> tuple[str, str] | None:
        """(error_kind, message) if `url` must not be fetched, else None."""
        if not url or not isinstance(url, str):
            return "invalid_url", "no URL"
        if url.startswith("/") and "file" in self.schemes:
            return None  # a local path, as a2d-read gives for raw folders
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as error:
            return "invalid_url", f"invalid URL: {error}"
        scheme = parts.scheme.lower()
        if not scheme:
            return "invalid_url", f"invalid URL (no scheme): {url[:200]}"
        if redirected and scheme not in ("http", "https"):
            return "scheme_denied", f"redirect to a {scheme}: URL is not followed"
        if scheme not in self.schemes:
            return "scheme_denied", (f"scheme {scheme}: is not fetched (allowed: {', '.join(sorted(self.schemes))}; "
                                     f"see --allow-scheme)")
        if scheme in ("http", "https"):
            if not host:
                return "invalid_url", f"invalid URL (no host): {url[:200]}"
            if not self.address_allowed(host):
                return "address_denied", f"address {host} is link-local or a cloud metadata address " \
                                         f"(see --allow-address)"
        return None
