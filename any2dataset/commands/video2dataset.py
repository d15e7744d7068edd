"""a2d-video2dataset: the whole pipeline in one command, with video2dataset's arguments."""

import ast

import click
import orjson

from .. import video_all_in_one as api
from ..cli import command, common_options
from ..errors import UsageProblem
from .all_in_one import run_options, show_report

HELP = {
    "url_list": "A file, folder, glob or fsspec URL listing the videos (required).",
    "output_folder": "Output folder (local or fsspec URL).",
    "output_format": "files, webdataset, parquet, tfrecord or dummy.",
    "input_format": "txt, csv, tsv, tsv.gz, json, jsonl, parquet, ...",
    "encode_formats": "What to write, e.g. \"{'video': 'mp4', 'audio': 'm4a'}\".",
    "stage": "download (the other stages of video2dataset are not supported yet).",
    "url_col": "Column holding the URL.",
    "caption_col": "Column holding the caption (written as .txt).",
    "clip_col": "Column holding clips [[start, end], ...]: one sample per clip, keyed KEY_00000, ...",
    "save_additional_columns": "Other columns to keep in the metadata.",
    "enable_wandb": "Not supported: use a2d-stats --html for a report.",
    "wandb_project": "Not supported (see enable_wandb).",
    "incremental_mode": "incremental (skip finished shards) or overwrite.",
    "max_shard_retry": "Times a failed part is run again, skipping the shards it finished.",
    "tmp_dir": "Folder for temporary files (ffmpeg's work files).",
    "config": "default, a YAML file, or a mapping with subsampling, reading, storage and distribution.",
}
KINDS = {"enable_wandb": click.BOOL, "max_shard_retry": int}


def _with_arguments(function):
    for name in reversed(api.ORDER):
        default = api.SIGNATURE[name]
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        shown = "" if default is None else f" [default: {default}]"
        function = click.option(*names, name, type=KINDS.get(name, str), default=None,
                                help=HELP[name] + shown)(function)
    return function


@command("a2d-video2dataset", "download a video list into a dataset, video2dataset-style",
         "Download the videos of url_list into a dataset in output_folder with video2dataset's arguments "
         "(--url_list, --output_folder, --output_format, --input_format, --encode_formats, --url_col, "
         "--caption_col, --clip_col, --save_additional_columns, --incremental_mode, --tmp_dir) and config "
         "(subsampling, reading, storage, distribution), made from the stages a2d-read | a2d-shard | a2d-fetch "
         "| [a2d-subsample] | a2d-write. Arguments take underscores or dashes. Prints the a2d-stats summary "
         "of the output folder at the end.",
         "a2d-video2dataset --url_list videos.csv --caption_col caption --output_format webdataset "
         "--output_folder dataset --config config.yaml")
@click.argument("positional", nargs=-1, metavar="[URL_LIST [OUTPUT_FOLDER ...]]")
@run_options
@_with_arguments
@common_options
def main(positional, as_json, pipe_form, console, **values):
    given = {name: value for name, value in values.items() if value is not None}
    if isinstance(given.get("config"), str) and given["config"].lstrip().startswith("{"):
        given["config"] = _mapping(given["config"])
    if pipe_form:
        from ..plan import command_line

        click.echo(command_line(api.video2dataset_plan(**dict(zip(api.ORDER, positional)), **given)))
        return
    report = api.video2dataset(*positional, progress=console.progress, quiet=console.quiet, **given)
    show_report(report, as_json, console)


def _mapping(text: str) -> dict:
    """A config given inline, as Python or JSON text (video2dataset's command line takes it so)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise UsageProblem(f"config: not a mapping: {text[:60]!r}") from None
    return value


if __name__ == "__main__":
    main()
