//! Arenas: large arguments and values through a worker's segment instead of the socket.
//!
//! A worker's segment (see [`ring`](crate::ring)) is longer than its ring when it carries
//! arenas: after the ring's [`RING_WORDS`] come two arenas of [`ARENA_BYTES`] each, one the
//! worker writes its large values into (*to the parent*) and one the parent writes a batch's
//! large arguments into (*to the worker*). A frame or ring entry then carries a
//! [`SharedBytes`] (where the bytes start, how many, their checksum) instead of the bytes, which saves the copies
//! through the kernel and the fresh buffers a 64 MiB frame costs on both sides. Pages are
//! the OS's zero pages until written, so an arena costs no memory before its first large
//! payload; each side gives its arena's pages back after a few seconds idle.
//!
//! # Ownership
//!
//! - **To the worker.** The parent owns the arena, except while a batch whose arguments it
//!   holds is in flight: the parent writes the arguments, then sends the batch
//!   (`ToWorker::RunShared`), and writes nothing there again before that batch ended
//!   (finished, or its worker died). The worker copies each argument out when the batch
//!   arrives, checking its checksum; the parent is trusted, so a bad reference ends the
//!   worker, as a frame that does not decode would.
//! - **To the parent.** Word 0 is the *consumed* count, written by the parent only. The
//!   worker writes a value when every value it wrote before was consumed (word 0 equals the
//!   number it wrote, loaded with `Acquire`), then reports it as `Outcome::Shared` numbered
//!   with its count, in the ring (or in a frame, after an earlier frame of its batch). The parent copies the bytes out, checks the number and the
//!   checksum, and stores the new count with `Release`. A value that finds the arena busy
//!   goes as bytes in a frame, as before.
//!
//! An outcome in the arena counts as done exactly like any other: its ring entry is published
//! (or its frame is in the socket) before the call's lane is cleared (see the ring's module
//! docs), and the arena's bytes were written before that entry's `Release` store of the head,
//! or before that frame.
//!
//! # Validation
//!
//! The parent trusts no word of the arena to the parent: a count that is not the next one,
//! a start or length past the arena, or a checksum that does not match is an
//! [`ArenaError`], which the parent answers by killing the worker. Every access is atomic,
//! as in the ring, so a scribbling worker makes garbage, never undefined behaviour.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The words of a segment's ring: 272 KiB (a whole number of 16 KiB pages, so the arenas
/// after it start on one), its 4 KiB header, a ring of 256 KiB (see
/// [`Layout`](crate::ring::Layout)) and 12 KiB unused; the ring is touched only as outcomes
/// fill it and given back after 5 s idle. A smaller ring fills before the parent drains it during a
/// `map` of small items, and its worker waits.
pub const RING_WORDS: usize = (256 * 1024 + 16 * 1024) / 8;

/// The size of each arena: a frame's cap, and a page of control words.
pub const ARENA_BYTES: usize = crate::MAX_FRAME as usize + 64 * 1024;

/// Payloads from this many bytes on go through an arena when one is free; smaller ones go
/// in frames, where a copy through the kernel costs less than a fresh mapping's faults.
pub const MIN_SHARED: usize = 256 * 1024;

/// Payloads up to this many bytes go through an arena: what also fits in a frame with room
/// for its envelope, so that whether a call of a given size can be sent never depends on
/// whether the arena happened to be free.
pub const MAX_SHARED: usize = crate::MAX_FRAME as usize - 64 * 1024;

// A shared payload fits in an arena's data.
const _: () = assert!(MAX_SHARED <= ARENA_BYTES - CONTROL_WORDS * 8);

/// Whether a payload of `len` bytes goes through an arena (when one is free).
pub fn shares(len: usize) -> bool {
    (MIN_SHARED..=MAX_SHARED).contains(&len)
}

/// Words before an arena's data: word 0 is the to-parent arena's consumed count.
const CONTROL_WORDS: usize = 8;

/// Where a payload lies in an arena, and its checksum. Sent in a frame; read as untrusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedBytes {
    /// The first byte, from the start of the arena's data (a multiple of 8).
    pub at: u64,
    /// How many bytes.
    pub len: u64,
    /// The checksum of the bytes as words (see [`write()`]).
    pub sum: u64,
}

