"""a2d-fetch against img2dataset on the same corpus, served by nginx on 127.0.0.1.

    python benchmarks/fetch_vs_img2dataset.py [--files 20000] [--runs 3] [-j 256]
                                              [--img2dataset PATH] [--nginx /usr/sbin/nginx]

Generates --files random files of web-image-like sizes (50-90 KB, mean ~69 KB),
starts nginx (one worker) over them on a free loopback port, then runs, in turn,
A B A B ...:

  A  a2d-fetch -j J -q urls.jsonl > /dev/null          (sha256 of every file, the default)
  B  img2dataset --output_format dummy --disable_all_reencoding True
                 --processes_count 2 --thread_count 64 --number_sample_per_shard 1000

and prints for each the median files/s, MB/s, CPU seconds and peak RSS (the largest
single process, from wait4), and the ratio of the medians. img2dataset is looked
up on PATH unless --img2dataset says where; without it only a2d-fetch is measured.
Needs nginx (Debian: apt-get install nginx-light).
"""

import argparse
import contextlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

NGINX_CONF = """
worker_processes 1;
{user}
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/files;
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_corpus(folder: str, count: int) -> int:
    os.makedirs(os.path.join(folder, "files"))
    rng = random.Random(1)
    total = 0
    for i in range(count):
        size = rng.randint(50_000, 90_000)
        with open(os.path.join(folder, "files", f"{i:06d}.jpg"), "wb") as out:
            out.write(os.urandom(size))
        total += size
    return total


def start_nginx(nginx: str, folder: str, port: int) -> subprocess.Popen:
    os.makedirs(os.path.join(folder, "tmp"), exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as out:
        out.write(NGINX_CONF.format(dir=folder, port=port, user=user))
    server = subprocess.Popen([nginx, "-c", conf, "-e", os.path.join(folder, "error.log")])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    sys.exit(f"nginx did not start; see {folder}/error.log")


@contextlib.contextmanager
def served_corpus(nginx: str, files: int, prefix: str):
    """A temporary folder of `files` generated files served by nginx: (folder, port, bytes)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o755)  # nginx's workers read it
    server = None
    try:
        total_bytes = make_corpus(folder, files)
        port = free_port()
        server = start_nginx(nginx, folder, port)
        yield folder, port, total_bytes
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def measure(command: list[str], cwd: str) -> tuple[float, float, float, str]:
    """(wall s, cpu s, peak RSS MiB, stderr) of one run of a command and its children."""
    with open(os.devnull, "wb") as devnull, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=devnull, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-j", "--concurrency", type=int, default=256)
    parser.add_argument("--img2dataset", default=shutil.which("img2dataset"))
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = parser.parse_args()
    if not os.path.exists(args.nginx):
        sys.exit("nginx is needed: apt-get install nginx-light")
    here = os.path.dirname(os.path.abspath(__file__))
    bin_dir = os.path.join(here, os.pardir, "bin")
    a2d_read = shutil.which("a2d-read") or os.path.join(bin_dir, "a2d-read")
    a2d_fetch = shutil.which("a2d-fetch") or os.path.join(bin_dir, "a2d-fetch")

    with served_corpus(args.nginx, args.files, "a2d-fetch-bench-") as (folder, port, total_bytes):
        with open(os.path.join(folder, "urls.txt"), "w") as out:
            out.writelines(f"http://127.0.0.1:{port}/{i:06d}.jpg\n" for i in range(args.files))
        subprocess.run([a2d_read, "-q", "urls.txt", "-o", "urls.jsonl"], cwd=folder, check=True)

        contenders = {"a2d-fetch": [a2d_fetch, "-j", str(args.concurrency), "urls.jsonl"]}
        if args.img2dataset:
            contenders["img2dataset"] = [
                args.img2dataset, "--url_list", "urls.txt", "--input_format", "txt", "--output_folder", "i2d-out",
                "--output_format", "dummy", "--disable_all_reencoding", "True", "--processes_count", "2",
                "--thread_count", "64", "--number_sample_per_shard", "1000", "--timeout", "10", "--retries", "0",
                "--enable_wandb", "False",
            ]
        else:
            print("img2dataset not found (--img2dataset PATH): measuring a2d-fetch alone", file=sys.stderr)

        results = {name: [] for name in contenders}
        for run in range(args.runs + 1):  # the first round warms caches and is not counted
            for name, command in contenders.items():
                shutil.rmtree(os.path.join(folder, "i2d-out"), ignore_errors=True)
                outcome = measure(command, folder)
                if name == "a2d-fetch" and f"{args.files} downloaded" not in outcome[3]:
                    sys.exit(f"a2d-fetch did not download every file: {outcome[3]}")
                if run:
                    results[name].append(outcome)

        mean_kb = total_bytes / args.files / 1000
        print(f"{args.files} files of {mean_kb:.0f} KB on average from nginx on 127.0.0.1, "
              f"median of {args.runs} runs, {os.cpu_count()} cores")
        print(f"{'':<14}{'files/s':>10}{'MB/s':>8}{'wall s':>8}{'cpu s':>8}{'peak MiB':>10}")
        rates = {}
        for name, runs in results.items():
            wall = statistics.median(r[0] for r in runs)
            rates[name] = args.files / wall
            print(f"{name:<14}{rates[name]:>10,.0f}{total_bytes / wall / 1e6:>8.0f}{wall:>8.2f}"
                  f"{statistics.median(r[1] for r in runs):>8.2f}{statistics.median(r[2] for r in runs):>10.0f}")
        if "img2dataset" in rates:
            print(f"a2d-fetch / img2dataset files/s: {rates['a2d-fetch'] / rates['img2dataset']:.1f}x")


if __name__ == "__main__":
    main()
