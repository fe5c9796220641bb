//! The outcome ring: a worker's call outcomes in a memory segment it shares with its parent,
//! so that a call's report costs no system call and still survives the worker's death.
//!
//! The segment is a slice of [`AtomicU64`] words, created by the parent and mapped by the
//! worker (the mapping itself is the transport's). Every access is an atomic load or store,
//! so a worker that scribbles over the segment produces garbage, never undefined behaviour in
//! the parent, and the parent reads the segment as untrusted input, exactly like a frame.
//!
//! # Layout
//!
//! The first [`HEADER_WORDS`] words are the header; the next [`Layout::capacity`] bytes, the
//! largest power of two that fits, are the ring.
//!
//! | word | written by | meaning |
//! |---|---|---|
//! | 0 | parent | [`MAGIC`] |
//! | 1 | parent | the ring's capacity in bytes |
//! | 2 | worker | *head*: bytes of entries published, a count that only grows |
//! | 3 | parent | *tail*: bytes the parent has consumed, likewise |
//! | 4 | worker | [`WORKER_READY`] once the worker writes its outcomes here |
//! | 8 + 3l .. | worker | lane `l`: the call running there (task id + 1, or 0), its index, its start |
//!
//! An entry is 8-byte aligned and never wraps: one that does not fit before the ring's end is
//! preceded by a [`WRAP`] word, and starts again at the ring's start. Its words are the
//! sequence number (1, 2, ... in publication order), the batch's task id, the call's index and
//! the payload's length (one word, index in the low half), the call's run time in
//! microseconds, a checksum over all of these and the payload, then the payload (a postcard
//! [`Outcome`](crate::Outcome)) padded to a whole word.
//!
//! An entry for the call after the previous entry's, in the same batch and untimed (a run
//! time of 0), is *compact*: two words, [`COMPACT`] with the payload's length in its low
//! bits, then the checksum, then the payload. Its sequence number, task id and index are the
//! ones that follow the previous entry's, as the parent counts them, and its checksum is the
//! one the full entry would carry, computed from them: so a compact entry that is not the
//! next call's, or one scribbled into being, fails its checksum. A `map` of small items
//! publishes half the words a call this way.
//!
//! # Exact blame
//!
//! A worker runs a call in a *lane*; with one call at a time, lane 0. The order of its
//! stores is what makes the parent's blame exact:
//!
//! 1. Before a call starts, the worker stores the lane's index and start, then its task id
//!    with `Release`: the call is *started*.
//! 2. When the call ends, the worker writes its entry, then stores the new head with
//!    `Release`: the call is *done*. Only then does it clear the lane or start anything else
//!    (the next call, a report, a primitive call) that could kill it.
//! 3. An outcome too large for the ring goes as a frame instead, and the lane is cleared only
//!    after that write returned: the frame is in the socket, which the parent drains before it
//!    reads the segment of a dead worker. The rest of that batch's outcomes go as frames too:
//!    the parent reads the ring before it handles a report frame, so an outcome published in
//!    the ring after the frame was written would be read ahead of it.
//!
//! The parent loads the head with `Acquire` before it reads entries, and the lane with
//! `Acquire` once the worker is dead and its socket drained. So for a dead worker: a call with
//! an entry (or a frame) is done and its value is delivered; the call the lane names, if it has
//! neither, is the one that was running, and the only one blamed; the batch's other calls never
//! started and run elsewhere. A death between steps 2 and the lane's clearing leaves a lane
//! naming a call that is done: done wins. The parent stores its tail with `Release` after it
//! has copied entries out, and the worker loads it with `Acquire` before it reuses their space.
//!
//! # Validation
//!
//! The parent keeps its own copy of the tail and of the next sequence number, and trusts no
//! word of the segment: a head behind the tail, ahead of it by more than the capacity, or not
//! a multiple of 8; an entry whose sequence number is not the next one, whose length runs past
//! the head, or whose checksum does not match; each is a [`RingError`], which the parent
//! answers by killing the worker. A value is copied out once, then decoded.

use std::sync::atomic::{AtomicU64, Ordering};

/// Words before the ring: a page of 4 KiB.
pub const HEADER_WORDS: usize = 512;

/// Header word 0 once the parent set the segment up: `offsprng` in ASCII, then a layout
/// version in the low byte (2: compact entries, a capacity of a power of two).
pub const MAGIC: u64 = 0x6f66_6673_7072_6e02;

