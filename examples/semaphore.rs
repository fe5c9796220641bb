//! Seed scenario `semaphore`: ten guests, four stalls. Ten processes share
//! `Semaphore::new(4)`; each takes a permit, says it arrived, stays 1–3 s, and leaves. At most
//! four are inside at once, checked with a second semaphore that counts who is inside.

use std::time::Duration;

use offspring::{Process, Semaphore};

/// One guest: waits for a stall, stays a while, leaves.
#[offspring::task]
fn f1(i: u64, s: Semaphore, inside: Semaphore) -> usize {
    let _stall = s.acquire();
    let _me = inside.acquire();
    let holders = 10 - inside.available();
    println!("guest {i} arrived");
    // 1 to 3 seconds, varied by guest (the seed draws it at random).
    std::thread::sleep(Duration::from_millis(1000 + (i * 733) % 2000));
    holders
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let s = Semaphore::new(4)?;
    let inside = Semaphore::new(10)?;
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
