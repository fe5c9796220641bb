//! How a call's outcome reaches the parent: through the outcome ring the parent shares with
//! this worker (see `offspring_wire::ring`, whose module docs give the ordering that keeps
//! blame exact), or, without a ring, in a frame per call.
//!
//! With a ring, a call costs no system call: the task thread marks the call started in its
//! lane, runs it, publishes its outcome and clears the lane. The parent reads the ring when
//! a frame announces it: the batch's `Finished`, a `Doorbell` when the ring is half full or
//! while the worker waits for room, and, a few milliseconds after an outcome that nothing
//! announced yet, a `Doorbell` from the i/o thread, so that `imap`, progress bars and timeouts
//! stay live during a long batch. An outcome too large for the ring goes as a frame, and the
//! call counts as done only once that write returned; the rest of that batch's outcomes go as
//! frames too. The parent reads the ring before it handles a report frame, so an outcome
//! published in the ring after the frame was written could be read first and overtake it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicU64;

use offspring_transport::Segment;
use offspring_wire::arena;
use offspring_wire::ring::{Push, RingWriter, encode_outcome};
use offspring_wire::{FromWorker, Outcome, encode};

use crate::outbox::Outbox;

/// How long an outcome may wait in the ring, unannounced, before the i/o thread rings.
pub(crate) const DOORBELL_DELAY: Duration = Duration::from_millis(2);

/// After this long without work, the worker gives the ring's pages back to the OS.
const IDLE_TRIM: Duration = Duration::from_secs(5);

/// The test-only switch that makes a worker scribble over its own segment: set to a seed, the
/// worker writes random words over its segment once, after a few calls, and goes on. Tests
/// use it to show that the parent reads the segment as untrusted input.
pub const ENV_TEST_SCRIBBLE: &str = "OFFSPRING_TEST_SCRIBBLE";

/// Set by the task thread when it published an outcome nothing announced yet; the i/o
/// thread rings [`DOORBELL_DELAY`] later if it is still set.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    unannounced: AtomicBool,
    pub(crate) wake: tokio::sync::Notify,
}

impl Doorbell {
    /// Called by the i/o thread once the delay passed: whether it must ring.
    pub(crate) fn take(&self) -> bool {
        self.unannounced.swap(false, Ordering::AcqRel)
    }
}

/// The worker's side of its outcome ring, and of its segment's arenas when it has them (see
/// `offspring_wire::arena`).
pub(crate) struct Ring {
    segment: Arc<Segment>,
    writer: RingWriter,
    doorbell: Arc<Doorbell>,
    /// The worker's clock for lane start times.
    epoch: Instant,
    /// Whether the ring was written since its pages were last given back.
    touched: bool,
    payload: Vec<u8>,
    /// The batch that sent an outcome as a frame: its later outcomes go as frames too.
    frames_for: Option<u64>,
    /// Values written to the to-parent arena so far.
    shared_written: u64,
    /// Whether that arena was written since its pages were last given back.
    arena_touched: bool,
    /// The tail the parent had published when this thread last rang because the ring was
    /// over half full, and when: it rings again only once the parent has read since (a
    /// doorbell per outcome while the parent catches up would cost it a frame per call), or
    /// after [`RING_AGAIN`] in case that doorbell was lost to a scribbled tail.
    rang: Option<(u64, Instant)>,
}

/// How long a worker whose ring stays over half full waits before it rings again when the
/// parent has not moved its tail.
const RING_AGAIN: Duration = Duration::from_millis(1);

/// The buffer of the last large value this worker wrote to its arena, for the next large
/// argument the i/o thread copies out of the other one.
pub(crate) static SPARE: arena::Spare = arena::Spare::new();

/// The ring's words of a segment.
#[inline]
fn ring_of(segment: &Segment) -> &[AtomicU64] {
    arena::parts(segment.words()).ring
}

impl Ring {
    /// The ring of a segment the parent set up; `None` if it was not.
    pub(crate) fn attach(segment: Arc<Segment>, doorbell: Arc<Doorbell>) -> Option<Self> {
        let writer = RingWriter::attach(ring_of(&segment))?;
        Some(Self {
            segment,
            writer,
            doorbell,
            epoch: Instant::now(),
            touched: false,
            payload: Vec::new(),
            frames_for: None,
            shared_written: 0,
            arena_touched: false,
            rang: None,
        })
    }

