//! Seed scenario `event`: the parent waits on an event until the child has done its two
//! seconds of work and set it.

use std::time::Duration;

use offspring::{Event, Process};

/// The child: works for two seconds, then sets the event.
#[offspring::task]
fn f1(e: Event) {
    std::thread::sleep(Duration::from_secs(2));
    let n = 100;
    println!("child computed {n}");
    e.set();
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let e = Event::new()?;
    let p = Process::spawn(f1, e.clone())?;
    println!("parent waiting...");
    e.wait();
    println!("the result is written, we can take it");
    p.join()?;
    Ok(())
}
