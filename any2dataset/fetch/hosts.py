"""Politeness per host: how many downloads one host gets at once, and when it must wait.

Every host starts with `start` downloads in flight and earns one more with each answer,
up to `cap` (TCP's slow start: the limit doubles per round of answers), so a small
server is never hit by a burst of hundreds of connections while a big one reaches its
cap within a few round trips. Signs of overload halve the limit again (a timeout, a
connection that failed or was reset, 429, 503). 429 and 503 also pause the host: for its
Retry-After (at most --max-retry-after), else 1 s doubling with each refusal in a row;
only that host waits, the run goes on. A host that failed to answer `down_after` times
in a row (no connection, or no data within --timeout) is taken as down for
`down_seconds`: its waiting downloads fail at once (`host_down`) instead of each
waiting out the timeout, then one download probes it again.

Downloads wait here before they take one of the run's slots (-j), so a busy host never
holds slots that other hosts could use, and the wait never counts toward a timeout.
"""

import asyncio
import collections
import time

OVERLOAD_KINDS = frozenset({"timeout", "connect", "reset", "truncated"})
NO_ANSWER_KINDS = frozenset({"timeout", "connect"})
PAUSE_STATUSES = frozenset({429, 503})


class HostDown(Exception):
    pass


class _Host:
    __slots__ = ("limit", "active", "waiters", "paused_until", "refusals", "silent", "down_until", "last_problem",
                 "wake")

    def __init__(self, start: float):
        self.limit = start
        self.active = 0
        self.waiters: collections.deque = collections.deque()
        self.paused_until = 0.0
        self.refusals = 0  # 429/503 in a row
        self.silent = 0  # attempts in a row that got no answer at all
        self.down_until = 0.0
        self.last_problem = ""
        self.wake: asyncio.TimerHandle | None = None


class HostLimits:
    """Per-host admission. `cap` None: no cap and no ramp-up (pauses and down hosts still
    apply)."""

    def __init__(self, cap: int | None, start: int = 2, ramp_up: bool = True, down_after: int = 3,
                 down_seconds: float = 60.0, max_pause: float = 60.0, remembered: int = 100_000):
        self.cap = cap
        self.start = min(start, cap) if (cap and ramp_up) else (cap or float("inf"))
        self.down_after = down_after
        self.down_seconds = down_seconds
        self.max_pause = max_pause
        self.remembered = remembered
        self.hosts: collections.OrderedDict[str, _Host] = collections.OrderedDict()

    def _host(self, key: str) -> _Host:
        host = self.hosts.get(key)
        if host is None:
            host = self.hosts[key] = _Host(self.start)
            if len(self.hosts) > self.remembered:
                self._forget_idle()
        return host

    def _forget_idle(self) -> None:
        """Keep the state of at most `remembered` hosts: the oldest idle ones go first."""
        for key in list(self.hosts)[: len(self.hosts) // 10 or 1]:
            host = self.hosts[key]
            if not host.active and not host.waiters:
                del self.hosts[key]

    async def enter(self, key: str) -> None:
        """Wait until `key` may have one more download in flight. Raises HostDown."""
        host = self._host(key)
        self.hosts.move_to_end(key)
        now = time.monotonic()
        if host.down_until > now:
            raise HostDown(host.last_problem)
        if not host.waiters and host.active < host.limit and host.paused_until <= now:
            host.active += 1
            return
        turn = asyncio.get_running_loop().create_future()
        host.waiters.append(turn)
        self._schedule(key, host)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.leave(key, None)  # given a slot while being cancelled: hand it on
            raise

    def leave(self, key: str, kind: str | None, status: int | None = None, retry_after: float | None = None,
              message: str | None = None) -> None:
        """A download to `key` ended: `kind` is its error kind (None: the host answered)."""
        host = self.hosts.get(key)
        if host is None:
            return
        host.active -= 1
        now = time.monotonic()
        if status in PAUSE_STATUSES:
            host.refusals += 1
            pause = retry_after if retry_after is not None else min(self.max_pause, 2.0 ** (host.refusals - 1))
            host.paused_until = max(host.paused_until, now + min(pause, self.max_pause))
            host.limit = max(1, host.limit // 2) if self.cap else host.limit
        elif kind in OVERLOAD_KINDS:
            host.limit = max(min(self.start, 2), host.limit // 2) if self.cap else host.limit
        else:
            host.refusals = 0
            if self.cap and host.limit < self.cap:
                host.limit += 1
        if kind in NO_ANSWER_KINDS and status is None:
            host.silent += 1
            if self.down_after and host.silent >= self.down_after:
                host.down_until = now + self.down_seconds
                host.silent = self.down_after - 1  # after the break, one more silence puts it down again
                host.last_problem = (f"{key} did not answer {self.down_after} requests in a row (last: {message}); "
                                     f"its requests fail for {self.down_seconds:g}s")
                self._fail_waiters(host)
        elif kind is None or status is not None:
            host.silent = 0
        self._schedule(key, host)

    def _fail_waiters(self, host: _Host) -> None:
        while host.waiters:
            turn = host.waiters.popleft()
            if not turn.done():
                turn.set_exception(HostDown(host.last_problem))

    def _schedule(self, key: str, host: _Host) -> None:
        """Let waiters in while the host has room; if it is paused, come back when it ends."""
        now = time.monotonic()
        if host.paused_until > now:
            if host.waiters and host.wake is None:
                loop = asyncio.get_running_loop()
                host.wake = loop.call_later(host.paused_until - now, self._woken, key)
            return
        while host.waiters and host.active < host.limit:
            turn = host.waiters.popleft()
            if not turn.done():
                host.active += 1
                turn.set_result(None)

    def _woken(self, key: str) -> None:
        host = self.hosts.get(key)
        if host is not None:
            host.wake = None
            self._schedule(key, host)

    def waiting(self) -> int:
        return sum(len(host.waiters) for host in self.hosts.values())
