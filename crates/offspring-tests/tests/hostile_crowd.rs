//! Crowds of strangers on a live pool's socket: a thousand silent connections at once, a
//! thousand hellos for workers nobody expects, a thousand half-sent hellos, and 2 000
//! connections opened and closed in a row. Each is refused or dropped within a bounded time,
//! the parent's memory and descriptors stay bounded, a killed worker is replaced while the
//! crowd waits, and the pool's own calls keep completing throughout.
//!
//! A test binary of its own: it counts this process's descriptors and memory, and it runs
//! the parent at the common default limit of 1 024 descriptors (the crowd itself is another
//! process, `crowd`, with its own limit), so strangers could starve the parent of descriptors
//! if nothing bounded them.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use offspring::Pool;
use offspring_coordinator::MAX_STRANGERS;
use offspring_tests::{open_fds, status_kib};
use offspring_wire::{ClientHello, PROTOCOL_VERSION, encode};

offspring::test_support!();

/// The descriptor limit the parent runs at here: the usual default soft limit.
const PARENT_FDS: u64 = 1024;
/// Strangers per crowd.
const CROWD: usize = 1_000;
/// Connections opened and closed in a row.
const CHURN: usize = 2_000;
/// How much the parent's resident set may grow over all the crowds.
const RSS_BOUND_KIB: u64 = 64 * 1024;
/// How long the parent may keep a silent stranger (its handshake timeout is 5 s).
const DROP_BOUND: Duration = Duration::from_secs(20);

#[offspring::task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[offspring::task]
fn inc(n: u64) -> u64 {
    n + 1
}

fn limit_descriptors(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct we pass, which lives for
    // the duration of the calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// The parent's socket name, as any local process could find it.
fn socket_name() -> String {
    let names = offspring_tests::abstract_sockets(&format!("offspring-{}-", std::process::id()));
    assert_eq!(names.len(), 1, "expected one listener, found {names:?}");
    names[0].clone()
}

/// Samples this process's descriptors and resident set every 10 ms until stopped; the peaks.
struct Peaks {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, u64)>,
}

impl Peaks {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut fds, mut rss) = (0, 0);
            while !stopping.load(Ordering::SeqCst) {
                fds = fds.max(open_fds());
                rss = rss.max(status_kib("VmRSS"));
                std::thread::sleep(Duration::from_millis(10));
            }
            (fds, rss)
        });
        Self { stop, thread }
    }

    fn stop(self) -> (usize, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("sampler")
    }
}

/// Calls made one after another on a thread of their own while the crowds come and go: how
/// many completed, and the longest wait for one.
struct Steady {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Duration)>,
}

impl Steady {
    fn start(pool: &Pool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let pool = pool.clone();
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut done = 0;
            let mut longest = Duration::ZERO;
            while !stopping.load(Ordering::SeqCst) {
                let started = Instant::now();
                assert_eq!(pool.apply(inc, done).expect("a steady call"), done + 1);
                longest = longest.max(started.elapsed());
                done += 1;
            }
            (done, longest)
        });
        Self { stop, thread }
    }

    fn stop(self) -> (u64, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("steady calls")
    }
}

