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
import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from .. import record as rec
from . import policy, sources
from .curl import CurlClient, Outcome
from .guards import Guard
from .options import FetchOptions

_DONE = object()
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

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
    credits = _Credits(options.concurrency + (options.buffer or options.concurrency))
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
    finally:
        run.stop()
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
            record[self.hash] = policy.HASHES[self.hash](body).hexdigest()
        if self.verify:
            column, algorithm = self.verify
            expected = record.get(column)
            if expected:
                actual = record.get(algorithm) if algorithm == self.hash else \
                    policy.HASHES[algorithm](body).hexdigest()
                if actual.lower() != str(expected).strip().lower():
                    return rec.failure(record, "failed_to_download", "hash_mismatch",
                                       f"{algorithm} of the download is {actual}, {column} says {expected}")
        return record


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
        self.host_slots: dict[str, list] = {}

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
        self.in_flight = asyncio.Semaphore(options.concurrency)
        self.pending: set[asyncio.Task] = set()
        self.input_done = asyncio.Event()
        self.files = ThreadPoolExecutor(max_workers=min(options.concurrency, 32), thread_name_prefix="a2d-files")
        self.curl = CurlClient(self.loop, options, self.guard, self.robots_tokens, self.disallowed)
        try:
            reader = threading.Thread(target=self._read_input, name="a2d-fetch-input", daemon=True)
            reader.start()
            await self.input_done.wait()
            while self.pending:
                await asyncio.wait(set(self.pending))
            self._send_results()
        finally:
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
            result = await self._fetch_record(record)
        except Exception as error:  # a bug must not lose the record
            kind, message = policy.exception_kind(error)
            result = rec.failure(record, "failed_to_download", kind, message)
        if not self.outbox:
            self.loop.call_soon(self._send_results)  # once per turn of the loop
        self.outbox.append((seq, result))

    def _send_results(self) -> None:
        if self.outbox:
            self.results.put(self.outbox)
            self.outbox = []

    async def _fetch_record(self, record: dict) -> dict:
        if not needs_fetch(record, self.options.retry_failed):
            return record
        url = record.get("url")
        problem = self.guard.problem(url)
        if problem is not None:
            return rec.failure(record, "failed_to_download", *problem)
        # The guard has parsed the URL already: the scheme is what stands before the colon.
        scheme = "file" if url.startswith("/") else url.partition(":")[0].lower()
        started = time.monotonic()
        if scheme in ("http", "https"):
            return await self._fetch_http(record, url, started)
        try:
            if scheme == "data":
                body, mime = sources.read_data_url(url, self.options.max_size)
            else:
                body = await self.loop.run_in_executor(self.files, sources.read_fsspec, url, self.options.max_size)
                mime = None
        except sources.SourceError as error:
            return _failed(record, error.kind, str(error), started, 0)
        return _succeeded(record, body, mime, url if scheme != "data" else "data:", started, 0)

    async def _fetch_http(self, record: dict, url: str, started: float) -> dict:
        options = self.options
        attempt = 0
        while True:
            if options.per_host:
                async with self._host_slot(url), self.in_flight:
                    outcome = await self._attempt(url)
            else:
                async with self.in_flight:
                    outcome = await self._attempt(url)
            if outcome.kind is None:
                record["http_status"] = outcome.status
                result = _succeeded(record, outcome.body, outcome.content_type, outcome.final_url, started, attempt)
                result["final_url"] = outcome.final_url if outcome.final_url != url else None
                return result
            if attempt >= options.retries or not policy.retryable(outcome.kind, outcome.status):
                if outcome.status is not None:
                    record["http_status"] = outcome.status
                return _failed(record, outcome.kind, outcome.message, started, attempt)
            wait = policy.backoff(attempt, options.backoff, options.max_backoff)
            if outcome.retry_after is not None:  # the server said when: believe it, within reason
                wait = min(outcome.retry_after, options.max_retry_after)
            await asyncio.sleep(wait)  # holding no slot meanwhile
            attempt += 1

    @contextlib.asynccontextmanager
    async def _host_slot(self, url: str):
        """--per-host: at most that many requests in flight to one host."""
        host = urlsplit(url).hostname or ""
        entry = self.host_slots.get(host)
        if entry is None:
            entry = self.host_slots[host] = [asyncio.Semaphore(self.options.per_host), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self.host_slots[host]

    async def _attempt(self, url: str) -> Outcome:
        """One try, redirects included: libcurl holds it to the deadline, the idle watchdog
        (curl.py) to the read timeout."""
        return await self.curl.get(url)


def _succeeded(record: dict, body: bytes, content_type: str | None, final_url: str, started: float,
               retries: int) -> dict:
    extension, mime = policy.extension_and_mime(final_url, content_type, body)
    record[rec.FILES] = {extension: body}
    record["_body"] = body  # for the hash, computed in the consumer's thread
    record["status"] = "success"
    record["error_kind"] = None
    record["error_message"] = None
    record["mime"] = mime
    record["size"] = len(body)
    record["fetch_seconds"] = round(time.monotonic() - started, 4)
    record["retries"] = retries
    return record


def _failed(record: dict, kind: str, message: str, started: float, retries: int) -> dict:
    record["fetch_seconds"] = round(time.monotonic() - started, 4)
    record["retries"] = retries
    return rec.failure(record, "failed_to_download", kind, message)
