//! Workers over TCP on the loopback, the path of workers on other machines: sealed frames,
//! heartbeats, no shared memory, no peer pid. Real worker processes started through the
//! test launcher `Loopback` (plain commands that dial back over TCP), real strangers on the
//! parent's TCP port, and a relay that records and tampers with a sealed connection.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use offspring::__private::{ENV_TEST_CORRUPT_SEALED, Loopback, coordinator_tcp_endpoint};
use offspring::{Error, Event, Pool, Queue, SharedBytes};
use offspring_transport::seal::{Role, derive};
use offspring_transport::{
    BuildIdentity, Endpoint, Expected, HandshakeError, Listener, Secret, accept_handshake, connect,
    connect_handshake,
};
use offspring_wire::{ClientHello, PROTOCOL_VERSION, WorkerConfig, encode};

offspring::test_support!();

const LISTEN: &str = "127.0.0.1:0";

#[offspring::task]
fn triple(n: u64) -> u64 {
    n * 3
}

#[offspring::task]
fn host_and_pid(_: ()) -> (String, u32) {
    (offspring_transport::sys::hostname(), std::process::id())
}

#[offspring::task]
fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

#[offspring::task]
fn wait_and_put(args: (Event, Queue<u64>)) -> u64 {
    let (event, queue) = args;
    event.wait();
    queue.put(&7).map(|()| 7).unwrap_or(0)
}

#[offspring::task]
fn len_of(bytes: SharedBytes) -> usize {
    bytes.len()
}

#[offspring::task]
fn abort_now(_: ()) -> u64 {
    std::process::abort()
}

fn tcp_pool(processes: usize) -> offspring::Result<Pool> {
    Pool::builder()
        .processes(processes)
        .launcher(Loopback)
        .listen(LISTEN)
        .build()
}

fn tcp_address() -> String {
    match coordinator_tcp_endpoint(Some(LISTEN)).expect("the TCP listener") {
        Endpoint::Tcp(address) => address,
        other => panic!("not a TCP endpoint: {other:?}"),
    }
}

#[test]
fn a_pool_over_tcp_runs_map_apply_async_callbacks_and_primitives() -> offspring::Result<()> {
    let pool = tcp_pool(2)?;
    assert_eq!(
        pool.map(triple, 0..1000u64)?,
        (0..1000).map(|n| n * 3).collect::<Vec<_>>()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let results: Vec<_> = (0..20u64)
        .map(|n| {
            let tx = tx.clone();
            pool.apply_async(triple, n).callback(move |v| {
                let _ = tx.send(*v);
            })
        })
        .collect();
    for r in results {
        r.get()?;
    }
    let mut seen: Vec<u64> = (0..20).map(|_| rx.recv().expect("a callback")).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).map(|n| n * 3).collect::<Vec<_>>());
    // A large value is sealed across many records, both ways.
    let big: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    let began = Instant::now();
    assert_eq!(pool.apply(echo, big.clone())?, big);
    println!(
        "9 MB there and back over sealed TCP in {:?}",
        began.elapsed()
    );
    // Primitives are messages: they work from a worker over TCP.
    let event = Event::new()?;
    let queue = Queue::<u64>::new()?;
    let waiting = pool.apply_async(wait_and_put, (event.clone(), queue.clone()));
    event.set();
    assert_eq!(waiting.get()?, 7);
    assert_eq!(queue.get()?, 7);
    // The workers are other processes and say where they run.
    let (host, pid) = pool.apply(host_and_pid, ())?;
    assert_ne!(pid, std::process::id());
    assert_eq!(host, offspring_transport::sys::hostname());
    Ok(())
}

#[test]
fn shared_memory_passed_to_a_remote_worker_is_a_clear_error() -> offspring::Result<()> {
    let pool = tcp_pool(1)?;
    let shared = SharedBytes::from_vec(vec![1, 2, 3])?;
    let err = pool
        .apply(len_of, shared)
        .expect_err("shared memory reached a remote worker");
    assert!(
        err.to_string().contains("another machine"),
        "unclear error: {err}"
    );
    assert_eq!(pool.apply(triple, 2)?, 6, "the worker goes on");
    Ok(())
}

