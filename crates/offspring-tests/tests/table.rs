//! The coordinator's table of primitives ends empty. A test binary of its own, so that no
//! other test's primitives are alive while it counts.

use std::time::Duration;

use offspring::{Event, Pool, Queue};

offspring::test_support!();

/// Says it is running (its worker has adopted `event` by then), then waits on `event`.
#[offspring::task]
fn wait_event(event: Event, running: Queue<u32>) -> bool {
    let _ = running.put(&std::process::id());
    event.wait_timeout(Duration::from_secs(60))
}

#[test]
fn the_table_is_empty_after_100_000_events_some_sent_to_killed_workers() -> offspring::Result<()> {
    for _ in 0..100_000 {
        drop(Event::new()?);
    }
    assert_eq!(offspring::live_primitives(), 0);
    let pool = Pool::new(2)?;
    let running = Queue::<u32>::new()?;
    let sent: Vec<_> = (0..20)
        .map(|_| {
            let event = Event::new().expect("event");
            pool.apply_async(wait_event, (event, running.clone()))
        })
        .collect();
    // Two calls are running (their workers adopted their events), the rest are queued (in
    // flight): the pool kills its workers now.
    for _ in 0..2 {
        running.get_timeout(Duration::from_secs(60))?;
    }
    pool.terminate();
    for result in sent {
        assert!(result.get().is_err());
    }
    drop(running);
    let cleared = offspring_tests::wait_until(Duration::from_secs(30), || {
        offspring::live_primitives() == 0
    });
    println!("table empty after {cleared:?}");
    assert!(
        cleared.is_some(),
        "{} primitives left",
        offspring::live_primitives()
    );
    Ok(())
}