/// Header word 4 once the worker writes its outcomes into the ring.
pub const WORKER_READY: u64 = 0x7265_6164_7921_0001;

/// A word that says "the entry is at the ring's start".
pub const WRAP: u64 = u64::MAX;

/// The high byte of a compact entry's first word (see the module docs); its low 32 bits are
/// the payload's length.
pub const COMPACT: u64 = 0xc0 << 56;

/// A compact entry's header words.
const COMPACT_HEADER: usize = 2;

/// Lanes: calls a worker may run at once, each with its started record.
pub const LANES: usize = 16;

const W_MAGIC: usize = 0;
const W_CAPACITY: usize = 1;
const W_HEAD: usize = 2;
const W_TAIL: usize = 3;
const W_READY: usize = 4;
const W_LANES: usize = 8;

/// Words of an entry before its payload.
const ENTRY_HEADER: usize = 5;

/// Appends the postcard encoding of `outcome` (a ring entry's payload) to `buf`.
///
/// # Errors
///
/// [`WireError::Encode`](crate::WireError::Encode) if postcard refuses (it does not for an
/// [`Outcome`](crate::Outcome)).
pub fn encode_outcome(outcome: &crate::Outcome, buf: &mut Vec<u8>) -> Result<(), crate::WireError> {
    if let crate::Outcome::Value(bytes) = outcome {
        // The common case, written as postcard writes it: the variant (0), the length as a
        // varint, the bytes.
        let mut head = [0u8; 10];
        let n = crate::varint::write(bytes.len() as u64, &mut head);
        buf.reserve(1 + n + bytes.len());
        buf.push(0);
        buf.extend_from_slice(&head[..n]);
        buf.extend_from_slice(bytes);
        return Ok(());
    }
    let taken = std::mem::take(buf);
    *buf =
        postcard::to_extend(outcome, taken).map_err(|e| crate::WireError::Encode(e.to_string()))?;
    Ok(())
}

/// Decodes a ring entry's payload, exactly as [`decode`](crate::decode) of an
/// [`Outcome`](crate::Outcome) would, with a short path for the common `Outcome::Value`.
///
/// # Errors
///
/// As [`decode`](crate::decode): [`WireError::Malformed`](crate::WireError::Malformed) for
/// anything that is not exactly one encoded outcome.
pub fn decode_outcome(payload: &[u8]) -> Result<crate::Outcome, crate::WireError> {
    if let Some(value) = value_of(payload) {
        return Ok(crate::Outcome::Value(value.to_vec()));
    }
    crate::decode(payload)
}

/// The value's bytes when a ring entry's payload is an `Outcome::Value` in the form
/// [`encode_outcome`] writes, borrowed from the payload; `None` for anything else, which
/// [`decode_outcome`] decodes (or refuses) in full.
pub fn value_of(payload: &[u8]) -> Option<&[u8]> {
    // The length: a varint of at most 9 bytes (63 bits), in its shortest form (no zero
    // last byte after the first); longer or other forms are left to postcard.
    if let Some((&0, rest)) = payload.split_first()
        && let Some((len, n)) = crate::varint::read(rest)
        && n <= 9
        && (n == 1 || rest[n - 1] != 0)
        && len == (rest.len() - n) as u64
    {
        return Some(&rest[n..]);
    }
    None
}

/// The payload of the largest entry a ring of `capacity` bytes takes: a quarter of it, so
/// that a full ring still drains in a few entries. Larger outcomes go as frames.
pub fn max_payload(capacity: usize) -> usize {
    capacity / 4
}

/// Where the ring lies in a segment of `words` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The ring's size in bytes.
    pub capacity: usize,
}

impl Layout {
    /// Where byte count `at` (a head or a tail) lies in the ring (a division would cost tens
    /// of cycles, on every entry each side handles).
    fn offset(&self, at: u64) -> u64 {
        at & (self.capacity as u64 - 1)
    }

    /// The layout of a segment of `words` words, if it is large enough for a ring: the
    /// largest power of two of bytes after the header (words past it are unused), so that a
    /// position in the ring is a mask, not a division.
    pub fn of(words: usize) -> Option<Self> {
        let ring_words = words.checked_sub(HEADER_WORDS)?;
        (ring_words >= 64).then(|| Self {
            capacity: 1 << (ring_words * 8).ilog2(),
        })
    }
}

