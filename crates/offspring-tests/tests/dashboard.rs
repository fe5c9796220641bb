//! The live view against its real server, over real TCP: the token is required on every
//! path, its data agrees with `PoolCounters` while a `map` runs, a killed worker shows up as a
//! death with its error, and 200 idle, half-spoken or garbled connections change neither a
//! pool's results nor its shutdown. The view is one per process, so the tests take turns (`TURN`) and each reads
//! the newest pool of the document, its own.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use offspring::{Event, Pool, Queue};
use serde_json::Value;

offspring::test_support!();

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[offspring::task]
fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(3));
    n * n
}

#[offspring::task]
fn square(n: u64) -> u64 {
    n * n
}

/// Says its pid, then waits for `go` (a call that is running when its worker is killed).
#[offspring::task]
fn hold(pids: Queue<u32>, go: Event) -> u32 {
    let _ = pids.put(&std::process::id());
    go.wait_timeout(Duration::from_secs(60));
    std::process::id()
}

/// The view's address and token, from a pool's URL.
fn view(pool: &Pool) -> (SocketAddr, String) {
    let url = pool
        .dashboard_url()
        .expect("a pool built with a dashboard has a URL");
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (addr, query) = rest.split_once("/?token=").expect("a token in the URL");
    (addr.parse().expect("a socket address"), query.to_owned())
}

/// One HTTP/1.1 request; the status and the body.
fn try_request(addr: SocketAddr, method: &str, target: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, text.clone());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

fn request(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    try_request(addr, method, target).expect("an HTTP response")
}

/// The newest pool of the view's data.
fn newest_pool(addr: SocketAddr, token: &str) -> Value {
    let (status, body) = request(addr, "GET", &format!("/data?token={token}"));
    assert_eq!(status, 200, "{body}");
    let document: Value = serde_json::from_str(&body).expect("the data is JSON");
    document["pools"]
        .as_array()
        .and_then(|pools| pools.last())
        .cloned()
        .expect("at least one pool")
}

fn number(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is a number in {value}"))
}

fn dashboard_pool(processes: usize) -> Pool {
    Pool::builder()
        .processes(processes)
        .dashboard("127.0.0.1:0")
        .build()
        .expect("a pool with a dashboard")
}

#[test]
fn the_page_and_its_data_need_the_token() {
    let _turn = turn();
    let pool = dashboard_pool(1);
    assert_eq!(pool.apply(square, 7).expect("a call"), 49);
    let (addr, token) = view(&pool);
    assert_eq!(token.len(), 32);

    let (status, page) = request(addr, "GET", &format!("/?token={token}"));
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>offspring: live view</title>"),
        "{page}"
    );
    let (status, data) = request(addr, "GET", &format!("/data?token={token}"));
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&data).expect("JSON");
    assert_eq!(
        document["pid"].as_u64(),
        Some(u64::from(std::process::id()))
    );

    // The token with its last character changed.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..31]);
    for target in [
        "/".to_owned(),
        "/data".to_owned(),
        format!("/data?token={wrong}"),
        format!("/?token={}", &token[..31]),
        format!("/?xtoken={token}"),
        "/favicon.ico".to_owned(),
    ] {
        let (status, body) = request(addr, "GET", &target);
        assert_eq!(status, 403, "{target}: {body}");
        assert!(!body.contains("pools"), "{target}: {body}");
    }
    assert_eq!(
        request(addr, "GET", &format!("/nothing?token={token}")).0,
        404
    );
    assert_eq!(
        request(addr, "POST", &format!("/data?token={token}")).0,
        405
    );

    // A pool without the view has no URL, and the view goes on without it.
    let plain = Pool::new(1).expect("a plain pool");
    if std::env::var_os("OFFSPRING_DASHBOARD").is_none() {
        assert_eq!(plain.dashboard_url(), None);
    }
}

