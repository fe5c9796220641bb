//! The worker's outgoing frames: one ordered queue, and whoever needs its frames in the
//! socket writes them.
//!
//! Every frame a worker sends (reports, primitive calls, log records) enters one queue, in
//! the order it was made, and leaves it only into the socket, in that order; one writer at a
//! time (the *write turn*) takes queued frames and writes them whole, so frames never
//! interleave. Two kinds of writer take turns:
//!
//! - A thread that may block, on Unix: the task thread sending a report, a thread making a
//!   primitive call. It queues its frame, takes the turn, and writes what is queued up to and
//!   including its frame itself, with a blocking write ([`DirectWriter`]). When it returns,
//!   its frame is in the socket, with no other thread woken on the way. If the i/o thread
//!   has the turn, it waits for it instead.
//! - The `offspring-io` thread, for frames nobody waits for (log records, mostly): queueing
//!   one wakes it, and it writes with the runtime's async writer, so the lifeline is never
//!   stalled by a full socket. Without a direct writer (on Windows), it writes every frame,
//!   as before.
//!
//! Why a report is written before the next call runs: a call that kills its worker (`abort`,
//! a segfault) takes the process down, and reports still queued would be lost with it, so
//! the parent would blame the wrong call. Written reports stay in the kernel's socket buffer
//! after the process dies. With a direct writer the report is in the socket when `send`
//! returns; without one, [`Outbox::wait_written`] before each call waits for the i/o thread
//! (a short spin, then a condition variable).
//!
//! A log record made during a call was queued before the call's report, so it reaches the
//! parent first, whoever writes it: the last lines before a panic arrive before the panic.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use offspring_transport::{DirectWriter, FrameWriter};

/// How long a thread without a direct writer spins before it sleeps while waiting for the
/// i/o thread.
const SPIN: Duration = Duration::from_micros(50);

/// The i/o thread gathers queued frames into one write up to about this many bytes.
const COALESCE: usize = 64 * 1024;

/// At most this many frames go into one vectored write.
const MAX_SLICES: usize = 64;

/// The forwarded log records: queued and not yet written (the forwarding layer drops new
/// ones beyond its cap), written, and dropped. The outbox counts what it writes; the layer
/// counts what it queues and drops.
#[derive(Debug, Default)]
pub(crate) struct LogCounters {
    pub(crate) pending: AtomicUsize,
    pub(crate) forwarded: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// One queued frame.
struct Queued {
    bytes: Vec<u8>,
    /// A forwarded log record (counted in [`LogCounters`] once written).
    log: bool,
}

struct Frames {
    queue: VecDeque<Queued>,
    /// Frames queued so far.
    queued: u64,
    /// Frames that left the queue so far: written, or given up on once the socket closed.
    written: u64,
    /// Someone has the write turn (see the module docs).
    writing: bool,
    /// A write failed or was abandoned: the parent is gone, or the stream may hold part of a
    /// frame. Nothing more is written; the lifeline ends the process.
    closed: bool,
    /// Threads waiting on `progress`.
    waiters: usize,
}

pub(crate) struct Outbox {
    state: Mutex<Frames>,
    progress: Condvar,
    /// `Frames::written`, readable without the lock (for the spin).
    written: AtomicU64,
    /// Wakes the i/o thread's writer.
    wake: tokio::sync::Notify,
    direct: Option<DirectWriter>,
    counters: LogCounters,
}

impl Outbox {
    pub(crate) fn new(direct: Option<DirectWriter>) -> Self {
        Self {
            state: Mutex::new(Frames {
                queue: VecDeque::new(),
                queued: 0,
                written: 0,
                writing: false,
                closed: false,
                waiters: 0,
            }),
            progress: Condvar::new(),
            written: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            direct,
            counters: LogCounters::default(),
        }
    }

    /// The counts of forwarded log records.
    pub(crate) fn log_counters(&self) -> &LogCounters {
        &self.counters
    }

    fn lock(&self) -> MutexGuard<'_, Frames> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a frame for the i/o thread to write, without waiting. Returns its number, or
    /// `None` when nothing can be written any more.
    pub(crate) fn post(&self, frame: Vec<u8>, log: bool) -> Option<u64> {
        let mut state = self.lock();
        let seq = Self::push(&mut state, frame, log)?;
        if !state.writing {
            self.wake.notify_one();
        }
        Some(seq)
    }

    /// Sends frames in order and, with a direct writer, returns once they are in the socket
    /// (without one, the i/o thread writes them: see [`Outbox::wait_written`]). Returns the
    /// number of the last, or `None` when nothing can be written any more.
    ///
    /// With a direct writer this blocks while the socket is full, so it must not be called
    /// on the i/o thread.
    pub(crate) fn send(&self, frames: impl IntoIterator<Item = Vec<u8>>) -> Option<u64> {
        let mut state = self.lock();
        let mut last = None;
        for frame in frames {
            last = Some(Self::push(&mut state, frame, false)?);
        }
        let last = last?;
        if self.direct.is_some() {
            self.write_through(state, last, None).then_some(last)
        } else {
            if !state.writing {
                self.wake.notify_one();
            }
            Some(last)
        }
    }

