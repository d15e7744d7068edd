"""The scaling curve: files/s for 1, 2, 4, 8 pipelines (`a2d-shard --part I/N`) on this machine,
against the simulated internet (siminet.py).

    python benchmarks/scaling.py [--urls 20000] [--hosts 1000] [--pipelines 1,2,4,8] [--runs 3]
                                 [--jobs 256] [--cpus-per-pipeline 0]

One URL list over --hosts simulated hosts (literal addresses, no DNS; its latency, slow links,
small servers and faults); for each N, N pipelines run at once, pipeline I being
`a2d-read list | a2d-shard --part I/N | a2d-fetch -w 1 -j J --timeout 4 --retries 0 |
a2d-write --format webdataset out/` with J = --jobs / N (the same downloads in flight in all)
or --jobs each with --fixed-jobs. With --cpus-per-pipeline C > 0 each pipeline runs under
`taskset` on its own C cores (modulo the machine's), as separate hosts with their own CPUs would.
Files/s counts the successes in the shards' _stats.json over the wall time of the N pipelines;
CPU is the process trees' (e2e.measure), the simulated internet's server excluded. Medians of
--runs, N values alternated.
"""

import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from e2e import measure, median, shard_stats, wait_for_quiet  # noqa: E402
from fetch_vs_img2dataset import free_port  # noqa: E402

TIMEOUT = 4


def script(urls: str, out: str, pipelines: int, jobs: int, cpus: int) -> str:
    parts = []
    for part in range(pipelines):
        pin = ""
        if cpus:
            first = part * cpus % os.cpu_count()
            pin = f"taskset -c {','.join(str((first + c) % os.cpu_count()) for c in range(cpus))} "
        parts.append(f"( a2d-read -q {urls} | a2d-shard -q --part {part}/{pipelines} --number-sample-per-shard 1000 "
                     f"| {pin}a2d-fetch -q -w 1 -j {jobs} --timeout {TIMEOUT} --retries 0 "
                     f"| a2d-write -q --format webdataset {out} ) &")
    return " ".join(parts) + " wait"


def main() -> None:
    import siminet

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=20000)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--pipelines", default="1,2,4,8")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=256)
    parser.add_argument("--fixed-jobs", action="store_true")
    parser.add_argument("--cpus-per-pipeline", type=int, default=0)
    args = parser.parse_args()
    counts = [int(n) for n in args.pipelines.split(",")]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PATH"] = f"{os.path.join(ROOT, 'bin')}{os.pathsep}{env['PATH']}"
    work = tempfile.mkdtemp(prefix="a2d-scaling-")
    port = free_port()
    hosts = siminet.make_hosts(args.hosts)
    urls = siminet.draw_urls(hosts, args.urls, port)
    servable = sum(siminet.outcome_of(url) == "ok" for url in urls)
    path = os.path.join(work, "urls.txt")
    with open(path, "w") as out:
        out.write("".join(url + "\n" for url in urls))
    print(f"{args.urls:,} URLs ({servable:,} servable) over {args.hosts} siminet hosts, {os.cpu_count()} cores, "
          f"--jobs {args.jobs} {'per pipeline' if args.fixed_jobs else 'in all'}"
          f"{f', {args.cpus_per_pipeline} cores per pipeline (taskset)' if args.cpus_per_pipeline else ''}",
          flush=True)
    results = {n: [] for n in counts}
    out_folder = os.path.join(work, "out")
    try:
        with siminet.Served(args.hosts, port):
            for round_number in range(args.runs):
                shift = round_number % len(counts)
                for n in counts[shift:] + counts[:shift]:
                    shutil.rmtree(out_folder, ignore_errors=True)
                    jobs = args.jobs if args.fixed_jobs else max(1, args.jobs // n)
                    wait_for_quiet(10)
                    run, _ = measure(script(path, out_folder, n, jobs, args.cpus_per_pipeline), work, env, work, 0.05)
                    done = shard_stats(out_folder)["successes"]
                    results[n].append((run, done))
                    print(f"  {n} pipeline(s) x -j {jobs}: {done:,} files  {done / run.wall:7,.0f} files/s  "
                          f"wall {run.wall:5.1f} s  cpu {run.cpu:5.1f} s  peak {run.peak_mib:5.0f} MiB", flush=True)
        base = median(d / r.wall for r, d in results[counts[0]])
        print(f"\nmedians of {args.runs}:")
        print("| pipelines | files/s | vs 1 (linear = N) | CPU s | CPU ms per file | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for n, runs in results.items():
            rate = median(d / r.wall for r, d in runs)
            print(f"| {n} | {rate:,.0f} | {rate / base:.2f}x | {median(r.cpu for r, _ in runs):.1f} | "
                  f"{median(r.cpu / d * 1000 for r, d in runs):.2f} | {median(r.peak_mib for r, _ in runs):,.0f} |",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
