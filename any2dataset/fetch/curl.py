"""HTTP downloads on libcurl's multi interface (pycurl), driven by the asyncio event loop.

libcurl parses, buffers and times requests in C: a bare download loop measured
13,600 files/s against aiohttp's 4,700 on this machine (benchmarks/README.md).
Its sockets are watched by the event loop (M_SOCKETFUNCTION / M_TIMERFUNCTION),
so the rest of the engine (tasks, retries, per-host slots, other sources) stays
asyncio. Each request is awaited as a future; redirects come back to the engine,
which checks and schedules the next hop like any other request.

Timeouts: libcurl holds a request to `--timeout` while it connects and to the
deadline it is given as a whole; between two reads, a watchdog of ours holds it to
`--timeout` (libcurl's low-speed check averages over seconds). A request enters
libcurl only once it has its slots, so time spent waiting for them never counts.

One connection pool, TLS session cache and HTTP/2 multiplexing (PIPEWAIT: a burst to
one host waits for the first connection and shares it) serve every request.
Every address, of a first host or a redirect target, is checked before libcurl
connects: by the engine when it resolves names (always behind a proxy), else by an
open-socket callback that refuses link-local and cloud metadata addresses.
"""

import asyncio
import collections
import os
import socket
import ssl
import tempfile
import time

import pycurl

from . import policy
from .guards import ascii_pin

_STATUS_LINE = b"HTTP/"
_READS = frozenset({pycurl.POLL_IN, pycurl.POLL_INOUT})
_WRITES = frozenset({pycurl.POLL_OUT, pycurl.POLL_INOUT})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HANDED_LIMIT = 20_000  # HOST:PORT entries kept in libcurl's DNS cache