    fn push(state: &mut Frames, bytes: Vec<u8>, log: bool) -> Option<u64> {
        if state.closed {
            return None;
        }
        state.queue.push_back(Queued { bytes, log });
        state.queued += 1;
        Some(state.queued)
    }

    /// Waits until the first `target` frames left the queue. Immediate after [`Outbox::send`]
    /// with a direct writer; otherwise the i/o thread writes them.
    pub(crate) fn wait_written(&self, target: u64) {
        if self.written.load(Ordering::Acquire) >= target {
            return;
        }
        let started = Instant::now();
        while self.written.load(Ordering::Acquire) < target && started.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        if self.written.load(Ordering::Acquire) < target {
            let state = self.lock();
            let _ = self.write_through(state, target, None);
        }
    }

    /// Writes (or waits until the i/o thread wrote) everything queued so far, giving up at
    /// `deadline`. Used before the process exits.
    pub(crate) fn flush(&self, deadline: Instant) {
        let state = self.lock();
        let target = state.queued;
        let _ = self.write_through(state, target, Some(deadline));
    }

    /// Returns once the first `target` frames left the queue (`true`), the socket closed or
    /// `deadline` passed (`false`). With a direct writer this thread writes them when it can
    /// take the write turn; otherwise, or while the i/o thread has the turn, it waits.
    fn write_through<'a>(
        &'a self,
        mut state: MutexGuard<'a, Frames>,
        target: u64,
        deadline: Option<Instant>,
    ) -> bool {
        loop {
            if state.written >= target {
                return true;
            }
            if state.closed {
                return false;
            }
            match &self.direct {
                Some(direct) if !state.writing => {
                    state.writing = true;
                    let batch: Vec<Queued> = state.queue.drain(..).collect();
                    drop(state);
                    let mut result = Ok(());
                    for frames in batch.chunks(MAX_SLICES) {
                        let mut slices: Vec<IoSlice<'_>> =
                            frames.iter().map(|f| IoSlice::new(&f.bytes)).collect();
                        result = direct.write_all(&mut slices, deadline);
                        if result.is_err() {
                            break;
                        }
                    }
                    state = self.lock();
                    self.done(&mut state, &batch, result.is_ok());
                }
                _ => {
                    if !state.writing {
                        self.wake.notify_one();
                    }
                    let now = Instant::now();
                    if deadline.is_some_and(|d| d <= now) {
                        return false;
                    }
                    state.waiters += 1;
                    state = match deadline {
                        None => self
                            .progress
                            .wait(state)
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                        Some(deadline) => {
                            self.progress
                                .wait_timeout(state, deadline - now)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .0
                        }
                    };
                    state.waiters -= 1;
                }
            }
        }
    }

    /// Ends a write turn that took `batch` out of the queue.
    fn done(&self, state: &mut Frames, batch: &[Queued], ok: bool) {
        state.writing = false;
        state.written += batch.len() as u64;
        let logs = batch.iter().filter(|f| f.log).count();
        if logs > 0 {
            self.counters.pending.fetch_sub(logs, Ordering::Relaxed);
            if ok {
                self.counters
                    .forwarded
                    .fetch_add(logs as u64, Ordering::Relaxed);
            }
        }
        if !ok {
            // Part of a frame may be in the stream: nothing after it could be read. Give up
            // on what is queued so no one waits for it.
            state.closed = true;
            let dropped = std::mem::take(&mut state.queue);
            state.written += dropped.len() as u64;
            let logs = dropped.iter().filter(|f| f.log).count();
            self.counters.pending.fetch_sub(logs, Ordering::Relaxed);
        }
        self.written.store(state.written, Ordering::Release);
        if state.waiters > 0 {
            self.progress.notify_all();
        }
        if !state.queue.is_empty() {
            // Frames queued during this turn, beyond what its writer needed: the i/o thread
            // takes them (a thread that needs them written wakes on `progress` and takes the
            // turn itself if it is still free).
            self.wake.notify_one();
        }
    }

