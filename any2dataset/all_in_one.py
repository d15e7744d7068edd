"""`any2dataset.download()` and the `any2dataset` command: img2dataset's arguments, our stages.

The arguments, their names and defaults are img2dataset's (any2dataset's and
video2dataset's where they add some). They are translated into the arguments of the
stage commands (`stage_commands`), which also gives the equivalent pipeline

    a2d-read | a2d-shard | a2d-fetch -w P | [a2d-subsample -w P] | a2d-write

Downloading only (disable_all_reencoding), those arguments are parsed by the stage
commands themselves and their library functions run composed in one process per part
(`processes_count` parts, each `a2d-shard --part I/P` of the shards, as the README's
xargs recipe does): the same stages, but payloads go from download to shard file as
bytes, never as base64 JSON through a pipe: a quarter of the pipeline's CPU. With
resizing, the stages run as the pipeline of processes above, where a2d-subsample's
worker processes keep the cores busy; in one process per part they measured 25% slower
(benchmarks/README.md).
Arguments that would change nothing here (wandb, Spark or Ray distributors) are
refused with a message rather than silently ignored.
"""

import ast
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import orjson

from .errors import A2DError, BadInput, ExitCode, NothingSucceeded, UsageProblem


@dataclass(frozen=True)
class Argument:
    name: str
    default: object
    help: str
    kind: type = str


# img2dataset's download() signature, in its order (its arguments can be given positionally),
# then any2dataset's and video2dataset's additions.
ARGUMENTS = [
    Argument("url_list", None, "A file, folder, glob or fsspec URL with the URLs to download (required)."),
    Argument("image_size", 256, "Side in pixels to resize images to.", int),
    Argument("output_folder", "images", "Output folder (local or fsspec URL such as s3://bucket/out)."),
    Argument("processes_count", 1, "Processes: workers for fetching and resizing, or parts of the shards.", int),
    Argument("resize_mode", "border", "no, border, keep_ratio, keep_ratio_largest or center_crop."),
    Argument("resize_only_if_bigger", False, "Only ever make images smaller.", bool),
    Argument("upscale_interpolation", "lanczos", "Interpolation when enlarging."),
    Argument("downscale_interpolation", "area", "Interpolation when shrinking."),
    Argument("encode_quality", 95, "jpg/webp quality, png compression level.", int),
    Argument("encode_format", "jpg", "jpg, png or webp."),
    Argument("skip_reencode", False, "Keep original bytes of images that need no resizing.", bool),
    Argument("output_format", "files", "files, webdataset, parquet, tfrecord or dummy."),
    Argument("input_format", "txt", "txt, csv, tsv, tsv.gz, json, jsonl, parquet, ... (default: from the "
                                    "url_list's name, else txt)."),
    Argument("url_col", "url", "Column holding the URL."),
    Argument("caption_col", None, "Column holding the caption."),
    Argument("bbox_col", None, "Not supported: column of boxes to blur.", str),
    Argument("thread_count", 256, "Downloads in flight per process.", int),
    Argument("number_sample_per_shard", 10000, "Samples per shard.", int),
    Argument("extract_exif", True, "Put EXIF tags into `exif`.", bool),
    Argument("save_additional_columns", None, "Other columns to keep in the metadata (default: none).", list),
    Argument("timeout", 10.0, "Seconds to connect, and at most between two reads.", float),
    Argument("enable_wandb", False, "Not supported: use a2d-stats --html for a report.", bool),
    Argument("wandb_project", "img2dataset", "Not supported (see enable_wandb)."),
    Argument("oom_shard_count", 5, "Digits of shard numbers.", int),
    Argument("compute_hash", "sha256", "md5, sha256, sha512, xxh64 or None."),
    Argument("verify_hash", None, "[column, algorithm]: compare downloads with a hash column.", list),
    Argument("distributor", "multiprocessing", "multiprocessing only; see the README's scale-out recipes."),
    Argument("subjob_size", 1000, "Not used: fan out with a2d-shard --part or --split instead.", int),
    Argument("retries", 0, "Further attempts after a retryable failure.", int),
    Argument("disable_all_reencoding", False, "Keep downloaded files as they are: no resizing at all.", bool),
    Argument("min_image_size", 0, "Refuse images whose shorter side is smaller.", int),
    Argument("max_image_area", math.inf, "Refuse images of more pixels.", float),
    Argument("max_aspect_ratio", math.inf, "Refuse images longer than this ratio.", float),
    Argument("incremental_mode", "incremental", "incremental (skip finished shards), overwrite or extend."),
    Argument("max_shard_retry", 1, "Not used: rerun the command, finished shards are skipped.", int),
    Argument("user_agent_token", None, "Add '(compatible; TOKEN)' to the User-Agent."),
    Argument("disallowed_header_directives", ["noai", "noimageai", "noindex", "noimageindex"],
             "X-Robots-Tag directives that opt a file out (None: these four; []: none).", list),
    # any2dataset's and video2dataset's own
    Argument("clip_col", None, "Column holding clips [[start, end], ...] (video2dataset)."),
    Argument("save_metadata", True, "Metadata parquet and stats are always written (False is refused).", bool),
    Argument("all_columns", False, "Also write any2dataset's own metadata columns (size, http_status, "
                                   "error_kind, fetch_seconds, ...; any2dataset's addition: by default the "
                                   "metadata has exactly img2dataset's columns).", bool),
    Argument("per_host", 16, "Downloads in flight to one host at most, reached by ramping up; 0: no cap "
                             "(any2dataset's addition: img2dataset has no cap).", int),
]
IMG2DATASET_ORDER = [argument.name for argument in ARGUMENTS[:ARGUMENTS.index(
    next(a for a in ARGUMENTS if a.name == "disallowed_header_directives")) + 1]]
