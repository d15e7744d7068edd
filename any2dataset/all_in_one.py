"""`any2dataset.download()` and the `any2dataset` command: img2dataset's arguments, our stages.

The arguments, their names and defaults are img2dataset's (any2dataset's and
video2dataset's where they add some). `img2dataset_plan` translates them into a Plan: one
options object per stage, checked as they are built (plan.py). Its pipe form
(`stage_commands`) is the equivalent pipeline

    a2d-read | a2d-shard | a2d-fetch -w P | [a2d-subsample -w P] | a2d-write

Downloading only (disable_all_reencoding), the stages' library functions run composed in one
process per part (`processes_count` parts, each `a2d-shard --part I/P` of the shards, as the
README's xargs recipe does): the same stages, but payloads go from download to shard file as
bytes, never as base64 JSON through a pipe: a quarter of the pipeline's CPU. With resizing,
the pipe form runs as a pipeline of processes, where a2d-subsample's worker processes keep
the cores busy; in one process per part they measured 25% slower (benchmarks/README.md).
distributor="ray" or "pyspark" runs the same parts as Ray or Spark tasks (distribute.py).
Arguments that would change nothing here (wandb, subjob_size) are refused with a message
rather than silently ignored.
"""

import ast
import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import orjson

from .distribute import DISTRIBUTORS
from .errors import A2DError, ExitCode, NothingSucceeded, StageFailed, UsageProblem
from .fetch.options import HASH_NAMES, FetchOptions
from .plan import Plan, numbered, pipe_form, settled
from .read import FORMATS as READ_FORMATS
from .read import ReadOptions
from .record import SAMPLES_PER_SHARD, SHARD_DIGITS
from .shard import ShardOptions
from .subsample import SubsampleOptions
from .subsample.image import ENCODE_FORMATS, INTERPOLATIONS, RESIZE_MODES, ImageOptions
from .subsample.tools import tools_checked
from .write import FORMATS as WRITE_FORMATS
from .write import WriteOptions


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
    Argument("number_sample_per_shard", SAMPLES_PER_SHARD, "Samples per shard.", int),
    Argument("extract_exif", True, "Put EXIF tags into `exif`.", bool),
    Argument("save_additional_columns", None, "Other columns to keep in the metadata (default: none).", list),
    Argument("timeout", 10.0, "Seconds to connect, and at most between two reads.", float),
    Argument("enable_wandb", False, "Not supported: use a2d-stats --html for a report.", bool),
    Argument("wandb_project", "img2dataset", "Not supported (see enable_wandb)."),
    Argument("oom_shard_count", SHARD_DIGITS, "Digits of shard numbers.", int),
    Argument("compute_hash", "sha256", "md5, sha256, sha512, xxh64 or None."),
    Argument("verify_hash", None, "[column, algorithm]: compare downloads with a hash column.", list),
    Argument("distributor", "multiprocessing", "multiprocessing (processes here), ray (Ray tasks) or pyspark "
                                               "(a Spark job): one task per part of the shards.", str),
    Argument("subjob_size", 1000, "Not used: fan out with a2d-shard --part or --split instead.", int),
    Argument("retries", 0, "Further attempts after a retryable failure.", int),
    Argument("disable_all_reencoding", False, "Keep downloaded files as they are: no resizing at all.", bool),
    Argument("min_image_size", 0, "Refuse images whose shorter side is smaller.", int),
    Argument("max_image_area", math.inf, "Refuse images of more pixels.", float),
    Argument("max_aspect_ratio", math.inf, "Refuse images longer than this ratio.", float),
    Argument("incremental_mode", "incremental", "incremental (skip finished shards), overwrite or extend."),
    Argument("max_shard_retry", 1, "Times a part that failed (its process or task died, or an unexpected "
                                   "error) is run again, skipping the shards it finished. Failed downloads "
                                   "are not part failures: they are rows with a status.", int),
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
    "subjob_size": "there are no subjobs: fan out with `a2d-shard --part I/N` or `--split`",
    "save_metadata": "metadata (a parquet per shard and _stats.json) is always written",
    "bbox_col": "blurring boxes in images is not supported yet",
}


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


