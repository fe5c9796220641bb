//! Many slow "requests" across a pool: an `async fn` task fetches from a local server that
//! takes 20 ms to answer, and each worker keeps 50 requests in flight at once. The same
//! requests as a sync task (one at a time per worker) take about 25 times as long.
//!
//! The server is the example's own (a thread per connection on 127.0.0.1), so no network is
//! needed: each request writes a number, and the server answers with it doubled after the
//! delay.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// How long the server takes to answer each request.
const DELAY: Duration = Duration::from_millis(20);
const REQUESTS: u64 = 200;
const WORKERS: usize = 2;
const IN_FLIGHT: usize = 50;

/// One request: sends `n` to the server and reads its answer.
#[offspring::task]
async fn fetch(server: SocketAddr, n: u64) -> Result<u64, String> {
    let stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{n}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    tokio::io::BufReader::new(read)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    line.trim().parse().map_err(|e| format!("{e}: {line:?}"))
}

/// The same request made the blocking way, for the comparison.
#[offspring::task]
fn fetch_blocking(server: SocketAddr, n: u64) -> Result<u64, String> {
    let mut stream = std::net::TcpStream::connect(server).map_err(|e| e.to_string())?;
    writeln!(stream, "{n}").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    line.trim().parse().map_err(|e| format!("{e}: {line:?}"))
}

/// Answers each connection's number doubled, `DELAY` after it arrived.
fn serve(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_err() {
                return;
            }
            std::thread::sleep(DELAY);
            if let Ok(n) = line.trim().parse::<u64>() {
                let _ = writeln!(&stream, "{}", n * 2);
            }
        });
    }
}

#[offspring::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let server = listener.local_addr()?;
    std::thread::spawn(move || serve(listener));

    let pool = offspring::Pool::builder()
        .processes(WORKERS)
        .async_concurrency(IN_FLIGHT)
        .build()?;
    // Both kinds of task once, so neither timing includes the workers' start.
    pool.apply(fetch, (server, 0))??;
    pool.apply(fetch_blocking, (server, 0))??;

    let started = Instant::now();
    let answers = pool.map(fetch, (0..REQUESTS).map(|n| (server, n)))?;
    let async_time = started.elapsed();
    check(&answers)?;

    let started = Instant::now();
    let answers = pool.map(fetch_blocking, (0..REQUESTS).map(|n| (server, n)))?;
    let sync_time = started.elapsed();
    check(&answers)?;

    println!(
        "{REQUESTS} requests of {} ms on {WORKERS} workers",
        DELAY.as_millis()
    );
    println!(
        "async task, {IN_FLIGHT} in flight per worker: {:.3} s",
        async_time.as_secs_f64()
    );
    println!(
        "sync task, one at a time per worker: {:.3} s",
        sync_time.as_secs_f64()
    );
    println!(
        "the async task was {:.1}x faster",
        sync_time.as_secs_f64() / async_time.as_secs_f64()
    );
    Ok(())
}

/// Every answer is its request doubled.
fn check(answers: &[Result<u64, String>]) -> Result<(), String> {
    for (n, answer) in answers.iter().enumerate() {
        match answer {
            Ok(value) if *value == 2 * n as u64 => {}
            other => return Err(format!("request {n} got {other:?}")),
        }
    }
    Ok(())
}
