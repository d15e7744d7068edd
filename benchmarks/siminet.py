"""A simulated internet on loopback: thousands of hosts, each with its own round trip,
think time, bandwidth and size, faults in the mix, and a DNS server that names them.

    python benchmarks/siminet.py serve --hosts 2000 [--port 8080] [--seed 1]
                                       [--dns 127.0.0.53:53] [--zone sim.test]
    python benchmarks/siminet.py urls --hosts 2000 --count 20000 [--names] > urls.txt

The kernel here has no netem, so the server itself plays the network: every host is its
own loopback address (127.1.0.1, 127.1.0.2, ...: all of 127.0.0.0/8 reaches this machine),
all served by one asyncio process. Its parameters are drawn once from the seed:

  round trip        log-normal, median 60 ms, sigma 0.7, clipped to 5 ms - 2 s
  think time        log-normal, median 100 ms, sigma 0.8, clipped to 5 ms - 3 s
  bandwidth         log-uniform 0.5 - 20 MB/s, shared by all of the host's connections
  small servers     5% of hosts answer 4 requests at a time (the rest wait their turn) and
                    close every connection after one answer (HTTP/1.0)
  CDNs              the 2% most popular hosts think 4x faster, have 20 - 200 MB/s
                    (log-uniform) and are never small

An answer's first byte comes after think time + one round trip (two on a new connection:
the TCP handshake); the body then flows at the host's bandwidth. The URL's path says
what it gets, so the server keeps no state and the URL list carries the truth:

  /ok/SIZE/N.jpg          200 with SIZE bytes (Content-Type image/jpeg)
  /e404/..  /e403/..  /e500/..   that status
  /stall/SIZE/N.jpg       headers (Content-Length SIZE), then nothing
  /reset/SIZE/N.jpg       headers and half the body, then a TCP reset
  /close/SIZE/N.jpg       the connection closed before any answer
  /drip/SIZE/N.jpg        one byte every 0.5 s
  /r429/SIZE/N.jpg        429 with Retry-After: 1
  /redirect/SIZE/N.jpg?to=HOST   302 to http://HOST/ok/SIZE/N.jpg
  /slow/MS/SIZE/N.jpg     as ok, with MS more milliseconds of think time

The body of a path is a slice of one seeded random pool, so `expected_body(path)` (and
its sha256) is known without a request. `urls` draws a list: hosts by a Zipf-like
popularity, sizes log-normal (median 50 KB, sigma 1.0, 1 KB - 5 MB), outcomes 7% 404,
1% 403, 1.5% 500, 0.5% each of stall, reset and close, 2% redirect to another host, the
rest 200. `--names` gives host names (`h17.sim.test`) that the DNS server answers.

The DNS server answers A queries for `hN.ZONE` with host N's address (TTL 300),
NXDOMAIN with an SOA for other names in the zone, and REFUSED outside it; it counts
the queries it gets per name.
"""

import argparse
import asyncio
import hashlib
import math
import os
import random
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass

POOL_SIZE = 8 << 20
MAX_BODY = 5 << 20
CHUNK_SECONDS = 0.02  # pace bodies in slices of this much of the host's bandwidth
OUTCOME_MIX = [("e404", 0.07), ("e403", 0.01), ("e500", 0.015), ("stall", 0.005), ("reset", 0.005),
               ("close", 0.005), ("redirect", 0.02)]
STATUS_TEXT = {200: "OK", 302: "Found", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
               500: "Internal Server Error"}


@dataclass
class Host:
    index: int
    address: str
    rtt: float
    think: float
    bandwidth: float  # bytes/s
    small: bool
    next_free: float = 0.0  # when the host's link is free again (bodies share it)
    active: int = 0
    waiting: list | None = None
    requests: int = 0
    connections: int = 0
    max_active: int = 0


def host_address(index: int) -> str:
    """Host 0 is 127.1.0.1, host 255 is 127.1.1.0, ...: 65,536 hosts a /16 from 127.1.0.0 on."""
    n = index + 1
    return f"127.{1 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"


