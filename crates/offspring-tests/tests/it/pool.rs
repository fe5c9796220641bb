//! `Pool`: submission, results, callbacks and lifecycle, with real workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offspring::{Error, Event, Pool};

#[offspring::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[offspring::task]
fn square(n: u64) -> u64 {
    n * n
}

#[offspring::task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[offspring::task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Sets `running` once the call is in its worker, then sleeps: a test waits for the event
/// instead of hoping a call has started.
#[offspring::task]
fn sleep_ms_once_running(running: Event, ms: u64) -> u64 {
    running.set();
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// `a + b` once `go` is set.
#[offspring::task]
fn add_after(go: Event, a: i64, b: i64) -> i64 {
    go.wait();
    a + b
}

#[offspring::task]
fn fail_on(n: u64, bad: u64) -> u64 {
    assert!(n != bad, "item {n} is bad");
    n
}

#[offspring::task]
fn checked(n: i32) -> Result<i32, String> {
    if n < 0 {
        Err(format!("{n} is negative"))
    } else {
        Ok(n)
    }
}

#[test]
fn apply_map_and_starmap_return_values_in_order() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    assert_eq!(pool.apply(add, (2, 3))?, 5);
    assert_eq!(pool.starmap(add, vec![(1, 2), (3, 4)])?, vec![3, 7]);
    // The calls wait for `go`, so the callback is attached before their results arrive (a
    // callback attached later runs too, but `wait` does not wait for it).
    let (tx, rx) = std::sync::mpsc::channel();
    let go = Event::new()?;
    let pending = pool
        .starmap_async(add_after, vec![(go.clone(), 5, 6), (go.clone(), 7, 8)])
        .callback(move |sums: &Vec<i64>| {
            let _ = tx.send(sums.clone());
        });
    go.set();
    pending.wait();
    assert_eq!(
        rx.try_recv().ok(),
        Some(vec![11, 15]),
        "the callback ran before wait returned"
    );
    assert_eq!(pending.get()?, vec![11, 15]);
    let expected: Vec<u64> = (0..1000).map(|n| n * n).collect();
    assert_eq!(pool.map(square, 0..1000)?, expected);
    assert_eq!(pool.map_chunked(square, 0..1000, 7)?, expected);
    assert_eq!(pool.map_async(square, 0..1000).get()?, expected);
    assert_eq!(pool.map(square, Vec::new())?, Vec::<u64>::new());
    let pids: std::collections::HashSet<u32> = pool
        .map_chunked(worker_pid, vec![(); 200], 1)?
        .into_iter()
        .collect();
    assert!(!pids.contains(&std::process::id()));
    println!("200 calls ran on {} distinct workers", pids.len());
    Ok(())
}

#[test]
fn a_tasks_own_error_is_its_value() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    assert_eq!(pool.apply(checked, -1)?, Err("-1 is negative".to_owned()));
    assert_eq!(pool.apply(checked, 1)?, Ok(1));
    Ok(())
}

#[test]
fn a_pool_of_zero_processes_is_an_error() {
    assert!(matches!(Pool::new(0), Err(Error::InvalidConfig { .. })));
}

#[test]
fn map_reports_the_first_failure_in_input_order_with_its_index() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let err = pool
        .map(fail_on, (0..100).map(|n| (n, 37)))
        .expect_err("item 37 panics");
    match &err {
        Error::TaskPanicked { index, message, .. } => {
            assert_eq!(*index, Some(37));
            assert!(message.contains("item 37 is bad"));
        }
        other => panic!("expected TaskPanicked, got {other:?}"),
    }
    assert!(err.to_string().contains("input index 37"), "{err}");
    Ok(())
}

#[test]
fn imap_yields_each_items_own_result_in_order() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let results: Vec<_> = pool.imap(fail_on, (0..50).map(|n| (n, 10))).collect();
    assert_eq!(results.len(), 50);
    for (n, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(value, n as u64),
            Err(Error::TaskPanicked { index, .. }) => assert_eq!((n, index), (10, Some(10))),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0..100)
        .collect::<offspring::Result<_>>()?;
    unordered.sort_unstable();
    assert_eq!(unordered, (0..100).map(|n| n * n).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn a_progress_bar_changes_nothing_about_the_results() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    // stderr is not a terminal here, so the bar is hidden; the results are the same, with the
    // failure in its place, for known and unknown input lengths.
    let known: Vec<_> = pool
        .imap(fail_on, (0..40).map(|n| (n, 7)))
        .progress()
        .collect();
    assert_eq!(known.len(), 40);
    assert!(matches!(known[7], Err(Error::TaskPanicked { .. })));
    assert_eq!(known[8].as_ref().ok(), Some(&8));
    let unknown: Vec<u64> = pool
        .imap_unordered(square, (0..30).filter(|n| n % 3 == 0))
        .progress()
        .collect::<offspring::Result<_>>()?;
    assert_eq!(unknown.len(), 10);
    Ok(())
}

