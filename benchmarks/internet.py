"""Downloads over a simulated internet: a2d-fetch, our pipeline and any2dataset against
img2dataset and curl --parallel, on thousands of hosts with latency, slow links and faults.

    python benchmarks/internet.py [--hosts 2000] [--urls 20000] [--runs 3] [-j 1024]
                                  [--i2d-settings 2x64,2x256,2x512] [--a2d-setting 2x512]
                                  [--sweep 256,1024,4096,10000] [--idle 10000]
                                  [--img2dataset PATH] [--addresses] [--skip-contest]

The internet is benchmarks/siminet.py (its docstring has every distribution): --hosts hosts
on their own loopback addresses, served by one asyncio process, with a DNS server on
127.0.0.53:53 that names them hN.sim.test. The benchmark runs in a mount namespace of its
own where /etc/resolv.conf names that server, so every contender looks names up the way it
always does (img2dataset and curl through getaddrinfo, a2d-fetch with its own resolver);
--addresses uses literal addresses instead (and needs no root).

The contest (--runs rounds, contenders alternating, order rotated each round; every
contender with --timeout 4 and no retries):

  a2d-fetch     a2d-read urls.txt | a2d-fetch -j J --timeout 4 --retries 0 > fetched.jsonl
  a2d pipeline  a2d-read urls.txt | a2d-shard | a2d-fetch -j J --timeout 4 --retries 0
                  | a2d-write --format webdataset out/
  any2dataset   any2dataset --url_list urls.txt --output_format webdataset --processes_count P
                  --thread_count T --timeout 4 --retries 0 --disable_all_reencoding True
  img2dataset   the same arguments, at the best of --i2d-settings (each run once first)
  curl          curl --parallel --parallel-max J/k -L --connect-timeout 4 --speed-limit 1
                  --speed-time 4 -m 60, in k processes (curl takes at most 300 at once),
                  every body to a file

Files/s counts successful downloads over wall time. Every output is read back: each URL
must appear once (with a success or a failure), and every success must carry the bytes the
server sent (sha256 of the expected body); a URL that should fail must not succeed.

The sweep runs a2d-fetch alone and curl at each -j of --sweep on the same list: files/s,
fetch-time percentiles (a2d-fetch's fetch_seconds, curl's time_total) and peak memory.
--idle N measures the memory of N downloads in flight that wait on stalled servers.
"""

import argparse
import collections
import glob
import hashlib
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import siminet  # noqa: E402
from e2e import measure, tar_samples, wait_for_quiet  # noqa: E402

NAMESPACE_MARK = "A2D_INTERNET_BENCH_NAMESPACE"
DNS_ADDRESS = "127.0.0.53"
TIMEOUT = 4


def enter_namespace(args) -> None:
    """Re-run this script in a mount namespace whose /etc/resolv.conf names our DNS server."""
    if os.environ.get(NAMESPACE_MARK):
        resolv = os.environ[NAMESPACE_MARK]
        subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
        return
    resolv = tempfile.NamedTemporaryFile("w", suffix=".resolv.conf", delete=False)
    resolv.write(f"nameserver {DNS_ADDRESS}\noptions timeout:2 attempts:2\n")
    resolv.close()
    environment = dict(os.environ, **{NAMESPACE_MARK: resolv.name})
    status = subprocess.call(["unshare", "-m", sys.executable, *sys.argv], env=environment)
    os.unlink(resolv.name)
    sys.exit(status)


# ---------------------------------------------------------------- contenders

def a2d_fetch_script(concurrency: int) -> str:
    return (f"a2d-read -q urls.txt | a2d-fetch -q -j {concurrency} --timeout {TIMEOUT} --retries 0 "
            f"> fetched.jsonl")


def pipeline_script(concurrency: int) -> str:
    return (f"a2d-read -q urls.txt | a2d-shard -q | a2d-fetch -q -j {concurrency} --timeout {TIMEOUT} --retries 0 "
            f"| a2d-write -q --format webdataset out/")