#[test]
fn an_aborting_remote_worker_fails_only_its_call_and_is_replaced() -> offspring::Result<()> {
    let pool = tcp_pool(1)?;
    let (_, first) = pool.apply(host_and_pid, ())?;
    match pool.apply(abort_now, ()) {
        Err(Error::WorkerDied { host, .. }) => {
            assert_eq!(
                host.as_deref(),
                Some(offspring_transport::sys::hostname().as_str())
            );
        }
        other => panic!("an abort gave {other:?}"),
    }
    let (_, second) = pool.apply(host_and_pid, ())?;
    assert_ne!(first, second, "the dead worker was not replaced");
    Ok(())
}

#[test]
fn a_sealed_frame_altered_on_the_way_is_that_workers_death() -> offspring::Result<()> {
    // The worker flips a bit in its third sealed write: the host, the first heartbeat or a
    // report, whichever comes third. The parent cannot open it and ends the worker.
    let pool = offspring::__private::with_worker_env(
        Pool::builder()
            .processes(1)
            .launcher(Loopback)
            .listen(LISTEN),
        ENV_TEST_CORRUPT_SEALED,
        "2",
    )
    .build()?;
    let began = Instant::now();
    let mut died = 0;
    for n in 0..4u64 {
        match pool.apply(triple, n) {
            Ok(v) => assert_eq!(v, n * 3),
            Err(Error::WorkerDied { .. }) => died += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    // Each replacement corrupts its own third write too: every worker dies once it has
    // written three times, and no altered frame is ever taken as a value.
    println!(
        "{died} of 4 calls met a tampered connection, in {:?}",
        began.elapsed()
    );
    assert!(died >= 1, "no call met the tampered connection");
    Ok(())
}

/// Reads until the parent closes the connection; the time it took.
fn closed_after(mut stream: TcpStream, opened: Instant) -> Duration {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return opened.elapsed(),
            Ok(_) => {}
        }
    }
}

fn hello(worker_id: u64) -> Vec<u8> {
    encode(&ClientHello {
        protocol: PROTOCOL_VERSION,
        worker_id,
        pid: 1,
        nonce: [3; 32],
        build_id: [0; 32],
        table_id: [0; 32],
    })
    .expect("a hello")
}

#[test]
fn strangers_over_tcp_are_dropped_while_real_work_completes() -> offspring::Result<()> {
    let pool = tcp_pool(1)?;
    assert_eq!(pool.apply(triple, 1)?, 3);
    let address = tcp_address();
    let opened = Instant::now();
    let silent = TcpStream::connect(&address).expect("dial");
    let mut garbage = TcpStream::connect(&address).expect("dial");
    garbage.write_all(&[0xff; 64]).expect("write");
    let mut unknown = TcpStream::connect(&address).expect("dial");
    unknown.write_all(&hello(u64::MAX)).expect("write");
    // A real call completes meanwhile.
    assert_eq!(pool.apply(triple, 5)?, 15);
    let garbage = closed_after(garbage, opened);
    let unknown = closed_after(unknown, opened);
    let silent = closed_after(silent, opened);
    println!(
        "garbage dropped in {garbage:?}, unknown worker in {unknown:?}, silence in {silent:?}"
    );
    assert!(garbage < Duration::from_secs(4), "{garbage:?}");
    assert!(unknown < Duration::from_secs(4), "{unknown:?}");
    assert!(silent < Duration::from_secs(15), "{silent:?}");
    Ok(())
}

