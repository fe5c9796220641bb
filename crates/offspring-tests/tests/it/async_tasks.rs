//! `async fn` tasks: the same methods and results as sync tasks, run in real workers on each
//! worker's own runtime.

use std::time::Duration;

use offspring::{Error, Pool, Process};

#[offspring::task]
async fn double_later(n: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    n * 2
}

#[offspring::task]
async fn add_later(a: u64, b: u64) -> u64 {
    tokio::task::yield_now().await;
    a + b
}

#[offspring::task]
async fn fails_at_three(n: u64) -> u64 {
    tokio::task::yield_now().await;
    assert_ne!(n, 3, "async call {n} failed");
    n
}

/// Spawns onto the worker's runtime and joins what it spawned.
#[offspring::task]
async fn spawns_inside(n: u64) -> u64 {
    tokio::spawn(async move { n + 1 }).await.unwrap_or(0)
}

/// Whether a sync task runs inside a runtime (it must not, even after async calls ran on
/// the same worker).
#[offspring::task]
fn sync_sees_a_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// The pid of the worker, and whether the async call runs on a current-thread runtime.
#[offspring::task]
async fn where_am_i() -> (u32, bool) {
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    (
        std::process::id(),
        flavor == tokio::runtime::RuntimeFlavor::CurrentThread,
    )
}

#[test]
fn async_tasks_work_with_every_pool_method() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    assert_eq!(pool.apply(double_later, 21)?, 42);
    assert_eq!(pool.apply(add_later, (40, 2))?, 42);
    assert_eq!(
        pool.map(double_later, 0..50)?,
        (0..50).map(|n| n * 2).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.starmap(add_later, (0..10).map(|n| (n, n)))?,
        (0..10).map(|n| n * 2).collect::<Vec<_>>()
    );
    let streamed: Vec<u64> = pool
        .imap(double_later, 0..20)
        .collect::<offspring::Result<_>>()?;
    assert_eq!(streamed, (0..20).map(|n| n * 2).collect::<Vec<_>>());
    assert_eq!(pool.apply_async(double_later, 5).get()?, 10);
    let awaited = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Primitive {
            reason: e.to_string(),
        })?
        .block_on(async { pool.apply_async(spawns_inside, 9).await })?;
    assert_eq!(awaited, 10);
    let (pid, current_thread) = pool.apply(where_am_i, ())?;
    assert_ne!(pid, std::process::id(), "ran in the parent");
    assert!(current_thread, "not a current-thread runtime");
    assert_eq!(Process::spawn(double_later, 50)?.join()?, 100);
    Ok(())
}

/// A panic in one async call fails that call only; the worker's runtime goes on serving the
/// next calls, and a sync task on the same worker still runs outside any runtime.
#[test]
fn a_panicking_async_call_fails_alone() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let results: Vec<_> = (0..6)
        .map(|n| pool.apply_async(fails_at_three, n))
        .collect();
    for (n, result) in results.into_iter().enumerate() {
        match result.get() {
            Ok(value) => assert_eq!(value, n as u64),
            Err(Error::TaskPanicked { message, .. }) => {
                assert_eq!(n, 3, "call {n} failed: {message}");
                assert!(message.contains("async call 3 failed"), "{message}");
            }
            Err(other) => panic!("call {n}: {other}"),
        }
    }
    assert_eq!(pool.apply(spawns_inside, 1)?, 2);
    assert!(!pool.apply(sync_sees_a_runtime, ())?);
    Ok(())
}

#[offspring::task]
async fn sleep_ms(n: u64, ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    n
}

/// 200 calls that each await 200 ms, on 2 workers running 100 at once, take about what two
/// rounds of one call take, not the 40 s one worker needs serially (20 s for two).
#[test]
fn many_awaiting_calls_run_at_once_on_each_worker() -> offspring::Result<()> {
    let pool = Pool::builder()
        .processes(2)
        .async_concurrency(100)
        .build()?;
    // The workers are up before the clock starts.
    assert_eq!(pool.map(sleep_ms, [(0, 0), (1, 0)])?, [0, 1]);
    let started = std::time::Instant::now();
    let pending: Vec<_> = (0..200)
        .map(|n| pool.apply_async(sleep_ms, (n, 200)))
        .collect();
    for (n, result) in pending.into_iter().enumerate() {
        assert_eq!(result.get()?, n as u64);
    }
    let applied = started.elapsed();
    let started = std::time::Instant::now();
    let mapped = pool.map(sleep_ms, (0..200).map(|n| (n, 200)))?;
    let mapped_time = started.elapsed();
    assert_eq!(mapped, (0..200).collect::<Vec<_>>());
    println!(
        "200 calls of 200 ms on 2 workers, 100 at a time: apply_async {applied:?}, map \
         {mapped_time:?} (serially: 20 s)"
    );
    assert!(
        applied < Duration::from_secs(8),
        "apply_async took {applied:?}"
    );
    assert!(
        mapped_time < Duration::from_secs(8),
        "map took {mapped_time:?}"
    );
    Ok(())
}