/// One call's arguments in the to-worker arena: the call's position in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedArg {
    /// The call's position in `RunTask::items` (whose own bytes there are empty).
    pub index: u32,
    /// Where its encoded arguments are.
    pub bytes: SharedBytes,
}

/// A segment's parts: the ring, and the two arenas when the segment is long enough.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// What [`ring`](crate::ring) reads and writes.
    pub ring: &'a [AtomicU64],
    /// The worker writes its large values here.
    pub to_parent: Option<&'a [AtomicU64]>,
    /// The parent writes a batch's large arguments here.
    pub to_worker: Option<&'a [AtomicU64]>,
}

/// The words of a segment with arenas.
pub const SEGMENT_WORDS: usize = RING_WORDS + 2 * (ARENA_BYTES / 8);

/// Splits a segment into its ring and arenas. A segment no longer than the ring is all ring.
#[inline]
pub fn parts(segment: &[AtomicU64]) -> Parts<'_> {
    if segment.len() < SEGMENT_WORDS {
        return Parts {
            ring: segment,
            to_parent: None,
            to_worker: None,
        };
    }
    let (ring, rest) = segment.split_at(RING_WORDS);
    let (to_parent, rest) = rest.split_at(ARENA_BYTES / 8);
    Parts {
        ring,
        to_parent: Some(to_parent),
        to_worker: Some(&rest[..ARENA_BYTES / 8]),
    }
}

/// The length in bytes of an arena's data (its words after the control words).
pub fn data_bytes(arena: &[AtomicU64]) -> usize {
    arena.len().saturating_sub(CONTROL_WORDS) * 8
}

/// Where the to-parent arena's data lies in a segment with arenas, in bytes: the range whose
/// pages are given back when it is trimmed (its control words stay).
pub fn to_parent_data() -> std::ops::Range<usize> {
    let start = (RING_WORDS + CONTROL_WORDS) * 8;
    start..start + ARENA_BYTES - CONTROL_WORDS * 8
}

/// As [`to_parent_data`], for the to-worker arena.
pub fn to_worker_data() -> std::ops::Range<usize> {
    let to_parent = to_parent_data();
    to_parent.start + ARENA_BYTES..to_parent.end + ARENA_BYTES
}

/// Why the parent stopped trusting a worker's arena.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArenaError {
    /// The payload's count is not the next one.
    #[error("its arena's value {got} came when value {expected} was next")]
    Count {
        /// What the frame said.
        got: u64,
        /// What the parent expected.
        expected: u64,
    },
    /// The payload lies outside the arena.
    #[error("its arena's value of {len} bytes at {at} lies outside the arena")]
    Bounds {
        /// Where it said the value starts.
        at: u64,
        /// How long it said it is.
        len: u64,
    },
    /// The bytes are not those the worker summed.
    #[error("its arena's value does not match its checksum")]
    Checksum,
}

/// The checksum of a payload: four independent lanes (word `i` feeds lane `i % 4`), so that
/// the multiplications of a long payload overlap instead of waiting on each other, folded
/// into one word at the end.
#[derive(Clone, Copy)]
struct Sum {
    lanes: [u64; 4],
    next: usize,
}

impl Sum {
    fn new(len: u64) -> Self {
        let mut lanes = [0x1319_8a2e_0370_7344; 4];
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane ^= len.rotate_left(16 * i as u32);
        }
        Self { lanes, next: 0 }
    }

    #[inline]
    fn mix(lane: u64, word: u64) -> u64 {
        let x = (lane ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }

    /// One word, into the next lane.
    #[inline]
    fn add(&mut self, word: u64) {
        self.lanes[self.next] = Self::mix(self.lanes[self.next], word);
        self.next = (self.next + 1) % 4;
    }

    /// Four words at once; the same as four `add`s.
    #[inline]
    fn add4(&mut self, words: [u64; 4]) {
        let n = self.next;
        for (i, word) in words.into_iter().enumerate() {
            let lane = (n + i) % 4;
            self.lanes[lane] = Self::mix(self.lanes[lane], word);
        }
    }

    fn value(self) -> u64 {
        self.lanes
            .into_iter()
            .fold(0x2545_f491_4f6c_dd1d, Self::mix)
    }
}

/// Words copied (and summed) per step: the bytes go through a buffer on the stack this big.
const STEP: usize = 512;

