//! Direct pipes: what one end sends goes to the process holding the other end without the
//! parent in between (Linux, Windows), in order, whole, and a dead holder's end reads as
//! closed. Elsewhere (macOS) the same tests run through the parent's registry.

use std::time::{Duration, Instant};

use offspring::{Connection, Event, Process, pipe};

/// How many messages the long tests send: 100,000, and fewer elsewhere by default. Through
/// the registry (macOS) each message is a round trip to the parent, and under Wine each
/// direct message costs 100 to 450 us in `wineserver`: 100,000 of them each way load the
/// machine for a minute and starve the suite's other tests, so `cargo xtask cross` runs
/// these tests again on their own with `OFFSPRING_TEST_PIPE_MESSAGES=100000`.
fn many() -> u64 {
    std::env::var("OFFSPRING_TEST_PIPE_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if cfg!(target_os = "linux") {
            100_000
        } else {
            10_000
        })
}

#[offspring::task]
fn send_count(end: Connection<u64>, count: u64) -> bool {
    (0..count).all(|n| end.send(&n).is_ok())
}

#[offspring::task]
fn recv_count(end: Connection<u64>, count: u64) -> bool {
    (0..count).all(|n| end.recv().ok() == Some(n))
}

/// Attaches to its end (a first `try_recv`), says so, and then waits for ever.
#[offspring::task]
fn hold_end(end: Connection<u64>, attached: Event) {
    let _ = end.try_recv();
    attached.set();
    loop {
        std::thread::park();
    }
}

/// Receives one message, then sends it back plus one.
#[offspring::task]
fn add_one(end: Connection<u64>) -> bool {
    match end.recv_timeout(Duration::from_secs(60)) {
        Ok(n) => end.send(&(n + 1)).is_ok(),
        Err(_) => false,
    }
}

/// Passes its end on to a worker of its own, which adds one.
#[offspring::task]
fn add_one_further_down(end: Connection<u64>) -> Result<bool, String> {
    let inner = Process::spawn(add_one, end).map_err(|e| e.to_string())?;
    inner.join().map_err(|e| e.to_string())
}

/// Sends `count` messages of `len` bytes, each filled with `who`, then one large one.
#[offspring::task]
fn send_filled(end: Connection<Vec<u8>>, who: u8, count: u64, len: usize) -> bool {
    (0..count).all(|_| end.send(&vec![who; len]).is_ok()) && end.send(&vec![who; 200_000]).is_ok()
}

/// The registry relayed nothing on either end: the messages went process to process.
fn assert_direct<T>(ends: &[&Connection<T>]) {
    if cfg!(any(target_os = "linux", windows)) {
        for end in ends {
            assert_eq!(
                offspring::__private::pipe_relayed(end),
                Some(0),
                "the parent relayed messages of a direct pipe"
            );
        }
    }
}

#[test]
fn a_direct_pipe_carries_100_000_messages_each_way_between_parent_and_worker()
-> offspring::Result<()> {
    let (ours, theirs) = pipe::<u64>()?;
    let started = Instant::now();
    let many = many();
    let receiver = Process::spawn(recv_count, (theirs.clone(), many))?;
    for n in 0..many {
        ours.send(&n)?;
    }
    assert!(receiver.join()?, "the worker got every message in order");
    let down = started.elapsed();
    let started = Instant::now();
    let sender = Process::spawn(send_count, (theirs.clone(), many))?;
    for n in 0..many {
        assert_eq!(ours.recv()?, n);
    }
    assert!(sender.join()?);
    println!(
        "{many} messages parent to worker in {down:?}, worker to parent in {:?}",
        started.elapsed()
    );
    assert_direct(&[&ours, &theirs]);
    Ok(())
}

#[test]
fn a_direct_pipe_carries_100_000_messages_between_two_workers() -> offspring::Result<()> {
    let (a, b) = pipe::<u64>()?;
    let started = Instant::now();
    let many = many();
    let receiver = Process::spawn(recv_count, (b.clone(), many))?;
    let sender = Process::spawn(send_count, (a.clone(), many))?;
    assert!(sender.join()?);
    assert!(receiver.join()?, "every message arrived in order");
    println!(
        "{many} messages worker to worker in {:?}",
        started.elapsed()
    );
    assert_direct(&[&a, &b]);
    Ok(())
}

