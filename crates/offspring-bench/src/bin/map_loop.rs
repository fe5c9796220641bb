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

use offspring_bench::arg_or;

const ITEMS: usize = 500_000;

#[offspring::task]
fn nothing() {}

fn main() -> offspring::Result<()> {
    offspring::init();
    let (chunk, rounds) = (arg_or::<usize>(1, 8192), arg_or::<usize>(2, 20));
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