def img2dataset_plan(**arguments) -> Plan:
    """img2dataset's arguments as the stages' options, checked (a wrong value raises
    UsageProblem naming the argument) and with the extras they need imported."""
    _check(arguments)
    a = {**DEFAULTS, **_typed(arguments)}
    if "input_format" not in arguments:  # img2dataset's default is txt; a name that says otherwise wins
        a["input_format"] = guessed_input_format(str(a["url_list"])) or DEFAULTS["input_format"]
    for name in ("save_additional_columns", "verify_hash", "disallowed_header_directives"):
        a[name] = as_list(a[name])
    if a["disallowed_header_directives"] is None:  # img2dataset: None means its four, [] means none
        a["disallowed_header_directives"] = DEFAULTS["disallowed_header_directives"]
    _check_choices(a)
    out = a["output_folder"]
    workers = max(1, a["processes_count"])
    input_format = str(a["input_format"]).split(".")[0]  # tsv.gz, csv.gz: the compression is in the name
    check_choice("input_format", input_format, READ_FORMATS)

    read = list_read_options(input_format, a["url_col"], a["caption_col"], a["clip_col"], a["save_additional_columns"])
    shard = ShardOptions(number_sample_per_shard=a["number_sample_per_shard"], oom_shard_count=a["oom_shard_count"],
                         new_shard_on=INPUT_FILE_FIELD)
    if a["verify_hash"] is not None and len(a["verify_hash"]) != 2:
        raise UsageProblem("verify_hash must be [column, algorithm]")
    hash_name = str(a["compute_hash"] or "none").lower()
    # thread_count is per process, as in img2dataset; a2d-fetch's -j is shared by its workers
    fetch = FetchOptions(concurrency=a["thread_count"] * workers, per_host=a["per_host"], timeout=a["timeout"],
                         retries=a["retries"], hash=None if hash_name == "none" else hash_name,
                         verify_hash=tuple(a["verify_hash"]) if a["verify_hash"] else None,
                         user_agent_token=a["user_agent_token"] or None,
                         disallowed_directives=tuple(a["disallowed_header_directives"] or ()),
                         source="direct")  # img2dataset downloads every URL as it is
    subsample = None
    if not a["disable_all_reencoding"]:
        image = ImageOptions(image_size=a["image_size"], resize_mode=a["resize_mode"],
                             resize_only_if_bigger=a["resize_only_if_bigger"],
                             upscale_interpolation=a["upscale_interpolation"],
                             downscale_interpolation=a["downscale_interpolation"],
                             encode_format=a["encode_format"], encode_quality=a["encode_quality"],
                             skip_reencode=a["skip_reencode"], min_image_size=a["min_image_size"],
                             max_image_area=a["max_image_area"], max_aspect_ratio=a["max_aspect_ratio"],
                             extract_exif=a["extract_exif"])
        subsample = tools_checked(SubsampleOptions(image=image, workers=workers))
    write = WriteOptions(output_format=a["output_format"], number_sample_per_shard=a["number_sample_per_shard"],
                         oom_shard_count=a["oom_shard_count"], like="img2dataset",
                         columns=None if a["all_columns"] else img2dataset_columns(a, input_format))
    return Plan(inputs=[str(a["url_list"])], read=read, shard=shard, fetch=fetch, fetch_workers=workers,
                subsample=subsample, write=write, output_folder=out,
                skip_done=a["incremental_mode"] == "incremental", extend=a["incremental_mode"] == "extend",
                distributor=a["distributor"], part_retries=a["max_shard_retry"])


def stage_commands(**arguments) -> list[list[str]]:
    """The stage commands (argument lists after `python -m any2dataset.STAGE`) for these arguments."""
    return pipe_form(img2dataset_plan(**arguments))


# Values click's choices and ranges checked when the arguments went through the stage commands.
_CHOICES = {"distributor": list(DISTRIBUTORS), "output_format": list(WRITE_FORMATS), "resize_mode": list(RESIZE_MODES),
            "encode_format": sorted(ENCODE_FORMATS), "upscale_interpolation": list(INTERPOLATIONS),
            "downscale_interpolation": list(INTERPOLATIONS), "compute_hash": [*HASH_NAMES, "none"]}
_AT_LEAST = {"image_size": 1, "processes_count": 1, "thread_count": 1, "number_sample_per_shard": 1,
             "oom_shard_count": 1, "retries": 0, "min_image_size": 0, "per_host": 0, "encode_quality": 0,
             "max_shard_retry": 0}


