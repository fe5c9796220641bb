//! Seed scenario `pool_apply_async`: ten half-second tasks submitted with `apply_async` on a
//! pool of four run three rounds in parallel (about 1.5 s, not 5 s); `get` prints each result
//! in submission order.

use std::time::{Duration, Instant};

/// Sleeps half a second and returns `n * n`.
#[offspring::task]
fn f1(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    n * n
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let pool = offspring::Pool::new(4)?;
    let started = Instant::now();
    let mut res_list = Vec::new();
    for i in 0..10 {
        println!("xxxx");
        res_list.push(pool.apply_async(f1, i));
    }
    for res in res_list {
        println!("{}", res.get()?);
    }
    println!(
        "10 tasks of 0.5 s on 4 workers took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
