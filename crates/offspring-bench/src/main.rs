//! The benchmark program `cargo xtask bench` runs. It measures offspring next to the floor
//! the OS allows (raw `std` Unix-socket transfers between two processes, measured in the same
//! run, with ids prefixed `floor.`) and prints tab-separated lines that xtask turns into a
//! table:
//!
//! - `figure\t<id>\t<unit>\t<lower_is_better>\t<description>`
//! - `sample\t<id>\t<value>`
//! - `ratio\t<a>\t<b>\t<op>\t<target>\t<description>` (median(a) / median(b) against target)
//!
//! The ratios also name the `python.` figures of `xtask/bench/baseline.py`, which measures the
//! same scenarios with Python's `multiprocessing`; xtask runs it next and reads both.
//!
//! Run it through `cargo xtask bench [--quick] [--json]`; `--quick` takes fewer samples.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use offspring_bench::{figure, ratio, sample};

#[offspring::task]
fn nothing() {}

/// Bytes as `serde_bytes::ByteBuf`, as a user who knows serde's byte trick sends them.
#[offspring::task]
fn echo_bytes(payload: serde_bytes::ByteBuf) -> serde_bytes::ByteBuf {
    payload
}

/// Bytes as a plain `Vec<u8>`, as a new user sends them.
#[offspring::task]
fn echo_vec(payload: Vec<u8>) -> Vec<u8> {
    payload
}

#[offspring::task]
async fn nothing_async() {}

/// An async "request": awaits a timer of `ms` milliseconds.
#[offspring::task]
async fn wait_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Reads 256 bytes spread over the data (as a lookup in a table would).
#[offspring::task]
fn sample_shared(data: offspring::SharedBytes) -> u64 {
    let step = (data.len() / 256).max(1);
    data.iter().step_by(step).map(|b| u64::from(*b)).sum()
}

#[offspring::task]
fn echo_u64(n: u64) -> u64 {
    n
}

/// As `sample_shared`, for bytes passed by value.
#[offspring::task]
fn sample_value(data: serde_bytes::ByteBuf) -> u64 {
    let step = (data.len() / 256).max(1);
    data.iter().step_by(step).map(|b| u64::from(*b)).sum()
}

#[offspring::task]
fn add_many(value: offspring::Value<u64>, count: u64) {
    for _ in 0..count {
        value.fetch_add(1);
    }
}

#[offspring::task]
fn worker_rss_kib() -> u64 {
    rss_kib(std::process::id()).unwrap_or_default()
}

/// Answers every message on `end` with the same message, `count` times.
#[offspring::task]
fn pipe_echo(end: offspring::Connection<u64>, count: u64) {
    for _ in 0..count {
        match end.recv() {
            Ok(n) => {
                let _ = end.send(&n);
            }
            Err(_) => return,
        }
    }
}

/// Takes from `inbox` and puts into `outbox`, `count` times.
#[offspring::task]
fn queue_echo(inbox: offspring::Queue<u64>, outbox: offspring::Queue<u64>, count: u64) {
    for _ in 0..count {
        match inbox.get() {
            Ok(n) => {
                let _ = outbox.put(&n);
            }
            Err(_) => return,
        }
    }
}

/// Waits for `ping`, clears it and sets `pong`, `count` times.
#[offspring::task]
fn event_echo(ping: offspring::Event, pong: offspring::Event, count: u64) {
    for _ in 0..count {
        ping.wait();
        ping.clear();
        pong.set();
    }
}

/// Acquires and releases a permit `count` times.
#[offspring::task]
fn semaphore_pairs(sem: offspring::Semaphore, count: u64) {
    for _ in 0..count {
        drop(sem.acquire());
    }
}

