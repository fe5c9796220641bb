//! Fault injection: workers SIGKILLed at random moments under a long `imap`. Every call ends
//! with its value or `WorkerDied`, as many deaths as the pool counted, no hang, nothing left
//! behind. A test binary of its own, so that every child of this process belongs to the pool
//! under test (the two tests take turns through a lock).

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offspring::{Error, Pool};
use offspring_tests::{Rng, children_of, process_running};

offspring::test_support!();

const ITEMS: u64 = 10_000;
const KILLS: usize = 20;
const WORKERS: usize = 3;
/// The whole run, kills included, must end within this; a hang fails the test instead.
const BOUND: Duration = Duration::from_secs(120);

/// One test at a time: the process-table check counts every child of this process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Spins for about half a millisecond, so kills find calls running, and says who ran it.
#[offspring::task]
fn work(n: u64) -> (u64, u32) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_micros(500) {
        std::hint::spin_loop();
    }
    (n * 2 + 1, std::process::id())
}

/// What one run saw.
struct Run {
    /// Every worker that returned a value.
    pids: Vec<u32>,
    values: u64,
    died: Vec<usize>,
    kills: usize,
    kills_during_run: usize,
    took: Duration,
}

/// Kills a random serving worker of `pool` `KILLS` times, at random moments 10 to 100 ms
/// apart. Only workers that have run a batch are candidates: they are connected and
/// initialized, so a kill is a worker's death, never a failed start.
fn killer(pool: Pool, done: Arc<AtomicBool>, seed: u64) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let me = std::process::id();
        let mut killed = HashSet::new();
        let mut during_run = 0;
        let started = Instant::now();
        while killed.len() < KILLS && started.elapsed() < BOUND {
            std::thread::sleep(Duration::from_millis(10 + rng.below(91)));
            let candidates: Vec<u32> = offspring::__private::serving_pids(&pool)
                .into_iter()
                .filter(|pid| !killed.contains(pid))
                .filter(|pid| process_running(*pid) && children_of(me).contains(pid))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let victim = candidates[rng.below(candidates.len() as u64) as usize];
            if offspring_tests::signal(victim, libc::SIGKILL) {
                killed.insert(victim);
                if !done.load(Ordering::SeqCst) {
                    during_run += 1;
                }
            }
        }
        (killed.len(), during_run)
    })
}

/// How a storm submits its calls.
#[derive(Debug, Clone, Copy)]
enum Submit {
    /// One `imap`, consumed as it goes.
    Imap,
    /// `imap_chunked` with chunks of 1,000: every item's own result, from large batches.
    ImapChunks,
    /// Bursts of 500 `apply_async`, each burst's results taken before the next.
    ApplyAsyncBursts,
}

/// Runs `ITEMS` calls the `submit` way while the killer works, checking every value.
fn run_under_kills(pool: &Pool, seed: u64, submit: Submit) -> Run {
    let done = Arc::new(AtomicBool::new(false));
    let killer = killer(pool.clone(), Arc::clone(&done), seed);
    let started = Instant::now();
    let mut values = 0;
    let mut died = Vec::new();
    let mut known = HashSet::new();
    let mut check = |n: usize, result: offspring::Result<(u64, u32)>| match result {
        Ok((value, pid)) => {
            assert_eq!(value, n as u64 * 2 + 1, "item {n}");
            values += 1;
            known.insert(pid);
        }
        Err(Error::WorkerDied { index, .. }) => {
            if !matches!(submit, Submit::ApplyAsyncBursts) {
                assert_eq!(index, Some(n), "a death names its own input index");
            }
            died.push(n);
        }
        Err(other) => panic!("item {n}: unexpected {other}"),
    };
    match submit {
        Submit::Imap => {
            for (n, result) in pool.imap(work, 0..ITEMS).enumerate() {
                check(n, result);
            }
        }
        Submit::ImapChunks => {
            for (n, result) in pool.imap_chunked(work, 0..ITEMS, 1_000).enumerate() {
                check(n, result);
            }
        }
        Submit::ApplyAsyncBursts => {
            for burst in (0..ITEMS).collect::<Vec<_>>().chunks(500) {
                let pending: Vec<_> = burst.iter().map(|&n| pool.apply_async(work, n)).collect();
                for (&n, result) in burst.iter().zip(pending) {
                    check(n as usize, result.get());
                }
            }
        }
    }
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (kills, kills_during_run) = killer.join().expect("killer thread");
    Run {
        pids: known.into_iter().collect(),
        values,
        died,
        kills,
        kills_during_run,
        took,
    }
}