# Each row's list file, so that every file starts on a new shard as in img2dataset (not written
# into the metadata: the all-in-one writes img2dataset's columns).
INPUT_FILE_FIELD = "input_file"
DEFAULTS = {argument.name: argument.default for argument in ARGUMENTS}
INCREMENTAL_MODES = ("incremental", "overwrite", "extend")
# Seed arguments we accept only at the value that changes nothing, with the reason.
UNSUPPORTED = {
    "enable_wandb": "wandb logging is not supported; `a2d-stats --html report.html OUTPUT` gives a report",
    "wandb_project": "wandb logging is not supported",
    "distributor": "only multiprocessing runs here; for Spark, Slurm, Make or GNU parallel see the README's "
                   "scale-out recipes (examples/)",
    "subjob_size": "there are no subjobs: fan out with `a2d-shard --part I/N` or `--split`",
    "max_shard_retry": "shards are not retried within a run: run the same command again, finished shards "
                       "are skipped and failed downloads can be retried with a2d-fetch --retry-failed",
    "save_metadata": "metadata (a parquet per shard and _stats.json) is always written",
    "bbox_col": "blurring boxes in images is not supported yet",
}


class StageFailed(A2DError):
    def __init__(self, stage: str, status: int):
        super().__init__(f"{stage} exited with status {status}")
        self.exit_code = status if status in iter(ExitCode) else ExitCode.ERROR


def as_list(value) -> list | None:
    """A list argument as a Python list, from a list or from text: `a,b`, `[a, b]` or `['a','b']`."""
    if value is None or isinstance(value, (list, tuple)):
        return None if value is None else list(value)
    text = str(value).strip()
    if text in ("", "None"):
        return None
    if text.startswith("["):
        try:
            return [str(item) for item in ast.literal_eval(text)]
        except (ValueError, SyntaxError):
            text = text.strip("[]")
    return [item.strip().strip("'\"") for item in text.split(",") if item.strip()]


def _check(arguments: dict) -> None:
    unknown = set(arguments) - set(DEFAULTS)
    if unknown:
        raise UsageProblem(f"unknown argument(s): {', '.join(sorted(unknown))}")
    if not arguments.get("url_list"):
        raise UsageProblem("url_list is required")
    for name, reason in UNSUPPORTED.items():
        if name in arguments and arguments[name] != DEFAULTS[name]:
            raise UsageProblem(f"{name}={arguments[name]!r} is not supported: {reason}")
    if arguments.get("incremental_mode", "incremental") not in INCREMENTAL_MODES:
        raise UsageProblem(f"incremental_mode must be one of {', '.join(INCREMENTAL_MODES)}")


