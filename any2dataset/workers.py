"""Worker processes: the one way the package starts, feeds, hears from and stops them.

A `Pool` runs `work(inbox, send, *args)` in each of N fresh Python processes: `inbox`
yields what the parent `send_to`s that worker (until the parent closes), `send` passes
a picklable message back (the parent's `on_message(worker, message)` gets it in a
listener thread). `run_tasks` builds on it: a function over items, results in order or
as they come.

Each worker is `python -c` importing this module, with the parent's sys.path, so it
imports this very package whether installed or run from a checkout; `work` and `args`
travel pickled on the worker's inbox, never in argv or the environment. (Not
multiprocessing's spawn: it would run the parent's __main__ again in each child, and
our bin/ launchers and users' scripts calling download() have no __main__ guard.)
Workers inherit stdout and stderr, and may be given more descriptors (`pass_fds`,
same numbers). A worker's failure is one message naming it (WorkerFailed, with the
worker's exit code); Ctrl-C and SIGTERM end a worker quietly with 130: the parent
reports the interruption once.
"""

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, Pipe

from .errors import A2DError, ExitCode, WorkerFailed

_BOOT = ("import sys; from multiprocessing.connection import Connection; inbox = Connection(int(sys.argv[1]), "
         "writable=False); sys.path[:] = inbox.recv(); from any2dataset.workers import _serve; "
         "_serve(inbox, Connection(int(sys.argv[2]), readable=False))")
_RESULT, _FAILED = 0, 1
_ENDED = object()  # run_tasks: a worker ended (its results all came before)


