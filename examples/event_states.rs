//! Seed scenario `event_states`: an event's flag starts false, `set` makes it true, `clear`
//! false again, and a wait on a cleared event blocks (here, until its timeout).

use std::time::Duration;

use offspring::Event;

#[offspring::main]
fn main() -> offspring::Result<()> {
    let e = Event::new()?;
    println!("is_set: {}", e.is_set());
    e.set();
    println!("is_set after set: {}", e.is_set());
    e.clear();
    println!("is_set after clear: {}", e.is_set());
    let set = e.wait_timeout(Duration::from_secs(1));
    println!("wait on a cleared event timed out: {}", !set);
    Ok(())
}
