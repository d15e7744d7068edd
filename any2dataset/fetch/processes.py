"""a2d-fetch over several worker processes on one machine.

One Python process tops out around 3,000-4,000 downloads/s here: the event loop,
per-record work, hashing and JSON encoding share one interpreter lock. Worker
processes (each an ordinary in-process a2d-fetch) take the work in parallel. This
parent checks the input, so errors keep their positions, and deals the lines to
whichever worker is ready. The workers write their output straight to the shared
standard output, whole lines at a time under a lock (lockf on a shared file), so
no line is split and no byte is copied through the parent. They report their
counts on a pipe of their own. Benchmarks: benchmarks/README.md.
"""

import collections
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

from ..errors import A2DError
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
    for name in ("disallowed_directives", "allowed_networks", "verify_hash", "resolve"):
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


@dataclasses.dataclass
class Tally:
    """What a run of a2d-fetch did, for its progress line and closing summary."""

    records: int = 0
    successes: int = 0
    bytes: int = 0
    kinds: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, record: dict) -> None:
        self.records += 1
        if record.get("status") == "success":
            self.successes += 1
            self.bytes += record.get("size") or 0
        elif record.get("error_kind"):
            self.kinds[record["error_kind"]] += 1

    def to_line(self) -> bytes:
        return json.dumps([self.records, self.successes, self.bytes, self.kinds]).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> "Tally":
        records, successes, size, kinds = json.loads(line)
        return cls(records, successes, size, collections.Counter(kinds))

    @classmethod
    def total(cls, tallies: Iterable["Tally"]) -> "Tally":
        result = cls()
        for tally in tallies:
            result.records += tally.records
            result.successes += tally.successes
            result.bytes += tally.bytes
            result.kinds.update(tally.kinds)
        return result


class Report:
    """A worker's running Tally, written a line at a time to its report pipe."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, tally: Tally) -> None:
        os.write(self.fd, tally.to_line())


def worker_streams() -> tuple[SharedOutput, Report]:
    return (SharedOutput(sys.stdout.fileno(), int(os.environ[LOCK_VARIABLE])),
            Report(int(os.environ[REPORT_VARIABLE])))


def fetch_in_workers(lines: Iterable[bytes], options: FetchOptions, workers: int,
                     on_tally: Callable[[Tally], None]) -> None:
    """Fetch the records of `lines` in `workers` processes writing to our stdout.
    `on_tally` is given the workers' total Tally as it grows."""
    per_worker = dataclasses.replace(options, concurrency=max(1, -(-options.concurrency // workers)))
    lock_file = tempfile.TemporaryFile()
    environment = dict(os.environ, **{OPTIONS_VARIABLE: options_to_environment(per_worker),
                                      LOCK_VARIABLE: str(lock_file.fileno())})
    # Workers import this very package, installed or not (a checkout run through bin/).
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "any2dataset.fetch", "--worker", "--quiet"]
    dealt: queue.Queue = queue.Queue(maxsize=workers * 16)  # short, so no worker hoards lines
    processes: list[subprocess.Popen] = []
    threads: list[threading.Thread] = []
    totals: dict[int, Tally] = {}  # per worker process
    totals_lock = threading.Lock()

    def feed(process: subprocess.Popen) -> None:
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

    def listen(process: subprocess.Popen, report_fd: int) -> None:
        with open(report_fd, "rb") as reports:
            for line in reports:
                with totals_lock:
                    totals[process.pid] = Tally.from_line(line)
                    on_tally(Tally.total(totals.values()))

    def start_worker() -> None:
        report_read, report_write = os.pipe()
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, bufsize=0, env=dict(environment, **{REPORT_VARIABLE: str(report_write)}),
            pass_fds=(lock_file.fileno(), report_write),
        )
        os.close(report_write)
        processes.append(process)
        for target, args in ((feed, (process,)), (listen, (process, report_read))):
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            threads.append(thread)

    def stop_reason() -> BaseException | None:
        ended = [p.poll() for p in processes]
        failed = [code for code in ended if code not in (None, 0)]
        if failed:
            return WorkerFailed(f"a fetch worker process ended with status {failed[0]}")
        if ended and all(code == 0 for code in ended):
            return BrokenPipeError("every worker has ended: the output was closed")
        return None

    def deal(chunk: bytes) -> None:
        if not processes:  # spawn lazily: empty input starts nothing
            for _ in range(workers):
                start_worker()
        while True:
            try:
                dealt.put(chunk, timeout=0.5)
                return
            except queue.Full:
                reason = stop_reason()
                if reason is not None:
                    raise reason

    chunks = _Chunks(deal)
    interrupted = False
    try:
        for line in lines:
            chunks.add(line)
    except KeyboardInterrupt:
        interrupted = True
        for process in processes:  # Ctrl-C reached them too, but a SIGTERM to us did not
            try:
                process.send_signal(signal.SIGTERM)
            except OSError:
                pass
        raise
    finally:
        if not interrupted:  # the lines read before an input error are fetched too
            try:
                chunks.close()
            except BaseException:
                pass  # the workers are gone; the error that ended the input is what to report
        chunks.stop()
        # No more input: each worker finishes what it has and writes it out.
        for _ in processes:
            _put_end(dealt, processes)
        for thread in threads:
            thread.join()
        for process in processes:
            process.wait()
        lock_file.close()
    failed = [p.returncode for p in processes if p.returncode != 0]
    if failed:
        raise WorkerFailed(f"a fetch worker process ended with status {failed[0]}")


class _Chunks:
    """Input lines dealt in chunks (one hand-off per 64 lines, not per line: thread
    hand-offs cost more than the lines). A watchdog sends a chunk that waited 50 ms,
    so a slow input is not held back."""

    LINES = 64
    WAIT = 0.05

    def __init__(self, deal: Callable[[bytes], None]):
        self.deal = deal
        self.lines: list[bytes] = []
        self.started = 0.0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.problem: BaseException | None = None
        self.watchdog = threading.Thread(target=self._watch, name="a2d-fetch-chunks", daemon=True)
        self.watchdog.start()

    def add(self, line: bytes) -> None:
        if self.problem is not None:
            raise self.problem
        with self.lock:
            if not self.lines:
                self.started = time.monotonic()
            self.lines.append(line)
            if len(self.lines) >= self.LINES:
                self._send()

    def close(self) -> None:
        with self.lock:
            self._send()

    def stop(self) -> None:
        self.stopping.set()

    def _send(self) -> None:
        if self.lines:
            chunk, self.lines = b"".join(self.lines), []
            self.deal(chunk)

    def _watch(self) -> None:
        while not self.stopping.wait(self.WAIT):
            with self.lock:
                if self.lines and time.monotonic() - self.started >= self.WAIT:
                    try:
                        self._send()
                    except BaseException as error:  # seen by the next add()
                        self.problem = error
                        return


def _put_end(dealt: queue.Queue, processes: list) -> None:
    while True:
        try:
            dealt.put(_END, timeout=0.5)
            return
        except queue.Full:
            if all(p.poll() is not None for p in processes):
                return  # nobody left to take it
