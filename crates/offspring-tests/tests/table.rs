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

    // Handles sent to a pool that refuses the calls (closed), to `map` and `imap` calls that
    // end, and through a process: every lease they took ends with the calls.
    let pool = Pool::new(1)?;
    let running = Queue::<u32>::new()?;
    let event = Event::new()?;
    event.set();
    let values = pool.map(wait_event, (0..5).map(|_| (event.clone(), running.clone())))?;
    assert!(values.iter().all(|set| *set));
    let inputs: Vec<_> = (0..5).map(|_| (event.clone(), running.clone())).collect();
    let streamed: Vec<bool> = pool
        .imap(wait_event, inputs)
        .collect::<offspring::Result<_>>()?;
    assert_eq!(streamed.len(), 5);
    let child = offspring::Process::spawn(wait_event, (event.clone(), running.clone()))?;
    assert!(child.join()?);
    pool.close();
    let refused = pool.apply_async(wait_event, (event.clone(), running.clone()));
    assert!(matches!(refused.get(), Err(offspring::Error::PoolClosed)));
    pool.join()?;
    drop((event, running));
    let cleared = offspring_tests::wait_until(Duration::from_secs(30), || {
        offspring::live_primitives() == 0
    });
    assert!(
        cleared.is_some(),
        "{} primitives left after calls that ended and one that was refused",
        offspring::live_primitives()
    );
    Ok(())
}
