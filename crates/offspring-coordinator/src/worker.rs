//! One worker as the parent sees it: an actor task that owns the child process and its
//! connection, sends it tasks, routes its replies and logs, and notices its death.
//!
//! The actor has three parts on the coordinator's runtime: a reader task (frames in), a writer
//! task (frames out), and the actor loop, which owns the child and the tasks in flight. When
//! the connection ends or the child exits, the actor collects the exit status (waiting a
//! bounded time, then killing), fails every task still assigned to the worker with
//! [`Failure::Died`], and answers later submissions the same way. It keeps running while the
//! child lives, even with no handle left (a detached child is still reaped).

use std::collections::{BTreeMap, HashMap};
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use offspring_transport::{Conn, FrameReader, Segment, sys};
use offspring_wire::arena::{self, SharedArg};
use offspring_wire::ring::RingReader;
use offspring_wire::{
    FromWorker, Outcome, ToWorker, WireError, decode, encode, encode_run, encode_run_shared,
};
use tokio::sync::mpsc;

use crate::coordinator::{lock, wait_for};
use crate::logs::LogCounts;
use crate::prims::{ReplyTo, Side};
use crate::trace::{CallSlice, Timelines};
use crate::{Failure, Registry};

/// How long the actor waits for a child's exit status after its connection ended, before it
/// kills the child.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Queued frames are gathered into one write up to about this many bytes.
const COALESCE: usize = 64 * 1024;

/// How long the actor keeps reading a dead child's connection for its last frames.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// After this long unused, the to-worker arena's pages go back to the OS.
const ARENA_IDLE_TRIM: Duration = Duration::from_secs(5);

/// The buffer of the last large call arguments the parent is done with, for the next large
/// value it copies out of a worker's arena (see [`arena::Spare`]). Dropped 5 s after it was
/// kept unless used (see [`keep_spare`]).
static SPARE: arena::Spare = arena::Spare::new();

/// Whether a task on the coordinator's runtime will drop [`SPARE`] once it has been kept
/// [`ARENA_IDLE_TRIM`].
static SPARE_TIMER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Keeps a call's large arguments, which the parent is done with, as the buffer the next
/// large value is copied into; on the coordinator's runtime a timer drops it after
/// [`ARENA_IDLE_TRIM`] unused. Nothing is kept where workers have no arenas, or off the
/// runtime.
pub(crate) fn keep_spare(buffer: Vec<u8>) {
    if crate::coordinator::SEGMENT_BYTES < arena::SEGMENT_WORDS * 8 || !SPARE.keep(buffer) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        SPARE.trim(Duration::ZERO);
        return;
    };
    if SPARE_TIMER.swap(true, Ordering::AcqRel) {
        return;
    }
    runtime.spawn(async {
        loop {
            while let Some(due) = SPARE.due(ARENA_IDLE_TRIM) {
                tokio::time::sleep_until(due.into()).await;
                SPARE.trim(ARENA_IDLE_TRIM);
            }
            SPARE_TIMER.store(false, Ordering::Release);
            // A buffer kept between the last look and the flag's clearing still gets a timer.
            if SPARE.due(ARENA_IDLE_TRIM).is_none() || SPARE_TIMER.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    });
}

/// The parent's side of a worker's to-worker arena (see `offspring_wire::arena`): the parent
/// writes a batch's large arguments there, and nothing else until that batch ended. There is
/// one only for a segment with arenas.
struct ToWorkerArena {
    segment: Arc<Segment>,
    state: Mutex<ArenaState>,
}

#[derive(Default)]
struct ArenaState {
    /// The batch whose arguments the arena holds.
    holder: Option<u64>,
    /// When the arena was last given back by a batch, if its pages were written since they
    /// were last trimmed.
    idle_since: Option<Instant>,
}

impl ToWorkerArena {
    /// Writes the large arguments among `items` into the arena for batch `task_id`, if it is
    /// free: where each lies. `None` (the batch goes in a frame) when no argument is large or
    /// the arena is taken.
    fn place(&self, task_id: u64, items: &[&[u8]]) -> Option<Vec<SharedArg>> {
        if !items.iter().any(|item| arena::shares(item.len())) {
            return None;
        }
        let parts = arena::parts(self.segment.words());
        // A worker that could not map its segment reports in frames and has no arenas.
        if !offspring_wire::ring::worker_attached(parts.ring) {
            return None;
        }
        let to_worker = parts.to_worker?;
        let mut state = lock(&self.state);
        if state.holder.is_some() {
            return None;
        }
        let mut at = 0;
        let mut shared = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if !arena::shares(item.len()) {
                continue;
            }
            // What does not fit after the others goes in the frame.
            if let Some(bytes) = arena::write(to_worker, at, &[item]) {
                at = arena::aligned(at + bytes.len);
                shared.push(SharedArg {
                    index: u32::try_from(index).ok()?,
                    bytes,
                });
            }
        }
        if shared.is_empty() {
            return None;
        }
        state.holder = Some(task_id);
        state.idle_since = None;
        Some(shared)
    }

    /// Batch `task_id` ended: the arena is free again.
    fn release(&self, task_id: u64) {
        let mut state = lock(&self.state);
        if state.holder == Some(task_id) {
            state.holder = None;
            state.idle_since = Some(Instant::now());
        }
    }

    /// When the arena's pages are due to go back, if they are.
    fn trim_due(&self) -> Option<Instant> {
        let state = lock(&self.state);
        state.idle_since.map(|since| since + ARENA_IDLE_TRIM)
    }

    /// Its worker died: neither arena is used again, and the pages of both go back now.
    fn retire(&self) {
        let mut state = lock(&self.state);
        state.holder = Some(u64::MAX);
        state.idle_since = None;
        self.segment.release(arena::to_worker_data());
        self.segment.release(arena::to_parent_data());
    }

    /// Gives the arena's pages back if it has been free long enough.
    fn trim(&self) {
        let mut state = lock(&self.state);
        if state.holder.is_none()
            && let Some(since) = state.idle_since
            && since.elapsed() >= ARENA_IDLE_TRIM
        {
            self.segment.release(arena::to_worker_data());
            state.idle_since = None;
        }
    }
}