def make_hosts(count: int, seed: int = 1, small_fraction: float = 0.05, scale: float = 1.0,
               cdn_fraction: float = 0.02) -> list[Host]:
    """Host 0 is the most popular (draw_urls' Zipf-like weights follow the index). The first
    `cdn_fraction` of hosts are CDNs: fast links and quick answers, never small. (Without
    them, a popular host on a slow link would bound every client's speed.) `scale`
    multiplies round trips and think times (0: a LAN with no latency at all)."""
    rng = random.Random(seed)
    hosts = []
    for index in range(count):
        address = host_address(index)
        cdn = index < cdn_fraction * count
        rtt = scale * min(2.0, max(0.005, rng.lognormvariate(math.log(0.060), 0.7)))
        think = scale * min(3.0, max(0.005, rng.lognormvariate(math.log(0.100), 0.8)))
        bandwidth = math.exp(rng.uniform(math.log(0.5e6), math.log(20e6)))
        small = rng.random() < small_fraction
        if cdn:
            think, small = think / 4, False
            bandwidth = math.exp(rng.uniform(math.log(20e6), math.log(200e6)))
        hosts.append(Host(index, address, rtt, think, bandwidth, small))
    return hosts


_POOL: bytes | None = None


def pool(seed: int = 1) -> bytes:
    global _POOL
    if _POOL is None:
        _POOL = random.Random(seed).randbytes(POOL_SIZE)
    return _POOL