def _typed(arguments: dict) -> dict:
    """Each argument as its kind (int, float, bool), as a command line would have given it."""
    kinds = {argument.name: argument.kind for argument in ARGUMENTS}
    typed = {}
    for name, value in arguments.items():
        kind = kinds[name]
        if value is not None and kind in (int, float) and not isinstance(value, bool):
            try:
                value = kind(value)
            except (TypeError, ValueError):
                raise UsageProblem(f"Invalid value for '{name}': {value!r} is not a valid "
                                   f"{'integer' if kind is int else 'float'}.") from None
        elif kind is bool and isinstance(value, str):
            if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageProblem(f"Invalid value for '{name}': {value!r} is not a valid boolean.")
            value = value.strip().lower() in ("true", "1", "yes")
        typed[name] = value
    return typed


def check_choice(name: str, value, choices: list) -> None:
    if value not in choices:
        raise UsageProblem(f"Invalid value for '{name}': {value!r} is not one of {', '.join(map(repr, choices))}.")


def _check_choices(a: dict) -> None:
    for name, choices in _CHOICES.items():
        check_choice(name, a[name] if name != "compute_hash" else str(a[name] or "none").lower(), choices)
    for name, least in _AT_LEAST.items():
        if a[name] is not None and a[name] < least:
            raise UsageProblem(f"Invalid value for '{name}': {a[name]} is not in the range x>={least}.")
    if a["timeout"] <= 0:
        raise UsageProblem(f"Invalid value for 'timeout': {a['timeout']} is not in the range x>0.")


def list_read_options(input_format: str, url_col: str, caption_col: str | None, clip_col: str | None,
                      columns: list[str] | None) -> ReadOptions:
    """How img2dataset and video2dataset read their list: a txt list is URLs only (the column
    arguments are ignored then); no caption_col means no captions, even from a column named
    caption; each row keeps its input file, so every file starts a new shard."""
    if input_format == "txt":
        return ReadOptions(input_format=input_format, url_col=url_col, save_additional_columns=[],
                           file_field=INPUT_FILE_FIELD)
    return ReadOptions(input_format=input_format, url_col=url_col, caption_col=caption_col or "",
                       clip_col=clip_col or None, save_additional_columns=list(columns or []),
                       file_field=INPUT_FILE_FIELD)


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


def check_url_list(plan: Plan) -> None:
    """The URL list found and not empty, before anything is downloaded."""
    from .read import expand_paths

    if plan.inputs == ["-"]:
        return
    found = expand_paths(plan.inputs, plan.read.input_format)
    sizes = [_size(path) for path, _ in found]
    if found and all(size == 0 for size in sizes):
        raise NothingSucceeded(f"url_list {plan.inputs[0]}: empty, nothing to download")


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
    arguments = with_positional(positional, arguments)
    note = on_note or warn
    plan = img2dataset_plan(**arguments)
    url_list = str(arguments.get("url_list"))
    guess = guessed_input_format(url_list)
    given = str(arguments.get("input_format", "")).split(".")[0]
    if "input_format" in arguments and guess is not None and given != guess:
        note(f"url_list {url_list} looks like {guess}, read as input_format {arguments['input_format']} as given")
    check_url_list(plan)
    if arguments.get("incremental_mode") == "overwrite":
        remove_output(plan.output_folder)
    return run_download(plan, plan.fetch_workers, progress=progress, quiet=quiet, on_note=note)


def run_download(plan: Plan, parts: int, progress: bool = False, quiet: bool = False,
                 environment: dict | None = None, on_note: Callable[[str], None] | None = None) -> dict:
    """Run the plan (its parts as Ray or Spark tasks for those distributors); the a2d-stats
    report of its output folder."""
    plan = numbered(plan)
    if plan.distributor != "multiprocessing":
        from .distribute import run_parts_on

        run_parts_on(plan.distributor, plan, parts, progress=progress, quiet=quiet, environment=environment)
    else:
        for retry in range(plan.part_retries + 1):
            try:
                run_here(plan, parts, progress, quiet, environment, on_note)
                break
            except Exception as failure:  # noqa: BLE001 - retried or raised as it is
                if retry == plan.part_retries or not retryable(failure) or plan.inputs == ["-"]:
                    raise
                (on_note or warn)(f"{failure}: running the parts again, skipping the shards they finished "
                     f"(retry {retry + 1} of {plan.part_retries}, max_shard_retry)")
                plan = dataclasses.replace(plan, skip_done=True)
    from .stats import dataset_stats

    try:
        return dataset_stats(plan.output_folder)
    except UsageProblem:  # no shard at all: the list gave no row
        raise NothingSucceeded(f"url_list {plan.inputs[0]} gave no rows (input_format "
                               f"{plan.read.input_format}): nothing was written to "
                               f"{plan.output_folder}") from None


