//! Large payloads through the arenas of a worker's segment, from the outside: arguments and
//! values of every size arrive intact, however many of a batch fit in the arena; a worker
//! that dies inside a batch of large arguments fails exactly the call it was running; and a
//! worker that scribbles over the value it left in its arena fails that call with a clear
//! error, never a wrong value, and is replaced.

use std::time::Instant;

use offspring::{Error, Pool};
use serde_bytes::ByteBuf;

/// A payload of `len` bytes that depends on the item, and on where each byte is: a block of a
/// prime length repeated, so that bytes moved by any whole number of words do not match.
fn pattern(item: u64, len: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..4093u64)
        .map(|i| i.wrapping_mul(31).wrapping_add(item) as u8)
        .collect();
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        let take = block.len().min(len - bytes.len());
        bytes.extend_from_slice(&block[..take]);
    }
    bytes
}

/// The bytes in reverse order: a value that differs from its argument almost everywhere.
#[offspring::task]
fn reversed(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

#[offspring::task]
fn reversed_buf(bytes: ByteBuf) -> ByteBuf {
    let mut bytes = bytes.into_vec();
    bytes.reverse();
    ByteBuf::from(bytes)
}

fn reverse(bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes.reverse();
    bytes
}

/// The length of the argument and its first and last byte.
#[offspring::task]
fn summary(item: u64, bytes: Vec<u8>) -> (u64, usize, u8, u8) {
    let first = bytes.first().copied().unwrap_or_default();
    let last = bytes.last().copied().unwrap_or_default();
    (item, bytes.len(), first, last)
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Sizes around the arena's threshold (256 KiB), and three that do not fit in it together.
const SIZES: [usize; 9] = [
    0,
    255 * KIB,
    256 * KIB,
    256 * KIB + 1,
    MIB + 7,
    3,
    24 * MIB,
    24 * MIB + 5,
    24 * MIB + 3,
];

#[test]
fn large_arguments_and_values_cross_the_arena_intact_at_every_size() {
    let pool = Pool::new(2).expect("a pool");
    let started = Instant::now();
    let inputs: Vec<Vec<u8>> = SIZES
        .iter()
        .enumerate()
        .map(|(item, &len)| pattern(item as u64, len))
        .collect();
    for chunk in [1, 3, 9] {
        let values = pool
            .map_chunked(reversed, inputs.clone(), chunk)
            .unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
        assert_eq!(values.len(), inputs.len());
        for (item, (value, input)) in values.iter().zip(&inputs).enumerate() {
            assert_eq!(value.len(), input.len(), "chunk {chunk}, item {item}");
            assert!(
                *value == reverse(input),
                "chunk {chunk}, item {item}: a wrong byte"
            );
        }
    }
    // A `ByteBuf` and a call of several arguments take the arena as well.
    for (item, input) in inputs.iter().enumerate() {
        let back = pool
            .apply(reversed_buf, ByteBuf::from(input.clone()))
            .expect("a value");
        assert!(back.into_vec() == reverse(input), "item {item}");
        let (got, len, first, last) = pool
            .apply(summary, (item as u64, input.clone()))
            .expect("a value");
        assert_eq!(
            (got, len, first, last),
            (
                item as u64,
                input.len(),
                input.first().copied().unwrap_or_default(),
                input.last().copied().unwrap_or_default()
            )
        );
    }
    let counters = pool.counters();
    assert_eq!((counters.died_running, counters.restarted), (0, 0));
    println!(
        "{} payloads up to 24 MiB there and back in chunks of 1, 3 and 9, then as ByteBuf and in tuples, in {:?}",
        inputs.len(),
        started.elapsed()
    );
}

/// Aborts its worker when the payload's first byte says so.
#[offspring::task]
fn length_or_abort(bytes: Vec<u8>) -> usize {
    if bytes.first() == Some(&0xab) {
        std::process::abort();
    }
    bytes.len()
}

#[test]
fn a_worker_dying_inside_a_batch_of_large_arguments_fails_exactly_that_call() {
    let pool = Pool::new(2).expect("a pool");
    let aborting = |item: usize| item % 7 == 3;
    let inputs: Vec<Vec<u8>> = (0..28)
        .map(|item| {
            let mut bytes = vec![1u8; 300 * KIB + item];
            if aborting(item) {
                bytes[0] = 0xab;
            }
            bytes
        })
        .collect();
    let started = Instant::now();
    let mut failed = Vec::new();
    for (item, result) in pool.imap_chunked(length_or_abort, inputs, 4).enumerate() {
        match result {
            Ok(len) => {
                assert!(!aborting(item), "item {item} should have failed");
                assert_eq!(len, 300 * KIB + item, "item {item}");
            }
            Err(Error::WorkerDied { index, .. }) => {
                assert_eq!(index, Some(item));
                failed.push(item);
            }
            Err(other) => panic!("item {item}: unexpected {other}"),
        }
    }
    let expected: Vec<usize> = (0..28).filter(|&item| aborting(item)).collect();
    assert_eq!(failed, expected);
    assert_eq!(pool.counters().died_running, expected.len() as u64);
    println!(
        "28 calls of 300 KiB in batches of 4: the {} aborting ones failed and no other, in {:?}",
        expected.len(),
        started.elapsed()
    );
}

/// A value of 1 MiB (through the arena) whose bytes depend on the item.
#[offspring::task]
fn large_value(item: u64) -> Vec<u8> {
    pattern(item, MIB)
}

#[test]
fn a_worker_scribbling_over_its_arena_fails_its_calls_never_a_wrong_value() {
    // Only Linux has arenas (docs/platforms.md): elsewhere values of 1 MiB go in frames, and
    // the ring's own scribble test covers the segment.
    if !cfg!(target_os = "linux") {
        return;
    }
    let seeds = offspring_tests::scaled(16) as u64;
    let started = Instant::now();
    let (values, misbehaved) = super::ring::scribbling_workers(
        seeds,
        |pool| pool.imap_chunked(large_value, 0..24u64, 3).collect(),
        |n| pattern(n, MIB),
        |pool| (pool.apply(large_value, 5), pattern(5, MIB)),
    );
    println!(
        "{seeds} scribbling workers: {values} values of 1 MiB, all right, and {misbehaved} calls failed as misbehaved, in {:?}",
        started.elapsed()
    );
    assert!(misbehaved > 0, "no scribble was ever detected");
}
