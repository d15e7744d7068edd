"""The training loader (any2dataset.loader.Dataset) against webdataset's loader and a2d-fetch.

    python benchmarks/loader.py [--runs 3] [--files 5000] [--urls 3000] [--hosts 500]
                                [--cache-urls 2000] [--index-rows 10000000] [--in-memory-max 2000000]
                                [--parts shards,urls,cache,index] [--nginx PATH]

Four measurements, each contender run as a process of its own (whole-process wall time, CPU
of its process tree, peak RSS summed over that tree: e2e.measure), contenders alternating
run by run, medians of --runs:

  shards  --files random files of 10-60 KB served by nginx on 127.0.0.1 are made into
          webdataset shards of 1,000 with the stages (a2d-read | a2d-shard | a2d-fetch |
          a2d-write --format webdataset); then `Dataset(folder, shuffle=False)` iterated
          against `webdataset.WebDataset(tars, shardshuffle=False)` iterated, decoding
          nothing. Samples/s over the whole process (imports included) and over the loop.
  urls    --urls URLs over --hosts hosts of the simulated internet (siminet.py, literal
          addresses: no DNS), with its latency, slow links and faults: Dataset with
          read_ahead 64 and 256 against `a2d-read | a2d-fetch -j 64` and `-j 256` (default
          workers: one per core), all with --timeout 4 and no retries. Files/s counts
          successful downloads over wall time.
  cache   --cache-urls URLs of the nginx corpus, two epochs with a disk cache whose budget is
          half the payload bytes, shuffled and in fixed order: hits in epoch 2
          (counts["cache_hit"]), the cache folder's size (du) after each epoch and its
          largest size polled during the run, against the budget.
  index   a list of --index-rows URLs (the nginx corpus over and over, each with its own
          query): `Dataset(list, shuffle=True)` from its start to its first sample and
          to 1,000 samples, then until the list is spilled whole (len()), then epoch 1 (chunks in
          a seeded order) to its first sample; against reading the same list whole into
          memory as compact JSON lines first (what the loader did before its index was lazy;
          only up to --in-memory-max rows) and `a2d-read list > /dev/null`.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from e2e import measure, wait_for_quiet  # noqa: E402
from fetch_vs_img2dataset import free_port, start_nginx  # noqa: E402

TIMEOUT = 4  # as internet.py: seconds to connect and between reads, no retries
SHARD_SIZE = 1000


# ---------------------------------------------------------------- contenders (run in a child process)

def child(argv: list[str]) -> None:
    """`loader.py --child KIND RESULT ARGS...`: one contender's run; its figures to RESULT as JSON."""
    kind, result_path, *rest = argv
    started = time.perf_counter()
    if kind == "wds":
        import webdataset

        tars = rest
        loop = time.perf_counter()
        samples = payload = 0
        for sample in webdataset.WebDataset(tars, shardshuffle=False, empty_check=False):
            samples += 1
            payload += len(sample.get("jpg", b""))
        result = {"samples": samples, "payload": payload}
    elif kind == "dataset":
        from any2dataset.loader.dataset import Dataset

        folder = rest[0]
        loop = time.perf_counter()
        dataset = Dataset(folder, shuffle=False)
        samples = payload = 0
        for sample in dataset:
            samples += 1
            payload += len(sample.get("jpg", b""))
        result = {"samples": samples, "payload": payload, "counts": dict(dataset.counts)}
    elif kind == "urls":
        from any2dataset.fetch.options import FetchOptions
        from any2dataset.loader.dataset import Dataset

        urls, read_ahead = rest[0], int(rest[1])
        loop = time.perf_counter()
        dataset = Dataset(urls, input_format="txt", shuffle=False, read_ahead=read_ahead,
                          fetch_options=FetchOptions(timeout=TIMEOUT, retries=0))
        samples = sum(1 for _ in dataset)
        result = {"samples": samples, "counts": dict(dataset.counts)}
    elif kind == "cache":
        result, loop = cache_epochs(*rest)
    elif kind == "index":
        result, loop = index_epochs(rest[0])
    elif kind == "in_memory":
        import orjson

        from any2dataset import record as rec
        from any2dataset.read import ReadOptions, read

        loop = time.perf_counter()
        rows = [orjson.dumps(row, default=rec.json_default) for row in read([rest[0]], ReadOptions())]
        result = {"rows": len(rows)}
    else:
        sys.exit(f"unknown contender {kind}")
    ended = time.perf_counter()
    result.update(loop_seconds=ended - loop, process_seconds=ended - started)
    with open(result_path, "w") as out:
        json.dump(result, out)


