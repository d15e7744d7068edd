"""Differential tests: the real video2dataset 1.3.0 and `any2dataset.video2dataset` on the same lists,
served by the same local server (ours: the a2d-video2dataset command, or any2dataset.video2dataset()
in a subprocess when config is a dict), compared output by output: the file names in the output folder,
shard folders and tars; the metadata parquet schema (names, arrow types, order) and rows; every .json
member (keys in order, values); .txt members; the video bytes; _stats.json keys and counts; what an
incremental rerun rewrites. The real tool runs in its own venv (tests/video2dataset_env.py).

Inputs csv, tsv, txt, json (pandas' layout), parquet (with a clips column of [[start, end], ...]);
outputs files, webdataset, parquet, dummy; caption_col, save_additional_columns, clip_col; config as a
dict, as a YAML path and as "default"; failures (404, a non-video body at an .mp4 URL, a URL without
a media extension, clips shorter than min_length); an incremental rerun.

Deliberate differences, left out of the comparison:
- error_message wording (ours names the cause), and so the error keys of _stats.json's status_dict
  (its "success" count and its total are compared);
- clip cut precision: video2dataset's default precision ("low") cuts with `-c copy` at keyframes, we
  re-encode exactly; clips are compared by their streams and duration (within CLIP_TOLERANCE s), and the
  test videos have a keyframe every 0.5 s so video2dataset's cuts land where asked;
- a 404 is failed_to_download for us, and a body that is not a video at an .mp4 URL failed_to_subsample,
  while video2dataset saves either as the video with status success; a video at a URL without a media
  extension is downloaded by us, while video2dataset gives it to yt-dlp, which fails (failed_to_download).
  The counts of _stats.json must differ by exactly these samples (bytes_downloaded is not compared in
  such a shard);
- .json members: video2dataset indents them; parsed and compared key by key, in order;
- _stats.json: ours has more keys (a2d-stats'); video2dataset's are all there, in its order;
- timings in _stats.json (duration, start_time, end_time);
- the order of samples inside a tar and of rows inside a parquet (video2dataset's is completion order).
"""

import copy
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import command_env
from servers import serve_folder
from video2dataset_env import find_or_build_venv, video2dataset_argv, video2dataset_env

# A test may wait for its venv, which conftest.py builds in the background (minutes on a fresh
# machine): longer than the suite's per-test limit.
pytestmark = pytest.mark.timeout(1800)

if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
    pytest.skip("ffmpeg and ffprobe are not on PATH (apt-get install ffmpeg)", allow_module_level=True)

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
CLIP_TOLERANCE = 0.3
TIMINGS = ("duration", "start_time", "end_time")
# video2dataset's default.yaml, small enough for a test machine: one process, no yt-dlp metadata.
CONFIG = {"subsampling": {},
          "reading": {"yt_args": {"download_size": 360, "download_audio_rate": 44100, "yt_metadata_args": None},
                      "timeout": 20, "sampler": None},
          "storage": {"number_sample_per_shard": 2, "oom_shard_count": 5, "captions_are_subtitles": False},
          "distribution": {"processes_count": 1, "thread_count": 4, "subjob_size": 1000,
                           "distributor": "multiprocessing"}}
CLIPPING = {"ClippingSubsampler": {"args": {"min_length": 1.0, "max_length": 2.0}}}
YAML_CONFIG = """subsampling:
    ClippingSubsampler:
        args:
            min_length: 1.0
            max_length: 2.0
reading:
    yt_args:
        download_size: 360
        download_audio_rate: 44100
        yt_metadata_args: null
    timeout: 20
    sampler: null
storage:
    number_sample_per_shard: 4
    oom_shard_count: 3
    captions_are_subtitles: False
distribution:
    processes_count: 1
    thread_count: 4
    subjob_size: 1000
    distributor: "multiprocessing"
"""


def config(number_sample_per_shard: int, subsampling: dict | None = None) -> dict:
    chosen = copy.deepcopy(CONFIG)
    chosen["storage"]["number_sample_per_shard"] = number_sample_per_shard
    chosen["subsampling"] = subsampling or {}
    return chosen