/// Call 7 of 40 running at once panics: it alone fails.
#[test]
fn a_panic_among_concurrent_calls_fails_only_its_call() -> offspring::Result<()> {
    let pool = Pool::builder().processes(1).async_concurrency(40).build()?;
    let results: Vec<_> = pool.imap_chunked(fails_at_three_later, 0..40, 40).collect();
    for (n, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(value, n as u64),
            Err(Error::TaskPanicked { message, .. }) => {
                assert_eq!(n, 7, "call {n} failed: {message}");
                assert!(message.contains("async call 7 failed"), "{message}");
            }
            Err(other) => panic!("call {n}: {other}"),
        }
    }
    Ok(())
}

/// Fails at 7 after the others have started (they all await 50 ms first).
#[offspring::task]
async fn fails_at_three_later(n: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_ne!(n, 7, "async call {n} failed");
    n
}

/// Says it started, then waits: call 0 ends its own worker once told, the others await an
/// hour.
#[offspring::task]
async fn hang_until_told(n: u32, started: offspring::Queue<u32>, die: offspring::Event) -> u32 {
    if started.put(&n).is_err() {
        return u32::MAX;
    }
    if n == 0 {
        let told = tokio::task::spawn_blocking(move || die.wait_timeout(Duration::from_secs(120)))
            .await
            .unwrap_or(false);
        if told {
            #[cfg(unix)]
            offspring_tests::signal(std::process::id(), libc::SIGKILL);
            std::process::abort();
        }
    } else {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    n
}

/// A worker killed with 50 async calls in flight fails exactly those 50, each with
/// `WorkerDied`; calls queued behind them run on its replacement.
#[test]
fn a_killed_worker_fails_exactly_its_calls_in_flight() -> offspring::Result<()> {
    let pool = Pool::builder().processes(1).async_concurrency(50).build()?;
    let started = offspring::Queue::<u32>::new()?;
    let die = offspring::Event::new()?;
    let inputs: Vec<_> = (0..50).map(|n| (n, started.clone(), die.clone())).collect();
    let in_flight = pool.imap_chunked(hang_until_told, inputs, 50);
    let consumer = std::thread::spawn(move || in_flight.collect::<Vec<_>>());
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen.push(started.get_timeout(Duration::from_secs(60))?);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>(), "all 50 running at once");
    let behind: Vec<_> = (0..10).map(|n| pool.apply_async(double_later, n)).collect();
    die.set();
    let results = consumer.join().expect("consumer thread");
    assert_eq!(results.len(), 50);
    for (n, result) in results.into_iter().enumerate() {
        assert!(
            matches!(result, Err(Error::WorkerDied { .. })),
            "call {n}: {result:?}"
        );
    }
    for (n, result) in behind.into_iter().enumerate() {
        assert_eq!(result.get()?, 2 * n as u64, "a call queued behind them");
    }
    Ok(())
}

/// Waits for `release` (on a blocking thread of the runtime, so the worker's other calls go
/// on), then returns `n`.
#[offspring::task]
async fn hold_until(n: u64, release: offspring::Event) -> u64 {
    let _ =
        tokio::task::spawn_blocking(move || release.wait_timeout(Duration::from_secs(60))).await;
    n
}

/// A worker running calls at once reports each as it ends and takes more into its free
/// slots: with one call held open, 20 short calls after it all end (on the same single
/// worker, 3 at a time) before the held one does.
#[test]
fn each_async_call_reports_as_it_ends_and_frees_its_slot() -> offspring::Result<()> {
    let pool = Pool::builder().processes(1).async_concurrency(3).build()?;
    let release = offspring::Event::new()?;
    let held = pool.apply_async(hold_until, (7, release.clone()));
    let short: Vec<_> = (0..20)
        .map(|n| pool.apply_async(sleep_ms, (n, 5)))
        .collect();
    for (n, result) in short.into_iter().enumerate() {
        assert_eq!(result.get()?, n as u64);
    }
    assert!(!held.ready(), "the held call ended before it was released");
    release.set();
    assert_eq!(held.get()?, 7);
    Ok(())
}

#[offspring::task]
fn sync_double(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    n * 2
}