/// Why the parent stopped trusting a worker's ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The head is not where a well-behaved worker could have put it.
    #[error("its ring's head ({head}) is impossible for a tail of {tail} and {capacity} bytes")]
    Head {
        /// The head read.
        head: u64,
        /// The parent's tail.
        tail: u64,
        /// The ring's capacity.
        capacity: usize,
    },
    /// An entry is not the next one, runs past the head, or fails its checksum.
    #[error("its ring holds a malformed entry at byte {at}: {what}")]
    Entry {
        /// The entry's position (the tail when it was read).
        at: u64,
        /// What is wrong, in a few words.
        what: &'static str,
    },
}

/// One call's outcome, as read from the ring: its payload is the reader's copy, valid until
/// the next entry is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The batch's task id.
    pub task_id: u64,
    /// The call's index in its batch.
    pub index: u32,
    /// How long the call ran, in microseconds.
    pub elapsed_us: u64,
    /// The postcard encoding of its [`Outcome`](crate::Outcome), copied out of the segment.
    pub payload: &'a [u8],
}

/// What a lane says is running: read from a dead worker's segment, so untrusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The batch's task id.
    pub task_id: u64,
    /// The call's index in its batch.
    pub index: u64,
    /// When it started, in the worker's microseconds.
    pub started_us: u64,
}

/// An entry's checksum, fed one word at a time, so that both sides compute it in the same
/// pass that copies the payload.
struct Checksum(u64);

impl Checksum {
    fn of_header(seq: u64, task_id: u64, index_len: u64, elapsed_us: u64) -> Self {
        let mut sum = Self(0x243f_6a88_85a3_08d3);
        for word in [seq, task_id, index_len, elapsed_us] {
            sum.add(word);
        }
        sum
    }

    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }
}

fn words_for(bytes: usize) -> usize {
    bytes.div_ceil(8)
}

/// The payload's bytes as little-endian words, the last one padded with zeros.
fn payload_words(payload: &[u8]) -> impl Iterator<Item = u64> + '_ {
    // Whole words as loads; the short last one assembled in a register (a copy into a
    // zeroed array, then a load of it, stalls on the bytes just stored: it was a third of
    // a small entry's cost).
    let (words, rest) = payload.as_chunks::<8>();
    let last = (!rest.is_empty()).then(|| {
        rest.iter()
            .rev()
            .fold(0u64, |word, &b| word << 8 | u64::from(b))
    });
    words
        .iter()
        .map(|word| u64::from_le_bytes(*word))
        .chain(last)
}

/// Whether the worker attached to a ring the parent set up in `segment` (header word 4):
/// before that, nothing in the segment is the worker's to read.
pub fn worker_attached(segment: &[AtomicU64]) -> bool {
    segment
        .get(W_READY)
        .is_some_and(|word| word.load(Ordering::Acquire) == WORKER_READY)
}

/// The parent's side: sets a segment up, reads the entries a worker publishes, and what a
/// dead worker's lanes say.
#[derive(Debug)]
pub struct RingReader {
    layout: Layout,
    tail: u64,
    next_seq: u64,
    /// The task id and index of the last entry read, which a compact entry follows.
    last: Option<(u64, u32)>,
    /// Where entries are copied out of the segment, kept between reads.
    scratch: Vec<u8>,
}

impl RingReader {
    /// Sets up a fresh segment (all zeros) for a worker, and the reader of its ring. `None`
    /// when the segment is too small for a ring.
    pub fn init(segment: &[AtomicU64]) -> Option<Self> {
        let layout = Layout::of(segment.len())?;
        segment[W_CAPACITY].store(layout.capacity as u64, Ordering::Relaxed);
        segment[W_HEAD].store(0, Ordering::Relaxed);
        segment[W_TAIL].store(0, Ordering::Relaxed);
        segment[W_MAGIC].store(MAGIC, Ordering::Release);
        Some(Self {
            layout,
            tail: 0,
            next_seq: 1,
            last: None,
            scratch: Vec::new(),
        })
    }

    /// Whether the worker said it writes its outcomes here (so its lanes say what runs).
    pub fn worker_ready(&self, segment: &[AtomicU64]) -> bool {
        segment[W_READY].load(Ordering::Acquire) == WORKER_READY
    }

