"""Scale out on Ray: one Ray task per part, each the stages piped as they are.

Task I of PARTS runs, wherever Ray puts it,

    a2d-read URL_LIST | a2d-shard --part I/PARTS --skip-done OUT | a2d-fetch | a2d-write OUT

so every task reads the whole list and keeps its shards (shard % PARTS == I). All write into
OUT, which must be storage every node writes to (s3://bucket/out, or a shared filesystem at the
same path everywhere); their shards are disjoint. A task that fails (a2d-fetch crashed, the node
was lost) is retried MAX_RETRIES times, and --skip-done means the retry does not redo the shards
it finished. Run the same command again to resume: finished shards are left out.

Usage:
    python examples/ray_parts.py [URL_LIST [OUTPUT_FOLDER]]     # pip install 'any2dataset[ray]'
    URL_LIST       anything a2d-read reads (default: serve examples/data on 127.0.0.1, 15 rows)
    OUTPUT_FOLDER  local folder or s3://... (default: examples/out-ray)
Environment:
    RAY_ADDRESS  the cluster to join (Ray's own variable; without it a local Ray starts here)
    PER_SHARD    rows per shard (default 10000; 4 for the example data)
    PARTS        tasks, one CPU each (default: the cluster's CPUs)
    MAX_RETRIES  attempts after a task's first (default 3)
    FETCH_OPTS   more a2d-fetch options, e.g. "-j 128 --timeout 10"
    WRITE_OPTS   more a2d-write options, e.g. "--format files"
Keep PER_SHARD the same between runs (PARTS may change). The nodes need any2dataset installed
(a2d-* on PATH) and bash; each task gets the driver's environment (PATH, credentials such as AWS_*).
"""

import functools
import http.server
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
COMMANDS = ("a2d-read", "a2d-shard", "a2d-fetch", "a2d-write", "a2d-stats")
PIPELINE = ('a2d-read "$URLS" | a2d-shard --number-sample-per-shard "$PER_SHARD" --skip-done "$OUT" --part "$1" '
            '| a2d-fetch --workers 1 $FETCH_OPTS | a2d-write $WRITE_OPTS "$OUT"')


def run_part(part: int, parts: int, env: dict) -> int:
    """One part's pipeline; raise (and Ray retries the task) when a stage fails."""
    subprocess.run(["bash", "-o", "pipefail", "-c", PIPELINE, "part", f"{part}/{parts}"], env=env, check=True)
    return part


def serve_example_data(work: str) -> str:
    """Serve examples/data on 127.0.0.1 and write its URL list (as serve.sh does); the list's path."""
    handler = functools.partial(QuietHandler, directory=os.path.join(HERE, "data"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(os.path.join(HERE, "urls.template.csv")) as template:
        text = template.read().replace("@BASE@", f"http://127.0.0.1:{server.server_address[1]}")
    path = os.path.join(work, "urls.csv")
    with open(path, "w") as urls:
        urls.write(text)
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> None:
    import ray

    env = dict(os.environ)
    if not all(shutil.which(command) for command in COMMANDS):  # prefer installed commands
        env["PATH"] = os.path.join(HERE, os.pardir, "bin") + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory() as work:
        if len(sys.argv) > 1:
            urls = sys.argv[1]
        else:  # the example data, from scratch
            urls = serve_example_data(work)
            env.setdefault("PER_SHARD", "4")
            shutil.rmtree(os.path.join(HERE, "out-ray"), ignore_errors=True)
        out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "out-ray")
        if "://" not in out:
            out = os.path.abspath(out)  # the tasks see the same path
        env.update(URLS=urls, OUT=out.rstrip("/"), PER_SHARD=env.get("PER_SHARD", "10000"),
                   FETCH_OPTS=env.get("FETCH_OPTS", ""), WRITE_OPTS=env.get("WRITE_OPTS", ""))

        ray.init(include_dashboard=False)  # joins RAY_ADDRESS if set
        parts = int(env.get("PARTS") or ray.cluster_resources().get("CPU", 1))
        task = ray.remote(num_cpus=1, max_retries=int(env.get("MAX_RETRIES", "3")), retry_exceptions=True)(run_part)
        print(f"== {parts} Ray tasks, each: {PIPELINE.replace('$1', 'I/' + str(parts))}", file=sys.stderr)
        pending = {task.remote(part, parts, env): part for part in range(parts)}
        failed = []
        while pending:
            [done], _ = ray.wait(list(pending))
            part = pending.pop(done)
            try:
                ray.get(done)
            except ray.exceptions.RayError as error:
                failed.append(part)
                print(f"== part {part}/{parts} failed: {str(error).strip().splitlines()[-1]}", file=sys.stderr)
        ray.shutdown()
        if failed:
            sys.exit(f"== parts {', '.join(map(str, sorted(failed)))} failed; run the same command again to "
                     "redo their unfinished shards")
        print(f"== a2d-stats {shlex.quote(env['OUT'])}", file=sys.stderr)
        subprocess.run(["a2d-stats", env["OUT"]], env=env, check=True)


if __name__ == "__main__":
    main()
