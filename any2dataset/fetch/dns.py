"""Host names to addresses at crawl scale: asynchronous, cached, bounded.

libcurl's own resolver (in the wheel pycurl ships) runs getaddrinfo in a thread per
lookup, and caches nothing negative: a crawl over 100,000 hosts would start that many
threads and ask again for every dead name. This resolver asks the name servers of
/etc/resolv.conf (or --dns-server) itself over UDP on the event loop (TCP when an
answer is truncated), a socket per query (a fresh source port: harder to spoof),
at most `max_queries` at once, one query per name however many downloads wait for
it. Answers are kept in one LRU cache of `cache_size` names: addresses for their TTL
(30 s - 1 h), NXDOMAIN and empty answers for the zone's negative TTL (30 s - 10 min),
server failures and timeouts for 30 s. /etc/hosts comes first, as for getaddrinfo.
The engine hands the addresses to libcurl (CURLOPT_RESOLVE).
"""

import asyncio
import collections
import ipaddress
import os
import random
import socket
import struct
import time

A, AAAA, CNAME, SOA = 1, 28, 5, 6
MIN_TTL, MAX_TTL = 30.0, 3600.0
MIN_NEGATIVE_TTL, MAX_NEGATIVE_TTL = 30.0, 600.0
FAILURE_TTL = 30.0  # server failures and timeouts: ask again soon, not at every download
DNS_PORT = 53


