"""End to end, a URL list to a webdataset: img2dataset, our pipeline and the any2dataset command.

    python benchmarks/e2e.py [--files 20000] [--runs 3] [--resize]
                             [--i2d-settings 2x64,2x128,4x64] [--a2d-settings 2x32,2x64,2x128]
                             [--img2dataset PATH] [--nginx PATH]
                             [--wait-quiet 120] [--redo-busy 3]

Serves --files files from nginx (one worker) on 127.0.0.1 and turns their URL list into a
webdataset with each contender, alternating contenders run by run (the order rotates each
round), --runs counted rounds:

  img2dataset   img2dataset --url_list urls.txt --input_format txt --output_format webdataset
                  --disable_all_reencoding True --processes_count P --thread_count T
  a2d pipeline  a2d-read urls.txt | a2d-shard | a2d-fetch -j 256 | a2d-write --format webdataset out/
  any2dataset   any2dataset --url_list urls.txt --input_format txt --output_folder out
                  --output_format webdataset --processes_count P --thread_count T
                  --disable_all_reencoding True            (skipped when bin/any2dataset is absent)

Each command's P and T are chosen first, the same way: each of --i2d-settings (img2dataset)
and --a2d-settings (any2dataset) runs once and the fastest that downloaded everything is
used, or within 5% of it the one with the least memory (those runs also warm the caches).
Then --warmup uncounted rounds of the pipeline.

The machine is shared, so before each run the benchmark waits (up to --wait-quiet s) until
the machine is idle, and a run during which other processes used more than 1 CPU second
(or 5% of the contender's CPU) is done again, up to --redo-busy times; the CPU used by
other processes during each run is printed with it.

Without --resize the corpus is served_corpus's random files of 50-90 KB, and every output is
checked against it: every URL's payload in the tars must have the served file's sha256.
With --resize the corpus is photo-like JPEGs (resize_vs_img2dataset's generator, --distinct
different images hard-linked under --files names), img2dataset runs with its default
resizing (image_size 256, border, jpg), our pipeline with
`a2d-subsample --image-size 256 --resize-mode border` between fetch and write, and
any2dataset without --disable_all_reencoding; outputs are checked for counts and that every
payload is a 256x256 JPEG (headers of all, a full decode of a sample).

Measured for each run of a contender, which runs as `bash -c` in a session of its own:
wall time until every process of the session has ended; CPU seconds (user+sys) of the whole
process tree, from RUSAGE_CHILDREN around the run (this process is a child subreaper, so even
orphans are counted); peak RSS summed over all processes of the session, polled from /proc
every --poll seconds (shared pages count once per process, as in `ps`); nginx's own CPU.
Each stage of our pipeline runs under /usr/bin/time, which gives its own CPU (its worker
processes included); its summed peak RSS comes from the same polling. Medians are printed,
with the processes alive at the moment of each contender's peak.
"""

import argparse
import collections
import contextlib
import ctypes
import datetime
import glob
import hashlib
import io
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from fetch_vs_img2dataset import free_port, served_corpus, start_nginx
from resize_vs_img2dataset import MAKE_IMAGES

STAGES = ("a2d-read", "a2d-shard", "a2d-fetch", "a2d-subsample", "a2d-write")
TIME_FORMAT = "%U %S %e %M"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36
PAYLOAD_SKIP = {"json", "txt", "parquet"}  # members of a sample that are not its payload


# ---------------------------------------------------------------- serving the resize corpus