/// Receives what becomes of one batch of calls sent to a worker. Its methods run on the
/// coordinator's thread: keep them short (hand work to another thread).
pub trait BatchSink: Send + 'static {
    /// The batch began running on the worker.
    fn started(&mut self, pid: u32) {
        let _ = pid;
    }
    /// Call `index` of the batch ended (calls report in order).
    fn item(&mut self, index: usize, outcome: Result<Vec<u8>, Failure>, pid: u32);
    /// Call `index` of the batch returned `value` (its encoding, borrowed from where it was
    /// read): as [`item`](Self::item) with `Ok`, which a sink that keeps runs of values in
    /// one buffer does without a vector per call.
    fn value(&mut self, index: usize, value: &[u8], pid: u32) {
        self.item(index, Ok(value.to_vec()), pid);
    }
    /// The reports read so far were all given to [`item`](Self::item) or
    /// [`value`](Self::value): a sink that holds
    /// items back, to hand them on together, hands them on now. Called after each read of
    /// the worker's ring or frames, and before [`finished`](Self::finished) and
    /// [`died`](Self::died).
    fn flush(&mut self) {}
    /// Every call reported; the worker is free for the next batch.
    fn finished(self: Box<Self>, pid: u32);
    /// The worker died (or could not be sent the batch): calls from `death.next` on never
    /// reported.
    fn died(self: Box<Self>, death: Death);
}

/// A one-call batch's sink that ends the call's in-flight leases as it reports or its
/// worker dies (and, should neither happen, when it is dropped).
struct LeasedCall {
    inner: Box<dyn BatchSink>,
    registry: Arc<crate::Registry>,
    tokens: Vec<u64>,
}

impl LeasedCall {
    fn end(&mut self, worker_died: bool) {
        let tokens = std::mem::take(&mut self.tokens);
        self.registry.end_in_flight(&tokens, worker_died);
    }
}

impl Drop for LeasedCall {
    fn drop(&mut self) {
        self.end(false);
    }
}

impl BatchSink for LeasedCall {
    fn started(&mut self, pid: u32) {
        self.inner.started(pid);
    }

    fn item(&mut self, index: usize, outcome: Result<Vec<u8>, Failure>, pid: u32) {
        self.end(false);
        self.inner.item(index, outcome, pid);
    }

    fn flush(&mut self) {
        self.inner.flush();
    }

    fn finished(mut self: Box<Self>, pid: u32) {
        self.end(false);
        let inner = std::mem::replace(&mut self.inner, Box::new(Nothing));
        inner.finished(pid);
    }

    fn died(mut self: Box<Self>, death: Death) {
        self.end(true);
        let inner = std::mem::replace(&mut self.inner, Box::new(Nothing));
        inner.died(death);
    }
}

/// A sink that wants nothing (what a [`LeasedCall`] leaves behind as it hands on).
struct Nothing;

impl BatchSink for Nothing {
    fn item(&mut self, _index: usize, _outcome: Result<Vec<u8>, Failure>, _pid: u32) {}
    fn finished(self: Box<Self>, _pid: u32) {}
    fn died(self: Box<Self>, _death: Death) {}
}

/// How a batch ended when its worker died before every call reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// The first call that did not report; the calls before it all did.
    pub next: usize,
    /// Whether call `next` was running: then it is the one the death is blamed on, and the
    /// calls after it never started. Otherwise none of the unreported calls started.
    pub running: bool,
    /// The worker's exit status, if it could be collected.
    pub status: Option<ExitStatus>,
    /// Set when the parent killed the worker for breaking the protocol (a malformed frame or
    /// outcome segment): what it did. The unreported calls may have run; their outcomes are
    /// lost.
    pub misbehaved: Option<String>,
    /// The worker's pid.
    pub pid: u32,
    /// The worker's host, for a worker connected over TCP that said where it runs.
    pub host: Option<String>,
}

impl Death {
    /// A batch that never reached a worker that is gone.
    fn unsent(status: Option<ExitStatus>, pid: u32, host: Option<String>) -> Self {
        Self {
            next: 0,
            running: false,
            status,
            misbehaved: None,
            pid,
            host,
        }
    }
}

/// What a batch's calls belong to in the parent: their jobs, and the spans the jobs' stories
/// are told in. A batch holds calls of one job, or (see the pool's scheduler) single calls of
/// several jobs of the same task; each call's records are emitted under its own job's span.
#[derive(Debug, Clone)]
pub struct BatchContext {
    /// Runs of calls, by the position of each run's first call (the first run at 0).
    parts: Vec<ContextPart>,
}

#[derive(Debug, Clone)]
struct ContextPart {
    start: usize,
    job: u64,
    span: tracing::Span,
}

impl BatchContext {
    /// A batch whose calls all belong to job `job`, told in `span`.
    #[must_use]
    pub fn new(job: u64, span: tracing::Span) -> Self {
        Self {
            parts: vec![ContextPart {
                start: 0,
                job,
                span,
            }],
        }
    }

    /// From call `start` on, the calls belong to job `job`. Runs are added in order.
    pub fn push(&mut self, start: usize, job: u64, span: tracing::Span) {
        self.parts.push(ContextPart { start, job, span });
    }

    /// The job (the task id users see in logs and timelines) and span of call `call`.
    #[must_use]
    pub fn of(&self, call: usize) -> (u64, &tracing::Span) {
        let after = self.parts.partition_point(|part| part.start <= call);
        match self.parts.get(after.saturating_sub(1)) {
            Some(part) => (part.job, &part.span),
            None => (0, &NO_SPAN),
        }
    }
}

/// The span of a call no job claims (never the case for a batch made by [`BatchContext::new`]).
static NO_SPAN: tracing::Span = tracing::Span::none();