#[test]
fn a_thousand_silent_tcp_connections_neither_stop_work_nor_a_new_worker() -> offspring::Result<()> {
    let pool = tcp_pool(1)?;
    assert_eq!(pool.apply(triple, 1)?, 3);
    let address = tcp_address();
    // Under Wine every socket costs a round trip to its server: a tenth of the crowd there.
    let size = if std::env::var_os("OFFSPRING_UNDER_WINE").is_some() {
        100
    } else {
        1000
    };
    let crowd: Vec<TcpStream> = (0..size)
        .filter_map(|_| TcpStream::connect(&address).ok())
        .collect();
    println!("{} silent connections open", crowd.len());
    let began = Instant::now();
    assert_eq!(pool.apply(triple, 2)?, 6);
    // A new worker dials while the strangers' places are all taken: it is let in once one
    // is free (a stranger keeps one for the handshake timeout at most).
    let second = tcp_pool(1)?;
    assert_eq!(second.apply(triple, 3)?, 9);
    println!(
        "a new worker served its first call {:?} into the crowd",
        began.elapsed()
    );
    assert!(began.elapsed() < Duration::from_secs(25));
    drop(crowd);
    Ok(())
}

// --- The handshake and the seal, driven from both ends by the test over real TCP. ---

fn identity() -> BuildIdentity {
    BuildIdentity {
        build_id: [1; 32],
        table_id: [2; 32],
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        log_filter: "info".into(),
        segment: None,
        time_calls: false,
        async_concurrency: 1,
        task_timeout_ms: None,
    }
}

fn expected(secret: &Secret) -> Expected {
    Expected {
        secret: secret.clone(),
        pid: None,
        segment: None,
        time_calls: false,
        async_concurrency: 1,
        task_timeout_ms: None,
    }
}

/// A relay between a dialling worker and the listener: it forwards the worker's bytes as
/// they come, handing each chunk to `tamper` first, and records both directions.
async fn relay(
    to: String,
    tamper: impl FnMut(&mut Vec<u8>, usize) + Send + 'static,
) -> (String, tokio::task::JoinHandle<(Vec<u8>, Vec<u8>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let front = tokio::net::TcpListener::bind(LISTEN).await.expect("bind");
    let address = front.local_addr().expect("address").to_string();
    let task = tokio::spawn(async move {
        let (worker, _) = front.accept().await.expect("accept");
        let parent = tokio::net::TcpStream::connect(to).await.expect("dial");
        let (mut wr, mut ww) = worker.into_split();
        let (mut pr, mut pw) = parent.into_split();
        let mut tamper = tamper;
        let up = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match wr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut chunk = buf[..n].to_vec();
                tamper(&mut chunk, seen.len());
                seen.extend_from_slice(&buf[..n]);
                if pw.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = pw.shutdown().await;
            seen
        });
        let mut down_seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match pr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            down_seen.extend_from_slice(&buf[..n]);
            if ww.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = ww.shutdown().await;
        (up.await.unwrap_or_default(), down_seen)
    });
    (address, task)
}

/// A parent that accepts one connection, runs the handshake, then reads frames until the
/// connection ends: the frames it read, and how it ended.
async fn one_parent(listener: Listener, secret: Secret) -> (Vec<Vec<u8>>, Result<(), String>) {
    let conn = listener.accept().await.expect("accept");
    let authed =
        match accept_handshake(conn, |_| Some(expected(&secret)), &identity(), config()).await {
            Ok(authed) => authed,
            Err(e) => return (Vec::new(), Err(e.to_string())),
        };
    let mut conn = authed.conn;
    let mut frames = Vec::new();
    loop {
        match conn.reader.read_frame().await {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, Ok(())),
            Err(e) => return (frames, Err(e.to_string())),
        }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len())
        .expect("short")
        .to_le_bytes()
        .to_vec();
    out.extend_from_slice(body);
    out
}

const MARKER: &[u8] = b"the payload nobody on the network may read: 0123456789abcdef";