    /// Marks call `index` of batch `task_id` as started, at `at` (0 when calls are not timed).
    pub(crate) fn start(&self, task_id: u64, index: usize, at: Option<Instant>) {
        let started_us = at.map_or(0, |at| {
            u64::try_from(at.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
        });
        self.writer
            .start(ring_of(&self.segment), 0, task_id, index as u64, started_us);
    }

    /// Publishes a call's outcome (in the ring, or as a frame when it is too large), then
    /// marks the lane idle. `more` says whether calls of the batch follow: then an outcome
    /// left unannounced gets the i/o thread's doorbell.
    pub(crate) fn publish(
        &mut self,
        out: &Outbox,
        task_id: u64,
        index: u32,
        elapsed_us: u64,
        mut outcome: Outcome,
        more: bool,
    ) {
        self.touched = true;
        self.share(&mut outcome);
        self.payload.clear();
        let max = offspring_wire::ring::max_payload(self.writer.capacity());
        let after_frame = self.frames_for == Some(task_id);
        // A value too large for the ring is not encoded twice: it goes as a frame.
        let fits = !after_frame && !matches!(&outcome, Outcome::Value(bytes) if bytes.len() > max);
        let encoded = fits && encode_outcome(&outcome, &mut self.payload).is_ok();
        let mut waited = None;
        loop {
            let push = if encoded {
                self.writer.push(
                    ring_of(&self.segment),
                    task_id,
                    index,
                    elapsed_us,
                    &self.payload,
                )
            } else {
                Push::TooLarge
            };
            match push {
                Push::Published => {
                    let half = self.writer.capacity() as u64 / 2;
                    if self.writer.used_over(ring_of(&self.segment), half) {
                        self.ring_when_read(out, false);
                    } else if more
                        // A load first, so a flag already set costs no write. (The i/o
                        // thread's swap then pairs with an earlier publish's swap, not this
                        // one's: a doorbell may announce a head one entry short, and the
                        // entry is read with the next frame, doorbell or death. Never lost.)
                        && !self.doorbell.unannounced.load(Ordering::Acquire)
                        && !self.doorbell.unannounced.swap(true, Ordering::AcqRel)
                    {
                        self.doorbell.wake.notify_one();
                    }
                    break;
                }
                Push::TooLarge => {
                    // The rest of the batch follows this frame in frames: none of it can be
                    // read from the ring ahead of it.
                    self.frames_for = more.then_some(task_id);
                    // The frame is in the socket once `wait_written` returns: only then is
                    // the call done (the lane still names it until then).
                    let item = report(&FromWorker::Item {
                        task_id,
                        index,
                        outcome,
                        elapsed_us,
                    });
                    if let Some(seq) = out.send(item) {
                        out.wait_written(seq);
                    }
                    break;
                }
                Push::Full => {
                    // The parent has not read far enough: ring, and wait for room (the parent
                    // rewrites its tail on every doorbell).
                    let since = *waited.get_or_insert_with(Instant::now);
                    self.ring_when_read(out, true);
                    let pause = since.elapsed().min(Duration::from_millis(1));
                    std::thread::sleep(pause.max(Duration::from_micros(20)));
                }
            }
        }
        if !more && self.frames_for == Some(task_id) {
            self.frames_for = None;
        }
        self.writer.idle(ring_of(&self.segment), 0);
        if self.payload.capacity() > 2 * max {
            // A large panic message or error: do not keep its buffer.
            self.payload = Vec::new();
        }
    }

    /// A value large enough for the to-parent arena goes there when it is free (the parent
    /// consumed every value written before): `outcome` becomes its `Outcome::Shared`, small
    /// enough for the ring. The bytes are written before the outcome is published, in the ring
    /// (whose head's `Release` store orders them) or in a frame.
    fn share(&mut self, outcome: &mut Outcome) {
        let Outcome::Value(bytes) = &*outcome else {
            return;
        };
        if !arena::shares(bytes.len()) {
            return;
        }
        let Some(to_parent) = arena::parts(self.segment.words()).to_parent else {
            return;
        };
        if !arena::free_for_worker(to_parent, self.shared_written) {
            return;
        }
        if let Some(shared) = arena::write(to_parent, 0, &[bytes]) {
            self.shared_written += 1;
            self.arena_touched = true;
            let shared = Outcome::Shared {
                count: self.shared_written,
                bytes: shared,
            };
            if let Outcome::Value(bytes) = std::mem::replace(outcome, shared) {
                SPARE.keep(bytes);
            }
        }
    }

    /// The segment, for the i/o thread, which copies a batch's arguments out of the
    /// to-worker arena.
    pub(crate) fn segment(&self) -> Arc<Segment> {
        Arc::clone(&self.segment)
    }

    /// Announces a ring over half full, unless the doorbell rung for it before is still
    /// unanswered: the parent has not moved its tail since (and, for a worker `waiting` for
    /// room, [`RING_AGAIN`] has not passed; one that is not will wait once the ring is full,
    /// so the clock is read only then).
    fn ring_when_read(&mut self, out: &Outbox, waiting: bool) {
        let tail = self.writer.tail(ring_of(&self.segment));
        if let Some((rang_at, when)) = self.rang
            && rang_at == tail
            && (!waiting || when.elapsed() < RING_AGAIN)
        {
            return;
        }
        self.rang = Some((tail, Instant::now()));
        self.ring_now(out);
    }

    /// Announces the ring now, with a frame the task thread writes itself.
    fn ring_now(&self, out: &Outbox) {
        self.announced();
        if let Ok(frame) = encode(&FromWorker::Doorbell) {
            let _ = out.send([frame]);
        }
    }

    /// Another frame is about to announce the ring: no delayed doorbell is needed.
    pub(crate) fn announced(&self) {
        self.doorbell.unannounced.store(false, Ordering::Release);
    }

    /// How long the task thread may wait for work before it trims the ring, if it should.
    pub(crate) fn trim_after(&self) -> Option<Duration> {
        (self.touched || self.arena_touched).then_some(IDLE_TRIM)
    }

    /// Idle for a while: once the parent has read everything, give the pages of the ring and
    /// of the to-parent arena back, so the worker's memory returns to its idle size. (The
    /// parent trims the to-worker arena, which only it writes.)
    pub(crate) fn trim(&mut self) {
        let parts = arena::parts(self.segment.words());
        if self.touched && self.writer.used(parts.ring) == 0 {
            self.segment
                .release(offspring_wire::ring::HEADER_WORDS * 8..parts.ring.len() * 8);
            self.touched = false;
        }
        if let Some(to_parent) = parts.to_parent
            && self.arena_touched
            && arena::free_for_worker(to_parent, self.shared_written)
        {
            self.segment.release(arena::to_parent_data());
            self.arena_touched = false;
        }
        SPARE.trim(Duration::ZERO);
    }
}

/// The test-only switch [`ENV_TEST_SCRIBBLE`]`=<seed>`: after a few calls (at least two; how
/// many depends on the seed), the worker writes random words over its own segment, once, and
/// goes on.
/// Tests use it to show that the parent treats the segment as untrusted input.
#[derive(Debug)]
pub(crate) struct Scribble {
    state: u64,
    after: u64,
    calls: u64,
}

impl Scribble {
    pub(crate) fn from_env() -> Option<Self> {
        let seed: u64 = std::env::var(ENV_TEST_SCRIBBLE).ok()?.parse().ok()?;
        Some(Self {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            after: 2 + seed % 13,
            calls: 0,
        })
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Counts a call; scribbles when its turn came: mostly over the entries just published
    /// (the parent has not read them yet), sometimes over the header's live words, sometimes
    /// anywhere in the ring; after a value went through the to-parent arena, over that value
    /// (and the arena's consumed count) instead.
    pub(crate) fn after_call(&mut self, ring: &Ring) {
        self.calls += 1;
        if self.calls != self.after {
            return;
        }
        if ring.shared_written > 0
            && let Some(to_parent) = arena::parts(ring.segment.words()).to_parent
        {
            for _ in 0..1 + self.next() % 8 {
                // Word 0 is the count; the value's first megabyte follows it.
                let at = match self.next() % 4 {
                    0 => 0,
                    _ => 8 + (self.next() % (1 << 17)) as usize,
                };
                let value = self.next();
                if let Some(word) = to_parent.get(at) {
                    word.store(value, Ordering::Relaxed);
                }
            }
            return;
        }
        let words = ring_of(&ring.segment);
        let header = offspring_wire::ring::HEADER_WORDS;
        let capacity = ring.writer.capacity() as u64;
        let head = ring.writer.head();
        for _ in 0..1 + self.next() % 8 {
            let at = match self.next() % 5 {
                0 => (self.next() % 16) as usize,
                1 => (self.next() as usize) % words.len(),
                _ => {
                    let back = 8 * (1 + self.next() % 24);
                    let byte = head.wrapping_sub(back) % capacity;
                    header + (byte / 8) as usize
                }
            };
            let value = match self.next() % 4 {
                0 => 0,
                1 => u64::MAX,
                2 => self.next() % 4096,
                _ => self.next(),
            };
            if let Some(word) = words.get(at) {
                word.store(value, Ordering::Relaxed);
            }
        }
    }
}

/// Encodes a report. Only a value can be too large or unencodable; that becomes the call's
/// outcome instead.
pub(crate) fn report(msg: &FromWorker) -> Option<Vec<u8>> {
    match encode(msg) {
        Ok(frame) => Some(frame),
        Err(e) => match msg {
            FromWorker::Item {
                task_id,
                index,
                elapsed_us,
                ..
            } => encode(&FromWorker::Item {
                task_id: *task_id,
                index: *index,
                outcome: Outcome::BadResult(e.to_string()),
                elapsed_us: *elapsed_us,
            })
            .ok(),
            _ => None,
        },
    }
}
