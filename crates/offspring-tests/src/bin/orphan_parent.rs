//! A parent that starts a pool and waits to be killed, with its workers in the state the first
//! argument names:
//!
//! - `idle`: three workers waiting for work;
//! - `busy`: three workers spinning on the CPU;
//! - `event`: three workers blocked in `Event::wait` on an event nobody sets;
//! - `awaiting`: three workers each with 20 async calls awaiting an hour-long timer;
//! - `write <go-file>`: one worker of two says `started <pid>` when its call arrives, then
//!   returns a 60 MiB value once `<go-file>` exists (the test stops this parent between the
//!   two, so the worker blocks writing to a parent that reads nothing).
//!
//! - `shared`: three workers each holding a 256 MiB `SharedBytes` the parent made, every page
//!   read, say `holding <pid>` and sleep.
//!
//! Each worker prints `up <pid>` once started (from the pool's initializer), and the state it
//! reached (`busy <pid>`, `waiting <pid>`, `started <pid>`, `writing <pid>`) on the shared stdout, so the test
//! kills this parent when the workers are provably there.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use offspring::{Event, Pool, SharedBytes};

/// The size of the value the `write` worker returns.
const LARGE: usize = 60 * 1024 * 1024;

fn say(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{what} {}", std::process::id());
    let _ = out.flush();
}

#[offspring::task]
fn up() {
    say("up");
}

#[offspring::task]
fn spin() {
    say("busy");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

#[offspring::task]
fn wait_for(event: Event) -> bool {
    say("waiting");
    event.wait_timeout(Duration::from_secs(3600))
}

/// An async call that awaits a timer for an hour; the first of each worker's calls says so.
#[offspring::task]
async fn await_long(n: u32) {
    if n.is_multiple_of(20) {
        say("awaiting");
    }
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

/// A string rather than a `Vec<u8>`: postcard copies it whole instead of byte by byte.
#[offspring::task]
fn large_after(go: PathBuf) -> String {
    say("started");
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let value = "x".repeat(LARGE);
    say("writing");
    value
}

/// The size of the `shared` mode's object.
const SHARED: usize = 256 * 1024 * 1024;

/// Reads every page of `data`, says so, and holds it until the process ends.
#[offspring::task]
fn hold_shared(data: SharedBytes) {
    let sum: u64 = data.iter().step_by(4096).map(|b| u64::from(*b)).sum();
    std::hint::black_box(sum);
    say("holding");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("orphan_parent: {message}");
    std::process::exit(1);
}

fn main() {
    offspring::init();
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "busy".to_owned());
    let workers = if mode == "write" { 2 } else { 3 };
    let pool = Pool::builder()
        .processes(workers)
        .async_concurrency(20)
        .initializer(up, ())
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    // Each call below blocks for as long as this parent lives: it waits to be killed.
    let outcome = match mode.as_str() {
        "idle" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "busy" => pool.map(spin, vec![(); workers]).map(drop),
        "event" => {
            let event = Event::new().unwrap_or_else(|e| fail(&e.to_string()));
            pool.map_chunked(wait_for, vec![event; workers], 1)
                .map(drop)
        }
        "awaiting" => pool.map(await_long, 0..60).map(drop),
        "shared" => {
            let data =
                SharedBytes::from_vec(vec![1; SHARED]).unwrap_or_else(|e| fail(&e.to_string()));
            pool.map_chunked(hold_shared, vec![data; workers], 1)
                .map(drop)
        }
        "write" => {
            let go = args
                .next()
                .map_or_else(|| fail("write needs a go-file"), PathBuf::from);
            pool.apply(large_after, go).map(drop)
        }
        other => fail(&format!("unknown mode {other:?}")),
    };
    fail(&format!(
        "the {mode} call ended before this parent was killed: {outcome:?}"
    ));
}
