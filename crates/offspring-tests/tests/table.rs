//! The coordinator's table of primitives ends empty. A test binary of its own, so that no
//! other test's primitives are alive while it counts.

use std::time::Duration;

use offspring::{Event, Pool};

offspring::test_support!();

#[offspring::task]
fn wait_event(event: Event) -> bool {
    event.wait_timeout(Duration::from_secs(60))
}

#[test]
fn the_table_is_empty_after_100_000_events_some_sent_to_killed_workers() -> offspring::Result<()> {
    for _ in 0..100_000 {
        drop(Event::new()?);
    }
    assert_eq!(offspring::live_primitives(), 0);
    let pool = Pool::new(2)?;
    let sent: Vec<_> = (0..20)
        .map(|_| pool.apply_async(wait_event, Event::new().expect("event")))
        .collect();
    // Some calls are running (their workers adopted the event), some are queued (in flight):
    // the pool kills its workers now.
    std::thread::sleep(Duration::from_millis(200));
    pool.terminate();
    for result in sent {
        assert!(result.get().is_err());
    }
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