/// Runs one worker through the relay: handshake, then `bodies` as frames. What the relay
/// recorded and what the parent got.
async fn through_relay(
    tamper: impl FnMut(&mut Vec<u8>, usize) + Send + 'static,
    bodies: Vec<Vec<u8>>,
) -> (
    (Vec<u8>, Vec<u8>),
    (Vec<Vec<u8>>, Result<(), String>),
    Secret,
) {
    let listener = Listener::bind_tcp(LISTEN.parse().expect("address"), "127.0.0.1")
        .await
        .expect("listen");
    let Endpoint::Tcp(parent_address) = listener.endpoint().clone() else {
        panic!("not TCP");
    };
    let secret = Secret::generate().expect("secret");
    let parent = tokio::spawn(one_parent(listener, secret.clone()));
    let (front, recording) = relay(parent_address, tamper).await;
    let mut conn = connect(&Endpoint::Tcp(front))
        .await
        .expect("dial the relay");
    connect_handshake(&mut conn, 1, &secret, &identity())
        .await
        .expect("the handshake through an honest relay");
    for body in bodies {
        if conn.writer.write_frame(&frame(&body)).await.is_err() {
            break;
        }
    }
    let _ = conn.writer.shutdown().await;
    let got = parent.await.expect("parent");
    drop(conn);
    (recording.await.expect("relay"), got, secret)
}

#[tokio::test]
async fn frames_arrive_sealed_and_recorded_traffic_does_not_open_with_the_secret() {
    let ((up, _down), (frames, end), secret) =
        through_relay(|_, _| {}, vec![MARKER.to_vec(), vec![9u8; 300_000]]).await;
    assert_eq!(end, Ok(()));
    assert_eq!(frames, vec![MARKER.to_vec(), vec![9u8; 300_000]]);
    assert!(
        !up.windows(MARKER.len()).any(|w| w == MARKER),
        "the payload crossed the network in the clear"
    );
    // An eavesdropper who has the secret and the whole recording holds every input of the
    // key schedule but the exchange's result. The hello is the recording's first frame; its
    // public key and the parent's are in it. Try what it can: the public keys, zeros, the
    // secret itself as the exchange's result. Nothing opens the first sealed record.
    let hello_len = u32::from_le_bytes(up[..4].try_into().expect("header")) as usize;
    let hello = &up[4..4 + hello_len];
    let proof_len =
        u32::from_le_bytes(up[4 + hello_len..8 + hello_len].try_into().expect("header")) as usize;
    let sealed = &up[8 + hello_len + proof_len..];
    let record_header: [u8; 4] = sealed[..4].try_into().expect("record header");
    let body_len = offspring_transport::seal::Opener::body_len(record_header).expect("a record");
    let decoded: ClientHello = offspring_wire::decode(hello).expect("the recorded hello");
    let guesses = [decoded.nonce, [0u8; 32], [0xffu8; 32]];
    for guess in guesses {
        for transcript_nonce in guesses {
            let (_, mut opener) =
                derive(&secret, &guess, &[hello, &transcript_nonce], Role::Parent).expect("keys");
            let mut body = sealed[4..4 + body_len].to_vec();
            assert!(
                opener.open(record_header, &mut body).is_err(),
                "recorded traffic opened with the secret alone"
            );
        }
    }
}

#[tokio::test]
async fn one_flipped_byte_in_a_sealed_frame_ends_the_connection_with_a_clear_error() {
    // Flip a byte far past the handshake (its frames are a few hundred bytes).
    let tamper = |chunk: &mut Vec<u8>, offset: usize| {
        let target = 2_000;
        if offset <= target && target < offset + chunk.len() {
            chunk[target - offset] ^= 0x01;
        }
    };
    let (_, (frames, end), _) = through_relay(tamper, vec![vec![5u8; 10_000]; 3]).await;
    assert!(
        frames.is_empty(),
        "a tampered frame was taken: {} frames",
        frames.len()
    );
    let end = end.expect_err("the parent read a tampered stream to its end");
    assert!(end.contains("failed to open"), "{end}");
}