/// Sync and async calls on one pool, queued in turns, all end: a sync call waits for the
/// async calls before it to end (a worker never runs both at once), and the async calls
/// behind it wait for it, so neither kind starves the other.
#[test]
fn sync_and_async_calls_share_a_pool_without_starving() -> offspring::Result<()> {
    let pool = Pool::builder().processes(2).async_concurrency(8).build()?;
    let mut asyncs = Vec::new();
    let mut syncs = Vec::new();
    for round in 0..5 {
        for n in 0..16 {
            asyncs.push((
                round * 100 + n,
                pool.apply_async(sleep_ms, (round * 100 + n, 30)),
            ));
        }
        syncs.push((round, pool.apply_async(sync_double, round)));
    }
    for (n, result) in asyncs {
        assert_eq!(result.get_timeout(Duration::from_secs(60))?, n);
    }
    for (n, result) in syncs {
        assert_eq!(result.get_timeout(Duration::from_secs(60))?, 2 * n);
    }
    Ok(())
}

/// Awaits `ms`, then says which worker it ran in.
#[offspring::task]
async fn sleep_then_pid(ms: u64) -> u32 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    std::process::id()
}

/// Blocks its worker's runtime (a blocking call inside async code) for `ms`.
#[offspring::task]
async fn block_the_runtime(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// An async call past the task timeout is cancelled by its worker and fails with
/// `TaskTimedOut`; the worker lives on and its other calls end normally, one at a time or
/// several at once.
#[test]
fn a_timed_out_async_call_is_cancelled_and_its_worker_lives_on() -> offspring::Result<()> {
    let limit = Duration::from_millis(300);
    for concurrency in [1, 4] {
        let pool = Pool::builder()
            .processes(1)
            .async_concurrency(concurrency)
            .task_timeout(limit)
            .build()?;
        let pid = pool.apply(sleep_then_pid, 0)?;
        let started = std::time::Instant::now();
        let slow = pool.apply_async(sleep_then_pid, 60_000);
        let quick: Vec<_> = (0..3)
            .map(|_| pool.apply_async(sleep_then_pid, 10))
            .collect();
        match slow.get() {
            Err(Error::TaskTimedOut {
                limit: reported, ..
            }) => assert_eq!(reported, limit),
            other => panic!("concurrency {concurrency}: the slow call gave {other:?}"),
        }
        let took = started.elapsed();
        for result in quick {
            assert_eq!(
                result.get()?,
                pid,
                "concurrency {concurrency}: another worker"
            );
        }
        assert_eq!(
            pool.apply(sleep_then_pid, 0)?,
            pid,
            "concurrency {concurrency}: the worker was replaced"
        );
        println!("concurrency {concurrency}: cancelled after {took:?} (limit {limit:?})");
        assert!(took < Duration::from_secs(20), "{took:?}");
    }
    Ok(())
}

/// An async call that blocks its worker's runtime cannot be cancelled: its worker is killed
/// once the grace period after the timeout has passed, and a new one takes its place.
#[test]
fn an_async_call_blocking_its_runtime_gets_its_worker_killed() -> offspring::Result<()> {
    let limit = Duration::from_millis(300);
    let pool = Pool::builder()
        .processes(1)
        .async_concurrency(4)
        .task_timeout(limit)
        .build()?;
    let pid = pool.apply(sleep_then_pid, 0)?;
    let started = std::time::Instant::now();
    match pool.apply(block_the_runtime, 60_000) {
        Err(Error::TaskTimedOut { pid: killed, .. }) => assert_eq!(killed, pid),
        other => panic!("the blocking call gave {other:?}"),
    }
    let took = started.elapsed();
    println!("worker killed {took:?} after the call began (limit {limit:?})");
    assert!(
        took >= limit + offspring_coordinator::ASYNC_TIMEOUT_GRACE,
        "killed before the grace period ended: {took:?}"
    );
    assert_ne!(
        pool.apply(sleep_then_pid, 0)?,
        pid,
        "the worker was not replaced"
    );
    Ok(())
}

/// `max_tasks_per_child` counts each async call running alongside others: a worker takes no
/// more than its remaining count, and is replaced once they end.
#[test]
fn async_calls_count_towards_max_tasks_per_child() -> offspring::Result<()> {
    let pool = Pool::builder()
        .processes(1)
        .async_concurrency(4)
        .max_tasks_per_child(3)
        .build()?;
    let pids = pool.map(sleep_then_pid, vec![10; 12])?;
    let mut per_worker = std::collections::BTreeMap::<u32, usize>::new();
    for pid in pids {
        *per_worker.entry(pid).or_default() += 1;
    }
    println!("calls per worker: {per_worker:?}");
    assert!(per_worker.values().all(|&n| n <= 3), "{per_worker:?}");
    assert!(per_worker.len() >= 4, "{per_worker:?}");
    Ok(())
}