    /// Reads every entry published since the last call, in order, handing each to `each`,
    /// then tells the worker the space is free. On an error, the entries before it were
    /// handed out; the ring must not be read again.
    ///
    /// # Errors
    ///
    /// [`RingError`] for a head or an entry no well-behaved worker could have written.
    pub fn read(
        &mut self,
        segment: &[AtomicU64],
        mut each: impl FnMut(Entry<'_>),
    ) -> Result<usize, RingError> {
        let capacity = self.layout.capacity as u64;
        let head = segment[W_HEAD].load(Ordering::Acquire);
        if head < self.tail || head - self.tail > capacity || !head.is_multiple_of(8) {
            return Err(RingError::Head {
                head,
                tail: self.tail,
                capacity: self.layout.capacity,
            });
        }
        let ring = &segment[HEADER_WORDS..HEADER_WORDS + self.layout.capacity / 8];
        let mut read = 0;
        while self.tail < head {
            let at = self.tail;
            let bad = |what| RingError::Entry { at, what };
            let mut pos = self.layout.offset(self.tail) as usize / 8;
            let first = ring[pos].load(Ordering::Relaxed);
            if first == WRAP {
                // The rest of the ring up to its end is padding.
                let skip = capacity - self.layout.offset(self.tail);
                if self.tail + skip > head {
                    return Err(bad("a wrap past the head"));
                }
                self.tail += skip;
                continue;
            }
            let room = ring.len() - pos;
            let compact = first & (0xff << 56) == COMPACT;
            let header_words = if compact {
                COMPACT_HEADER
            } else {
                ENTRY_HEADER
            };
            if room < header_words {
                return Err(bad("an entry that does not fit before the ring's end"));
            }
            let (seq, task_id, index_len, elapsed_us, sum) = if compact {
                let Some((task_id, index)) = self.last else {
                    return Err(bad("a compact entry with no entry before it"));
                };
                if first & 0x00ff_ffff_0000_0000 != 0 {
                    return Err(bad("a compact entry's length word is malformed"));
                }
                let len = first & 0xffff_ffff;
                let index_len = u64::from(index.wrapping_add(1)) | (len << 32);
                let sum = ring[pos + 1].load(Ordering::Relaxed);
                (self.next_seq, task_id, index_len, 0, sum)
            } else {
                let header: [u64; ENTRY_HEADER] =
                    std::array::from_fn(|i| ring[pos + i].load(Ordering::Relaxed));
                let [seq, task_id, index_len, elapsed_us, sum] = header;
                if seq != self.next_seq {
                    return Err(bad("not the next sequence number"));
                }
                (seq, task_id, index_len, elapsed_us, sum)
            };
            let len = (index_len >> 32) as usize;
            let total = header_words + words_for(len);
            if total > room || len > max_payload(self.layout.capacity) {
                return Err(bad("a length past the ring's end"));
            }
            if self.tail + (total as u64) * 8 > head {
                return Err(bad("a length past the head"));
            }
            pos += header_words;
            // One pass copies the payload out and checks it.
            let mut expected = Checksum::of_header(seq, task_id, index_len, elapsed_us);
            let payload = &mut self.scratch;
            payload.clear();
            for word in &ring[pos..pos + words_for(len)] {
                let word = word.load(Ordering::Relaxed);
                expected.add(word);
                payload.extend_from_slice(&word.to_le_bytes());
            }
            if expected.0 != sum {
                return Err(bad("a checksum that does not match"));
            }
            payload.truncate(len);
            self.tail += (total as u64) * 8;
            self.next_seq += 1;
            self.last = Some((task_id, index_len as u32));
            read += 1;
            each(Entry {
                task_id,
                index: index_len as u32,
                elapsed_us,
                payload,
            });
            if self.scratch.capacity() > 64 * 1024 {
                // A large entry's copy is not kept.
                self.scratch = Vec::new();
            }
        }
        segment[W_TAIL].store(self.tail, Ordering::Release);
        Ok(read)
    }

    /// Tells the worker again how far the parent has read (a scribbled tail is rewritten).
    pub fn publish_tail(&self, segment: &[AtomicU64]) {
        segment[W_TAIL].store(self.tail, Ordering::Release);
    }

    /// What each lane says is running: for a dead worker whose socket and ring were drained.
    pub fn running(&self, segment: &[AtomicU64]) -> Vec<Running> {
        (0..LANES)
            .filter_map(|lane| {
                let base = W_LANES + 3 * lane;
                let task = segment[base].load(Ordering::Acquire);
                (task != 0).then(|| Running {
                    task_id: task - 1,
                    index: segment[base + 1].load(Ordering::Relaxed),
                    started_us: segment[base + 2].load(Ordering::Relaxed),
                })
            })
            .collect()
    }
}

/// Why an outcome was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// It is in the ring.
    Published,
    /// Not enough free space now: the parent has not read far enough.
    Full,
    /// Larger than a ring entry may be: send it as a frame.
    TooLarge,
}