/// Takes and releases a lock `count` times: a lock's permit is never lent, so each pair is
/// a round trip to the parent, as every semaphore's was before permits were lent.
#[offspring::task]
fn lock_pairs(lock: offspring::Lock, count: u64) {
    for _ in 0..count {
        drop(lock.lock());
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

struct Settings {
    samples: usize,
    round_trips: usize,
    async_tasks: usize,
    map_items: usize,
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--floor-child") {
        let arg = |index: usize| args.get(index).map(String::as_str).unwrap_or_default();
        floor::child(arg(2), arg(3));
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let settings = if quick {
        Settings {
            samples: 5,
            round_trips: 2_000,
            async_tasks: 5_000,
            map_items: 50_000,
        }
    } else {
        Settings {
            samples: 15,
            round_trips: 20_000,
            async_tasks: 50_000,
            map_items: 500_000,
        }
    };

    floor::measure(&settings);

    figure(
        "task_round_trip",
        "us",
        true,
        "apply of a trivial task over an established worker",
    );
    let pool = offspring::Pool::new(1)?;
    pool.apply(nothing, ())?;
    for _ in 0..settings.samples {
        let started = Instant::now();
        for _ in 0..settings.round_trips {
            pool.apply(nothing, ())?;
        }
        sample(
            "task_round_trip",
            micros(started.elapsed()) / settings.round_trips as f64,
        );
    }
    figure(
        "async_round_trip",
        "us",
        true,
        "apply of a trivial async task over an established worker",
    );
    pool.apply(nothing_async, ())?;
    for _ in 0..settings.samples {
        let started = Instant::now();
        for _ in 0..settings.round_trips {
            pool.apply(nothing_async, ())?;
        }
        sample(
            "async_round_trip",
            micros(started.elapsed()) / settings.round_trips as f64,
        );
    }
    drop(pool);
    async_concurrent(&settings)?;

    figure(
        "spawn_to_first_result",
        "ms",
        true,
        "Process::spawn of a trivial task to its joined value",
    );
    for _ in 0..settings.samples {
        let started = Instant::now();
        offspring::Process::spawn(nothing, ())?.join()?;
        sample("spawn_to_first_result", millis(started.elapsed()));
    }

    figure(
        "pool2_first_result",
        "ms",
        true,
        "Pool::new(2) to the first apply's value",
    );
    for _ in 0..settings.samples {
        let started = Instant::now();
        let pool = offspring::Pool::new(2)?;
        pool.apply(nothing, ())?;
        sample("pool2_first_result", millis(started.elapsed()));
    }

    let pool = offspring::Pool::new(2)?;
    pool.map_chunked(nothing, vec![(); 100], 1)?;

    figure(
        "apply_async_throughput",
        "tasks/s",
        false,
        "apply_async of trivial tasks on 2 workers, then get of each",
    );
    for _ in 0..settings.samples {
        let started = Instant::now();
        let results: Vec<_> = (0..settings.async_tasks)
            .map(|_| pool.apply_async(nothing, ()))
            .collect();
        for result in results {
            result.get()?;
        }
        sample(
            "apply_async_throughput",
            settings.async_tasks as f64 / started.elapsed().as_secs_f64(),
        );
    }

    map_throughput(&pool, &settings)?;

    figure(
        "idle_worker_rss",
        "KiB",
        true,
        "resident memory of an idle worker, before any large payload",
    );
    for _ in 0..settings.samples.min(3) {
        sample("idle_worker_rss", pool.apply(worker_rss_kib, ())? as f64);
    }

    figure(
        "payload_64mib",
        "MiB/s",
        false,
        "64 MiB serde_bytes::ByteBuf argument to a worker and back (MiB moved per second, both ways)",
    );
    figure(
        "payload_64mib_vec",
        "MiB/s",
        false,
        "64 MiB Vec<u8> argument to a worker and back (MiB moved per second, both ways)",
    );
    let payload = vec![7u8; 64 * 1024 * 1024];
    for _ in 0..settings.samples.min(5) {
        // The copy is the bench's own, to send the same payload again, so it is made before the
        // clock starts; Python's baseline passes its bytes object without one.
        let argument = serde_bytes::ByteBuf::from(payload.clone());
        let started = Instant::now();
        let back = pool.apply(echo_bytes, argument)?;
        let took = started.elapsed();
        assert_eq!(back.len(), payload.len());
        sample("payload_64mib", 128.0 / took.as_secs_f64());

        let argument = payload.clone();
        let started = Instant::now();
        let back = pool.apply(echo_vec, argument)?;
        let took = started.elapsed();
        assert_eq!(back.len(), payload.len());
        sample("payload_64mib_vec", 128.0 / took.as_secs_f64());
    }

    figure(
        "worker_rss_after_64mib",
        "KiB",
        true,
        "resident memory of the worker 5 s after the 64 MiB payloads (its idle trim has run)",
    );
    // The worker trims what a large call left once it has been idle for 5 s.
    std::thread::sleep(Duration::from_millis(5_500));
    for _ in 0..settings.samples.min(3) {
        sample(
            "worker_rss_after_64mib",
            pool.apply(worker_rss_kib, ())? as f64,
        );
    }

    primitives(&pool, &settings)?;
    shared_memory(&pool, &settings)?;
    drop(pool);
    over_tcp(&settings, &payload)?;
    targets();
    Ok(())
}

/// How long each concurrent async call awaits, and how many run at once per worker.
const ASYNC_WAIT_MS: u64 = 10;
const ASYNC_CONCURRENCY: usize = 100;

/// Async calls that each await a 10 ms timer, 100 at a time on each of 2 workers, next to
/// the rate that timer allows (2 × 100 calls per 10 ms).
fn async_concurrent(settings: &Settings) -> offspring::Result<()> {
    figure(
        "async_concurrent_throughput",
        "calls/s",
        false,
        "apply_async of async calls that each await 10 ms, on 2 workers running 100 at once",
    );
    figure(
        "async_concurrent_limit",
        "calls/s",
        false,
        "what 2 workers running 100 calls of 10 ms at once allow: 20,000 calls/s",
    );
    let pool = offspring::Pool::builder()
        .processes(2)
        .async_concurrency(ASYNC_CONCURRENCY)
        .build()?;
    pool.map(wait_ms, [0, 0])?;
    let calls = settings.async_tasks / 2;
    for _ in 0..settings.samples {
        let started = Instant::now();
        let results: Vec<_> = (0..calls)
            .map(|_| pool.apply_async(wait_ms, ASYNC_WAIT_MS))
            .collect();
        for result in results {
            result.get()?;
        }
        sample(
            "async_concurrent_throughput",
            calls as f64 / started.elapsed().as_secs_f64(),
        );
    }
    let limit = 2.0 * ASYNC_CONCURRENCY as f64 / (ASYNC_WAIT_MS as f64 / 1000.0);
    sample("async_concurrent_limit", limit);
    Ok(())
}

/// Measures `map` of trivial items with the automatic chunk size and with fixed ones, then
/// repeats the samples of the best of them as `map_throughput_best`, so that the automatic
/// choice can be compared with the best one measured.
fn map_throughput(pool: &offspring::Pool, settings: &Settings) -> offspring::Result<()> {
    let mut measured: Vec<(String, Vec<f64>)> = Vec::new();
    for chunk in [None, Some(64), Some(1024), Some(8192)] {
        let (id, label) = match chunk {
            None => ("map_throughput_auto".to_string(), "automatic".to_string()),
            Some(chunk) => (format!("map_throughput_chunk_{chunk}"), chunk.to_string()),
        };
        figure(
            &id,
            "items/s",
            false,
            &format!("map of trivial items on 2 workers, chunk size {label}"),
        );
        let mut samples = Vec::with_capacity(settings.samples);
        for _ in 0..settings.samples {
            let items = vec![(); settings.map_items];
            let started = Instant::now();
            match chunk {
                None => pool.map(nothing, items)?,
                Some(chunk) => pool.map_chunked(nothing, items, chunk)?,
            };
            let rate = settings.map_items as f64 / started.elapsed().as_secs_f64();
            sample(&id, rate);
            samples.push(rate);
        }
        measured.push((label, samples));
    }
    let best = measured
        .iter()
        .max_by(|a, b| median(&a.1).total_cmp(&median(&b.1)));
    if let Some((label, samples)) = best {
        figure(
            "map_throughput_best",
            "items/s",
            false,
            &format!("map of trivial items on 2 workers, best chunk size measured: {label}"),
        );
        for &rate in samples {
            sample("map_throughput_best", rate);
        }
    }
    Ok(())
}

/// Workers over TCP on the loopback, sealed (the path of workers on other machines,
/// started here by the test launcher `Loopback`), next to the local socket's figures above:
/// the round trip, `map`, 64 MiB there and back, and what sealing alone costs.
fn over_tcp(settings: &Settings, payload: &[u8]) -> offspring::Result<()> {
    let tcp_pool = |processes| {
        offspring::Pool::builder()
            .processes(processes)
            .launcher(offspring::__private::Loopback)
            .listen("127.0.0.1:0")
            .build()
    };
    figure(
        "tcp_round_trip",
        "us",
        true,
        "apply of a trivial task over TCP on the loopback, sealed (compare task_round_trip)",
    );
    let pool = tcp_pool(1)?;
    pool.apply(nothing, ())?;
    for _ in 0..settings.samples {
        let started = Instant::now();
        for _ in 0..settings.round_trips {
            pool.apply(nothing, ())?;
        }
        sample(
            "tcp_round_trip",
            micros(started.elapsed()) / settings.round_trips as f64,
        );
    }
    drop(pool);
    let pool = tcp_pool(2)?;
    pool.map_chunked(nothing, vec![(); 100], 1)?;
    figure(
        "tcp_map_throughput",
        "items/s",
        false,
        "map of trivial items on 2 workers over sealed TCP, automatic chunk size (compare map_throughput_auto)",
    );
    for _ in 0..settings.samples {
        let items = vec![(); settings.map_items];
        let started = Instant::now();
        pool.map(nothing, items)?;
        sample(
            "tcp_map_throughput",
            settings.map_items as f64 / started.elapsed().as_secs_f64(),
        );
    }
    figure(
        "tcp_payload_64mib",
        "MiB/s",
        false,
        "64 MiB serde_bytes::ByteBuf to a worker over sealed TCP and back (compare payload_64mib)",
    );
    for _ in 0..settings.samples.min(3) {
        let argument = serde_bytes::ByteBuf::from(payload.to_vec());
        let started = Instant::now();
        let back = pool.apply(echo_bytes, argument)?;
        let took = started.elapsed();
        assert_eq!(back.len(), payload.len());
        sample("tcp_payload_64mib", 128.0 / took.as_secs_f64());
    }
    drop(pool);
    figure(
        "seal_throughput",
        "MB/s",
        false,
        "ChaCha20-Poly1305 sealing then opening of 64 MiB in records, in one thread (the cost of sealing alone)",
    );
    for _ in 0..settings.samples.min(5) {
        sample(
            "seal_throughput",
            offspring::__private::seal_throughput(payload) / 1e6,
        );
    }
    Ok(())
}

/// A 256 MiB `SharedBytes` passed to calls, next to the same bytes passed by value, and
/// `Value::fetch_add` from two workers at once.
fn shared_memory(pool: &offspring::Pool, settings: &Settings) -> offspring::Result<()> {
    const LEN: usize = 256 * 1024 * 1024;
    figure(
        "shared_256mib_call",
        "us",
        true,
        "apply of a task reading 256 bytes of a 256 MiB SharedBytes argument",
    );
    figure(
        "shared_256mib_added",
        "us",
        true,
        "what the 256 MiB SharedBytes adds to an apply (the same loop's u64 applies subtracted)",
    );
    figure(
        "limit.shared_256mib_added",
        "us",
        true,
        "the bound a SharedBytes argument must stay within: 1 ms per call",
    );
    sample("limit.shared_256mib_added", 1000.0);
    figure(
        "value_256mib_call",
        "us",
        true,
        "apply of the same task with the 256 MiB passed by value (as four 64 MiB calls: a frame holds 65 MiB)",
    );
    let data = offspring::SharedBytes::from_vec(vec![3; LEN])?;
    pool.map_chunked(sample_shared, vec![data.clone(); 2], 1)?;
    let calls = (settings.round_trips / 20).max(100);
    for _ in 0..settings.samples {
        let started = Instant::now();
        for _ in 0..calls {
            pool.apply(echo_u64, 1)?;
        }
        let base = micros(started.elapsed()) / calls as f64;
        let started = Instant::now();
        for _ in 0..calls {
            pool.apply(sample_shared, data.clone())?;
        }
        let shared = micros(started.elapsed()) / calls as f64;
        sample("shared_256mib_call", shared);
        sample("shared_256mib_added", (shared - base).max(0.0));
    }
    drop(data);
    let quarter = serde_bytes::ByteBuf::from(vec![3; LEN / 4]);
    for _ in 0..settings.samples.min(3) {
        let arguments: Vec<_> = (0..4).map(|_| quarter.clone()).collect();
        let started = Instant::now();
        for argument in arguments {
            pool.apply(sample_value, argument)?;
        }
        sample("value_256mib_call", micros(started.elapsed()));
    }

    figure(
        "value_fetch_add_rate",
        "ops/s",
        false,
        "Value<u64>::fetch_add from 2 pool workers at once on one value",
    );
    let value = offspring::Value::<u64>::new(0)?;
    let count = 2_000_000u64;
    for _ in 0..settings.samples.min(5) {
        value.store(0);
        let started = Instant::now();
        pool.map_chunked(add_many, vec![(value.clone(), count); 2], 1)?;
        let took = started.elapsed();
        assert_eq!(value.load(), 2 * count, "no increment lost");
        sample(
            "value_fetch_add_rate",
            2.0 * count as f64 / took.as_secs_f64(),
        );
    }
    Ok(())
}

/// Declares the targets. Each reads as "median(a) / median(b) op target"; the `python.`
/// figures come from `xtask/bench/baseline.py`, run after this program. The data path's
/// (calls near the socket floor, `map` beyond Python's, large payloads) come first.
fn targets() {
    ratio(
        "task_round_trip",
        "floor.task_round_trip",
        "<=",
        2.5,
        "apply round trip within 2.5x of the raw socket floor (moonshot 2x)",
    );
    ratio(
        "async_round_trip",
        "task_round_trip",
        "<=",
        1.5,
        "an async task's round trip within 1.5x of a sync task's",
    );
    ratio(
        "async_concurrent_throughput",
        "async_concurrent_limit",
        ">=",
        0.5,
        "concurrent async calls at least half the rate their timers allow",
    );
    ratio(
        "apply_async_throughput",
        "python.apply_async_throughput",
        ">=",
        5.0,
        "apply_async throughput at least 5x Python's (moonshot 10x)",
    );
    ratio(
        "map_throughput_best",
        "python.map_throughput_best",
        ">=",
        2.0,
        "map of trivial items, best chunk size, at least 2x Python's best (moonshot 10x)",
    );
    ratio(
        "map_throughput_auto",
        "map_throughput_best",
        ">=",
        0.8,
        "map with the automatic chunk size within 20% of offspring's best chunk size",
    );
    for id in ["payload_64mib", "payload_64mib_vec"] {
        ratio(
            id,
            "python.payload_64mib",
            ">=",
            4.0,
            "64 MiB echoed at least 4x Python's throughput",
        );
        ratio(
            id,
            "floor.payload_64mib",
            ">=",
            0.3,
            "64 MiB echoed at least 0.3x the raw socket's bulk copy",
        );
    }
    ratio(
        "worker_rss_after_64mib",
        "idle_worker_rss",
        "<=",
        2.0,
        "a worker 5 s after 64 MiB calls within 2x of its idle resident memory",
    );
    for prim in ["pipe", "queue", "event"] {
        ratio(
            &format!("python.{prim}_ping_pong"),
            &format!("{prim}_ping_pong"),
            ">=",
            2.0,
            &format!("{prim} round trip at least 2x faster than Python's"),
        );
    }
    ratio(
        "pipe_ping_pong",
        "floor.task_round_trip",
        "<=",
        1.5,
        "moonshot: a pipe round trip within 1.5x of the raw socket's (a direct pipe is one)",
    );
    ratio(
        "semaphore_pairs",
        "lock_pairs",
        ">=",
        2.0,
        "semaphore pairs from 2 workers (lent permits) at least 2x the round-trip path a lock takes",
    );
    ratio(
        "python.pool2_first_result_fork",
        "pool2_first_result",
        ">=",
        1.0,
        "pool of 2 to first result faster than Python's with fork",
    );
    ratio(
        "python.pool2_first_result",
        "pool2_first_result",
        ">=",
        10.0,
        "pool of 2 to first result at least 10x faster than Python's with spawn",
    );
    ratio(
        "shared_256mib_added",
        "limit.shared_256mib_added",
        "<=",
        1.0,
        "a 256 MiB SharedBytes argument adds less than 1 ms to a call",
    );
    ratio(
        "value_256mib_call",
        "shared_256mib_call",
        ">=",
        100.0,
        "256 MiB by handle at least 100x faster than by value",
    );
    ratio(
        "python.shm_256mib_call",
        "shared_256mib_call",
        ">=",
        2.0,
        "a call with 256 MiB shared at least 2x faster than Python's with SharedMemory attached by name",
    );
    ratio(
        "value_fetch_add_rate",
        "python.value_increment_rate",
        ">=",
        2.0,
        "Value increments from 2 workers at least 2x Python's Value under its lock",
    );
    ratio(
        "python.idle_worker_rss",
        "idle_worker_rss",
        ">=",
        3.0,
        "idle worker at most a third of a Python spawn worker's resident memory",
    );
}

/// The median of `samples`, or minus infinity for none, so that an empty series is never
/// chosen as the best.
fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NEG_INFINITY,
        n if n % 2 == 1 => sorted[mid],
        _ => (sorted[mid - 1] + sorted[mid]) / 2.0,
    }
}