class DnsError(Exception):
    """A name that did not resolve. `permanent`: the name does not exist or has no
    address (retrying will not help); otherwise the servers failed or did not answer."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def parse_server(text: str) -> tuple[str, int]:
    """ADDRESS or ADDRESS:PORT ([v6]:PORT) as (address, port)."""
    text = text.strip()
    if text.startswith("["):
        address, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    elif text.count(":") == 1:
        address, _, port = text.partition(":")
    else:
        address, port = text, ""
    ipaddress.ip_address(address)  # ValueError for anything else
    return address, int(port) if port else DNS_PORT


def system_configuration(path: str = "/etc/resolv.conf") -> tuple[list[tuple[str, int]], list[str], int]:
    """(name servers, search domains, ndots) from resolv.conf; no servers if it has none."""
    servers, search, ndots = [], [], 1
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                words = line.split("#", 1)[0].split(";", 1)[0].split()
                if len(words) < 2:
                    continue
                if words[0] == "nameserver":
                    try:
                        servers.append(parse_server(words[1].split("%", 1)[0]))
                    except ValueError:
                        pass
                elif words[0] in ("search", "domain"):
                    search = [domain.rstrip(".") for domain in words[1:]]
                elif words[0] == "options":
                    for option in words[1:]:
                        if option.startswith("ndots:") and option[6:].isdigit():
                            ndots = int(option[6:])
    except OSError:
        pass
    return servers, search, ndots


def hosts_file(path: str = "/etc/hosts") -> dict[str, list[str]]:
    """Names in /etc/hosts and their addresses (IPv4 first)."""
    names: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                words = line.split("#", 1)[0].split()
                if len(words) < 2:
                    continue
                try:
                    ipaddress.ip_address(words[0].split("%", 1)[0])
                except ValueError:
                    continue
                for name in words[1:]:
                    names.setdefault(name.lower().rstrip("."), []).append(words[0])
    except OSError:
        pass
    for addresses in names.values():
        addresses.sort(key=lambda address: ":" in address)
    return names


def ipv6_reachable() -> bool:
    """Whether this machine has a route to the IPv6 internet (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.connect(("2001:db8::1", 53))
            return not ipaddress.ip_address(probe.getsockname()[0]).is_link_local
    except OSError:
        return False


class Resolver:
    def __init__(self, servers: list[tuple[str, int]], *, search: list[str] = (), ndots: int = 1,
                 hosts: dict[str, list[str]] | None = None, cache_size: int = 100_000,
                 timeout: float = 2.0, attempts: int = 2, max_queries: int = 256, ipv6: bool | None = None):
        if not servers:
            raise ValueError("no name servers")
        self.servers = list(servers)
        self.search = list(search)
        self.ndots = ndots
        self.hosts = hosts if hosts is not None else {}
        self.cache_size = cache_size
        self.timeout = timeout
        self.attempts = attempts
        self.queries = asyncio.Semaphore(max_queries)
        self.ipv6 = ipv6_reachable() if ipv6 is None else ipv6
        self.cache: collections.OrderedDict[str, tuple[float, list[str] | DnsError]] = collections.OrderedDict()
        self.pending: dict[str, asyncio.Future] = {}
        self.sent = 0  # queries sent, for tests and stats

    @classmethod
    def from_system(cls, servers: list[str] = (), **options) -> "Resolver | None":
        """The resolver for these servers, or resolv.conf's; None when there are none (then
        libcurl resolves through the system)."""
        configured, search, ndots = system_configuration()
        chosen = [parse_server(server) for server in servers] if servers else configured
        if not chosen:
            return None
        return cls(chosen, search=search, ndots=ndots, hosts=hosts_file(), **options)

    def cached(self, name: str) -> list[str] | None:
        """The addresses of `name` if known now, without waiting."""
        name = name.lower().rstrip(".")
        if name in self.hosts:
            return self.hosts[name]
        entry = self.cache.get(name)
        if entry is not None and entry[0] > time.monotonic() and isinstance(entry[1], list):
            return entry[1]
        return None

    async def resolve(self, name: str) -> list[str]:
        """The addresses of `name` (IPv4 first); raises DnsError."""
        name = name.lower().rstrip(".")
        if name in self.hosts:
            return self.hosts[name]
        entry = self.cache.get(name)
        if entry is not None:
            if entry[0] > time.monotonic():
                self.cache.move_to_end(name)
                if isinstance(entry[1], DnsError):
                    raise entry[1]
                return entry[1]
            del self.cache[name]
        waiting = self.pending.get(name)
        if waiting is None:  # the first to ask: look it up for everyone who asks meanwhile
            waiting = self.pending[name] = asyncio.ensure_future(self._look_up(name))
            waiting.add_done_callback(lambda _done: self.pending.pop(name, None))
        return await asyncio.shield(waiting)

    async def _look_up(self, name: str) -> list[str]:
        try:
            addresses, ttl = await self._candidates(name)
        except DnsError as error:
            ttl = getattr(error, "ttl", FAILURE_TTL)
            self._remember(name, error, ttl)
            raise
        self._remember(name, addresses, ttl)
        return addresses

    def _remember(self, name: str, value, ttl: float) -> None:
        self.cache[name] = (time.monotonic() + ttl, value)
        self.cache.move_to_end(name)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    async def _candidates(self, name: str) -> tuple[list[str], float]:
        """resolv.conf's search rule: a name with fewer dots than ndots tries the search
        domains first; the first name that has addresses wins."""
        names = [name]
        if self.search and name.count(".") < self.ndots:
            names = [f"{name}.{domain}" for domain in self.search] + [name]
        last = None
        for candidate in names:
            try:
                return await self._addresses(candidate)
            except DnsError as error:
                last = error
                if not error.permanent:
                    break
        raise last

    async def _addresses(self, name: str) -> tuple[list[str], float]:
        addresses, ttl = await self._query(name, A)
        if not addresses and self.ipv6:
            addresses, ttl = await self._query(name, AAAA)
        if not addresses:
            error = DnsError(f"no address for {name}", permanent=True)
            error.ttl = ttl
            raise error
        return addresses, ttl

    async def _query(self, name: str, qtype: int) -> tuple[list[str], float]:
        """One question, asked of each server in turn, `attempts` rounds."""
        try:
            question = _question(name, qtype)
        except (UnicodeError, ValueError):
            raise DnsError(f"invalid host name {name!r}", permanent=True) from None
        async with self.queries:
            problem = "no answer"
            for _round in range(self.attempts):
                for server in self.servers:
                    try:
                        answer = await self._ask(server, question)
                        if answer[2] & 0x02:  # truncated: ask again over TCP
                            answer = await self._ask_tcp(server, question)
                        return _addresses_of(answer, name, qtype)
                    except _Retry as retry:
                        problem = str(retry)
        raise DnsError(f"DNS lookup of {name} failed: {problem} from {len(self.servers)} server(s) "
                       f"after {self.attempts} tries", permanent=False)

    async def _ask(self, server: tuple[str, int], question: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        ident = random.getrandbits(16)
        query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        arrived = loop.create_future()

        def on_readable():
            try:
                data = sock.recv(65535)
            except OSError as error:  # e.g. ICMP port unreachable: nobody listens there
                if not arrived.done():
                    arrived.set_exception(_Retry(f"{error.strerror or error}"))
                return
            # Only the answer to this question counts: same id, same question.
            if len(data) >= 12 and data[:2] == query[:2] and data[12:12 + len(question)] == question \
                    and not arrived.done():
                arrived.set_result(data)

        try:
            sock.connect(server)
            loop.add_reader(sock.fileno(), on_readable)
            try:
                sock.send(query)
                self.sent += 1
                return await asyncio.wait_for(arrived, self.timeout)
            finally:
                loop.remove_reader(sock.fileno())
        except asyncio.TimeoutError:
            raise _Retry(f"no answer within {self.timeout:g}s") from None
        except OSError as error:
            raise _Retry(f"{error.strerror or error}") from None
        finally:
            sock.close()

    async def _ask_tcp(self, server: tuple[str, int], question: bytes) -> bytes:
        ident = random.getrandbits(16)
        query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*server), self.timeout)
            try:
                writer.write(struct.pack("!H", len(query)) + query)
                length = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), self.timeout))[0]
                data = await asyncio.wait_for(reader.readexactly(length), self.timeout)
            finally:
                writer.close()
        except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError) as error:
            raise _Retry(f"over TCP: {type(error).__name__}") from None
        if data[:2] != query[:2]:
            raise _Retry("over TCP: an answer to another query")
        return data