#[tokio::test]
async fn a_handshake_replayed_on_a_new_connection_is_refused() {
    // Record an honest worker's handshake, then send its first bytes again on a connection
    // of our own: the parent's challenge is new, so the recorded proof does not answer it.
    let ((up, _), (_, end), secret) = through_relay(|_, _| {}, vec![b"x".to_vec()]).await;
    assert_eq!(end, Ok(()));
    let listener = Listener::bind_tcp(LISTEN.parse().expect("address"), "127.0.0.1")
        .await
        .expect("listen");
    let Endpoint::Tcp(address) = listener.endpoint().clone() else {
        panic!("not TCP");
    };
    let parent = tokio::spawn(one_parent(listener, secret));
    let mut replay = tokio::net::TcpStream::connect(address).await.expect("dial");
    use tokio::io::AsyncWriteExt;
    // The hello and the proof as recorded, back to back (the proof is its second frame).
    let hello_len = u32::from_le_bytes(up[..4].try_into().expect("header")) as usize;
    let proof_len =
        u32::from_le_bytes(up[4 + hello_len..8 + hello_len].try_into().expect("h")) as usize;
    let _ = replay.write_all(&up[..8 + hello_len + proof_len]).await;
    let (frames, end) = parent.await.expect("parent");
    assert!(frames.is_empty());
    let end = end.expect_err("a replayed handshake was accepted");
    assert!(end.contains("prove"), "{end}");
}

#[tokio::test]
async fn a_record_replayed_from_another_connection_does_not_open() {
    // Record a first connection's sealed bytes; then, on a second honest connection, the
    // relay swaps in the first connection's first sealed record.
    let ((first_up, _), _, _) = through_relay(|_, _| {}, vec![MARKER.to_vec()]).await;
    let hello_len = u32::from_le_bytes(first_up[..4].try_into().expect("header")) as usize;
    let proof_len = u32::from_le_bytes(
        first_up[4 + hello_len..8 + hello_len]
            .try_into()
            .expect("header"),
    ) as usize;
    let handshake = 8 + hello_len + proof_len;
    let old_record = first_up[handshake..].to_vec();
    let mut swapped = false;
    let tamper = move |chunk: &mut Vec<u8>, offset: usize| {
        if !swapped && offset + chunk.len() > handshake {
            let at = handshake.saturating_sub(offset);
            chunk.truncate(at);
            chunk.extend_from_slice(&old_record);
            swapped = true;
        }
    };
    let (_, (frames, end), _) = through_relay(tamper, vec![MARKER.to_vec()]).await;
    assert!(frames.is_empty(), "another connection's record was taken");
    let end = end.expect_err("a foreign record opened");
    assert!(end.contains("failed to open"), "{end}");
}

#[tokio::test]
async fn a_wrong_secret_over_tcp_is_refused() {
    let listener = Listener::bind_tcp(LISTEN.parse().expect("address"), "127.0.0.1")
        .await
        .expect("listen");
    let endpoint = listener.endpoint().clone();
    let parent = tokio::spawn(one_parent(listener, Secret::generate().expect("secret")));
    let mut conn = connect(&endpoint).await.expect("dial");
    let wrong = Secret::generate().expect("secret");
    let worker = connect_handshake(&mut conn, 1, &wrong, &identity()).await;
    assert!(
        matches!(worker, Err(HandshakeError::BadProof)),
        "{worker:?}"
    );
    drop(conn);
    let (_, end) = parent.await.expect("parent");
    assert!(end.is_err());
}

// --- Heartbeats: a peer that stops talking is taken for gone within the bound. ---

#[offspring::task]
fn pid_then_sleep(seconds: u64) -> u32 {
    std::thread::sleep(Duration::from_secs(seconds));
    std::process::id()
}