fn primitives(pool: &offspring::Pool, settings: &Settings) -> offspring::Result<()> {
    let rounds = (settings.round_trips / 4).max(100) as u64;
    figure(
        "pipe_ping_pong",
        "us",
        true,
        "pipe round trip between the parent and a worker",
    );
    let (mine, theirs) = offspring::pipe::<u64>()?;
    let echo = pool.apply_async(pipe_echo, (theirs, rounds * settings.samples as u64));
    for _ in 0..settings.samples {
        let started = Instant::now();
        for n in 0..rounds {
            mine.send(&n)?;
            mine.recv()?;
        }
        sample("pipe_ping_pong", micros(started.elapsed()) / rounds as f64);
    }
    echo.get()?;

    figure(
        "queue_ping_pong",
        "us",
        true,
        "queue round trip between the parent and a worker",
    );
    let (to_worker, from_worker) = (offspring::Queue::new()?, offspring::Queue::new()?);
    let echo = pool.apply_async(
        queue_echo,
        (
            to_worker.clone(),
            from_worker.clone(),
            rounds * settings.samples as u64,
        ),
    );
    for _ in 0..settings.samples {
        let started = Instant::now();
        for n in 0..rounds {
            to_worker.put(&n)?;
            from_worker.get()?;
        }
        sample("queue_ping_pong", micros(started.elapsed()) / rounds as f64);
    }
    echo.get()?;

    figure(
        "event_ping_pong",
        "us",
        true,
        "event round trip between the parent and a worker",
    );
    let (ping, pong) = (offspring::Event::new()?, offspring::Event::new()?);
    let echo = pool.apply_async(
        event_echo,
        (ping.clone(), pong.clone(), rounds * settings.samples as u64),
    );
    for _ in 0..settings.samples {
        let started = Instant::now();
        for _ in 0..rounds {
            ping.set();
            pong.wait();
            pong.clear();
        }
        sample("event_ping_pong", micros(started.elapsed()) / rounds as f64);
    }
    echo.get()?;

    figure(
        "semaphore_pairs",
        "pairs/s",
        false,
        "acquire/release pairs per second from 2 contending workers",
    );
    let sem = offspring::Semaphore::new(1)?;
    // Lent permits make most pairs local: ten times the rounds, for samples of some length.
    let sem_rounds = 10 * rounds;
    for _ in 0..settings.samples {
        let started = Instant::now();
        pool.map_chunked(semaphore_pairs, vec![(sem.clone(), sem_rounds); 2], 1)?;
        sample(
            "semaphore_pairs",
            (2 * sem_rounds) as f64 / started.elapsed().as_secs_f64(),
        );
    }

    figure(
        "lock_pairs",
        "pairs/s",
        false,
        "lock/unlock pairs per second from 2 contending workers (a lock's permit is never lent)",
    );
    let lock = offspring::Lock::new()?;
    for _ in 0..settings.samples {
        let started = Instant::now();
        pool.map_chunked(lock_pairs, vec![(lock.clone(), rounds); 2], 1)?;
        sample(
            "lock_pairs",
            (2 * rounds) as f64 / started.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(target_os = "linux")]
mod floor {
    //! The floor: what raw `std` Unix sockets between this process and a child allow.
    //!
    //! - `floor.task_round_trip`: a ping-pong of 8 bytes, the least a round trip can cost.
    //! - `floor.payload_64mib`: 64 MiB written to the child, which reads all of it and writes
    //!   it back, as a worker decodes a whole argument before it answers. Both buffers are
    //!   allocated before the clock starts.

    use std::io::{Read, Write};
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    use std::process::Child;
    use std::time::Instant;

    use super::{Settings, figure, micros, sample};

    const PAYLOAD: usize = 64 * 1024 * 1024;

    /// The child's side: dials `name` and echoes, in `ping` mode every 8 bytes at once, in
    /// `bulk` mode every [`PAYLOAD`] bytes once all of them have arrived.
    pub(super) fn child(name: &str, mode: &str) {
        let Ok(addr) = SocketAddr::from_abstract_name(name) else {
            return;
        };
        let Ok(mut stream) = UnixStream::connect_addr(&addr) else {
            return;
        };
        let mut buf = vec![0u8; if mode == "bulk" { PAYLOAD } else { 8 }];
        while stream.read_exact(&mut buf).is_ok() {
            if stream.write_all(&buf).is_err() {
                return;
            }
        }
    }

    /// A floor child, killed and reaped when dropped, whatever the measurement did.
    struct Peer {
        child: Child,
        stream: UnixStream,
    }

    impl Drop for Peer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start(mode: &str) -> Option<Peer> {
        let name = format!("offspring-bench-floor-{mode}-{}", std::process::id());
        let listener =
            SocketAddr::from_abstract_name(&name).and_then(|addr| UnixListener::bind_addr(&addr));
        let Ok(listener) = listener else {
            eprintln!("bench: cannot bind the floor socket");
            return None;
        };
        let exe = std::env::current_exe().ok()?;
        let Ok(mut child) = std::process::Command::new(exe)
            .args(["--floor-child", &name, mode])
            .spawn()
        else {
            eprintln!("bench: cannot start the floor child");
            return None;
        };
        match listener.accept() {
            Ok((stream, _)) => Some(Peer { child, stream }),
            Err(err) => {
                eprintln!("bench: the floor child did not connect: {err}");
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    pub(super) fn measure(settings: &Settings) {
        round_trip(settings);
        payload(settings);
    }

    fn round_trip(settings: &Settings) {
        figure(
            "floor.task_round_trip",
            "us",
            true,
            "raw std Unix-socket ping-pong of 8 bytes between two processes",
        );
        let Some(mut peer) = start("ping") else {
            return;
        };
        let mut buf = [0u8; 8];
        for _ in 0..settings.samples {
            let started = Instant::now();
            for i in 0..settings.round_trips {
                buf.copy_from_slice(&(i as u64).to_le_bytes());
                if peer.stream.write_all(&buf).is_err() || peer.stream.read_exact(&mut buf).is_err()
                {
                    return;
                }
            }
            sample(
                "floor.task_round_trip",
                micros(started.elapsed()) / settings.round_trips as f64,
            );
        }
    }

    fn payload(settings: &Settings) {
        figure(
            "floor.payload_64mib",
            "MiB/s",
            false,
            "raw std Unix socket: 64 MiB to a child and back (MiB moved per second, both ways)",
        );
        let Some(mut peer) = start("bulk") else {
            return;
        };
        let payload = vec![7u8; PAYLOAD];
        let mut back = vec![0u8; PAYLOAD];
        for _ in 0..settings.samples.min(5) {
            let started = Instant::now();
            if peer.stream.write_all(&payload).is_err()
                || peer.stream.read_exact(&mut back).is_err()
            {
                return;
            }
            sample(
                "floor.payload_64mib",
                128.0 / started.elapsed().as_secs_f64(),
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod floor {
    //! The floor is measured on Linux only (abstract Unix sockets).

    use super::Settings;

    pub(super) fn child(_name: &str, _mode: &str) {}

    pub(super) fn measure(_settings: &Settings) {}
}