def stage_commands(**arguments) -> list[list[str]]:
    """The stage commands (argument lists after `python -m any2dataset.STAGE`) for these arguments."""
    _check(arguments)
    a = {**DEFAULTS, **arguments}
    if "input_format" not in arguments:  # img2dataset's default is txt; a name that says otherwise wins
        a["input_format"] = guessed_input_format(str(a["url_list"])) or DEFAULTS["input_format"]
    for name in ("save_additional_columns", "verify_hash", "disallowed_header_directives"):
        a[name] = as_list(a[name])
    if a["disallowed_header_directives"] is None:  # img2dataset: None means its four, [] means none
        a["disallowed_header_directives"] = DEFAULTS["disallowed_header_directives"]
    out = a["output_folder"]
    workers = str(max(1, int(a["processes_count"])))

    input_format = str(a["input_format"]).split(".")[0]  # tsv.gz, csv.gz: the compression is in the name
    read = ["read", "--input-format", input_format, "--url-col", a["url_col"]]
    if input_format == "txt":  # a txt list is URLs only: img2dataset ignores the column arguments then
        read += ["--save-additional-columns", ""]
    else:
        # No caption_col, no captions (even from a column named caption), as in img2dataset.
        read += ["--caption-col", a["caption_col"] or ""]
        if a["clip_col"]:
            read += ["--clip-col", a["clip_col"]]
        read += ["--save-additional-columns", ",".join(a["save_additional_columns"] or [])]
    read += ["--file-field", INPUT_FILE_FIELD, str(a["url_list"])]

    sizes = ["--number-sample-per-shard", str(a["number_sample_per_shard"]),
             "--oom-shard-count", str(a["oom_shard_count"])]
    shard = ["shard", *sizes, "--new-shard-on", INPUT_FILE_FIELD]  # each input file starts a new shard
    if a["incremental_mode"] == "incremental":
        shard += ["--skip-done", out]
    elif a["incremental_mode"] == "extend":
        shard += ["--extend", out]

    # thread_count is per process, as in img2dataset; a2d-fetch's -j is shared by its workers.
    fetch = ["fetch", "-j", str(int(a["thread_count"]) * int(workers)), "-w", workers, "--timeout", str(a["timeout"]),
             "--per-host", str(int(a["per_host"])),
             "--retries", str(a["retries"]), "--hash", str(a["compute_hash"] or "none").lower(),
             "--disallowed-header-directives", ",".join(a["disallowed_header_directives"] or [])]
    if a["verify_hash"]:
        if len(a["verify_hash"]) != 2:
            raise UsageProblem("verify_hash must be [column, algorithm]")
        fetch += ["--verify-hash", ":".join(a["verify_hash"])]
    if a["user_agent_token"]:
        fetch += ["--user-agent-token", a["user_agent_token"]]

    stages = [read, shard, fetch]
    if not a["disable_all_reencoding"]:
        subsample = ["subsample", "-w", workers, "--image-size", str(a["image_size"]),
                     "--resize-mode", a["resize_mode"], "--upscale-interpolation", a["upscale_interpolation"],
                     "--downscale-interpolation", a["downscale_interpolation"],
                     "--encode-format", a["encode_format"], "--encode-quality", str(a["encode_quality"]),
                     "--min-image-size", str(a["min_image_size"]),
                     "--exif" if a["extract_exif"] else "--no-exif"]
        if math.isfinite(float(a["max_image_area"])):
            subsample += ["--max-image-area", str(a["max_image_area"])]
        if math.isfinite(float(a["max_aspect_ratio"])):
            subsample += ["--max-aspect-ratio", str(a["max_aspect_ratio"])]
        if a["resize_only_if_bigger"]:
            subsample.append("--resize-only-if-bigger")
        if a["skip_reencode"]:
            subsample.append("--skip-reencode")
        stages.append(subsample)
    stages.append(["write", "--format", a["output_format"], *sizes, "--like", "img2dataset",
                   *([] if a["all_columns"] else ["--columns", ",".join(img2dataset_columns(a, input_format))]), out])
    return stages


