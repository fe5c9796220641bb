//! Shared memory with real workers: `SharedBytes`, `SharedSlice`, `SharedArray` and `Value`
//! passed by handle, changed concurrently, held by a process that is killed, and forged.

use std::time::{Duration, Instant};

use offspring::{
    Connection, Error, Event, Pool, Process, Queue, SharedArray, SharedBytes, SharedSlice, Value,
    pipe,
};

/// Reads 256 bytes spread over the data; their sum and how long the reads took (ns).
#[offspring::task]
fn sample(data: SharedBytes) -> (u64, u64) {
    let started = Instant::now();
    let step = (data.len() / 256).max(1);
    let sum = data.iter().step_by(step).map(|b| u64::from(*b)).sum();
    (sum, started.elapsed().as_nanos() as u64)
}

#[offspring::task]
fn nothing(n: u64) -> u64 {
    n
}

fn bytes_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Per-call seconds of `calls` sequential applies of `f`.
fn per_call(calls: u32, mut f: impl FnMut() -> offspring::Result<()>) -> offspring::Result<f64> {
    let started = Instant::now();
    for _ in 0..calls {
        f()?;
    }
    Ok(started.elapsed().as_secs_f64() / f64::from(calls))
}

#[test]
fn a_large_shared_bytes_reaches_workers_by_handle() -> offspring::Result<()> {
    const LEN: usize = 256 << 20;
    let raw = bytes_of(LEN);
    let expected: u64 = raw.iter().step_by(LEN / 256).map(|b| u64::from(*b)).sum();
    let started = Instant::now();
    let data = SharedBytes::from_vec(raw)?;
    println!("256 MiB shared in {:?}", started.elapsed());
    assert_eq!(data.len(), LEN);
    let pool = Pool::new(2)?;
    // Warm both workers up.
    pool.map_chunked(nothing, [1u64, 2], 1)?;
    let mut own_work = Vec::new();
    let mut best = f64::MAX;
    let mut base = f64::MAX;
    for _ in 0..3 {
        base = base.min(per_call(50, || pool.apply(nothing, 7).map(drop))?);
        best = best.min(per_call(50, || {
            let (sum, ns) = pool.apply(sample, data.clone())?;
            assert_eq!(sum, expected, "the worker read the bytes the parent shared");
            own_work.push(ns);
            Ok(())
        })?);
    }
    own_work.sort_unstable();
    let work = own_work[own_work.len() / 2] as f64 / 1e9;
    let overhead = best - base - work;
    println!(
        "per call: {:.1} µs with a 256 MiB SharedBytes, {:.1} µs with a u64; the call's own \
         work {:.1} µs; the handle adds {:.1} µs",
        best * 1e6,
        base * 1e6,
        work * 1e6,
        overhead * 1e6
    );
    // The target (< 1 ms) is measured by `cargo xtask bench`; here the bound only catches a
    // copy (a 256 MiB copy takes tens of milliseconds).
    assert!(
        overhead < 0.01,
        "passing the handle cost {overhead:.4} s a call"
    );
    // The same calls through `map`, in batches.
    let sums = pool.map(sample, vec![data.clone(); 50])?;
    assert!(sums.iter().all(|(sum, _)| *sum == expected));
    Ok(())
}

#[offspring::task]
fn count_up(hits: Value<u64>, times: u32) -> u64 {
    for _ in 0..times {
        hits.fetch_add(1);
    }
    hits.load()
}

#[test]
fn a_value_counts_exactly_under_four_concurrent_calls() -> offspring::Result<()> {
    let hits = Value::<u64>::new(0)?;
    let pool = Pool::new(4)?;
    let started = Instant::now();
    let ends = pool.map_chunked(count_up, vec![(hits.clone(), 500_000); 4], 1)?;
    let elapsed = started.elapsed();
    assert_eq!(hits.load(), 2_000_000);
    assert_eq!(ends.iter().max(), Some(&2_000_000));
    println!("4 x 500,000 fetch_add in {elapsed:?}");

    let small = Value::<i32>::new(-5)?;
    assert_eq!(small.fetch_sub(3), -5);
    assert_eq!(small.compare_exchange(-8, 9), Ok(-8));
    assert_eq!(small.compare_exchange(-8, 1), Err(9));
    small.store(i32::MAX);
    assert_eq!(small.fetch_add(1), i32::MAX);
    assert_eq!(small.load(), i32::MIN);
    Ok(())
}