#[cfg(target_os = "linux")]
fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// A worker that falls silent (stopped, as a vanished node is to the parent) fails its call
/// with `WorkerDied` within the silence limit, and a replacement serves the next.
#[cfg(target_os = "linux")]
#[test]
fn a_silent_worker_is_declared_dead_within_the_bound_and_replaced() -> offspring::Result<()> {
    let pool = tcp_pool(1)?;
    let worker = pool.apply(pid_then_sleep, 0)?;
    let running = pool.apply_async(pid_then_sleep, 120);
    // Wait until the call runs: the pool's counters say so.
    let began = Instant::now();
    while pool.counters().running == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the call never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(worker, "-STOP");
    let stopped = Instant::now();
    match running.get() {
        Err(Error::WorkerDied { .. }) => {}
        other => panic!("a silent worker gave {other:?}"),
    }
    let noticed = stopped.elapsed();
    println!("a silent worker was declared dead after {noticed:?}");
    // At most one heartbeat period (2 s) of the limit may have passed before the stop.
    assert!(
        noticed >= Duration::from_secs(6),
        "declared dead before the bound: {noticed:?}"
    );
    assert!(noticed < Duration::from_secs(20), "{noticed:?}");
    assert_ne!(pool.apply(pid_then_sleep, 0)?, worker, "not replaced");
    Ok(())
}

/// Set to run the ignored test that plays a parent to be stopped.
const ENV_STOPPED_PARENT: &str = "OFFSPRING_TEST_STOPPED_PARENT";

#[test]
#[ignore = "run by a_silent_parent_makes_its_tcp_workers_exit_within_the_bound"]
fn stopped_parent() -> offspring::Result<()> {
    if std::env::var_os(ENV_STOPPED_PARENT).is_none() {
        return Ok(());
    }
    let pool = tcp_pool(2)?;
    pool.apply(pid_then_sleep, 0)?;
    // Both workers connected: the pool counts a worker as spawned once it is.
    let began = Instant::now();
    while pool.counters().spawned < 2 && began.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pids = offspring::active_children();
    println!(
        "workers {}",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::thread::sleep(Duration::from_secs(600));
    Ok(())
}

/// A parent that falls silent (stopped: its connections stay open, so only the heartbeats
/// tell) loses its TCP workers within the silence limit.
#[cfg(target_os = "linux")]
#[test]
fn a_silent_parent_makes_its_tcp_workers_exit_within_the_bound() {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().expect("this test binary");
    let mut parent = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "stopped_parent", "--nocapture"])
        .env(ENV_STOPPED_PARENT, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the parent");
    let stdout = parent.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.strip_prefix("workers ") {
                let workers: Vec<u32> = rest
                    .split_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok())
                    .collect();
                let _ = tx.send(workers);
                return;
            }
        }
    });
    let workers = rx.recv_timeout(Duration::from_secs(90));
    let Ok(workers) = workers else {
        let _ = parent.kill();
        let _ = parent.wait();
        panic!("the parent named no workers");
    };
    assert_eq!(workers.len(), 2, "the parent named {workers:?}");
    signal(parent.id(), "-STOP");
    let stopped = Instant::now();
    while workers.iter().any(|pid| alive(*pid)) {
        assert!(
            stopped.elapsed() < Duration::from_secs(25),
            "workers outlived a silent parent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone = stopped.elapsed();
    signal(parent.id(), "-KILL");
    let _ = parent.wait();
    println!("the workers of a silent parent exited after {gone:?}");
    assert!(
        gone >= Duration::from_secs(6),
        "they left before the bound: {gone:?}"
    );
}

#[test]
fn a_remote_workers_timeline_track_names_its_host() -> offspring::Result<()> {
    let path =
        std::env::temp_dir().join(format!("offspring-tcp-trace-{}.json", std::process::id()));
    let pool = Pool::builder()
        .processes(1)
        .launcher(Loopback)
        .listen(LISTEN)
        .trace(&path)
        .build()?;
    assert_eq!(pool.apply(triple, 4)?, 12);
    pool.close();
    pool.join()?;
    drop(pool);
    let trace = std::fs::read_to_string(&path).expect("the pool's trace");
    let _ = std::fs::remove_file(&path);
    let host = offspring_transport::sys::hostname();
    assert!(
        trace.contains(&format!("on {host}")),
        "no track names the host {host}: {trace}"
    );
    Ok(())
}
