//! The log of a small pool, told as one story in the parent: each task has a span (its name,
//! its id, its pool), and what a worker logs inside a task appears under that span, in the
//! worker's own target, with the worker's pid. A failing task is told in its span too.
//!
//! ```text
//! cargo run --release --example tracing_flow
//! RUST_LOG=debug cargo run --release --example tracing_flow      # queued, dispatched, finished
//! RUST_LOG=info,tracing_flow=warn cargo run --release --example tracing_flow   # workers send less
//! OFFSPRING_TRACE=flow.json cargo run --release --example tracing_flow && cargo xtask timeline flow.json > flow.svg
//! ```

use std::time::Duration;

use tracing::{info, info_span, warn};

/// Resizes one "image": logs what it does, inside a span of its own.
#[offspring::task]
fn resize(id: u32, width: u32) -> u32 {
    let _image = info_span!("image", id).entered();
    info!(width, "resizing");
    std::thread::sleep(Duration::from_millis(20 + u64::from(id % 3) * 10));
    if id == 5 {
        warn!("this one is corrupt");
        panic!("image {id} is corrupt");
    }
    info!("done");
    width / 2
}

fn main() -> offspring::Result<()> {
    offspring::init();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(true)
        .init();

    let pool = offspring::Pool::new(3)?;
    let _run = info_span!("batch", images = 8).entered();
    info!("resizing 8 images on 3 workers");
    let results: Vec<_> = (0..8u32)
        .map(|id| pool.apply_async(resize, (id, 1000 + id)))
        .collect();
    let mut failed = 0;
    for (id, result) in results.into_iter().enumerate() {
        match result.get() {
            Ok(width) => info!(id, width, "resized"),
            Err(error) => {
                failed += 1;
                warn!(id, %error, "not resized");
            }
        }
    }
    let counters = pool.counters();
    info!(
        done = counters.done,
        failed = counters.failed,
        logs_forwarded = counters.logs_forwarded,
        logs_dropped = counters.logs_dropped,
        "pool counters"
    );
    assert_eq!(failed, 1, "exactly the corrupt image fails");
    Ok(())
}