/// Takes the array's lock, fills it with 1, 2, 3..., says so, and holds the lock until killed.
#[offspring::task]
fn fill_and_hold(arr: SharedArray<u64>, taken: Event) {
    let mut guard = arr.lock();
    for (i, v) in guard.iter_mut().enumerate() {
        *v = i as u64 + 1;
    }
    taken.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[offspring::task]
fn sum_array(arr: SharedArray<u64>) -> u64 {
    let mut guard = arr.lock();
    guard[0] += 1000;
    guard.iter().sum()
}

#[test]
fn a_shared_array_is_lockable_again_after_its_holder_is_killed() -> offspring::Result<()> {
    let arr = SharedArray::<u64>::zeroed(1024)?;
    assert_eq!(arr.len(), 1024);
    let taken = Event::new()?;
    let holder = Process::spawn(fill_and_hold, (arr.clone(), taken.clone()))?;
    assert!(
        taken.wait_timeout(Duration::from_secs(60)),
        "the holder took the lock"
    );
    assert!(arr.try_lock().is_none(), "the lock is held by the worker");
    holder.kill()?;
    let pool = Pool::new(1)?;
    let sum = pool.apply(sum_array, arr.clone())?;
    assert_eq!(
        sum,
        1024 * 1025 / 2 + 1000,
        "the killed holder's writes are kept"
    );
    let values = arr.to_vec();
    assert_eq!(values[0], 1001);
    assert_eq!(values[1023], 1024);

    let copied = SharedArray::<f64>::copy_from_slice(&[1.0, 2.0])?;
    copied.lock()[1] = 5.0;
    assert_eq!(copied.to_vec(), vec![1.0, 5.0]);
    Ok(())
}

#[offspring::task]
fn decode_bytes(bytes: Vec<u8>) -> Result<usize, String> {
    postcard::from_bytes::<SharedBytes>(&bytes)
        .map(|data| data.len())
        .map_err(|e| e.to_string())
}

/// The wire form of a handle, with its tag changed: bytes that name no live object.
fn forge(handle: &[u8]) -> Vec<u8> {
    let mut forged = handle.to_vec();
    // The tag is the third integer of the locator; flipping every byte after the first
    // five fields' start changes it (and maybe more), which must never map anything.
    for b in forged.iter_mut().skip(8) {
        *b ^= 0x5a;
    }
    forged
}

#[test]
fn forged_freed_and_mistyped_handles_give_errors() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let data = SharedBytes::copy_from_slice(b"hello")?;
    let wire = postcard::to_stdvec(&data).expect("a handle encodes");
    // Decoding in this process takes the lease the encoding took.
    let again: SharedBytes = postcard::from_bytes(&wire).expect("a live handle decodes");
    assert_eq!(&again[..], b"hello");
    assert!(postcard::from_bytes::<SharedSlice<u32>>(&wire).is_err());
    assert!(postcard::from_bytes::<SharedArray<u8>>(&wire).is_err());
    assert!(postcard::from_bytes::<Value<u64>>(&wire).is_err());
    for forged in [forge(&wire), vec![0xff; wire.len()], vec![]] {
        assert!(postcard::from_bytes::<SharedBytes>(&forged).is_err());
        assert!(pool.apply(decode_bytes, forged)?.is_err());
    }
    drop((data, again));
    // Freed now: its bytes name nothing, here or in a worker.
    let freed = postcard::from_bytes::<SharedBytes>(&wire).map(|d| d.len());
    assert!(freed.is_err(), "a freed handle decoded: {freed:?}");
    let message = pool
        .apply(decode_bytes, wire)?
        .expect_err("a freed handle decoded");
    println!("a freed handle in a worker: {message}");

    // Too large for any OS.
    assert!(matches!(
        SharedArray::<u64>::zeroed(usize::MAX / 8),
        Err(Error::SharedMemory { .. })
    ));
    assert!(matches!(
        SharedArray::<u64>::zeroed(1 << 60),
        Err(Error::SharedMemory { .. })
    ));
    // 8 TiB: within the format's bound, beyond this machine.
    let huge = SharedArray::<u64>::zeroed(1 << 40);
    println!("an 8 TiB array: {huge:?}");
    assert!(matches!(huge, Err(Error::SharedMemory { .. })));
    Ok(())
}