#[test]
fn imap_pulls_its_input_lazily() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let mut results = pool.imap(square, endless);
    for n in 0..1000u64 {
        assert_eq!(results.next().transpose()?, Some(n * n));
        let ahead = pulled.load(Ordering::SeqCst) as u64 - (n + 1);
        assert!(
            ahead <= (offspring::IMAP_AHEAD * pool.processes()) as u64,
            "pulled {ahead} items ahead of the consumer"
        );
    }
    println!(
        "after 1000 items consumed, {} pulled",
        pulled.load(Ordering::SeqCst)
    );
    drop(results);
    // The pool serves other work after the imap was dropped mid-stream.
    assert_eq!(pool.apply(square, 3)?, 9);
    Ok(())
}

#[test]
fn get_timeout_leaves_the_result_pending_and_retrievable() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let result = pool.apply_async(sleep_ms, 800);
    assert!(!result.ready());
    assert_eq!(result.successful(), None);
    assert!(matches!(
        result.get_timeout(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert!(!result.wait_timeout(Duration::from_millis(10)));
    result.wait();
    assert!(result.ready());
    assert_eq!(result.successful(), Some(true));
    assert_eq!(result.get_timeout(Duration::from_secs(1))?, 800);
    assert!(matches!(result.get(), Err(Error::AlreadyTaken { .. })));
    Ok(())
}

#[test]
fn callbacks_run_once_in_the_parent_even_without_get() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    for n in 0..10u64 {
        let seen = Arc::clone(&seen);
        let _ = pool.apply_async(square, n).callback(move |value| {
            let thread = std::thread::current().name().map(str::to_owned);
            seen.lock()
                .expect("lock")
                .push((*value, std::process::id(), thread));
        });
    }
    let errors = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&errors);
    let failing = pool
        .apply_async(fail_on, (1, 1))
        .callback(|_| panic!("a failure must not reach the success callback"))
        .error_callback(move |err| {
            assert!(matches!(err, Error::TaskPanicked { .. }));
            counted.fetch_add(1, Ordering::SeqCst);
        });
    // A callback attached after the result arrived still runs, once.
    let late = pool.apply_async(square, 12);
    late.wait();
    let late_seen = Arc::new(AtomicUsize::new(0));
    let late_counter = Arc::clone(&late_seen);
    let late = late.callback(move |value| {
        assert_eq!(*value, 144);
        late_counter.fetch_add(1, Ordering::SeqCst);
    });
    // A panicking callback is caught and the pool goes on.
    let _ = pool
        .apply_async(square, 2)
        .callback(|_| panic!("callback panics on purpose"));
    pool.close();
    pool.join()?;
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 10);
    for (_, pid, thread) in seen.iter() {
        assert_eq!(*pid, std::process::id(), "callbacks run in the parent");
        assert_eq!(thread.as_deref(), Some("offspring-callbacks"));
    }
    let mut values: Vec<u64> = seen.iter().map(|(v, _, _)| *v).collect();
    values.sort_unstable();
    assert_eq!(values, (0..10).map(|n| n * n).collect::<Vec<_>>());
    assert_eq!(errors.load(Ordering::SeqCst), 1);
    assert_eq!(late_seen.load(Ordering::SeqCst), 1);
    assert!(failing.get().is_err());
    assert_eq!(late.get()?, 144);
    Ok(())
}

#[test]
fn a_callback_may_submit_more_work_to_the_pool() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let inner = pool.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = pool.apply_async(square, 3).callback(move |value| {
        let _ = tx.send(inner.apply(square, *value));
    });
    let nested = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the callback ran")?;
    assert_eq!(nested, 81);
    Ok(())
}

#[test]
fn dropping_the_last_clone_on_the_callback_thread_does_not_deadlock() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let last = pool.clone();
    let result = pool.apply_async(square, 5);
    drop(pool);
    let _keep = result.callback(move |value| {
        drop(last);
        let _ = tx.send(*value);
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60))
            .expect("callback ran"),
        25
    );
    Ok(())
}

#[test]
fn close_refuses_work_and_join_waits_for_it() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let pending: Vec<_> = (0..4).map(|_| pool.apply_async(sleep_ms, 200)).collect();
    pool.close();
    assert!(matches!(pool.apply(square, 1), Err(Error::PoolClosed)));
    pool.join()?;
    for result in pending {
        assert!(result.ready());
        assert_eq!(result.get()?, 200);
    }
    Ok(())
}

#[test]
fn terminate_turns_pending_results_into_pool_closed() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let started = Event::new()?;
    let running = pool.apply_async(sleep_ms_once_running, (started.clone(), 60_000));
    let queued = pool.apply_async(sleep_ms, 60_000);
    // One call running and one queued behind it, for sure.
    assert!(
        started.wait_timeout(Duration::from_secs(60)),
        "the call never started"
    );
    let started = Instant::now();
    pool.terminate();
    assert!(matches!(running.get(), Err(Error::PoolClosed)));
    assert!(matches!(queued.get(), Err(Error::PoolClosed)));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(matches!(pool.apply(square, 2), Err(Error::PoolClosed)));
    Ok(())
}