def img2dataset_columns(a: dict, input_format: str) -> list[str]:
    """The metadata columns img2dataset writes for these arguments, in its order: the list's
    columns it keeps, then its own, then exif and the hash when they are on."""
    columns = []
    if input_format != "txt":
        columns += a["save_additional_columns"] or []
        if a["caption_col"]:
            columns.append("caption")
        if a["verify_hash"]:
            columns.append(a["verify_hash"][1])
    columns += ["url", "key", "status", "error_message", "width", "height", "original_width", "original_height"]
    if a["extract_exif"]:
        columns.append("exif")
    hash_name = str(a["compute_hash"] or "none").lower()
    if hash_name != "none" and hash_name not in columns:
        columns.append(hash_name)
    return columns


def guessed_input_format(url_list: str) -> str | None:
    """The list format a2d-read would read `url_list` as, from its name (None: no guess)."""
    from .read import LIST_FORMATS, format_of

    guess = format_of(url_list) if url_list != "-" else None
    return guess if guess in LIST_FORMATS else None


# Stage options that are not simply the dashed spelling of an all-in-one argument.
_STAGE_OPTION_ARGUMENTS = {"-j": "thread_count", "-w": "processes_count", "--hash": "compute_hash",
                           "--format": "output_format", "--skip-done": "output_folder", "--extend": "output_folder",
                           "--exif": "extract_exif", "--no-exif": "extract_exif", "OUTPUT_FOLDER": "output_folder",
                           "INPUTS": "url_list", "--input-format": "input_format"}


def _in_our_words(message: str) -> str:
    """A stage's click message with its option names given as the all-in-one's arguments."""
    def argument(match: re.Match) -> str:
        name = match.group(1)
        if name in _STAGE_OPTION_ARGUMENTS:
            return _STAGE_OPTION_ARGUMENTS[name]
        plain = name.lstrip("-").replace("-", "_")
        return plain if plain in DEFAULTS else name

    return re.sub(r"'(-{0,2}[A-Za-z][\w-]*)'", lambda m: f"'{argument(m)}'", message.split("\n")[-1])


def check_before_work(stages: list[list[str]], url_list: str) -> None:
    """Every stage's arguments parsed and built as its command would, the extras they need
    imported and the URL list found, before anything is downloaded: a typo in the last
    stage's arguments must not cost the whole download first."""
    import click

    from .commands import fetch, read, shard, subsample, write
    from .read import expand_paths

    commands = {"read": read, "shard": shard, "fetch": fetch, "subsample": subsample, "write": write}
    builders = {"read": read.read_options, "fetch": fetch.fetch_options, "subsample": subsample.subsample_options,
                "write": write.write_options}
    try:
        for name, *arguments in stages:
            params = _parsed(commands[name].main, arguments)
            if name in builders:
                builders[name](**params)
    except click.ClickException as error:
        raise UsageProblem(_in_our_words(error.format_message())) from None
    if url_list == "-":
        return
    input_format = _read_format(stages)
    found = expand_paths([url_list], input_format)
    sizes = [_size(path) for path, _ in found]
    if found and all(size == 0 for size in sizes):
        raise NothingSucceeded(f"url_list {url_list}: empty, nothing to download")


def _read_format(stages: list[list[str]]) -> str:
    """The list format the read stage was given (stage_commands always gives one)."""
    read = stages[0]
    return read[read.index("--input-format") + 1]


def _size(path: str) -> int | None:
    import fsspec

    try:
        fs, inner = fsspec.core.url_to_fs(path)
        return fs.size(inner)
    except (OSError, ValueError):
        return None