/// The worker's side: writes outcomes and lane records into a segment the parent set up.
#[derive(Debug)]
pub struct RingWriter {
    layout: Layout,
    head: u64,
    seq: u64,
    /// The tail as last loaded: the parent's tail only grows, so this is a bound on the free
    /// space that needs no load of the word the parent writes (its cache line moves between
    /// the processes on every load that follows a store of the parent's).
    seen_tail: u64,
    /// The task id and index of the last entry published, which a compact entry follows.
    last: Option<(u64, u32)>,
}

impl RingWriter {
    /// The writer of a segment the parent set up; `None` when it was not (no magic, or a
    /// capacity that does not match the segment's size). Marks the segment as in use.
    pub fn attach(segment: &[AtomicU64]) -> Option<Self> {
        let layout = Layout::of(segment.len())?;
        if segment[W_MAGIC].load(Ordering::Acquire) != MAGIC
            || segment[W_CAPACITY].load(Ordering::Relaxed) != layout.capacity as u64
        {
            return None;
        }
        let head = segment[W_HEAD].load(Ordering::Relaxed);
        segment[W_READY].store(WORKER_READY, Ordering::Release);
        Some(Self {
            layout,
            head,
            seq: 1,
            seen_tail: segment[W_TAIL].load(Ordering::Acquire).min(head),
            last: None,
        })
    }

