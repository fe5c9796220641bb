//! `map` of 500,000 trivial items on 2 workers, over and over, printing each round's rate: the
//! loop to run under `perf record -g` when working on the data path (the full bench measures
//! much else in between).
//!
//! ```text
//! cargo build --release -p offspring-bench --bin offspring-bench-map
//! target/release/offspring-bench-map [chunk size, 8192] [rounds, 20]
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

const ITEMS: usize = 500_000;

#[offspring::task]
fn nothing() {}

fn main() -> offspring::Result<()> {
    offspring::init();
    let arg = |n: usize, default: usize| {
        std::env::args()
            .nth(n)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (chunk, rounds) = (arg(1, 8192), arg(2, 20));
    let pool = offspring::Pool::new(2)?;
    pool.map_chunked(nothing, vec![(); 100], 1)?;
    for _ in 0..rounds {
        let items = vec![(); ITEMS];
        let started = Instant::now();
        pool.map_chunked(nothing, items, chunk)?;
        let rate = ITEMS as f64 / started.elapsed().as_secs_f64();
        println!("{:.2} M items/s", rate / 1e6);
    }
    Ok(())
}