def du(folder: str) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the folder, as du counts them."""
    return int(subprocess.run(["du", "-sb", "--apparent-size", folder], capture_output=True, text=True)
               .stdout.split()[0]), int(subprocess.run(["du", "-s", "-B1", folder], capture_output=True,
                                                        text=True).stdout.split()[0])


def cache_parts(folder: str) -> dict:
    """Bytes of the payload files (data/, tmp/) and of the SQLite index (with its WAL)."""
    parts = {"payload_files": 0, "index_files": 0}
    for where, _, names in os.walk(folder):
        for name in names:
            size = os.path.getsize(os.path.join(where, name))
            parts["index_files" if name.startswith("index.sqlite") else "payload_files"] += size
    return parts


def cache_epochs(urls: str, cache_dir: str, budget: str, shuffle: str):
    """Two epochs over `urls` with a disk cache of `budget` bytes; a thread polls the folder's size."""
    from any2dataset.loader.dataset import Dataset

    loop = time.perf_counter()
    dataset = Dataset(urls, input_format="txt", shuffle=shuffle == "shuffle", seed=0, cache_dir=cache_dir,
                      cache_budget=int(budget), read_ahead=64)
    largest, stop = [0], threading.Event()

    def poll():
        while not stop.wait(0.1):
            largest[0] = max(largest[0], du(cache_dir)[1])

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    epochs = []
    for epoch in range(2):
        before = dict(dataset.counts)
        dataset.set_epoch(epoch)
        started = time.perf_counter()
        samples = sum(1 for _ in dataset)
        seconds = time.perf_counter() - started
        apparent, allocated = du(cache_dir)
        epochs.append({"samples": samples, "seconds": seconds,
                       "hits": dataset.counts["cache_hit"] - before.get("cache_hit", 0),
                       "du_apparent": apparent, "du": allocated, "usage": dataset.cache.usage(),
                       **cache_parts(cache_dir)})
    stop.set()
    poller.join()
    return {"epochs": epochs, "largest_du": max(largest[0], epochs[-1]["du"]), "counts": dict(dataset.counts)}, loop


