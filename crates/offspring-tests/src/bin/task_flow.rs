//! A small pool whose tasks log, for the tests of the task flow as the parent tells it: the
//! parent's log goes to stdout through an `EnvFilter` taken from `RUST_LOG`, like a user's
//! program would set it up. It runs 12 calls of `step` (the first 3 meet at a barrier, so
//! they run on 3 different workers), one call that logs and panics, and one that logs and
//! exits its process; then a burst of 400 `apply_async` calls of `tagged`, submitted while
//! every worker is held busy, so that the scheduler puts them together in shared batches
//! once the workers are free; then prints
//! `counters forwarded=<n> dropped=<n> calls=<n> batches=<n>` and the results.

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

/// Logs its own number, so a test can tell which job each record was told under.
#[offspring::task]
fn tagged(n: u64) -> u64 {
    tracing::info!(target: "flow::work", n, "tagged call");
    n + 1
}

/// Says it runs, then keeps its worker busy until `gate` is set.
#[offspring::task]
fn hold(running: offspring::Queue<u32>, gate: offspring::Event) {
    let _ = running.put(&std::process::id());
    gate.wait_timeout(Duration::from_secs(60));
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
    // Every worker busy: the burst queues behind them (on a loaded machine a free worker
    // could otherwise take each call as it comes, one batch each).
    let running = offspring::Queue::new()?;
    let gate = offspring::Event::new()?;
    let holds: Vec<_> = (0..3)
        .map(|_| pool.apply_async(hold, (running.clone(), gate.clone())))
        .collect();
    for _ in 0..3 {
        running.get_timeout(Duration::from_secs(60))?;
    }
    let before = pool.counters();
    let burst: Vec<_> = (0..400u64).map(|n| pool.apply_async(tagged, n)).collect();
    gate.set();
    for held in holds {
        held.get()?;
    }
    for (n, result) in burst.into_iter().enumerate() {
        assert_eq!(result.get()?, n as u64 + 1, "tagged {n}");
    }
    let batches = pool.counters().batches - before.batches;
    pool.close();
    pool.join()?;
    // Read once the workers are gone, so every record they sent has been read.
    let counters = pool.counters();
    println!(
        "counters forwarded={} dropped={} calls=400 batches={}",
        counters.logs_forwarded, counters.logs_dropped, batches
    );
    Ok(())
}
