"""a2d-fetch over several worker processes on one machine (a workers.Pool).

One Python process tops out around 3,000-4,000 downloads/s here: the event loop,
per-record work, hashing and JSON encoding share one interpreter lock. Worker
processes (each running the in-process `fetch`) take the work in parallel. This
parent checks the input, so errors keep their positions, and deals each line to the
worker that owns its host, so politeness and DNS are per host for the whole command.
The workers write their output straight to the shared standard output, whole lines
at a time under a lock (lockf on a shared file), so no line is split and no byte is
copied through the parent. They send their counts to the parent as they go.
Benchmarks: benchmarks/README.md.
"""

import dataclasses
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import xxhash

from .. import record as rec
from ..stats.counting import RecordCounter
from ..workers import Pool
from .options import FetchOptions


class SharedOutput:
    """A worker's stdout, shared with the other workers: each write is whole lines under
    the workers' common lock. Small lines are gathered first; a big line (a payload)
    goes out on its own, so no large buffers are built and freed (measured: that cost
    more than the system calls it saves)."""

    LIMIT = 1 << 16

    def __init__(self, fd: int, lock_fd: int):
        self.fd = fd
        self.lock_fd = lock_fd
        self.small = bytearray()
        self.guard = threading.Lock()  # the writer's own flushing thread calls flush() too

    def write(self, line: bytes) -> None:
        with self.guard:
            if len(line) >= self.LIMIT:
                self._write_out()
                self._locked_write(line)
                return
            self.small += line
            if len(self.small) >= self.LIMIT:
                self._write_out()

    def flush(self) -> None:
        with self.guard:
            self._write_out()

    def _write_out(self) -> None:
        if self.small:
            self._locked_write(self.small)
            self.small = bytearray()

    def _locked_write(self, data) -> None:
        view = memoryview(data)
        fcntl.lockf(self.lock_fd, fcntl.LOCK_EX)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        finally:
            fcntl.lockf(self.lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.flush()


class Tally(RecordCounter):
    """What a run of a2d-fetch did, for its progress line and closing summary: the shared
    record counter, with the total of sizes only (no histogram: a microsecond a record)."""

    def __init__(self):
        super().__init__(sizes="total")


def fetch_in_workers(pairs: Iterable[tuple[bytes, dict]], options: FetchOptions, workers: int,
                     on_tally: Callable[[Tally], None]) -> None:
    """Fetch the records of `pairs` (line, record) in `workers` processes writing to our
    stdout. Each host belongs to one worker (by a hash of its name), so its --per-host
    cap, its pauses and its DNS answers are the whole command's, and no name is looked
    up twice (with --per-host 0, by URL: one host's records then use every worker).
    `on_tally` is given the workers' total Tally as it grows."""
    by_host = bool(options.per_host)  # with no cap there is no politeness to keep whole: spread by URL
    with _Shared(options, workers) as shared:
        totals = _Totals(workers, on_tally)
        pool = Pool(_fetch_worker, workers, args=(shared.options, shared.lock_fd), name="a2d-fetch worker",
                    on_message=totals.update, pass_fds=shared.fds())
        chunks = _Chunks(pool.send_to, workers)
        interrupted = False
        try:
            for line, record in pairs:
                chunks.add(_worker_of(record.get("url"), workers, by_host), line)
        except KeyboardInterrupt:
            interrupted = True
            pool.terminate()  # Ctrl-C reached them too, but a SIGTERM to us did not
            raise
        finally:
            if not interrupted:  # the lines read before an input error are fetched too
                try:
                    chunks.close()
                except BaseException:
                    pass  # the workers are gone; the error that ended the input is what to report
            chunks.stop()
            pool.close()
        pool.check()


def _fetch_worker(inbox: Iterator[bytes], send: Callable[[Tally], None], options: FetchOptions, lock_fd: int) -> None:
    """A worker process: chunks of checked lines in, records out to the shared stdout, its
    running Tally sent to the parent now and then."""
    from ..streams import RecordWriter
    from .engine import fetch

    tally = Tally()
    reported = time.monotonic()
    try:
        with RecordWriter(stream=SharedOutput(1, lock_fd)) as out:
            for record in fetch(_records(inbox), options):
                out.write(record)
                tally.add(record)
                if time.monotonic() - reported > 0.25:
                    send(tally)
                    reported = time.monotonic()
    finally:
        try:
            send(tally)
        except OSError:
            pass  # the parent is gone


def _records(chunks: Iterable[bytes]) -> Iterator[dict]:
    for chunk in chunks:
        for line in chunk.splitlines():
            yield rec.parse(line)


class _Totals:
    """The workers' latest Tallies, added up for `on_tally` as each arrives."""

    def __init__(self, workers: int, on_tally: Callable[[Tally], None]):
        self.latest = [Tally() for _ in range(workers)]
        self.on_tally = on_tally
        self.lock = threading.Lock()

    def update(self, worker: int, tally: Tally) -> None:
        with self.lock:
            self.latest[worker] = tally
            self.on_tally(Tally.total(self.latest))


class _Shared:
    """What the workers share: the lock on stdout (a file for lockf) and -j, as tokens in a
    pipe that any of them may draw from (hosts.py); hosts are not (each host is one worker's).
    Each worker's share of -j sizes its buffers."""

    def __init__(self, options: FetchOptions, workers: int):
        self.slot_pipe = _slot_pipe(options.concurrency)
        self.options = dataclasses.replace(
            options, concurrency=max(1, -(-options.concurrency // workers)),
            body_memory=options.body_memory_default() // workers,
            shared_concurrency=options.concurrency if self.slot_pipe else None, slot_pipe=self.slot_pipe)
        self.lock_file = tempfile.TemporaryFile()
        self.lock_fd = self.lock_file.fileno()

    def fds(self) -> tuple[int, ...]:
        return (self.lock_fd, *(self.slot_pipe or ()))

    def __enter__(self) -> "_Shared":
        return self

    def __exit__(self, *exc) -> None:
        self.lock_file.close()
        for fd in self.slot_pipe or ():
            os.close(fd)


def _worker_of(url, workers: int, by_host: bool = True) -> int:
    """The worker that owns this URL's host: the text between '//' and the path, without
    user info, in lower case (no full parse: this runs for every input line)."""
    if workers == 1 or not isinstance(url, str):
        return 0
    if not by_host:
        return xxhash.xxh64_intdigest(url.encode("utf-8", "replace")) % workers
    rest = url.partition("//")[2]
    for stop in "/?#":
        rest = rest.partition(stop)[0]
    host = rest.rpartition("@")[2].lower()
    if not host.isascii():  # as it is requested (guards.py): bücher.example and xn--bcher-kva.example are one host
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return xxhash.xxh64_intdigest(host.encode("utf-8", "replace")) % workers


class _Chunks:
    """Input lines dealt in chunks, one list per worker (one hand-off per 64 lines, not per
    line: thread hand-offs cost more than the lines). A watchdog sends a chunk that waited
    50 ms, so a slow input is not held back."""

    LINES = 64
    WAIT = 0.05

    def __init__(self, deal: Callable[[int, bytes], None], workers: int):
        self.deal = deal
        self.lines: list[list[bytes]] = [[] for _ in range(workers)]
        self.started = [0.0] * workers
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.problem: BaseException | None = None
        self.watchdog = threading.Thread(target=self._watch, name="a2d-fetch-chunks", daemon=True)
        self.watchdog.start()

    def add(self, worker: int, line: bytes) -> None:
        if self.problem is not None:
            raise self.problem
        with self.lock:
            lines = self.lines[worker]
            if not lines:
                self.started[worker] = time.monotonic()
            lines.append(line)
            if len(lines) >= self.LINES:
                self._send(worker)

    def close(self) -> None:
        with self.lock:
            for worker in range(len(self.lines)):
                self._send(worker)

    def stop(self) -> None:
        self.stopping.set()

    def _send(self, worker: int) -> None:
        if self.lines[worker]:
            chunk, self.lines[worker] = b"".join(self.lines[worker]), []
            self.deal(worker, chunk)

    def _watch(self) -> None:
        while not self.stopping.wait(self.WAIT):
            with self.lock:
                now = time.monotonic()
                for worker, lines in enumerate(self.lines):
                    if lines and now - self.started[worker] >= self.WAIT:
                        try:
                            self._send(worker)
                        except BaseException as error:  # seen by the next add()
                            self.problem = error
                            return


def _slot_pipe(concurrency: int) -> tuple[int, int] | None:
    """A pipe holding `concurrency` tokens (bytes), its read end non-blocking; None when the
    system will not give a pipe that large (the workers then split -j between them)."""
    read_fd, write_fd = os.pipe()
    try:
        if concurrency > 65536:  # the default size
            fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), concurrency)
        os.set_blocking(write_fd, False)
        written = os.write(write_fd, b"j" * concurrency)
        os.set_blocking(write_fd, True)
        if written != concurrency:
            raise OSError("the pipe is too small")
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    os.set_blocking(read_fd, False)
    return read_fd, write_fd
