"""a2d-fetch over several worker processes on one machine.

One Python process tops out around 3,000-4,000 downloads/s here: the event loop,
per-record work, hashing and JSON encoding share one interpreter lock. Worker
processes (each an ordinary in-process a2d-fetch) take the work in parallel. This
parent checks the input, so errors keep their positions, and deals each line to the
worker that owns its host, so politeness and DNS are per host for the whole command. The workers write their output straight to the shared
standard output, whole lines at a time under a lock (lockf on a shared file), so
no line is split and no byte is copied through the parent. They report their
counts on a pipe of their own. Benchmarks: benchmarks/README.md.
"""

import dataclasses
import fcntl
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable

import xxhash

from ..errors import A2DError
from ..stats.counting import RecordCounter
from ..streams import STREAM_OWNED_BY_PARENT
from .options import FetchOptions

OPTIONS_VARIABLE = "A2D_FETCH_WORKER_OPTIONS"  # options travel in the environment, not in argv (ps)
LOCK_VARIABLE = "A2D_FETCH_WORKER_LOCK_FD"
REPORT_VARIABLE = "A2D_FETCH_WORKER_REPORT_FD"
_END = None


class WorkerFailed(A2DError):
    pass


def options_to_environment(options: FetchOptions) -> str:
    values = dataclasses.asdict(options)
    values["allowed_schemes"] = sorted(values["allowed_schemes"])
    return json.dumps(values)


def options_from_environment() -> FetchOptions:
    values = json.loads(os.environ[OPTIONS_VARIABLE])
    values["allowed_schemes"] = frozenset(values["allowed_schemes"])
    for name in ("disallowed_directives", "allowed_networks", "verify_hash", "resolve", "dns_servers", "slot_pipe"):
        if values[name] is not None:
            values[name] = tuple(values[name])
    return FetchOptions(**values)


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


class Report:
    """A worker's running Tally, written a line at a time to its report pipe."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, tally: Tally) -> None:
        os.write(self.fd, tally.to_line())


def worker_streams() -> tuple[SharedOutput, Report]:
    return (SharedOutput(sys.stdout.fileno(), int(os.environ[LOCK_VARIABLE])),
            Report(int(os.environ[REPORT_VARIABLE])))


def fetch_in_workers(pairs: Iterable[tuple[bytes, dict]], options: FetchOptions, workers: int,
                     on_tally: Callable[[Tally], None]) -> None:
    """Fetch the records of `pairs` (line, record) in `workers` processes writing to our
    stdout. Each host belongs to one worker (by a hash of its name), so its --per-host
    cap, its pauses and its DNS answers are the whole command's, and no name is looked
    up twice (with --per-host 0, by URL: one host's records then use every worker).
    `on_tally` is given the workers' total Tally as it grows."""
    pool = _Workers(options, workers, on_tally)
    chunks = _Chunks(pool.deal, workers)
    by_host = bool(options.per_host)  # with no cap there is no politeness to keep whole: spread by URL
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
        pool.finish()
    pool.check()


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


class _Workers:
    """The worker processes, each fed by a thread from its own queue."""

    def __init__(self, options: FetchOptions, workers: int, on_tally: Callable[[Tally], None]):
        self.count = workers
        self.on_tally = on_tally
        # -j is shared by the workers, as tokens in a pipe that any of them may draw from (hosts.py);
        # hosts are not (each host is one worker's). Each worker's share of -j sizes its buffers.
        self.slot_pipe = _slot_pipe(options.concurrency)
        per_worker = dataclasses.replace(options, concurrency=max(1, -(-options.concurrency // workers)),
                                         body_memory=options.body_memory_default() // workers,
                                         shared_concurrency=options.concurrency if self.slot_pipe else None,
                                         slot_pipe=self.slot_pipe)
        self.lock_file = tempfile.TemporaryFile()
        self.environment = dict(os.environ, **{OPTIONS_VARIABLE: options_to_environment(per_worker),
                                               LOCK_VARIABLE: str(self.lock_file.fileno()),
                                               STREAM_OWNED_BY_PARENT: "1"})
        # Workers import this very package, installed or not (a checkout run through bin/).
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.processes: list[subprocess.Popen] = []
        self.queues: list[queue.Queue] = []
        self.threads: list[threading.Thread] = []
        self.totals: dict[int, Tally] = {}  # per worker process
        self.totals_lock = threading.Lock()

    def _start(self) -> None:
        command = [sys.executable, "-m", "any2dataset.fetch", "--worker", "--quiet"]
        for _ in range(self.count):
            report_read, report_write = os.pipe()
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, bufsize=0,
                env=dict(self.environment, **{REPORT_VARIABLE: str(report_write)}),
                pass_fds=(self.lock_file.fileno(), report_write, *(self.slot_pipe or ())),
            )
            os.close(report_write)
            dealt = queue.Queue(maxsize=16)  # short, so the parent's memory stays small
            self.processes.append(process)
            self.queues.append(dealt)
            for target, args in ((self._feed, (process, dealt)), (self._listen, (process, report_read))):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self.threads.append(thread)

    def _feed(self, process: subprocess.Popen, dealt: queue.Queue) -> None:
        fd = process.stdin.fileno()
        try:
            while (chunk := dealt.get()) is not _END:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
        except OSError:
            pass  # the worker ended: its exit status says why
        finally:
            try:
                process.stdin.close()
            except OSError:
                pass

    def _listen(self, process: subprocess.Popen, report_fd: int) -> None:
        with open(report_fd, "rb") as reports:
            for line in reports:
                with self.totals_lock:
                    self.totals[process.pid] = Tally.from_line(line)
                    self.on_tally(Tally.total(self.totals.values()))

    def _stop_reason(self) -> BaseException | None:
        ended = [p.poll() for p in self.processes]
        failed = [code for code in ended if code not in (None, 0)]
        if failed:
            return WorkerFailed(f"a fetch worker process ended with status {failed[0]}")
        if ended and all(code == 0 for code in ended):
            return BrokenPipeError("every worker has ended: the output was closed")
        return None

    def deal(self, worker: int, chunk: bytes) -> None:
        if not self.processes:  # start lazily: empty input starts nothing
            self._start()
        while True:
            try:
                self.queues[worker].put(chunk, timeout=0.5)
                return
            except queue.Full:
                reason = self._stop_reason()
                if reason is not None:
                    raise reason

    def terminate(self) -> None:
        for process in self.processes:
            try:
                process.send_signal(signal.SIGTERM)
            except OSError:
                pass

    def finish(self) -> None:
        """No more input: each worker finishes what it has and writes it out."""
        for dealt, process in zip(self.queues, self.processes):
            _put_end(dealt, process)
        for thread in self.threads:
            thread.join()
        for process in self.processes:
            process.wait()
        self.lock_file.close()
        for fd in self.slot_pipe or ():
            os.close(fd)

    def check(self) -> None:
        failed = [p.returncode for p in self.processes if p.returncode != 0]
        if failed:
            raise WorkerFailed(f"a fetch worker process ended with status {failed[0]}")


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


def _put_end(dealt: queue.Queue, process: subprocess.Popen) -> None:
    while True:
        try:
            dealt.put(_END, timeout=0.5)
            return
        except queue.Full:
            if process.poll() is not None:
                return  # nobody left to take it
