//! Primitive operations on a worker's side channel (Linux): many threads of one worker
//! waiting at once each get their own reply, what a worker did just before it died is
//! applied before its death is, and a worker writing nonsense on its side channel is
//! killed with a clear error and replaced. Elsewhere the same calls go on the connection:
//! the first test holds there too, and the second on macOS (on Windows a worker's i/o
//! thread writes its frames, and those still queued when it aborts are lost with it).

use std::time::{Duration, Instant};

use offspring::{Event, Pool, Queue};

const THREADS: u64 = 16;
const ROUNDS: u64 = 200;

/// `THREADS` threads each take `ROUNDS` items from `input` and put back twice each, while
/// every thread also waits for an event that is never set (timing out), so that replies
/// of different kinds and waits of different lengths are read by whichever thread reads.
#[offspring::task]
fn doublers(input: Queue<u64>, output: Queue<u64>, never: Event) -> Result<u64, String> {
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (input, output, never) = (input.clone(), output.clone(), never.clone());
            std::thread::spawn(move || -> Result<u64, String> {
                for round in 0..ROUNDS {
                    let item = input.get().map_err(|e| e.to_string())?;
                    output.put(&(item * 2)).map_err(|e| e.to_string())?;
                    if round % 50 == 0 && never.wait_timeout(Duration::from_millis(1)) {
                        return Err("an event nobody set reads as set".into());
                    }
                }
                Ok(ROUNDS)
            })
        })
        .collect();
    let mut done = 0;
    for worker in workers {
        done += worker
            .join()
            .map_err(|_| "a thread panicked".to_owned())??;
    }
    Ok(done)
}

#[test]
fn many_threads_of_one_worker_waiting_at_once_each_get_their_own_reply() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let input = Queue::<u64>::new()?;
    let output = Queue::<u64>::new()?;
    let never = Event::new()?;
    let started = Instant::now();
    let running = pool.apply_async(doublers, (input.clone(), output.clone(), never));
    let total = THREADS * ROUNDS;
    for item in 1..=total {
        input.put(&item)?;
    }
    let mut sum = 0;
    for _ in 0..total {
        sum += output.get_timeout(Duration::from_secs(60))?;
    }
    assert_eq!(running.get()?, Ok(total));
    assert_eq!(
        sum,
        total * (total + 1),
        "every item came back doubled, once"
    );
    println!(
        "{total} items through {THREADS} threads of one worker in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// Puts `item`, clears and sets `done` many times (one-way operations, which pile up in the
/// side channel), and aborts at once.
#[cfg(unix)]
#[offspring::task]
fn put_set_and_abort(queue: Queue<u64>, done: Event, item: u64) {
    let _ = queue.put(&item);
    for _ in 0..1_000 {
        done.clear();
        done.set();
    }
    std::process::abort();
}

#[cfg(unix)]
#[test]
fn what_a_worker_did_just_before_it_died_is_seen_once_its_death_is() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    for item in 0..20 {
        let queue = Queue::<u64>::new()?;
        let done = Event::new()?;
        match pool.apply(put_set_and_abort, (queue.clone(), done.clone(), item)) {
            Err(offspring::Error::WorkerDied { .. }) => {}
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        // The death is handled only after the worker's last operations were applied.
        assert!(
            done.is_set(),
            "round {item}: the event it set before it died"
        );
        assert_eq!(
            queue.try_get()?,
            Some(item),
            "round {item}: the item it put"
        );
    }
    Ok(())
}

/// Writes `bytes` on this worker's side channel as one message, then waits for ever.
#[cfg(target_os = "linux")]
#[offspring::task]
fn scribble_on_the_side_channel(bytes: Vec<u8>) {
    // The worker's only message-mode socket (it holds no pipe end).
    let fd = std::fs::read_dir("/proc/self/fd")
        .expect("the descriptors")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&fd| {
            let mut kind: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `kind` and `len` are valid for the call to write an int and its length;
            // a descriptor that is not a socket only makes the call fail.
            let got = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_TYPE,
                    (&raw mut kind).cast(),
                    &raw mut len,
                )
            };
            got == 0 && kind == libc::SOCK_SEQPACKET
        })
        .expect("a side channel");
    let side = offspring_transport::channel::Channel::inherited(fd).expect("the side channel");
    side.send(&bytes).expect("a message on the side channel");
    // The descriptor stays this process's (the client keeps using it).
    std::mem::forget(side);
    loop {
        std::thread::park();
    }
}

#[offspring::task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[cfg(target_os = "linux")]
#[test]
fn a_worker_writing_nonsense_on_its_side_channel_is_killed_and_replaced() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    // Not a message at all; a report, which the side channel never carries; a call cut short.
    let frame = offspring_wire::encode(&offspring_wire::FromWorker::Doorbell)
        .expect("a frame")
        .split_off(offspring_wire::HEADER_LEN);
    let call = offspring_wire::encode(&offspring_wire::FromWorker::Call {
        call_id: 5,
        op: offspring_wire::PrimOp::Sync,
    })
    .expect("a frame");
    let cut = call[offspring_wire::HEADER_LEN..call.len() - 1].to_vec();
    for bytes in [vec![0xff; 40], frame, cut] {
        let before = pool.apply(worker_pid, ())?;
        let started = Instant::now();
        match pool.apply(scribble_on_the_side_channel, bytes.clone()) {
            Err(offspring::Error::WorkerDied { pid, .. }) => assert_eq!(pid, before),
            other => panic!("{bytes:?}: expected WorkerDied, got {other:?}"),
        }
        println!("{bytes:?}: killed after {:?}", started.elapsed());
        assert_ne!(pool.apply(worker_pid, ())?, before, "a new worker serves");
    }
    Ok(())
}
