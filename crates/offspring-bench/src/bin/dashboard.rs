//! What the live view costs a pool that is shown in it: `map` of trivial items on a pool of 2
//! with the view on and a client polling its data every [`POLL`] (twenty times as often as
//! the page does), next to the same `map` on a pool without the view, samples taken in turn,
//! each a window of back-to-back maps that spans several polls.
//! Built only with the `dashboard` feature (`cargo xtask bench` builds it so), so that the
//! main bench program measures a build without the view compiled in.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use offspring_bench::{figure, ratio, sample};

/// How often the client asks for the data.
const POLL: Duration = Duration::from_millis(50);

#[offspring::task]
fn nothing() {}

/// One GET over a fresh connection, as a browser's poll without keep-alive; the body's size.
fn get(addr: SocketAddr, target: &str) -> std::io::Result<usize> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("the view did not answer 200"));
    }
    Ok(response.len())
}

/// Items per `map`.
const ITEMS: usize = 50_000;

/// The rate of `map`s of [`ITEMS`] trivial items run one after the other for `window`, so
/// that a sample spans several polls.
fn rate(pool: &offspring::Pool, window: Duration) -> offspring::Result<f64> {
    let started = Instant::now();
    let mut items = 0;
    while started.elapsed() < window {
        pool.map(nothing, vec![(); ITEMS])?;
        items += ITEMS;
    }
    Ok(items as f64 / started.elapsed().as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    offspring::init();
    let quick = std::env::args().any(|a| a == "--quick");
    let (samples, window) = if quick {
        (5, Duration::from_millis(400))
    } else {
        (15, Duration::from_millis(1500))
    };
    let off = offspring::Pool::new(2)?;
    let on = offspring::Pool::builder()
        .processes(2)
        .dashboard("127.0.0.1:0")
        .build()?;
    let url = on.dashboard_url().ok_or("the pool has no live view")?;
    let rest = url.trim_start_matches("http://");
    let (addr, token) = rest.split_once("/?token=").ok_or("a URL without a token")?;
    let addr: SocketAddr = addr.parse()?;
    let data = format!("/data?token={token}");
    get(addr, &format!("/?token={token}"))?;

    let polling = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let request_us = Arc::new(std::sync::Mutex::new(Vec::new()));
    let poller = {
        let (polling, stop, requests, request_us) = (
            Arc::clone(&polling),
            Arc::clone(&stop),
            Arc::clone(&requests),
            Arc::clone(&request_us),
        );
        let data = data.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if polling.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if get(addr, &data).is_ok() {
                        requests.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut times) = request_us.lock() {
                            times.push(started.elapsed().as_secs_f64() * 1e6);
                        }
                    }
                }
                std::thread::sleep(POLL);
            }
        })
    };

    figure(
        "map_view_off",
        "items/s",
        false,
        "map of trivial items on 2 workers, automatic chunks, pool without the live view",
    );
    figure(
        "map_view_on",
        "items/s",
        false,
        "the same map on a pool shown in the live view, its data polled every 50 ms",
    );
    figure(
        "view_data_request",
        "us",
        true,
        "one poll of the live view's data during that map (connect, snapshot, JSON, read)",
    );
    rate(&off, window)?;
    rate(&on, window)?;
    for _ in 0..samples {
        sample("map_view_off", rate(&off, window)?);
        polling.store(true, Ordering::Relaxed);
        sample("map_view_on", rate(&on, window)?);
        polling.store(false, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    let times = request_us.lock().map(|t| t.clone()).unwrap_or_default();
    for us in &times {
        sample("view_data_request", *us);
    }
    eprintln!(
        "dashboard bench: {} polls of the data during the maps",
        requests.load(Ordering::Relaxed)
    );
    ratio(
        "map_view_on",
        "map_view_off",
        ">=",
        0.9,
        "map on a pool shown in a polled live view within 10% of one without it",
    );
    Ok(())
}
