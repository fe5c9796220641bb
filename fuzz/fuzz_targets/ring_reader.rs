//! Reads arbitrary words as a worker's outcome segment, as the parent reads one that a buggy
//! worker scribbled over: the reader must end with entries or an error, never a panic, an
//! endless loop or an allocation larger than the ring.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use offspring_wire::ring::{HEADER_WORDS, RingReader};

fuzz_target!(|data: &[u8]| {
    let segment: Vec<AtomicU64> = (0..HEADER_WORDS + 256).map(|_| AtomicU64::new(0)).collect();
    let Some(mut reader) = RingReader::init(&segment) else {
        return;
    };
    // The fuzzer's bytes become words of the segment: the header's live words first, then
    // the ring.
    let positions = [2usize, 3, 4, 8, 9, 10]
        .into_iter()
        .chain(HEADER_WORDS..HEADER_WORDS + 256);
    for (at, chunk) in positions.zip(data.chunks(8)) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        segment[at].store(u64::from_le_bytes(word), Ordering::Relaxed);
    }
    for _ in 0..4 {
        let mut total = 0;
        match reader.read(&segment, |entry| total += entry.payload.len()) {
            Ok(_) => assert!(total <= 256 * 8),
            Err(_) => return,
        }
    }
    let _ = reader.running(&segment);
});
