//! Seed scenario `semaphore`: ten guests, four stalls. Ten processes share
//! `Semaphore::new(4)`; each takes a permit, says it arrived, stays 1–3 s, and leaves. At most
//! four are inside at once, checked with a shared counter of who is inside (a second semaphore's
//! `available()` would not do: a permit a worker keeps lent counts as taken there).

use std::time::Duration;

use offspring::{Process, Semaphore, Value};

/// One guest: waits for a stall, stays a while, leaves.
#[offspring::task]
fn f1(i: u64, s: Semaphore, inside: Value<u32>) -> u32 {
    let _stall = s.acquire();
    let holders = inside.fetch_add(1) + 1;
    println!("guest {i} arrived");
    // 1 to 3 seconds, varied by guest (the seed draws it at random).
    std::thread::sleep(Duration::from_millis(1000 + (i * 733) % 2000));
    // Out before the stall is given back.
    inside.fetch_sub(1);
    holders
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let s = Semaphore::new(4)?;
    let inside = Value::new(0u32)?;
    let guests = (0..10)
        .map(|i| Process::spawn(f1, (i, s.clone(), inside.clone())))
        .collect::<offspring::Result<Vec<_>>>()?;
    let mut most = 0;
    for guest in guests {
        most = most.max(guest.join()?);
    }
    assert!(most <= 4, "{most} guests were inside at once");
    Ok(())
}
