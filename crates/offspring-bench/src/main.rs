//! The benchmark program `cargo xtask bench` runs. It measures offspring next to the floor
//! the OS allows (a raw `std` Unix-socket ping-pong between two processes, measured in the
//! same run) and prints tab-separated lines that xtask turns into a table:
//!
//! - `figure\t<id>\t<unit>\t<lower_is_better>\t<description>`
//! - `sample\t<id>\t<value>`
//! - `ratio\t<a>\t<b>\t<op>\t<target>\t<description>` (median(a) / median(b) against target)
//!
//! Run it through `cargo xtask bench [--quick] [--json]`; `--quick` takes fewer samples.

use std::time::{Duration, Instant};

#[offspring::task]
fn nothing() {}

#[offspring::task]
fn echo_bytes(payload: Vec<u8>) -> Vec<u8> {
    payload
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

fn figure(id: &str, unit: &str, lower_is_better: bool, description: &str) {
    println!(
        "figure\t{id}\t{unit}\t{}\t{description}",
        u8::from(lower_is_better)
    );
}

fn sample(id: &str, value: f64) {
    println!("sample\t{id}\t{value}");
}

fn ratio(a: &str, b: &str, op: &str, target: f64, description: &str) {
    println!("ratio\t{a}\t{b}\t{op}\t{target}\t{description}");
}

fn main() -> offspring::Result<()> {
    offspring::init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--floor-child") {
        floor::child(args.get(2).map(String::as_str).unwrap_or_default());
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
    drop(pool);

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

    figure(
        "map_throughput_auto",
        "items/s",
        false,
        "map of trivial items on 2 workers, automatic chunk size",
    );
    for _ in 0..settings.samples {
        let started = Instant::now();
        pool.map(nothing, vec![(); settings.map_items])?;
        sample(
            "map_throughput_auto",
            settings.map_items as f64 / started.elapsed().as_secs_f64(),
        );
    }
    for chunk in [64, 1024, 8192] {
        let id = format!("map_throughput_chunk_{chunk}");
        figure(
            &id,
            "items/s",
            false,
            &format!("map of trivial items on 2 workers, chunk size {chunk}"),
        );
        for _ in 0..settings.samples {
            let started = Instant::now();
            pool.map_chunked(nothing, vec![(); settings.map_items], chunk)?;
            sample(
                &id,
                settings.map_items as f64 / started.elapsed().as_secs_f64(),
            );
        }
    }

    figure(
        "payload_64mib",
        "MiB/s",
        false,
        "64 MiB argument to a worker and back (MiB moved per second, both ways)",
    );
    let payload = vec![7u8; 64 * 1024 * 1024];
    for _ in 0..settings.samples.min(5) {
        let started = Instant::now();
        let back = pool.apply(echo_bytes, payload.clone())?;
        let took = started.elapsed();
        assert_eq!(back.len(), payload.len());
        sample("payload_64mib", 128.0 / took.as_secs_f64());
    }

    figure(
        "idle_worker_rss",
        "KiB",
        true,
        "resident memory of an idle worker",
    );
    for _ in 0..settings.samples.min(3) {
        sample("idle_worker_rss", pool.apply(worker_rss_kib, ())? as f64);
    }

    primitives(&pool, &settings)?;

    ratio(
        "task_round_trip",
        "floor_round_trip",
        "<=",
        3.0,
        "task round trip within 3x of the raw socket floor",
    );
    Ok(())
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
    for _ in 0..settings.samples {
        let started = Instant::now();
        pool.map_chunked(semaphore_pairs, vec![(sem.clone(), rounds); 2], 1)?;
        sample(
            "semaphore_pairs",
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
    //! The floor: a raw `std` Unix-socket ping-pong between this process and a child.

    use std::io::{Read, Write};
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    use std::time::Instant;

    use super::{Settings, figure, micros, sample};

    pub(super) fn child(name: &str) {
        let Ok(addr) = SocketAddr::from_abstract_name(name) else {
            return;
        };
        let Ok(mut stream) = UnixStream::connect_addr(&addr) else {
            return;
        };
        let mut buf = [0u8; 8];
        while stream.read_exact(&mut buf).is_ok() {
            if stream.write_all(&buf).is_err() {
                return;
            }
        }
    }

    pub(super) fn measure(settings: &Settings) {
        figure(
            "floor_round_trip",
            "us",
            true,
            "raw std Unix-socket ping-pong of 8 bytes between two processes",
        );
        let name = format!("offspring-bench-floor-{}", std::process::id());
        let listener =
            SocketAddr::from_abstract_name(&name).and_then(|addr| UnixListener::bind_addr(&addr));
        let Ok(listener) = listener else {
            eprintln!("bench: cannot bind the floor socket");
            return;
        };
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let Ok(mut child) = std::process::Command::new(exe)
            .args(["--floor-child", &name])
            .spawn()
        else {
            eprintln!("bench: cannot start the floor child");
            return;
        };
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 8];
            for _ in 0..settings.samples {
                let started = Instant::now();
                for i in 0..settings.round_trips {
                    buf.copy_from_slice(&(i as u64).to_le_bytes());
                    if stream.write_all(&buf).is_err() || stream.read_exact(&mut buf).is_err() {
                        break;
                    }
                }
                sample(
                    "floor_round_trip",
                    micros(started.elapsed()) / settings.round_trips as f64,
                );
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(not(target_os = "linux"))]
mod floor {
    //! The floor is measured on Linux only (abstract Unix sockets).

    use super::Settings;

    pub(super) fn child(_name: &str) {}

    pub(super) fn measure(_settings: &Settings) {}
}