    /// The i/o thread's writer: takes the write turn whenever woken and frames are waiting,
    /// and writes them with the runtime's async writer. Returns when the socket closed.
    pub(crate) async fn run_writer(&self, mut writer: FrameWriter) {
        let mut gathered = Vec::new();
        loop {
            self.wake.notified().await;
            loop {
                let batch = {
                    let mut state = self.lock();
                    if state.closed {
                        return;
                    }
                    if state.writing || state.queue.is_empty() {
                        break;
                    }
                    state.writing = true;
                    let mut bytes = 0;
                    let mut batch = Vec::new();
                    while let Some(next) = state.queue.front() {
                        if !batch.is_empty() && bytes + next.bytes.len() > COALESCE {
                            break;
                        }
                        bytes += next.bytes.len();
                        batch.extend(state.queue.pop_front());
                    }
                    batch
                };
                // Frames taken together go out in one write: fewer system calls and wake-ups
                // on both sides. A large frame goes alone, without a copy.
                let written = if let [one] = batch.as_slice() {
                    writer.write_frame(&one.bytes).await
                } else {
                    gathered.clear();
                    for frame in &batch {
                        gathered.extend_from_slice(&frame.bytes);
                    }
                    writer.write_frame(&gathered).await
                };
                let mut state = self.lock();
                self.done(&mut state, &batch, written.is_ok());
                if written.is_err() {
                    // The parent is gone; the reader's lifeline ends the process.
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Barrier};

    use offspring_transport::{Listener, connect};
    use offspring_wire::{FromWorker, Outcome, decode, encode};

    use super::*;

    const EACH: u64 = 400;

    fn item(task_id: u64, size: usize) -> Vec<u8> {
        let msg = FromWorker::Item {
            task_id,
            index: 0,
            outcome: Outcome::Value(vec![7; size]),
            elapsed_us: 0,
        };
        encode(&msg).expect("encodes")
    }

    /// Three threads send (reports, some large enough to fill the socket many times over)
    /// and post (log-like frames) at once while the parent's side reads: every frame must
    /// arrive whole, and each thread's frames in the order it made them.
    fn frames_arrive_whole_and_in_order(direct: bool) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (mut ours, mut theirs) = runtime.block_on(async {
            let listener = Listener::bind().expect("bind");
            let (ours, theirs) = tokio::join!(connect(listener.endpoint()), listener.accept());
            (ours.expect("connect"), theirs.expect("accept"))
        });
        theirs.authenticated();
        // The parent's side reads all along, on the runtime its socket belongs to.
        let reader = std::thread::spawn(move || {
            let mut next = [0u64; 3];
            runtime.block_on(async {
                for _ in 0..3 * EACH {
                    let body = theirs
                        .reader
                        .read_frame()
                        .await
                        .expect("a whole frame")
                        .expect("not the end");
                    let Ok(FromWorker::Item { task_id, .. }) = decode::<FromWorker>(&body) else {
                        panic!("a frame that does not decode: frames interleaved");
                    };
                    let source = (task_id / EACH) as usize;
                    assert_eq!(task_id % EACH, next[source], "source {source} out of order");
                    next[source] += 1;
                }
            });
            next
        });
        let writer = if direct {
            let writer = ours.take_direct_writer();
            assert_eq!(writer.is_some(), cfg!(unix));
            writer
        } else {
            None
        };
        let outbox = Arc::new(Outbox::new(writer));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let io = {
            let outbox = Arc::clone(&outbox);
            let offspring_transport::Conn { writer, .. } = ours;
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(async move {
                        tokio::select! {
                            () = outbox.run_writer(writer) => {}
                            _ = stopped => {}
                        }
                    });
            })
        };
        let start = Arc::new(Barrier::new(3));
        let senders: Vec<_> = (0..3u64)
            .map(|source| {
                let outbox = Arc::clone(&outbox);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    for n in 0..EACH {
                        let task_id = source * EACH + n;
                        match source {
                            // The task thread: reports, every tenth one of 256 KiB.
                            0 => {
                                let size = if n % 10 == 0 { 256 * 1024 } else { 8 };
                                let seq = outbox.send([item(task_id, size)]).expect("open");
                                outbox.wait_written(seq);
                                assert!(outbox.written.load(Ordering::Acquire) >= seq);
                            }
                            // A user thread making primitive calls.
                            1 => {
                                let _ = outbox.send([item(task_id, 16)]).expect("open");
                            }
                            // A user thread logging.
                            _ => {
                                outbox
                                    .log_counters()
                                    .pending
                                    .fetch_add(1, Ordering::Relaxed);
                                let _ = outbox.post(item(task_id, 64), true).expect("open");
                            }
                        }
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().expect("sender");
        }
        outbox.flush(Instant::now() + Duration::from_secs(30));
        assert_eq!(reader.join().expect("reader"), [EACH; 3]);
        assert_eq!(outbox.log_counters().pending.load(Ordering::Relaxed), 0);
        assert_eq!(
            outbox.log_counters().forwarded.load(Ordering::Relaxed),
            EACH
        );
        let _ = stop.send(());
        io.join().expect("i/o thread");
    }

    #[test]
    fn frames_arrive_whole_and_in_order_with_a_direct_writer() {
        frames_arrive_whole_and_in_order(true);
    }

    #[test]
    fn frames_arrive_whole_and_in_order_through_the_io_thread_alone() {
        frames_arrive_whole_and_in_order(false);
    }
}