impl Default for BatchContext {
    fn default() -> Self {
        Self::new(0, tracing::Span::none())
    }
}

struct InFlight {
    name: String,
    sink: Box<dyn BatchSink>,
    /// Calls in the batch, and how many reported (they report in order).
    calls: usize,
    reported: usize,
    context: BatchContext,
    /// When the running call began, as far as the parent knows: the batch's start, then each
    /// report (for the timeline slice of a call its worker died in).
    since: Option<Instant>,
    /// Whether the batch's large arguments are in the to-worker arena (free again once the
    /// batch finished).
    shared: bool,
}

enum Command {
    Run {
        task_id: u64,
        name: String,
        /// The encoded `ToWorker::Run` (or `RunShared`) frame, or why there is none.
        frame: Result<Vec<u8>, WireError>,
        /// Whether the batch's large arguments are in the to-worker arena.
        shared: bool,
        /// How many calls the batch has.
        calls: usize,
        context: BatchContext,
        sink: Box<dyn BatchSink>,
    },
    Shutdown,
    Kill,
    Terminate,
}

struct ExitState {
    status: Option<ExitStatus>,
    exited: bool,
}

struct WorkerShared {
    pid: u32,
    /// Where a remote worker runs, once it said (`FromWorker::Node`).
    host: OnceLock<String>,
    exit: Mutex<ExitState>,
    exited: Condvar,
    exit_watch: tokio::sync::watch::Sender<bool>,
    /// Set as the death is handled, before what it held is given back: operations read
    /// after that (from a process it forked, which still holds its ends) are not applied.
    dead: std::sync::atomic::AtomicBool,
}

/// A handle to one worker. Clones refer to the same worker; dropping the last one detaches
/// (the worker keeps running and is still reaped).
#[derive(Clone)]
pub struct WorkerHandle {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<WorkerShared>,
    arena: Option<Arc<ToWorkerArena>>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("pid", &self.shared.pid)
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// The host a worker connected over TCP runs on, once it said; `None` for a local one.
    pub fn host(&self) -> Option<String> {
        self.shared.host.get().cloned()
    }

    /// Sends a batch of calls of task `name`, each item the encoded arguments of one call.
    /// `sink` hears of each call's end, then of the batch's end or the worker's death.
    ///
    /// The frame is encoded here, from the borrowed arguments: the caller keeps its own copy
    /// (to run a call again elsewhere), and the frame is the only other one.
    /// As [`WorkerHandle::submit`] for one call whose arguments carry handles: `leases`
    /// (their in-flight lease tokens) end when the call reports or the worker dies, before
    /// `sink` hears of it.
    pub fn submit_leased(
        &self,
        task_id: u64,
        name: &str,
        args: &[u8],
        context: BatchContext,
        leases: (Arc<crate::Registry>, Vec<u64>),
        sink: Box<dyn BatchSink>,
    ) {
        let (registry, tokens) = leases;
        let sink = Box::new(LeasedCall {
            inner: sink,
            registry,
            tokens,
        });
        self.submit(task_id, name, &[args], context, sink);
    }

    pub fn submit(
        &self,
        task_id: u64,
        name: &str,
        items: &[&[u8]],
        context: BatchContext,
        sink: Box<dyn BatchSink>,
    ) {
        // Large arguments go through the arena when it is free; the frame names them.
        let placed = self
            .arena
            .as_ref()
            .and_then(|arena| arena.place(task_id, items));
        let frame = match &placed {
            Some(shared) => encode_run_shared(task_id, name, items, shared),
            None => encode_run(task_id, name, items),
        };
        let command = Command::Run {
            task_id,
            name: name.to_owned(),
            frame,
            shared: placed.is_some(),
            calls: items.len(),
            context,
            sink,
        };
        if let Err(mpsc::error::SendError(Command::Run { sink, .. })) = self.commands.send(command)
        {
            if let Some(arena) = &self.arena {
                arena.release(task_id);
            }
            sink.died(Death::unsent(
                self.exit_status(),
                self.shared.pid,
                self.host(),
            ));
        }
    }

    /// Resolves once the worker process has exited and been reaped.
    pub async fn exited(&self) {
        let mut watch = self.shared.exit_watch.subscribe();
        let _ = watch.wait_for(|exited| *exited).await;
    }

    /// Asks the worker to finish its running task, if any, and exit.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    /// Kills the worker (SIGKILL, or `TerminateProcess` on Windows). A worker that already
    /// exited is left alone.
    pub fn kill(&self) {
        let _ = self.commands.send(Command::Kill);
    }

    /// Asks the OS to stop the worker politely (SIGTERM; `TerminateProcess` on Windows).
    pub fn terminate(&self) {
        let _ = self.commands.send(Command::Terminate);
    }

    /// Whether the worker process has not exited yet (as far as the parent has seen).
    pub fn is_alive(&self) -> bool {
        !lock(&self.shared.exit).exited
    }

    /// The worker's exit status, once it has exited and been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        lock(&self.shared.exit).status
    }

    /// Waits up to `timeout` for the worker to exit; its status if it did.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let state = lock(&self.shared.exit);
        wait_for(&self.shared.exited, state, Some(timeout), |s| !s.exited).status
    }
}

enum ConnEvent {
    Frame(FromWorker),
    Closed(Option<WireError>),
    /// The worker's side channel ended (see [`serve_side`]), with the error that ended it.
    /// Only Linux has side channels.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    SideClosed(Option<WireError>),
}

/// Where a new worker's actor records what it sees.
pub(crate) struct Observers {
    pub(crate) worker_id: u64,
    /// When the parent began starting the worker.
    pub(crate) began: Instant,
    pub(crate) timelines: Timelines,
    pub(crate) logs: Option<Arc<LogCounts>>,
}

/// What a worker on this machine shares with the parent besides its connection.
pub(crate) struct Local {
    /// Its outcome segment and the parent's reader of it.
    pub(crate) ring: Option<(Segment, RingReader)>,
    /// The parent's end of its side channel.
    pub(crate) side: Option<Side>,
}