#[test]
fn a_result_outlives_its_pool() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let result = pool.apply_async(sleep_ms, 60_000);
    drop(pool);
    assert!(matches!(result.get(), Err(Error::PoolClosed)));
    Ok(())
}

#[test]
fn await_does_not_block_a_current_thread_runtime() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ticks);
    let value = runtime.block_on(async move {
        let ticker = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let value = pool.apply_async(sleep_ms, 500).await;
        ticker.abort();
        value
    })?;
    assert_eq!(value, 500);
    let ticks = ticks.load(Ordering::SeqCst);
    println!("the runtime ticked {ticks} times while awaiting");
    assert!(ticks >= 5, "the runtime was blocked: {ticks} ticks");
    Ok(())
}

/// As Python's: `wait` returns, and `ready` and `successful` say so, only once a callback
/// attached before the result arrived has returned; one attached later does not turn them
/// back.
#[test]
fn wait_and_ready_include_the_callback_attached_in_time() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let started = Event::new()?;
    for fails in [false, true] {
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        let hold = {
            let ran = Arc::clone(&ran);
            move || {
                let _ = entered_tx.send(());
                let _ = release_rx.recv_timeout(Duration::from_secs(60));
                ran.fetch_add(1, Ordering::SeqCst);
            }
        };
        // The callback is attached while the call is still running in its worker.
        let gate = Event::new()?;
        started.clear();
        let pending =
            pool.apply_async(wait_then_maybe_fail, (started.clone(), gate.clone(), fails));
        let pending = if fails {
            pending.error_callback(move |_| hold())
        } else {
            pending.callback(move |_| hold())
        };
        assert!(started.wait_timeout(Duration::from_secs(60)));
        gate.set();
        entered
            .recv_timeout(Duration::from_secs(60))
            .expect("the callback ran");
        // The result is there, but its callback has not returned: not ready yet.
        assert!(!pending.ready());
        assert_eq!(pending.successful(), None);
        assert!(!pending.wait_timeout(Duration::from_millis(50)));
        release.send(()).expect("release the callback");
        pending.wait();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "wait returned before the callback"
        );
        assert!(pending.ready());
        assert_eq!(pending.successful(), Some(!fails));
        // A callback attached now runs once and leaves the result ready.
        let (late_tx, late) = std::sync::mpsc::channel::<()>();
        let (late_release, late_rx) = std::sync::mpsc::channel::<()>();
        let pending = if fails {
            pending.error_callback(move |_| {
                let _ = late_tx.send(());
                let _ = late_rx.recv_timeout(Duration::from_secs(60));
            })
        } else {
            pending.callback(move |_| {
                let _ = late_tx.send(());
                let _ = late_rx.recv_timeout(Duration::from_secs(60));
            })
        };
        late.recv_timeout(Duration::from_secs(60))
            .expect("the late callback ran");
        assert!(pending.ready());
        late_release.send(()).expect("release");
        let _ = pending.get();
    }
    Ok(())
}

/// Says it started, waits for `gate`, then returns or panics.
#[offspring::task]
fn wait_then_maybe_fail(started: Event, gate: Event, fails: bool) -> u64 {
    started.set();
    gate.wait_timeout(Duration::from_secs(60));
    assert!(!fails, "asked to fail");
    1
}

/// An input that panics at its fourth item: `imap` yields the first three values, then the
/// panic resumes where the fourth would be, as Python's `imap` raises there.
#[test]
fn a_panicking_imap_input_surfaces_at_its_own_position() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let input = (0..10u64).inspect(|&n| assert!(n != 3, "the input fails at item 3"));
    let mut results = pool.imap(square, input);
    for n in 0..3u64 {
        let value = results.next().expect("a value")?;
        assert_eq!(value, n * n);
    }
    let fourth = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| results.next()));
    let payload = fourth.expect_err("the input's panic resumes at its position");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(message.contains("fails at item 3"), "{message}");
    drop(results);
    assert_eq!(pool.apply(square, 5)?, 25, "the pool stays usable");
    Ok(())
}

/// A burst of `apply_async` of a trivial task shares batches (fewer batches than calls) and
/// every call keeps its own value; calls of a slow task never go together, so no worker sits
/// on a slow call it has not started while another worker idles.
#[test]
fn single_calls_share_batches_only_when_they_are_short() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    let before = pool.counters().batches;
    let results: Vec<_> = (0..2_000u64).map(|n| pool.apply_async(square, n)).collect();
    for (n, result) in results.into_iter().enumerate() {
        assert_eq!(result.get()?, (n * n) as u64);
    }
    let quick = pool.counters().batches - before;
    println!("2000 quick calls in {quick} batches");
    assert!(quick < 2_000, "no quick calls shared a batch");

    // Each 40 ms call is timed at more than the merge budget, so it goes alone.
    let before = pool.counters().batches;
    let results: Vec<_> = (0..8u64).map(|_| pool.apply_async(sleep_ms, 40)).collect();
    for result in results {
        assert_eq!(result.get()?, 40);
    }
    let slow = pool.counters().batches - before;
    println!("8 slow calls in {slow} batches");
    assert_eq!(slow, 8, "slow calls went together");
    Ok(())
}