/// Writes `parts` (one payload, in pieces) into `arena`'s data from byte `at` (a multiple of
/// 8), summing it as it goes. `None` when it does not fit.
pub fn write(arena: &[AtomicU64], at: u64, parts: &[&[u8]]) -> Option<SharedBytes> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let data = arena.get(CONTROL_WORDS..)?;
    let first = usize::try_from(at).ok().filter(|at| at % 8 == 0)? / 8;
    let words = len.div_ceil(8);
    let slots = data.get(first..first.checked_add(words)?)?;
    let mut sum = Sum::new(len as u64);
    let mut slots = slots.iter();
    // Whole words, carried across the parts' boundaries.
    let mut word = [0u8; 8];
    let mut filled = 0;
    for part in parts {
        let mut part = *part;
        if filled > 0 {
            let take = (8 - filled).min(part.len());
            word[filled..filled + take].copy_from_slice(&part[..take]);
            filled += take;
            part = &part[take..];
            if filled < 8 {
                continue;
            }
            let value = u64::from_le_bytes(word);
            sum.add(value);
            slots.next()?.store(value, Ordering::Relaxed);
        }
        let mut quads = part.chunks_exact(32);
        for quad in &mut quads {
            let values: [u64; 4] = std::array::from_fn(|i| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&quad[8 * i..8 * i + 8]);
                u64::from_le_bytes(w)
            });
            sum.add4(values);
            for value in values {
                slots.next()?.store(value, Ordering::Relaxed);
            }
        }
        let mut chunks = quads.remainder().chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let value = u64::from_le_bytes(w);
            sum.add(value);
            slots.next()?.store(value, Ordering::Relaxed);
        }
        let rest = chunks.remainder();
        word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        filled = rest.len();
    }
    if filled > 0 {
        let value = u64::from_le_bytes(word);
        sum.add(value);
        slots.next()?.store(value, Ordering::Relaxed);
    }
    Some(SharedBytes {
        at,
        len: len as u64,
        sum: sum.value(),
    })
}

/// Copies the payload `bytes` names out of `arena` into `out` (replacing what it held),
/// checking it against its checksum in the same pass.
///
/// # Errors
///
/// [`ArenaError::Bounds`] or [`ArenaError::Checksum`].
pub fn read(arena: &[AtomicU64], bytes: SharedBytes, out: &mut Vec<u8>) -> Result<(), ArenaError> {
    let bounds = ArenaError::Bounds {
        at: bytes.at,
        len: bytes.len,
    };
    let data = arena.get(CONTROL_WORDS..).ok_or(bounds.clone())?;
    let (Ok(at), Ok(len)) = (usize::try_from(bytes.at), usize::try_from(bytes.len)) else {
        return Err(bounds);
    };
    if at % 8 != 0 || len > data.len() * 8 || at / 8 > data.len() - len.div_ceil(8) {
        return Err(bounds);
    }
    let words = &data[at / 8..at / 8 + len.div_ceil(8)];
    out.clear();
    out.reserve_exact(len);
    let mut sum = Sum::new(len as u64);
    let mut buf = [0u8; STEP * 8];
    for step in words.chunks(STEP) {
        let mut quads = step.chunks_exact(4);
        let mut filled = 0;
        for quad in &mut quads {
            let values: [u64; 4] = std::array::from_fn(|i| quad[i].load(Ordering::Relaxed));
            sum.add4(values);
            for value in values {
                buf[filled..filled + 8].copy_from_slice(&value.to_le_bytes());
                filled += 8;
            }
        }
        for word in quads.remainder() {
            let value = word.load(Ordering::Relaxed);
            sum.add(value);
            buf[filled..filled + 8].copy_from_slice(&value.to_le_bytes());
            filled += 8;
        }
        // The last word's padding is not copied.
        let take = filled.min(len - out.len());
        out.extend_from_slice(&buf[..take]);
    }
    if sum.value() != bytes.sum {
        out.clear();
        return Err(ArenaError::Checksum);
    }
    Ok(())
}

/// The worker's side of the to-parent arena: whether every value it wrote was consumed.
pub fn free_for_worker(to_parent: &[AtomicU64], written: u64) -> bool {
    to_parent
        .first()
        .is_some_and(|w| w.load(Ordering::Acquire) == written)
}

