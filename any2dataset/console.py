"""Messages and progress bars on standard error, for commands and for library runs
(`download()` in worker processes) alike: no click here."""

import sys
from collections.abc import Iterable, Iterator


class Console:
    """Messages and progress on stderr, never stdout."""

    def __init__(self, name: str, quiet: bool = False, progress: bool | None = None, debug: bool = False):
        self.name = name
        self.quiet = quiet
        self.debug = debug
        # tqdm only when a person is watching, unless asked for.
        self.progress = (sys.stderr.isatty() and not quiet) if progress is None else progress

    def info(self, message: str) -> None:
        if not self.quiet:
            print(f"{self.name}: {message}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(f"{self.name}: warning: {message}", file=sys.stderr, flush=True)

    def track(self, records: Iterable, unit: str = "rec", total: int | None = None,
              position: int | None = None) -> Iterator:
        """`position`: the bar's line, for processes sharing one terminal."""
        if not self.progress:
            return iter(records)
        from tqdm import tqdm

        return tqdm(records, desc=self.name, unit=unit, total=total, file=sys.stderr, dynamic_ncols=True,
                    position=position)

    def skipped(self, reader) -> None:
        """At the end of the input: say how many bad input lines --on-error skip dropped, and
        that there was no record at all (a pipe of empty stages otherwise ends in silence)."""
        if reader.skipped:
            self.warn(f"skipped {reader.skipped} bad input line(s); first: {reader.first_skipped}")
        elif getattr(reader, "count", None) == 0:
            self.warn("no records in the input")

    def waiting_on_terminal(self, paths, what: str = "records") -> None:
        if (not paths or list(paths) == ["-"]) and sys.stdin.isatty():
            self.warn(f"waiting for {what} on standard input (Ctrl-D to end, -h for help)")
