"""What a2d-fetch refuses to fetch: schemes not allowed, malformed URLs, and cloud-metadata /
link-local addresses, so a hostile URL list cannot pull instance credentials into a dataset.

A URL is parsed once, here (`Guard.check`): the scheme it returns is the one the engine
dispatches on, so the check and the fetch cannot read a URL two ways. Literal addresses
(in every spelling: IPv4 in decimal, octal or hex, IPv6 forms that embed an IPv4 address)
and well-known metadata host names are refused before any request; the addresses of other
names after DNS (the engine's resolver, or libcurl's open-socket callback in curl.py), at
every redirect.

A URL with characters outside ASCII is requested as browsers do: its host name in IDNA
(`bücher.example` as `xn--bcher-kva.example`, checked like any other host after the
conversion) and the rest percent-encoded as UTF-8 (`café.png` as `caf%C3%A9.png`), %XX
escapes and reserved characters left as they are. Only the request uses that form: the
record keeps the URL it was given.
"""

import ipaddress
import re
import socket
from urllib.parse import quote, urlsplit

from .options import DEFAULT_SCHEMES

# Link-local (which holds 169.254.169.254, the metadata address of most clouds) and the
# metadata addresses that live elsewhere (AWS over IPv6, Alibaba Cloud).
DENIED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
# Names that reach a metadata service from inside a cloud, refused whatever they resolve to
# (behind a proxy it is the proxy that resolves them).
DENIED_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                          "instance-data.ec2.internal", "metadata.tencentyun.com"})
# IPv6 prefixes whose last 32 bits are an IPv4 address that the network delivers to:
# IPv4-compatible (::a.b.c.d), NAT64 (RFC 6052 and the local-use prefix of RFC 8215).
_EMBEDDING_NETWORKS = tuple(ipaddress.ip_network(net) for net in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48"))
# WHATWG's URL parser (browsers) and urllib drop these around a URL; inside one they mean a
# malformed or smuggled URL (" http:\t//host" is http to urlsplit and a path to fsspec).
_SURROUNDING = " \t\r\n\f\v\x00"
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# What inet_aton reads as an IPv4 address and libcurl too ("2852039166", "0xa9fea9fe",
# "0251.0376.0251.0376", "169.254.43518"), but ipaddress does not.
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# What a host name may not hold once in IDNA (WHATWG's forbidden domain code points): the
# conversion maps full-width and other look-alike characters to ASCII ones such as these.
_FORBIDDEN_IN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")


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
        ip = literal_address(address)
        if ip is None:
            return address.lower().rstrip(".") not in DENIED_NAMES  # a name: the resolver checks its addresses
        candidates = [ip]
        if ip.version == 6:
            candidates.extend(embedded_ipv4(ip))
        if any(any(candidate in net for net in self.allowed_networks) for candidate in candidates):
            return True
        return not any(candidate in net for candidate in candidates for net in DENIED_NETWORKS)

    def check(self, url, redirected: bool = False) -> tuple[str, str | None, str | None, str | None]:
        """(url, scheme, None, None) for a URL that may be fetched, with surrounding whitespace
        removed; (url, None, error_kind, message) for one that may not."""
        if not url or not isinstance(url, str):
            return url, None, "invalid_url", "no URL"
        url = url.strip(_SURROUNDING)
        # A space may be part of a local file's name; in an http(s) URL it is refused (below).
        bad = _CONTROL.search(url) or (_FORBIDDEN.search(url) if url[:4].lower() == "http" else None)
        if bad is not None:
            return url, None, "invalid_url", (f"invalid URL: whitespace or a control character "
                                              f"({bad.group()!r}) at position {bad.start()}")
        if url.startswith("/"):
            if "file" in self.schemes and not redirected:
                return url, "file", None, None  # a local path, as a2d-read gives for raw folders
            return url, None, "invalid_url", f"invalid URL (no scheme): {url[:200]}"
        match = _SCHEME.match(url)
        if match is None:
            return url, None, "invalid_url", f"invalid URL (no scheme): {url[:200]}"
        scheme = match.group(1).lower()
        if redirected and scheme not in ("http", "https"):
            return url, None, "scheme_denied", f"redirect to a {scheme}: URL is not followed"
        if scheme not in self.schemes:
            return url, None, "scheme_denied", (f"scheme {scheme}: is not fetched (allowed: "
                                                f"{', '.join(sorted(self.schemes))}; see --allow-scheme)")
        if scheme in ("http", "https"):
            url, kind, message = self._check_http(url, match.end())
            if kind is not None:
                return url, None, kind, message
        return url, scheme, None, None

    def _check_http(self, url: str, scheme_end: int) -> tuple[str, str | None, str | None]:
        """(url, None, None) for an http(s) URL whose host may be fetched, in the form browsers
        request; (url, error_kind, message) for one that may not."""
        try:
            if not url.isascii():
                url = browser_form(url, scheme_end)
            host = urlsplit(url).hostname
        except ValueError as error:
            return url, "invalid_url", f"invalid URL: {error}"
        if not host:
            return url, "invalid_url", f"invalid URL (no host): {url[:200]}"
        if "%" in host:  # libcurl decodes %XX in a host name, the checks here would not
            return url, "invalid_url", f"invalid URL (a % escape in the host name): {url[:200]}"
        if not self.address_allowed(host):
            return url, "address_denied", (f"address {host} is link-local or a cloud metadata "
                                           f"address (see --allow-address)")
        return url, None, None


def browser_form(url: str, scheme_end: int) -> str:
    """An http(s) URL with characters outside ASCII as browsers request it: the host in IDNA,
    everything else percent-encoded as UTF-8. `scheme_end` is where the scheme's colon ends.
    Raises ValueError (UnicodeError included) when there is no such form."""
    parts = urlsplit(url)
    netloc, start = parts.netloc, scheme_end + 2
    if url[scheme_end:start] != "//" or url[start:start + len(netloc)] != netloc:
        raise ValueError("no //host after the scheme")
    if not netloc.isascii():
        userinfo, at, hostport = netloc.rpartition("@")
        host, colon, port = hostport.partition(":") if not hostport.startswith("[") else (hostport, "", "")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as error:
                raise ValueError(f"host name {host[:100]!r} has no IDNA form ({error})") from None
            bad = _FORBIDDEN_IN_HOST.search(host)
            if bad is not None:
                raise ValueError(f"host name {host[:100]!r} holds {bad.group()!r} once in IDNA")
        if not port.isascii():
            raise ValueError(f"port {port[:20]!r} is not a number")
        netloc = _percent_encoded(userinfo) + at + host + colon + port
    return url[:start] + netloc + _percent_encoded(url[start + len(parts.netloc):])


def _percent_encoded(text: str) -> str:
    return _NON_ASCII.sub(lambda found: quote(found.group(), safe=""), text)


def ascii_pin(entry: str) -> str:
    """A --resolve entry (HOST:PORT:ADDRESS) with its host name in IDNA, as requests name it."""
    host, colon, rest = entry.partition(":")
    if host.isascii():
        return entry
    sign = host[:1] if host[:1] in "+-" else ""
    try:
        return sign + host[len(sign):].encode("idna").decode("ascii") + colon + rest
    except UnicodeError:
        return entry


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host part names literally, in any spelling libcurl accepts; else None."""
    host = host.strip("[]").split("%", 1)[0]  # an IPv6 zone id is not part of the address
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address delivers to: mapped, compatible, NAT64, 6to4, Teredo."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if any(ip in net for net in _EMBEDDING_NETWORKS) and int(ip) & 0xFFFFFFFF:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_literal_address(host: str) -> bool:
    return not host or literal_address(host) is not None
