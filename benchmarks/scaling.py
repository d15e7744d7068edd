"""The scaling curve: files/s for 1, 2, 4, 8 pipelines (`a2d-shard --part I/N`) on this machine,
against the simulated internet (siminet.py).

    python benchmarks/scaling.py [--urls 20000 | --urls-per-pipeline U] [--hosts 1000]
                                 [--pipelines 1,2,4,8] [--runs 3] [--jobs 256] [--fixed-jobs]
                                 [--cpus-per-pipeline 0] [--machine-cpu Q] [--netns]

One URL list over --hosts simulated hosts (literal addresses, no DNS; its latency, slow links,
small servers and faults); for each N, N pipelines run at once, pipeline I being
`a2d-read list | a2d-shard --part I/N | a2d-fetch -w 1 -j J --timeout 4 --retries 0 |
a2d-write --format webdataset out/` with J = --jobs / N (the same downloads in flight in all)
or --jobs each with --fixed-jobs. With --cpus-per-pipeline C > 0 each pipeline runs under
`taskset` on its own C cores (modulo the machine's).

Many machines on this one (root only): --machine-cpu Q puts each pipeline in a cgroup of its
own limited to Q cores (CFS quota), a small machine of its own; --netns also gives it a network
namespace of its own (its own address, sockets and ports) whose routes send the simulated
internet's 127.x addresses over a veth pair to this machine's loopback (route_localnet).
--urls-per-pipeline U makes it weak scaling: N pipelines crawl N x U URLs of the same
simulated internet (the first N x U of one list), as adding machines to a crawl does.
Files/s counts the successes in the shards' _stats.json over the wall time of the N pipelines;
CPU is the process trees' (e2e.measure), the simulated internet's server excluded. Medians of
--runs, N values alternated.

    python benchmarks/scaling.py --list-cost ROWS [--runs 3]

What reading the list costs: CPU of `a2d-read | a2d-shard --part 0/1000` (what every part
pays, whatever it keeps) and of `a2d-read | a2d-shard --split` (once), over ROWS list rows.
"""

import argparse
import collections
import contextlib
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from e2e import TICK, machine_busy, measure, median, read_stat, shard_stats, wait_for_quiet  # noqa: E402
from fetch_vs_img2dataset import free_port  # noqa: E402

TIMEOUT = 4
CGROUP_V1 = "/sys/fs/cgroup/cpu"
CGROUP_V2 = "/sys/fs/cgroup"


