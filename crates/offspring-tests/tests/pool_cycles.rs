//! A thousand pools created and terminated leave the parent's descriptors and threads where
//! they were. A test binary of its own, so that no other test's workers or sockets are counted.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use offspring::Pool;
use offspring_tests::{children_of, open_fds, thread_count};

offspring::test_support!();

const CYCLES: usize = 1_000;
const WORKERS: usize = 2;

/// Threads the parent may start lazily on its own schedule (the coordinator runtime's
/// blocking pool keeps an idle thread for ten seconds), allowed above the starting count.
const THREAD_SLACK: usize = 2;
/// Descriptors allowed above the starting count, for the same lazily started threads.
const FD_SLACK: usize = 2;

#[offspring::task]
fn one() -> u32 {
    1
}

/// One pool: created, one call, terminated. Returns how many workers it had started (the
/// second may still be starting when the call returns; terminate then waits for it and kills
/// it, which is a path worth cycling too).
fn cycle() -> u64 {
    let pool = Pool::new(WORKERS).expect("a pool");
    assert_eq!(pool.apply(one, ()).expect("a call"), 1);
    pool.terminate();
    pool.counters().spawned
}

#[test]
fn a_thousand_pools_leave_no_descriptor_thread_or_process_behind() {
    // The first pool starts the coordinator (its runtime, listener and threads) for good.
    cycle();
    let (fds, threads) = (open_fds(), thread_count());
    let started = Instant::now();
    let spawned: u64 = (0..CYCLES).map(|_| cycle()).sum();
    let took = started.elapsed();
    let me = std::process::id();
    let reaped =
        offspring_tests::wait_until(Duration::from_secs(20), || children_of(me).is_empty());
    let settled = offspring_tests::wait_until(Duration::from_secs(20), || {
        open_fds() <= fds + FD_SLACK && thread_count() <= threads + THREAD_SLACK
    });
    println!(
        "{CYCLES} pools of {WORKERS} (create, one call, terminate) in {took:?} ({:?} each); \
         {spawned} workers started; descriptors {fds} -> {}, threads {threads} -> {}",
        took / CYCLES as u32,
        open_fds(),
        thread_count(),
    );
    assert!(reaped.is_some(), "children left: {:?}", children_of(me));
    assert!(
        settled.is_some(),
        "descriptors {fds} -> {}, threads {threads} -> {}",
        open_fds(),
        thread_count()
    );
}
