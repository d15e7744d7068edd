"""Which request starts next: at most -j in flight in all, at most a host's limit to each
host, the oldest record first among the hosts that have room.

Politeness per host. Every host starts with `start` requests in flight and earns one more
with each answer, up to `cap` (TCP's slow start: the limit doubles per round of answers),
so a small server is never hit by a burst of hundreds of connections while a big one
reaches its cap within a few round trips. Signs of overload halve the limit again (no
connection, no answer within --timeout, 429, 503); a body that stalls or breaks off is
that file's problem, not the host's. 429 and 503 also pause the host: for its Retry-After
(at most --max-retry-after), else 1 s doubling with each refusal in a row; only that host
waits, the run goes on. A host that left `down_after` requests in a row without an answer
is taken as down for `down_seconds`: its waiting requests fail at once (`host_down`)
instead of each waiting out the timeout, then the next request probes it again.

One queue. A request waits in its host's queue, not in a run-wide one, so a busy host
never holds slots (or a place in line) that other hosts could use. When a slot frees, it
goes to the oldest waiting record (by input position, so retries and redirects come first)
whose host has room: input order, less what politeness holds back. Waiting never counts
toward a timeout: requests reach the network only once they have their slot.

Worker processes (a2d-fetch -w N) share -j: each host is one worker's, so a list of few
hosts may keep one worker busy and the others idle. The command's -j slots are tokens in a
pipe (`SharedSlots`, as make's jobserver); a request takes one before it starts and gives it
back when it ends, so any worker may use all of -j and all of them together never more. A
worker within its share of -j hands a freed token straight to its next waiting request (no
system call on a long list); over its share, it puts the token back for whichever worker
reads it first.
"""

import asyncio
import collections
import heapq
import itertools
import os
import time

NO_ANSWER_KINDS = frozenset({"timeout", "connect"})
TOKENS_AT_ONCE = 8  # tokens of the shared -j a worker reads from the pipe in one go
PAUSE_STATUSES = frozenset({429, 503})


class HostDown(Exception):
    pass


class _Host:
    __slots__ = ("limit", "active", "waiters", "paused_until", "refusals", "silent", "down_until", "problem", "wake",
                 "queued")

    def __init__(self, start: float):
        self.limit = start
        self.active = 0
        self.waiters: list = []  # heap of (input position, tie-breaker, future)
        self.paused_until = 0.0
        self.refusals = 0  # 429/503 in a row
        self.silent = 0  # requests in a row that got no answer at all
        self.down_until = 0.0
        self.problem = ""
        self.wake: asyncio.TimerHandle | None = None
        self.queued = False  # in the run-wide heap of hosts that have room and waiters