pub(crate) fn start(
    pid: u32,
    child: tokio::process::Child,
    conn: Conn,
    runtime: &tokio::runtime::Handle,
    registry: Arc<Registry>,
    observers: Observers,
    local: Local,
) -> WorkerHandle {
    let Local { ring, side } = local;
    let ring = ring.map(|(segment, reader)| (Arc::new(segment), reader));
    let arena = ring.as_ref().and_then(|(segment, _)| {
        arena::parts(segment.words()).to_worker.is_some().then(|| {
            Arc::new(ToWorkerArena {
                segment: Arc::clone(segment),
                state: Mutex::default(),
            })
        })
    });
    observers
        .timelines
        .each(|t| t.worker_started(pid, observers.worker_id, observers.began));
    let (commands, command_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(WorkerShared {
        pid,
        host: OnceLock::new(),
        exit: Mutex::new(ExitState {
            status: None,
            exited: false,
        }),
        exited: Condvar::new(),
        exit_watch: tokio::sync::watch::Sender::new(false),
        dead: std::sync::atomic::AtomicBool::new(false),
    });
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (frame_tx, mut frame_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let remote = conn.is_remote();
    let Conn {
        reader, mut writer, ..
    } = conn;
    let served = Served {
        pid,
        registry: Arc::clone(&registry),
        to: ReplyTo {
            frames: frame_tx.clone(),
            side: None,
        },
        shared: Arc::clone(&shared),
    };
    let served_side = side.clone();
    let side_served = side.is_some_and(|side| serve_side(served.clone(), side, event_tx.clone()));
    if served_side.is_some() && !side_served {
        // The worker sends its operations on the side channel, and nobody would read them:
        // shut down, the side channel ends the worker as a lost parent does.
        tracing::warn!(target: "offspring", worker_pid = pid, "cannot start the thread serving the worker's side channel; shutting the side channel down, which ends the worker");
        if let Some(side) = &served_side {
            side.shutdown();
        }
    }
    runtime.spawn(read_loop(reader, event_tx, served));
    if remote {
        // No lifeline of the OS crosses a network: tell the worker we live, every
        // `HEARTBEAT`, for as long as anything can write to it.
        let beats = frame_tx.downgrade();
        let mut exited = shared.exit_watch.subscribe();
        runtime.spawn(async move {
            let mut every = tokio::time::interval(offspring_wire::HEARTBEAT);
            loop {
                // A worker declared dead hears no more heartbeats.
                tokio::select! {
                    _ = every.tick() => {}
                    _ = exited.wait_for(|dead| *dead) => return,
                }
                let Some(frames) = beats.upgrade() else {
                    return;
                };
                let Ok(frame) = offspring_wire::encode(&offspring_wire::ToWorker::Heartbeat) else {
                    return;
                };
                if frames.send(frame).is_err() {
                    return;
                }
            }
        });
    }
    let mut writer_exited = shared.exit_watch.subscribe();
    runtime.spawn(async move {
        let mut batch = Vec::new();
        let mut held = None;
        loop {
            let frame = match held.take() {
                Some(frame) => frame,
                // Once the worker is declared dead, its connection is closed even while
                // handles (or a primitive's pending timeout) still hold the sender: a worker
                // the parent no longer hears then sees the end and exits.
                None => tokio::select! {
                    frame = frame_rx.recv() => match frame {
                        Some(frame) => frame,
                        None => break,
                    },
                    _ = writer_exited.wait_for(|dead| *dead) => break,
                },
            };
            // Frames queued together go out in one write: fewer system calls and wake-ups.
            // A frame that would take the batch past the limit goes in a write of its own,
            // without a copy (a large argument is not copied again, nor kept in `batch`).
            let written = if frame.len() >= COALESCE {
                writer.write_frame(&frame).await
            } else {
                batch.clear();
                batch.extend_from_slice(&frame);
                while let Ok(more) = frame_rx.try_recv() {
                    if batch.len() + more.len() > COALESCE {
                        held = Some(more);
                        break;
                    }
                    batch.extend_from_slice(&more);
                }
                writer.write_frame(&batch).await
            };
            if written.is_err() {
                // The reader sees the end of the connection too and reports it.
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let actor = Actor {
        shared: Arc::clone(&shared),
        child,
        frames: frame_tx,
        side_served,
        side: served_side,
        registry,
        in_flight: BTreeMap::new(),
        dead: false,
        timelines: observers.timelines,
        logs: observers.logs,
        dropped_seen: 0,
        ring,
        arena: arena.clone(),
        shared_consumed: 0,
        misbehaved: None,
    };
    runtime.spawn(actor.run(command_rx, event_rx));
    WorkerHandle {
        commands,
        shared,
        arena,
    }
}

/// Who serves the primitive operations read from a worker's connection.
#[derive(Clone)]
struct Served {
    pid: u32,
    registry: Arc<Registry>,
    to: ReplyTo,
    shared: Arc<WorkerShared>,
}

impl Served {
    /// Applies an operation of the worker's, unless its death was handled already.
    fn serve(&self, origin: Vec<u32>, call_id: u64, op: offspring_wire::PrimOp, to: &ReplyTo) {
        if !self.shared.dead.load(Ordering::Acquire) {
            self.registry.remote(self.pid, origin, call_id, op, to);
        }
    }
}

/// Reads a worker's connection. A primitive's operation is served here, where it is read,
/// with no hop to the actor (as the actor did, it is applied ahead of any report read
/// after it: see `Actor::frame`); everything else goes to the actor in order.
async fn read_loop(
    mut reader: FrameReader,
    events: mpsc::UnboundedSender<ConnEvent>,
    served: Served,
) {
    loop {
        // A TCP reader fails by itself after `SILENCE_LIMIT` without a byte.
        let event = match reader.read_frame().await {
            Ok(Some(body)) => match decode::<FromWorker>(&body) {
                Ok(FromWorker::Call { call_id, op }) => {
                    served.serve(Vec::new(), call_id, op, &served.to);
                    continue;
                }
                Ok(FromWorker::CallFor {
                    call_id,
                    origin,
                    op,
                }) => {
                    served.serve(origin, call_id, op, &served.to);
                    continue;
                }
                Ok(msg) => ConnEvent::Frame(msg),
                Err(e) => ConnEvent::Closed(Some(e)),
            },
            Ok(None) => ConnEvent::Closed(None),
            Err(e) => ConnEvent::Closed(Some(e)),
        };
        let closed = matches!(event, ConnEvent::Closed(_));
        if events.send(event).is_err() || closed {
            return;
        }
    }
}

/// Serves worker `pid`'s primitive operations from its side channel (Linux), on a thread of
/// its own: each is applied as soon as it is read, and the reply to a call made with
/// [`offspring_wire::SIDE_REPLY`] is written back at once, with no hop through the runtime
/// (the channel's receive spins a moment before it sleeps, so a worker that keeps asking is
/// served without a wake-up). The thread ends with the channel, which ends once the worker
/// is gone, and tells the actor, which handles the death only then: every operation the
/// worker sent before it died is applied first, as on its connection. Whether it started.
#[cfg(target_os = "linux")]
fn serve_side(served: Served, side: Side, events: mpsc::UnboundedSender<ConnEvent>) -> bool {
    let pid = served.pid;
    let serve = move || {
        let error = loop {
            let received = side
                .channel
                .recv(None, offspring_wire::MAX_FRAME as usize, |bytes| {
                    decode::<FromWorker>(bytes)
                });
            let (origin, call_id, op) = match received {
                Ok(Some(Ok(FromWorker::Call { call_id, op }))) => (Vec::new(), call_id, op),
                Ok(Some(Ok(FromWorker::CallFor {
                    call_id,
                    origin,
                    op,
                }))) => (origin, call_id, op),
                Ok(Some(Ok(_))) => {
                    break Some(WireError::Malformed(
                        "a side channel carries only primitive operations".into(),
                    ));
                }
                Ok(Some(Err(e))) => break Some(e),
                Ok(None) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break None,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    break Some(WireError::Malformed(e.to_string()));
                }
                Err(e) => break Some(WireError::Io(e)),
            };
            // A worker whose death was handled is served no more, even if a process it
            // forked still holds its end.
            if served.shared.dead.load(Ordering::Acquire) {
                break None;
            }
            let to = ReplyTo {
                frames: served.to.frames.clone(),
                side: (call_id & offspring_wire::SIDE_REPLY != 0).then(|| Arc::clone(&side)),
            };
            served.serve(origin, call_id, op, &to);
        };
        let _ = events.send(ConnEvent::SideClosed(error));
    };
    std::thread::Builder::new()
        .name(format!("offspring-side-{pid}"))
        .spawn(serve)
        .is_ok()
}

#[cfg(not(target_os = "linux"))]
fn serve_side(_served: Served, side: Side, _events: mpsc::UnboundedSender<ConnEvent>) -> bool {
    match *side {}
}

struct Actor {
    shared: Arc<WorkerShared>,
    child: tokio::process::Child,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    /// Whether [`serve_side`] serves a side channel, whose end the actor waits for.
    side_served: bool,
    /// The parent's end of that side channel, shut down once the death is handled.
    side: Option<Side>,
    registry: Arc<Registry>,
    /// By task id: a handful at most, looked up once per reported call.
    in_flight: BTreeMap<u64, InFlight>,
    dead: bool,
    timelines: Timelines,
    logs: Option<Arc<LogCounts>>,
    /// The worker's last reported total of dropped log records.
    dropped_seen: u64,
    /// The worker's outcome segment and the parent's reader of it.
    ring: Option<(Arc<Segment>, RingReader)>,
    /// The segment's to-worker arena, when it has arenas.
    arena: Option<Arc<ToWorkerArena>>,
    /// Values the parent copied out of the to-parent arena.
    shared_consumed: u64,
    /// Why the parent killed the worker, if it broke the protocol.
    misbehaved: Option<String>,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<ConnEvent>,
    ) {
        let mut commands_open = true;
        let mut events_open = true;
        let mut main_closed = false;
        let mut side_open = self.side_served;
        // The child's status once reaped, while its last frames are still being read.
        let mut reaped: Option<Option<ExitStatus>> = None;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            if self.dead && !commands_open {
                return;
            }
            let drain_timer = async move {
                match drain_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let trim_at = self.arena.as_ref().and_then(|arena| arena.trim_due());
            let trim_timer = async move {
                match trim_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv(), if commands_open => match command {
                    Some(command) => self.command(command),
                    None => commands_open = false,
                },
                event = events.recv(), if events_open => match event {
                    Some(ConnEvent::Frame(msg)) => self.frame(msg),
                    Some(ConnEvent::Closed(error)) => {
                        main_closed = true;
                        if let Some(error) = error {
                            let host = self.shared.host.get().map_or("this host", String::as_str);
                            tracing::warn!(target: "offspring", worker_pid = self.shared.pid, %host, %error, "worker connection failed; killing the worker");
                            self.kill_child(sys::EXIT_KILLED);
                        }
                        // The death is handled once the side channel is drained too, or once
                        // the process had `EXIT_GRACE` to end after its connection did.
                        if side_open && !self.dead && drain_deadline.is_none() {
                            drain_deadline = Some(tokio::time::Instant::now() + EXIT_GRACE);
                        }
                        if !side_open && !self.dead {
                            let status = match reaped.take() {
                                Some(status) => status,
                                None => self.reap().await,
                            };
                            self.died(status);
                        }
                    }
                    Some(ConnEvent::SideClosed(error)) => {
                        side_open = false;
                        if let Some(error) = error {
                            tracing::warn!(target: "offspring", worker_pid = self.shared.pid, %error, "worker side channel failed; killing the worker");
                            self.kill_child(sys::EXIT_KILLED);
                        }
                        if main_closed && !self.dead {
                            let status = match reaped.take() {
                                Some(status) => status,
                                None => self.reap().await,
                            };
                            self.died(status);
                        }
                    }
                    None => events_open = false,
                },
                // The child exited: keep reading what it wrote before it died (the frames are
                // still in the socket), so the calls it finished are not blamed for its death.
                status = self.child.wait(), if reaped.is_none() && !self.dead => {
                    reaped = Some(status.ok());
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                }
                () = trim_timer, if trim_at.is_some() && !self.dead => {
                    if let Some(arena) = &self.arena {
                        arena.trim();
                    }
                }
                // The connection stays open after the process exited (a descendant holds it):
                // stop waiting for the rest.
                () = drain_timer, if drain_deadline.is_some() && !self.dead => {
                    let status = match reaped.take() {
                        Some(status) => status,
                        // The connection ended and the process lingers: it is killed.
                        None => {
                            tracing::warn!(target: "offspring", worker_pid = self.shared.pid, "worker closed its connection but did not exit; killing it");
                            self.kill_child(sys::EXIT_KILLED);
                            self.child.wait().await.ok()
                        }
                    };
                    self.died(status);
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Run {
                task_id,
                name,
                frame,
                shared,
                calls,
                context,
                mut sink,
            } => {
                if shared
                    && (self.dead || frame.is_err())
                    && let Some(arena) = &self.arena
                {
                    arena.release(task_id);
                }
                if self.dead {
                    sink.died(Death::unsent(
                        lock(&self.shared.exit).status,
                        self.shared.pid,
                        self.shared.host.get().cloned(),
                    ));
                    return;
                }
                match frame {
                    Ok(frame) => {
                        self.in_flight.insert(
                            task_id,
                            InFlight {
                                name,
                                sink,
                                calls,
                                reported: 0,
                                context,
                                since: None,
                                shared,
                            },
                        );
                        let _ = self.frames.send(frame);
                    }
                    Err(e) => {
                        // Too large for a frame: nothing was sent, so the worker is still free.
                        // Every call of the batch fails (the pool cuts batches so that this
                        // only happens to a call too large on its own), so none is lost.
                        let reason = e.to_string();
                        for index in 0..calls {
                            sink.item(
                                index,
                                Err(Failure::Unsendable(reason.clone())),
                                self.shared.pid,
                            );
                        }
                        sink.finished(self.shared.pid);
                    }
                }
            }
            Command::Shutdown => {
                if let Ok(frame) = encode(&ToWorker::Shutdown) {
                    let _ = self.frames.send(frame);
                }
            }
            Command::Kill => {
                if !self.dead {
                    self.kill_child(sys::EXIT_KILLED);
                }
            }
            Command::Terminate => {
                if !self.dead {
                    // Windows has no polite signal: TerminateProcess, with a code of its own,
                    // is its `terminate`.
                    if cfg!(windows) {
                        self.kill_child(sys::EXIT_TERMINATED);
                    } else if sys::terminate(self.shared.pid).is_err() {
                        self.kill_child(sys::EXIT_KILLED);
                    }
                }
            }
        }
    }

    fn frame(&mut self, msg: FromWorker) {
        // A report announces the ring: what the worker published before it sent this frame
        // is read first, so reports stay in order whichever way they came. A primitive's
        // operation (served by `read_loop` before it gets here, or on the side channel) or a
        // log record is handled first instead: the worker sent it before it
        // published anything the ring holds now that came after it, so an outcome is never
        // delivered ahead of the release, `set` or log line its call made before it ended
        // (what the ring holds from before is read at the next report or doorbell).
        if !matches!(
            msg,
            FromWorker::Call { .. } | FromWorker::CallFor { .. } | FromWorker::Log(_)
        ) {
            self.drain_ring();
        }
        match msg {
            FromWorker::Started { task_id } => {
                if let Some(flight) = self.in_flight.get_mut(&task_id) {
                    flight.since = Some(Instant::now());
                    flight.sink.started(self.shared.pid);
                }
            }
            FromWorker::Item {
                task_id,
                index,
                outcome,
                elapsed_us,
            } => self.item(task_id, index, outcome, elapsed_us),
            FromWorker::Finished { task_id } => {
                if let Some(flight) = self.in_flight.remove(&task_id) {
                    if flight.shared
                        && let Some(arena) = &self.arena
                    {
                        arena.release(task_id);
                    }
                    if flight.reported == flight.calls {
                        flight.sink.finished(self.shared.pid);
                    } else {
                        let reason = format!(
                            "it finished batch {task_id} with {} of its {} calls reported",
                            flight.reported, flight.calls
                        );
                        self.in_flight.insert(task_id, flight);
                        self.misbehave(reason);
                    }
                }
            }
            FromWorker::Doorbell | FromWorker::Heartbeat => {}
            FromWorker::Node { host } => {
                tracing::debug!(target: "offspring", worker_pid = self.shared.pid, %host, "remote worker connected");
                self.timelines
                    .each(|t| t.worker_host(self.shared.pid, &host));
                let _ = self.shared.host.set(host);
            }
            // Served where they are read (`read_loop`, `serve_side`).
            FromWorker::Call { .. } | FromWorker::CallFor { .. } => {}
            FromWorker::Log(record) => {
                if let Some(logs) = &self.logs {
                    logs.forwarded.fetch_add(1, Ordering::Relaxed);
                }
                let flight = record.task_id.and_then(|id| self.in_flight.get(&id));
                crate::logs::emit(
                    self.shared.pid,
                    flight.map(|f| f.name.as_str()),
                    flight.map(|f| f.context.of(record.call as usize).1),
                    &record,
                );
            }
            FromWorker::LogsDropped { total } => {
                let grew = total.saturating_sub(self.dropped_seen);
                self.dropped_seen = self.dropped_seen.max(total);
                if let Some(logs) = &self.logs {
                    logs.dropped.fetch_add(grew, Ordering::Relaxed);
                }
                if grew > 0 {
                    tracing::warn!(target: "offspring", worker_pid = self.shared.pid, dropped = grew, "worker dropped log records: its forwarding queue was full");
                }
            }
        }
        // What this frame and the ring reported goes on together.
        for flight in self.in_flight.values_mut() {
            flight.sink.flush();
        }
    }

    /// One call's report, from a frame.
    fn item(&mut self, task_id: u64, index: u32, outcome: Outcome, elapsed_us: u64) {
        let segment = self.ring.as_ref().map(|(segment, _)| Arc::clone(segment));
        self.item_in(segment.as_deref(), task_id, index, outcome, elapsed_us);
    }

    /// One call's report, from a frame or from the ring; `segment` is the worker's, if it
    /// has one (a value may lie in its to-parent arena).
    fn item_in(
        &mut self,
        segment: Option<&Segment>,
        task_id: u64,
        index: u32,
        outcome: Outcome,
        elapsed_us: u64,
    ) {
        if self.misbehaved.is_some() {
            return;
        }
        let outcome = match outcome {
            Outcome::Shared { count, bytes } => match self.take_shared(segment, count, bytes) {
                Ok(value) => Outcome::Value(value),
                Err(reason) => {
                    self.misbehave(reason);
                    return;
                }
            },
            outcome => outcome,
        };
        if !self.is_next_report(task_id, index) {
            return;
        }
        let Some(flight) = self.in_flight.get_mut(&task_id) else {
            return;
        };
        if !self.timelines.is_empty() {
            let described = describe_outcome(&outcome);
            let slice = CallSlice {
                pid: self.shared.pid,
                name: &flight.name,
                job: flight.context.of(index as usize).0,
                task_id,
                index: index as usize,
                elapsed_us,
                outcome: &described,
            };
            self.timelines.each(|t| t.call(&slice));
        }
        let outcome = match outcome {
            Outcome::Value(bytes) => Ok(bytes),
            Outcome::Panicked { message, location } => Err(Failure::Panicked { message, location }),
            Outcome::UnknownTask => Err(Failure::UnknownTask),
            Outcome::BadArgs(e) => Err(Failure::BadArgs(e)),
            Outcome::BadResult(e) => Err(Failure::BadResult(e)),
            Outcome::TimedOut { after_ms } => Err(Failure::TimedOut {
                after: Duration::from_millis(after_ms),
            }),
            // Resolved above; never here.
            Outcome::Shared { .. } => Err(Failure::BadResult(
                "a value left in the worker's arena".to_owned(),
            )),
        };
        flight.reported = index as usize + 1;
        if !self.timelines.is_empty() {
            // Only timelines use it (the slice of a call its worker died in).
            flight.since = Some(Instant::now());
        }
        flight.sink.item(index as usize, outcome, self.shared.pid);
    }

    /// Whether call `index` of batch `task_id` is the one due to report; if not, the worker
    /// broke the protocol.
    fn is_next_report(&mut self, task_id: u64, index: u32) -> bool {
        let reason = match self.in_flight.get(&task_id) {
            None => format!("it reported on batch {task_id}, which it was not given"),
            Some(flight)
                if index as usize != flight.reported || flight.reported >= flight.calls =>
            {
                format!(
                    "it reported call {index} of batch {task_id} when call {} of {} was next",
                    flight.reported, flight.calls
                )
            }
            Some(_) => return true,
        };
        self.misbehave(reason);
        false
    }

    /// A value read from the ring, borrowed from the reader's copy: as [`item_in`]
    /// (Self::item_in) of an `Outcome::Value`, for a worker no timeline watches.
    fn value_in(&mut self, task_id: u64, index: u32, value: &[u8]) {
        if self.misbehaved.is_some() {
            return;
        }
        match self.in_flight.get_mut(&task_id) {
            Some(flight) if index as usize == flight.reported && flight.reported < flight.calls => {
                flight.reported += 1;
                flight.sink.value(index as usize, value, self.shared.pid);
            }
            // Not the call due: this says why, and kills the worker.
            _ => {
                self.is_next_report(task_id, index);
            }
        }
    }

    /// Copies value `count` out of the worker's to-parent arena, checked against its
    /// checksum, and gives the arena back to the worker.
    fn take_shared(
        &mut self,
        segment: Option<&Segment>,
        count: u64,
        bytes: arena::SharedBytes,
    ) -> Result<Vec<u8>, String> {
        let to_parent = segment
            .and_then(|segment| arena::parts(segment.words()).to_parent)
            .ok_or_else(|| "it reported a value in an arena it does not have".to_owned())?;
        let expected = self.shared_consumed + 1;
        if count != expected {
            return Err(arena::ArenaError::Count {
                got: count,
                expected,
            }
            .to_string());
        }
        let len = usize::try_from(bytes.len)
            .unwrap_or(0)
            .min(arena::data_bytes(to_parent));
        let mut value = SPARE.take(len);
        arena::read(to_parent, bytes, &mut value).map_err(|e| e.to_string())?;
        self.shared_consumed = count;
        arena::consumed(to_parent, count);
        Ok(value)
    }

    /// Reads and delivers what the worker published in its ring. A ring no well-behaved
    /// worker could have written kills the worker.
    fn drain_ring(&mut self) {
        if self.misbehaved.is_some() {
            return;
        }
        // The reader is taken out while it reads, so that each entry is decoded from its
        // copy and delivered as it is read (each payload is copied out of the segment once).
        let Some((segment, mut reader)) = self.ring.take() else {
            return;
        };
        let read = reader.read(arena::parts(segment.words()).ring, |entry| {
            if self.misbehaved.is_some() {
                return;
            }
            if self.timelines.is_empty()
                && let Some(value) = offspring_wire::ring::value_of(entry.payload)
            {
                self.value_in(entry.task_id, entry.index, value);
                return;
            }
            match offspring_wire::ring::decode_outcome(entry.payload) {
                Ok(outcome) => self.item_in(
                    Some(&segment),
                    entry.task_id,
                    entry.index,
                    outcome,
                    entry.elapsed_us,
                ),
                Err(e) => self.misbehave(format!(
                    "its ring holds an outcome that does not decode: {e}"
                )),
            }
        });
        self.ring = Some((segment, reader));
        if let Err(e) = read {
            self.misbehave(e.to_string());
        }
    }

    /// The worker broke the protocol: kill it, and fail what it was running with `reason`.
    fn misbehave(&mut self, reason: String) {
        if self.misbehaved.is_some() {
            return;
        }
        tracing::error!(target: "offspring", worker_pid = self.shared.pid, %reason, "a worker broke the protocol; killing it");
        self.misbehaved = Some(reason);
        if !self.dead {
            self.kill_child(sys::EXIT_KILLED);
        }
    }

    /// For a dead worker whose socket and ring were read: whether call `next` of batch
    /// `task_id` was running. With a ring, its lanes say (a lane still naming a call that
    /// reported means it is done); without one, the first unreported call of a batch is
    /// taken to be running.
    fn was_running(&mut self, task_id: u64, next: usize) -> bool {
        let Some((segment, reader)) = &self.ring else {
            return true;
        };
        let ring = arena::parts(segment.words()).ring;
        if !reader.worker_ready(ring) {
            return true;
        }
        let lanes = reader.running(ring);
        let Some(lane) = lanes.iter().find(|lane| lane.task_id == task_id) else {
            return false;
        };
        match lane.index.cmp(&(next as u64)) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Greater => {
                let reason = format!(
                    "its segment says call {} of batch {task_id} ran, but only {next} reported",
                    lane.index
                );
                self.misbehave(reason);
                false
            }
        }
    }

    /// Kills the child: SIGKILL on Unix; on Windows `TerminateProcess` with `code` (see
    /// [`sys::EXIT_KILLED`]), so its status says the parent ended it.
    fn kill_child(&mut self, code: u32) {
        #[cfg(windows)]
        if let Some(handle) = self.child.raw_handle()
            && sys::terminate_with(handle, code).is_ok()
        {
            return;
        }
        let _ = code;
        let _ = self.child.start_kill();
    }

    /// The connection ended: collect the exit status, killing a child that lingers.
    async fn reap(&mut self) -> Option<ExitStatus> {
        match tokio::time::timeout(EXIT_GRACE, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(target: "offspring", worker_pid = self.shared.pid, "worker closed its connection but did not exit; killing it");
                self.kill_child(sys::EXIT_KILLED);
                self.child.wait().await.ok()
            }
        }
    }

    fn died(&mut self, status: Option<ExitStatus>) {
        // The socket is drained: what the worker published in its ring before it died is
        // done too.
        self.drain_ring();
        // Nothing reads or writes the arenas again: their pages go back now, not with the
        // last handle.
        if let Some(arena) = &self.arena {
            arena.retire();
        }
        let mut running = HashMap::new();
        let batches: Vec<(u64, usize)> = self
            .in_flight
            .iter()
            .map(|(task_id, flight)| (*task_id, flight.reported))
            .collect();
        for (task_id, next) in batches {
            let was = self.was_running(task_id, next);
            running.insert(task_id, was);
        }
        self.dead = true;
        self.shared.dead.store(true, Ordering::Release);
        // A process the worker forked may still hold its side channel: its thread ends now.
        if let Some(side) = &self.side {
            side.shutdown();
        }
        let clean = status.is_some_and(|s| s.success());
        self.registry.process_gone(self.shared.pid, clean);
        {
            let mut state = lock(&self.shared.exit);
            state.status = status;
            state.exited = true;
        }
        self.shared.exited.notify_all();
        self.shared.exit_watch.send_replace(true);
        if !self.timelines.is_empty() {
            let exit = status.map_or_else(|| "exit status unknown".to_owned(), |s| s.to_string());
            for (task_id, flight) in &self.in_flight {
                // The call that was running when the worker died gets a slice too.
                if let Some(since) = flight.since {
                    let slice = CallSlice {
                        pid: self.shared.pid,
                        name: &flight.name,
                        job: flight.context.of(flight.reported).0,
                        task_id: *task_id,
                        index: flight.reported,
                        elapsed_us: u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX),
                        outcome: &format!("worker died ({exit})"),
                    };
                    self.timelines.each(|t| t.call(&slice));
                }
            }
            self.timelines
                .each(|t| t.worker_exited(self.shared.pid, &exit));
        }
        if !self.in_flight.is_empty() {
            tracing::debug!(target: "offspring", worker_pid = self.shared.pid, ?status, tasks = self.in_flight.len(), "worker died with tasks assigned");
        }
        // Every batch's reports go on before any batch's death: the scheduler ends a dead
        // worker's batches together, on the first death it hears of.
        for flight in self.in_flight.values_mut() {
            flight.sink.flush();
        }
        for (task_id, flight) in std::mem::take(&mut self.in_flight) {
            flight.sink.died(Death {
                next: flight.reported,
                running: running.get(&task_id).copied().unwrap_or(true),
                status,
                misbehaved: self.misbehaved.clone(),
                pid: self.shared.pid,
                host: self.shared.host.get().cloned(),
            });
        }
    }
}

/// A call's outcome in a word or a line, for timelines.
fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Value(_) => "ok".to_owned(),
        Outcome::Panicked { message, location } => match location {
            Some(location) => format!("panicked: {message} at {location}"),
            None => format!("panicked: {message}"),
        },
        Outcome::UnknownTask => "unknown task".to_owned(),
        Outcome::BadArgs(e) => format!("bad arguments: {e}"),
        Outcome::BadResult(e) => format!("bad result: {e}"),
        Outcome::TimedOut { after_ms } => format!("cancelled after {after_ms} ms"),
        Outcome::Shared { .. } => "ok (through the arena)".to_owned(),
    }
}