#[test]
fn the_data_agrees_with_the_counters_while_a_map_runs() {
    let _turn = turn();
    let pool = dashboard_pool(2);
    let (addr, token) = view(&pool);
    const CALLS: u64 = 600;
    let result = pool.map_async(slow_square, 0..CALLS);
    let mut live_samples = 0;
    while !result.ready() {
        let before = pool.counters();
        let seen = newest_pool(addr, &token);
        let after = pool.counters();
        let counters = &seen["counters"];
        let done = number(counters, "done");
        assert!(
            (before.done..=after.done).contains(&done),
            "{before:?} {counters} {after:?}"
        );
        let batches = number(counters, "batches");
        assert!((before.batches..=after.batches).contains(&batches));
        if done > 0 && done < CALLS {
            live_samples += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let values = result.get().expect("the map");
    assert_eq!(values, (0..CALLS).map(|n| n * n).collect::<Vec<_>>());
    assert!(live_samples > 0, "no sample caught the map running");

    // Once the map is over, every figure is the counters' own.
    let counters = pool.counters();
    let seen = newest_pool(addr, &token);
    let shown = &seen["counters"];
    for (key, value) in [
        ("queued", counters.queued),
        ("running", counters.running),
        ("done", counters.done),
        ("failed", counters.failed),
        ("restarted", counters.restarted),
        ("spawned", counters.spawned),
        ("died_running", counters.died_running),
        ("batches", counters.batches),
    ] {
        assert_eq!(number(shown, key), value, "{key}: {shown}");
    }
    let workers = seen["workers"].as_array().expect("workers");
    let live: Vec<&Value> = workers.iter().filter(|w| w["ended"].is_null()).collect();
    assert_eq!(live.len() as u64, counters.spawned, "{workers:?}");
    let by_workers: u64 = workers.iter().map(|w| number(w, "calls_done")).sum();
    assert_eq!(by_workers, CALLS);
    let in_slices: u64 = seen["slices"]
        .as_array()
        .expect("slices")
        .iter()
        .map(|s| number(s, "calls"))
        .sum();
    assert_eq!(in_slices, CALLS);
    println!(
        "{live_samples} live samples; {} calls/s over the last 5 s; {} slices",
        seen["calls_per_second"],
        seen["slices"].as_array().map_or(0, Vec::len)
    );
}

#[cfg(unix)]
#[test]
fn a_killed_worker_shows_as_a_death_with_its_error() {
    let _turn = turn();
    let pool = dashboard_pool(2);
    let (addr, token) = view(&pool);
    let pids = Queue::new().expect("a queue");
    let go = Event::new().expect("an event");
    let call = pool.apply_async(hold, (pids.clone(), go.clone()));
    let victim = pids
        .get_timeout(Duration::from_secs(30))
        .expect("the call's pid");
    let busy = newest_pool(addr, &token);
    let row = busy["workers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| number(w, "pid") == u64::from(victim)))
        .cloned()
        .expect("the running worker is listed");
    assert_eq!(row["state"], "busy", "{row}");
    assert!(
        row["task"].as_str().is_some_and(|t| t.ends_with("hold")),
        "{row}"
    );

    assert!(offspring_tests::signal(victim, libc::SIGKILL));
    let error = call.get().expect_err("the call dies with its worker");
    assert!(
        matches!(error, offspring::Error::WorkerDied { .. }),
        "{error}"
    );

    let mut seen = Value::Null;
    let replaced = offspring_tests::wait_until(Duration::from_secs(30), || {
        seen = newest_pool(addr, &token);
        let workers = seen["workers"].as_array().cloned().unwrap_or_default();
        workers.iter().filter(|w| w["ended"].is_null()).count() == 2
            && workers
                .iter()
                .any(|w| w["pid"].as_u64() == Some(u64::from(victim)) && w["state"] == "died")
            && seen["failures"].as_array().is_some_and(|f| !f.is_empty())
    });
    assert!(replaced.is_some(), "no replacement shown: {seen}");
    let workers = seen["workers"].as_array().expect("workers");
    let dead = workers
        .iter()
        .find(|w| number(w, "pid") == u64::from(victim))
        .expect("the dead worker is still listed");
    assert_eq!(dead["state"], "died", "{dead}");
    assert_eq!(number(dead, "deaths"), 1);
    assert_eq!(number(dead, "calls_failed"), 1);
    let exit = dead["exit"].as_str().expect("an exit text");
    assert!(
        exit.contains("SIGKILL") || exit.contains("signal: 9"),
        "{exit}"
    );
    let lane = number(dead, "lane");
    let heir = workers
        .iter()
        .find(|w| w["ended"].is_null() && number(w, "lane") == lane)
        .expect("a worker took the dead one's lane");
    assert_eq!(
        (number(heir, "deaths"), number(heir, "restarts")),
        (1, 1),
        "{heir}"
    );
    let failure = &seen["failures"][0];
    assert_eq!(number(failure, "pid"), u64::from(victim));
    let text = failure["error"].as_str().expect("an error text");
    assert!(text.contains("died"), "{text}");
    assert_eq!(number(&seen["counters"], "died_running"), 1);
    println!("the death showed after {replaced:?}: {text}");
    go.set();
}

#[test]
fn idle_connections_change_neither_results_nor_shutdown() {
    let _turn = turn();
    let pool = dashboard_pool(2);
    let (addr, token) = view(&pool);
    // 200 connections: most say nothing, some send half a request head and stop, some send
    // bytes that are no HTTP at all.
    let crowd: Vec<TcpStream> = (0..200)
        .map(|n| {
            let mut stream =
                TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
            let _ = match n % 4 {
                1 => stream.write_all(format!("GET /data?token={token} HTTP/1.1\r\nHo").as_bytes()),
                2 => stream.write_all(&[0xff, 0x00, 0x13, 0x37, b'\n', b'\n']),
                _ => Ok(()),
            };
            stream
        })
        .collect();
    let started = Instant::now();
    let values = pool.map(square, 0..20_000u64).expect("the map");
    let mapped = started.elapsed();
    assert_eq!(values, (0..20_000u64).map(|n| n * n).collect::<Vec<_>>());
    assert_eq!(pool.counters().done, 20_000);
    let started = Instant::now();
    pool.close();
    pool.join().expect("join");
    let joined = started.elapsed();
    assert!(joined < Duration::from_secs(10), "join took {joined:?}");
    drop(pool);
    drop(crowd);
    // The view serves again once the crowd is gone.
    let mut status = 0;
    let answered = offspring_tests::wait_until(Duration::from_secs(20), || {
        status = try_request(addr, "GET", &format!("/data?token={token}")).map_or(0, |r| r.0);
        status == 200
    });
    assert!(
        answered.is_some(),
        "the view did not answer again: {status}"
    );
    println!(
        "with 200 idle connections: map {mapped:?}, join {joined:?}; view back after {answered:?}"
    );
}

/// Builds a pool of its own, as a task may, and uses it.
#[offspring::task]
fn nested_pool() -> Result<u64, String> {
    let pool = Pool::new(1).map_err(|e| e.to_string())?;
    pool.apply(square, 9).map_err(|e| e.to_string())
}

#[test]
fn workers_inheriting_offspring_dashboard_build_their_own_pools_without_a_view() {
    let _turn = turn();
    // The parent's view holds the address; a worker that tried to serve there too could not
    // bind, and its pool would fail to build.
    let pool = dashboard_pool(1);
    let (addr, _) = view(&pool);
    let workers = offspring::__private::with_worker_env(
        Pool::builder().processes(1),
        "OFFSPRING_DASHBOARD",
        &addr.to_string(),
    )
    .build()
    .expect("a pool");
    assert_eq!(workers.apply(nested_pool, ()).expect("the call"), Ok(81));
}
