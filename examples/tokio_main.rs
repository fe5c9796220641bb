//! offspring in a tokio program: `#[offspring::main]` above `#[tokio::main]` runs `init()`
//! before the runtime starts; a pool's result is awaited without blocking the runtime, and
//! the blocking API works from inside the runtime too.

use std::time::Duration;

#[offspring::task]
fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    n * n
}

#[offspring::main]
#[tokio::main(flavor = "current_thread")]
async fn main() -> offspring::Result<()> {
    let pool = offspring::Pool::new(2)?;
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = std::sync::Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let value = pool.apply_async(slow_square, 12).await?;
    println!("awaited on a current-thread runtime: {value}");
    let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed);
    println!("the runtime ticked {ticked} times meanwhile");
    assert!(ticked > 0, "the runtime was blocked while awaiting");
    // Blocking calls from inside the runtime do not panic (they wait on plain channels).
    let child = offspring::Process::spawn(slow_square, 3)?;
    println!("joined from inside the runtime: {}", child.join()?);
    ticker.abort();
    Ok(())
}