class SharedSlots:
    """The -j slots of a2d-fetch's worker processes: a pipe holding one byte per free slot. Its
    read end is non-blocking (set by the parent, for every worker); it holds every token, so
    giving one back never blocks."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd = read_fd
        self.write_fd = write_fd

    def take(self, count: int) -> int:
        """Up to `count` tokens; 0 when the pipe is empty."""
        try:
            return len(os.read(self.read_fd, count))
        except BlockingIOError:
            return 0

    def give(self, count: int) -> None:
        os.write(self.write_fd, b"j" * count)


class Slots:
    """`total` slots for the run; per host, `cap` (None: no cap and no ramp-up; pauses and
    down hosts still apply). With `pool` (worker processes), a slot also needs a token of the
    command's shared -j; `share` is this worker's share of it."""

    def __init__(self, total: int, cap: int | None, start: int = 2, ramp_up: bool = True, down_after: int = 3,
                 down_seconds: float = 60.0, max_pause: float = 60.0, remembered: int = 100_000,
                 pool: SharedSlots | None = None, share: int | None = None):
        self.total = total
        self.pool = pool
        self.share = share or total
        self.spare = 0  # tokens of the pool held for requests about to start
        self.watching = False  # the pool's pipe is watched: requests wait for a token
        self.giving_back = False  # the spare tokens go back at the end of this turn of the loop
        self.used = 0
        self.cap = cap
        self.start = min(start, cap) if (cap and ramp_up) else (cap or float("inf"))
        self.down_after = down_after
        self.down_seconds = down_seconds
        self.max_pause = max_pause
        self.remembered = remembered
        self.hosts: collections.OrderedDict[str, _Host] = collections.OrderedDict()
        self.ready: list = []  # heap of (oldest waiting position, tie-breaker, host key)
        self.ties = itertools.count()
        self.held = False  # no new slot while set (the engine's output buffer is full)

    async def acquire(self, key: str, position: int) -> None:
        """Wait for a slot for a request to host `key` of the record at input `position`.
        Raises HostDown."""
        host = self._host(key)
        now = time.monotonic()
        if host.down_until > now:
            raise HostDown(host.problem)
        if not self.held and self.used < self.total and not host.waiters and host.active < host.limit \
                and host.paused_until <= now and (self.pool is None or self._token()):
            host.active += 1
            self.used += 1
            return
        turn = asyncio.get_running_loop().create_future()
        heapq.heappush(host.waiters, (position, next(self.ties), turn))
        self._offer(key, host)
        self._dispatch()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.release(key, None)  # given a slot while being cancelled: hand it on
            raise

    def release(self, key: str, kind: str | None, status: int | None = None, retry_after: float | None = None,
                message: str | None = None, answered: bool = False) -> None:
        """A request to `key` ended: `kind` is its error kind (None: a whole answer), `answered`
        whether the host began to answer."""
        self.used -= 1
        if self.pool is not None:
            if self.used < self.share:
                self.spare += 1  # within this worker's share: for its next request
            else:
                self.pool.give(1)  # over it: for whichever worker needs it
        host = self.hosts.get(key)
        if host is not None:
            host.active -= 1
            self._learn(key, host, kind, status, retry_after, message, answered)
            self._offer(key, host)
        self._dispatch()

    def _learn(self, key, host: _Host, kind, status, retry_after, message, answered) -> None:
        now = time.monotonic()
        if status in PAUSE_STATUSES:
            host.refusals += 1
            pause = retry_after if retry_after is not None else 2.0 ** (host.refusals - 1)
            host.paused_until = max(host.paused_until, now + min(pause, self.max_pause))
            if self.cap:
                host.limit = max(1, host.limit // 2)
        elif kind in NO_ANSWER_KINDS and not answered:
            if self.cap:
                host.limit = max(min(self.start, 2), host.limit // 2)
        else:
            host.refusals = 0
            if self.cap and host.limit < self.cap:
                host.limit += 1
        if kind in NO_ANSWER_KINDS and not answered and status is None:
            host.silent += 1
            if self.down_after and host.silent >= self.down_after:
                host.down_until = now + self.down_seconds
                host.silent = self.down_after - 1  # after the break, one more silence puts it down again
                host.problem = (f"{key} did not answer {self.down_after} requests in a row (last: {message}); "
                                f"its requests fail for {self.down_seconds:g}s")
                while host.waiters:
                    turn = heapq.heappop(host.waiters)[2]
                    if not turn.done():
                        turn.set_exception(HostDown(host.problem))
        elif kind is None or answered or status is not None:
            host.silent = 0

    def _offer(self, key: str, host: _Host) -> None:
        """Put the host in line for the next free slot if it has waiters and room; if it is
        paused, come back when the pause ends."""
        while host.waiters and host.waiters[0][2].done():  # cancelled meanwhile
            heapq.heappop(host.waiters)
        if not host.waiters or host.queued or host.active >= host.limit:
            return
        now = time.monotonic()
        if host.paused_until > now:
            if host.wake is None:
                host.wake = asyncio.get_running_loop().call_later(host.paused_until - now, self._woken, key)
            return
        heapq.heappush(self.ready, (host.waiters[0][0], next(self.ties), key))
        host.queued = True

    def resume(self) -> None:
        self._dispatch()

    def _dispatch(self, woken: bool = False) -> None:
        """Start the waiting requests that may start. With a pool, a worker over its share of
        -j reads a token only when the pipe wakes it (`woken`), as it wakes the others: a token
        it just gave back is not simply read again."""
        while not self.held and self.used < self.total and self.ready:
            if self.pool is not None and not self.spare:
                if self.used >= self.share and not woken:
                    break
                self.spare = self.pool.take(min(self.total - self.used, max(len(self.ready), TOKENS_AT_ONCE)))
                if not self.spare:
                    break  # every slot of the command is in use: wait for a token
            key = heapq.heappop(self.ready)[2]
            host = self.hosts.get(key)
            if host is None:
                continue
            host.queued = False
            while host.waiters and host.waiters[0][2].done():
                heapq.heappop(host.waiters)
            if not host.waiters or host.active >= host.limit:
                continue
            if host.paused_until > time.monotonic():
                self._offer(key, host)  # sets the wake-up
                continue
            turn = heapq.heappop(host.waiters)[2]
            host.active += 1
            self.used += 1
            if self.pool is not None:
                self.spare -= 1
            turn.set_result(None)
            self._offer(key, host)
        if self.pool is not None:
            self._settle()

    def _token(self) -> bool:
        """Take a token of the pool for a request about to start (not over this worker's
        share, nor ahead of requests already waiting for one). A few are read at once: the
        ones left over serve the next requests of this turn of the loop, then go back."""
        if self.ready or self.used >= self.share:
            return False
        if not self.spare:
            self.spare = self.pool.take(min(TOKENS_AT_ONCE, self.share - self.used))
            if not self.spare:
                return False
            self._give_back_soon()
        self.spare -= 1
        return True

    def _settle(self) -> None:
        """Give back the tokens no request is about to use (at the end of this turn of the
        loop: requests that start meanwhile take them, with no system call); watch the pipe
        while requests that could start wait for one."""
        if self.spare:
            self._give_back_soon()
        waiting = not self.held and self.used < self.total and bool(self.ready)
        if waiting != self.watching:
            loop = asyncio.get_running_loop()
            if waiting:
                loop.add_reader(self.pool.read_fd, self._dispatch, True)
            else:
                loop.remove_reader(self.pool.read_fd)
            self.watching = waiting

    def _give_back_soon(self) -> None:
        if not self.giving_back:
            self.giving_back = True
            asyncio.get_running_loop().call_soon(self._give_back)

    def _give_back(self) -> None:
        self.giving_back = False
        if self.spare:
            self.pool.give(self.spare)
            self.spare = 0

    def _woken(self, key: str) -> None:
        host = self.hosts.get(key)
        if host is not None:
            host.wake = None
            self._offer(key, host)
            self._dispatch()

    def _host(self, key: str) -> _Host:
        host = self.hosts.get(key)
        if host is None:
            host = self.hosts[key] = _Host(self.start)
            if len(self.hosts) > self.remembered:
                self._forget_idle()
        else:
            self.hosts.move_to_end(key)
        return host

    def _forget_idle(self) -> None:
        """Keep the state of at most about `remembered` hosts: the least recent idle ones go."""
        for key in list(itertools.islice(self.hosts, len(self.hosts) // 10 or 1)):
            host = self.hosts[key]
            if not host.active and not host.waiters and host.wake is None:
                del self.hosts[key]

    def waiting(self) -> int:
        return sum(len(host.waiters) for host in self.hosts.values())
