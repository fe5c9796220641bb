//! Seed scenario `callback`: a callback bound to a pool task runs in the parent (its pid is
//! the parent's, not the worker's) with the task's value.

use std::sync::atomic::{AtomicU32, Ordering};

static CALLBACK_PID: AtomicU32 = AtomicU32::new(0);
static WORKER_PID: AtomicU32 = AtomicU32::new(0);

/// Prints where it runs and returns `n * n`.
#[offspring::task]
fn f1(n: u64) -> (u32, u64) {
    println!("pool worker pid: {}", std::process::id());
    println!(">>>> {n}");
    (std::process::id(), n * n)
}

fn call_back_func(value: &(u32, u64)) {
    let (worker, result) = *value;
    println!(">>>>>>>>>>>>> {}", std::process::id());
    println!("result in callback: {result}");
    CALLBACK_PID.store(std::process::id(), Ordering::SeqCst);
    WORKER_PID.store(worker, Ordering::SeqCst);
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let pool = offspring::Pool::new(4)?;
    let _res = pool.apply_async(f1, 5).callback(call_back_func);
    pool.close();
    pool.join()?;
    println!("parent pid: {}", std::process::id());
    assert_eq!(CALLBACK_PID.load(Ordering::SeqCst), std::process::id());
    assert_ne!(WORKER_PID.load(Ordering::SeqCst), std::process::id());
    Ok(())
}
