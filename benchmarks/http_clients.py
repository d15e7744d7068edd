"""The ceiling of two HTTP client libraries on this machine: bare download loops, no records.

    python benchmarks/http_clients.py [--files 10000] [-j 64] [--runs 3]

Serves --files random 50-90 KB files with nginx on 127.0.0.1 (as fetch_vs_img2dataset.py
does) and downloads them all with (a) aiohttp on asyncio tasks and (b) pycurl's multi
interface, if pycurl is installed, bodies kept in memory and discarded, alternating runs;
prints the median files/s of each. It tells how much of a2d-fetch's time is the client
library's own.
"""

import argparse
import asyncio
import io
import shutil
import statistics
import time

from fetch_vs_img2dataset import served_corpus


def with_aiohttp(urls: list[str], concurrency: int) -> float:
    import aiohttp

    async def main():
        slots = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            async def one(url):
                async with slots, session.get(url) as response:
                    return len(await response.read())

            return sum(await asyncio.gather(*(one(url) for url in urls)))

    started = time.perf_counter()
    asyncio.run(main())
    return len(urls) / (time.perf_counter() - started)


def with_pycurl(urls: list[str], concurrency: int) -> float:
    import pycurl

    multi = pycurl.CurlMulti()
    idle = [pycurl.Curl() for _ in range(concurrency)]
    waiting = list(reversed(urls))
    active = done = 0
    started = time.perf_counter()
    while waiting or active:
        while waiting and idle:
            handle = idle.pop()
            handle.body = io.BytesIO()
            handle.setopt(pycurl.URL, waiting.pop())
            handle.setopt(pycurl.WRITEDATA, handle.body)
            multi.add_handle(handle)
            active += 1
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, finished, failed = multi.info_read()
            for handle in [*finished, *(f[0] for f in failed)]:
                multi.remove_handle(handle)
                idle.append(handle)
                active -= 1
                done += 1
            if not queued:
                break
        multi.select(0.1)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("-j", "--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = parser.parse_args()
    clients = {"aiohttp": with_aiohttp}
    try:
        import pycurl  # noqa: F401

        clients["pycurl multi"] = with_pycurl
    except ImportError:
        print("pycurl is not installed: measuring aiohttp alone")
    with served_corpus(args.nginx, args.files, "a2d-http-bench-") as (_folder, port, _bytes):
        urls = [f"http://127.0.0.1:{port}/{i:06d}.jpg" for i in range(args.files)]
        rates = {name: [] for name in clients}
        for _ in range(args.runs):
            for name, client in clients.items():
                rates[name].append(client(urls, args.concurrency))
        print(f"{args.files} files, -j {args.concurrency}, median of {args.runs} runs")
        for name, values in rates.items():
            print(f"  {name:<14}{statistics.median(values):>8,.0f} files/s")


if __name__ == "__main__":
    main()