@contextlib.contextmanager
def served_jpegs(nginx: str, files: int, distinct: int, prefix: str):
    """Like served_corpus, with photo-like JPEGs: `distinct` generated images (sides 300-2,000 px,
    quality 90) hard-linked under `files` names 000000.jpg, ...: (folder, port, bytes)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o755)  # nginx's workers read it
    server = None
    try:
        pool, raw = os.path.join(folder, "pool"), os.path.join(folder, "images.raw")
        os.makedirs(pool)
        os.makedirs(os.path.join(folder, "files"))
        subprocess.run([sys.executable, "-c", MAKE_IMAGES, str(distinct), os.devnull, raw], check=True)
        sizes = []
        with open(raw, "rb") as images:
            while header := images.read(4):
                data = images.read(int.from_bytes(header, "little"))
                with open(os.path.join(pool, f"{len(sizes):06d}.jpg"), "wb") as out:
                    out.write(data)
                sizes.append(len(data))
        os.remove(raw)
        for i in range(files):
            os.link(os.path.join(pool, f"{i % distinct:06d}.jpg"), os.path.join(folder, "files", f"{i:06d}.jpg"))
        port = free_port()
        server = start_nginx(nginx, folder, port)
        yield folder, port, sum(sizes[i % distinct] for i in range(files))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- measuring a process tree

def read_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields from the state on (index 0 = state, 1 = ppid, 3 = session,
    11 = utime, 12 = stime, 21 = rss), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rindex(b")") + 2:].decode().split()


def read_argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def label_of(argv: list[str]) -> str | None:
    """Which part of a contender a process is, from its command line."""
    if not argv or not argv[0]:
        return None
    if argv[0] == "/usr/bin/time":
        return "(time)"
    for arg in argv[:3]:
        base = os.path.basename(arg)
        if base in STAGES or base in ("any2dataset", "img2dataset"):
            return base
        if arg.startswith("any2dataset."):  # python -m any2dataset.fetch (any2dataset's stages, fetch workers)
            return "a2d-" + arg.split(".")[1]
    if os.path.basename(argv[0]) == "bash":
        return "bash"
    return None


class Sampler(threading.Thread):
    """Polls the processes of session `sid`: peak of the summed RSS, overall and per part."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.sid, self.interval = 0, interval
        self.stop = threading.Event()
        self.peak = 0
        self.peak_by_label: collections.Counter = collections.Counter()
        self.most_processes = 0
        self.at_peak: list[tuple[str, int]] = []  # (part, RSS) of each process when the sum peaked
        self.foreign = set(pids())  # there before the contender started, so not part of it

    def start_on(self, sid: int) -> None:
        self.sid = sid
        self.start()

    def run(self) -> None:
        while True:
            self.sample()
            if self.stop.wait(self.interval):
                return

    def sample(self) -> None:
        current = {}
        for pid in pids():
            if pid in self.foreign:
                continue
            fields = read_stat(pid)
            if fields is None:
                continue
            if int(fields[3]) != self.sid:
                self.foreign.add(pid)
                continue
            current[pid] = (int(fields[1]), read_argv(pid), int(fields[21]) * PAGE)
        by_label: collections.Counter = collections.Counter()
        detail = []
        for pid, (_, argv, rss) in current.items():
            label, ancestor = label_of(argv), pid
            while label is None and ancestor in current:  # a worker belongs to its nearest labelled ancestor
                ancestor = current[ancestor][0]
                label = label_of(current[ancestor][1]) if ancestor in current else "other"
            by_label[label or "other"] += rss
            detail.append((label or "other", pid, rss))
        total = sum(rss for label, rss in by_label.items() if label != "(time)")  # the wrappers are ours
        if total > self.peak:
            self.peak = total
            self.at_peak = sorted((label, rss) for label, _, rss in detail if label != "(time)")
        self.most_processes = max(self.most_processes, len(current))
        for label, rss in by_label.items():
            self.peak_by_label[label] = max(self.peak_by_label[label], rss)


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def wait_for_quiet(limit: float, threshold: float = 0.15, window: float = 3.0) -> float:
    """Wait (at most `limit` s) for `window` s in which the machine is busy less than
    `threshold` of one core; returns the busy fraction of the last window."""
    deadline = time.monotonic() + limit
    while True:
        before = machine_busy()
        time.sleep(window)
        busy = (machine_busy() - before) / window
        if busy < threshold or time.monotonic() > deadline:
            return busy


def nginx_cpu(folder: str) -> float:
    """CPU seconds so far of nginx's master and workers."""
    try:
        with open(os.path.join(folder, "nginx.pid")) as pid_file:
            master = int(pid_file.read())
    except (OSError, ValueError):
        return 0.0
    total = 0
    for pid in pids():
        fields = read_stat(pid)
        if fields and (pid == master or int(fields[1]) == master):
            total += int(fields[11]) + int(fields[12])
    return total / TICK


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mib: float
    nginx_cpu: float
    other_cpu: float = 0.0  # CPU used on the machine by anything but the contender, nginx and us
    stages: dict = field(default_factory=dict)  # stage -> (user s, sys s, summed peak MiB)
    at_peak: list = field(default_factory=list)
    processes: int = 0
    failed: int = 0
    note: str = ""