def warn(text: str) -> None:
    """The all-in-one's warnings, when the caller gives no on_note."""
    print(f"any2dataset: warning: {text}", file=sys.stderr)


def run_here(plan: Plan, parts: int, progress: bool, quiet: bool, environment: dict | None,
             on_note: Callable[[str], None] | None) -> None:
    """One attempt of the whole plan on this machine."""
    if plan.subsample is not None:
        # Resizing is most of the CPU: a2d-subsample's own worker processes keep every core busy,
        # where one process per part left a third of them idle (benchmarks/README.md).
        run_stages(pipe_form(plan), progress=progress, quiet=quiet, environment=environment)
    else:
        run_parts(settled(plan, on_note), 1 if plan.inputs == ["-"] else parts, progress=progress, quiet=quiet,
                  environment=environment)  # (standard input can be read once)


def retryable(failure: Exception) -> bool:
    """Whether a failed attempt may succeed when run again: not when the input or the
    arguments are wrong, or the user interrupted it."""
    if isinstance(failure, A2DError):  # (a stage's or a part's exit status)
        return failure.exit_code not in (ExitCode.USAGE, ExitCode.BAD_INPUT, ExitCode.INTERRUPTED, ExitCode.UPSTREAM)
    return True


def with_positional(positional: tuple, named: dict) -> dict:
    if len(positional) > len(IMG2DATASET_ORDER):
        raise UsageProblem(f"download() takes at most {len(IMG2DATASET_ORDER)} positional arguments "
                           f"({len(positional)} given)")
    given = dict(zip(IMG2DATASET_ORDER, positional))
    twice = sorted(set(given) & set(named))
    if twice:
        raise UsageProblem(f"download() got {', '.join(twice)} both by position and by name")
    return {**given, **named}


def run_stages(stages: list[list[str]], progress: bool = False, quiet: bool = False,
               environment: dict | None = None) -> None:
    """Run the stage commands as one pipeline of processes; raise StageFailed for the first
    that failed."""
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


def run_parts(plan: Plan, parts: int, progress: bool = False, quiet: bool = False,
              environment: dict | None = None) -> None:
    """Run the plan as `parts` worker processes (workers.Pool), each on its share of the
    shards; raise WorkerFailed naming the first part that failed. One part runs here, unless
    `environment` (variables for the parts) asks for a process of its own."""
    from .console import Console

    if parts == 1 and not environment:
        run_part(plan, 0, 1, Console("any2dataset", quiet=quiet, progress=progress))
        return
    from .workers import Pool

    with Pool(_parts_worker, parts, args=(plan, parts, progress, quiet), name="any2dataset part",
              stdout=subprocess.DEVNULL, environment=environment) as pool:
        for part in range(parts):
            pool.send_to(part, part)
    pool.check()


def _parts_worker(inbox, send, plan: Plan, parts: int, progress: bool, quiet: bool) -> None:
    from .console import Console

    for part in inbox:
        run_part(plan, part, parts, Console(f"any2dataset (part {part}/{parts})", quiet=quiet, progress=progress))


def run_part(plan: Plan, part: int, parts: int, console) -> int:
    """One part: read | shard | fetch | write composed in this process (no subsample: with
    resizing, download() runs the pipeline of processes). Returns the number of shards written."""
    from .fetch import fetch
    from .read import read
    from .shard import shard
    from .write import write
    from .write.metadata import use_system_memory_pool

    use_system_memory_pool()
    shard_options = dataclasses.replace(plan.shard, part=(part, parts)) if parts > 1 else plan.shard
    # -j and --per-host are the whole command's: each part has its share (a host's URLs are in
    # every part, where a2d-fetch's workers each own a host).
    fetch_options = dataclasses.replace(plan.fetch, concurrency=max(1, plan.fetch.concurrency // parts),
                                        per_host=max(1, plan.fetch.per_host // parts) if plan.fetch.per_host else 0)
    records = shard(_as_on_the_wire(read(plan.inputs, plan.read)), shard_options)
    records = fetch(records, fetch_options)
    records = console.track(records, unit="file", position=part)
    written = write(records, plan.output_folder, plan.write, on_note=console.warn)
    shards = sum(1 for _ in written)
    console.info(f"{shards} shard(s) written")
    return shards


def _as_on_the_wire(records: Iterable[dict]) -> Iterator[dict]:
    """Each list row as the next stage would read it from a pipe (decimals, bytes, dates become
    JSON), so the dataset is the same as the pipeline's."""
    from .record import dumps

    for record in records:
        yield orjson.loads(dumps(record))
