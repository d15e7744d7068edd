"""How fast records of web-image-sized payloads are written and read back.

    python benchmarks/record_codec.py [--records 3000] [--size 69000] [--runs 5]

Prints the median of several runs for our codec (orjson + pybase64, as in
any2dataset.record) and for the same with the standard library's base64.
"""

import argparse
import base64
import binascii
import os
import statistics
import time

import orjson

from any2dataset import record as rec


def stdlib_dumps(record):
    return orjson.dumps(record, default=lambda b: base64.b64encode(b).decode("ascii"),
                        option=orjson.OPT_APPEND_NEWLINE)


def stdlib_decode(record):
    for ext, payload in record["files"].items():
        try:
            record["files"][ext] = base64.b64decode(payload, validate=True)
        except binascii.Error:
            raise


def run(records, dumps, decode):
    started = time.perf_counter()
    lines = [dumps(r) for r in records]
    for line in lines:
        decode(rec.parse(line))
    return time.perf_counter() - started, sum(map(len, lines))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--size", type=int, default=69000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    payloads = [os.urandom(args.size) for _ in range(64)]
    records = [{"key": f"{i:09d}", "url": f"http://127.0.0.1/{i}.jpg", "status": "success",
                "files": {"jpg": payloads[i % 64]}} for i in range(args.records)]
    variants = {
        "orjson + pybase64 (any2dataset)": (rec.dumps, rec.decode_payloads),
        "orjson + stdlib base64": (stdlib_dumps, stdlib_decode),
    }
    print(f"{args.records} records of {args.size} bytes, dump + parse + decode, median of {args.runs} runs")
    for name, (dumps, decode) in variants.items():
        times = []
        for _ in range(args.runs):
            fresh = [dict(r, files=dict(r["files"])) for r in records]
            seconds, total = run(fresh, dumps, decode)
            times.append(seconds)
        median = statistics.median(times)
        print(f"  {name:34s} {args.records / median:8.0f} records/s  {total / median / 1e6:7.0f} MB/s of lines")


if __name__ == "__main__":
    main()