    /// The ring's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.layout.capacity
    }

    /// Bytes published so far (the head).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Records that lane `lane`'s call `index` of batch `task_id` starts now (`started_us`).
    pub fn start(
        &self,
        segment: &[AtomicU64],
        lane: usize,
        task_id: u64,
        index: u64,
        started_us: u64,
    ) {
        let base = W_LANES + 3 * (lane % LANES);
        segment[base + 1].store(index, Ordering::Relaxed);
        segment[base + 2].store(started_us, Ordering::Relaxed);
        segment[base].store(task_id.wrapping_add(1), Ordering::Release);
    }

    /// Records that lane `lane` runs nothing.
    pub fn idle(&self, segment: &[AtomicU64], lane: usize) {
        segment[W_LANES + 3 * (lane % LANES)].store(0, Ordering::Release);
    }

    /// How far the parent says it has read (the tail, as the segment holds it).
    pub fn tail(&self, segment: &[AtomicU64]) -> u64 {
        segment[W_TAIL].load(Ordering::Acquire)
    }

    /// Bytes written and not yet read by the parent.
    pub fn used(&self, segment: &[AtomicU64]) -> u64 {
        self.head
            .saturating_sub(segment[W_TAIL].load(Ordering::Acquire))
            .min(self.layout.capacity as u64)
    }

    /// Whether more than `bytes` are written and not yet read by the parent: as
    /// [`used`](Self::used)` > bytes`, loading the tail only when the one last seen says so.
    pub fn used_over(&mut self, segment: &[AtomicU64], bytes: u64) -> bool {
        if self.head - self.seen_tail <= bytes {
            return false;
        }
        self.load_tail(segment, 0);
        self.head - self.seen_tail > bytes
    }

    /// Loads the parent's tail, and whether it leaves room for `needed` more bytes. A tail
    /// ahead of the head (a scribble) is not taken: at worst the worker waits, and the parent
    /// rewrites the tail.
    fn load_tail(&mut self, segment: &[AtomicU64], needed: u64) -> bool {
        let tail = segment[W_TAIL].load(Ordering::Acquire);
        if tail > self.head {
            return false;
        }
        self.seen_tail = tail;
        self.head - tail + needed <= self.layout.capacity as u64
    }

    /// Publishes one call's outcome.
    pub fn push(
        &mut self,
        segment: &[AtomicU64],
        task_id: u64,
        index: u32,
        elapsed_us: u64,
        payload: &[u8],
    ) -> Push {
        let capacity = self.layout.capacity as u64;
        if payload.len() > max_payload(self.layout.capacity) {
            return Push::TooLarge;
        }
        let compact = elapsed_us == 0
            && u32::try_from(payload.len()).is_ok()
            && self.last == Some((task_id, index.wrapping_sub(1)));
        let header_words = if compact {
            COMPACT_HEADER
        } else {
            ENTRY_HEADER
        };
        let total = (header_words + words_for(payload.len())) as u64 * 8;
        let to_end = capacity - self.layout.offset(self.head);
        let needed = if total > to_end {
            to_end + total
        } else {
            total
        };
        // A tail the parent never wrote (a scribble) must not let the worker overwrite
        // unread entries: at worst it waits, and the parent rewrites the tail.
        if self.head - self.seen_tail + needed > capacity && !self.load_tail(segment, needed) {
            return Push::Full;
        }
        let ring = &segment[HEADER_WORDS..HEADER_WORDS + self.layout.capacity / 8];
        if total > to_end {
            ring[self.layout.offset(self.head) as usize / 8].store(WRAP, Ordering::Relaxed);
            self.head += to_end;
        }
        let mut pos = self.layout.offset(self.head) as usize / 8;
        let index_len = u64::from(index) | ((payload.len() as u64) << 32);
        // The payload first, summed as it is written; then the header with the sum. Nothing
        // is read before the head is published, so the order within an entry is free.
        let mut sum = Checksum::of_header(self.seq, task_id, index_len, elapsed_us);
        for (slot, word) in ring[pos + header_words..]
            .iter()
            .zip(payload_words(payload))
        {
            sum.add(word);
            slot.store(word, Ordering::Relaxed);
        }
        if compact {
            ring[pos].store(COMPACT | payload.len() as u64, Ordering::Relaxed);
            ring[pos + 1].store(sum.0, Ordering::Relaxed);
        } else {
            for word in [self.seq, task_id, index_len, elapsed_us, sum.0] {
                ring[pos].store(word, Ordering::Relaxed);
                pos += 1;
            }
        }
        self.head += total;
        self.seq += 1;
        self.last = Some((task_id, index));
        segment[W_HEAD].store(self.head, Ordering::Release);
        Push::Published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(words: usize) -> Vec<AtomicU64> {
        (0..words).map(|_| AtomicU64::new(0)).collect()
    }

    /// An entry with its own copy of the payload.
    #[derive(Debug)]
    struct Got {
        task_id: u64,
        index: u32,
        payload: Vec<u8>,
    }

    fn read_all(reader: &mut RingReader, seg: &[AtomicU64]) -> Result<Vec<Got>, RingError> {
        let mut out = Vec::new();
        reader.read(seg, |e| {
            out.push(Got {
                task_id: e.task_id,
                index: e.index,
                payload: e.payload.to_vec(),
            });
        })?;
        Ok(out)
    }

    /// The short paths write and read exactly what postcard does: every outcome encodes to
    /// postcard's bytes, and any bytes (valid or not, near a value's encoding or random)
    /// decode to what postcard gives, error or value.
    #[test]
    fn outcome_short_paths_match_postcard() {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d);
        let same = |payload: &[u8]| {
            let fast = decode_outcome(payload).map_err(|e| e.to_string());
            let slow = crate::decode::<crate::Outcome>(payload).map_err(|e| e.to_string());
            assert_eq!(fast, slow, "{payload:?}");
        };
        for len in [0, 1, 2, 127, 128, 129, 300, 16_383, 16_384, 70_000] {
            let value = crate::Outcome::Value((0..len).map(|i| i as u8).collect());
            let mut buf = vec![9];
            encode_outcome(&value, &mut buf).unwrap();
            assert_eq!(
                &buf[1..],
                postcard::to_allocvec(&value).unwrap(),
                "len {len}"
            );
            same(&buf[1..]);
            // Cut short, one byte too many, a non-shortest length.
            same(&buf[1..buf.len() - 1]);
            let mut longer = buf[1..].to_vec();
            longer.push(0);
            same(&longer);
        }
        same(&[0, 0x80, 0x00]);
        same(&[0, 0x81, 0x00, 7]);
        same(&[
            0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        same(&[]);
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next().is_multiple_of(2)
                && let Some(first) = payload.first_mut()
            {
                *first = 0;
            }
            same(&payload);
        }
        let panicked = crate::Outcome::Panicked {
            message: "boom".into(),
            location: None,
        };
        let mut buf = Vec::new();
        encode_outcome(&panicked, &mut buf).unwrap();
        assert_eq!(decode_outcome(&buf).unwrap(), panicked);
    }

    #[test]
    fn entries_come_back_in_order_across_many_wraps() {
        let seg = segment(HEADER_WORDS + 128);
        let mut reader = RingReader::init(&seg).expect("a ring");
        let mut writer = RingWriter::attach(&seg).expect("attached");
        assert!(reader.worker_ready(&seg));
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..2_000u32 {
            let payload: Vec<u8> = (0..(i % 200) as u8).collect();
            loop {
                match writer.push(&seg, 7, i, u64::from(i), &payload) {
                    Push::Published => break,
                    Push::Full => got.extend(read_all(&mut reader, &seg).expect("valid")),
                    Push::TooLarge => panic!("{} bytes refused", payload.len()),
                }
            }
            expected.push(payload);
        }
        got.extend(read_all(&mut reader, &seg).expect("valid"));
        assert_eq!(got.len(), expected.len());
        for (i, (entry, payload)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(entry.index as usize, i);
            assert_eq!(entry.task_id, 7);
            assert_eq!(&entry.payload, payload);
        }
        assert_eq!(writer.used(&seg), 0);
    }

    #[test]
    fn compact_and_full_entries_mix_across_wraps_and_batches() {
        let seg = segment(HEADER_WORDS + 128);
        let mut reader = RingReader::init(&seg).expect("a ring");
        let mut writer = RingWriter::attach(&seg).expect("attached");
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let mut words = 0;
        for i in 0..3_000u32 {
            // Batches of 50 calls; every seventh call timed (a full entry).
            let (task_id, index) = (u64::from(i / 50), i % 50);
            let elapsed = u64::from(i % 7 == 0) * 3;
            let payload: Vec<u8> = (0..(i % 20) as u8).collect();
            let head = writer.head();
            loop {
                match writer.push(&seg, task_id, index, elapsed, &payload) {
                    Push::Published => break,
                    Push::Full => got.extend(read_all(&mut reader, &seg).expect("valid")),
                    Push::TooLarge => panic!("{} bytes refused", payload.len()),
                }
            }
            words += (writer.head() - head) / 8;
            expected.push((task_id, index, payload));
        }
        got.extend(read_all(&mut reader, &seg).expect("valid"));
        assert_eq!(got.len(), expected.len());
        for (entry, (task_id, index, payload)) in got.iter().zip(&expected) {
            assert_eq!((entry.task_id, entry.index), (*task_id, *index));
            assert_eq!(&entry.payload, payload);
        }
        // Mostly compact: well under the five header words a full entry takes.
        let payload_words: u64 = expected.iter().map(|e| e.2.len().div_ceil(8) as u64).sum();
        assert!(words - payload_words < 3 * 3_000, "{words} words written");
    }

    #[test]
    fn a_compact_entry_that_does_not_follow_fails_its_checksum() {
        let seg = segment(HEADER_WORDS + 128);
        let mut reader = RingReader::init(&seg).expect("a ring");
        let mut writer = RingWriter::attach(&seg).expect("attached");
        assert_eq!(writer.push(&seg, 4, 0, 0, &[1; 9]), Push::Published);
        assert_eq!(read_all(&mut reader, &seg).expect("valid").len(), 1);
        // The writer thinks the last entry was call 6 of batch 4: its compact entry for call
        // 7 says nothing of which call it is, and the reader expects call 1.
        writer.last = Some((4, 6));
        assert_eq!(writer.push(&seg, 4, 7, 0, &[1; 9]), Push::Published);
        assert!(matches!(
            read_all(&mut reader, &seg),
            Err(RingError::Entry {
                what: "a checksum that does not match",
                ..
            })
        ));
        // Nor is a compact entry the first of a ring.
        let seg = segment(HEADER_WORDS + 128);
        let mut reader = RingReader::init(&seg).expect("a ring");
        seg[HEADER_WORDS].store(COMPACT, Ordering::Relaxed);
        seg[W_HEAD].store(16, Ordering::Release);
        assert!(read_all(&mut reader, &seg).is_err());
    }

    #[test]
    fn the_tail_the_writer_saw_bounds_its_space_until_it_loads_the_next() {
        let seg = segment(HEADER_WORDS + 128);
        let mut reader = RingReader::init(&seg).expect("a ring");
        let mut writer = RingWriter::attach(&seg).expect("attached");
        let capacity = writer.capacity() as u64;
        let mut pushed = 0u32;
        while writer.push(&seg, 1, pushed, 0, &[9; 16]) == Push::Published {
            pushed += 1;
        }
        assert!(pushed > 1 && writer.used_over(&seg, capacity / 2));
        // A tail ahead of the head (a scribble) gives no room, and the real one gives it back.
        seg[W_TAIL].store(writer.head() + 8, Ordering::Release);
        assert_eq!(writer.push(&seg, 1, pushed, 0, &[9; 16]), Push::Full);
        reader.publish_tail(&seg);
        assert_eq!(writer.push(&seg, 1, pushed, 0, &[9; 16]), Push::Full);
        let read = read_all(&mut reader, &seg).expect("valid");
        assert_eq!(read.len(), pushed as usize);
        assert!(!writer.used_over(&seg, 0));
        assert_eq!(writer.push(&seg, 1, pushed, 0, &[9; 16]), Push::Published);
        assert_eq!(read_all(&mut reader, &seg).expect("valid").len(), 1);
    }

    #[test]
    fn a_payload_over_a_quarter_of_the_ring_is_refused() {
        let seg = segment(HEADER_WORDS + 128);
        let _reader = RingReader::init(&seg).expect("a ring");
        let mut writer = RingWriter::attach(&seg).expect("attached");
        assert_eq!(writer.push(&seg, 1, 0, 0, &[0; 257]), Push::TooLarge);
        assert_eq!(writer.push(&seg, 1, 0, 0, &[0; 256]), Push::Published);
    }

    #[test]
    fn a_worker_cannot_attach_to_a_segment_nobody_set_up() {
        let seg = segment(HEADER_WORDS + 128);
        assert!(RingWriter::attach(&seg).is_none());
        assert!(RingReader::init(&segment(HEADER_WORDS)).is_none());
        // A ring is a power of two of bytes; the words past it are not the ring's.
        assert_eq!(
            Layout::of(HEADER_WORDS + 100).map(|l| l.capacity),
            Some(512)
        );
        assert_eq!(
            Layout::of(HEADER_WORDS + 128).map(|l| l.capacity),
            Some(1024)
        );
    }

    #[test]
    fn lanes_say_what_runs() {
        let seg = segment(HEADER_WORDS + 128);
        let reader = RingReader::init(&seg).expect("a ring");
        let writer = RingWriter::attach(&seg).expect("attached");
        assert!(reader.running(&seg).is_empty());
        writer.start(&seg, 0, 41, 3, 99);
        assert_eq!(
            reader.running(&seg),
            vec![Running {
                task_id: 41,
                index: 3,
                started_us: 99
            }]
        );
        writer.idle(&seg, 0);
        assert!(reader.running(&seg).is_empty());
    }

    /// Any word of the segment scribbled gives an error or entries exactly as written, never
    /// a panic or a changed value.
    #[test]
    fn scribbled_words_give_errors_never_wrong_values() {
        let mut next = crate::xorshift(0x1234_5678);
        let mut detected = 0;
        for round in 0..3_000 {
            let seg = segment(HEADER_WORDS + 256);
            let mut reader = RingReader::init(&seg).expect("a ring");
            let mut writer = RingWriter::attach(&seg).expect("attached");
            let mut written = Vec::new();
            for i in 0..(round % 20) as u32 {
                let payload = vec![i as u8; (i % 40) as usize];
                if writer.push(&seg, 5, i, 0, &payload) == Push::Published {
                    written.push(payload);
                }
            }
            for _ in 0..1 + next() % 4 {
                let word = (next() as usize) % seg.len();
                let value = match next() % 5 {
                    0 => 0,
                    1 => u64::MAX,
                    2 => next() % 4096,
                    3 => COMPACT | (next() % 64),
                    _ => next(),
                };
                seg[word].store(value, Ordering::Relaxed);
            }
            match read_all(&mut reader, &seg) {
                Ok(entries) => {
                    for entry in &entries {
                        assert_eq!(entry.task_id, 5);
                        assert_eq!(&entry.payload, &written[entry.index as usize]);
                    }
                }
                Err(_) => detected += 1,
            }
        }
        assert!(detected > 100, "only {detected} scribbles detected");
    }
}
