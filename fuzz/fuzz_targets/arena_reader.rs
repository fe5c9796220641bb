//! Reads a value out of an arena whose words and reference are arbitrary, as the parent
//! reads one that a buggy worker scribbled over or named wrongly: the reader must end with
//! the value or an error, never a panic or an allocation larger than the arena, and a value
//! it accepts is exactly the bytes that were written.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use offspring_wire::arena::{SharedBytes, read, write};

const WORDS: usize = 8 + 512;

fuzz_target!(|data: &[u8]| {
    let arena: Vec<AtomicU64> = (0..WORDS).map(|_| AtomicU64::new(0)).collect();
    let Some((head, rest)) = data.split_first_chunk::<24>() else {
        return;
    };
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&head[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    };
    // A value written well, then words scribbled over the arena, then a reference that may
    // be the right one or anything.
    let (value, scribbles) = rest.split_at(rest.len().min(1024));
    let written = write(&arena, 0, &[value]);
    for chunk in scribbles.chunks(10) {
        if let [at_low, at_high, bytes @ ..] = chunk {
            let at = usize::from(u16::from_le_bytes([*at_low, *at_high])) % WORDS;
            let mut w = [0u8; 8];
            w[..bytes.len()].copy_from_slice(bytes);
            arena[at].store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }
    let reference = match (written, word(0) % 2) {
        (Some(written), 0) => written,
        _ => SharedBytes {
            at: word(0),
            len: word(1),
            sum: word(2),
        },
    };
    let mut out = Vec::new();
    if read(&arena, reference, &mut out).is_ok() {
        assert!(out.len() <= (WORDS - 8) * 8);
        if scribbles.is_empty() && Some(reference) == written {
            assert_eq!(out, value);
        }
    }
});
