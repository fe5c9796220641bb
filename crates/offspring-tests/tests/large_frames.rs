//! Values and arguments larger than a frame may be: a clear error naming the size and the
//! limit, and the same worker goes on. A test binary of its own, so that its large
//! allocations do not skew other tests' memory figures.

use std::time::Instant;

use offspring::{Direction, Error, Pool, Process};
use offspring_wire::MAX_FRAME;

offspring::test_support!();

const MIB: usize = 1024 * 1024;
/// Larger than `MAX_FRAME` (65 MiB).
const TOO_LARGE: usize = 70 * MIB;
/// Comfortably below it.
const LARGE: usize = 60 * MIB;

#[offspring::task]
fn worker_pid() -> u32 {
    std::process::id()
}

// Payloads are strings: postcard copies them whole, where a `Vec<u8>` goes byte by byte through
// serde, which takes seconds per 70 MiB in a debug build and would only measure that.

#[offspring::task]
fn filled(len: usize) -> String {
    "x".repeat(len)
}

#[offspring::task]
fn length(text: String) -> usize {
    text.len()
}

fn text(len: usize) -> String {
    "y".repeat(len)
}

/// Checks that `error` is a serialization error in `direction` naming the limit.
fn names_the_limit(error: &Error, direction: Direction) {
    match error {
        Error::Serialization {
            direction: seen,
            message,
            ..
        } => {
            assert_eq!(*seen, direction, "{error}");
            assert!(
                message.contains(&MAX_FRAME.to_string()),
                "the message names the limit: {error}"
            );
        }
        other => panic!("expected a serialization error, got {other:?}"),
    }
}

#[test]
fn a_value_larger_than_a_frame_fails_its_call_and_the_same_worker_goes_on() {
    let pool = Pool::new(1).expect("a pool");
    let pid = pool.apply(worker_pid, ()).expect("a pid");
    let started = Instant::now();
    let error = pool
        .apply(filled, TOO_LARGE)
        .expect_err("a 70 MiB value does not fit in a frame");
    println!("70 MiB value: {error} (after {:?})", started.elapsed());
    names_the_limit(&error, Direction::EncodeResult);
    assert_eq!(
        pool.apply(worker_pid, ()).expect("a pid"),
        pid,
        "the same worker"
    );
    assert_eq!(
        pool.apply(filled, LARGE).expect("a 60 MiB value").len(),
        LARGE
    );
    let counters = pool.counters();
    println!("{counters:?}");
    assert_eq!(counters.restarted, 0, "{counters:?}");
}

#[test]
fn an_argument_larger_than_a_frame_fails_its_call_and_the_same_worker_goes_on() {
    let pool = Pool::new(1).expect("a pool");
    let pid = pool.apply(worker_pid, ()).expect("a pid");
    let started = Instant::now();
    let error = pool
        .apply(length, text(TOO_LARGE))
        .expect_err("a 70 MiB argument does not fit in a frame");
    println!("70 MiB argument: {error} (after {:?})", started.elapsed());
    names_the_limit(&error, Direction::EncodeArgs);
    assert_eq!(
        pool.apply(worker_pid, ()).expect("a pid"),
        pid,
        "the same worker"
    );
    assert_eq!(pool.apply(length, text(LARGE)).expect("a length"), LARGE);
    let counters = pool.counters();
    println!("{counters:?}");
    assert_eq!(counters.restarted, 0, "{counters:?}");
}

#[test]
fn a_map_chunk_larger_than_a_frame_is_sent_in_parts_and_only_a_call_too_large_fails() {
    let pool = Pool::new(1).expect("a pool");
    let pid = pool.apply(worker_pid, ()).expect("a pid");
    // Four 20 MiB arguments asked for as one chunk: each fits in a frame, the four together
    // do not, so the pool sends them in batches that fit.
    let started = Instant::now();
    let lengths = pool
        .map_chunked(length, (0..4).map(|_| text(20 * MIB)), 4)
        .expect("every call fits on its own");
    println!(
        "four 20 MiB arguments in one chunk: {lengths:?} after {:?}",
        started.elapsed()
    );
    assert_eq!(lengths, vec![20 * MIB; 4]);
    // One call too large among small ones: it fails alone, with its index.
    let started = Instant::now();
    let results: Vec<_> = pool
        .imap(length, [text(10), text(TOO_LARGE), text(30)])
        .collect();
    println!(
        "imap with a 70 MiB argument in the middle after {:?}",
        started.elapsed()
    );
    assert_eq!(results[0].as_ref().ok(), Some(&10));
    let error = results[1].as_ref().expect_err("the 70 MiB call fails");
    names_the_limit(error, Direction::EncodeArgs);
    assert!(
        matches!(error, Error::Serialization { index: Some(1), .. }),
        "{error}"
    );
    assert_eq!(results[2].as_ref().ok(), Some(&30));
    assert_eq!(
        pool.apply(worker_pid, ()).expect("a pid"),
        pid,
        "the same worker"
    );
    let counters = pool.counters();
    println!("{counters:?}");
    assert_eq!(counters.restarted, 0, "{counters:?}");
}

#[test]
fn a_process_argument_larger_than_a_frame_is_a_clear_error() {
    let started = Instant::now();
    let result = Process::spawn(length, text(TOO_LARGE)).and_then(|child| child.join());
    println!(
        "70 MiB process argument: {result:?} (after {:?})",
        started.elapsed()
    );
    let error = result.expect_err("a 70 MiB argument does not fit in a frame");
    names_the_limit(&error, Direction::EncodeArgs);
}