def remove_output(folder: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(folder)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def download(*positional, progress: bool = False, quiet: bool = False,
             on_note: Callable[[str], None] | None = None, **arguments) -> dict:
    """Download `url_list` into `output_folder` with img2dataset's arguments (by name, or by
    position in img2dataset's order: `download("urls.txt", 256, "out")`); returns the a2d-stats
    report of the output folder. Raises A2DError subclasses on failure, before any work when an
    argument is wrong. `on_note` receives warnings (default: standard error)."""
    arguments = _with_positional(positional, arguments)
    note = on_note or (lambda text: print(f"any2dataset: warning: {text}", file=sys.stderr))
    stages = stage_commands(**arguments)
    url_list = str(arguments.get("url_list"))
    guess = guessed_input_format(url_list)
    given = str(arguments.get("input_format", "")).split(".")[0]
    if "input_format" in arguments and guess is not None and given != guess:
        note(f"url_list {url_list} looks like {guess}, read as input_format {arguments['input_format']} as given")
    check_before_work(stages, url_list)
    output_folder = arguments.get("output_folder", DEFAULTS["output_folder"])
    if arguments.get("incremental_mode") == "overwrite":
        remove_output(output_folder)
    parts = max(1, int(arguments.get("processes_count", DEFAULTS["processes_count"])))
    return run_download(stages, url_list, output_folder, parts, progress=progress, quiet=quiet)


def run_download(stages: list[list[str]], url_list: str, output_folder: str, parts: int, progress: bool = False,
                 quiet: bool = False, environment: dict | None = None) -> dict:
    """Run the stages over `url_list` into `output_folder`; the a2d-stats report of the folder."""
    if any(stage[0] == "subsample" for stage in stages):
        # Resizing is most of the CPU: a2d-subsample's own worker processes keep every core busy,
        # where one process per part left a third of them idle (benchmarks/README.md).
        run_stages(stages, progress=progress, quiet=quiet, environment=environment)
    else:
        if url_list == "-":
            parts = 1  # standard input can be read once
        run_parts(_first_shard_settled(stages), parts, progress=progress, quiet=quiet, environment=environment)
    from .stats import dataset_stats

    try:
        return dataset_stats(output_folder)
    except UsageProblem:  # no shard at all: the list gave no row
        raise NothingSucceeded(f"url_list {url_list} gave no rows (input_format "
                               f"{_read_format(stages)}): nothing was written to "
                               f"{output_folder}") from None


def _with_positional(positional: tuple, named: dict) -> dict:
    if len(positional) > len(IMG2DATASET_ORDER):
        raise UsageProblem(f"download() takes at most {len(IMG2DATASET_ORDER)} positional arguments "
                           f"({len(positional)} given)")
    given = dict(zip(IMG2DATASET_ORDER, positional))
    twice = sorted(set(given) & set(named))
    if twice:
        raise UsageProblem(f"download() got {', '.join(twice)} both by position and by name")
    return {**given, **named}


def _first_shard_settled(stages: list[list[str]]) -> list[list[str]]:
    """`a2d-shard --extend OUT` as `--start-shard N`, N read once: parts that each looked at the
    folder would see the shards the others have already finished."""
    settled = []
    for stage in stages:
        if stage[0] == "shard" and "--extend" in stage:
            from .shard import extend_after

            at = stage.index("--extend")
            stage = [*stage[:at], "--start-shard", str(extend_after(stage[at + 1])), *stage[at + 2:]]
        settled.append(stage)
    return settled


def run_stages(stages: list[list[str]], progress: bool = False, quiet: bool = False,
               environment: dict | None = None) -> None:
    """Run the stages as one pipeline of processes; raise StageFailed for the first that failed."""
    processes, previous = [], None
    try:
        for index, stage in enumerate(stages):
            last = index == len(stages) - 1
            command = [sys.executable, "-m", f"any2dataset.{stage[0]}", *stage[1:]]
            if progress and stage[0] == "fetch":
                command.append("--progress")
            if quiet:
                command.append("--quiet")
            process = subprocess.Popen(command, stdin=previous, stdout=None if last else subprocess.PIPE,
                                       env=dict(os.environ, **(environment or {})))
            if previous is not None:
                previous.close()  # the next stage holds it now: a dead reader gives the writer SIGPIPE
            previous = process.stdout
            processes.append((stage[0], process))
        statuses = [(name, process.wait()) for name, process in processes]
    except BaseException:
        _stop([process for _, process in processes])
        raise
    for name, status in statuses:
        if status != 0:
            raise StageFailed(f"a2d-{name}", status)


def _stop(processes: list) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait()


PART_VARIABLE = "A2D_ALL_IN_ONE_PART"  # what a part process runs: JSON of stages, part, parts, progress


def run_parts(stages: list[list[str]], parts: int, progress: bool = False, quiet: bool = False,
              environment: dict | None = None) -> None:
    """Run the stages as `parts` processes, each on its share of the shards; raise StageFailed
    for the first part that failed. (Each process is `python -m any2dataset.all_in_one`.)"""
    processes = []
    try:
        for part in range(parts):
            spec = {"stages": stages, "part": part, "parts": parts, "progress": progress, "quiet": quiet}
            variables = dict(os.environ, **(environment or {}), **{PART_VARIABLE: json.dumps(spec)})
            stdin = None if parts == 1 else subprocess.DEVNULL
            processes.append(subprocess.Popen([sys.executable, "-m", "any2dataset.all_in_one"], env=variables,
                                              stdin=stdin, stdout=subprocess.DEVNULL))
        statuses = [process.wait() for process in processes]
    except BaseException:
        _stop(processes)
        raise
    for part, status in enumerate(statuses):
        if status != 0:
            raise StageFailed(f"part {part}/{parts}" if parts > 1 else "the download", status)


@dataclass
class _Configured:
    """Each stage's options, from its own command's parser and option builder."""

    inputs: list
    read: object
    shard: object
    fetch: object
    output_folder: str
    write: object


def _configure(stages: list[list[str]], part: int, parts: int) -> _Configured:
    import click

    from .commands import fetch as fetch_command
    from .commands import read as read_command
    from .commands import shard as shard_command
    from .commands import write as write_command

    commands = {"read": read_command, "shard": shard_command, "fetch": fetch_command, "write": write_command}
    try:
        params = {name: _parsed(commands[name].main, arguments) for name, *arguments in stages}
        fetch_options = fetch_command.fetch_options(**params["fetch"])
        return _Configured(
            inputs=params["read"]["inputs"],
            read=read_command.read_options(**params["read"]),
            shard=shard_command.shard_options(**dict(params["shard"], part=f"{part}/{parts}")),
            # -j and --per-host are the whole command's: each part has its share (a host's URLs are
            # in every part, where a2d-fetch's workers each own a host).
            fetch=dataclasses.replace(fetch_options, concurrency=max(1, fetch_options.concurrency // parts),
                                      per_host=max(1, fetch_options.per_host // parts) if fetch_options.per_host else 0),
            output_folder=params["write"]["output_folder"],
            write=write_command.write_options(**params["write"]),
        )
    except click.ClickException as error:  # an argument value the stage refuses (e.g. verify_hash)
        raise UsageProblem(error.format_message()) from None


def run_part(stages: list[list[str]], part: int, parts: int, console) -> int:
    """One part: read | shard | fetch | write composed in this process (no subsample: with
    resizing, download() runs the pipeline of processes). Returns the number of shards written."""
    from .fetch import fetch
    from .read import read
    from .shard import shard
    from .write import write
    from .write.metadata import use_system_memory_pool

    use_system_memory_pool()
    configured = _configure(stages, part, parts)
    records = shard(_as_on_the_wire(read(configured.inputs, configured.read)), configured.shard)
    records = fetch(records, configured.fetch)
    records = console.track(records, unit="file", position=part)
    written = write(records, configured.output_folder, configured.write, on_note=console.warn)
    return sum(1 for _ in written)


def _parsed(command, arguments: list[str]) -> dict:
    """A stage's arguments parsed by its own click command: the parameters its main receives."""
    return dict(command.make_context(command.name, list(arguments)).params)


def _as_on_the_wire(records: Iterable[dict]) -> Iterator[dict]:
    """Each list row as the next stage would read it from a pipe (decimals, bytes, dates become
    JSON), so the dataset is the same as the pipeline's."""
    from .record import dumps

    for record in records:
        yield orjson.loads(dumps(record))


def _part_main() -> None:
    from .cli import Console, run_boundary

    spec = json.loads(os.environ.pop(PART_VARIABLE))
    part, parts = spec["part"], spec["parts"]
    name = f"any2dataset (part {part}/{parts})" if parts > 1 else "any2dataset"
    console = Console(name, quiet=spec["quiet"], progress=spec["progress"])

    def work():
        try:
            shards = run_part(spec["stages"], part, parts, console)
        except (UsageProblem, BadInput) as error:
            if part > 0:  # every part meets the same arguments and URL list: part 0 says it
                sys.exit(error.exit_code)
            raise
        console.info(f"{shards} shard(s) written")

    run_boundary(console, work)


if __name__ == "__main__":
    _part_main()
