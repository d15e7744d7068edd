"""Concurrent downloads behind a plain iterator interface.

HTTP goes through libcurl's multi interface (curl.py), which measured 2.9x
aiohttp's speed here, and aiohttp 7-20x httpx's (benchmarks/README.md). The
event loop runs in
a background thread; a reader thread feeds it input records; finished records
come back to the caller's thread through a queue, where hashing (which releases
the GIL) and the caller's own work (JSON encoding) run beside the network loop.

Credits shared by the three bound memory: at most `concurrency` requests in
flight plus `buffer` finished records waiting for a slow consumer; input is not
read further until a credit comes back, so a slow stdout slows the downloads.
Hand-offs between the threads are batched (one wake-up per turn of the loop):
per-record hand-offs cost more than the downloads (benchmarks/README.md).
"""

import asyncio
import collections
import gc
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

from .. import record as rec
from ..errors import UsageProblem
from . import dns, policy, sources
from .curl import CurlClient, Outcome, SpilledBody
from .guards import Guard, ascii_pin, is_literal_address
from .hosts import HostDown, SharedSlots, Slots
from .options import DOWN_SECONDS, RAMP_START, FetchOptions
from .pages import Media

_DONE = object()

try:  # uvloop measured 20% more downloads/s than asyncio's own loop (benchmarks/README.md)
    import uvloop

    _run_loop = uvloop.run
except ImportError:  # not on every platform
    _run_loop = asyncio.run


def needs_fetch(record: dict, retry_failed: bool) -> bool:
    """Records with a payload, and rows already settled, pass through untouched."""
    if record.get(rec.FILES):
        return False
    status = record.get("status")
    if status == "failed_to_download":
        return retry_failed
    return status not in ("failed_to_subsample", "filtered")


def fetch(records: Iterable[dict], options: FetchOptions | None = None) -> Iterator[dict]:
    """Download each record's `url`. Every record comes out once: in completion order,
    or in input order with `ordered`."""
    options = options or FetchOptions()
    if options.max_size > rec.MAX_PAYLOAD_BYTES:
        raise UsageProblem(f"max_size {options.max_size} is over {rec.MAX_PAYLOAD_BYTES}: a record is one JSON line "
                           f"and carries at most {rec.MAX_PAYLOAD_BYTES >> 20} MiB")
    # Thousands of short-lived objects per second: the cyclic collector's default pace
    # (every 700 allocations, scanning everything imported) took 11% of the CPU here.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 100_000), *thresholds[1:])
    credits = _Credits(options.in_flight_limit() + options.buffer_default() + options.lookahead_default())
    results: queue.SimpleQueue = queue.SimpleQueue()
    run = _Run(iter(records), options, credits, results)
    thread = threading.Thread(target=run.loop_thread, name="a2d-fetch-loop", daemon=True)
    thread.start()
    finish = _Finisher(options)
    waiting: dict[int, dict] = {}  # --ordered: finished records waiting for earlier ones
    next_seq = 0
    try:
        while True:
            batch = results.get()  # the records one turn of the event loop finished
            if batch is _DONE:
                break
            if options.ordered:
                waiting.update(batch)
                while next_seq in waiting:
                    credits.give(1)
                    yield finish(waiting.pop(next_seq))
                    next_seq += 1
            else:
                for _seq, record in batch:
                    yield finish(record)
                credits.give(len(batch))
                run.consumed(len(batch))
    finally:
        run.stop()
        gc.set_threshold(*thresholds)
    thread.join()
    if run.error is not None:
        raise run.error


class _Credits:
    """How many more input records may be taken: one per slot, given back in batches.
    (threading.Semaphore costs a Python-level lock dance per record; this is one C lock.)"""

    def __init__(self, count: int):
        self.count = count
        self.ready = threading.Condition(threading.Lock())

    def take(self) -> None:
        with self.ready:
            while self.count <= 0:
                self.ready.wait()
            self.count -= 1

    def give(self, count: int) -> None:
        with self.ready:
            self.count += count
            self.ready.notify()


