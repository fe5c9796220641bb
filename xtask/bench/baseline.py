#!/usr/bin/env python3
"""The Python baseline of `cargo xtask bench`.

Measures the scenarios of `crates/offspring-bench` with Python's `multiprocessing`, using the
`spawn` start method (and `fork` as well for the pool start), and prints the same line
protocol on stdout, every id prefixed with `python.`:

    figure<TAB>python.<id><TAB><unit><TAB><lower_is_better 0|1><TAB><description>
    sample<TAB>python.<id><TAB><value>

Only the standard library is used. `cargo xtask bench [--quick]` runs this script after the
Rust bench and puts both in one table; it can also be run on its own:

    python3 xtask/bench/baseline.py [--quick]

Every worker process is reaped before the script exits, whether it ends normally or by an
exception.
"""

import multiprocessing
from multiprocessing import shared_memory
import sys
import time

MIB = 1024 * 1024

# The settings mirror offspring-bench's. Python is slower per call, so a few scenarios use
# fewer calls per sample; every figure is a rate or a per-call time, so the count changes the
# run time, not the meaning of a sample. The semaphore is the exception the other way: a
# Python acquire/release pair costs well under a microsecond, so each worker takes many more
# pairs, enough for the two workers to overlap and for the pool's dispatch not to dominate.
QUICK = {
    "samples": 5,
    "round_trips": 1_000,
    "async_tasks": 5_000,
    "map_items": 50_000,
    "map_items_chunk_1": 5_000,
    "primitive_rounds": 500,
    "semaphore_rounds": 20_000,
}
FULL = {
    "samples": 15,
    "round_trips": 5_000,
    "async_tasks": 20_000,
    "map_items": 500_000,
    "map_items_chunk_1": 20_000,
    "primitive_rounds": 5_000,
    "semaphore_rounds": 100_000,
}

MAP_CHUNKS = (1, 64, 1024, 8192)


# The tasks. They live at module level so that `spawn` workers, which import this file as
# `__mp_main__`, can find them by name.


def nothing(*_args):
    return None


def echo(payload):
    return payload