def any2dataset_script(setting: str) -> str:
    processes, threads = setting.split("x")
    return shlex.join(["any2dataset", "--url_list", "urls.txt", "--input_format", "txt", "--output_folder", "out",
                       "--output_format", "webdataset", "--processes_count", processes, "--thread_count", threads,
                       "--timeout", str(TIMEOUT), "--retries", "0", "--disable_all_reencoding", "True", "-q"])


def img2dataset_script(img2dataset: str, setting: str) -> str:
    processes, threads = setting.split("x")
    return shlex.join([img2dataset, "--url_list", "urls.txt", "--input_format", "txt", "--output_folder", "out",
                       "--output_format", "webdataset", "--processes_count", processes, "--thread_count", threads,
                       "--timeout", str(TIMEOUT), "--retries", "0", "--disable_all_reencoding", "True"])


def curl_script(work: str, urls: list[str], concurrency: int) -> str:
    """k curl processes (each takes at most 300 transfers at once), each on its slice."""
    processes = -(-concurrency // 300)
    commands = []
    for part in range(processes):
        config = os.path.join(work, f"curl{part}.cfg")
        with open(config, "w") as out:
            for index in range(part, len(urls), processes):
                out.write(f'url = "{urls[index]}"\noutput = "files/{index}"\n')
        commands.append(
            f"curl -s --parallel --parallel-immediate --parallel-max {concurrency // processes} -L --max-redirs 10 "
            f"--connect-timeout {TIMEOUT} --speed-limit 1 --speed-time {TIMEOUT} -m 60 -K {config} "
            f"-w '%{{url}}\\t%{{http_code}}\\t%{{exitcode}}\\t%{{time_total}}\\n' > curl{part}.log")
    return "mkdir -p files; " + " & ".join(commands) + " & wait"


# ---------------------------------------------------------------- checking outputs

class Truth:
    """What each URL should give: the sha256 of its body, or None for a URL that must fail."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.sha = {}
        for url in urls:
            if siminet.outcome_of(url) == "ok":
                self.sha[url] = siminet.expected_sha256("/" + url.split("/", 3)[3])
            else:
                self.sha[url] = None

    def check(self, found: dict[str, str | None], rows: int) -> tuple[int, int, str]:
        """`found`: url -> sha256 of the payload (None for a failure); `rows`: rows reported.
        (successes, problems, note)"""
        problems = collections.Counter()
        for url, expected in self.sha.items():
            got = found.get(url, "missing")
            if got == "missing":
                problems["missing"] += 1
            elif got is not None and expected is None:
                problems["succeeded where the server failed"] += 1
            elif got is not None and got != expected:
                problems["different bytes"] += 1
        if rows != len(self.urls):
            problems[f"{rows} rows for {len(self.urls)} URLs"] += 1
        successes = sum(1 for url, digest in found.items() if digest is not None and digest == self.sha.get(url))
        note = f"{successes} verified successes of {sum(v is not None for v in self.sha.values())} servable"
        if problems:
            note += "; PROBLEMS: " + ", ".join(f"{what} {n}" for what, n in problems.items())
        return successes, sum(problems.values()), note


def found_in_webdataset(folder: str) -> tuple[dict, int]:
    import pyarrow.parquet as pq

    found = {}
    for url, payloads in tar_samples(folder):
        found[url] = hashlib.sha256(payloads[0][1]).hexdigest() if len(payloads) == 1 else "several payloads"
    rows = 0
    for path in glob.glob(os.path.join(folder, "*.parquet")):
        for row in pq.read_table(path, columns=["url", "status"]).to_pylist():
            rows += 1
            if row["status"] != "success":
                found.setdefault(row["url"], None)
    return found, rows


def found_in_jsonl(path: str) -> tuple[dict, int, list[float]]:
    import pybase64

    found, rows, seconds = {}, 0, []
    with open(path, "rb") as lines:
        for line in lines:
            record = orjson.loads(line)
            rows += 1
            if record["status"] == "success":
                [payload] = record["files"].values()
                found[record["url"]] = hashlib.sha256(pybase64.b64decode(payload)).hexdigest()
                seconds.append(record["fetch_seconds"])
            else:
                found[record["url"]] = None
    return found, rows, seconds


def found_by_curl(work: str, urls: list[str]) -> tuple[dict, int, list[float]]:
    index = {url: i for i, url in enumerate(urls)}
    found, rows, seconds = {}, 0, []
    for log in glob.glob(os.path.join(work, "curl*.log")):
        with open(log) as lines:
            for line in lines:
                url, code, exitcode, total = line.rstrip("\n").split("\t")
                rows += 1
                if code == "200" and exitcode == "0":
                    with open(os.path.join(work, "files", str(index[url])), "rb") as body:
                        found[url] = hashlib.sha256(body.read()).hexdigest()
                    seconds.append(float(total))
                else:
                    found[url] = None
    return found, rows, seconds


# ---------------------------------------------------------------- running

class Contender:
    def __init__(self, name: str, script, check):
        self.name, self.script, self.check = name, script, check
        self.runs = []  # (Run, successes, problems, note)


def run_once(contender: Contender, work_root: str, env: dict, truth: Truth, poll: float):
    work = tempfile.mkdtemp(prefix="run-", dir=work_root)
    with open(os.path.join(work, "urls.txt"), "w") as out:
        out.write("".join(url + "\n" for url in truth.urls))
    wait_for_quiet(30)
    run, stderr = measure(contender.script(work), work, env, work, poll)
    successes, problems, note = contender.check(work)
    contender.runs.append((run, successes, problems, note))
    subprocess.run(["rm", "-rf", work])
    print(f"  {contender.name:14s} {successes / run.wall:8.0f} files/s  {run.wall:6.1f} s  cpu {run.cpu:6.1f} s  "
          f"peak {run.peak_mib:6.0f} MiB  {note}", flush=True)
    return run


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"{pick(0.5):.3f} / {pick(0.9):.3f} / {pick(0.99):.3f}"


def contest(args, urls, truth, env, work_root):
    contenders = {
        "a2d-fetch": Contender("a2d-fetch", lambda work: a2d_fetch_script(args.j),
                               lambda work: truth.check(*found_in_jsonl(os.path.join(work, "fetched.jsonl"))[:2])),
        "a2d pipeline": Contender("a2d pipeline", lambda work: pipeline_script(args.j),
                                  lambda work: truth.check(*found_in_webdataset(os.path.join(work, "out")))),
        "any2dataset": Contender("any2dataset", lambda work: any2dataset_script(args.a2d_setting),
                                 lambda work: truth.check(*found_in_webdataset(os.path.join(work, "out")))),
        "curl": Contender("curl", lambda work: curl_script(work, urls, args.j),
                          lambda work: truth.check(*found_by_curl(work, urls)[:2])),
    }
    contenders = {name: contender for name, contender in contenders.items()
                  if not args.contenders or name in args.contenders.split(",")}
    if args.img2dataset and (not args.contenders or "img2dataset" in args.contenders.split(",")):
        print("img2dataset settings (one run each):", flush=True)
        best, best_rate = None, 0
        for setting in args.i2d_settings.split(","):
            trial = Contender(f"i2d {setting}", lambda work, s=setting: img2dataset_script(args.img2dataset, s),
                              lambda work: truth.check(*found_in_webdataset(os.path.join(work, "out"))))
            run = run_once(trial, work_root, env, truth, args.poll)
            rate = trial.runs[0][1] / run.wall
            if rate > best_rate:
                best, best_rate = setting, rate
        contenders["img2dataset"] = Contender(
            "img2dataset", lambda work: img2dataset_script(args.img2dataset, best),
            lambda work: truth.check(*found_in_webdataset(os.path.join(work, "out"))))
        args.i2d_best = best
    names = list(contenders)
    for round_number in range(args.runs):
        print(f"round {round_number + 1}:", flush=True)
        order = names[round_number % len(names):] + names[:round_number % len(names)]
        for name in order:
            run_once(contenders[name], work_root, env, truth, args.poll)
    return contenders


def report(args, contenders):
    def med(name, pick):
        return statistics.median(pick(r) for r in contenders[name].runs)

    rate = {name: med(name, lambda r: r[1] / r[0].wall) for name in contenders}
    peak = {name: med(name, lambda r: r[0].peak_mib) for name in contenders}
    cpu = {name: med(name, lambda r: r[0].cpu) for name in contenders}
    print(f"\nmedians of {args.runs} rounds, {args.urls} URLs over {args.hosts} hosts, -j {args.j}:")
    print("| contender | files/s | wall s | CPU s | peak RSS MiB | problems |")
    print("|---|---|---|---|---|---|")
    for name, contender in contenders.items():
        shown = f"img2dataset {args.i2d_best}" if name == "img2dataset" else name
        print(f"| {shown} | {rate[name]:,.0f} | {med(name, lambda r: r[0].wall):.1f} | {cpu[name]:.1f} | "
              f"{peak[name]:,.0f} | {sum(r[2] for r in contender.runs)} |")
    if "img2dataset" in contenders:
        for name in [n for n in ("a2d pipeline", "any2dataset", "a2d-fetch") if n in contenders]:
            pairs = zip(contenders[name].runs, contenders["img2dataset"].runs)
            within = statistics.median(a[1] / a[0].wall / (b[1] / b[0].wall) for a, b in pairs)
            print(f"{name}: {rate[name] / rate['img2dataset']:.2f}x img2dataset's files/s (within a round "
                  f"{within:.2f}x; target 5x), {peak[name] / peak['img2dataset']:.2f}x its memory (target 1/3)")
    for name in [n for n in ("a2d pipeline", "a2d-fetch", "any2dataset") if n in contenders and "curl" in contenders]:
        print(f"{name}: {rate[name] / rate['curl']:.0%} of curl --parallel's files/s at -j {args.j} (target 80%)")


def sweep(args, urls, truth, env, work_root):
    print(f"\nsweep: a2d-fetch alone and curl --parallel at each -j ({len(urls)} URLs):", flush=True)
    print("| -j | a2d-fetch files/s | curl files/s | a2d-fetch p50 / p90 / p99 s | curl p50 / p90 / p99 s | "
          "a2d-fetch peak MiB | curl peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for concurrency in [int(j) for j in args.sweep.split(",")]:
        row = {}
        for name in ("a2d-fetch", "curl"):
            work = tempfile.mkdtemp(prefix="sweep-", dir=work_root)
            with open(os.path.join(work, "urls.txt"), "w") as out:
                out.write("".join(url + "\n" for url in urls))
            script = a2d_fetch_script(concurrency) if name == "a2d-fetch" else curl_script(work, urls, concurrency)
            wait_for_quiet(30)
            run, _ = measure(script, work, env, work, args.poll)
            if name == "a2d-fetch":
                found, rows, seconds = found_in_jsonl(os.path.join(work, "fetched.jsonl"))
            else:
                found, rows, seconds = found_by_curl(work, urls)
            successes, problems, _note = truth.check(found, rows)
            row[name] = (successes / run.wall, percentiles(seconds), run.peak_mib, problems)
            subprocess.run(["rm", "-rf", work])
        a, c = row["a2d-fetch"], row["curl"]
        print(f"| {concurrency:,} | {a[0]:,.0f} | {c[0]:,.0f} | {a[1]} | {c[1]} | {a[2]:,.0f} | {c[2]:,.0f} |"
              + (f" problems: {a[3]} / {c[3]}" if a[3] or c[3] else ""), flush=True)


def idle_memory(args, port, env, work_root):
    """RSS of a2d-fetch -w 1 with N downloads in flight to stalled servers, over its RSS idle."""
    count = args.idle
    work = tempfile.mkdtemp(prefix="idle-", dir=work_root)
    hosts = [siminet.host_address(i) for i in range(args.hosts)]
    with open(os.path.join(work, "stalled.jsonl"), "wb") as out:
        for i in range(count):
            out.write(orjson.dumps({"url": f"http://{hosts[i % len(hosts)]}:{port}/stall/50000/{i}.jpg"}) + b"\n")

    def rss_of(command, settle):
        process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.PIPE if "-" in command else None)
        peak = 0
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        peak = max(peak, int(line.split()[1]))
            time.sleep(0.2)
        process.kill()
        process.wait()
        return peak / 1024

    base = ["a2d-fetch", "-q", "-w", "1", "--timeout", "60", "--deadline", "120", "--per-host", "0",
            "--host-down-after", "0", "-j", str(count)]
    idle = rss_of(base + ["-"], 5)
    busy = rss_of(base + ["stalled.jsonl"], 15)
    print(f"\n{count:,} downloads in flight, all waiting on stalled servers: a2d-fetch -w 1 peak RSS "
          f"{busy:,.0f} MiB against {idle:,.0f} MiB with none: {(busy - idle) * 1024 / count:.1f} KiB each")
    subprocess.run(["rm", "-rf", work])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--urls", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-j", type=int, default=1024)
    parser.add_argument("--a2d-setting", default="2x512", help="any2dataset's PROCESSESxTHREADS")
    parser.add_argument("--i2d-settings", default="2x64,2x256,2x512")
    parser.add_argument("--img2dataset", default="/work/i2d-venv/bin/img2dataset" if os.path.exists(
        "/work/i2d-venv/bin/img2dataset") else shutil_which("img2dataset"))
    parser.add_argument("--sweep", default="256,1024,4096,10000")
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--addresses", action="store_true", help="literal addresses, no DNS (no root needed)")
    parser.add_argument("--skip-contest", action="store_true")
    parser.add_argument("--contenders", help="only these, comma-separated (a2d-fetch, a2d pipeline, any2dataset, "
                                             "curl, img2dataset)")
    parser.add_argument("--port", type=int, default=0, help="the hosts' port (default: a free one)")
    parser.add_argument("--poll", type=float, default=0.05)
    args = parser.parse_args()
    if not args.addresses:
        enter_namespace(args)
    if not args.port:
        from fetch_vs_img2dataset import free_port

        args.port = free_port()
    env = dict(os.environ)
    env["PATH"] = f"{os.path.join(os.path.dirname(HERE), 'bin')}{os.pathsep}{env['PATH']}"
    hosts = siminet.make_hosts(args.hosts)
    urls = siminet.draw_urls(hosts, args.urls, args.port, names=None if args.addresses else "sim.test")
    truth = Truth(urls)
    outcomes = collections.Counter(siminet.outcome_of(url) for url in urls)
    print(f"{args.urls} URLs over {args.hosts} hosts ({'addresses' if args.addresses else 'names, through DNS'}): "
          + ", ".join(f"{kind} {n}" for kind, n in outcomes.most_common()), flush=True)
    work_root = tempfile.mkdtemp(prefix="a2d-internet-")
    try:
        with siminet.Served(args.hosts, args.port, dns=None if args.addresses else f"{DNS_ADDRESS}:53"):
            if not args.skip_contest:
                report(args, contest(args, urls, truth, env, work_root))
            if args.sweep:
                sweep(args, urls, truth, env, work_root)
            if args.idle:
                idle_memory(args, args.port, env, work_root)
    finally:
        subprocess.run(["rm", "-rf", work_root])


def shutil_which(name):
    import shutil

    return shutil.which(name)


if __name__ == "__main__":
    main()