/// Runs `scenario` on a thread of its own and fails the test if it does not end within
/// [`BOUND`].
fn bounded(scenario: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        scenario();
        let _ = tx.send(());
    });
    match rx.recv_timeout(BOUND) {
        Ok(()) => runner.join().expect("scenario"),
        // The scenario panicked: join to report its message.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = runner.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the run did not end within {BOUND:?}")
        }
    }
}

/// After the pool is gone, no child of this process is left, running or zombie, and none of
/// the workers that ran calls lives on elsewhere (an orphan would have a new parent).
fn nothing_left(pids: &[u32]) {
    let me = std::process::id();
    let gone = offspring_tests::wait_until(Duration::from_secs(20), || children_of(me).is_empty());
    assert!(
        gone.is_some(),
        "children left after the pool was dropped: {:?}",
        children_of(me)
    );
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| process_running(p))
        .collect();
    assert!(alive.is_empty(), "workers still running: {alive:?}");
    println!("{} workers ran calls; none is left", pids.len());
}

/// Without retries: every call ends with its value or `WorkerDied`, exactly one per death of
/// a worker with a call running.
fn storm_without_retries(submit: Submit) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    bounded(move || {
        let seed = Rng::seed();
        println!("seed {seed}");
        let pool = Pool::new(WORKERS).expect("a pool");
        let run = run_under_kills(&pool, seed, submit);
        let counters = pool.counters();
        println!(
            "{submit:?}: {ITEMS} calls on {WORKERS} workers in {:?}: {} values, {} WorkerDied; {} kills ({} during the run); {counters:?}",
            run.took,
            run.values,
            run.died.len(),
            run.kills,
            run.kills_during_run,
        );
        assert_eq!(run.values + run.died.len() as u64, ITEMS);
        assert_eq!(run.kills, KILLS, "the killer found {} victims", run.kills);
        assert_eq!(
            run.died.len() as u64,
            counters.died_running,
            "every death of a worker with a call running fails exactly that call"
        );
        assert!(counters.died_running <= KILLS as u64, "{counters:?}");
        assert_eq!(counters.failed, counters.died_running, "{counters:?}");
        // Every kill, of a busy or an idle worker, is replaced.
        let replaced = offspring_tests::wait_until(Duration::from_secs(30), || {
            pool.counters().restarted == KILLS as u64
        });
        assert!(replaced.is_some(), "{:?}", pool.counters());
        assert_eq!(pool.apply(work, 20).expect("one more call").0, 41);
        assert_eq!(pool.counters().spawned, (WORKERS + KILLS) as u64);
        drop(pool);
        nothing_left(&run.pids);
    });
}

/// With three retries: every call returns its value.
fn storm_with_retries(submit: Submit) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    bounded(move || {
        let seed = Rng::seed();
        println!("seed {seed}");
        let pool = Pool::builder()
            .processes(WORKERS)
            .retries(3)
            .build()
            .expect("a pool");
        let run = run_under_kills(&pool, seed, submit);
        let counters = pool.counters();
        println!(
            "{submit:?}: {ITEMS} calls on {WORKERS} workers with retries(3) in {:?}: {} values; {} kills ({} during the run); {counters:?}",
            run.took, run.values, run.kills, run.kills_during_run,
        );
        assert!(run.died.is_empty(), "calls died: {:?}", run.died);
        assert_eq!(run.values, ITEMS);
        assert_eq!(run.kills, KILLS);
        assert_eq!(counters.failed, 0, "{counters:?}");
        assert_eq!(pool.apply(work, 20).expect("one more call").0, 41);
        drop(pool);
        nothing_left(&run.pids);
    });
}

#[test]
fn every_call_ends_with_its_value_or_worker_died_while_workers_are_killed_at_random() {
    storm_without_retries(Submit::Imap);
}

#[test]
fn with_three_retries_every_call_returns_its_value_while_workers_are_killed_at_random() {
    storm_with_retries(Submit::Imap);
}

#[test]
fn chunks_of_a_thousand_blame_only_the_running_call_while_workers_are_killed_at_random() {
    storm_without_retries(Submit::ImapChunks);
}

#[test]
fn chunks_of_a_thousand_with_retries_return_every_value_while_workers_are_killed_at_random() {
    storm_with_retries(Submit::ImapChunks);
}

#[test]
fn apply_async_bursts_blame_only_the_running_call_while_workers_are_killed_at_random() {
    storm_without_retries(Submit::ApplyAsyncBursts);
}

#[test]
fn apply_async_bursts_with_retries_return_every_value_while_workers_are_killed_at_random() {
    storm_with_retries(Submit::ApplyAsyncBursts);
}
