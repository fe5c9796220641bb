//! Quickstart: count the primes below three million on a pool (one chunk of the range per
//! task), compare with doing it serially in this process, then the seed's pool-and-callback
//! scenario: a callback that runs in the parent with a worker's result.

use std::time::Instant;

/// Counts the primes in `[start, end)` by trial division: deliberately CPU-bound work.
#[offspring::task]
fn count_primes(start: u64, end: u64) -> u64 {
    (start..end).filter(|&n| is_prime(n)).count() as u64
}

/// The seed's `f1`: prints where it runs and returns `n * n`.
#[offspring::task]
fn f1(n: u64) -> u64 {
    println!("pool worker pid: {}", std::process::id());
    println!(">>>> {n}");
    n * n
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    const LIMIT: u64 = 3_000_000;
    const CHUNKS: u64 = 64;

    let started = Instant::now();
    let serial = count_primes(0, LIMIT);
    let serial_time = started.elapsed();
    println!("serial: {serial} primes below {LIMIT} in {serial_time:.2?}");

    let pool = offspring::Pool::builder().build()?;
    let started = Instant::now();
    let ranges = (0..CHUNKS).map(|i| (i * LIMIT / CHUNKS, (i + 1) * LIMIT / CHUNKS));
    let total: u64 = pool.map(count_primes, ranges)?.into_iter().sum();
    let pool_time = started.elapsed();
    println!(
        "pool of {}: {total} primes in {pool_time:.2?} ({:.2}x the serial speed)",
        pool.processes(),
        serial_time.as_secs_f64() / pool_time.as_secs_f64()
    );
    assert_eq!(total, serial, "the pool must agree with the serial count");

    let res = pool.apply_async(f1, 5).callback(|value| {
        println!("callback pid: {}", std::process::id());
        println!("result in callback: {value}");
    });
    pool.close();
    pool.join()?;
    println!("parent pid: {}", std::process::id());
    assert_eq!(res.get()?, 25);
    println!("counters: {:?}", pool.counters());
    Ok(())
}