class _Finisher:
    """Work done in the consumer's thread: hashes (hashlib releases the GIL, so this runs
    beside the network loop) and the --verify-hash check."""

    def __init__(self, options: FetchOptions):
        self.hash = options.hash
        self.verify = options.verify_hash

    def __call__(self, record: dict) -> dict:
        body = record.pop("_body", None)
        if body is None:
            return record
        if self.hash:
            record[self.hash] = _digest(self.hash, body)
        if self.verify:
            column, algorithm = self.verify
            expected = record.get(column)
            if expected:
                actual = record.get(algorithm) if algorithm == self.hash else _digest(algorithm, body)
                if actual.lower() != str(expected).strip().lower():
                    if isinstance(body, SpilledBody):
                        body.discard()
                    return rec.failure(record, "failed_to_download", "hash_mismatch",
                                       f"{algorithm} of the download is {actual}, {column} says {expected}")
        if isinstance(body, SpilledBody):  # read back now, one at a time, as the consumer takes it
            files = record[rec.FILES]
            for name, payload in files.items():
                if payload is body:
                    files[name] = body.take()
        return record


def _digest(algorithm: str, body) -> str:
    if not isinstance(body, SpilledBody):
        return policy.HASHES[algorithm](body).hexdigest()
    digest = policy.HASHES[algorithm]()
    for piece in body.pieces():
        digest.update(piece)
    return digest.hexdigest()