def expected_body(path: str, seed: int = 1) -> bytes:
    """The bytes a successful answer for `path` carries (the part after the outcome, so a
    redirect's target and the URL that named it agree)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if parts[0] == "slow":
        parts = parts[1:]
    size = min(int(parts[1]), MAX_BODY)
    name = "/".join(parts[1:]).encode()
    offset = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big") % (POOL_SIZE - size)
    return pool(seed)[offset:offset + size]


def expected_sha256(path: str, seed: int = 1) -> str:
    return hashlib.sha256(expected_body(path, seed)).hexdigest()


# --- the HTTP side


class _Connection(asyncio.Protocol):
    def __init__(self, net: "Internet"):
        self.net = net
        self.transport = None
        self.host: Host | None = None
        self.buffer = b""
        self.fresh = True
        self.task: asyncio.Task | None = None
        self.closed = False
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport):
        self.transport = transport
        self.host = self.net.by_address.get(transport.get_extra_info("sockname")[0])
        self.host.connections += 1

    def connection_lost(self, exc):
        self.closed = True
        self.writable.set()
        if self.task is not None:
            self.task.cancel()

    def pause_writing(self):
        self.writable.clear()

    def resume_writing(self):
        self.writable.set()

    def data_received(self, data):
        self.buffer += data
        if self.task is None and b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.task = asyncio.ensure_future(self._answer(head))

    async def _answer(self, head: bytes):
        try:
            await self._respond(head)
        except asyncio.CancelledError:
            return
        except (ConnectionError, OSError):
            self.transport.abort()
            return
        self.task = None
        if not self.closed and b"\r\n\r\n" in self.buffer:
            self.data_received(b"")

    async def _respond(self, head: bytes):
        host, net = self.host, self.net
        lines = head.split(b"\r\n")
        try:
            _method, target, version = lines[0].split(b" ", 2)
        except ValueError:
            self.transport.abort()
            return
        path = target.decode("latin-1")
        keep_alive = version == b"HTTP/1.1" and not host.small and \
            not any(line.lower() == b"connection: close" for line in lines[1:])
        host.requests += 1
        net.requests += 1
        parts = path.split("?", 1)[0].strip("/").split("/")
        outcome = parts[0]
        think = host.think
        if outcome == "slow":
            think += int(parts[1]) / 1000
            outcome = "ok"
        delay = think + host.rtt * (2 if self.fresh else 1)
        self.fresh = False
        if outcome == "close":
            await asyncio.sleep(delay)
            self.transport.close()
            return
        if host.small:  # a small server: a few workers, the rest wait for one
            await self._take_worker(host)
        try:
            host.active += 1
            host.max_active = max(host.max_active, host.active)
            await asyncio.sleep(delay)
            await self._send(path, outcome, parts, keep_alive)
        finally:
            host.active -= 1
            if host.small:
                self._free_worker(host)
        if not keep_alive:
            self.transport.close()

    async def _take_worker(self, host: Host):
        if host.waiting is None:
            host.waiting = []
        if host.active >= self.net.small_workers:
            ready = asyncio.get_running_loop().create_future()
            host.waiting.append(ready)
            await ready

    def _free_worker(self, host: Host):
        while host.waiting:
            ready = host.waiting.pop(0)
            if not ready.done():
                ready.set_result(None)
                break

    async def _send(self, path: str, outcome: str, parts: list[str], keep_alive: bool):
        connection = b"keep-alive" if keep_alive else b"close"
        if outcome in ("e404", "e403", "e500", "r429"):
            status = 429 if outcome == "r429" else int(outcome[1:])
            body = f"error {status}\n".encode()
            extra = b"Retry-After: 1\r\n" if status == 429 else b""
            self.transport.write(self._head(status, len(body), b"text/plain", connection, extra) + body)
            return
        if outcome == "redirect":
            target = path.split("to=", 1)[1] if "to=" in path else self.host.address
            location = f"http://{target}/ok/{'/'.join(parts[1:])}".split("?", 1)[0]
            self.transport.write(self._head(302, 0, b"text/plain", connection,
                                            f"Location: {location}\r\n".encode()))
            return
        body = expected_body(path, self.net.seed)
        head = self._head(200, len(body), b"image/jpeg", connection)
        if outcome == "stall":
            self.transport.write(head)
            await asyncio.sleep(3600)
            return
        if outcome == "drip":
            self.transport.write(head)
            for i in range(len(body)):
                await asyncio.sleep(0.5)
                self.transport.write(body[i:i + 1])
            return
        if outcome == "reset":
            self.transport.write(head + body[:len(body) // 2])
            await self.writable.wait()
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
            return
        await self._paced(head, body)

    async def _paced(self, head: bytes, body: bytes):
        """The body at the host's bandwidth: each slice takes its turn on the host's link."""
        host = self.host
        loop = asyncio.get_running_loop()
        chunk = max(16384, int(host.bandwidth * CHUNK_SECONDS))
        view = memoryview(body)
        first = True
        for start in range(0, len(body), chunk):
            piece = view[start:start + chunk]
            now = loop.time()
            begin = max(now, host.next_free)
            host.next_free = begin + len(piece) / host.bandwidth
            if begin > now + 0.001:
                await asyncio.sleep(begin - now)
            if self.closed:
                return
            await self.writable.wait()
            if first:
                self.transport.write(head + bytes(piece))
                first = False
            else:
                self.transport.write(piece)
        if not body:
            self.transport.write(head)

    @staticmethod
    def _head(status: int, length: int, ctype: bytes, connection: bytes, extra: bytes = b"") -> bytes:
        return (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: %s\r\n%s\r\n"
                % (status, STATUS_TEXT.get(status, "OK").encode(), ctype, length, connection, extra))


class Internet:
    """The hosts, served on `port` of each host's address, in the running event loop."""

    def __init__(self, hosts: list[Host], port: int, seed: int = 1, small_workers: int = 4):
        self.hosts = hosts
        self.by_address = {host.address: host for host in hosts}
        self.port = port
        self.seed = seed
        self.small_workers = small_workers
        self.servers = []
        self.requests = 0

    async def start(self, backlog: int = 4096):
        loop = asyncio.get_running_loop()
        for host in self.hosts:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.address, self.port))
            sock.listen(5 if host.small else backlog)
            sock.setblocking(False)
            self.servers.append(await loop.create_server(lambda: _Connection(self), sock=sock))

    def close(self):
        for server in self.servers:
            server.close()