def _ca_file() -> str | None:
    """The system's CA bundle as Python's ssl module knows it, else certifi's: the libcurl
    inside pycurl's wheel may look elsewhere."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.exists(candidate):
            return candidate
    try:
        import certifi

        return certifi.where()
    except ImportError:
        return None


CA_FILE = _ca_file()
_E_TOO_LARGE = getattr(pycurl, "E_TOO_LARGE", 100)  # (libcurl 8.6: a reply header over its limits)
_E_WEIRD_SERVER_REPLY = getattr(pycurl, "E_WEIRD_SERVER_REPLY", 8)  # (pycurl knows it by its old FTP name)
_ERRORS = {
    pycurl.E_COULDNT_RESOLVE_HOST: "dns",
    pycurl.E_COULDNT_CONNECT: "connect",
    pycurl.E_OPERATION_TIMEDOUT: "timeout",
    pycurl.E_TOO_MANY_REDIRECTS: "too_many_redirects",
    pycurl.E_PARTIAL_FILE: "truncated",
    pycurl.E_GOT_NOTHING: "reset",
    pycurl.E_RECV_ERROR: "reset",
    pycurl.E_SEND_ERROR: "reset",
    pycurl.E_FILESIZE_EXCEEDED: "too_large",
    pycurl.E_UNSUPPORTED_PROTOCOL: "scheme_denied",
    pycurl.E_URL_MALFORMAT: "invalid_url",
    pycurl.E_SSL_CONNECT_ERROR: "tls",
    pycurl.E_PEER_FAILED_VERIFICATION: "tls",
    _E_WEIRD_SERVER_REPLY: "invalid_reply",
    pycurl.E_BAD_CONTENT_ENCODING: "invalid_reply",  # a body that does not decode as its Content-Encoding says
    _E_TOO_LARGE: "invalid_reply",
}


class Outcome:
    """What one request gave: a body, a redirect (`location`), or an error kind and
    message; its HTTP status, and the seconds it spent in libcurl."""

    __slots__ = ("body", "status", "content_type", "location", "kind", "message", "retry_after", "seconds",
                 "final", "answered")

    def __init__(self, body=None, status=None, content_type=None, location=None, kind=None, message=None,
                 retry_after=None, seconds=0.0, final=False, answered=False):
        self.body = body
        self.status = status
        self.content_type = content_type
        self.location = location
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.seconds = seconds
        self.final = final  # a failure that another try would not change
        self.answered = answered  # the server began to answer (a status line came)


class SpilledBody:
    """A body larger than its share of the memory budget, in an unlinked temporary file while
    it downloads and waits for the consumer, who reads it back (`take`) one at a time."""

    __slots__ = ("file", "size")

    def __init__(self, file, size: int):
        self.file = file
        self.size = size

    def __len__(self) -> int:
        return self.size

    def head(self, count: int) -> bytes:
        self.file.seek(0)
        return self.file.read(count)

    def pieces(self, piece: int = 1 << 20):
        self.file.seek(0)
        while True:
            data = self.file.read(piece)
            if not data:
                return
            yield data

    def take(self) -> bytes:
        """The whole body, closing (so deleting) the file."""
        with self.file:
            self.file.seek(0)
            return self.file.read()

    def discard(self) -> None:
        self.file.close()


class _Transfer:
    """One request's state, reachable from libcurl's callbacks."""

    __slots__ = ("chunks", "size", "headers", "refused", "future", "client", "reason", "last", "started",
                 "answered", "deadline", "spill")

    def __init__(self, client, future, deadline):
        self.client = client
        self.future = future
        self.chunks = []
        self.spill = None  # a temporary file, once the body outgrows its share of --body-memory
        self.size = 0
        self.headers = []  # of the latest response (a 1xx starts a new list)
        self.refused = None  # (kind, message) when we stopped the transfer ourselves
        self.reason = None  # the latest status line's reason phrase
        self.started = self.last = time.monotonic()  # data last came: the read timeout counts from here
        self.answered = False  # a status line came
        self.deadline = deadline

    def on_header(self, line: bytes):
        self.last = time.monotonic()
        if line.startswith(_STATUS_LINE):
            self.answered = True
            self.headers = []
            parts = line.split(None, 2)
            self.reason = parts[2].strip().decode("latin-1") if len(parts) == 3 else None
        elif line in (b"\r\n", b"\n"):
            return self.client.check_headers(self)
        else:
            name, colon, value = line.partition(b":")
            if colon:
                self.headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
        return None

    def on_body(self, data: bytes):
        self.last = time.monotonic()
        self.size += len(data)
        if self.size > self.client.max_size:
            self.refused = ("too_large", f"body is over --max-size {self.client.max_size}")
            return 0  # abort the transfer
        try:
            if self.spill is not None:
                self.spill.write(data)
            elif self.size > self.client.memory_per_transfer:
                self.spill = tempfile.TemporaryFile(prefix="a2d-fetch-body-")
                self.spill.writelines(self.chunks)
                self.spill.write(data)
                self.chunks = []
            else:
                self.chunks.append(data)
        except OSError as error:  # a full disk: this body fails, the run goes on
            self.refused = ("other", f"could not keep the body on disk ({error.strerror or error})")
            return 0
        return None

    def body(self):
        return SpilledBody(self.spill, self.size) if self.spill is not None else b"".join(self.chunks)

    def discard(self) -> None:
        if self.spill is not None:
            self.spill.close()
            self.spill = None
        self.chunks = []

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


class CurlClient:
    def __init__(self, loop: asyncio.AbstractEventLoop, options, guard, robots_tokens, disallowed, own_dns: bool):
        self.loop = loop
        self.own_dns = own_dns  # the engine resolves names (and checks their addresses) itself
        self.options = options
        self.guard = guard
        self.robots_tokens = robots_tokens
        self.disallowed = disallowed
        self.max_size = options.max_size
        # A body bigger than its share of --body-memory goes to a temporary file as it arrives.
        self.memory_per_transfer = options.memory_per_transfer()
        self.timeout = options.timeout
        self.headers = [f"{name}: {value}" for name, value in options.headers.items()]
        self.pinned = [ascii_pin(entry) for entry in options.resolve]
        # Addresses handed to libcurl, per HOST:PORT. Its DNS cache is told never to expire
        # entries (expiring means a scan of the whole cache after every transfer: 9% of the CPU
        # over 2,000 hosts); the oldest are removed here instead, so it stays this small.
        self.handed: collections.OrderedDict[str, tuple] = collections.OrderedDict()
        self.removals: list[str] = []
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.multi.setopt(pycurl.M_MAXCONNECTS, _connection_cache_size(options.concurrency))
        self.share = pycurl.CurlShare()  # TLS sessions resumed by whichever handle connects next
        self.share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
        self.idle: list[pycurl.Curl] = []
        self.handles: list[pycurl.Curl] = []
        self.timer: asyncio.TimerHandle | None = None
        self.watched: dict[int, int] = {}
        self.active: dict[pycurl.Curl, _Transfer] = {}
        self.period = min(0.25, self.timeout / 4)
        self.idle_check = loop.call_later(self.period, self._check_idle)

    # --- the event loop side

    def _on_socket(self, what: int, fd: int, multi, data) -> None:
        loop = self.loop
        before = self.watched.get(fd, pycurl.POLL_REMOVE)
        if what == before:
            return  # libcurl repeats itself often: change nothing
        if what == pycurl.POLL_REMOVE:
            del self.watched[fd]
        else:
            self.watched[fd] = what
        reads, read_before = what in _READS, before in _READS
        if reads != read_before:
            if reads:
                loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
            else:
                loop.remove_reader(fd)
        writes, wrote_before = what in _WRITES, before in _WRITES
        if writes != wrote_before:
            if writes:
                loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
            else:
                loop.remove_writer(fd)

    def _on_timer(self, milliseconds: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if milliseconds == 0:  # libcurl forbids acting from inside this callback: schedule it
            self.timer = self.loop.call_soon(self._act, pycurl.SOCKET_TIMEOUT, 0)
        elif milliseconds > 0:
            self.timer = self.loop.call_later(milliseconds / 1000, self._act, pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, event: int) -> None:
        while True:
            result, _running = self.multi.socket_action(fd, event)
            if result != pycurl.E_CALL_MULTI_PERFORM:
                break
        while True:
            queued, finished, failed = self.multi.info_read()
            for handle in finished:
                self._finish(handle, None, None)
            for handle, code, message in failed:
                self._finish(handle, code, message)
            if not queued:
                break

    def _check_idle(self) -> None:
        """The read timeout, for every request in flight whether its connection is new or
        reused; and the deadline again, should libcurl's timer ever be late."""
        now = time.monotonic()
        quiet_since = now - self.timeout
        for handle, transfer in list(self.active.items()):
            if transfer.last < quiet_since:
                self._end(handle, transfer, *self._silence(handle, transfer))
            elif now - transfer.started > transfer.deadline + 1:
                self._end(handle, transfer, "timeout", f"deadline of {transfer.deadline:g}s exceeded")
        self.idle_check = self.loop.call_later(self.period, self._check_idle)

    def _silence(self, handle: pycurl.Curl, transfer: _Transfer) -> tuple[str, str]:
        if not self._connected(handle):
            return "connect", f"no connection within {self.timeout:g}s (--timeout)"
        if not transfer.answered:
            return "timeout", f"no answer within {self.timeout:g}s of the request (--timeout)"
        return "timeout", f"no data for {self.timeout:g}s (--timeout)"

    @staticmethod
    def _connected(handle: pycurl.Curl) -> bool:
        """Whether the request has a connection (new or reused): libcurl reaches "pretransfer"
        only then. (CONNECT_TIME is 0 on a reused connection.)"""
        return handle.getinfo(pycurl.PRETRANSFER_TIME_T) > 0

    def _end(self, handle: pycurl.Curl, transfer: _Transfer, kind: str, message: str) -> None:
        self._release(handle)
        transfer.discard()
        if not transfer.future.done():
            transfer.future.set_result(Outcome(kind=kind, message=message, answered=transfer.answered,
                                               seconds=time.monotonic() - transfer.started))

    # --- one request

    async def get(self, url: str, host: str, addresses: tuple[str, ...] | None, deadline: float,
                  send_headers: bool = True) -> Outcome:
        """GET `url` (no redirect followed) within `deadline` seconds. `host` is its HOST:PORT,
        `addresses` what it resolved to (None: libcurl resolves it, or it is an address);
        the --header headers only with `send_headers`."""
        handle = self.idle.pop() if self.idle else self._new_handle()
        transfer = _Transfer(self, self.loop.create_future(), deadline)
        handle.setopt(pycurl.URL, url)
        if self.headers:
            if send_headers:
                handle.setopt(pycurl.HTTPHEADER, self.headers)
            else:
                handle.unsetopt(pycurl.HTTPHEADER)  # (an empty list leaves the last one set)
        handle.setopt(pycurl.TIMEOUT_MS, max(1, int(deadline * 1000)))
        resolve = self._resolve_entries(host, addresses)
        if resolve is not None:
            handle.setopt(pycurl.RESOLVE, resolve)
        handle.setopt(pycurl.HEADERFUNCTION, transfer.on_header)
        handle.setopt(pycurl.WRITEFUNCTION, transfer.on_body)
        handle.transfer = transfer
        self.active[handle] = transfer
        self.multi.add_handle(handle)
        try:
            return await transfer.future
        finally:
            if not transfer.future.done():  # cancelled (Ctrl-C, a closed output): take it out of libcurl
                self._release(handle)
                transfer.discard()

    def _resolve_entries(self, host: str, addresses: tuple[str, ...] | None) -> list[str] | None:
        """The CURLOPT_RESOLVE list this request needs, or None when libcurl knows already."""
        if not self.own_dns:
            return None
        known = self.handed.get(host, False)
        if known == addresses:
            self.handed.move_to_end(host)
            return None
        self.handed[host] = addresses
        self.handed.move_to_end(host)
        if len(self.handed) > HANDED_LIMIT:
            for _ in range(HANDED_LIMIT // 10):
                self.removals.append("-" + self.handed.popitem(last=False)[0])
        entries, self.removals = self.removals, []
        if addresses is not None:
            entries.append(f"+{host}:{','.join(f'[{a}]' if ':' in a else a for a in addresses)}")
        return entries

    def _new_handle(self) -> pycurl.Curl:
        """A handle with the options every request shares (libcurl keeps them across requests)."""
        options = self.options
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.FOLLOWLOCATION, 0)  # the engine follows, through its checks and slots
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, int(options.timeout * 1000))
        handle.setopt(pycurl.MAXFILESIZE_LARGE, options.max_size)
        handle.setopt(pycurl.BUFFERSIZE, 512 * 1024)
        handle.setopt(pycurl.USERAGENT, options.full_user_agent())
        if options.proxy:
            handle.setopt(pycurl.PROXY, options.proxy)
        handle.setopt(pycurl.ACCEPT_ENCODING, "")  # whatever libcurl can decode; bodies arrive decoded
        handle.setopt(pycurl.SSL_VERIFYPEER, 0 if options.insecure else 1)
        handle.setopt(pycurl.SSL_VERIFYHOST, 0 if options.insecure else 2)
        if options.ca_bundle or CA_FILE:
            handle.setopt(pycurl.CAINFO, options.ca_bundle or CA_FILE)
        handle.setopt(pycurl.SHARE, self.share)
        handle.setopt(pycurl.PIPEWAIT, 1)
        if self.own_dns:  # (--resolve pins come from the engine with the other answers)
            handle.setopt(pycurl.DNS_CACHE_TIMEOUT, -1)
        else:  # libcurl resolves
            handle.setopt(pycurl.RESOLVE, self.pinned)
        # Every address libcurl is about to connect to is checked, whoever resolved it: a second
        # line behind the engine's checks (a host spelled so that libcurl reads it otherwise).
        handle.setopt(pycurl.OPENSOCKETFUNCTION, self._open_socket(handle))
        self.handles.append(handle)
        return handle

    def _open_socket(self, handle: pycurl.Curl):
        guard = self.guard

        def open_socket(purpose, address):
            family, socktype, protocol, where = address
            host = where[0]
            if not guard.address_allowed(host):
                handle.transfer.refused = ("address_denied", f"address {host} is link-local or a cloud metadata "
                                                             f"address (see --allow-address)")
                return pycurl.SOCKET_BAD
            return socket.socket(family, socktype, protocol)

        return open_socket

    def check_headers(self, transfer: _Transfer):
        """Called at the end of each response's headers: refuse the body before it comes."""
        if transfer.header("location"):
            return None  # a redirect: the next response decides
        robots = transfer.header("x-robots-tag")
        if robots:
            refused = policy.robots_optout(robots, self.robots_tokens, self.disallowed)
            if refused:
                transfer.refused = ("robots_optout", f"X-Robots-Tag: {refused}")
                return 0  # abort: the body is never read
        return None

    def _finish(self, handle: pycurl.Curl, code: int | None, message: str | None) -> None:
        transfer = handle.transfer
        status = handle.getinfo(pycurl.RESPONSE_CODE) or None
        content_type = handle.getinfo(pycurl.CONTENT_TYPE)
        self._release(handle)
        if transfer.future.done():
            transfer.discard()
            return
        seconds = time.monotonic() - transfer.started
        if transfer.refused is not None:
            kind, text = transfer.refused
            outcome = Outcome(kind=kind, message=text, status=status if kind == "robots_optout" else None)
        elif code is not None:
            kind = _ERRORS.get(code, "other")
            text = message or f"libcurl error {code}"
            if code == pycurl.E_UNSUPPORTED_PROTOCOL and "HTTP/0.9" in text:
                # Not a scheme we refused: the server answered with no status line (HTTP/0.9 or garbage).
                kind, text = "invalid_reply", f"not an HTTP reply: no status line ({text})"
            elif code == _E_TOO_LARGE or text.startswith("Too large response headers"):
                kind, text = "invalid_reply", (f"reply headers over libcurl's limits (100 KiB for one header, "
                                               f"300 KiB in all){': ' + message if message else ''}")
            if code == pycurl.E_OPERATION_TIMEDOUT:
                if _before_connection(text):
                    kind, text = "connect", f"no connection within {min(self.timeout, transfer.deadline):g}s: {text}"
                else:
                    text = f"deadline of {transfer.deadline:g}s exceeded: {text}"
            outcome = Outcome(kind=kind, message=text)
        elif status in REDIRECT_STATUSES and transfer.header("location"):
            outcome = Outcome(status=status, location=_location(transfer.header("location")[0]))
        elif status is not None and status >= 400:
            kind, text = policy.http_error(status, transfer.reason)
            outcome = Outcome(kind=kind, message=text, status=status,
                              retry_after=policy.retry_after_seconds(next(iter(transfer.header("retry-after")), None)))
        elif (problem := policy.not_content(status, transfer.reason, transfer.size,
                                            bool(transfer.header("location")))) is not None:
            outcome = Outcome(kind=problem[0], message=problem[1], status=status)
        else:
            outcome = Outcome(body=transfer.body(), status=status, content_type=content_type)
            transfer.spill = None  # the outcome owns it now
        transfer.discard()
        outcome.seconds = seconds
        outcome.answered = transfer.answered
        transfer.future.set_result(outcome)

    def _release(self, handle: pycurl.Curl) -> None:
        if self.active.pop(handle, None) is None:
            return  # released already
        try:
            self.multi.remove_handle(handle)
        except pycurl.error:
            pass
        handle.transfer = None
        # Callbacks hold the transfer; unset them so nothing outlives the request.
        handle.setopt(pycurl.HEADERFUNCTION, _ignore)
        handle.setopt(pycurl.WRITEFUNCTION, _ignore)
        self.idle.append(handle)

    def close(self) -> None:
        self.idle_check.cancel()
        if self.timer is not None:
            self.timer.cancel()
        for fd in list(self.watched):
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        self.watched.clear()
        for handle in list(self.active):
            self._release(handle)
        for handle in self.handles:
            handle.close()
        self.multi.close()
        self.share.close()


def _ignore(data):
    return None


def _location(value: str) -> str:
    """A Location header as browsers read it: raw UTF-8 bytes are UTF-8 (the header came
    decoded as latin-1, byte for byte); the guard then percent-encodes them for the request."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _before_connection(message: str) -> bool:
    """Whether libcurl's timeout message is about connecting. (Its timing info cannot tell
    after the fact: a failed transfer gets a "pretransfer" time too.)"""
    return message.startswith(("Connection timed out", "Failed to connect", "Resolving timed out"))


def _connection_cache_size(concurrency: int) -> int:
    """Idle connections kept for reuse. Over thousands of hosts a cache of -j connections
    keeps evicting ones that are about to be reused: 4 x -j gave 6% more files/s for 7% less
    CPU at -j 1024 over 2,000 hosts (benchmarks/README.md). Bounded by the open-files limit,
    leaving room for the downloads in flight."""
    wanted = 4 * concurrency
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY:
            wanted = min(wanted, soft - concurrency - 256)
    except (ImportError, ValueError, OSError):
        pass
    return max(16, wanted)