class _Run:
    def __init__(self, records: Iterator[dict], options: FetchOptions, credits: _Credits,
                 results: queue.SimpleQueue):
        self.records = records
        self.options = options
        self.credits = credits
        self.results = results
        # Hand-offs between threads are batched: one wake-up carries every record ready.
        self.inbox: collections.deque = collections.deque()
        self.drain_scheduled = False
        self.outbox: list[tuple[int, dict]] = []
        self.error: BaseException | None = None  # raised in the caller once in-flight work is out
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main: asyncio.Task | None = None
        self.guard = Guard(options.allowed_schemes, options.allowed_networks)
        self.robots_tokens = options.robots_tokens()
        self.disallowed = frozenset(d.lower() for d in options.disallowed_directives)
        pool = SharedSlots(*options.slot_pipe) if options.slot_pipe else None
        self.slots = Slots(options.in_flight_limit(), options.per_host or None, start=RAMP_START,
                           ramp_up=options.ramp_up, down_after=options.down_after, down_seconds=DOWN_SECONDS,
                           max_pause=options.max_retry_after, pool=pool, share=options.concurrency)
        self.pins = _pins(options.resolve)  # HOST:PORT -> addresses, from --resolve
        # Finished records the consumer has not taken yet. At `buffer` no request starts (the
        # input is still read ahead): a slow next stage holds back downloads, not just input.
        # (Not with --ordered: there the oldest record may still need a slot.)
        self.unconsumed = 0
        self.buffer = options.buffer_default()

    def loop_thread(self) -> None:
        try:
            _run_loop(self._main())
        except asyncio.CancelledError:
            pass
        except BaseException as error:  # report to the caller rather than die silently
            self.error = self.error or error
        finally:
            self.results.put(_DONE)

    def stop(self) -> None:
        """The consumer is gone: stop reading input and cancel the requests in flight."""
        self.stopping = True
        if self.loop is not None and self.main is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.main.cancel)
            except RuntimeError:
                pass  # the loop already ended
        self.credits.give(1)  # wake the reader if it waits for a slot

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.main = asyncio.current_task()
        options = self.options
        _allow_open_files(options.in_flight_limit())
        self.pending: set[asyncio.Task] = set()
        self.input_done = asyncio.Event()
        self.files = ThreadPoolExecutor(max_workers=min(options.concurrency, 32), thread_name_prefix="a2d-files")
        # Behind a proxy the proxy resolves and connects, so libcurl's open-socket check would
        # see only the proxy: every target name is then resolved here and its addresses checked.
        proxied = bool(options.proxy) or dns.proxy_in_environment()
        self.resolver = None if options.system_dns and not proxied else \
            dns.Resolver.from_system(list(options.dns_servers), cache_size=options.dns_cache,
                                     timeout=min(options.timeout, 5.0))
        if proxied and self.resolver is None:
            raise UsageProblem("behind a proxy a2d-fetch resolves every host name itself, to check its addresses, "
                               "and found no name server (/etc/resolv.conf): give one with --dns-server")
        self.curl = CurlClient(self.loop, options, self.guard, self.robots_tokens, self.disallowed,
                               own_dns=self.resolver is not None and not options.system_dns)
        self.media = Media(options, self._get, self.slots)  # video pages and streams (pages.py)
        try:
            reader = threading.Thread(target=self._read_input, name="a2d-fetch-input", daemon=True)
            reader.start()
            await self.input_done.wait()
            while self.pending:
                await asyncio.wait(set(self.pending))
            self._send_results()
        finally:
            self.media.close()
            self.curl.close()
            self.files.shutdown(wait=False, cancel_futures=True)

    def _read_input(self) -> None:
        """Runs in its own thread: input may block (a pipe), the event loop must not."""
        try:
            for item in enumerate(self.records):
                self.credits.take()
                if self.stopping:
                    return
                self.inbox.append(item)
                if not self.drain_scheduled:
                    self.drain_scheduled = True
                    self.loop.call_soon_threadsafe(self._drain)
        except BaseException as error:
            self.error = error
        finally:
            try:
                self.loop.call_soon_threadsafe(self.input_done.set)
            except RuntimeError:
                pass

    def _drain(self) -> None:
        self.drain_scheduled = False  # first: a record added from now on schedules another drain
        inbox = self.inbox
        while inbox:
            seq, record = inbox.popleft()
            task = self.loop.create_task(self._process(seq, record))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _process(self, seq: int, record: dict) -> None:
        try:
            result = await self._fetch_record(record, seq)
        except Exception as error:  # a bug must not lose the record
            kind, message = policy.exception_kind(error)
            result = rec.failure(record, "failed_to_download", kind, message)
        if not self.outbox:
            self.loop.call_soon(self._send_results)  # once per turn of the loop
        self.outbox.append((seq, result))
        if not self.options.ordered:
            self.unconsumed += 1
            if self.unconsumed >= self.buffer:
                self.slots.held = True

    def consumed(self, count: int) -> None:
        """Called from the consumer's thread: `count` records were taken."""
        try:
            self.loop.call_soon_threadsafe(self._on_consumed, count)
        except RuntimeError:
            pass  # the loop has ended

    def _on_consumed(self, count: int) -> None:
        self.unconsumed -= count
        if self.slots.held and self.unconsumed < self.buffer:
            self.slots.held = False
            self.slots.resume()

    def _send_results(self) -> None:
        if self.outbox:
            self.results.put(self.outbox)
            self.outbox = []

    async def _fetch_record(self, record: dict, position: int) -> dict:
        if not needs_fetch(record, self.options.retry_failed):
            return record
        url, scheme, kind, message = self.guard.check(record.get("url"))
        if kind is not None:
            return rec.failure(record, "failed_to_download", kind, message)
        if scheme in ("http", "https"):
            if self.media.wants(url):
                return await self.media.fetch(record, url, position)
            return await self._fetch_http(record, url, position)
        started = time.monotonic()
        try:
            if scheme == "data":
                body, mime = sources.read_data_url(url, self.options.max_size)
            else:
                body = await self.loop.run_in_executor(self.files, sources.read_fsspec, url, self.options.max_size)
                mime = None
        except sources.SourceError as error:
            return _failed(record, error.kind, str(error), time.monotonic() - started, 0)
        if not body:
            return _failed(record, "no_content", "the file is empty", time.monotonic() - started, 0)
        return _succeeded(record, body, mime, url if scheme != "data" else "data:", time.monotonic() - started, 0)

    async def _fetch_http(self, record: dict, url: str, position: int) -> dict:
        outcome, final_url, attempt = await self._get(url, position)
        if outcome.kind is None:
            record["http_status"] = outcome.status
            result = _succeeded(record, outcome.body, outcome.content_type, final_url, outcome.seconds, attempt)
            result["final_url"] = final_url if final_url != url else None
            return result
        if outcome.status is not None:
            record["http_status"] = outcome.status
        return _failed(record, outcome.kind, outcome.message, outcome.seconds, attempt)

    async def _get(self, url: str, position: int, deadline: float | None = None) -> tuple[Outcome, str, int]:
        """`url` with its redirects and retries: the last attempt's outcome (its `seconds` those
        of every attempt), the final URL and the number of retries. Each attempt within
        `deadline` (default --deadline)."""
        options = self.options
        attempt = 0
        seconds = 0.0  # in requests only: waiting for a slot, DNS or a retry does not count
        while True:
            outcome, final_url = await self._follow(url, position, deadline)
            seconds += outcome.seconds
            outcome.seconds = seconds
            if outcome.kind is None or outcome.final or attempt >= options.retries or \
                    not policy.retryable(outcome.kind, outcome.status):
                return outcome, final_url, attempt
            wait = policy.backoff(attempt, options.backoff, options.max_backoff)
            if outcome.retry_after is not None:  # the server said when: believe it, within reason
                wait = min(outcome.retry_after, options.max_retry_after)
            await asyncio.sleep(wait)  # holding no slot meanwhile
            attempt += 1

    async def _follow(self, url: str, position: int, deadline: float | None = None) -> tuple[Outcome, str]:
        """One attempt: the request and its redirects, each hop checked by the guard and
        given its own host's turn; the deadline covers the hops' time in libcurl."""
        options = self.options
        deadline = options.deadline if deadline is None else deadline
        spent = 0.0
        origin = _origin(url)
        for hop in range(options.max_redirects + 1):
            # --header values (API keys, tokens) go to the first URL's host only, unless
            # --location-trusted, as curl does; libcurl itself drops only Authorization and Cookie.
            send_headers = options.location_trusted or _origin(url) == origin
            outcome = await self._request(url, deadline - spent, position, send_headers)
            spent += outcome.seconds
            outcome.seconds = spent
            if outcome.location is None:
                return outcome, url
            if hop == options.max_redirects:
                break
            url, _scheme, kind, message = self.guard.check(urljoin(url, outcome.location), redirected=True)
            if kind is not None:
                return Outcome(kind=kind, message=message, seconds=spent, final=True), url
            if spent >= deadline:
                return Outcome(kind="timeout", message=f"deadline of {deadline:g}s exceeded in redirects",
                               seconds=spent), url
        return Outcome(kind="too_many_redirects",
                       message=f"more than {options.max_redirects} redirects (--max-redirects)",
                       seconds=spent, final=True), url

    async def _request(self, url: str, deadline: float, position: int, send_headers: bool = True) -> Outcome:
        """One request: its host's name looked up, then its slot (hosts.py), then libcurl."""
        try:
            parts = urlsplit(url)
            name, port = (parts.hostname or ""), parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError as error:
            return Outcome(kind="invalid_url", message=f"invalid URL: {error}", final=True)
        key = f"{name}:{port}"
        addresses = None
        if self.resolver is not None and not is_literal_address(name):
            try:
                addresses = self.pins.get(key) or self.resolver.cached(name) or await self.resolver.resolve(name)
            except dns.DnsError as error:
                return Outcome(kind="dns", message=str(error), final=error.permanent)
            # libcurl connects to these and no others: check them here, as its open-socket hook would.
            addresses = tuple(address for address in addresses if self.guard.address_allowed(address))
            if not addresses:
                return Outcome(kind="address_denied", final=True,
                               message=f"{name} resolves only to link-local or cloud metadata addresses "
                                       f"(see --allow-address)")
        try:
            await self.slots.acquire(key, position)
        except HostDown as down:
            return Outcome(kind="host_down", message=str(down), final=True)
        outcome = None
        try:
            outcome = await self.curl.get(url, key, addresses, deadline, send_headers)
        finally:
            if outcome is None:
                self.slots.release(key, None)
            else:
                self.slots.release(key, outcome.kind, outcome.status, outcome.retry_after, outcome.message,
                                   outcome.answered)
        return outcome


