//! Seed scenario `pool_map`: `Pool::new(4).map(f1, 0..100)` against starting 100 separate
//! processes for the same 100 tasks; the pool wins because its 4 workers are started once.

use std::time::Instant;

/// Adds 0, 1, 2, 3 and 4 to `n`, as the seed's `f1` does.
#[offspring::task]
fn f1(n: u64) -> u64 {
    (0..5).fold(n, |n, i| n + i)
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let started = Instant::now();
    let pool = offspring::Pool::new(4)?;
    let results = pool.map(f1, 0..100)?;
    let pool_time = started.elapsed();
    assert_eq!(results, (0..100).map(|n| n + 10).collect::<Vec<_>>());
    println!("pool time: {:.3} s", pool_time.as_secs_f64());

    let started = Instant::now();
    let children = (0..100)
        .map(|n| offspring::Process::spawn(f1, n))
        .collect::<offspring::Result<Vec<_>>>()?;
    for (n, child) in children.iter().enumerate() {
        assert_eq!(child.join()?, n as u64 + 10);
    }
    let process_time = started.elapsed();
    println!("100 processes time: {:.3} s", process_time.as_secs_f64());
    println!(
        "the pool was {:.1}x faster",
        process_time.as_secs_f64() / pool_time.as_secs_f64()
    );
    Ok(())
}
