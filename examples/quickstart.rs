//! Quickstart: count the primes below two million in four child processes, each taking one
//! slice of the range, and compare with doing it serially in this process.

use std::time::Instant;

/// Counts the primes in `[start, end)` by trial division: deliberately CPU-bound work.
#[offspring::task]
fn count_primes(start: u64, end: u64) -> u64 {
    (start..end).filter(|&n| is_prime(n)).count() as u64
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
    const LIMIT: u64 = 2_000_000;
    const PARTS: u64 = 4;

    let started = Instant::now();
    let serial = count_primes::call(0, LIMIT);
    let serial_time = started.elapsed();
    println!("serial: {serial} primes below {LIMIT} in {serial_time:.2?}");

    let started = Instant::now();
    let children = (0..PARTS)
        .map(|i| {
            let range = (i * LIMIT / PARTS, (i + 1) * LIMIT / PARTS);
            offspring::Process::spawn(count_primes, range)
        })
        .collect::<offspring::Result<Vec<_>>>()?;
    let mut total = 0;
    for child in &children {
        let part = child.join()?;
        println!("child {} counted {part}", child.pid());
        total += part;
    }
    let parallel_time = started.elapsed();
    println!("{PARTS} processes: {total} primes in {parallel_time:.2?}");
    assert_eq!(
        total, serial,
        "the children must agree with the serial count"
    );
    println!(
        "speed-up over serial: {:.2}x",
        serial_time.as_secs_f64() / parallel_time.as_secs_f64()
    );
    Ok(())
}