class _Retry(Exception):
    """This server gave no usable answer: ask the next."""


def _question(name: str, qtype: int) -> bytes:
    labels = name.encode("idna").split(b".")
    if any(not label or len(label) > 63 for label in labels) or len(name) > 253:
        raise ValueError(name)
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(message: bytes, offset: int) -> int:
    while True:
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + length


def _addresses_of(message: bytes, name: str, qtype: int) -> tuple[list[str], float]:
    """Addresses and TTL from an answer; an empty list (with the negative TTL) for a name
    that exists without such records. NXDOMAIN raises a permanent DnsError."""
    try:
        _ident, flags, qdcount, ancount, nscount, _arcount = struct.unpack("!HHHHHH", message[:12])
        rcode = flags & 0x000F
        offset = 12
        for _ in range(qdcount):
            offset = _skip_name(message, offset) + 4
        addresses, ttls = [], []
        for _ in range(ancount):
            offset = _skip_name(message, offset)
            rtype, _rclass, ttl, length = struct.unpack("!HHIH", message[offset:offset + 10])
            offset += 10
            data = message[offset:offset + length]
            offset += length
            # A recursive server answers with the whole CNAME chain: the addresses at its end count.
            if rtype == qtype == A and length == 4:
                addresses.append(socket.inet_ntop(socket.AF_INET, data))
                ttls.append(ttl)
            elif rtype == qtype == AAAA and length == 16:
                addresses.append(socket.inet_ntop(socket.AF_INET6, data))
                ttls.append(ttl)
        negative = None
        for _ in range(nscount):
            offset = _skip_name(message, offset)
            rtype, _rclass, ttl, length = struct.unpack("!HHIH", message[offset:offset + 10])
            offset += 10
            if rtype == SOA:  # the negative TTL: min(SOA's own TTL, its MINIMUM field)
                minimum = struct.unpack("!I", message[offset + length - 4:offset + length])[0]
                negative = min(ttl, minimum)
            offset += length
    except (struct.error, IndexError, OSError, ValueError):
        raise _Retry("a malformed answer") from None
    negative_ttl = min(MAX_NEGATIVE_TTL, max(MIN_NEGATIVE_TTL, negative if negative is not None else 60))
    if rcode == 3:
        error = DnsError(f"no such host: {name} (NXDOMAIN)", permanent=True)
        error.ttl = negative_ttl
        raise error
    if rcode != 0:
        names = {1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED"}
        raise _Retry(f"{names.get(rcode, f'rcode {rcode}')}")
    if not addresses:
        return [], negative_ttl
    return addresses, min(MAX_TTL, max(MIN_TTL, min(ttls)))


def proxy_in_environment() -> bool:
    """Whether libcurl will send requests through a proxy named in the environment."""
    return any(os.environ.get(name) for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY",
                                                 "all_proxy"))
