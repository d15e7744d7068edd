"""The loader's cache: the byte budget holds on disk (the folder is measured), least recently
used go first, entries survive a restart, broken files are never served, and several
processes share one folder."""

import json
import os
import pickle
import random
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import xxhash

from any2dataset.errors import UsageProblem
from any2dataset.loader.cache import Cache, parse_size


def payload_bytes(folder) -> int:
    """What the payload files take: everything in the folder but the SQLite index."""
    return sum(os.path.getsize(os.path.join(top, name)) for top, _, names in os.walk(folder)
               for name in names if not name.startswith("index.sqlite"))


def rows(folder) -> list[tuple]:
    with sqlite3.connect(os.path.join(folder, "index.sqlite")) as db:
        return db.execute("SELECT id, key, size, checksum FROM entries ORDER BY id").fetchall()


def file_of(folder, key) -> str:
    (entry,) = [row[0] for row in rows(folder) if row[1] == key]
    (path,) = [os.path.join(top, name) for top, _, names in os.walk(os.path.join(folder, "data"))
               for name in names if name.endswith(f"-{entry}")]
    return path


def assert_consistent(folder, budget):
    """Index and folder agree: every row ready with its file (right size and checksum), no
    other file, nothing in tmp/, the running total right and within the budget."""
    entries = rows(folder)
    files = {}
    for top, _, names in os.walk(os.path.join(folder, "data")):
        for name in names:
            with open(os.path.join(top, name), "rb") as file:
                files[int(name.rpartition("-")[2])] = file.read()
    assert {entry: (size, checksum) for entry, _, size, checksum in entries} == \
           {entry: (len(data), xxhash.xxh64_hexdigest(data)) for entry, data in files.items()}
    assert os.listdir(os.path.join(folder, "tmp")) == []
    with sqlite3.connect(os.path.join(folder, "index.sqlite")) as db:
        (total,) = db.execute("SELECT value FROM meta WHERE name = 'total'").fetchone()
    assert total == sum(len(data) for data in files.values()) == payload_bytes(folder) <= budget


@pytest.fixture(params=["disk", "memory"])
def make(request, tmp_path):
    """Cache(budget=...) on disk in tmp_path, or in memory: the same behaviour is asked of both."""
    made = []

    def make(budget):
        made.append(Cache(tmp_path / "cache" if request.param == "disk" else None, budget=budget))
        return made[-1]
    yield make
    for cache in made:
        cache.close()


# -- budgets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("10GB", 10 * 10**9), ("512MiB", 512 * 2**20), ("1.5 kB", 1500), ("2 TiB", 2 * 2**40), ("1tb", 10**12),
    ("4096", 4096), ("100B", 100), (" 3 gib ", 3 * 2**30), ("0", 0), (12345, 12345), (".5MB", 500_000),
])
def test_parse_size_takes_si_and_iec_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["10G", "10 GX", "-1", -1, "", "GB", "1e9", "1,5GB", True, 1.5, None])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(UsageProblem):
        parse_size(text)


def test_a_budget_is_parsed_where_the_cache_is_made(tmp_path):
    assert Cache(budget="2kB").budget == 2000
    with pytest.raises(UsageProblem, match="not a size"):
        Cache(tmp_path, budget="lots")


# -- both modes --------------------------------------------------------------------------------

def test_get_put_contains_and_stats(make):
    cache = make(1000)
    assert cache.get("a") is None and "a" not in cache
    cache.put("a", b"x" * 100)
    cache.put("b", bytearray(b"y" * 50))
    assert "a" in cache and cache.get("a") == b"x" * 100 and cache.get("b") == b"y" * 50
    cache.put("a", b"z" * 10)  # replaced
    assert cache.get("a") == b"z" * 10
    assert cache.usage() == 60
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["evictions"], stats["bytes"], stats["entries"]) == (3, 1, 0, 60, 2)
    with pytest.raises(TypeError):
        cache.get(b"a")


def test_the_least_recently_used_go_first(make):
    cache = make(300)
    for key in "abc":
        cache.put(key, key.encode() * 100)
    assert cache.get("a") == b"a" * 100  # a read: a is now the most recent
    cache.put("d", b"d" * 100)
    assert "b" not in cache and all(key in cache for key in "acd")
    cache.put("e", b"e" * 150)  # two go: c, then a
    assert [key for key in "abcde" if key in cache] == ["d", "e"]
    assert cache.stats()["evictions"] == 3 and cache.usage() == 250


