"""any2dataset: the whole pipeline in one command, with img2dataset's argument names."""

import click
import orjson

from .. import all_in_one as api
from ..cli import CONTEXT_SETTINGS, EXIT_CODES_HELP, common_options
from ..errors import NothingSucceeded, UsageProblem


def _option(argument: api.Argument):
    names = [f"--{argument.name}"]
    if "_" in argument.name:
        names.append(f"--{argument.name.replace('_', '-')}")
    default = argument.default
    shown = "" if default is None else f" [default: {default}]"
    if argument.kind is bool:  # `--flag`, `--flag True` and `--flag False` all work, as with img2dataset
        return click.option(*names, argument.name, type=click.BOOL, is_flag=False, flag_value=True, default=None,
                            metavar="BOOL", help=argument.help + shown)
    kind = {int: int, float: float}.get(argument.kind, str)
    metavar = "A,B" if argument.kind is list else None
    return click.option(*names, argument.name, type=kind, default=None, metavar=metavar, help=argument.help + shown)


def _with_arguments(function):
    for argument in reversed(api.ARGUMENTS):
        function = _option(argument)(function)
    return function


def run_options(function):
    """--json and --pipe-form, as both all-in-one commands take them."""
    function = click.option("--pipe-form", is_flag=True,
                            help="Print the equivalent a2d-read | ... | a2d-write pipeline and exit.")(function)
    return click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")(function)


def show_report(report: dict, as_json: bool, console, hint: str = "") -> None:
    """The a2d-stats summary of the output folder (stderr, or JSON on stdout); a run that saved
    no sample is a failure, whatever each row says."""
    if as_json:
        click.echo(orjson.dumps(report).decode())
    elif not console.quiet:
        from ..stats import render_text

        click.echo(render_text(report), err=True, nl=False)
    if not report.get("statuses", {}).get("success"):
        raise NothingSucceeded(f"no sample saved: all {report.get('records', 0)} rows failed (see the summary{hint})")


@click.command(
    "any2dataset",
    short_help="download a URL list into a dataset, img2dataset-style",
    help="Download the files of url_list into a dataset in output_folder: img2dataset's arguments and "
         "defaults (--url_list, --output_folder, --processes_count, --thread_count, --output_format, ...), "
         "made from the stages of a2d-read | a2d-shard | a2d-fetch | a2d-subsample | a2d-write: with resizing "
         "that pipeline of processes; with --disable_all_reencoding the stages composed in one process per "
         "part of the shards (processes_count parts, thread_count downloads in flight each), so payloads "
         "are never turned into text. Arguments take underscores or dashes. Prints the a2d-stats "
         "summary of the output folder at the end.",
    epilog=f"\b\nExample:\n  any2dataset --url_list urls.parquet --input_format parquet --url_col url "
           f"--caption_col caption --output_format webdataset --output_folder out --processes_count 2\n\n"
           f"{EXIT_CODES_HELP}",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument("positional", nargs=-1, metavar="[URL_LIST [IMAGE_SIZE [OUTPUT_FOLDER ...]]]")
@run_options
@_with_arguments
@common_options
def main(positional, as_json, pipe_form, console, **values):
    given = {name: value for name, value in values.items() if value is not None}
    if pipe_form:
        from ..plan import command_line

        click.echo(command_line(api.img2dataset_plan(**api.with_positional(_typed(positional), given))))
        return
    report = api.download(*_typed(positional), progress=console.progress, quiet=console.quiet, on_note=console.warn,
                          **given)
    show_report(report, as_json, console, f"; is input_format right for {given.get('url_list')}?")


def _typed(positional: tuple[str, ...]) -> list:
    """Arguments given by position (`any2dataset urls.txt 256 out`, as img2dataset's command
    line takes them), converted as their options would be."""
    kinds = {argument.name: argument.kind for argument in api.ARGUMENTS}
    typed = []
    for name, text in zip(api.IMG2DATASET_ORDER, positional):
        kind = kinds[name]
        try:
            typed.append(click.BOOL.convert(text, None, None) if kind is bool else
                         kind(text) if kind in (int, float) else text)
        except (ValueError, click.BadParameter):
            raise UsageProblem(f"{name} (given by position) must be {kind.__name__}, not {text!r}") from None
    return typed + list(positional[len(typed):])  # (too many: download() says so)


if __name__ == "__main__":
    main()