def measure(script: str, cwd: str, env: dict, corpus_folder: str, poll: float,
            timings: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run `script` with bash in a new session; (Run, stderr)."""
    before, nginx_before = resource.getrusage(resource.RUSAGE_CHILDREN), nginx_cpu(corpus_folder)
    self_before, busy_before = resource.getrusage(resource.RUSAGE_SELF), machine_busy()
    with tempfile.TemporaryFile() as err:
        sampler = Sampler(poll)
        started = time.perf_counter()
        process = subprocess.Popen(["bash", "-c", "set -o pipefail; " + script], cwd=cwd, env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                   start_new_session=True)
        sampler.start_on(process.pid)
        try:
            _, status, _ = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            reap_session(process.pid)
        except BaseException:  # Ctrl-C: take the contender down with us
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
        wall = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
        after, busy_after = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy()
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if process.returncode != 0:
        sys.exit(f"failed with status {process.returncode}: {script}\n{stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    nginx = nginx_cpu(corpus_folder) - nginx_before
    own = self_after.ru_utime - self_before.ru_utime + self_after.ru_stime - self_before.ru_stime
    run = Run(wall, cpu, sampler.peak / 2**20, nginx, other_cpu=max(0.0, busy_after - busy_before - cpu - nginx - own),
              processes=sampler.most_processes, at_peak=sampler.at_peak)
    for stage, path in (timings or {}).items():
        with open(path) as timing:
            user, system, _, _ = timing.read().split("\n")[-2].split()  # last line: ours (earlier: exit status)
        run.stages[stage] = (float(user), float(system), sampler.peak_by_label[stage] / 2**20)
    return run, stderr


def reap_session(sid: int, patience: float = 60.0) -> None:
    """Wait until no process of session `sid` is left; reap the orphans that came to us."""
    deadline = time.monotonic() + patience
    while True:
        left = [(pid, fields) for pid in pids() if (fields := read_stat(pid)) and int(fields[3]) == sid]
        if not left:
            return
        for pid, fields in left:
            if int(fields[1]) == os.getpid():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            os.killpg(sid, signal.SIGKILL)
            print(f"processes of session {sid} still running {patience:.0f} s after it ended: killed",
                  file=sys.stderr)
            deadline = float("inf")
        time.sleep(0.05)


# ---------------------------------------------------------------- checking outputs

def tar_samples(folder: str):
    """(url, payload extension, payload bytes) of every sample in the tars of `folder`."""
    for path in sorted(glob.glob(os.path.join(folder, "*.tar"))):
        with tarfile.open(path) as tar:
            key, url, payloads = None, None, []
            for member in tar:
                if not member.isfile():
                    continue
                name = os.path.basename(member.name)
                stem, _, extension = name.partition(".")
                if stem != key:
                    if key is not None:
                        yield url, payloads
                    key, url, payloads = stem, None, []
                data = tar.extractfile(member).read()
                if extension == "json":
                    url = json.loads(data).get("url")
                elif extension not in PAYLOAD_SKIP:
                    payloads.append((extension, data))
            if key is not None:
                yield url, payloads


def shard_stats(folder: str) -> dict:
    totals = collections.Counter()
    for path in glob.glob(os.path.join(folder, "*_stats.json")):
        with open(path) as stats:
            values = json.load(stats)
        for name in ("count", "successes", "failed_to_download", "failed_to_subsample"):
            totals[name] += values.get(name, 0) or 0
    return totals


def check_copies(folder: str, expected: dict[str, str]) -> tuple[int, str]:
    """Every URL's payload must be the served file: (failures, note)."""
    found, extensions, problems = {}, collections.Counter(), collections.Counter()
    for url, payloads in tar_samples(folder):
        if url in found:
            problems["duplicate url"] += 1
        if len(payloads) != 1:
            problems[f"{len(payloads)} payloads"] += 1
            continue
        extension, data = payloads[0]
        extensions[extension] += 1
        found[url] = hashlib.sha256(data).hexdigest()
    missing = sum(url not in found for url in expected)
    different = sum(url in found and found[url] != digest for url, digest in expected.items())
    if different:
        problems["different bytes"] += different
    stats = shard_stats(folder)
    note = (f"{len(found)} samples, {missing} missing, stats: {stats['successes']} successes "
            f"{stats['failed_to_download']} failed; payloads " + " ".join(f".{e} {n}" for e, n in extensions.items()))
    if problems:
        note += "; PROBLEMS: " + ", ".join(f"{what} {n}" for what, n in problems.items())
    return missing + different + sum(n for what, n in problems.items() if what != "different bytes"), note


def check_resized(folder: str, expected: dict[str, str], side: int, decode: int) -> tuple[int, str]:
    """Every URL must have one JPEG of side x side; `decode` of them are decoded whole."""
    from PIL import Image

    found, problems, decoded = set(), collections.Counter(), 0
    rng = random.Random(0)
    for url, payloads in tar_samples(folder):
        if len(payloads) != 1:
            problems[f"{len(payloads)} payloads"] += 1
            continue
        extension, data = payloads[0]
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG" or image.size != (side, side):
                    problems[f"{image.format} {image.size[0]}x{image.size[1]} .{extension}"] += 1
                    continue
                if decoded < decode and rng.random() < 4 * decode / max(1, len(expected)):
                    image.load()
                    decoded += 1
        except Exception as error:  # noqa: BLE001 - any failure to read is what we count
            problems[f"unreadable: {type(error).__name__}"] += 1
            continue
        found.add(url)
    missing = sum(url not in found for url in expected)
    stats = shard_stats(folder)
    note = (f"{len(found)} {side}x{side} JPEGs ({decoded} decoded whole), {missing} missing, stats: "
            f"{stats['successes']} successes {stats['failed_to_download']} failed to download "
            f"{stats['failed_to_subsample']} failed to resize")
    if problems:
        note += "; PROBLEMS: " + ", ".join(f"{what} {n}" for what, n in problems.items())
    return missing, note


# ---------------------------------------------------------------- contenders

def img2dataset_script(img2dataset: str, setting: str, resize: bool) -> str:
    processes, threads = setting.split("x")
    words = [img2dataset, "--url_list", "urls.txt", "--input_format", "txt", "--output_folder", "out",
             "--output_format", "webdataset", "--processes_count", processes, "--thread_count", threads]
    if not resize:
        words += ["--disable_all_reencoding", "True"]
    return shlex.join(words)


def pipeline_script(times_dir: str, resize: bool, concurrency: int) -> tuple[str, dict[str, str]]:
    stages = [["a2d-read", "urls.txt"], ["a2d-shard"], ["a2d-fetch", "-j", str(concurrency)]]
    if resize:
        stages.append(["a2d-subsample", "--image-size", "256", "--resize-mode", "border"])
    stages.append(["a2d-write", "--format", "webdataset", "out/"])
    timings = {stage[0]: os.path.join(times_dir, stage[0] + ".time") for stage in stages}
    script = " | ".join(shlex.join(["/usr/bin/time", "-f", TIME_FORMAT, "-o", timings[stage[0]], *stage])
                        for stage in stages)
    return script, timings


def shown_pipeline(resize: bool, concurrency: int) -> str:
    subsample = "a2d-subsample --image-size 256 --resize-mode border | " if resize else ""
    return f"a2d-read urls.txt | a2d-shard | a2d-fetch -j {concurrency} | {subsample}a2d-write --format webdataset out/"


def any2dataset_script(resize: bool, setting: str) -> str:
    processes, threads = setting.split("x")
    words = ["any2dataset", "--url_list", "urls.txt", "--input_format", "txt", "--output_folder", "out",
             "--output_format", "webdataset", "--processes_count", processes, "--thread_count", threads]
    if not resize:
        words += ["--disable_all_reencoding", "True"]
    return shlex.join(words)


# ---------------------------------------------------------------- reporting

def machine() -> str:
    model, memory = "?", 0
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    return (f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {model}, "
            f"{memory / 2**30:.1f} GiB RAM, Linux {platform.release()}, Python {platform.python_version()}")


def versions(img2dataset: str | None, nginx: str) -> str:
    found = []
    if img2dataset:
        python = os.path.join(os.path.dirname(img2dataset), "python")
        result = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('img2dataset'))"],
                                capture_output=True, text=True, check=False)
        found.append(f"img2dataset {result.stdout.strip() or '?'}")
    result = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    found.append(result.stderr.strip().replace("nginx version: ", ""))
    with contextlib.suppress(ImportError):
        import pycurl

        found.append(pycurl.version.split()[1])
    with contextlib.suppress(ImportError):
        import PIL

        found.append(f"Pillow {PIL.__version__}")
    return ", ".join(found)