def _pins(entries) -> dict[str, tuple[str, ...]]:
    """--resolve's HOST:PORT:ADDRESS[,ADDRESS] entries (as curl takes them) by HOST:PORT
    (a host name outside ASCII in IDNA, as requests name it)."""
    pins = {}
    for entry in entries:
        host, _, rest = ascii_pin(entry.lstrip("+")).partition(":")
        port, _, addresses = rest.partition(":")
        pins[f"{host.lower()}:{port}"] = tuple(a.strip().strip("[]") for a in addresses.split(",") if a.strip())
    return pins


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or ""), parts.port
    except ValueError:
        return "", url, None


def _allow_open_files(concurrency: int) -> None:
    """Each download in flight holds a socket, and up to 4 x -j idle connections are kept for
    reuse: raise the soft limit on open files towards the hard one, as far as -j needs."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 5 * concurrency + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else
                                                        min(hard, wanted), hard))
    except (ImportError, ValueError, OSError):
        pass


def _succeeded(record: dict, body: bytes, content_type: str | None, final_url: str, seconds: float,
               retries: int) -> dict:
    head = body if isinstance(body, bytes) else body.head(64)  # enough to sniff the file type
    extension, mime = policy.extension_and_mime(final_url, content_type, head)
    record[rec.FILES] = {rec.payload_name(extension, record): body}
    record["_body"] = body  # for the hash, computed in the consumer's thread
    record["status"] = "success"
    record["error_kind"] = None
    record["error_message"] = None
    record["mime"] = mime
    record["size"] = len(body)
    record["fetch_seconds"] = round(seconds, 4)
    record["retries"] = retries
    return record


def _failed(record: dict, kind: str, message: str, seconds: float, retries: int) -> dict:
    record["fetch_seconds"] = round(seconds, 4)
    record["retries"] = retries
    return rec.failure(record, "failed_to_download", kind, message)