#[offspring::task]
fn sum_from_queue(queue: Queue<SharedSlice<f32>>) -> f32 {
    match queue.get_timeout(Duration::from_secs(60)) {
        Ok(table) => table.iter().sum(),
        Err(_) => -1.0,
    }
}

/// Receives shared bytes through a pipe and sends back their sum.
#[offspring::task]
fn sum_from_pipe(end: Connection<SharedBytes>, back: Connection<u64>) -> bool {
    match end.recv_timeout(Duration::from_secs(60)) {
        Ok(data) => back.send(&data.iter().map(|b| u64::from(*b)).sum()).is_ok(),
        Err(_) => false,
    }
}

#[offspring::task]
fn first_byte(data: SharedBytes) -> u8 {
    data.first().copied().unwrap_or(0)
}

/// Creates shared memory in a worker and hands it to a worker of its own.
#[offspring::task]
fn share_further_down(data: SharedBytes) -> Result<(u8, u64), String> {
    let made = SharedBytes::copy_from_slice(&[9, 8, 7]).map_err(|e| e.to_string())?;
    let hits = Value::<u64>::new(40).map_err(|e| e.to_string())?;
    let inner = Process::spawn(first_byte, made).map_err(|e| e.to_string())?;
    let made_first = inner.join().map_err(|e| e.to_string())?;
    let leaf = Process::spawn(count_up, (hits.clone(), 2)).map_err(|e| e.to_string())?;
    leaf.join().map_err(|e| e.to_string())?;
    let grandchild = Process::spawn(first_byte, data).map_err(|e| e.to_string())?;
    let first = grandchild.join().map_err(|e| e.to_string())?;
    Ok((first + made_first, hits.load()))
}

#[test]
fn shared_memory_travels_in_queues_processes_and_further_down() -> offspring::Result<()> {
    let table = SharedSlice::<f32>::copy_from_slice(&[0.5; 1000])?;
    assert_eq!(table.len(), 1000);
    let queue = Queue::new()?;
    let pool = Pool::new(1)?;
    let sum = pool.apply_async(sum_from_queue, queue.clone());
    queue.put(&table)?;
    assert_eq!(sum.get()?, 500.0);

    let (ours, theirs) = pipe::<SharedBytes>()?;
    let (sums, sums_theirs) = pipe::<u64>()?;
    let summer = Process::spawn(sum_from_pipe, (theirs, sums_theirs))?;
    ours.send(&SharedBytes::from_vec(vec![2; 1000])?)?;
    assert_eq!(sums.recv_timeout(Duration::from_secs(60))?, 2000);
    assert!(summer.join()?);

    let data = SharedBytes::from_vec(vec![3; 10])?;
    let child = Process::spawn(share_further_down, data.clone())?;
    assert_eq!(child.join()?, Ok((3 + 9, 42)));
    let empty = SharedBytes::from_vec(Vec::new())?;
    assert!(empty.is_empty());
    assert_eq!(Process::spawn(first_byte, empty)?.join()?, 0);
    Ok(())
}

#[test]
fn every_shared_type_is_clone_send_sync_and_serde() {
    fn check<T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned>() {}
    check::<SharedBytes>();
    check::<SharedSlice<f32>>();
    check::<SharedArray<f64>>();
    check::<Value<u64>>();
    check::<Value<i32>>();
    check::<Value<usize>>();
}
