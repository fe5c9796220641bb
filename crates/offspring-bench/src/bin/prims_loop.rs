//! One primitive round trip from a worker, over and over: `Event::is_set` from a pool worker
//! (a request to the parent's registry and its reply, nothing waited for), timed inside the
//! worker, next to `apply` of a trivial task timed in the parent. The loop to run under
//! `perf` when working on the primitives' message path.
//!
//! ```text
//! cargo build --release -p offspring-bench --bin offspring-bench-prims
//! target/release/offspring-bench-prims [calls per round, 20000] [rounds, 10]
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

use offspring_bench::arg_or;

#[offspring::task]
fn nothing() {}

/// `count` calls of `event.is_set()`, in microseconds per call.
#[offspring::task]
fn is_set_round_trips(event: offspring::Event, count: u64) -> f64 {
    let started = Instant::now();
    for _ in 0..count {
        std::hint::black_box(event.is_set());
    }
    started.elapsed().as_secs_f64() * 1e6 / count as f64
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let (calls, rounds) = (arg_or::<u64>(1, 20_000), arg_or::<u64>(2, 10));
    let pool = offspring::Pool::new(1)?;
    let event = offspring::Event::new()?;
    pool.apply(nothing, ())?;
    for _ in 0..rounds {
        let prim = pool.apply(is_set_round_trips, (event.clone(), calls))?;
        let started = Instant::now();
        for _ in 0..calls {
            pool.apply(nothing, ())?;
        }
        let apply = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
        println!("is_set from a worker {prim:.1} us, apply {apply:.1} us");
    }
    Ok(())
}
