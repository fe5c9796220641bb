//! Seed scenario `pool_apply`: `apply` is synchronous, so ten one-second tasks on a pool of
//! four still take about ten seconds, each result printed as it comes.

use std::time::{Duration, Instant};

/// Sleeps one second and returns `n * n`.
#[offspring::task]
fn f1(n: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    n * n
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let pool = offspring::Pool::new(4)?;
    let started = Instant::now();
    for i in 0..10 {
        println!("xxxxxx");
        let res = pool.apply(f1, i)?;
        println!("{res}");
    }
    println!(
        "10 synchronous tasks took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