@pytest.fixture(scope="module")
def video_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for name, size, seconds, audio in [("a.mp4", "64x48", 4, 440), ("b.mp4", "64x48", 6, 660),
                                       ("c.mp4", "80x60", 3, None)]:
        inputs = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:duration={seconds}"]
        if audio:
            inputs += ["-f", "lavfi", "-i", f"sine=frequency={audio}:duration={seconds}"]
        # -g 5: a keyframe each 0.5 s, so that video2dataset's `-c copy` cuts land where asked
        subprocess.run([*FFMPEG, *inputs, "-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p",
                        *(["-c:a", "aac", "-shortest"] if audio else []), str(folder / name)], check=True)
    (folder / "words.mp4").write_text("not a video\n")
    shutil.copy(folder / "a.mp4", folder / "noext")
    with serve_folder(folder) as base:
        yield base


@pytest.fixture(scope="module")
def venv():
    return find_or_build_venv()


def rows_for(base: str, names=("a.mp4", "b.mp4", "c.mp4", "a.mp4", "b.mp4")) -> list[dict]:
    return [{"url": f"{base}/{name}", "caption": f"caption {i}", "lang": f"l{i % 2}"} for i, name in enumerate(names)]


def write_list(path: Path, fmt: str, rows: list[dict]) -> None:
    if fmt == "txt":
        path.write_text("".join(row["url"] + "\n" for row in rows))
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        names = list(rows[0])
        path.write_text(sep.join(names) + "\n" + "".join(sep.join(row[n] for n in names) + "\n" for row in rows))
    elif fmt == "json":  # pandas' DataFrame.to_json() layout, which video2dataset's pd.read_json reads
        path.write_text(json.dumps({name: {str(i): row[name] for i, row in enumerate(rows)} for name in rows[0]}))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


def our_argv(arguments: dict) -> list[str]:
    """Our a2d-video2dataset command (`--flag=value ...`); the Python API when config is a dict."""
    if isinstance(arguments.get("config"), dict):
        code = "import json, sys\nfrom any2dataset import video2dataset\nvideo2dataset(**json.loads(sys.argv[1]))\n"
        return [sys.executable, "-c", code, json.dumps(arguments)]
    return [sys.executable, "-m", "any2dataset.commands.video2dataset"] + [
        f"--{name}={value if isinstance(value, str) else json.dumps(value)}" for name, value in arguments.items()]


def run_both(venv: Path, folder: Path, **arguments) -> tuple[Path, Path]:
    """video2dataset and ours at once on the same arguments, into folder/video2dataset and folder/any2dataset."""
    theirs, ours = folder / "video2dataset", folder / "any2dataset"
    commands = {"video2dataset": (video2dataset_argv(venv, **arguments, output_folder=str(theirs)),
                                  video2dataset_env()),
                "any2dataset": (our_argv({**arguments, "output_folder": str(ours)}), command_env())}
    running = {}
    for tool, (argv, env) in commands.items():
        # output to a file, not a pipe: a worker video2dataset leaves behind may hold a pipe open
        with open(folder / f"{tool}.log", "wb") as log:
            running[tool] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    for tool, process in running.items():
        process.wait(timeout=300)
        output = (folder / f"{tool}.log").read_text(errors="replace")
        assert process.returncode == 0 and (folder / tool).is_dir(), (tool, process.returncode, output[-3000:])
    return theirs, ours


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def metadata(folder: Path) -> tuple[list, dict]:
    tables = [pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]
    schemas = {tuple((f.name, str(f.type)) for f in table.schema) for table in tables}
    assert len(schemas) <= 1, schemas  # one schema for every shard
    return (list(schemas.pop()) if schemas else []), {row["key"]: row for t in tables for row in t.to_pylist()}


def members(folder: Path) -> dict[str, bytes]:
    """Every sample member (name -> bytes) of a webdataset or files output."""
    found = {}
    for tar in sorted(folder.glob("*.tar")):
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                found[member.name] = archive.extractfile(member).read()
    for path in sorted(folder.glob("*/*")):
        found[str(path.relative_to(folder))] = path.read_bytes()
    return found