/// What the crowd helper reported.
#[derive(Debug)]
struct CrowdReport {
    opened: usize,
    failed: usize,
    open_ms: u64,
    closed: usize,
    fast: usize,
    last_ms: u64,
    still_open: usize,
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// Starts a crowd of `CROWD` strangers each writing `payload`; `during` runs once they are
/// all connected, and the crowd's report comes back when the parent has closed them all.
fn crowd<T>(name: &str, payload: &[u8], during: impl FnOnce() -> T) -> (CrowdReport, T) {
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crowd"))
        .arg(name)
        .arg(CROWD.to_string())
        .arg(hex)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the crowd");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let connected = lines
        .next()
        .and_then(Result::ok)
        .expect("the crowd connected");
    let during = during();
    let closed = lines.next().and_then(Result::ok).expect("the crowd ended");
    let status = child.wait().expect("reap the crowd");
    assert!(status.success(), "crowd: {status}");
    let report = CrowdReport {
        opened: field(&connected, "n") as usize,
        failed: field(&connected, "failed") as usize,
        open_ms: field(&connected, "ms"),
        closed: field(&closed, "n") as usize,
        fast: field(&closed, "fast") as usize,
        last_ms: field(&closed, "last_ms"),
        still_open: field(&closed, "open") as usize,
    };
    (report, during)
}

fn print_crowd(what: &str, report: &CrowdReport) {
    println!(
        "{what}: {} connected in {} ms ({} refused at connect); the parent closed {} ({} within 1 s, \
         the last after {} ms); {} left open",
        report.opened,
        report.open_ms,
        report.failed,
        report.closed,
        report.fast,
        report.last_ms,
        report.still_open
    );
}

fn hello(worker_id: u64) -> Vec<u8> {
    encode(&ClientHello {
        protocol: PROTOCOL_VERSION,
        worker_id,
        pid: std::process::id(),
        nonce: [7; 32],
        build_id: [0; 32],
        table_id: [0; 32],
    })
    .expect("encode a hello")
}

#[test]
fn crowds_of_strangers_are_dropped_while_the_pool_works_and_replaces_a_killed_worker() {
    limit_descriptors(PARENT_FDS);
    // Retries, so the steady calls ride over the worker killed below.
    let pool = Pool::builder()
        .processes(2)
        .retries(2)
        .build()
        .expect("a pool");
    let pids: HashSet<u32> = pool
        .map_chunked(worker_pid, vec![(); 20], 1)
        .expect("pids")
        .into_iter()
        .collect();
    let name = socket_name();
    let steady = Steady::start(&pool);
    let peaks = Peaks::start();
    // Measured with the helper threads running, so that their own descriptors and stacks are
    // in the starting figures.
    let (rss, fds) = (status_kib("VmRSS"), open_fds());

    // A thousand silent strangers; while they wait, a worker is killed and must be replaced.
    let victim = *pids.iter().next().expect("a worker");
    let (silent, replaced) = crowd(&name, &[], || {
        let restarted = pool.counters().restarted;
        let started = Instant::now();
        assert!(offspring_tests::signal(victim, libc::SIGKILL));
        let values = pool
            .map_chunked(inc, 0..100u64, 1)
            .expect("calls while the crowd waits");
        assert_eq!(values, (1..=100).collect::<Vec<u64>>());
        let back = offspring_tests::wait_until(Duration::from_secs(30), || {
            pool.counters().restarted > restarted && pool.counters().spawned >= 3
        });
        (started.elapsed(), back)
    });
    print_crowd("1 000 silent strangers", &silent);
    println!(
        "a worker killed while they waited: replaced and 100 calls done after {:?}",
        replaced.0
    );
    assert!(
        replaced.1.is_some(),
        "no replacement: {:?}",
        pool.counters()
    );
    assert_eq!(silent.opened + silent.failed, CROWD);
    assert_eq!(silent.still_open, 0, "{silent:?}");
    assert!(
        Duration::from_millis(silent.last_ms) < DROP_BOUND,
        "{silent:?}"
    );
    assert!(
        silent.fast >= CROWD - MAX_STRANGERS,
        "strangers beyond the cap are closed at once: {silent:?}"
    );
    // The replacement was not held up by the crowd: it was up before the parent's handshake
    // timeout released the strangers it kept.
    assert!(replaced.0 < Duration::from_secs(5), "{replaced:?}");

    // Hellos for a worker nobody expects are refused as soon as they are read.
    let (unknown, ()) = crowd(&name, &hello(u64::MAX), || {});
    print_crowd("1 000 hellos for an unknown worker", &unknown);
    assert_eq!(unknown.still_open, 0, "{unknown:?}");
    assert!(
        Duration::from_millis(unknown.last_ms) < DROP_BOUND,
        "{unknown:?}"
    );

    // Half a hello, then silence: kept until the handshake times out at most.
    let half = hello(1);
    let (partial, ()) = crowd(&name, &half[..half.len() / 2], || {});
    print_crowd("1 000 half-sent hellos", &partial);
    assert_eq!(partial.still_open, 0, "{partial:?}");
    assert!(
        Duration::from_millis(partial.last_ms) < DROP_BOUND,
        "{partial:?}"
    );
    assert!(partial.fast >= CROWD - MAX_STRANGERS, "{partial:?}");

    // Connect and close, again and again.
    let addr = SocketAddr::from_abstract_name(&name).expect("an abstract address");
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..CHURN {
        match UnixStream::connect_addr(&addr) {
            Ok(stream) => drop(stream),
            Err(_) => refused += 1,
        }
    }
    let churned = started.elapsed();
    let settled = offspring_tests::wait_until(DROP_BOUND, || open_fds() <= fds);
    println!(
        "{CHURN} connections opened and closed in {churned:?} ({refused} refused); descriptors \
         {fds} -> {} after {settled:?}",
        open_fds()
    );
    assert!(settled.is_some(), "descriptors {fds} -> {}", open_fds());

    let (done, longest) = steady.stop();
    let (peak_fds, peak_rss) = peaks.stop();
    let rss_after = status_kib("VmRSS");
    println!(
        "steady calls meanwhile: {done}, the longest {longest:?}; descriptors {fds} at the start, \
         {peak_fds} at the peak; VmRSS {rss} -> {rss_after} KiB (peak sampled {peak_rss} KiB); \
         counters {:?}",
        pool.counters()
    );
    assert!(done > 0);
    // The strangers the parent keeps are capped, whatever the size of the crowd (a few more
    // for the replacement worker's start and connections being closed).
    assert!(
        peak_fds <= fds + MAX_STRANGERS + 16,
        "descriptors {fds} -> {peak_fds} at the peak"
    );
    assert!(
        longest < Duration::from_secs(5),
        "a call waited {longest:?}"
    );
    assert!(
        rss_after.saturating_sub(rss) < RSS_BOUND_KIB,
        "VmRSS {rss} -> {rss_after} KiB"
    );
    assert_eq!(pool.apply(inc, 41).expect("the pool still works"), 42);
}
