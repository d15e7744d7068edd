"""What every command shares: common options, progress, messages and the one error boundary."""

import functools
import io
import os
import re
import signal
import sys
import threading

import click
import orjson

from . import __version__
from . import record as rec
from .console import Console  # (the library's too: it imports no click)
from .errors import A2DError, ExitCode
from .record import ABORT
from .streams import RECORD_OUTPUTS, end_with_abort

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 bad input data, "
    "4 incomplete output, 5 the stage before failed, 130 interrupted."
)
# Commands whose standard output is a record stream: when one fails, its stream ends in an
# abort line, so the next stage does not take the cut-short stream for a whole one.
RECORD_STREAM_COMMANDS = frozenset({"a2d-read", "a2d-shard", "a2d-fetch", "a2d-subsample", "a2d-mix"})

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def shard_numbering_options(rows_help: str, start_help: str):
    """--number-sample-per-shard, --oom-shard-count and --start-shard, as a2d-shard and
    a2d-write both take them (with help in each command's words)."""

    def decorate(function):
        function = click.option("--start-shard", default=0, show_default=True, type=click.IntRange(0),
                                help=start_help)(function)
        function = click.option("--oom-shard-count", default=rec.SHARD_DIGITS, show_default=True,
                                type=click.IntRange(1),
                                help="Digits of shard numbers in keys and file names.")(function)
        return click.option("--number-sample-per-shard", default=rec.SAMPLES_PER_SHARD, show_default=True,
                            type=click.IntRange(1), help=rows_help)(function)

    return decorate


def output_option(help_text: str = "Where records go."):
    return click.option("-o", "--output", default="-", show_default=True, help=help_text)


def common_options(function):
    """--progress/--no-progress, --quiet, --debug and --version, for every command."""

    @click.option("--progress/--no-progress", default=None,
                  help="Show a progress bar on stderr (default: only when stderr is a terminal).")
    @click.option("-q", "--quiet", is_flag=True, help="Print no summary or notes on stderr; errors still show.")
    @click.option("--debug", is_flag=True, help="Show a traceback on errors.")
    @click.version_option(__version__, "--version", message="%(prog)s %(version)s")
    @functools.wraps(function)
    def wrapper(*args, progress, quiet, debug, **kwargs):
        name = click.get_current_context().command.name
        console = Console(name, quiet=quiet, progress=progress, debug=debug)
        return run_boundary(console, functools.partial(function, *args, console=console, **kwargs))

    return wrapper


on_error_option = click.option(
    "--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
    help="What to do with a bad input line: stop with an error, or skip it and report the count at exit.",
)

input_paths_argument = click.argument("inputs", nargs=-1, metavar="[INPUT]...")


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a command the way Ctrl-C does: cleanly, exit 130


def run_boundary(console: Console, work):
    """The one place where errors become messages and exit codes."""
    RECORD_OUTPUTS.clear()  # (commands run in one process one after another, as in tests)
    try:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        return work()
    except BrokenPipeError:
        # The reader went away (`| head`): end quietly. Point stdout at /dev/null so
        # the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(ExitCode.OK)
    except KeyboardInterrupt:
        _end_stream_with_abort(console, "interrupted")
        if console.debug:
            raise
        if not console.quiet:
            click.echo(f"{console.name}: interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except A2DError as error:
        _end_stream_with_abort(console, f"error: {error}", getattr(error, "origin", None))
        if console.debug:
            raise
        click.echo(f"{console.name}: error: {error}", err=True)
        sys.exit(error.exit_code)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as error:  # a bug or an unexpected environment problem
        _end_stream_with_abort(console, f"error: {type(error).__name__}: {error}")
        if console.debug:
            raise
        click.echo(f"{console.name}: error: {type(error).__name__}: {error} (--debug shows the traceback)",
                   err=True)
        sys.exit(ExitCode.ERROR)


def _end_stream_with_abort(console: Console, message: str, origin: str | None = None) -> None:
    """Tell the next stage of a pipe that this stream is cut short (record.ABORT), passing on
    the first failing stage's words (`origin`) when the failure came from upstream. Not on a
    terminal, where a person reads the error on stderr anyway."""
    try:
        end_with_abort(orjson.dumps({ABORT: origin or f"{console.name}: {message}"}) + b"\n",
                       default_stdout=console.name in RECORD_STREAM_COMMANDS)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # no output to speak of (closed, or replaced in a test runner)


class _OneBracketOption(click.Option):
    """An option whose help ends in one bracket: `[default: 256; x>=1]`, where click would add its
    own `[x>=1]` after a default written into the help text (options whose default is None)."""

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None:
            return None
        names, text = record
        return names, re.sub(r"\[([^\[\]]+)\]\s+\[([^\[\]]+)\]$", r"[\1; \2]", text)


def one_bracket_help(command_object: click.Command) -> click.Command:
    for param in command_object.params:
        if type(param) is click.Option:
            param.__class__ = _OneBracketOption
    return command_object


def command(name: str, summary: str, help_text: str, example: str):
    """A click command with our help layout: description, an example and the exit codes."""
    epilog = f"\b\nExample:\n  {example}\n\n{EXIT_CODES_HELP}"
    make = click.command(name, short_help=summary, help=help_text, epilog=epilog, context_settings=CONTEXT_SETTINGS)
    return lambda function: one_bracket_help(make(function))