def probe(data: bytes) -> tuple[list[str], float]:
    """The stream types and the duration of a video's bytes."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as file:
        file.write(data)
        file.flush()
        done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=duration",
                               "-of", "json", file.name], capture_output=True, text=True, check=True)
    info = json.loads(done.stdout)
    return sorted(s["codec_type"] for s in info["streams"]), float(info["format"]["duration"])


def video_difference(ours: bytes, theirs: bytes, clip: bool) -> str | None:
    if not clip:  # a downloaded video, written as it came
        return None if ours == theirs else f"other bytes ({len(ours)} against {len(theirs)})"
    (our_streams, our_duration), (their_streams, their_duration) = probe(ours), probe(theirs)
    if our_streams != their_streams or abs(our_duration - their_duration) > CLIP_TOLERANCE:
        return f"streams {our_streams} {our_duration:.2f} s against {their_streams} {their_duration:.2f} s"
    return None


def differences(theirs: Path, ours: Path, deliberate: dict | None = None) -> list[str]:
    """Every difference but the deliberate ones, as `where: ours ... theirs ...` lines.
    deliberate: key -> our status, for the samples whose status differs on purpose (a 404's error page
    and a body that is not a video, which video2dataset saves as the video; a video at a URL without a
    media extension, which video2dataset gives to yt-dlp): their media members, status, error_message
    are left out, and the counts of _stats.json must differ by exactly these samples."""
    deliberate = deliberate or {}
    found = []

    def check(same: bool, where: str, mine, their) -> None:
        if not same:
            found.append(f"{where}: ours {mine!r}, video2dataset {their!r}")

    their_schema, their_rows = metadata(theirs)
    our_schema, our_rows = metadata(ours)
    def deliberate_media(name: str) -> bool:
        return name.endswith(".mp4") and name.split("/")[-1].split(".")[0] in deliberate

    their_listing = [name for name in listing(theirs) if not deliberate_media(name)]
    our_listing = [name for name in listing(ours) if not deliberate_media(name)]
    check(our_listing == their_listing, "output folder",
          sorted(set(our_listing) - set(their_listing)), sorted(set(their_listing) - set(our_listing)))
    check(our_schema == their_schema, "parquet schema", our_schema, their_schema)
    check(sorted(our_rows) == sorted(their_rows), "parquet keys", sorted(our_rows), sorted(their_rows))
    for key in sorted(set(our_rows) & set(their_rows)):
        row, mine = dict(their_rows[key]), dict(our_rows[key])
        if key in deliberate:
            check(mine["status"] == deliberate[key], f"parquet row {key} status", mine["status"], deliberate[key])
            check((mine["error_message"] is None) == (deliberate[key] == "success"), f"parquet row {key} error",
                  mine["error_message"], deliberate[key])
            for name in ("status", "error_message", "mp4"):
                row.pop(name, None), mine.pop(name, None)
        for name, value in row.items():
            if name not in mine:
                continue  # reported with the schema
            if name == "mp4" and value is not None and mine[name] is not None:
                problem = video_difference(mine[name], value, "_" in key)
                check(problem is None, f"parquet row {key} mp4", problem, "")
            elif name == "error_message":
                check((mine[name] is None) == (value is None), f"parquet row {key} error_message", mine[name], value)
            else:
                check(mine[name] == value, f"parquet row {key} {name}", mine[name], value)
    their_members, our_members = members(theirs), members(ours)
    expected = sorted(name for name in their_members if not deliberate_media(name))
    mine = sorted(name for name in our_members if not deliberate_media(name))
    check(mine == expected, "sample members", sorted(set(mine) - set(expected)), sorted(set(expected) - set(mine)))
    if their_members or our_members:  # a sample of ours that succeeds has its video, one that fails none
        for key, status in deliberate.items():
            has_video = any(name.endswith(".mp4") and name.split("/")[-1].split(".")[0] == key for name in our_members)
            check(has_video == (status == "success"), f"{key}'s video", has_video, status)
    for name in sorted(set(their_members) & set(our_members)):
        data, key = their_members[name], name.split("/")[-1].split(".")[0]
        if name.endswith(".json"):
            their_json, our_json = json.loads(data), json.loads(our_members[name])
            check(list(our_json) == list(their_json), f"{name} keys", list(our_json), list(their_json))
            skip = {"error_message", "status"} if key in deliberate else {"error_message"}
            for field in their_json:
                if field in our_json and field not in skip:
                    check(our_json[field] == their_json[field], f"{name} {field}", our_json[field], their_json[field])
            if key in deliberate:
                check(our_json.get("status") == deliberate[key], f"{name} status", our_json.get("status"),
                      deliberate[key])
            else:
                check((our_json.get("error_message") is None) == (their_json["error_message"] is None),
                      f"{name} error_message", our_json.get("error_message"), their_json["error_message"])
        elif name.endswith(".txt"):
            check(our_members[name] == data, name, our_members[name], data)
        else:
            problem = video_difference(our_members[name], data, "_" in key)
            check(problem is None, name, problem, "")
    for stats in sorted(theirs.glob("*_stats.json")):
        their_stats = json.loads(stats.read_text())
        if not (ours / stats.name).exists():
            continue  # reported with the folder
        our_stats = json.loads((ours / stats.name).read_text())
        # ours may have more keys (a2d-stats' own), but video2dataset's all, in its order
        check([name for name in our_stats if name in their_stats] == list(their_stats), f"{stats.name} keys",
              list(our_stats), list(their_stats))
        here = [key for key in deliberate if stats.name == f"{shard_of(theirs, key)}_stats.json"]
        # how many more samples of each status ours has than video2dataset's, on purpose
        moved = {name: sum((deliberate[key] == status) - (their_rows[key]["status"] == status) for key in here)
                 for name, status in (("successes", "success"), ("failed_to_download", "failed_to_download"),
                                      ("failed_to_subsample", "failed_to_subsample"))}
        for name, value in their_stats.items():
            if name not in our_stats:
                continue
            mine, where = our_stats[name], f"{stats.name} {name}"
            if name in TIMINGS:
                check(isinstance(mine, float), where, mine, value)
            elif name == "status_dict":  # its error keys are error messages
                check(mine.get("success", 0) == value.get("success", 0) + moved["successes"], where + " success",
                      mine, value)
                check(sum(mine.values()) == sum(value.values()), where + " total", mine, value)
            elif name in moved:
                check(mine == value + moved[name], where, mine, value)
            elif name != "bytes_downloaded" or not here:
                check(mine == value, where, mine, value)
    return found


def compare(theirs: Path, ours: Path, deliberate: dict | None = None) -> None:
    found = differences(theirs, ours, deliberate)
    assert not found, f"{len(found)} differences:\n" + "\n".join(found[:60])


def shard_of(folder: Path, key: str) -> str:
    """The shard name (as in {shard}_stats.json) whose parquet holds this key."""
    for table in sorted(folder.glob("*.parquet")):
        if key in pq.read_table(table, columns=["key"]).column("key").to_pylist():
            return table.stem
    raise AssertionError(f"{key} in no parquet of {folder}")


# name -> (input format, list rows (a function of the server's base URL), arguments)
# b.mp4's [0, 5] splits into [0, 2], [2, 4] (the rest, exactly min_length long, is dropped);
# [0, 0.5] is shorter than min_length: the sample fails.
CLIPS = [[[0.0, 1.5], [2.0, 3.5]], [[0.0, 5.0]], [[0.0, 0.5]], [[1.0, 3.0]]]
CASES = {
    "csv-files": ("csv", rows_for, dict(output_format="files", caption_col="caption",
                                        save_additional_columns=["lang"], config=config(2))),
    "tsv-webdataset-default": ("tsv", rows_for, dict(output_format="webdataset", caption_col="caption",
                                                     config="default")),
    "txt-dummy": ("txt", rows_for, dict(output_format="dummy", config=config(2))),
    "json-parquet": ("json", rows_for, dict(output_format="parquet", caption_col="caption", config=config(3))),
    "parquet-clips-webdataset": (
        "parquet", lambda base: [{**row, "clips": clips} for row, clips in zip(rows_for(base), CLIPS)],
        dict(output_format="webdataset", caption_col="caption", clip_col="clips", save_additional_columns=["lang"],
             config=config(3, CLIPPING))),
    "parquet-clips-files-yaml": (
        "parquet", lambda base: [{"url": row["url"], "spans": clips} for row, clips in zip(rows_for(base), CLIPS)],
        dict(output_format="files", clip_col="spans", config="config.yaml")),
    "failures": ("csv", lambda base: rows_for(base, ("a.mp4", "missing.mp4", "words.mp4", "noext", "nothing")),
                 dict(output_format="webdataset", caption_col="caption", config=config(10))),
}


@pytest.fixture(scope="module")
def runs(venv, video_server, tmp_path_factory):
    """name -> (video2dataset's folder, ours), each case run once for the whole module."""
    done = {}

    def run(name: str) -> tuple[Path, Path]:
        if name not in done:
            fmt, rows, arguments = CASES[name]
            folder = tmp_path_factory.mktemp(name)
            url_list = folder / f"urls.{fmt}"
            write_list(url_list, fmt, rows(video_server))
            (folder / "config.yaml").write_text(YAML_CONFIG)
            done[name] = run_both(venv, folder, url_list=str(url_list), input_format=fmt, **arguments)
        return done[name]

    return run


@pytest.mark.parametrize("name", ["csv-files", "tsv-webdataset-default", "txt-dummy", "json-parquet",
                                  "parquet-clips-webdataset", "parquet-clips-files-yaml"])
def test_same_dataset_as_video2dataset(runs, name):
    theirs, ours = runs(name)
    assert list(theirs.glob("*_stats.json")), f"video2dataset wrote no shard for {name}: see its log"
    compare(theirs, ours)


def test_clip_keys_and_spans_as_video2dataset(runs):
    theirs, ours = runs("parquet-clips-webdataset")
    their_rows, our_rows = metadata(theirs)[1], metadata(ours)[1]
    clip_rows = {key: row["clips"] for key, row in their_rows.items() if "_" in key}
    assert clip_rows, "video2dataset cut no clip"
    assert {key: row["clips"] for key, row in our_rows.items() if "_" in key} == clip_rows
    too_short = [key for key, row in their_rows.items() if row["status"] == "failed_to_subsample"]
    assert [key for key, row in our_rows.items() if row["status"] == "failed_to_subsample"] == too_short


def test_failures_as_video2dataset(runs, video_server):
    theirs, ours = runs("failures")
    rows = metadata(theirs)[1]
    # a 404 fails to download, a body that is not a video fails to subsample (video2dataset saves both);
    # a video at a URL without an extension is downloaded (video2dataset's yt-dlp fails on it)
    deliberate = {key: status for key, row in rows.items() for name, status in
                  (("/missing.mp4", "failed_to_download"), ("/words.mp4", "failed_to_subsample"),
                   ("/noext", "success")) if row["url"].endswith(name)}
    assert len(deliberate) == 3
    compare(theirs, ours, deliberate)


def test_an_incremental_rerun_as_video2dataset(runs, venv):
    theirs, ours = runs("csv-files")
    folder = theirs.parent
    for output in (theirs, ours):  # shard 00001 unfinished: the rerun writes it again, and only it
        (output / "00001_stats.json").unlink()
    before = {tool: {p: p.stat().st_mtime_ns for p in tool.rglob("*")} for tool in (theirs, ours)}
    fmt, _, arguments = CASES["csv-files"]
    run_both(venv, folder, url_list=str(folder / f"urls.{fmt}"), input_format=fmt, **arguments)
    rewritten = {tool.name: sorted(str(p.relative_to(tool)) for p in tool.rglob("*")
                                   if before[tool].get(p) != p.stat().st_mtime_ns and p.is_file())
                 for tool in (theirs, ours)}
    assert "00001_stats.json" in rewritten["video2dataset"]
    assert rewritten["any2dataset"] == rewritten["video2dataset"]
    compare(theirs, ours)
