//! `imap` over a million items, consumed as it goes, keeps the parent's memory bounded. A test
//! binary of its own, so that no other test's allocations are counted.

#![cfg(target_os = "linux")]

use std::time::Instant;

use offspring::Pool;
use offspring_tests::status_kib;

offspring::test_support!();

const ITEMS: u64 = 1_000_000;
const WORKERS: usize = 2;
/// How much the parent's resident set may grow over the run.
const BOUND_KIB: u64 = 100 * 1024;

#[offspring::task]
fn inc(n: u64) -> u64 {
    n + 1
}

#[test]
fn a_million_item_imap_consumed_as_it_goes_keeps_memory_bounded() {
    let pool = Pool::new(WORKERS).expect("a pool");
    // Warm up: workers started, buffers allocated.
    assert_eq!(pool.apply(inc, 1).expect("a call"), 2);
    let (rss, hwm) = (status_kib("VmRSS"), status_kib("VmHWM"));
    let started = Instant::now();
    let mut peak = rss;
    let mut sum = 0u64;
    for (n, value) in pool.imap(inc, 0..ITEMS).enumerate() {
        let value = value.expect("a value");
        assert_eq!(value, n as u64 + 1);
        sum += value;
        if n % 10_000 == 0 {
            peak = peak.max(status_kib("VmRSS"));
        }
    }
    let took = started.elapsed();
    assert_eq!(sum, ITEMS * (ITEMS + 1) / 2);
    let (rss_after, hwm_after) = (status_kib("VmRSS"), status_kib("VmHWM"));
    println!(
        "{ITEMS} imap items on {WORKERS} workers in {took:?} ({:.0} items/s); VmRSS {rss} -> {rss_after} KiB \
         (peak sampled {peak} KiB), VmHWM {hwm} -> {hwm_after} KiB",
        ITEMS as f64 / took.as_secs_f64()
    );
    assert!(
        hwm_after.saturating_sub(rss) < BOUND_KIB,
        "the parent grew from {rss} KiB to a peak of {hwm_after} KiB"
    );
}
