"""Records/s, payload MB/s and peak memory of a2d-write, per output format.

    python benchmarks/write_throughput.py [--records 20000] [--size 70000] [--runs 3]

Prepares one JSONL stream of --records successful records with random payloads of
--size bytes (base64 on the wire, like a2d-fetch's output, ~1.9 GB with the defaults)
in a temporary folder, then runs `a2d-write -q --format F OUT < stream.jsonl` for each
format, alternating formats run by run so drift on a shared machine hits all alike,
and prints the median of --runs runs: records/s, payload MB/s (payload bytes, not
base64), CPU seconds (user+sys) and peak RSS of the writer (from wait4). Two floors:
`cat stream.jsonl > /dev/null` reads the stream, `cat stream.jsonl > FILE` also writes
its bytes (this VM pays heavily, in sys time, for memory pages it has not touched
for a while, so writing 1.4 GB is itself far from free). A third floor, `create files`,
only creates the files the files format makes (3 per sample, same sizes) from Python
with os.open/os.write, without reading anything: the cost of the file system alone.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from measure import medians, run_measured

FORMATS = ["webdataset", "files", "parquet", "tfrecord", "dummy"]


def make_stream(path: str, records: int, size: int) -> None:
    """Random payloads (incompressible, like media), in a child process so the parent stays small."""
    code = f"""
import os, sys
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
from any2dataset import record as rec
with open({path!r}, "wb", buffering=1 << 20) as out:
    for i in range({records}):
        out.write(rec.dumps({{"key": f"{{i:09d}}", "shard": i // 10000,
                              "shard_size": min(10000, {records} - i // 10000 * 10000),
                              "url": f"http://127.0.0.1/{{i}}.jpg", "caption": f"caption {{i}}", "status": "success",
                              "mime": "image/jpeg", "size": {size}, "files": {{"jpg": os.urandom({size})}}}}))
"""
    subprocess.run([sys.executable, "-c", code], check=True)


CREATE_FILES = """
import os, sys
folder, records, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(folder)
payload, meta, caption = os.urandom(size), b"x" * 400, b"caption"
for i in range(records):
    for ext, data in (("jpg", payload), ("json", meta), ("txt", caption)):
        fd = os.open(os.path.join(folder, f"{i:09d}.{ext}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--size", type=int, default=70000, help="payload bytes per record")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--dir", help="where the stream and outputs go (default: the temporary folder)")
    args = parser.parse_args()
    formats = args.formats.split(",")

    folder = tempfile.mkdtemp(prefix="a2d-write-bench-", dir=args.dir)
    try:
        stream = os.path.join(folder, "stream.jsonl")
        make_stream(stream, args.records, args.size)
        payload_mb = args.records * args.size / 1e6
        print(f"stream: {args.records} records, {args.size} B payloads, {os.path.getsize(stream) / 1e6:.0f} MB "
              f"of JSONL ({payload_mb:.0f} MB payload); median of {args.runs} runs")
        floors = ["cat > /dev/null", "cat > file"] + (["create files"] if "files" in formats else [])
        results = {name: [] for name in [*floors, *formats]}
        copy = os.path.join(folder, "copy.jsonl")
        for _ in range(args.runs):
            results["cat > /dev/null"].append(run_measured(["cat"], stream))
            results["cat > file"].append(run_measured(["cat"], stream, copy))
            os.remove(copy)
            if "files" in formats:
                created = os.path.join(folder, "created")
                results["create files"].append(run_measured(
                    [sys.executable, "-c", CREATE_FILES, created, str(args.records), str(args.size)], os.devnull))
                shutil.rmtree(created)
            for name in formats:
                out = os.path.join(folder, f"out-{name}")
                shutil.rmtree(out, ignore_errors=True)
                results[name].append(run_measured([sys.executable, "-m", "any2dataset.write", "-q", "--format", name,
                                               out], stream))
                shutil.rmtree(out, ignore_errors=True)
        print(f"{'format':<16}{'records/s':>11}{'payload MB/s':>14}{'CPU s':>8}{'peak RSS MiB':>14}")
        for name, runs in results.items():
            m = medians(runs)
            print(f"{name:<16}{args.records / m.seconds:>11,.0f}{payload_mb / m.seconds:>14,.0f}{m.cpu:>8.1f}"
                  f"{m.peak_mib:>14,.0f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
