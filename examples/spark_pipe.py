"""Scale out on Spark: the stages run as they are, piped through over the partitions of the URL table.

1. On the driver, `a2d-read URL_LIST | a2d-shard --skip-done OUT` gives every row its key, shard
   and shard_size (img2dataset's formula, by input position) and leaves out the shards already
   finished in OUT; the records go to a JSONL file the executors can read (--records).
2. Spark repartitions the records by shard, so each partition holds whole shards, sorted by key.
3. `RDD.pipe` runs `a2d-shard --skip-done OUT | a2d-fetch | a2d-write OUT` once per partition on
   its JSON lines. Every partition writes its own shards into OUT, which must be storage all
   executors write to (s3://bucket/out, or a shared filesystem at the same path everywhere).
   a2d-shard --skip-done there means a retried task does not redo the shards it finished.

Usage:
    spark-submit examples/spark_pipe.py URL_LIST OUTPUT_FOLDER [--per-shard N] [--partitions P]
    python examples/spark_pipe.py --master 'local[4]' urls.csv out/     # pip install pyspark

Run it again to resume: finished shards are left out. The executors need any2dataset installed
(a2d-fetch and a2d-write on PATH) and bash; the pipe gets the driver's environment (PATH,
credentials such as AWS_*), so install it at the same place on every node. On a cluster, give
--records a path on a shared filesystem (the default, a local temporary file, is for local mode).
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

COMMANDS = ("a2d-read", "a2d-shard", "a2d-fetch", "a2d-write", "a2d-stats")


def shard_and_key(line: str):
    record = json.loads(line)
    return (record["shard"], record["key"]), line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", help="URL list: anything a2d-read reads")
    parser.add_argument("out", help="output folder: s3://... or a shared filesystem")
    parser.add_argument("--per-shard", type=int, default=10000, help="rows per shard (default 10000)")
    parser.add_argument("--partitions", type=int, help="partitions, each a pipeline (default: Spark's parallelism)")
    parser.add_argument("--records", help="JSONL file for the keyed records, on a filesystem the executors "
                        "share (default: a temporary file, for local mode)")
    parser.add_argument("--master", help="Spark master (default: spark-submit's, or local[*])")
    parser.add_argument("--fetch-opts", default="", help="more a2d-fetch options, e.g. '-j 128 --timeout 10'")
    parser.add_argument("--write-opts", default="", help="more a2d-write options, e.g. '--format files'")
    args = parser.parse_args()

    env = dict(os.environ)
    if not all(shutil.which(command) for command in COMMANDS):  # prefer installed commands
        checkout_bin = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "bin")
        env["PATH"] = os.path.abspath(checkout_bin) + os.pathsep + env.get("PATH", "")
    out = args.out.rstrip("/")
    if "://" not in out:
        out = os.path.abspath(out)  # the executors see the same path
    scratch = None if args.records else tempfile.mkdtemp(prefix="a2d-spark-")
    try:
        run(args, out, args.records or os.path.join(scratch, "records.jsonl"), env)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def run(args, out: str, records: str, env: dict) -> None:
    print(f"== a2d-read {args.urls} | a2d-shard --skip-done {out} > {records}", file=sys.stderr)
    subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         'a2d-read "$1" | a2d-shard --number-sample-per-shard "$2" --skip-done "$3" > "$4"',
         "a2d-shard", args.urls, str(args.per_shard), out, records],
        env=env, check=True)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local mode: workers run this Python
    from pyspark import SparkConf, SparkContext

    conf = SparkConf().setAppName("any2dataset").setIfMissing("spark.master", "local[*]")
    if args.master:
        conf.setMaster(args.master)
    sc = SparkContext.getOrCreate(conf)
    partitions = args.partitions or sc.defaultParallelism

    pipeline = (f"a2d-shard --number-sample-per-shard {args.per_shard} --skip-done {shlex.quote(out)}"
                f" | a2d-fetch --workers 1 {args.fetch_opts} | a2d-write {args.write_opts} {shlex.quote(out)}")
    print(f"== {partitions} partitions, each piped through: {pipeline}", file=sys.stderr)
    written = (
        sc.textFile("file://" + os.path.abspath(records))
        .map(shard_and_key)
        # Whole shards per partition (shard % partitions), each shard's rows together and in order.
        .repartitionAndSortWithinPartitions(partitions, partitionFunc=lambda key: key[0])
        .values()
        .pipe(shlex.join(["bash", "-o", "pipefail", "-c", pipeline]), env=env, checkCode=True)
        .collect()  # a2d-write prints nothing on stdout; its summaries go to the executors' stderr
    )
    for line in written:
        print(line)
    sc.stop()

    print(f"== a2d-stats {out}", file=sys.stderr)
    subprocess.run(["a2d-stats", out], env=env, check=True)


if __name__ == "__main__":
    main()