class Machines:
    """`count` simulated machines: each a cgroup limited to `cpu` cores (0: no limit) and, with
    `netns`, a network namespace a2d-machine-I at 10.201.I.2 whose route for 127.0.0.0/8 (all
    but its own 127.0.0.1) goes over a veth pair to this machine. Removed on exit."""

    def __init__(self, count: int, cpu: float, netns: bool):
        self.count, self.cpu, self.netns = count, cpu, netns
        self.v2 = not os.path.isdir(CGROUP_V1)
        self.groups: list[str] = []

    def __enter__(self) -> "Machines":
        try:
            for index in range(self.count):
                if self.cpu:
                    self.groups.append(self._cgroup(index))
                if self.netns:
                    self._namespace(index)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _cgroup(self, index: int) -> str:
        quota, period = int(self.cpu * 100_000), 100_000
        if self.v2:
            with open(os.path.join(CGROUP_V2, "cgroup.subtree_control"), "w") as control:
                control.write("+cpu")
            group = os.path.join(CGROUP_V2, f"a2d-machine-{index}")
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "cpu.max"), "w") as limit:
                limit.write(f"{quota} {period}")
        else:
            group = os.path.join(CGROUP_V1, f"a2d-machine-{index}")
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "cpu.cfs_period_us"), "w") as limit:
                limit.write(str(period))
            with open(os.path.join(group, "cpu.cfs_quota_us"), "w") as limit:
                limit.write(str(quota))
        return group

    def _namespace(self, index: int) -> None:
        name, outside, inside = f"a2d-machine-{index}", f"a2dm{index}h", f"a2dm{index}m"
        run = lambda *command: subprocess.run(command, check=True)  # noqa: E731
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)  # a leftover of a killed run
        run("ip", "netns", "add", name)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", name)
        run("ip", "addr", "add", f"10.201.{index}.1/30", "dev", outside)
        run("ip", "link", "set", outside, "up")
        run("sysctl", "-qw", f"net.ipv4.conf.{outside}.route_localnet=1", "net.ipv4.conf.all.route_localnet=1")
        inner = ["ip", "netns", "exec", name]
        run(*inner, "ip", "link", "set", "lo", "up")
        run(*inner, "ip", "addr", "add", f"10.201.{index}.2/30", "dev", inside)
        run(*inner, "ip", "link", "set", inside, "up")
        run(*inner, "ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
        run(*inner, "ip", "route", "add", "127.0.0.0/8", "via", f"10.201.{index}.1", "dev", inside)
        run(*inner, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", f"net.ipv4.conf.{inside}.route_localnet=1")

    def wrap(self, index: int, command: str) -> str:
        """`command` as machine `index` runs it: joined to its cgroup first (ip netns exec
        remounts /sys), then in its namespace."""
        if self.netns:
            command = f"ip netns exec a2d-machine-{index} bash -c {shlex.quote('set -o pipefail; ' + command)}"
        if self.groups:
            procs = os.path.join(self.groups[index], "cgroup.procs")
            command = f"bash -c {shlex.quote(f'echo $$ > {procs} && exec ' + command)}"
        return command

    def periods(self) -> tuple[int, int]:
        """(CFS periods run, periods in which the quota ran out) so far, over all machines."""
        run = throttled = 0
        for group in self.groups:
            with open(os.path.join(group, "cpu.stat")) as stat:
                fields = dict(line.split() for line in stat if line.strip())
            run, throttled = run + int(fields["nr_periods"]), throttled + int(fields["nr_throttled"])
        return run, throttled

    def __exit__(self, *exc) -> None:
        for group in self.groups:
            with contextlib.suppress(OSError):
                os.rmdir(group)
        if self.netns:
            for index in range(self.count):
                subprocess.run(["ip", "netns", "del", f"a2d-machine-{index}"], stderr=subprocess.DEVNULL)


def script(urls: str, out: str, pipelines: int, jobs: int, cpus: int, machines: Machines | None = None) -> str:
    parts = []
    for part in range(pipelines):
        pin = ""
        if cpus:
            first = part * cpus % os.cpu_count()
            pin = f"taskset -c {','.join(str((first + c) % os.cpu_count()) for c in range(cpus))} "
        pipeline = (f"a2d-read -q {urls} | a2d-shard -q --part {part}/{pipelines} --number-sample-per-shard 1000 "
                    f"| {pin}a2d-fetch -q -w 1 -j {jobs} --timeout {TIMEOUT} --retries 0 "
                    f"| a2d-write -q --format webdataset {out}")
        if machines:
            pipeline = machines.wrap(part, pipeline)
        parts.append(f"( {pipeline} ) &")
    return " ".join(parts) + " wait"


def lost_servable(folder: str) -> collections.Counter:
    """Why URLs the simulated internet serves did not succeed: their error kinds, counted."""
    import pyarrow.dataset as ds

    from siminet import outcome_of

    shards = sorted(glob.glob(os.path.join(folder, "*.parquet")))
    table = ds.dataset(shards, format="parquet").to_table(columns=["url", "status", "error_kind"])
    return collections.Counter(row["error_kind"] for row in table.to_pylist()
                               if row["status"] != "success" and outcome_of(row["url"]) == "ok")


def process_cpu(pid: int) -> float:
    """CPU seconds so far of process `pid` (the simulated internet's server)."""
    fields = read_stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def list_cost(rows: int, runs: int, env: dict) -> None:
    work = tempfile.mkdtemp(prefix="a2d-scaling-")
    try:
        path = os.path.join(work, "urls.txt")
        with open(path, "w") as out:
            out.write("".join(f"http://127.1.{i % 250}.{i % 200 + 1}:8080/ok/{1000 + i % 90000}/{i}.jpg\n"
                              for i in range(rows)))
        commands = {"one part of 1,000 (--part 0/1000)": f"a2d-read -q {path} | a2d-shard -q --part 0/1000 > /dev/null",
                    "split once (--split, 10 shards a file)": f"rm -rf {work}/parts; a2d-read -q {path} | "
                                                              f"a2d-shard -q --split {work}/parts --shards-per-file 10"}
        print(f"reading a list of {rows:,} rows, medians of {runs}:")
        for name, command in commands.items():
            cpu = median(measure(command, work, env, work, 0.05)[0].cpu for _ in range(runs))
            print(f"  {name}: {cpu:.1f} CPU s, {cpu / rows * 1e6:.1f} us a row", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    import siminet

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=20000)
    parser.add_argument("--urls-per-pipeline", type=int, default=0)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--pipelines", default="1,2,4,8")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=256)
    parser.add_argument("--fixed-jobs", action="store_true")
    parser.add_argument("--cpus-per-pipeline", type=int, default=0)
    parser.add_argument("--machine-cpu", type=float, default=0.0)
    parser.add_argument("--netns", action="store_true")
    parser.add_argument("--list-cost", type=int, default=0)
    args = parser.parse_args()
    counts = [int(n) for n in args.pipelines.split(",")]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PATH"] = f"{os.path.join(ROOT, 'bin')}{os.pathsep}{env['PATH']}"
    if args.list_cost:
        list_cost(args.list_cost, args.runs, env)
        return
    if (args.machine_cpu or args.netns) and os.geteuid() != 0:
        sys.exit("scaling.py: --machine-cpu and --netns need root (they make cgroups and network namespaces)")
    work = tempfile.mkdtemp(prefix="a2d-scaling-")
    port = free_port()
    hosts = siminet.make_hosts(args.hosts)
    weak = args.urls_per_pipeline > 0
    urls = siminet.draw_urls(hosts, args.urls_per_pipeline * max(counts) if weak else args.urls, port)
    lists = {}
    for n in counts:  # weak scaling: N pipelines crawl the first N x U URLs
        lists[n] = os.path.join(work, f"urls-{n}.txt")
        with open(lists[n], "w") as out:
            out.write("".join(url + "\n" for url in (urls[:args.urls_per_pipeline * n] if weak else urls)))
    servable = sum(siminet.outcome_of(url) == "ok" for url in urls)
    size = f"{args.urls_per_pipeline:,} URLs per pipeline" if weak else f"{args.urls:,} URLs ({servable:,} servable)"
    machines = ""
    if args.machine_cpu or args.netns:
        machines = (f", each pipeline a simulated machine: {args.machine_cpu or 'unlimited'} cores (cgroup)"
                    f"{', its own network namespace' if args.netns else ''}")
    print(f"{size} over {args.hosts} siminet hosts, {os.cpu_count()} cores, "
          f"--jobs {args.jobs} {'per pipeline' if args.fixed_jobs else 'in all'}"
          f"{f', {args.cpus_per_pipeline} cores per pipeline (taskset)' if args.cpus_per_pipeline else ''}{machines}",
          flush=True)
    results = {n: [] for n in counts}
    out_folder = os.path.join(work, "out")
    try:
        with siminet.Served(args.hosts, port) as served:
            for round_number in range(args.runs):
                shift = round_number % len(counts)
                for n in counts[shift:] + counts[:shift]:
                    shutil.rmtree(out_folder, ignore_errors=True)
                    jobs = args.jobs if args.fixed_jobs else max(1, args.jobs // n)
                    wait_for_quiet(10)
                    with Machines(n if args.machine_cpu or args.netns else 0, args.machine_cpu, args.netns) as box:
                        server_before, busy_before = process_cpu(served.process.pid), machine_busy()
                        periods_before = box.periods()
                        command = script(lists[n], out_folder, n, jobs, args.cpus_per_pipeline, box)
                        run, _ = measure(command, work, env, work, 0.05)
                        server = process_cpu(served.process.pid) - server_before
                        busy = (machine_busy() - busy_before) / run.wall / os.cpu_count()
                        periods = [after - before for after, before in zip(box.periods(), periods_before)]
                        throttled = periods[1] / periods[0] if periods[0] else 0.0
                    done = shard_stats(out_folder)["successes"]
                    lost = lost_servable(out_folder)
                    results[n].append(Result(run, done, server, throttled, busy, sum(lost.values())))
                    print(f"  {n} pipeline(s) x -j {jobs}: {done:,} files  {done / run.wall:7,.0f} files/s  "
                          f"servable lost {dict(lost) or 0}  "
                          f"wall {run.wall:5.1f} s  cpu {run.cpu:5.1f} s  server cpu {server:5.1f} s  "
                          f"throttled {throttled:4.0%} of periods  machine busy {busy:4.0%}  "
                          f"peak {run.peak_mib:5.0f} MiB", flush=True)
        report(results, counts, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Result:
    run: object  # e2e.Run
    files: int  # successes in the shards
    server_cpu: float  # the simulated internet's
    throttled: float  # share of the machines' CFS periods in which their quota ran out
    busy: float  # share of this machine's cores busy (everything: pipelines, server, kernel)
    lost: int  # servable URLs that failed (timeouts when a machine cannot keep up)

    @property
    def rate(self) -> float:
        return self.files / self.run.wall


def report(results: dict[int, list[Result]], counts: list[int], runs: int) -> None:
    base = median(result.rate for result in results[counts[0]])
    print(f"\nmedians of {runs}:")
    print("| pipelines | files/s | vs 1 (linear = N) | servable lost | CPU ms per file | simulated internet's CPU s "
          "| quota ran out (share of periods) | machine busy | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, rows in results.items():
        rate = median(result.rate for result in rows)
        print(f"| {n} | {rate:,.0f} | {rate / base:.2f}x | {median(r.lost for r in rows):,.0f} | "
              f"{median(r.run.cpu / r.files * 1000 for r in rows):.2f} | "
              f"{median(r.server_cpu for r in rows):.1f} | {median(r.throttled for r in rows):.0%} | "
              f"{median(r.busy for r in rows):.0%} | {median(r.run.peak_mib for r in rows):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