def test_an_entry_larger_than_the_budget_is_not_stored(make):
    cache = make(100)
    cache.put("small", b"s" * 60)
    cache.put("big", b"b" * 101)
    assert "big" not in cache and cache.get("small") == b"s" * 60
    assert cache.stats()["too_large"] == 1 and cache.usage() == 60


def test_clear_empties_the_cache(make):
    cache = make(1000)
    cache.put("a", b"a" * 10)
    cache.clear()
    assert "a" not in cache and cache.usage() == 0 and cache.stats()["entries"] == 0
    cache.put("a", b"b")
    assert cache.get("a") == b"b"


def test_a_budget_of_zero_stores_nothing(make):
    cache = make(0)
    cache.put("a", b"a")
    cache.put("empty", b"")
    assert "a" not in cache and cache.get("empty") == b""


# -- on disk -----------------------------------------------------------------------------------

def test_the_folder_never_holds_more_than_the_budget(tmp_path):
    folder, budget = tmp_path / "cache", 20_000
    rng = random.Random(1)
    with Cache(folder, budget=budget) as cache:
        for step in range(300):
            key = f"k{rng.randrange(100)}"
            if cache.get(key) is None:
                cache.put(key, rng.randbytes(rng.randrange(1, 6000)))
            assert payload_bytes(folder) == cache.usage() <= budget, step
        assert cache.stats()["evictions"] > 50 and cache.stats()["hits"] > 10
    assert_consistent(str(folder), budget)


def test_entries_survive_a_restart(tmp_path):
    folder = tmp_path / "cache"
    with Cache(folder, budget="1MB") as cache:
        cache.put("http://a/1.jpg", b"one")
        cache.put("http://a/2.jpg", b"two" * 1000)
    with Cache(folder, budget="1MB") as again:
        assert again.get("http://a/1.jpg") == b"one" and again.get("http://a/2.jpg") == b"two" * 1000
        assert again.stats()["hits"] == 2 and again.usage() == 3003
    script = f"from any2dataset.loader.cache import Cache; print(Cache({str(folder)!r}, budget=10**6).get('http://a/1.jpg'))"
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert found == "b'one'\n"


def test_a_lower_budget_on_reopening_evicts_down_to_it(tmp_path):
    folder = tmp_path / "cache"
    with Cache(folder, budget=1000) as cache:
        for key in "abcd":
            cache.put(key, key.encode() * 200)
        cache.get("a")
    with Cache(folder, budget=450) as smaller:
        assert [key for key in "abcd" if key in smaller] == ["a", "d"]
        assert smaller.stats()["evictions"] == 2
    assert_consistent(str(folder), 450)


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "append", "delete"])
def test_a_broken_or_missing_file_is_a_miss_and_is_cleaned(tmp_path, damage):
    folder = tmp_path / "cache"
    cache = Cache(folder, budget=10_000)
    cache.put("a", bytes(range(256)) * 4)
    cache.put("b", b"b" * 100)
    path = file_of(str(folder), "a")
    data = open(path, "rb").read()
    if damage == "delete":
        os.unlink(path)
    else:
        changed = {"truncate": data[:500], "append": data + b"!",
                   "flip a byte": data[:300] + bytes([data[300] ^ 1]) + data[301:]}[damage]
        with open(path, "wb") as file:
            file.write(changed)
    assert cache.get("a") is None and "a" not in cache and cache.get("b") == b"b" * 100
    assert cache.stats()["corrupt"] == (damage != "delete") and cache.stats()["misses"] == 1
    assert not os.path.exists(path) and cache.usage() == 100
    assert_consistent(str(folder), 10_000)
    cache.put("a", b"again")
    assert cache.get("a") == b"again"


def test_opening_cleans_what_a_crash_left(tmp_path):
    folder = str(tmp_path / "cache")
    with Cache(folder, budget=10_000) as cache:
        for key in "abc":
            cache.put(key, key.encode() * 100)
    # A writer killed between reserving its room and publishing its payload.
    crash = (f"import os; from any2dataset.loader.cache import Cache; store = Cache({folder!r}, budget=10**4)._store; "
             "entry = store._reserve('d', 400); open(store._tmp(entry), 'wb').write(b'half'); os._exit(0)")
    subprocess.run([sys.executable, "-c", crash], check=True)
    os.unlink(file_of(folder, "a"))  # a row without its file
    stray = os.path.join(folder, "data", "zz", "0123-999")  # a file without its row
    os.makedirs(os.path.dirname(stray))
    for path in (stray, os.path.join(folder, "tmp", "12345"), os.path.join(folder, "tmp", "junk")):
        with open(path, "wb") as file:
            file.write(b"left over")
    assert [row[1] for row in rows(folder)] == ["a", "b", "c", "d"]  # d pending
    with Cache(folder, budget=10_000) as again:
        assert again.get("a") is None and again.get("b") == b"b" * 100 and "d" not in again
        assert again.usage() == 200
    assert_consistent(folder, 10_000)


