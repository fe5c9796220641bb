//! The live view: a pool of 4 works through uneven tasks for a few minutes (3 by default;
//! `--seconds N` for another length), and one task in about sixty crashes its worker. Open
//! the URL it prints to watch the workers, the queue, the rate, the failures and the last
//! minute of the timeline as they happen (see `docs/dashboard.md`).
//!
//! Needs offspring's `dashboard` feature (this examples crate turns it on).

use std::time::{Duration, Instant};

/// Takes between 10 and 400 ms, unevenly; task 13 of every 61 aborts its worker instead.
#[offspring::task]
fn uneven(n: u64) -> u64 {
    if n % 61 == 13 {
        std::process::abort();
    }
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    let millis = 10 + (x % 100).pow(2) / 25;
    std::thread::sleep(Duration::from_millis(millis));
    n
}

#[offspring::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = match std::env::args().skip_while(|a| a != "--seconds").nth(1) {
        Some(n) => n.parse()?,
        None => 180,
    };
    let pool = offspring::Pool::builder()
        .processes(4)
        .dashboard("127.0.0.1:0")
        .build()?;
    // The URL carries the view's token; it is also logged at INFO for programs with a
    // subscriber.
    if let Some(url) = pool.dashboard_url() {
        println!("live view: {url}");
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks = (0u64..).take_while(move |_| Instant::now() < deadline);
    let (mut done, mut failed) = (0u64, 0u64);
    for result in pool.imap_unordered(uneven, tasks) {
        match result {
            Ok(_) => done += 1,
            Err(error) => {
                failed += 1;
                println!("failed: {error}");
            }
        }
    }
    let counters = pool.counters();
    println!(
        "{done} tasks done, {failed} failed, {} workers restarted",
        counters.restarted
    );
    assert_eq!(counters.done, done);
    assert_eq!(counters.failed, failed);
    Ok(())
}