def median(values) -> float:
    return statistics.median(list(values))


def print_report(args, results: dict[str, list[Run]], searches: dict[str, tuple[dict[str, Run], str]], corpus: str,
                 total_bytes: int, commands: dict[str, str], img2dataset: str | None, nginx: str) -> None:
    mode = "download and resize to 256 px border, JPEG 95" if args.resize else "download only (no re-encoding)"
    print()
    print(f"## End to end: {args.files:,} URLs to a webdataset, {mode}")
    print()
    print(f"- date: {datetime.date.today()}; machine: {machine()}")
    print(f"- versions: {versions(img2dataset, nginx)}")
    print(f"- corpus: {corpus}, {total_bytes / 1e6:,.0f} MB, served by nginx (1 worker) on 127.0.0.1")
    print(f"- median of {args.runs} counted runs, contenders alternating (order rotated each round), "
          f"after {args.warmup} uncounted round(s); CPU = user+sys of the whole process tree; peak RSS = "
          f"largest sum of RSS over the contender's processes, polled every {args.poll * 1000:.0f} ms")
    for name, (searched, best) in searches.items():
        if searched:
            tried = ", ".join(f"{setting}: {args.files / run.wall:,.0f} files/s, {run.peak_mib:,.0f} MiB"
                              for setting, run in searched.items())
            print(f"- {name} settings (processes x threads), one run each: {tried}; used: {best} "
                  f"(the fastest; within 5% of it, the one with less memory)")
    for name, command in commands.items():
        print(f"- {name}: `{command}`")
    print()
    print("| contender | files/s | MB/s | wall s | CPU s | peak RSS MiB (sum) | nginx CPU s | failed |")
    print("|---|---|---|---|---|---|---|---|")
    medians = {}
    for name, runs in results.items():
        if not runs:
            continue
        wall, cpu, peak = median(r.wall for r in runs), median(r.cpu for r in runs), median(r.peak_mib for r in runs)
        medians[name] = (args.files / wall, cpu, peak)
        print(f"| {name} | {args.files / wall:,.0f} | {total_bytes / wall / 1e6:,.0f} | {wall:.1f} | {cpu:.1f} | "
              f"{peak:,.0f} | {median(r.nginx_cpu for r in runs):.1f} | {max(r.failed for r in runs)} |")
    if "img2dataset" in medians:
        rate, cpu, peak = medians["img2dataset"]
        print()
        # The machine's speed drifts between rounds: the ratio within each round (same conditions)
        # is steadier than the ratio of medians; both are shown.
        print("| ours / img2dataset | files/s | files/s within a round: median (min-max) | CPU s | peak RSS |")
        print("|---|---|---|---|---|")
        for name, (our_rate, our_cpu, our_peak) in medians.items():
            if name != "img2dataset":
                paired = sorted(theirs.wall / ours.wall for theirs, ours in zip(results["img2dataset"], results[name]))
                within = f"{median(paired):.2f}x ({paired[0]:.2f}-{paired[-1]:.2f})" if paired else "-"
                print(f"| {name} | {our_rate / rate:.2f}x | {within} | {our_cpu / cpu:.2f}x | {our_peak / peak:.2f}x |")
    pipeline_runs = results.get("a2d pipeline")
    if pipeline_runs and pipeline_runs[0].stages:
        print()
        print("Our pipeline by stage (each stage's own user+sys CPU, its workers included, from /usr/bin/time; "
              "summed peak RSS of its processes), medians:")
        print()
        print("| stage | CPU s (user + sys) | share of the pipeline's CPU | peak RSS MiB (sum of its processes) |")
        print("|---|---|---|---|")
        whole = median(r.cpu for r in pipeline_runs)
        for stage in pipeline_runs[0].stages:
            user = median(r.stages[stage][0] for r in pipeline_runs)
            system = median(r.stages[stage][1] for r in pipeline_runs)
            cpu = median(sum(r.stages[stage][:2]) for r in pipeline_runs)
            print(f"| {stage} | {cpu:.1f} ({user:.1f} + {system:.1f}) | {100 * cpu / whole:.0f}% | "
                  f"{median(r.stages[stage][2] for r in pipeline_runs):,.0f} |")
    print()
    print("Processes alive when the summed RSS peaked (MiB each), in the run with the median peak:")
    print()
    for name, runs in results.items():
        if runs:
            run = sorted(runs, key=lambda r: r.peak_mib)[len(runs) // 2]
            parts = collections.defaultdict(list)
            for label, rss in run.at_peak:
                parts[label].append(f"{rss / 2**20:.0f}")
            shown = "; ".join(f"{label} {' + '.join(sizes)}" for label, sizes in parts.items())
            print(f"- {name} ({run.peak_mib:,.0f} MiB): {shown}")
    print()
    print("Every run:")
    print()
    print("| round | contender | files/s | wall s | CPU s | peak RSS MiB | nginx CPU s | other CPU s | processes "
          "| check |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        for index, run in enumerate(runs, 1):
            print(f"| {index} | {name} | {args.files / run.wall:,.0f} | {run.wall:.1f} | {run.cpu:.1f} | "
                  f"{run.peak_mib:,.0f} | {run.nginx_cpu:.1f} | {run.other_cpu:.1f} | {run.processes} | {run.note} |")
    sys.stdout.flush()


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resize", action="store_true", help="photo-like JPEGs resized to 256 px border mode")
    parser.add_argument("--distinct", type=int, default=500, help="--resize: different images generated")
    parser.add_argument("-j", "--concurrency", type=int, default=256, help="the pipeline's a2d-fetch -j")
    parser.add_argument("--a2d-settings", default="2x32,2x64,2x128",
                        help="any2dataset --processes_count x --thread_count to try; the best is used")
    parser.add_argument("--i2d-settings", default="2x64,2x128,4x64",
                        help="img2dataset processes x threads to try once each; one value skips the search")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds of our contenders first")
    parser.add_argument("--wait-quiet", type=float, default=120,
                        help="before each run, wait up to this many seconds for the machine to be idle (0: don't)")
    parser.add_argument("--redo-busy", type=int, default=3,
                        help="run again (up to this many times) when other processes used over 1 CPU s "
                             "(or 5%% of the contender's) during a run")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between RSS samples")
    parser.add_argument("--decode", type=int, default=100, help="--resize: images decoded whole per output")
    default_i2d = "/work/i2d-venv/bin/img2dataset"
    parser.add_argument("--img2dataset", default=shutil.which("img2dataset") or
                        (default_i2d if os.path.exists(default_i2d) else None))
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = parser.parse_args()
    if not os.path.exists(args.nginx):
        sys.exit("nginx is needed: apt-get install nginx-light")
    if not os.path.exists("/usr/bin/time"):
        sys.exit("GNU time is needed for the per-stage CPU: apt-get install time")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("could not become a child subreaper: orphaned processes' CPU would not be counted", file=sys.stderr)

    bin_dir = os.path.join(ROOT, "bin")
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1",  # img2dataset would otherwise ask PyPI at start
               PATH=os.pathsep.join([bin_dir, os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    have_any2dataset = os.path.exists(os.path.join(bin_dir, "any2dataset"))
    if not have_any2dataset:
        print("bin/any2dataset not found: skipping the any2dataset command", file=sys.stderr)
    if not args.img2dataset:
        print("img2dataset not found (--img2dataset PATH): measuring ours only", file=sys.stderr)

    if args.resize:
        serving = served_jpegs(args.nginx, args.files, args.distinct, "a2d-e2e-")
        corpus = (f"{args.files:,} photo-like JPEGs ({args.distinct} different ones, quality 90, "
                  f"sides 300-2,000 px)")
    else:
        serving = served_corpus(args.nginx, args.files, "a2d-e2e-")
        corpus = f"{args.files:,} random files of 50-90 KB"
    print(f"generating and serving {corpus} ...", file=sys.stderr)
    with serving as (folder, port, total_bytes):
        work = os.path.join(folder, "work")
        os.makedirs(work)
        expected = {}
        with open(os.path.join(work, "urls.txt"), "w") as urls:
            for i in range(args.files):
                url = f"http://127.0.0.1:{port}/{i:06d}.jpg"
                urls.write(url + "\n")
                if args.resize:
                    expected[url] = ""
                else:
                    with open(os.path.join(folder, "files", f"{i:06d}.jpg"), "rb") as served:
                        expected[url] = hashlib.sha256(served.read()).hexdigest()

        def one_run(name: str, script: str, timings: dict | None = None) -> Run:
            for attempt in range(1 + args.redo_busy):
                if args.wait_quiet:
                    busy = wait_for_quiet(args.wait_quiet)
                    if busy >= 0.15:
                        print(f"  (the machine is busy: {busy:.0%} of a core before this run)", file=sys.stderr)
                run = measure_and_check(name, script, timings)
                if run.other_cpu <= max(1.0, 0.05 * run.cpu):
                    break
                if attempt < args.redo_busy:
                    print(f"  {name}: other processes used {run.other_cpu:.1f} CPU s during the run: again",
                          file=sys.stderr)
                else:
                    run.note += f"; other processes used {run.other_cpu:.1f} CPU s"
            return run

        def measure_and_check(name: str, script: str, timings: dict | None) -> Run:
            shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
            run, stderr = measure(script, work, env, folder, args.poll, timings)
            if args.resize:
                run.failed, run.note = check_resized(os.path.join(work, "out"), expected, 256, args.decode)
            else:
                run.failed, run.note = check_copies(os.path.join(work, "out"), expected)
            print(f"  {name}: {args.files / run.wall:,.0f} files/s, {run.wall:.1f} s, cpu {run.cpu:.1f} s, "
                  f"peak {run.peak_mib:,.0f} MiB, nginx {run.nginx_cpu:.1f} s, other {run.other_cpu:.1f} s, "
                  f"{run.note}", file=sys.stderr)
            if run.failed:
                print(f"  {name} stderr (end): {stderr[-1500:]}", file=sys.stderr)
            shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
            return run

        def pick(label: str, settings: list[str], script_for) -> tuple[dict[str, Run], str]:
            """Each PxT setting once; the fastest of those that lost nothing, within 5% of it a tie
            won by less memory."""
            if len(settings) == 1:
                return {}, settings[0]
            print(f"{label} settings, one run each:", file=sys.stderr)
            tried = {setting: one_run(f"{label} {setting}", script_for(setting)) for setting in settings}
            complete = [s for s in tried if not tried[s].failed] or list(tried)
            fastest = min(tried[s].wall for s in complete)
            return tried, min((s for s in complete if tried[s].wall <= fastest * 1.05), key=lambda s: tried[s].peak_mib)

        searched, best = {}, None
        if args.img2dataset:
            searched, best = pick("img2dataset", [s.strip() for s in args.i2d_settings.split(",") if s.strip()],
                                  lambda setting: img2dataset_script(args.img2dataset, setting, args.resize))
        a2d_searched, a2d_best = {}, None
        if have_any2dataset:
            a2d_searched, a2d_best = pick("any2dataset", [s.strip() for s in args.a2d_settings.split(",") if s.strip()],
                                          lambda setting: any2dataset_script(args.resize, setting))

        pipeline, timings = pipeline_script(work, args.resize, args.concurrency)
        contenders = {}
        if args.img2dataset:
            contenders["img2dataset"] = (img2dataset_script(args.img2dataset, best, args.resize), None)
        contenders["a2d pipeline"] = (pipeline, timings)
        if have_any2dataset:
            contenders["any2dataset"] = (any2dataset_script(args.resize, a2d_best), None)
        commands = {"img2dataset": img2dataset_script("img2dataset", best, args.resize) if args.img2dataset else None,
                    "a2d pipeline": shown_pipeline(args.resize, args.concurrency),
                    "any2dataset": contenders.get("any2dataset", ("",))[0]}
        commands = {name: command for name, command in commands.items() if name in contenders}

        for round_ in range(args.warmup):
            print(f"warm-up round {round_ + 1}:", file=sys.stderr)
            for name, contender in contenders.items():
                if name == "a2d pipeline" or not (searched if name == "img2dataset" else a2d_searched):
                    one_run(name, *contender)
        results = {name: [] for name in contenders}
        names = list(contenders)
        for round_ in range(args.runs):
            print(f"round {round_ + 1} of {args.runs}:", file=sys.stderr)
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                results[name].append(one_run(name, *contenders[name]))
        print_report(args, results, {"img2dataset": (searched, best), "any2dataset": (a2d_searched, a2d_best)},
                     corpus, total_bytes, commands, args.img2dataset, args.nginx)


if __name__ == "__main__":
    main()