/// The only holder of the other end is SIGKILLed: `recv` errors at once, although the
/// parent's registry held a copy of that end for as long as a handle to it lived.
#[test]
fn recv_errors_within_a_second_once_the_other_ends_holder_is_killed() -> offspring::Result<()> {
    let (ours, theirs) = pipe::<u64>()?;
    let attached = Event::new()?;
    let holder = Process::spawn(hold_end, (theirs, attached.clone()))?;
    assert!(
        attached.wait_timeout(Duration::from_secs(30)),
        "the worker attached to its end"
    );
    let killed = Instant::now();
    holder.kill()?;
    let got = ours.recv_timeout(Duration::from_secs(30));
    let after = killed.elapsed();
    println!("recv on a pipe whose other end's holder was killed: {got:?} after {after:?}");
    match got {
        Err(offspring::Error::Primitive { reason }) => {
            assert!(reason.contains("closed"), "{reason}");
        }
        other => panic!("recv gave {other:?}"),
    }
    // Elsewhere it may wait for the parent to see the death (macOS, through the registry)
    // or for Wine to tell the pipe's end.
    let bound = Duration::from_secs(if cfg!(target_os = "linux") { 1 } else { 5 });
    assert!(after < bound, "it took {after:?}");
    Ok(())
}

/// An end used by one worker, then by another, then by a worker's own worker (which reaches
/// it through the parent), keeps working and keeps its order.
#[test]
fn an_end_passed_on_to_a_third_process_keeps_working() -> offspring::Result<()> {
    let (ours, theirs) = pipe::<u64>()?;
    for (round, further) in [(1, false), (2, false), (3, true)] {
        let worker = if further {
            Process::spawn(add_one_further_down, theirs.clone())?
        } else {
            let first = Process::spawn(add_one, theirs.clone())?;
            ours.send(&(round * 10))?;
            assert_eq!(ours.recv_timeout(Duration::from_secs(60))?, round * 10 + 1);
            assert!(first.join()?);
            continue;
        };
        ours.send(&(round * 10))?;
        assert_eq!(ours.recv_timeout(Duration::from_secs(60))?, round * 10 + 1);
        assert_eq!(worker.join()?, Ok(true));
    }
    if cfg!(any(target_os = "linux", windows)) {
        // The worker's own worker could not hold the end: the parent relayed its receive
        // and its send.
        assert_eq!(offspring::__private::pipe_relayed(&theirs), Some(2));
        assert_eq!(offspring::__private::pipe_relayed(&ours), Some(0));
    }
    Ok(())
}

/// Two workers send on one end at once, small messages and large ones: each message
/// arrives whole, and each sender's messages in its order.
#[test]
fn two_processes_sending_on_one_end_never_interleave() -> offspring::Result<()> {
    let (ours, theirs) = pipe::<Vec<u8>>()?;
    let count = 2_000;
    let senders = [
        Process::spawn(send_filled, (theirs.clone(), 1, count, 3_000))?,
        Process::spawn(send_filled, (theirs.clone(), 2, count, 50_000))?,
    ];
    let mut seen = [0u64; 3];
    let mut large = 0;
    for _ in 0..2 * (count + 1) {
        let message = ours.recv_timeout(Duration::from_secs(60))?;
        let who = message[0];
        assert!(who == 1 || who == 2, "a message from nobody");
        assert!(
            message.iter().all(|b| *b == who),
            "bytes of two messages mixed"
        );
        if message.len() == 200_000 {
            assert_eq!(seen[usize::from(who)], count, "the large one came last");
            large += 1;
        } else {
            assert_eq!(message.len(), if who == 1 { 3_000 } else { 50_000 });
            seen[usize::from(who)] += 1;
        }
    }
    assert_eq!(large, 2);
    for sender in senders {
        assert!(sender.join()?);
    }
    assert_direct(&[&ours, &theirs]);
    Ok(())
}

/// Timeouts at both extremes: a try, and one too long to add to the clock.
#[test]
fn a_try_and_an_endless_timeout_behave_in_the_parent() -> offspring::Result<()> {
    let (a, b) = pipe::<u64>()?;
    assert_eq!(b.try_recv()?, None);
    a.send(&5)?;
    assert_eq!(b.recv_timeout(Duration::MAX)?, 5);
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(20)),
        Err(offspring::Error::Timeout)
    ));
    drop(a);
    assert!(matches!(b.recv(), Err(offspring::Error::Primitive { .. })));
    Ok(())
}