def sample_shm(name, length):
    """Attaches to a SharedMemory block by name and reads 256 bytes spread over it."""
    block = shared_memory.SharedMemory(name=name)
    try:
        step = max(length // 256, 1)
        return sum(block.buf[i] for i in range(0, length, step))
    finally:
        block.close()


def increment_many(count):
    value = _SHARED_VALUE
    for _ in range(count):
        with value.get_lock():
            value.value += 1


_SHARED_VALUE = None


def _adopt_value(value):
    global _SHARED_VALUE
    _SHARED_VALUE = value


def rss_kib():
    with open("/proc/self/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pipe_echo(end, count):
    for _ in range(count):
        end.send(end.recv())


def queue_echo(inbox, outbox, count):
    for _ in range(count):
        outbox.put(inbox.get())


def event_echo(ping, pong, count):
    for _ in range(count):
        ping.wait()
        ping.clear()
        pong.set()


_SEMAPHORE = None


def _adopt_semaphore(semaphore):
    # A semaphore reaches a pool worker only while the worker is being started.
    global _SEMAPHORE
    _SEMAPHORE = semaphore


def semaphore_pairs(count):
    for _ in range(count):
        _SEMAPHORE.acquire()
        _SEMAPHORE.release()


# The line protocol.


def figure(fid, unit, lower_is_better, description):
    print(f"figure\tpython.{fid}\t{unit}\t{int(lower_is_better)}\t{description}", flush=True)


def sample(fid, value):
    print(f"sample\tpython.{fid}\t{float(value)!r}", flush=True)


def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


# The scenarios.


def task_round_trip(spawn, s):
    figure("task_round_trip", "us", True, "apply of a trivial task on a warm Pool(1), spawn")
    pool = spawn.Pool(1)
    try:
        pool.apply(nothing)
        for _ in range(s["samples"]):
            started = time.perf_counter()
            for _ in range(s["round_trips"]):
                pool.apply(nothing)
            sample("task_round_trip", (time.perf_counter() - started) * 1e6 / s["round_trips"])
    finally:
        pool.terminate()
        pool.join()


def pool2_first_result(ctx, fid, method, s):
    figure(fid, "ms", True, f"Pool(2) with {method} to the first apply's value")
    for _ in range(s["samples"]):
        started = time.perf_counter()
        pool = ctx.Pool(2)
        try:
            pool.apply(nothing)
            sample(fid, (time.perf_counter() - started) * 1e3)
        finally:
            pool.terminate()
            pool.join()


def apply_async_throughput(pool, s):
    figure(
        "apply_async_throughput",
        "tasks/s",
        False,
        "apply_async of trivial tasks on Pool(2), spawn, then get of each",
    )
    for _ in range(s["samples"]):
        started = time.perf_counter()
        results = [pool.apply_async(nothing) for _ in range(s["async_tasks"])]
        for result in results:
            result.get()
        sample("apply_async_throughput", s["async_tasks"] / (time.perf_counter() - started))


def map_throughput(pool, workers, s):
    items = s["map_items"]
    # Pool.map's own default: four chunks per worker, rounded up.
    default_chunk = -(-items // (workers * 4))
    runs = [(f"map_throughput_chunk_{chunk}", chunk, str(chunk)) for chunk in MAP_CHUNKS]
    runs.append(("map_throughput_default", None, f"Python's default ({default_chunk})"))
    measured = {}
    for fid, chunk, label in runs:
        count = s["map_items_chunk_1"] if chunk == 1 else items
        figure(
            fid,
            "items/s",
            False,
            f"map of {count} trivial items on Pool(2), spawn, chunk size {label}",
        )
        samples = []
        for _ in range(s["samples"]):
            started = time.perf_counter()
            if chunk is None:
                pool.map(nothing, [None] * count)
            else:
                pool.map(nothing, [None] * count, chunksize=chunk)
            samples.append(count / (time.perf_counter() - started))
            sample(fid, samples[-1])
        measured[label] = samples
    best = max(measured, key=lambda label: median(measured[label]))
    figure(
        "map_throughput_best",
        "items/s",
        False,
        f"map of trivial items on Pool(2), spawn, best chunk size measured: {best}",
    )
    for value in measured[best]:
        sample("map_throughput_best", value)


def worker_rss(pool, fid, description, s):
    figure(fid, "KiB", True, description)
    for _ in range(min(s["samples"], 3)):
        sample(fid, pool.apply(rss_kib))


def payload_64mib(pool, s):
    figure(
        "payload_64mib",
        "MiB/s",
        False,
        "64 MiB bytes argument to a spawn worker and back (MiB moved per second, both ways)",
    )
    payload = bytes(64 * MIB)
    for _ in range(min(s["samples"], 5)):
        started = time.perf_counter()
        back = pool.apply(echo, (payload,))
        took = time.perf_counter() - started
        if len(back) != len(payload):
            raise RuntimeError(f"the echo returned {len(back)} bytes, not {len(payload)}")
        sample("payload_64mib", 128 / took)


def ping_pong(spawn, fid, description, target, args, round_trip, s):
    """Times `round_trip()` against a spawn process running `target(*args, count)`."""
    figure(fid, "us", True, description)
    rounds = s["primitive_rounds"]
    # One round trip more than timed, to wait for the process to start before the clock does.
    process = spawn.Process(target=target, args=(*args, rounds * s["samples"] + 1), daemon=True)
    process.start()
    try:
        round_trip(0)
        for _ in range(s["samples"]):
            started = time.perf_counter()
            for n in range(rounds):
                round_trip(n)
            sample(fid, (time.perf_counter() - started) * 1e6 / rounds)
        process.join(timeout=30)
    finally:
        if process.is_alive():
            process.terminate()
        process.join()


def pipe_ping_pong(spawn, s):
    mine, theirs = spawn.Pipe()

    def round_trip(n):
        mine.send(n)
        mine.recv()

    try:
        ping_pong(
            spawn,
            "pipe_ping_pong",
            "multiprocessing.Pipe round trip between the parent and a spawn process",
            pipe_echo,
            (theirs,),
            round_trip,
            s,
        )
    finally:
        mine.close()
        theirs.close()


def queue_ping_pong(spawn, s):
    to_worker, from_worker = spawn.Queue(), spawn.Queue()

    def round_trip(n):
        to_worker.put(n)
        from_worker.get()

    try:
        ping_pong(
            spawn,
            "queue_ping_pong",
            "multiprocessing.Queue round trip (two queues) between the parent and a spawn process",
            queue_echo,
            (to_worker, from_worker),
            round_trip,
            s,
        )
    finally:
        for queue in (to_worker, from_worker):
            queue.close()
            queue.join_thread()


def event_ping_pong(spawn, s):
    ping, pong = spawn.Event(), spawn.Event()

    def round_trip(_n):
        ping.set()
        pong.wait()
        pong.clear()

    ping_pong(
        spawn,
        "event_ping_pong",
        "multiprocessing.Event round trip (two events) between the parent and a spawn process",
        event_echo,
        (ping, pong),
        round_trip,
        s,
    )


def semaphore_pairs_per_second(spawn, s):
    figure(
        "semaphore_pairs",
        "pairs/s",
        False,
        "acquire/release pairs per second from 2 spawn pool workers contending on Semaphore(1)",
    )
    rounds = s["semaphore_rounds"]
    semaphore = spawn.Semaphore(1)
    pool = spawn.Pool(2, initializer=_adopt_semaphore, initargs=(semaphore,))
    try:
        pool.map(nothing, [None] * 100, chunksize=1)
        for _ in range(s["samples"]):
            started = time.perf_counter()
            pool.map(semaphore_pairs, [rounds, rounds], chunksize=1)
            sample("semaphore_pairs", 2 * rounds / (time.perf_counter() - started))
    finally:
        pool.terminate()
        pool.join()


def shm_256mib_call(pool, s):
    figure(
        "shm_256mib_call",
        "us",
        True,
        "apply of a task that attaches a 256 MiB SharedMemory by name and reads 256 bytes of it",
    )
    length = 256 * MIB
    block = shared_memory.SharedMemory(create=True, size=length)
    try:
        block.buf[:length] = b"\x03" * length
        pool.apply(sample_shm, (block.name, length))
        calls = max(s["round_trips"] // 20, 100)
        for _ in range(s["samples"]):
            started = time.perf_counter()
            for _ in range(calls):
                pool.apply(sample_shm, (block.name, length))
            sample("shm_256mib_call", (time.perf_counter() - started) / calls * 1e6)
    finally:
        block.close()
        block.unlink()


def value_increment_rate(spawn, s):
    figure(
        "value_increment_rate",
        "ops/s",
        False,
        "Value('Q') incremented under its lock from 2 spawn pool workers at once",
    )
    count = s["semaphore_rounds"]
    value = spawn.Value("Q", 0)
    pool = spawn.Pool(2, initializer=_adopt_value, initargs=(value,))
    try:
        pool.map(nothing, [None] * 100, chunksize=1)
        for _ in range(min(s["samples"], 5)):
            value.value = 0
            started = time.perf_counter()
            pool.map(increment_many, [count, count], chunksize=1)
            took = time.perf_counter() - started
            if value.value != 2 * count:
                raise RuntimeError(f"increments lost: {value.value} of {2 * count}")
            sample("value_increment_rate", 2 * count / took)
    finally:
        pool.terminate()
        pool.join()


def main(argv):
    unknown = [arg for arg in argv if arg != "--quick"]
    if unknown:
        print(f"usage: baseline.py [--quick] (unexpected {' '.join(unknown)})", file=sys.stderr)
        return 2
    s = QUICK if "--quick" in argv else FULL
    spawn = multiprocessing.get_context("spawn")
    fork = multiprocessing.get_context("fork")

    task_round_trip(spawn, s)
    pool2_first_result(spawn, "pool2_first_result", "spawn", s)
    pool2_first_result(fork, "pool2_first_result_fork", "fork", s)

    pool = spawn.Pool(2)
    try:
        pool.map(nothing, [None] * 100, chunksize=1)
        apply_async_throughput(pool, s)
        map_throughput(pool, 2, s)
        worker_rss(
            pool,
            "idle_worker_rss",
            "resident memory of an idle spawn pool worker, before any large payload",
            s,
        )
        payload_64mib(pool, s)
        shm_256mib_call(pool, s)
        worker_rss(
            pool,
            "worker_rss_after_64mib",
            "resident memory of an idle spawn pool worker after the 64 MiB payloads",
            s,
        )
    finally:
        pool.terminate()
        pool.join()

    pipe_ping_pong(spawn, s)
    queue_ping_pong(spawn, s)
    event_ping_pong(spawn, s)
    semaphore_pairs_per_second(spawn, s)
    value_increment_rate(spawn, s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