# --- the DNS side


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while True:
        length = message[offset]
        if length == 0:
            return ".".join(labels), offset + 1
        if length & 0xC0:  # a compression pointer (not in queries we answer, but be safe)
            name, _ = _read_name(message, ((length & 0x3F) << 8) | message[offset + 1])
            labels.append(name)
            return ".".join(labels), offset + 2
        labels.append(message[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


class DnsServer(asyncio.DatagramProtocol):
    """Answers A queries from `lookup(name) -> address | None`; None is NXDOMAIN. `delay`
    holds every answer back; names in `drop` are never answered."""

    TTL = 300
    NEGATIVE_TTL = 60

    def __init__(self, lookup, zone: str = "", delay: float = 0.0):
        self.lookup = lookup
        self.zone = zone.lower().strip(".")
        self.delay = delay
        self.queries = Counter()
        self.drop: set[str] = set()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            answer = self.answer(data)
        except (IndexError, struct.error, UnicodeError):
            return
        if answer is None:
            return
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, answer, addr)
        else:
            self.transport.sendto(answer, addr)

    def answer(self, query: bytes) -> bytes | None:
        ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
        if qdcount != 1:
            return None
        name, end = _read_name(query, 12)
        qtype, _qclass = struct.unpack("!HH", query[end:end + 4])
        question = query[12:end + 4]
        name = name.lower().rstrip(".")
        self.queries[name] += 1
        if name in self.drop:
            return None
        in_zone = not self.zone or name == self.zone or name.endswith("." + self.zone)
        if not in_zone:
            return struct.pack("!HHHHHH", ident, 0x8185, 1, 0, 0, 0) + question  # REFUSED
        address = self.lookup(name)
        if address is None:  # NXDOMAIN, with the zone's SOA for the negative TTL
            return struct.pack("!HHHHHH", ident, 0x8583, 1, 0, 1, 0) + question + self._soa()
        if qtype != 1:  # NODATA: the name exists, but only with an A record
            return struct.pack("!HHHHHH", ident, 0x8580, 1, 0, 1, 0) + question + self._soa()
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, self.TTL, 4) + socket.inet_aton(address)
        return struct.pack("!HHHHHH", ident, 0x8580, 1, 1, 0, 0) + question + record

    def _soa(self) -> bytes:
        zone = b"".join(bytes([len(label)]) + label.encode() for label in self.zone.split(".") if label) + b"\0"
        rdata = zone + zone + struct.pack("!IIIII", 1, 3600, 600, 86400, self.NEGATIVE_TTL)
        return zone + struct.pack("!HHIH", 6, 1, self.NEGATIVE_TTL, len(rdata)) + rdata


def zone_lookup(hosts: list[Host], zone: str):
    """hN.ZONE -> host N's address."""
    suffix = "." + zone.lower().strip(".")

    def lookup(name: str) -> str | None:
        if name.endswith(suffix) and name.startswith("h"):
            number = name[1:-len(suffix)]
            if number.isdigit() and int(number) < len(hosts):
                return hosts[int(number)].address
        return None

    return lookup


async def start_dns(lookup, address: str, port: int, zone: str = "") -> tuple[DnsServer, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: DnsServer(lookup, zone),
                                                              local_addr=(address, port))
    return protocol, transport


# --- URL lists