def index_epochs(urls: str):
    """Times to the first samples of a long list's epochs 0 and 1, and to its whole index."""
    import resource

    from any2dataset.loader.dataset import Dataset

    loop = time.perf_counter()
    dataset = Dataset(urls, shuffle=True, seed=0, read_ahead=64)
    marks = {}
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        started = time.perf_counter()
        for taken, _ in enumerate(dataset, start=1):
            if taken == 1:
                marks[f"epoch{epoch}_first"] = time.perf_counter() - started
            if taken == 1000:
                marks[f"epoch{epoch}_1000"] = time.perf_counter() - started
                break
        if epoch == 0:
            started = time.perf_counter()
            marks["rows"] = len(dataset)
            marks["spilled"] = time.perf_counter() - loop
            marks["rss_mib_after_spill"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return marks, loop


def run_child(work: str, env: dict, kind: str, *args: str):
    """(e2e Run, the child's figures)."""
    result = os.path.join(work, "result.json")
    script = " ".join([sys.executable, os.path.abspath(__file__), "--child", kind, result, *args])
    wait_for_quiet(10)
    run, _ = measure(script, work, env, work, 0.05)
    with open(result) as stream:
        figures = json.load(stream)
    os.remove(result)
    return run, figures


def run_script(work: str, env: dict, script: str):
    wait_for_quiet(10)
    run, _ = measure(script, work, env, work, 0.05)
    return run


def median(values) -> float:
    return statistics.median(list(values))


# ---------------------------------------------------------------- 1. shards

def make_corpus(folder: str, count: int) -> list[int]:
    """`count` random files of 10-60 KB under folder/files: their sizes."""
    os.makedirs(os.path.join(folder, "files"))
    rng = random.Random(1)
    sizes = []
    for i in range(count):
        size = rng.randint(10_000, 60_000)
        with open(os.path.join(folder, "files", f"{i:06d}.jpg"), "wb") as out:
            out.write(rng.randbytes(size))
        sizes.append(size)
    return sizes


def shards_part(args, env, work, port, sizes) -> None:
    urls = os.path.join(work, "corpus_urls.txt")
    shards = os.path.join(work, "shards")
    started = time.perf_counter()
    subprocess.run(f"a2d-read -q {urls} | a2d-shard -q --number-sample-per-shard {SHARD_SIZE} "
                   f"| a2d-fetch -q -j 64 --per-host 0 | a2d-write -q --format webdataset {shards}",
                   shell=True, check=True, env=env, cwd=work)
    tars = sorted(os.path.join(shards, name) for name in os.listdir(shards) if name.endswith(".tar"))
    tar_bytes = sum(os.path.getsize(t) for t in tars)
    print(f"\n1. shards: {len(sizes):,} files ({sum(sizes) / 1e6:.0f} MB) made into {len(tars)} webdataset tars "
          f"({tar_bytes / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s", flush=True)
    contenders = {"webdataset.WebDataset(tars)": ("wds", *tars), "Dataset(folder, shuffle=False)": ("dataset", shards)}
    results = {name: [] for name in contenders}
    for round_number in range(args.runs):
        names = list(contenders)
        order = names[round_number % 2:] + names[:round_number % 2]
        for name in order:
            run, figures = run_child(work, env, *contenders[name])
            results[name].append((run, figures))
            print(f"  {name:32s} {figures['samples']:,} samples ({figures['payload'] / 1e6:.0f} MB)  "
                  f"{figures['samples'] / run.wall:7,.0f} samples/s whole process, "
                  f"{figures['samples'] / figures['loop_seconds']:7,.0f} in the loop  wall {run.wall:5.2f} s  "
                  f"cpu {run.cpu:5.2f} s  peak {run.peak_mib:5.0f} MiB", flush=True)
    print(f"\nmedians of {args.runs}:")
    print("| loader | samples/s (whole process) | samples/s (loop) | wall s | CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    rates = {}
    for name, runs in results.items():
        rates[name] = median(f["samples"] / r.wall for r, f in runs)
        loop = median(f["samples"] / f["loop_seconds"] for r, f in runs)
        print(f"| {name} | {rates[name]:,.0f} | {loop:,.0f} | {median(r.wall for r, _ in runs):.2f} | "
              f"{median(r.cpu for r, _ in runs):.2f} | {median(r.peak_mib for r, _ in runs):,.0f} |")
    ours, theirs = results["Dataset(folder, shuffle=False)"], results["webdataset.WebDataset(tars)"]
    within = median((f["samples"] / r.wall) / (g["samples"] / s.wall) for (r, f), (s, g) in zip(ours, theirs))
    print(f"Dataset / WebDataset samples/s: {within:.2f} (median of the per-round ratios; target >= 1.00)")
    print(f"Dataset counts: {ours[-1][1].get('counts')}", flush=True)


# ---------------------------------------------------------------- 2. a URL index with latency

def urls_part(args, env, work) -> None:
    import siminet

    port = free_port()
    hosts = siminet.make_hosts(args.hosts)
    urls = siminet.draw_urls(hosts, args.urls, port)
    servable = sum(siminet.outcome_of(url) == "ok" for url in urls)
    path = os.path.join(work, "sim_urls.txt")
    with open(path, "w") as out:
        out.write("".join(url + "\n" for url in urls))
    print(f"\n2. URL index: {len(urls):,} URLs ({servable:,} servable) over {args.hosts} siminet hosts "
          f"(literal addresses, no DNS), --timeout {TIMEOUT}, no retries", flush=True)
    fetched = os.path.join(work, "fetched.jsonl")
    contenders = {}
    for j in (64, 256):
        contenders[f"a2d-read | a2d-fetch -j {j}"] = ("script", f"a2d-read -q {path} | a2d-fetch -q -j {j} "
                                                      f"--timeout {TIMEOUT} --retries 0 > {fetched}")
        contenders[f"Dataset(read_ahead={j})"] = ("child", "urls", path, str(j))
    results = {name: [] for name in contenders}
    with siminet.Served(args.hosts, port):
        for round_number in range(args.runs):
            names = list(contenders)
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                kind, *rest = contenders[name]
                if kind == "script":
                    run = run_script(work, env, rest[0])
                    with open(fetched, "rb") as lines:
                        successes = sum(b'"status":"success"' in line for line in lines)
                    os.remove(fetched)
                else:
                    run, figures = run_child(work, env, *rest)
                    successes = figures["counts"].get("success", 0)
                results[name].append((run, successes))
                print(f"  {name:28s} {successes:,} successes  {successes / run.wall:6,.0f} files/s  "
                      f"wall {run.wall:5.1f} s  cpu {run.cpu:5.1f} s  peak {run.peak_mib:5.0f} MiB", flush=True)
    print(f"\nmedians of {args.runs}:")
    print("| contender | files/s | successes | wall s | CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    rates = {name: median(s / r.wall for r, s in runs) for name, runs in results.items()}
    for name, runs in results.items():
        print(f"| {name} | {rates[name]:,.0f} | {median(s for _, s in runs):,.0f} | "
              f"{median(r.wall for r, _ in runs):.1f} | {median(r.cpu for r, _ in runs):.1f} | "
              f"{median(r.peak_mib for r, _ in runs):,.0f} |")
    for j in (64, 256):
        ours, theirs = rates[f"Dataset(read_ahead={j})"], rates[f"a2d-read | a2d-fetch -j {j}"]
        print(f"Dataset(read_ahead={j}): {ours / theirs:.0%} of a2d-fetch -j {j}'s files/s, "
              f"{ours / rates['a2d-read | a2d-fetch -j 256']:.0%} of -j 256's (target 80%)", flush=True)


# ---------------------------------------------------------------- 3. the cache over two epochs

def cache_part(args, env, work, port, sizes) -> None:
    count = min(args.cache_urls, len(sizes))
    path = os.path.join(work, "cache_urls.txt")
    with open(path, "w") as out:
        out.write("".join(f"http://127.0.0.1:{port}/{i:06d}.jpg\n" for i in range(count)))
    data = sum(sizes[:count])
    budget = data // 2
    print(f"\n3. cache: {count:,} URLs from nginx ({data / 1e6:.1f} MB of payload), two epochs, "
          f"cache_budget {budget:,} bytes (half)", flush=True)
    results = {mode: [] for mode in ("shuffle", "fixed")}
    for round_number in range(args.runs):
        modes = list(results)
        for mode in modes[round_number % 2:] + modes[:round_number % 2]:
            cache_dir = os.path.join(work, "cache")
            shutil.rmtree(cache_dir, ignore_errors=True)
            run, figures = run_child(work, env, "cache", path, cache_dir, str(budget), mode)
            shutil.rmtree(cache_dir, ignore_errors=True)
            results[mode].append((run, figures))
            first, second = figures["epochs"]
            print(f"  {mode:8s} epoch 1 {first['samples']:,} samples {first['seconds']:.2f} s, hits {first['hits']}; "
                  f"epoch 2 {second['samples']:,} samples {second['seconds']:.2f} s, hits {second['hits']:,} "
                  f"({second['hits'] / count:.1%}); du after epochs {first['du']:,} / {second['du']:,} "
                  f"(apparent {second['du_apparent']:,}), largest polled {figures['largest_du']:,}, "
                  f"usage() {second['usage']:,}, payload files {second['payload_files']:,}, "
                  f"index+WAL {second['index_files']:,}; peak RSS {run.peak_mib:.0f} MiB", flush=True)
    print(f"\nmedians of {args.runs} (budget {budget:,} bytes = 50% of {data:,}):")
    print("| order | epoch 2 hit rate | epoch 1 s | epoch 2 s | du after epoch 2 | largest du polled | "
          "du / budget | payload files / budget | index + WAL bytes | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, runs in results.items():
        second = [f["epochs"][1] for _, f in runs]
        largest = max(f["largest_du"] for _, f in runs)
        print(f"| {mode} | {median(e['hits'] for e in second) / count:.1%} | "
              f"{median(f['epochs'][0]['seconds'] for _, f in runs):.2f} | "
              f"{median(e['seconds'] for e in second):.2f} | "
              f"{median(e['du'] for e in second):,.0f} | {largest:,} (max) | "
              f"{median(e['du'] for e in second) / budget:.2f} | "
              f"{median(e['payload_files'] for e in second) / budget:.3f} | "
              f"{median(e['index_files'] for e in second):,.0f} | {median(r.peak_mib for r, _ in runs):,.0f} |",
              flush=True)


# ---------------------------------------------------------------- 4. a long list, lazily

def index_part(args, env, work, port, sizes) -> None:
    path = os.path.join(work, "long_urls.txt")
    with open(path, "w") as out:
        for start in range(0, args.index_rows, 100_000):
            out.write("".join(f"http://127.0.0.1:{port}/{i % len(sizes):06d}.jpg?n={i}\n"
                              for i in range(start, min(start + 100_000, args.index_rows))))
    print(f"\n4. index: a list of {args.index_rows:,} URLs ({os.path.getsize(path) / 1e6:.0f} MB)", flush=True)
    results = {"lazy": [], "in_memory": [], "a2d-read": []}
    if args.index_rows > args.in_memory_max:  # ~4 KB of heap a row (orjson's bytes): 10M rows would not fit
        del results["in_memory"]
        print(f"  (not reading it whole into memory: more than --in-memory-max {args.in_memory_max:,} rows)")
    for round_number in range(args.runs):
        names = list(results)
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            if name == "a2d-read":
                run = run_script(work, env, f"a2d-read -q {path} > /dev/null")
                results[name].append((run, {}))
                print(f"  a2d-read > /dev/null: {args.index_rows / run.wall:,.0f} rows/s  wall {run.wall:.1f} s  "
                      f"peak {run.peak_mib:.0f} MiB", flush=True)
                continue
            run, figures = run_child(work, env, "index" if name == "lazy" else "in_memory", path)
            results[name].append((run, figures))
            if name == "lazy":
                print(f"  Dataset: epoch 0 first sample {figures['epoch0_first']:.2f} s, 1,000 samples "
                      f"{figures['epoch0_1000']:.2f} s; spilled whole at {figures['spilled']:.1f} s "
                      f"(RSS then {figures['rss_mib_after_spill']:.0f} MiB); epoch 1 first sample "
                      f"{figures['epoch1_first']:.2f} s, 1,000 {figures['epoch1_1000']:.2f} s; "
                      f"process peak {run.peak_mib:.0f} MiB, wall {run.wall:.1f} s", flush=True)
            else:
                print(f"  whole list in memory first: {figures['loop_seconds']:.1f} s before any sample, "
                      f"peak {run.peak_mib:.0f} MiB", flush=True)
    lazy, whole, reader = results["lazy"], results.get("in_memory"), results["a2d-read"]
    print(f"\nmedians of {args.runs}:")
    print("| | first sample s | 1,000 samples s | index whole s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    print(f"| Dataset, epoch 0 (list order by chunk windows) | {median(f['epoch0_first'] for _, f in lazy):.2f} | "
          f"{median(f['epoch0_1000'] for _, f in lazy):.2f} | {median(f['spilled'] for _, f in lazy):.1f} | "
          f"{median(r.peak_mib for r, _ in lazy):,.0f} |")
    print(f"| Dataset, epoch 1 (chunks in a seeded order) | {median(f['epoch1_first'] for _, f in lazy):.2f} | "
          f"{median(f['epoch1_1000'] for _, f in lazy):.2f} | | |")
    if whole:
        print(f"| whole list in memory first (the loader before) | {median(f['loop_seconds'] for _, f in whole):.1f} + "
              f"the first download | | {median(f['loop_seconds'] for _, f in whole):.1f} | "
              f"{median(r.peak_mib for r, _ in whole):,.0f} |")
    print(f"| a2d-read > /dev/null | | | {median(r.wall for r, _ in reader):.1f} | "
          f"{median(r.peak_mib for r, _ in reader):,.0f} |", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--urls", type=int, default=3000)
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--cache-urls", type=int, default=2000)
    parser.add_argument("--index-rows", type=int, default=10_000_000)
    parser.add_argument("--in-memory-max", type=int, default=2_000_000)
    parser.add_argument("--parts", default="shards,urls,cache,index")
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    args = parser.parse_args()
    parts = args.parts.split(",")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PATH"] = f"{os.path.join(ROOT, 'bin')}{os.pathsep}{env['PATH']}"
    work = tempfile.mkdtemp(prefix="a2d-loader-bench-")
    os.chmod(work, 0o755)  # nginx's workers read it
    server = None
    try:
        if "shards" in parts or "cache" in parts or "index" in parts:
            sizes = make_corpus(work, args.files)
            port = free_port()
            server = start_nginx(args.nginx, work, port)
            with open(os.path.join(work, "corpus_urls.txt"), "w") as out:
                out.write("".join(f"http://127.0.0.1:{port}/{i:06d}.jpg\n" for i in range(args.files)))
        if "shards" in parts:
            shards_part(args, env, work, port, sizes)
        if "urls" in parts:
            urls_part(args, env, work)
        if "cache" in parts:
            cache_part(args, env, work, port, sizes)
        if "index" in parts:
            index_part(args, env, work, port, sizes)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
