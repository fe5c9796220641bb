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

/// Takes a permit 100 times; while holding it, counts holders through a queue-backed
/// counter (another primitive, not timing) and records the highest count seen.
#[offspring::task]
fn hold_permits(sem: Semaphore, inside: Semaphore, rounds: u32) -> u32 {
    let mut most = 0;
    for _ in 0..rounds {
        let _permit = sem.acquire();
        // `inside` starts with 100 permits; holders each take one, so the number taken is the
        // number of holders right now.
        let _mine = inside.acquire();
        let holders = 100 - inside.available() as u32;
        most = most.max(holders);
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
    let inside = Semaphore::new(100)?;
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

#[offspring::task]
fn send_further(event: Event) -> String {
    match offspring::Process::spawn(wait_event, event) {
        Ok(child) => format!("started {}", child.pid()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_handle_passed_further_down_gives_a_clear_error() -> offspring::Result<()> {
    let message = Process::spawn(send_further, Event::new()?)?.join()?;
    assert!(message.contains("only from the parent"), "{message}");
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