def draw_urls(hosts: list[Host], count: int, port: int, seed: int = 2, names: str | None = None,
              mix=OUTCOME_MIX) -> list[str]:
    """`count` URLs over the hosts: popularity Zipf-like (weight 1/(rank+10)), sizes
    log-normal, outcomes from `mix`. With `names`, hosts are named hN.<names>."""
    rng = random.Random(seed)
    weights = [1 / (rank + 10) for rank in range(len(hosts))]
    chosen = rng.choices(hosts, weights=weights, k=count)

    def netloc(host: Host) -> str:
        name = f"h{host.index}.{names}" if names else host.address
        return f"{name}:{port}"

    urls = []
    for serial, host in enumerate(chosen):
        size = int(min(MAX_BODY, max(1024, rng.lognormvariate(math.log(50_000), 1.0))))
        roll = rng.random()
        outcome = "ok"
        for name, share in mix:
            if roll < share:
                outcome = name
                break
            roll -= share
        url = f"http://{netloc(host)}/{outcome}/{size}/{serial}.jpg"
        if outcome == "redirect":
            url += f"?to={netloc(rng.choice(hosts))}"
        urls.append(url)
    return urls


def outcome_of(url: str) -> str:
    """What a URL of draw_urls gets: ok (its body), or the name of its fault."""
    path = url.split("/", 3)[3]
    outcome = path.split("/", 1)[0]
    return "ok" if outcome in ("ok", "slow", "redirect") else outcome


def _serve(args):
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    hosts = make_hosts(args.hosts, args.seed, args.small_fraction, args.scale)
    pool(args.seed)

    async def main():
        net = Internet(hosts, args.port, args.seed)
        await net.start()
        if args.dns:
            address, _, port = args.dns.rpartition(":")
            await start_dns(zone_lookup(hosts, args.zone), address, int(port), args.zone)
        print(f"serving {len(hosts)} hosts on port {args.port}", flush=True)
        if args.ready_file:
            with open(args.ready_file, "w") as out:
                out.write(str(os.getpid()))
        while True:
            await asyncio.sleep(3600)

    asyncio.run(main())


class Served:
    """`serve` in a process of its own, for tests and benchmarks: started on entry, ready
    when entered, stopped on exit."""

    def __init__(self, hosts: int, port: int, *, dns: str | None = None, zone: str = "sim.test",
                 scale: float = 1.0, small_fraction: float = 0.05, seed: int = 1):
        self.hosts, self.port, self.dns, self.zone = hosts, port, dns, zone
        self.arguments = ["--hosts", str(hosts), "--port", str(port), "--zone", zone, "--seed", str(seed),
                          "--scale", str(scale), "--small-fraction", str(small_fraction)]
        if dns:
            self.arguments += ["--dns", dns]
        self.process = None

    def __enter__(self) -> "Served":
        import subprocess
        import tempfile

        ready = tempfile.NamedTemporaryFile(delete=False, suffix=".ready")
        ready.close()
        os.unlink(ready.name)
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", *self.arguments,
                                         "--ready-file", ready.name], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.exists(ready.name):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("the simulated internet did not start")
            time.sleep(0.05)
        os.unlink(ready.name)
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    urls = commands.add_parser("urls")
    for sub in (serve, urls):
        sub.add_argument("--hosts", type=int, default=2000)
        sub.add_argument("--port", type=int, default=8080)
        sub.add_argument("--seed", type=int, default=1)
        sub.add_argument("--zone", default="sim.test")
    serve.add_argument("--dns", help="ADDRESS:PORT for the DNS server (e.g. 127.0.0.53:53)")
    serve.add_argument("--ready-file")
    serve.add_argument("--scale", type=float, default=1.0, help="multiply round trips and think times")
    serve.add_argument("--small-fraction", type=float, default=0.05, help="share of small servers")
    urls.add_argument("--count", type=int, default=20000)
    urls.add_argument("--list-seed", type=int, default=2)
    urls.add_argument("--names", action="store_true", help="host names (hN.ZONE) instead of addresses")
    args = parser.parse_args()
    if args.command == "serve":
        _serve(args)
    else:
        hosts = make_hosts(args.hosts, args.seed)
        for url in draw_urls(hosts, args.count, args.port, args.list_seed, args.zone if args.names else None):
            sys.stdout.write(url + "\n")


if __name__ == "__main__":
    main()
