"""Exception types and the exit codes every command documents.

Every error a user can see is one of these: the library raises them; only the command
boundary (cli.py) turns them into one-line messages and exit codes. (Modules may keep
private exceptions for their own control flow, such as a host found down or a DNS retry,
as long as none escapes them.)
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # runtime failure: I/O, network setup, a bug
    USAGE = 2  # bad options or arguments (click uses 2 too)
    BAD_INPUT = 3  # malformed input data: bad JSON, wrong field type, missing column
    INCOMPLETE = 4  # input ended before some shards were complete; they were not published
    UPSTREAM = 5  # the stage before this one in the pipe failed (its stream ends in an abort line)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class A2DError(Exception):
    """Base of every error a command reports as one line."""

    exit_code = ExitCode.ERROR


class UsageProblem(A2DError):
    """Options that cannot work together, or that do not fit the input (e.g. a missing column)."""

    exit_code = ExitCode.USAGE


class BadInput(A2DError):
    """Malformed input data. `source` and `line` say where, when known."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, what: str, source: str | None = None, line: int | None = None):
        super().__init__(what)
        self.what = what
        self.source = source
        self.line = line

    def located(self, source: str, line: int) -> "BadInput":
        """The same error, placed in `source` (and at `line` unless it knows its own line)."""
        if self.source is not None:
            return self
        return type(self)(self.what, source, self.line if self.line is not None else line)

    def __str__(self) -> str:
        if self.source is None:
            return self.what
        if self.line is None:
            return f"{self.source}: {self.what}"
        return f"{self.source}:{self.line}: {self.what}"


class IncompleteOutput(A2DError):
    """Input ended while shards were still missing rows."""

    exit_code = ExitCode.INCOMPLETE


class UpstreamFailed(A2DError):
    """The stream ended with another stage's abort line: that stage failed mid-stream, so the
    end of this input is not the end of the data (record.ABORT)."""

    exit_code = ExitCode.UPSTREAM

    def __init__(self, message: str, origin: str):
        super().__init__(message)
        self.origin = origin  # the failing stage's own abort text, passed on unchanged


class NothingSucceeded(A2DError):
    """A run that ended without a single sample: an empty list, or every row failed."""

    exit_code = ExitCode.ERROR


class MissingExtra(A2DError):
    """An optional feature needs a package that is not installed."""

    def __init__(self, feature: str, extra: str, package: str):
        super().__init__(
            f"{feature} needs {package}: install it with pip install 'any2dataset[{extra}]'"
        )


class ModelFailed(A2DError):
    """A model stage cannot run at all (its weights cannot be loaded): every record would fail."""


class WorkerFailed(A2DError):
    """A worker process (workers.Pool) failed: the message names the worker; the exit code is
    the worker's own (a bad input line found there is still exit 3)."""

    def __init__(self, message: str, exit_code: int = ExitCode.ERROR):
        super().__init__(message)
        self.exit_code = exit_code


class StageFailed(A2DError):
    """A stage process of the all-in-one's pipeline failed (it said why on stderr itself)."""

    def __init__(self, stage: str, status: int):
        super().__init__(f"{stage} exited with status {status}")
        self.exit_code = status if status in iter(ExitCode) else ExitCode.ERROR


class MissingTool(A2DError):
    """A program outside Python (ffmpeg) is needed and not found, or lacks an encoder."""