def available_cores() -> int:
    """The cores this process may use (containers, taskset): what `-w 0` means in every command."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Pool:
    """`count` worker processes running `work(inbox, send, *args)`, started on the first
    `send_to` (so empty input starts nothing). Use as a context manager: on an error or
    Ctrl-C in the parent the workers are stopped (SIGTERM), and always waited for."""

    def __init__(self, work: Callable, count: int, *, args: tuple = (), name: str = "worker",
                 on_message: Callable[[int, object], None] = lambda worker, message: None,
                 on_end: Callable[[int, WorkerFailed | None], None] = lambda worker, failure: None,
                 pass_fds: Iterable[int] = (), stdin=subprocess.DEVNULL, stdout=None, environment: dict | None = None):
        self.work, self.count, self.args, self.name = work, count, args, name
        self.on_message, self.on_end = on_message, on_end
        self.pass_fds = tuple(pass_fds)
        self.stdin, self.stdout = stdin, stdout
        self.environment = environment
        self.processes: list[subprocess.Popen] = []
        self.inboxes: list[Connection | None] = []
        self.listeners: list[threading.Thread] = []
        self.failures: list[WorkerFailed] = []  # in the order they were heard of
        self.stopping = False

    def start(self) -> None:
        if self.processes:
            return
        for worker in range(self.count):
            inbox_read, inbox = Pipe(duplex=False)
            outbox, outbox_write = Pipe(duplex=False)
            fds = (inbox_read.fileno(), outbox_write.fileno())
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, *map(str, fds)], stdin=self.stdin, stdout=self.stdout,
                pass_fds=fds + self.pass_fds, env=dict(os.environ, **self.environment) if self.environment else None)
            inbox_read.close()
            outbox_write.close()
            self.processes.append(process)
            self.inboxes.append(inbox)
            listener = threading.Thread(target=self._listen, args=(worker, outbox), daemon=True,
                                        name=f"{self.name}-{worker + 1}")
            listener.start()
            self.listeners.append(listener)
            inbox.send(sys.path)
            inbox.send((self.work, self.args))

    def send_to(self, worker: int, item) -> None:
        """Give `item` to one worker; blocks while its inbox pipe is full. Raises the worker's
        WorkerFailed if it failed, BrokenPipeError if it ended well (its output was closed)."""
        self.start()
        try:
            self.inboxes[worker].send(item)
        except OSError:
            self.listeners[worker].join()  # it has ended: hear why
            self.check()
            raise BrokenPipeError(f"{self.describe(worker)} has ended: the output was closed") from None

    def close(self) -> None:
        """No more input: each worker finishes what it has; wait for them all."""
        for inbox in self.inboxes:
            inbox.close()
        for listener in self.listeners:
            listener.join()

    def terminate(self) -> None:
        """Stop every worker now (SIGTERM: a worker ends as on Ctrl-C, quietly)."""
        self.stopping = True
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.send_signal(signal.SIGTERM)
                except OSError:
                    pass

    def check(self) -> None:
        """Raise the first failure heard of."""
        if self.failures:
            raise self.failures[0]

    def describe(self, worker: int) -> str:
        return f"{self.name} {worker + 1} of {self.count}" + (
            f" (pid {self.processes[worker].pid})" if worker < len(self.processes) else "")

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.terminate()
        self.close()

    def _listen(self, worker: int, outbox: Connection) -> None:
        failure = None
        with outbox:
            while True:
                try:
                    kind, *message = outbox.recv()
                except (EOFError, OSError):
                    break
                if kind == _RESULT:
                    self.on_message(worker, message[0])
                else:
                    failure = message
        error = self._failure(worker, self.processes[worker].wait(), failure)
        if error is not None:
            self.failures.append(error)
        self.on_end(worker, error)

    def _failure(self, worker: int, code: int, failure: list | None) -> WorkerFailed | None:
        if code == 0 or (self.stopping and code in (ExitCode.INTERRUPTED, -signal.SIGTERM)):
            return None
        if failure is not None:
            text, code = failure
            error = WorkerFailed(f"{self.describe(worker)}: {text}", code)
        elif code < 0:
            error = WorkerFailed(f"{self.describe(worker)} was killed by signal {-code}", ExitCode.ERROR)
        else:
            error = WorkerFailed(f"{self.describe(worker)} ended with status {code}", code)
        return error


def run_tasks(function: Callable, items: Iterable, workers: int, *, ordered: bool = True, in_flight: int = 4,
              setup: Callable | None = None, setup_args: tuple = (), name: str = "worker") -> Iterator:
    """`function(state, item)` for each item, in `workers` processes (`state` is
    `setup(*setup_args)`, made once per worker); the results in input order or as they
    come. At most `in_flight` items per worker are out at once, which bounds memory."""
    results: queue.Queue = queue.Queue()
    pool = Pool(_serve_tasks, workers, args=(function, setup, setup_args), name=name,
                on_message=lambda worker, message: results.put((worker, message)),
                on_end=lambda worker, failure: results.put((worker, failure or _ENDED)))
    outstanding = [0] * workers
    waiting: dict[int, object] = {}  # results that came before an earlier one (ordered)
    sent = given = 0

    def take() -> None:
        worker, message = results.get()
        if isinstance(message, WorkerFailed):
            raise message
        if message is _ENDED:
            if outstanding[worker]:
                raise WorkerFailed(f"{pool.describe(worker)} ended before its work was done")
            return
        number, value = message
        outstanding[worker] -= 1
        waiting[number] = value

    with pool:
        for item in items:
            while sum(outstanding) >= workers * in_flight:
                take()
                while (given in waiting) if ordered else waiting:
                    yield waiting.pop(given if ordered else next(iter(waiting)))
                    given += 1
            worker = outstanding.index(min(outstanding))
            pool.send_to(worker, (sent, item))
            outstanding[worker] += 1
            sent += 1
        while given < sent:
            if not ((given in waiting) if ordered else waiting):
                take()
                continue
            yield waiting.pop(given if ordered else next(iter(waiting)))
            given += 1
    pool.check()


def _serve_tasks(inbox: Iterator, send: Callable, function: Callable, setup: Callable | None,
                 setup_args: tuple) -> None:
    state = setup(*setup_args) if setup is not None else None
    for number, item in inbox:
        send((number, function(state, item)))


def _serve(inbox: Connection, outbox: Connection) -> None:
    """A worker process: run the work given on the inbox; report a failure in one message."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        work, args = inbox.recv()
        work(_messages(inbox), lambda message: outbox.send((_RESULT, message)), *args)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)  # quietly: the parent says it once
    except BrokenPipeError:  # our stdout was closed (`| head`): end quietly, as a command does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitCode.OK)
    except A2DError as error:
        _report(outbox, str(error), error.exit_code)
    except Exception as error:  # noqa: BLE001 - a bug or an unexpected environment problem, told to the parent
        _report(outbox, f"{type(error).__name__}: {error}", ExitCode.ERROR)


def _report(outbox: Connection, text: str, code: int) -> None:
    try:
        outbox.send((_FAILED, text, int(code)))
    except OSError:
        pass
    sys.exit(code)


def _messages(inbox: Connection) -> Iterator:
    while True:
        try:
            yield inbox.recv()
        except EOFError:
            return


def _interrupt(signum, frame):
    raise KeyboardInterrupt
