"""What Python's multiprocessing.Pool and concurrent.futures.ProcessPoolExecutor do in the
situations docs/reliability.md describes for offspring. Run: python3 xtask/reliability/python_faults.py

Each scenario runs in a child interpreter of its own with a deadline, so a hang is reported as
a hang instead of blocking the script. Prints one line per scenario and kills everything it
started (the process group) when done.
"""

import os
import signal
import subprocess
import sys
import time

SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def slow(n):
    time.sleep(0.05)
    return n


def boom(n):
    raise ValueError("boom")


def worker_pids_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@scenario
def pool_worker_killed():
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        result = pool.map_async(slow, range(200))
        time.sleep(1.0)
        victim = pool._pool[0].pid
        os.kill(victim, signal.SIGKILL)
        try:
            result.get(timeout=20)
            print("returned every value")
        except mp.TimeoutError:
            print("HANG: map never returned (waited 20 s)")


@scenario
def executor_worker_killed():
    import concurrent.futures as cf
    import multiprocessing as mp
    ex = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"))
    futures = [ex.submit(slow, n) for n in range(200)]
    time.sleep(1.0)
    os.kill(next(iter(ex._processes)), signal.SIGKILL)
    failed = 0
    for f in futures:
        try:
            f.result(timeout=20)
        except Exception:  # BrokenProcessPool
            failed += 1
    try:
        ex.submit(slow, 1).result(timeout=10)
        usable = "usable"
    except Exception as e:
        usable = f"unusable ({type(e).__name__})"
    print(f"{failed} of 200 calls failed for one kill; executor afterwards {usable}")
    ex.shutdown(wait=False, cancel_futures=True)


@scenario
def pool_exception():
    import multiprocessing as mp
    with mp.get_context("spawn").Pool(2) as pool:
        try:
            pool.apply(boom, (1,))
        except ValueError as e:
            print(f"raised {type(e).__name__} in the caller; pool goes on: {pool.apply(slow, (2,)) == 2}")


def parent_killed(kind):
    # A parent that starts a pool, makes its workers busy, prints their pids, then is SIGKILLed.
    code = f"""
import multiprocessing as mp, concurrent.futures as cf, time, sys, os
def spin(_):
    while True: pass
if __name__ == '__main__':
    ctx = mp.get_context('spawn')
    if {kind!r} == 'pool':
        pool = ctx.Pool(2); pool.map_async(spin, range(2)); time.sleep(2)
        print(' '.join(str(p.pid) for p in pool._pool), flush=True)
    else:
        ex = cf.ProcessPoolExecutor(2, mp_context=ctx); [ex.submit(spin, i) for i in range(2)]; time.sleep(2)
        print(' '.join(str(p) for p in ex._processes), flush=True)
    time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < 10:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] not in "ZX"]
        if not alive:
            print(f"workers gone {time.monotonic() - killed:.2f} s after the parent")
            return
        time.sleep(0.05)
    print(f"ORPHANS: {len(alive)} of {len(pids)} workers still running 10 s after the parent was killed")
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@scenario
def pool_parent_killed():
    parent_killed("pool")


@scenario
def executor_parent_killed():
    parent_killed("executor")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        SCENARIOS[sys.argv[2]]()
        return
    print(f"Python {sys.version.split()[0]}, spawn start method")
    for name in SCENARIOS:
        child = subprocess.Popen([sys.executable, __file__, "--one", name], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            out, _ = child.communicate(timeout=60)
            line = out.strip().splitlines()[-1] if out.strip() else f"no output (exit {child.returncode})"
        except subprocess.TimeoutExpired:
            line = "HANG: no result within 60 s"
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
        print(f"{name}: {line}", flush=True)


if __name__ == "__main__":
    main()
