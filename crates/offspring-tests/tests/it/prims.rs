//! Events, semaphores, locks, barriers, queues and pipes, used from the parent and from real
//! workers, including workers that die holding them.

use std::time::{Duration, Instant};

use offspring::{Barrier, Connection, Error, Event, Lock, Pool, Process, Queue, Semaphore, pipe};

#[offspring::task]
fn set_after(event: Event, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    event.set();
}

#[offspring::task]
fn wait_event(event: Event) -> bool {
    event.wait_timeout(Duration::from_secs(60))
}

/// Takes a permit `rounds` times; while holding it, counts holders in a shared counter (not
/// by timing) and records the highest count seen.
#[offspring::task]
fn hold_permits(sem: Semaphore, inside: offspring::Value<u32>, rounds: u32) -> u32 {
    let mut most = 0;
    for _ in 0..rounds {
        let _permit = sem.acquire();
        let holders = inside.fetch_add(1) + 1;
        most = most.max(holders);
        inside.fetch_sub(1);
    }
    most
}

#[offspring::task]
fn hold_forever(sem: Semaphore, taken: Event) {
    let _permit = sem.acquire();
    taken.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[offspring::task]
fn lock_forever(lock: Lock, taken: Event) {
    let _guard = lock.lock();
    taken.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[offspring::task]
fn barrier_wait(barrier: Barrier) -> Result<u64, String> {
    barrier
        .wait_timeout(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default())
}

#[offspring::task]
fn consume(queue: Queue<Option<u64>>) -> Vec<u64> {
    let mut got = Vec::new();
    while let Ok(Some(n)) = queue.get() {
        got.push(n);
        queue.task_done();
    }
    queue.task_done();
    got
}

#[offspring::task]
fn pipe_sender(end: Connection<u64>, count: u64) {
    for n in 0..count {
        end.send(&n).expect("send");
    }
}

#[offspring::task]
fn pipe_receiver(end: Connection<u64>, count: u64) -> bool {
    (0..count).all(|n| end.recv().ok() == Some(n))
}

#[offspring::task]
fn recv_one(end: Connection<String>) -> String {
    end.recv().unwrap_or_else(|e| format!("error: {e}"))
}

#[test]
fn events_work_in_the_parent_and_across_processes() -> offspring::Result<()> {
    let event = Event::new()?;
    assert!(!event.is_set());
    assert!(!event.wait_timeout(Duration::from_millis(20)));
    event.set();
    assert!(event.is_set());
    event.clear();
    assert!(!event.is_set());
    let child = Process::spawn(set_after, (event.clone(), 200))?;
    let started = Instant::now();
    assert!(event.wait_timeout(Duration::from_secs(60)));
    println!("event set by a child after {:?}", started.elapsed());
    child.join()?;
    let waiter = Process::spawn(wait_event, event.clone())?;
    assert!(waiter.join()?);
    Ok(())
}

#[test]
fn a_semaphore_of_3_never_has_more_than_3_holders() -> offspring::Result<()> {
    let sem = Semaphore::new(3)?;
    let inside = offspring::Value::new(0u32)?;
    let pool = Pool::new(10)?;
    let most: Vec<u32> = pool.map_chunked(
        hold_permits,
        (0..10).map(|_| (sem.clone(), inside.clone(), 100)),
        1,
    )?;
    println!("most holders seen at once: {:?}", most);
    assert!(most.iter().all(|&m| (1..=3).contains(&m)), "{most:?}");
    assert_eq!(sem.available(), 3);
    Ok(())
}

#[test]
fn a_permit_or_lock_held_by_a_killed_worker_is_given_back() -> offspring::Result<()> {
    let sem = Semaphore::new(1)?;
    let taken = Event::new()?;
    let holder = Process::spawn(hold_forever, (sem.clone(), taken.clone()))?;
    assert!(taken.wait_timeout(Duration::from_secs(60)));
    assert!(sem.try_acquire().is_none());
    holder.kill()?;
    let permit = sem.acquire_timeout(Duration::from_secs(30));
    assert!(
        permit.is_some(),
        "the dead worker's permit was not returned"
    );
    drop(permit);

    let lock = Lock::new()?;
    let taken = Event::new()?;
    let holder = Process::spawn(lock_forever, (lock.clone(), taken.clone()))?;
    assert!(taken.wait_timeout(Duration::from_secs(60)));
    assert!(lock.try_lock().is_none());
    holder.kill()?;
    assert!(lock.lock_timeout(Duration::from_secs(30)).is_some());
    Ok(())
}

#[test]
fn a_barrier_releases_three_together_and_breaks_when_one_dies() -> offspring::Result<()> {
    let barrier = Barrier::new(3)?;
    let pool = Pool::new(3)?;
    let times: Vec<Result<u64, String>> =
        pool.map_chunked(barrier_wait, vec![barrier.clone(); 3], 1)?;
    let times: Vec<u64> = times
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("released");
    let spread = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
    println!("three parties released within {spread} ms of each other");

    let barrier = Barrier::new(3)?;
    let first = pool.apply_async(barrier_wait, barrier.clone());
    // A party that holds the barrier dies before it fills.
    let victim = Process::spawn(hold_barrier_then_die, barrier.clone())?;
    let _ = victim.join();
    match first.get()? {
        Err(message) => assert!(message.contains("died"), "{message}"),
        Ok(_) => panic!("the barrier filled without its third party"),
    }
    assert!(matches!(
        barrier.wait_timeout(Duration::from_millis(10)),
        Err(Error::Primitive { .. })
    ));
    Ok(())
}

#[offspring::task]
fn hold_barrier_then_die(barrier: Barrier) {
    let _keep = barrier;
    std::process::abort();
}

#[test]
fn timeouts_return_timeout() -> offspring::Result<()> {
    let queue = Queue::<u8>::new()?;
    assert!(matches!(
        queue.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!(queue.try_get()?, None);
    let barrier = Barrier::new(2)?;
    assert!(matches!(
        barrier.wait_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    let (a, _b) = pipe::<u8>()?;
    assert!(matches!(
        a.recv_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    let sem = Semaphore::new(0)?;
    assert!(sem.acquire_timeout(Duration::from_millis(20)).is_none());
    Ok(())
}

#[test]
fn a_queue_with_4_producers_and_4_consumers_delivers_every_item_once() -> offspring::Result<()> {
    let queue = Queue::<Option<u64>>::bounded(16)?;
    let pool = Pool::new(8)?;
    let producers: Vec<_> = (0..4)
        .map(|p| pool.apply_async(produce_some, (queue.clone(), p * 1000, 1000)))
        .collect();
    let consumers: Vec<_> = (0..4)
        .map(|_| pool.apply_async(consume, queue.clone()))
        .collect();
    for p in producers {
        p.get()?;
    }
    for _ in 0..4 {
        queue.put(&None)?;
    }
    let mut all: Vec<u64> = Vec::new();
    for c in consumers {
        all.extend(c.get()?);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..4000).collect::<Vec<_>>(),
        "every item exactly once"
    );
    assert!(
        queue.join_timeout(Duration::from_secs(30)),
        "every item marked done"
    );
    assert!(queue.is_empty());
    Ok(())
}

#[offspring::task]
fn produce_some(queue: Queue<Option<u64>>, start: u64, count: u64) {
    for n in start..start + count {
        queue.put(&Some(n)).expect("put");
    }
}

/// The middle of a three-level chain: says it is up, starts two workers of its own that each
/// say they are up and wait for the event the top sets, and one that takes the lock and dies
/// holding it; the lock must come back. Returns what its workers returned.
#[offspring::task]
fn chain_middle(queue: Queue<String>, event: Event, lock: Lock) -> Result<Vec<String>, String> {
    let text = |e: Error| e.to_string();
    queue
        .put(&format!("middle {}", std::process::id()))
        .map_err(text)?;
    let pool = Pool::new(2).map_err(text)?;
    let leaves: Vec<_> = (0..2)
        .map(|i| pool.apply_async(chain_leaf, (queue.clone(), event.clone(), i)))
        .collect();
    let holder = Process::spawn(lock_and_die, lock.clone()).map_err(text)?;
    match holder.join() {
        Err(Error::WorkerDied { .. }) => {}
        other => return Err(format!("the lock holder did not die: {other:?}")),
    }
    if lock.lock_timeout(Duration::from_secs(30)).is_none() {
        return Err("the lock did not come back when its holder (two levels down) died".into());
    }
    let mut said = Vec::new();
    for leaf in leaves {
        said.push(leaf.get().map_err(text)?);
    }
    if !event.wait_timeout(Duration::from_secs(30)) {
        return Err("the middle never saw the event".into());
    }
    queue.put(&"middle done".to_owned()).map_err(text)?;
    Ok(said)
}

#[offspring::task]
fn chain_leaf(queue: Queue<String>, event: Event, i: u32) -> String {
    if let Err(e) = queue.put(&format!("leaf {i} {}", std::process::id())) {
        return format!("leaf {i} could not put: {e}");
    }
    format!(
        "leaf {i} saw {}",
        event.wait_timeout(Duration::from_secs(60))
    )
}

#[offspring::task]
fn lock_and_die(lock: Lock) {
    let _guard = lock.lock();
    std::process::abort();
}

/// A queue, an event and a lock go from the parent to a worker and on to that worker's own
/// workers, and every level uses them: the parent hears from all three processes on the
/// queue, its event wakes the waiting grandchildren, and a grandchild that dies holding the
/// lock gives it back to the whole tree.
#[test]
fn handles_go_down_a_three_level_chain() -> offspring::Result<()> {
    let queue = Queue::<String>::new()?;
    let event = Event::new()?;
    let lock = Lock::new()?;
    let middle = Process::spawn(chain_middle, (queue.clone(), event.clone(), lock.clone()))?;
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(queue.get_timeout(Duration::from_secs(60))?);
    }
    heard.sort();
    assert_eq!(
        heard
            .iter()
            .map(|m| m.split(' ').next().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["leaf", "leaf", "middle"],
        "{heard:?}"
    );
    let pids: std::collections::BTreeSet<&str> =
        heard.iter().filter_map(|m| m.rsplit(' ').next()).collect();
    assert_eq!(pids.len(), 3, "three processes: {heard:?}");
    event.set();
    let mut said = middle
        .join()?
        .map_err(|reason| Error::Primitive { reason })?;
    said.sort();
    assert_eq!(said, ["leaf 0 saw true", "leaf 1 saw true"]);
    assert_eq!(queue.get_timeout(Duration::from_secs(10))?, "middle done");
    assert!(lock.try_lock().is_some(), "the lock is free at the top");
    Ok(())
}

/// The middle starts a worker that takes the lock and holds it, says so, and waits.
#[offspring::task]
fn middle_of_a_held_lock(lock: Lock, taken: Event, leaf_pid: Queue<u32>) -> String {
    match Process::spawn(hold_lock_forever, (lock, taken, leaf_pid)) {
        Ok(leaf) => format!("{:?}", leaf.join()),
        Err(e) => e.to_string(),
    }
}

#[offspring::task]
fn hold_lock_forever(lock: Lock, taken: Event, pid: Queue<u32>) {
    let _guard = lock.lock();
    let _ = pid.put(&std::process::id());
    taken.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A worker killed while a worker of its own holds the lock: the grandchild dies with it, and
/// the lock comes back to the parent.
#[test]
fn a_killed_middle_gives_back_what_its_workers_held() -> offspring::Result<()> {
    let lock = Lock::new()?;
    let taken = Event::new()?;
    let leaf_pid = Queue::<u32>::new()?;
    let middle = Process::spawn(
        middle_of_a_held_lock,
        (lock.clone(), taken.clone(), leaf_pid.clone()),
    )?;
    assert!(
        taken.wait_timeout(Duration::from_secs(60)),
        "the grandchild took the lock"
    );
    let leaf = leaf_pid.get_timeout(Duration::from_secs(10))?;
    assert!(lock.try_lock().is_none(), "the grandchild holds it");
    middle.kill()?;
    let started = Instant::now();
    assert!(
        lock.lock_timeout(Duration::from_secs(30)).is_some(),
        "the lock came back when the middle died"
    );
    println!(
        "lock back {:?} after the middle was killed",
        started.elapsed()
    );
    #[cfg(target_os = "linux")]
    {
        let proc_dir = std::path::PathBuf::from(format!("/proc/{leaf}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while proc_dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!proc_dir.exists(), "grandchild {leaf} outlived its parent");
    }
    let _ = leaf;
    Ok(())
}

#[offspring::task]
fn make_an_event() -> Event {
    Event::new().expect("an event")
}

/// A worker cannot send a handle back up (the value would outlive the lease it rides on):
/// that is a clear error, not a broken handle.
#[test]
fn a_handle_sent_back_up_gives_a_clear_error() -> offspring::Result<()> {
    match Process::spawn(make_an_event, ())?.join() {
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("only to workers of its own"), "{message}");
        }
        Ok(_) => panic!("a handle came back up from a worker"),
    }
    Ok(())
}

#[test]
fn bytes_that_name_no_live_object_give_an_error_on_use() -> offspring::Result<()> {
    let queue = Queue::<u8>::new()?;
    // A handle's bytes: kind, id, lease token. This id was never handed out.
    let forged: Queue<u8> = postcard_roundtrip((3u8, 999_999u64, 0u64));
    assert!(matches!(forged.put(&1), Err(Error::Primitive { .. })));
    // A queue's bytes read as a pipe end are refused outright.
    let (a, _b) = pipe::<u8>()?;
    drop(queue);
    assert!(matches!(a.try_recv(), Ok(None)));
    Ok(())
}

fn postcard_roundtrip<T: serde::de::DeserializeOwned>(value: (u8, u64, u64)) -> T {
    let bytes = postcard_encode(&value);
    postcard_decode(&bytes)
}

fn postcard_encode(value: &(u8, u64, u64)) -> Vec<u8> {
    // postcard's varint encoding of the tuple, written out so the test needs no codec crate.
    let mut out = vec![value.0];
    for mut n in [value.1, value.2] {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

fn postcard_decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    offspring_wire::decode(bytes).expect("a handle's bytes decode")
}

#[test]
fn a_pipe_between_two_workers_carries_10_000_messages_in_order() -> offspring::Result<()> {
    let (a, b) = pipe::<u64>()?;
    let started = Instant::now();
    let receiver = Process::spawn(pipe_receiver, (b, 10_000))?;
    let sender = Process::spawn(pipe_sender, (a, 10_000))?;
    sender.join()?;
    assert!(receiver.join()?);
    println!(
        "10 000 messages worker to worker in {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn a_receiver_learns_that_the_other_end_died() -> offspring::Result<()> {
    let (mine, theirs) = pipe::<String>()?;
    mine.send(&"你好".to_owned())?;
    assert_eq!(Process::spawn(recv_one, theirs.clone())?.join()?, "你好");
    drop(mine);
    let reply = Process::spawn(recv_one, theirs)?.join()?;
    assert!(reply.contains("closed"), "{reply}");
    Ok(())
}

/// Takes items until the queue says it is shut down; how many it took, and whether it ended
/// with `ShutDown`.
#[offspring::task]
fn drain_until_shut(queue: Queue<u64>, waiting: Event) -> (u64, bool) {
    let mut taken = 0;
    loop {
        if taken == 2 {
            waiting.set();
        }
        match queue.get_timeout(Duration::from_secs(60)) {
            Ok(_) => taken += 1,
            Err(Error::ShutDown) => return (taken, true),
            Err(_) => return (taken, false),
        }
    }
}

/// `shutdown`: gets drain what is left, then fail with `ShutDown` (a getter waiting on the
/// empty queue in a worker is woken), and puts fail from then on.
#[test]
fn a_shut_down_queue_drains_then_refuses() -> offspring::Result<()> {
    let queue = Queue::<u64>::new()?;
    let waiting = Event::new()?;
    queue.put(&1)?;
    queue.put(&2)?;
    let worker = Process::spawn(drain_until_shut, (queue.clone(), waiting.clone()))?;
    assert!(
        waiting.wait_timeout(Duration::from_secs(30)),
        "the worker took both items"
    );
    queue.shutdown();
    assert_eq!(worker.join()?, (2, true));
    assert!(matches!(queue.put(&3), Err(Error::ShutDown)));
    assert!(matches!(queue.try_get(), Err(Error::ShutDown)));

    // Items queued before `shutdown` are still there to take.
    let queue = Queue::<u64>::new()?;
    queue.put(&7)?;
    queue.shutdown();
    assert_eq!(queue.get()?, 7);
    assert!(matches!(queue.get(), Err(Error::ShutDown)));
    Ok(())
}

/// `shutdown_now` drops what is queued (so `join` returns) and wakes a putter blocked on a
/// full queue.
#[test]
fn shutdown_now_drops_the_items_and_wakes_every_waiter() -> offspring::Result<()> {
    let queue = Queue::<u64>::bounded(1)?;
    queue.put(&1)?;
    let blocked = queue.clone();
    let putter = std::thread::spawn(move || blocked.put(&2));
    // The putter waits in the coordinator; whether it got there before the shutdown or not,
    // its put fails.
    queue.shutdown_now();
    assert!(matches!(
        putter.join().expect("putter thread"),
        Err(Error::ShutDown)
    ));
    assert_eq!(queue.len(), 0);
    assert!(
        queue.join_timeout(Duration::from_secs(5)),
        "the dropped item counts done"
    );
    assert!(matches!(queue.get(), Err(Error::ShutDown)));
    Ok(())
}

#[offspring::task]
fn arrive(barrier: Barrier) -> Result<usize, String> {
    barrier.wait_index().map_err(|e| e.to_string())
}

/// Three parties (two workers and the parent) get the arrival indices 0, 1 and 2.
#[test]
fn barrier_parties_get_distinct_arrival_indices() -> offspring::Result<()> {
    let barrier = Barrier::new(3)?;
    let a = Process::spawn(arrive, barrier.clone())?;
    let b = Process::spawn(arrive, barrier.clone())?;
    let mine = barrier.wait_index()?;
    let mut indices = vec![mine, a.join()?.map_err(|e| Error::Primitive { reason: e })?];
    indices.push(b.join()?.map_err(|e| Error::Primitive { reason: e })?);
    indices.sort_unstable();
    assert_eq!(indices, vec![0, 1, 2]);
    Ok(())
}

#[offspring::task]
fn arrive_after(barrier: Barrier, ready: Event) -> Result<usize, String> {
    ready.set();
    barrier.wait_index().map_err(|e| e.to_string())
}

/// `abort` fails a waiting worker and later waits; `reset` makes the barrier usable again.
#[test]
fn an_aborted_barrier_fails_its_waiters_until_reset() -> offspring::Result<()> {
    let barrier = Barrier::new(2)?;
    let ready = Event::new()?;
    let worker = Process::spawn(arrive_after, (barrier.clone(), ready.clone()))?;
    assert!(ready.wait_timeout(Duration::from_secs(30)));
    barrier.abort();
    let failed = worker.join()?;
    assert!(
        failed.as_ref().is_err_and(|e| e.contains("aborted")),
        "{failed:?}"
    );
    assert!(barrier.is_broken());
    assert!(barrier.wait_timeout(Duration::from_secs(5)).is_err());
    barrier.reset();
    assert!(!barrier.is_broken());
    let ready = Event::new()?;
    let worker = Process::spawn(arrive_after, (barrier.clone(), ready.clone()))?;
    let mine = barrier.wait_index()?;
    let theirs = worker.join()?.map_err(|e| Error::Primitive { reason: e })?;
    assert_eq!(mine + theirs, 1, "indices 0 and 1");
    Ok(())
}

/// Takes the re-entrant lock twice on one thread (no deadlock), says so, and holds it until
/// killed.
#[offspring::task]
fn rlock_twice_forever(lock: offspring::RLock, taken: Event) {
    let _outer = lock.lock();
    let _inner = lock.lock();
    taken.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[offspring::task]
fn rlock_try(lock: offspring::RLock) -> bool {
    lock.try_lock().is_some()
}

/// An `RLock` is re-entrant for its thread, exclusive between threads and processes, and
/// given back when a holder that took it twice is SIGKILLed while the parent waits for it.
#[test]
fn an_rlock_is_reentrant_and_released_when_its_holder_dies() -> offspring::Result<()> {
    let lock = offspring::RLock::new()?;
    {
        let _outer = lock.lock();
        let _inner = lock.lock();
        let other = lock.clone();
        let elsewhere = std::thread::spawn(move || other.try_lock().is_some());
        assert!(!elsewhere.join().expect("thread"), "another thread took it");
        assert!(
            !Process::spawn(rlock_try, lock.clone())?.join()?,
            "a worker took it"
        );
        drop(_inner);
        assert!(
            !Process::spawn(rlock_try, lock.clone())?.join()?,
            "released too early"
        );
    }
    assert!(
        Process::spawn(rlock_try, lock.clone())?.join()?,
        "not released"
    );

    let taken = Event::new()?;
    let holder = Process::spawn(rlock_twice_forever, (lock.clone(), taken.clone()))?;
    assert!(taken.wait_timeout(Duration::from_secs(30)));
    assert!(lock.try_lock().is_none(), "the worker holds it");
    let waiter = lock.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiting = std::thread::spawn(move || {
        let _guard = waiter.lock();
        let _ = tx.send(());
    });
    holder.kill()?;
    let started = Instant::now();
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the waiter got the lock after the holder died");
    println!("lock handed on {:?} after the kill", started.elapsed());
    waiting.join().expect("waiter thread");
    Ok(())
}

/// Waits under the condition until the queue holds an item, then takes it; says when it is
/// about to wait the first time.
#[offspring::task]
fn consume_when_ready(cond: offspring::Condition, items: Queue<u64>, waiting: Event) -> u64 {
    let guard = cond.lock();
    waiting.set();
    let _guard = cond.wait_for(guard, || !items.is_empty());
    items.try_get().ok().flatten().unwrap_or(u64::MAX)
}

/// Holds the condition's lock until killed.
#[offspring::task]
fn hold_condition(cond: offspring::Condition, taken: Event) {
    let _guard = cond.lock();
    taken.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A worker waits on a condition (giving its lock back: the parent takes it to change the
/// state) and wakes on `notify_all`; a timed-out wait holds the lock again; a holder of the
/// lock SIGKILLed while the parent waits for it gives it back.
#[test]
fn a_condition_wakes_its_waiters_and_survives_a_killed_holder() -> offspring::Result<()> {
    let cond = offspring::Condition::new()?;
    let items = Queue::<u64>::new()?;
    let waiting = Event::new()?;
    let consumer = Process::spawn(
        consume_when_ready,
        (cond.clone(), items.clone(), waiting.clone()),
    )?;
    assert!(waiting.wait_timeout(Duration::from_secs(30)));
    {
        // The consumer waits with the lock given back (or is about to, holding it): taking
        // it here waits for either.
        let _guard = cond.lock();
        items.put(&42)?;
        cond.notify_all();
    }
    assert_eq!(consumer.join()?, 42);

    let guard = cond.lock();
    let started = Instant::now();
    let (guard, notified) = cond.wait_timeout(guard, Duration::from_millis(50));
    assert!(!notified);
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(
        !Process::spawn(condition_free, cond.clone())?.join()?,
        "the lock is held again after a timeout"
    );
    drop(guard);
    assert!(Process::spawn(condition_free, cond.clone())?.join()?);

    let taken = Event::new()?;
    let holder = Process::spawn(hold_condition, (cond.clone(), taken.clone()))?;
    assert!(taken.wait_timeout(Duration::from_secs(30)));
    let waiter = cond.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiting = std::thread::spawn(move || {
        let _guard = waiter.lock();
        let _ = tx.send(());
    });
    holder.kill()?;
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the lock came back when its holder died");
    waiting.join().expect("waiter thread");

    // A waiter killed while it waits (or about to, holding the lock) is simply gone: the
    // lock is free afterwards and a notify finds nobody to hang on.
    let waiting = Event::new()?;
    let sleeper = Process::spawn(
        consume_when_ready,
        (cond.clone(), Queue::<u64>::new()?, waiting.clone()),
    )?;
    assert!(waiting.wait_timeout(Duration::from_secs(30)));
    sleeper.kill()?;
    let guard = cond.lock();
    cond.notify_all();
    drop(guard);
    Ok(())
}

/// Whether the condition's lock is free now (taken and given back at once).
#[offspring::task]
fn condition_free(cond: offspring::Condition) -> bool {
    cond.try_lock().is_some()
}

/// A barrier action: puts the pid of the process it runs in on `ran`.
#[offspring::task]
fn note_pid(ran: Queue<u32>) {
    let _ = ran.put(&std::process::id());
}

#[offspring::task]
fn panicking_action() {
    panic!("the action fails");
}

/// Arrives at the barrier; the pid it ran in and its arrival index, or the error.
#[offspring::task]
fn arrive_at(barrier: Barrier) -> Result<(u32, usize), String> {
    barrier
        .wait_index()
        .map(|index| (std::process::id(), index))
        .map_err(|e| e.to_string())
}

/// The action runs once, in the last party's process, before any party is released; a
/// failing action breaks the barrier for every party.
#[test]
fn a_barrier_action_runs_once_in_the_last_party() -> offspring::Result<()> {
    let ran = Queue::<u32>::new()?;
    // Handles cannot ride in an action's arguments.
    assert!(matches!(
        Barrier::with_action(2, note_pid, ran.clone()),
        Err(Error::InvalidConfig { .. })
    ));
    let barrier = Barrier::with_action(3, note_pid_file, temp_file("action"))?;
    let a = Process::spawn(arrive_at, barrier.clone())?;
    let b = Process::spawn(arrive_at, barrier.clone())?;
    let mine = barrier.wait_index()?;
    let a = a.join()?.map_err(|e| Error::Primitive { reason: e })?;
    let b = b.join()?.map_err(|e| Error::Primitive { reason: e })?;
    let written = std::fs::read_to_string(temp_file("action")).expect("the action ran");
    let _ = std::fs::remove_file(temp_file("action"));
    let runs: Vec<u32> = written.lines().map(|l| l.parse().expect("a pid")).collect();
    assert_eq!(runs.len(), 1, "the action ran once: {runs:?}");
    // The last party (index 2) ran it, in its own process.
    let last = [(std::process::id(), mine), a, b]
        .into_iter()
        .find(|(_, index)| *index == 2)
        .expect("a last party");
    assert_eq!(runs[0], last.0, "ran in the last party's process");
    drop(ran);

    let failing = Barrier::with_action(2, panicking_action, ())?;
    let other = Process::spawn(arrive_at, failing.clone())?;
    let mine = failing.wait_index();
    let theirs = other.join()?;
    assert!(mine.is_err() && theirs.is_err(), "{mine:?} {theirs:?}");
    assert!(failing.is_broken());
    Ok(())
}

fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("offspring-{}-{name}", std::process::id()))
}

/// A barrier action: appends the pid of the process it runs in to a file.
#[offspring::task]
fn note_pid_file(path: std::path::PathBuf) {
    use std::io::Write;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(file, "{}", std::process::id());
    }
}

#[offspring::task]
fn get_within(queue: Queue<Vec<u8>>, ms: u64) -> String {
    match queue.get_timeout(Duration::from_millis(ms)) {
        Ok(item) => format!("got {}", item.len()),
        Err(e) => e.to_string(),
    }
}

/// An item too large for the frame that would hand it to a worker is refused when it is put
/// (or sent on a pipe), with the reason; it is never taken from the queue and lost, and the
/// queue goes on working.
#[test]
fn an_item_too_large_for_a_frame_is_refused_at_put() -> offspring::Result<()> {
    let queue = Queue::<Vec<u8>>::new()?;
    let big = vec![0u8; offspring_coordinator::MAX_ITEM];
    match queue.put(&big) {
        Err(Error::Primitive { reason }) => assert!(reason.contains("more than"), "{reason}"),
        other => panic!("an oversized put gave {other:?}"),
    }
    assert!(queue.is_empty(), "the refused item is in the queue");
    let (a, _b) = pipe::<Vec<u8>>()?;
    assert!(matches!(a.send(&big), Err(Error::Primitive { .. })));
    drop(big);
    // From a worker: over the limit, and over the frame limit itself.
    let refusals = Process::spawn(put_oversized, queue.clone())?.join()?;
    assert_eq!(refusals.len(), 2);
    for refusal in &refusals {
        assert!(
            refusal.contains("bytes") && refusal.contains("limit") || refusal.contains("more than"),
            "{refusals:?}"
        );
    }
    assert!(queue.is_empty());
    queue.put(&vec![1, 2, 3])?;
    assert_eq!(
        Process::spawn(get_within, (queue.clone(), 10_000))?.join()?,
        "got 3"
    );
    Ok(())
}

#[offspring::task]
fn put_oversized(queue: Queue<Vec<u8>>) -> Vec<String> {
    [
        offspring_coordinator::MAX_ITEM,
        offspring_wire::MAX_FRAME as usize,
    ]
    .into_iter()
    .map(|len| match queue.put(&vec![0u8; len]) {
        Ok(()) => "accepted".to_owned(),
        Err(e) => e.to_string(),
    })
    .collect()
}

#[offspring::task]
fn lock_then_report(lock: Lock) -> String {
    let _guard = lock.lock();
    "locked".to_owned()
}

#[offspring::task]
fn wait_then_report(event: Event) -> String {
    event.wait();
    "the event was set".to_owned()
}

/// A worker whose connection to the parent has closed (made to happen on every call by a
/// test switch: otherwise it is a race with the lifeline) neither panics in `Lock::lock` nor
/// makes up an answer in `Event::wait`: it ends as a worker whose parent is gone.
#[test]
fn a_closed_connection_ends_the_worker_instead_of_a_made_up_answer() -> offspring::Result<()> {
    let lock = Lock::new()?;
    let event = Event::new()?;
    let pool = offspring::__private::with_worker_env(
        Pool::builder().processes(1),
        offspring::__private::ENV_TEST_CLOSED_CLIENT,
        "1",
    )
    .build()?;
    for result in [
        pool.apply(lock_then_report, lock.clone()),
        pool.apply(wait_then_report, event.clone()),
    ] {
        match result {
            Err(Error::WorkerDied { status, .. }) => {
                println!("the worker ended: {status:?}");
            }
            other => panic!("a call on a closed connection gave {other:?}"),
        }
    }
    assert!(!event.is_set());
    assert!(lock.try_lock().is_some(), "the lock was left held");
    Ok(())
}

#[offspring::task]
fn take_and_give_back(sem: Semaphore) -> u32 {
    let _permit = sem.acquire();
    7
}

/// What a task did to a primitive before it ended is seen before its value: a permit it gave
/// back as it returned is free the moment the caller has the value (the release travels as a
/// frame, the value through the ring, and the parent handles the frame first).
#[test]
fn a_permit_given_back_as_a_task_ends_is_free_when_its_value_arrives() -> offspring::Result<()> {
    let sem = Semaphore::new(1)?;
    let pool = Pool::new(1)?;
    for round in 0..300 {
        assert_eq!(pool.apply(take_and_give_back, sem.clone())?, 7);
        assert_eq!(sem.available(), 1, "round {round}: the permit is still out");
    }
    Ok(())
}

/// Sets (then clears) each event and says so through a queue, one after the other, with no
/// wait between: the one-way operations must be applied before the `put` that follows them.
/// The clearing starts once the parent has looked at every set (`go`), so that it does not
/// overtake a parent that is slow to look.
#[offspring::task]
fn set_then_put(events: Vec<Event>, said: Queue<usize>, work: Queue<u32>, go: Queue<u8>) -> bool {
    for (i, event) in events.iter().enumerate() {
        event.set();
        if said.put(&i).is_err() {
            return false;
        }
    }
    if go.get_timeout(Duration::from_secs(60)).is_err() {
        return false;
    }
    for (i, event) in events.iter().enumerate() {
        event.clear();
        if said.put(&i).is_err() {
            return false;
        }
    }
    // One item taken and marked done, then said: `join` in the parent must see it done.
    if work.get_timeout(Duration::from_secs(60)).is_err() {
        return false;
    }
    work.task_done();
    // One more `task_done` than items: a failure the parent logs, and nothing stops.
    work.task_done();
    said.put(&usize::MAX).is_ok()
}

#[test]
fn one_way_operations_are_seen_before_what_their_process_does_next() -> offspring::Result<()> {
    let events: Vec<Event> = (0..200).map(|_| Event::new()).collect::<Result<_, _>>()?;
    let said = Queue::new()?;
    let work = Queue::new()?;
    work.put(&7u32)?;
    let started = Instant::now();
    let go = Queue::new()?;
    let child = Process::spawn(
        set_then_put,
        (events.clone(), said.clone(), work.clone(), go.clone()),
    )?;
    for _ in 0..events.len() {
        let i: usize = said.get_timeout(Duration::from_secs(60))?;
        assert!(events[i].is_set(), "event {i} was said set before it was");
    }
    go.put(&1u8)?;
    for _ in 0..events.len() {
        let i: usize = said.get_timeout(Duration::from_secs(60))?;
        assert!(
            !events[i].is_set(),
            "event {i} was said clear before it was"
        );
    }
    assert_eq!(said.get_timeout(Duration::from_secs(60))?, usize::MAX);
    assert!(
        work.join_timeout(Duration::ZERO),
        "task_done was applied before the put"
    );
    assert!(child.join()?);
    println!(
        "400 one-way operations, each followed by a put, in {:?}",
        started.elapsed()
    );
    Ok(())
}

#[offspring::task]
fn set_one(event: Event) {
    event.set();
}

/// Calls in batches report through the worker's ring, which the parent may read before
/// frames sent earlier: each call's one-way `set` is applied before its outcome is delivered.
#[test]
fn an_outcome_in_the_ring_is_delivered_after_its_calls_one_way_operations() -> offspring::Result<()>
{
    let pool = Pool::new(2)?;
    for round in 0..5 {
        let events: Vec<Event> = (0..200).map(|_| Event::new()).collect::<Result<_, _>>()?;
        pool.map_chunked(set_one, events.clone(), 50)?;
        let unset: Vec<usize> = (0..events.len()).filter(|&i| !events[i].is_set()).collect();
        assert!(
            unset.is_empty(),
            "round {round}: events {unset:?} not set yet"
        );
    }
    Ok(())
}

/// Takes and gives back a permit until `stop` is set, saying once that it holds one; returns
/// how many pairs it made. With lent permits, most pairs need no message to the parent.
#[offspring::task]
fn take_until_stopped(sem: Semaphore, holding: Event, stop: Event) -> u64 {
    let mut pairs = 0;
    loop {
        drop(sem.acquire());
        pairs += 1;
        if pairs == 1 {
            holding.set();
        }
        if pairs % 64 == 0 && stop.is_set() {
            return pairs;
        }
    }
}

/// A worker that keeps taking a lent permit again gives it up as soon as the parent waits
/// for it (the parent recalls it): the parent's wait ends while the worker still runs.
#[test]
fn a_permit_lent_to_a_busy_worker_is_recalled_when_the_parent_waits() -> offspring::Result<()> {
    let sem = Semaphore::new(1)?;
    let (holding, stop) = (Event::new()?, Event::new()?);
    let pool = Pool::new(1)?;
    let pairs = pool.apply_async(
        take_until_stopped,
        (sem.clone(), holding.clone(), stop.clone()),
    );
    assert!(holding.wait_timeout(Duration::from_secs(60)));
    for round in 0..20 {
        let started = Instant::now();
        let permit = sem.acquire_timeout(Duration::from_secs(30));
        assert!(
            permit.is_some(),
            "round {round}: the lent permit never came back"
        );
        if round == 0 {
            println!("recalled in {:?}", started.elapsed());
        }
    }
    stop.set();
    let pairs = pairs.get()?;
    println!("the worker made {pairs} pairs");
    assert!(pairs >= 1);
    assert_eq!(sem.available(), 1, "the permit is still out after the call");
    Ok(())
}

/// Two workers contending for one permit, lent back and forth: both finish, and never are
/// both inside.
#[test]
fn two_workers_share_one_lent_permit_and_never_hold_it_together() -> offspring::Result<()> {
    let sem = Semaphore::new(1)?;
    let inside = offspring::Value::new(0u32)?;
    let pool = Pool::new(2)?;
    let started = Instant::now();
    let most: Vec<u32> = pool.map_chunked(
        hold_permits,
        vec![(sem.clone(), inside.clone(), 20_000); 2],
        1,
    )?;
    let elapsed = started.elapsed();
    println!(
        "40,000 pairs in {elapsed:?}: {:.0} pairs/s",
        40_000.0 / elapsed.as_secs_f64()
    );
    assert_eq!(most, vec![1, 1]);
    assert_eq!(sem.available(), 1);
    Ok(())
}

#[offspring::task]
fn release_and_hang(sem: Semaphore, released: Event) {
    drop(sem.acquire());
    // The permit is kept, lent, while the call runs on.
    released.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A permit lent to a worker that released it is still given back when that worker dies
/// (no recall can reach a dead worker: only its death returns the permit).
#[test]
fn a_lent_permit_kept_by_a_killed_worker_is_given_back() -> offspring::Result<()> {
    let sem = Semaphore::new(1)?;
    let released = Event::new()?;
    let holder = Process::spawn(release_and_hang, (sem.clone(), released.clone()))?;
    assert!(released.wait_timeout(Duration::from_secs(60)));
    // Kept by the worker: a mere try does not recall it.
    assert!(sem.try_acquire().is_none());
    holder.kill()?;
    assert!(holder.join().is_err());
    let permit = sem.acquire_timeout(Duration::from_secs(30));
    assert!(
        permit.is_some(),
        "the dead worker's lent permit was not returned"
    );
    Ok(())
}

/// One thread keeps taking a lent permit again while another thread of the same worker
/// waits for it: the worker's own wait recalls it, so the second thread gets it while the
/// first still runs. Returns whether it did, and how many pairs the first made.
#[offspring::task]
fn two_threads_one_permit(sem: Semaphore) -> (bool, u64) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    drop(sem.acquire());
    let got = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (sem, got) = (sem.clone(), Arc::clone(&got));
        std::thread::spawn(move || {
            let permit = sem.acquire_timeout(Duration::from_secs(30));
            got.store(permit.is_some(), Ordering::Release);
            permit.is_some()
        })
    };
    let mut pairs = 0;
    while !waiter.is_finished() {
        drop(sem.acquire());
        pairs += 1;
    }
    (waiter.join().unwrap_or(false), pairs)
}

#[test]
fn a_thread_waiting_in_the_worker_that_keeps_the_permit_gets_it() -> offspring::Result<()> {
    let sem = Semaphore::new(1)?;
    let pool = Pool::new(1)?;
    let (got, pairs) = pool.apply(two_threads_one_permit, sem.clone())?;
    println!("the other thread made {pairs} pairs meanwhile");
    assert!(
        got,
        "the waiting thread never got the permit its own worker kept"
    );
    assert_eq!(sem.available(), 1);
    Ok(())
}

#[offspring::task]
fn plus_one(n: u32) -> u32 {
    n + 1
}

/// A handle that a `map`'s input iterator puts into a queue belongs to the queue's taker,
/// not to the call whose input the iterator was producing: its lease must not end with that
/// call (the primitive would be gone by the time it is taken).
#[test]
fn a_handle_a_map_input_puts_in_a_queue_outlives_the_map() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let queue = Queue::<Event>::new()?;
    let inputs = (0..4u32).inspect(|&n| {
        let event = Event::new().expect("an event");
        if n == 2 {
            event.set();
        }
        queue.put(&event).expect("put");
    });
    assert_eq!(pool.map(plus_one, inputs)?, vec![1, 2, 3, 4]);
    for n in 0..4 {
        let event = queue.get_timeout(Duration::from_secs(10))?;
        assert_eq!(event.is_set(), n == 2, "event {n}");
        event.set();
        assert!(event.is_set());
    }
    Ok(())
}
