//! A small pool whose tasks log, for the tests of the task flow as the parent tells it: the
//! parent's log goes to stdout through an `EnvFilter` taken from `RUST_LOG`, like a user's
//! program would set it up. It runs 12 calls of `step` (the first 3 meet at a barrier, so
//! they run on 3 different workers), one call that logs and panics, and one that logs and
//! exits its process; then prints `counters forwarded=<n> dropped=<n>` and the results.

use std::time::Duration;

#[offspring::task]
fn step(n: u64, meet: Option<offspring::Barrier>) -> u64 {
    if let Some(meet) = meet {
        // Three calls wait here together, so they must be on three workers.
        let _ = meet.wait_timeout(Duration::from_secs(30));
    }
    tracing::info!(target: "flow::work", n, "working on item");
    let _inner = tracing::info_span!(target: "flow::work", "inner", n).entered();
    tracing::debug!(target: "flow::work", "a detail inside the inner span");
    n * 2
}

#[offspring::task]
fn last_words() -> u64 {
    tracing::warn!(target: "flow::work", "about to panic");
    panic!("boom in the task");
}

#[offspring::task]
fn exit_words() {
    tracing::warn!(target: "flow::work", "about to exit the process");
    std::process::exit(3);
}

fn main() -> offspring::Result<()> {
    offspring::init();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .init();
    let pool = offspring::Pool::new(3)?;
    let meet = offspring::Barrier::new(3)?;
    let pending: Vec<_> = (0..12u64)
        .map(|n| pool.apply_async(step, (n, (n < 3).then(|| meet.clone()))))
        .collect();
    for (n, result) in pending.into_iter().enumerate() {
        println!("result step {n} = {:?}", result.get());
    }
    println!("result last_words = {:?}", pool.apply(last_words, ()));
    println!("result exit_words = {:?}", pool.apply(exit_words, ()));
    let counters = pool.counters();
    pool.close();
    pool.join()?;
    println!(
        "counters forwarded={} dropped={}",
        counters.logs_forwarded, counters.logs_dropped
    );
    Ok(())
}