/// The parent's side of the to-parent arena: it copied value `count` out.
pub fn consumed(to_parent: &[AtomicU64], count: u64) {
    if let Some(word) = to_parent.first() {
        word.store(count, Ordering::Release);
    }
}

/// One large buffer kept for the next large payload copied out of an arena, so that the copy
/// goes into memory already mapped instead of faulting in fresh pages (for 64 MiB, 16,384
/// faults, most of what such a copy costs). A side keeps the buffer of a large payload it is
/// done with: the parent a call's arguments once the call ended, a worker a value once it is
/// in the arena. Whoever trims its arenas clears it too.
#[derive(Debug, Default)]
pub struct Spare {
    /// The buffer, and when it was kept.
    slot: Mutex<Option<(Vec<u8>, Instant)>>,
}

impl Spare {
    /// An empty spare.
    pub const fn new() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(Vec<u8>, Instant)>> {
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `buffer` if it is large and larger than the one kept; whether it did.
    pub fn keep(&self, buffer: Vec<u8>) -> bool {
        if buffer.capacity() < MIN_SHARED {
            return false;
        }
        let mut slot = self.slot();
        if slot
            .as_ref()
            .is_none_or(|(kept, _)| kept.capacity() < buffer.capacity())
        {
            *slot = Some((buffer, Instant::now()));
            return true;
        }
        false
    }

    /// An empty buffer with room for `len` bytes: the kept one if it has the room and not
    /// much more (the buffer becomes a value the caller keeps: a small value must not pin a
    /// large buffer).
    pub fn take(&self, len: usize) -> Vec<u8> {
        let mut slot = self.slot();
        match slot.take() {
            Some((mut kept, _)) if kept.capacity() >= len && kept.capacity() / 2 <= len => {
                kept.clear();
                kept
            }
            other => {
                *slot = other;
                Vec::with_capacity(len)
            }
        }
    }

    /// When the kept buffer will have been kept for `idle`, if one is kept.
    pub fn due(&self, idle: Duration) -> Option<Instant> {
        self.slot().as_ref().map(|(_, since)| *since + idle)
    }

    /// Drops the kept buffer if it was kept at least `idle` ago (`Duration::ZERO`: whenever
    /// it was), giving its memory back.
    pub fn trim(&self, idle: Duration) {
        let kept = {
            let mut slot = self.slot();
            match slot.as_ref() {
                Some((_, since)) if since.elapsed() >= idle => slot.take(),
                _ => None,
            }
        };
        drop(kept);
    }
}

/// Rounds a byte count up to the next multiple of 8 (where the next payload may start).
pub fn aligned(len: u64) -> u64 {
    len.div_ceil(8) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena(words: usize) -> Vec<AtomicU64> {
        (0..words).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn payloads_in_pieces_come_back_whole_at_any_length() {
        let a = arena(CONTROL_WORDS + 200);
        for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 100, 1000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            for cut in [0, 1, 3, len / 2, len] {
                let cut = cut.min(len);
                let (x, y) = bytes.split_at(cut);
                let (y, z) = y.split_at(y.len() / 3);
                for at in [0u64, 8, 64] {
                    let shared = write(&a, at, &[x, y, z]).expect("fits");
                    assert_eq!(shared.len, len as u64);
                    let mut out = vec![9; 3];
                    read(&a, shared, &mut out).expect("valid");
                    assert_eq!(out, bytes, "len {len} cut {cut} at {at}");
                }
            }
        }
    }

    #[test]
    fn what_does_not_fit_is_refused_and_bad_references_are_errors() {
        let a = arena(CONTROL_WORDS + 4);
        assert!(write(&a, 0, &[&[1; 33]]).is_none());
        assert!(write(&a, 4, &[&[1; 3]]).is_none());
        assert!(write(&a, 32, &[&[1; 1]]).is_none());
        let shared = write(&a, 8, &[&[5; 20]]).expect("fits");
        let mut out = Vec::new();
        for bad in [
            SharedBytes { at: 16, ..shared },
            SharedBytes { at: 3, ..shared },
            SharedBytes { len: 25, ..shared },
            SharedBytes {
                at: u64::MAX,
                ..shared
            },
            SharedBytes {
                len: u64::MAX,
                ..shared
            },
        ] {
            assert!(
                matches!(read(&a, bad, &mut out), Err(ArenaError::Bounds { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            read(&a, SharedBytes { sum: 1, ..shared }, &mut out),
            Err(ArenaError::Checksum)
        );
        // A scribbled word is a checksum error, never different bytes.
        a[CONTROL_WORDS + 2].store(0xdead, Ordering::Relaxed);
        assert_eq!(read(&a, shared, &mut out), Err(ArenaError::Checksum));
        assert!(out.is_empty());
    }

    #[test]
    fn a_scribbled_value_is_an_error_in_every_case_tried() {
        let a = arena(CONTROL_WORDS + 64);
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        for round in 0..20_000 {
            let len = (next() % 500) as usize + 1;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let shared = write(&a, 0, &[&bytes]).expect("fits");
            // One or more words of the value changed (a word that is already what it would
            // be changed to is not a change).
            let mut changed = false;
            for _ in 0..1 + next() % 3 {
                let at = CONTROL_WORDS + (next() as usize) % len.div_ceil(8);
                let value = next();
                changed |= a[at].swap(value, Ordering::Relaxed) != value;
            }
            let mut out = Vec::new();
            match read(&a, shared, &mut out) {
                Ok(()) => assert!(!changed && out == bytes, "round {round}: a wrong value"),
                Err(e) => assert_eq!(e, ArenaError::Checksum, "round {round}"),
            }
        }
    }

    #[test]
    fn the_consumed_count_hands_the_arena_back_and_forth() {
        let a = arena(CONTROL_WORDS + 4);
        assert!(free_for_worker(&a, 0));
        assert!(!free_for_worker(&a, 1));
        consumed(&a, 1);
        assert!(free_for_worker(&a, 1));
        assert!(!free_for_worker(&[], 0));
    }

    #[test]
    fn the_spare_keeps_the_largest_buffer_and_hands_it_out_once() {
        let spare = Spare::new();
        assert!(!spare.keep(Vec::with_capacity(100)));
        assert_eq!(spare.take(10).capacity(), 10);
        assert!(spare.keep(vec![1; MIN_SHARED]));
        assert!(!spare.keep(Vec::with_capacity(MIN_SHARED / 2)));
        // Too large for a small value: not handed out, and still kept.
        assert_eq!(spare.take(MIN_SHARED / 4).capacity(), MIN_SHARED / 4);
        let buffer = spare.take(MIN_SHARED + 1);
        assert_eq!(buffer.capacity(), MIN_SHARED + 1);
        let buffer = spare.take(MIN_SHARED);
        assert!(buffer.is_empty() && buffer.capacity() >= MIN_SHARED);
        assert_eq!(spare.take(MIN_SHARED).capacity(), MIN_SHARED);
        spare.keep(buffer);
        assert!(spare.due(Duration::from_secs(5)).is_some());
        spare.trim(Duration::from_secs(3600));
        assert!(spare.due(Duration::ZERO).is_some());
        spare.trim(Duration::ZERO);
        assert!(spare.due(Duration::ZERO).is_none());
        assert_eq!(spare.take(MIN_SHARED).capacity(), MIN_SHARED);
    }

    #[test]
    fn only_payloads_that_would_fit_a_frame_are_shared() {
        assert!(!shares(MIN_SHARED - 1));
        assert!(shares(MIN_SHARED));
        assert!(shares(MAX_SHARED));
        assert!(!shares(MAX_SHARED + 1));
    }

    #[test]
    fn a_short_segment_is_all_ring_and_a_long_one_splits() {
        let short = arena(RING_WORDS);
        let p = parts(&short);
        assert_eq!(p.ring.len(), RING_WORDS);
        assert!(p.to_parent.is_none() && p.to_worker.is_none());
        let long = arena(SEGMENT_WORDS);
        let p = parts(&long);
        assert_eq!(p.ring.len(), RING_WORDS);
        assert_eq!(p.to_parent.map(<[_]>::len), Some(ARENA_BYTES / 8));
        assert_eq!(p.to_worker.map(<[_]>::len), Some(ARENA_BYTES / 8));
        assert_eq!(data_bytes(p.to_worker.expect("arena")), ARENA_BYTES - 64);
        assert_eq!(to_parent_data().len(), ARENA_BYTES - 64);
        assert_eq!(to_worker_data().len(), ARENA_BYTES - 64);
        assert_eq!(to_worker_data().end, SEGMENT_WORDS * 8);
    }
}