def test_a_key_being_written_by_a_live_process_is_left_to_it(tmp_path):
    cache = Cache(tmp_path / "cache", budget=1000)
    store = cache._store
    entry = store._reserve("a", 600)  # this process is writing "a"
    cache.put("a", b"other")  # another writer of the same key steps aside
    cache.put("b", b"b" * 500)  # the room is held by the live writer: not stored
    assert cache.stats()["skipped"] == 2 and "a" not in cache and "b" not in cache
    assert cache.usage() == 600
    with open(store._tmp(entry), "wb") as file:
        file.write(b"a" * 600)
    assert store._publish("a", entry, xxhash.xxh64_hexdigest(b"a" * 600))
    assert cache.get("a") == b"a" * 600
    cache.close()
    with pytest.raises(ValueError, match="closed"):
        cache.get("a")


def test_a_cache_travels_to_another_process(tmp_path):
    """Pickled (to a worker process) it is the same folder; inherited through fork, the child
    opens its own SQLite connection."""
    cache = Cache(tmp_path / "cache", budget=10_000)
    cache.put("a", b"from the parent")
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.get("a") == b"from the parent" and copy.budget == 10_000
    assert pickle.loads(pickle.dumps(Cache(budget=10))).get("a") is None  # memory: per process
    pid = os.fork()
    if pid == 0:
        try:
            ok = cache.get("a") == b"from the parent"
            cache.put("b", b"from the child")
        finally:
            os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert cache.get("b") == b"from the child"


HAMMER = textwrap.dedent("""
    import json, random, sys
    import xxhash
    from any2dataset.loader.cache import Cache

    def payload(key):
        size = 500 + xxhash.xxh32_intdigest(key.encode()) % 5000
        return (key.encode() + xxhash.xxh64_digest(key.encode())) * (size // 10) + b"!"

    if __name__ == "__main__":
        folder, seed, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        rng = random.Random(seed)
        cache = Cache(folder, budget=40_000)
        totals = {}
        for step in range(rounds):
            key = f"k{rng.randrange(60)}"
            data = cache.get(key)
            if data is None:
                cache.put(key, payload(key))
            elif data != payload(key):
                sys.exit(f"wrong payload for {key}")
            if rng.random() < 0.02:  # a worker restarting
                for name, count in cache.stats().items():
                    totals[name] = totals.get(name, 0) + count
                cache.close()
                cache = Cache(folder, budget=40_000)
        for name, count in cache.stats().items():
            totals[name] = totals.get(name, 0) + count
        print(json.dumps(totals))
""")


@pytest.mark.timeout(300)
def test_four_processes_share_one_folder(tmp_path):
    folder, budget = str(tmp_path / "cache"), 40_000
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    workers = [subprocess.Popen([sys.executable, str(script), folder, str(seed), "300"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(4)]
    # Meanwhile, take snapshots of the folder while holding the index's write lock (files only
    # change under it; payloads being written are within their reservations).
    snapshots = []
    while any(worker.poll() is None for worker in workers):
        if os.path.exists(os.path.join(folder, "index.sqlite")):
            db = sqlite3.connect(os.path.join(folder, "index.sqlite"), timeout=60, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")
                snapshots.append(payload_bytes(folder))
                db.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass  # the schema not made yet
            db.close()
        time.sleep(0.02)
    outputs = [worker.communicate() for worker in workers]
    assert [(worker.returncode, err) for worker, (_, err) in zip(workers, outputs)] == [(0, "")] * 4
    assert snapshots and max(snapshots) <= budget
    counts = [json.loads(out) for out, _ in outputs]
    assert sum(count["hits"] for count in counts) > 100 and sum(count["evictions"] for count in counts) > 20
    assert sum(count["corrupt"] for count in counts) == 0
    assert_consistent(folder, budget)
    with Cache(folder, budget=budget) as cache:  # and it reopens with the same entries
        assert cache.stats()["entries"] == len(rows(folder)) > 0
