//! The state of every cross-process primitive (events, semaphores, barriers, queues, pipe
//! ends), owned by the parent. The parent's own threads call it directly; workers reach it
//! through `FromWorker::Call` messages, which the thread that reads them (the connection's
//! reader, or on Linux the worker's side channel's) hands to [`Registry::remote`].
//!
//! # Holders and leases
//!
//! Every process that holds handles to a primitive holds a *lease* on it, counted per
//! process; a handle serialized into task arguments takes an *in-flight* lease (a token) that
//! the receiving worker adopts when it decodes the handle. A primitive is freed when its last
//! lease goes: a process dropping its handles, a worker dying (all its leases go at once), or
//! an in-flight lease whose call ended without the worker adopting it (a worker killed before
//! it used what it was sent).
//!
//! # Further down
//!
//! A worker that starts workers of its own keeps no table: its registry has an [`Upstream`]
//! and passes every operation of its workers on, with the path of pids of the process that
//! made it. Here such a process is a [`Holder::Descendant`] of the worker it came through;
//! [`PrimOp::Gone`] says one exited, and the death of a worker ends what every descendant of
//! it held.
//!
//! # Death
//!
//! When a worker dies, the permits it held go back (and a waiter wakes), its waits are
//! withdrawn, a barrier it had a handle to breaks (its waiters get an error instead of a
//! hang), and a pipe end it held closes (a receiver on the other end with nothing left to
//! read gets an error).
//!
//! # Timeouts
//!
//! Every wait has an id. A local waiter that times out withdraws its wait under the lock, so
//! it either withdrew it or was served first, never both; a worker's wait is timed here, on
//! the coordinator's runtime, for the same reason.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[cfg(any(target_os = "linux", windows))]
use offspring_transport::channel::Channel;
use offspring_wire::{Kind, PrimOp, PrimReply, ToWorker, encode};
use tokio::sync::mpsc::UnboundedSender;

use crate::coordinator::{lock, wait_for};

/// Who holds a lease or a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// The parent process.
    Parent,
    /// A worker, by pid.
    Worker(u32),
    /// A handle in flight inside task arguments, by lease token.
    InFlight(u64),
    /// A descendant of a worker (a worker of that worker, ...), by the worker's pid and the
    /// registry's key for the path of pids below it (see `FromWorker::CallFor`).
    Descendant(u32, u64),
}

/// A reply to an operation passed upstream, run when it arrives.
pub type ReplyFn = Box<dyn FnOnce(PrimReply) + Send>;

/// Where the primitives live when this process is a worker itself: its parent's registry,
/// reached over its own connection. A registry with an upstream keeps no state: it passes
/// each operation of its workers on, naming who made it.
pub trait Upstream: Send + Sync {
    /// Passes `op` on for `origin` (pids from this process's worker down to the process that
    /// made it; empty for this process itself); `reply` gets the answer, if one is wanted.
    fn forward(&self, origin: Vec<u32>, op: PrimOp, reply: Option<ReplyFn>);
}

/// A parent thread waiting for a reply.
#[derive(Debug, Default)]
pub(crate) struct LocalWait {
    reply: Mutex<Option<PrimReply>>,
    ready: Condvar,
}

impl LocalWait {
    fn fill(&self, reply: PrimReply) {
        *lock(&self.reply) = Some(reply);
        self.ready.notify_all();
    }

    fn wait(&self, timeout: Option<Duration>) -> Option<PrimReply> {
        wait_for(&self.ready, lock(&self.reply), timeout, |reply| {
            reply.is_none()
        })
        .take()
    }
}

/// A worker's side channel, kept by the parent (Linux; nothing elsewhere).
pub(crate) type Side = Arc<SideEnd>;

/// The parent's end of a worker's side channel, and the replies waiting for room in it.
#[cfg(target_os = "linux")]
pub(crate) struct SideEnd {
    pub(crate) channel: Channel,
    pid: u32,
    backlog: Mutex<Backlog>,
}

/// Nothing: only Linux has side channels.
#[cfg(not(target_os = "linux"))]
pub(crate) enum SideEnd {}

#[cfg(not(target_os = "linux"))]
impl SideEnd {
    pub(crate) fn shutdown(&self) {
        match *self {}
    }
}

/// Replies that found a side channel full, in order, and whether a thread writes them.
#[cfg(target_os = "linux")]
#[derive(Default)]
struct Backlog {
    queued: VecDeque<Vec<u8>>,
    writing: bool,
}

/// How many replies may wait for room in one side channel. A worker's threads read their
/// replies as they wait for them, so a backlog this long means a worker that asks and does
/// not read: its side channel is shut down, and it ends as one whose parent is gone.
#[cfg(target_os = "linux")]
const MAX_BACKLOG: usize = 4096;

#[cfg(target_os = "linux")]
impl SideEnd {
    /// Ends the channel both ways: the worker's reads see its end, and so does the thread
    /// serving it here.
    pub(crate) fn shutdown(&self) {
        let _ = self.channel.shutdown();
    }
}

/// Why a reply did not go out.
enum Unsent {
    /// The worker is gone.
    Gone,
    /// It could not be written (the OS's reason): the waiter hears an error instead. Only
    /// side channels (Linux) fail this way.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Failed(String),
}

/// Where a worker's replies go: its connection's writer, or, for a call made with
/// [`offspring_wire::SIDE_REPLY`] on its side channel, that channel, written at once by
/// whichever thread of the parent completes the call (the waiting thread reads it itself).
#[derive(Clone)]
pub(crate) struct ReplyTo {
    /// The connection's writer; recalls of lent permits go there too.
    pub(crate) frames: UnboundedSender<Vec<u8>>,
    pub(crate) side: Option<Side>,
}

impl ReplyTo {
    fn send(&self, frame: Vec<u8>) -> Result<(), Unsent> {
        match &self.side {
            #[cfg(target_os = "linux")]
            Some(side) => side_send(side, &self.frames, frame),
            #[cfg(not(target_os = "linux"))]
            Some(never) => match **never {},
            None => self.frames.send(frame).map_err(|_| Unsent::Gone),
        }
    }
}

/// Writes a reply to a worker's side channel without waiting. When the channel is full (the
/// worker's threads are slow to read it) the reply waits in its backlog, which one thread
/// writes, in order, for as long as the worker lives.
#[cfg(target_os = "linux")]
fn side_send(side: &Side, frames: &UnboundedSender<Vec<u8>>, frame: Vec<u8>) -> Result<(), Unsent> {
    let mut backlog = lock(&side.backlog);
    if backlog.queued.is_empty() && !backlog.writing {
        match side.channel.send(body(&frame)) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(side_error(&e)),
        }
    }
    if backlog.queued.len() >= MAX_BACKLOG {
        backlog.queued.clear();
        drop(backlog);
        tracing::warn!(target: "offspring", worker_pid = side.pid, "the worker does not read its replies ({MAX_BACKLOG} wait); ending its side channel");
        side.shutdown();
        return Err(Unsent::Gone);
    }
    backlog.queued.push_back(frame);
    if backlog.writing {
        return Ok(());
    }
    let writer = {
        let side = Arc::clone(side);
        let frames = frames.clone();
        move || write_backlog(&side, &frames)
    };
    match std::thread::Builder::new()
        .name("offspring-reply".into())
        .spawn(writer)
    {
        Ok(_) => {
            backlog.writing = true;
            Ok(())
        }
        Err(e) => {
            backlog.queued.pop_back();
            Err(Unsent::Failed(format!(
                "cannot start a thread to write it: {e}"
            )))
        }
    }
}

/// What a failed write to a side channel means.
#[cfg(target_os = "linux")]
fn side_error(error: &std::io::Error) -> Unsent {
    match error.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Unsent::Gone,
        _ => Unsent::Failed(error.to_string()),
    }
}

/// Writes a side channel's backlog, waiting for room, until it is empty or the worker gone.
#[cfg(target_os = "linux")]
fn write_backlog(side: &SideEnd, frames: &UnboundedSender<Vec<u8>>) {
    loop {
        let frame = {
            let mut backlog = lock(&side.backlog);
            match backlog.queued.pop_front() {
                Some(frame) => frame,
                None => {
                    backlog.writing = false;
                    return;
                }
            }
        };
        loop {
            let by = std::time::Instant::now() + Duration::from_millis(100);
            match side.channel.send_by(body(&frame), by) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut && !frames.is_closed() => {}
                Err(e) => {
                    // The worker is gone (or its channel failed, and the worker with it):
                    // what waits here has nobody to go to.
                    if !matches!(side_error(&e), Unsent::Gone) && !frames.is_closed() {
                        tracing::warn!(target: "offspring", worker_pid = side.pid, error = %e, "cannot write a reply to the worker's side channel; ending it");
                        side.shutdown();
                    }
                    let mut backlog = lock(&side.backlog);
                    backlog.queued.clear();
                    backlog.writing = false;
                    return;
                }
            }
        }
    }
}

/// A side channel's message: the frame's body, without its length.
#[cfg(target_os = "linux")]
fn body(frame: &[u8]) -> &[u8] {
    frame.get(offspring_wire::HEADER_LEN..).unwrap_or_default()
}

enum Waiter {
    Local(Arc<LocalWait>),
    Remote { call_id: u64, to: ReplyTo },
}

impl Waiter {
    /// Delivers a reply; gives it back when the waiter is gone (a dead worker), so an item
    /// is never lost in a hand-off.
    fn complete(&self, reply: PrimReply) -> Result<(), PrimReply> {
        match self {
            Self::Local(wait) => {
                wait.fill(reply);
                Ok(())
            }
            Self::Remote { call_id, to } => {
                let message = ToWorker::Reply {
                    call_id: *call_id,
                    reply,
                };
                let frame = match encode(&message) {
                    Ok(frame) => frame,
                    // A reply that cannot be framed (too large) reaches its waiter as an error,
                    // and what it carried is given back, never lost.
                    Err(e) => {
                        let error = ToWorker::Reply {
                            call_id: *call_id,
                            reply: PrimReply::Error(format!(
                                "the parent could not send the answer: {e}"
                            )),
                        };
                        if let Ok(frame) = encode(&error)
                            && to.send(frame).is_ok()
                        {
                            return match message {
                                ToWorker::Reply {
                                    reply: reply @ PrimReply::Item(_),
                                    ..
                                } => Err(reply),
                                _ => Ok(()),
                            };
                        }
                        return Err(match message {
                            ToWorker::Reply { reply, .. } => reply,
                            _ => PrimReply::Unit,
                        });
                    }
                };
                let reply = match message {
                    ToWorker::Reply { reply, .. } => reply,
                    _ => PrimReply::Unit,
                };
                match to.send(frame) {
                    Ok(()) => Ok(()),
                    Err(Unsent::Gone) => Err(reply),
                    // The reply could not be written (no memory file for a large one): the
                    // waiter hears why, in a reply small enough to go, and an item is given
                    // back.
                    Err(Unsent::Failed(reason)) => {
                        let error = ToWorker::Reply {
                            call_id: *call_id,
                            reply: PrimReply::Error(format!(
                                "the parent could not send the answer: {reason}"
                            )),
                        };
                        match encode(&error).map(|frame| to.send(frame)) {
                            Ok(Ok(())) if !matches!(reply, PrimReply::Item(_)) => Ok(()),
                            _ => Err(reply),
                        }
                    }
                }
            }
        }
    }
}

struct Waiting {
    wait: u64,
    holder: Holder,
    waiter: Waiter,
    /// An acquire whose permit may stay lent to its worker (`PrimOp::AcquireLent`).
    lend: bool,
}

enum ObjectState {
    Event {
        set: bool,
        waiters: Vec<Waiting>,
    },
    Semaphore {
        available: u64,
        held: HashMap<Holder, u64>,
        waiters: VecDeque<Waiting>,
        /// The holders whose permits are lent to them (see `PrimOp::AcquireLent`), with
        /// where a recall reaches them.
        lenders: HashMap<Holder, UnboundedSender<Vec<u8>>>,
    },
    Barrier {
        parties: u64,
        waiting: Vec<Waiting>,
        broken: Option<String>,
        /// Whether the last party to arrive runs an action before the others are released.
        has_action: bool,
        /// The holder running the action now, if one is.
        acting: Option<Holder>,
    },
    Queue {
        items: VecDeque<Vec<u8>>,
        bound: u64,
        unfinished: u64,
        getters: VecDeque<Waiting>,
        putters: VecDeque<(Waiting, Vec<u8>)>,
        joiners: Vec<Waiting>,
        /// After `Queue::shutdown`: no more puts; gets fail once it is empty.
        shut_down: bool,
    },
    PipeEnd {
        peer: u64,
        inbox: VecDeque<Vec<u8>>,
        receivers: VecDeque<Waiting>,
        peer_closed: bool,
    },
    /// A direct pipe's end (Linux): one end of a socket pair. Processes that can hold its
    /// descriptor send and receive on it themselves (`PrimOp::Attach`); for the others the
    /// registry does it on this one (see [`relay`]). Closed when the last lease goes, so
    /// the other end reads its end once no process holds this one.
    #[cfg(any(target_os = "linux", windows))]
    DirectEnd {
        channel: Arc<Channel>,
        /// How many sends and receives the registry made on it for others (for tests).
        relayed: u64,
    },
    /// Waiters of a condition, each with the semaphore (its lock) it takes again once
    /// notified.
    Condition {
        sleepers: VecDeque<(Waiting, u64)>,
    },
    /// A shared-memory object: the OS object, closed when the last lease goes (the memory
    /// goes once no process maps it either).
    Shared {
        object: offspring_transport::shm::SharedObject,
        sealed: bool,
    },
}

struct Object {
    kind: Kind,
    leases: HashMap<Holder, u64>,
    state: ObjectState,
}

#[derive(Default)]
struct Table {
    objects: HashMap<u64, Object>,
    inflight: HashMap<u64, u64>,
    /// Who took an in-flight lease through [`PrimOp::LeaseInFlight`] (a worker passing a
    /// handle on to its own workers): those leases end when it goes.
    inflight_by: HashMap<u64, Holder>,
    /// The keys of [`Holder::Descendant`]: (worker pid, path below it) and back.
    paths: HashMap<(u32, Vec<u32>), u64>,
    path_of: HashMap<u64, (u32, Vec<u32>)>,
    next_path: u64,
    /// Sends and receives the registry is making on direct pipe ends for others, each with
    /// the flag that tells it its holder is gone (so a message is never taken for a process
    /// that died: a worker's own worker, whose connection is its parent's).
    #[cfg(any(target_os = "linux", windows))]
    relays: Vec<(Holder, Arc<std::sync::atomic::AtomicBool>)>,
    next_id: u64,
    next_token: u64,
    next_wait: u64,
}

/// What an operation came to.
enum Step {
    Done(PrimReply),
    Waiting(u64),
}

/// The primitives' table. One per coordinator.
pub struct Registry {
    inner: Mutex<Table>,
    runtime: tokio::runtime::Handle,
    upstream: std::sync::OnceLock<Arc<dyn Upstream>>,
    /// The parent's ends of its workers' side channels, by pid: where the descriptors of
    /// direct pipes go down (see `PrimOp::Attach`).
    #[cfg(target_os = "linux")]
    sides: Mutex<HashMap<u32, Side>>,
    /// Each local worker's process, into which its direct pipe ends are duplicated.
    #[cfg(windows)]
    processes: Mutex<HashMap<u32, std::os::windows::io::OwnedHandle>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("objects", &self.len())
            .finish_non_exhaustive()
    }
}

fn no_such(id: u64, kind: Kind) -> PrimReply {
    PrimReply::Error(format!(
        "handle {id} names no live {} (it was freed, or the bytes were not a handle)",
        kind_name(kind)
    ))
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Event => "event",
        Kind::Semaphore => "semaphore",
        Kind::Barrier => "barrier",
        Kind::Queue => "queue",
        Kind::PipeEnd => "pipe end",
        Kind::Condition => "condition",
        Kind::Shared => "shared-memory object",
    }
}

/// The timeout a waiting operation carries (`None`: no wait, or no limit).
fn op_timeout(op: &PrimOp) -> Option<Duration> {
    match op {
        PrimOp::EventWait { timeout_ms, .. }
        | PrimOp::Acquire { timeout_ms, .. }
        | PrimOp::AcquireLent { timeout_ms, .. }
        | PrimOp::BarrierWait { timeout_ms, .. }
        | PrimOp::Put { timeout_ms, .. }
        | PrimOp::Get { timeout_ms, .. }
        | PrimOp::Join { timeout_ms, .. }
        | PrimOp::CondWait { timeout_ms, .. }
        | PrimOp::Recv { timeout_ms, .. } => timeout_ms.map(Duration::from_millis),
        _ => None,
    }
}

impl Registry {
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Self {
        Self {
            inner: Mutex::new(Table {
                next_id: 1,
                next_token: 1,
                next_wait: 1,
                next_path: 1,
                ..Table::default()
            }),
            runtime,
            upstream: std::sync::OnceLock::new(),
            #[cfg(target_os = "linux")]
            sides: Mutex::new(HashMap::new()),
            #[cfg(windows)]
            processes: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps worker `pid`'s process (a duplicate of its handle) until the worker is gone, to
    /// duplicate direct pipe ends into it.
    #[cfg(windows)]
    pub(crate) fn set_process(&self, pid: u32, process: std::os::windows::io::RawHandle) {
        match offspring_transport::channel::keep_process(process) {
            Ok(process) => {
                lock(&self.processes).insert(pid, process);
            }
            Err(error) => {
                tracing::debug!(target: "offspring", worker_pid = pid, %error, "pipes of this worker go through the parent");
            }
        }
    }

    /// Keeps the parent's end of worker `pid`'s side channel until the worker is gone, and
    /// gives it back to be served (see `worker::serve_side`); `None` when it cannot be used.
    #[cfg(target_os = "linux")]
    pub(crate) fn set_side(&self, pid: u32, side: Channel) -> Option<Side> {
        side.set_nonblocking().ok()?;
        let side = Arc::new(SideEnd {
            channel: side,
            pid,
            backlog: Mutex::default(),
        });
        lock(&self.sides).insert(pid, Arc::clone(&side));
        Some(side)
    }

    /// The channel of direct pipe end `id`, for this process to use itself; `None` when `id`
    /// is not a live direct end (its operations then go through [`Registry::local`]).
    #[cfg(any(target_os = "linux", windows))]
    pub fn pipe_channel(&self, id: u64) -> Option<Arc<Channel>> {
        match &lock(&self.inner).objects.get(&id)?.state {
            ObjectState::DirectEnd { channel, .. } => Some(Arc::clone(channel)),
            _ => None,
        }
    }

    /// How many sends and receives the registry made on direct pipe end `id` for processes
    /// that do not hold it (for tests: a pipe between two local processes shows none).
    #[cfg(any(target_os = "linux", windows))]
    pub fn relayed(&self, id: u64) -> Option<u64> {
        match &lock(&self.inner).objects.get(&id)?.state {
            ObjectState::DirectEnd { relayed, .. } => Some(*relayed),
            _ => None,
        }
    }

    /// `PrimOp::Attach` from worker `pid` (`holder`): passes the end's descriptor down the
    /// worker's side channel (Linux), or duplicates its handle into the worker (Windows,
    /// answered with the handle's value), when it can.
    fn attach(&self, pid: u32, holder: Holder, id: u64) -> PrimReply {
        #[cfg(any(target_os = "linux", windows))]
        {
            let channel = {
                let inner = lock(&self.inner);
                match inner.objects.get(&id) {
                    Some(Object {
                        state: ObjectState::DirectEnd { channel, .. },
                        leases,
                        ..
                    }) => {
                        if !leases.contains_key(&holder) {
                            return PrimReply::Error(format!(
                                "this process holds no handle to pipe end {id}"
                            ));
                        }
                        Arc::clone(channel)
                    }
                    Some(Object {
                        kind: Kind::PipeEnd,
                        ..
                    }) => return PrimReply::Bool(false),
                    _ => return no_such(id, Kind::PipeEnd),
                }
            };
            if holder != Holder::Worker(pid) {
                return PrimReply::Bool(false);
            }
            self.hand_down(pid, id, &channel)
        }
        #[cfg(not(any(target_os = "linux", windows)))]
        {
            let _ = (pid, holder);
            match lock(&self.inner).objects.get(&id) {
                Some(Object {
                    kind: Kind::PipeEnd,
                    ..
                }) => PrimReply::Bool(false),
                _ => no_such(id, Kind::PipeEnd),
            }
        }
    }

    /// Gives worker `pid` its own descriptor of direct end `id`: down its side channel, ahead
    /// of the `Unit` reply.
    #[cfg(target_os = "linux")]
    fn hand_down(&self, pid: u32, id: u64, channel: &Channel) -> PrimReply {
        use std::os::fd::AsFd as _;
        let sides = lock(&self.sides);
        let Some(side) = sides.get(&pid) else {
            return PrimReply::Bool(false);
        };
        match side.channel.send_fd(id, channel.as_fd()) {
            Ok(()) => PrimReply::Unit,
            Err(error) => {
                // A side channel that is full (a worker not reading it) or broken: this
                // worker's operations on the end go through the registry instead.
                tracing::debug!(target: "offspring", worker_pid = pid, %error, "cannot pass a pipe end down");
                PrimReply::Bool(false)
            }
        }
    }

    /// Gives worker `pid` its own handle of direct end `id`, duplicated into its process: the
    /// handle's value there, as `Count`.
    #[cfg(windows)]
    fn hand_down(&self, pid: u32, id: u64, channel: &Channel) -> PrimReply {
        use std::os::windows::io::AsHandle as _;
        let processes = lock(&self.processes);
        let Some(process) = processes.get(&pid) else {
            return PrimReply::Bool(false);
        };
        match channel.duplicate_into(process.as_handle()) {
            Ok(handle) => PrimReply::Count(handle),
            Err(error) => {
                tracing::debug!(target: "offspring", worker_pid = pid, id, %error, "cannot pass a pipe end down");
                PrimReply::Bool(false)
            }
        }
    }

    /// A `Send` or `Recv` on a direct pipe end, which the registry performs on the end's
    /// channel for a process that does not hold it: the channel, and the flag that says
    /// `holder` is gone (registered under the same lock, so a death is never missed).
    #[cfg(any(target_os = "linux", windows))]
    fn direct(
        &self,
        op: &PrimOp,
        holder: Option<Holder>,
    ) -> Option<(Arc<Channel>, Arc<std::sync::atomic::AtomicBool>)> {
        let (PrimOp::Send { id, .. } | PrimOp::Recv { id, .. }) = op else {
            return None;
        };
        let mut inner = lock(&self.inner);
        let ObjectState::DirectEnd { channel, relayed } = &mut inner.objects.get_mut(id)?.state
        else {
            return None;
        };
        *relayed += 1;
        let channel = Arc::clone(channel);
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(holder) = holder {
            inner.relays.push((holder, Arc::clone(&gone)));
        }
        Some((channel, gone))
    }

    /// Makes this registry pass its workers' operations on to `upstream` (this process is a
    /// worker, and its parent holds the primitives). Set once, before any worker starts.
    pub fn set_upstream(&self, upstream: Arc<dyn Upstream>) {
        let _ = self.upstream.set(upstream);
    }

    /// How many primitives are alive (for tests: a leak shows here).
    pub fn len(&self) -> usize {
        lock(&self.inner).objects.len()
    }

    /// Whether no primitive is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `op` for a thread of the parent, waiting as it says.
    pub fn local(&self, op: PrimOp) -> PrimReply {
        #[cfg(any(target_os = "linux", windows))]
        if let Some((channel, _)) = self.direct(&op, None) {
            return relay(&channel, op, || true);
        }
        let timeout = op_timeout(&op);
        let id = op_id(&op);
        let wait = Arc::new(LocalWait::default());
        match self.step(Holder::Parent, op, Waiter::Local(Arc::clone(&wait))) {
            Step::Done(reply) => reply,
            Step::Waiting(wait_id) => match wait.wait(timeout) {
                Some(reply) => reply,
                None => {
                    if self.withdraw(id, wait_id) {
                        PrimReply::Timeout
                    } else {
                        // Served while the clock ran out: the reply is on its way.
                        wait.wait(None).unwrap_or(PrimReply::Timeout)
                    }
                }
            },
        }
    }

    /// Runs `op` for worker `pid`, or for its descendant `origin` when that is not empty; the
    /// reply (if `call_id` is not zero) goes out to `to`.
    pub(crate) fn remote(
        self: &Arc<Self>,
        pid: u32,
        origin: Vec<u32>,
        call_id: u64,
        op: PrimOp,
        to: &ReplyTo,
    ) {
        if let Some(upstream) = self.upstream.get() {
            let mut path = Vec::with_capacity(origin.len() + 1);
            path.push(pid);
            path.extend(origin);
            let reply = (call_id != 0).then(|| {
                let to = to.clone();
                Box::new(move |reply| {
                    let _ = Waiter::Remote { call_id, to }.complete(reply);
                }) as ReplyFn
            });
            upstream.forward(path, op, reply);
            return;
        }
        let holder = if origin.is_empty() {
            Holder::Worker(pid)
        } else {
            self.descendant(pid, origin.clone())
        };
        let reply = match op {
            PrimOp::LeaseInFlight { id } => Some(self.lease_for(id, holder)),
            PrimOp::EndInFlight {
                tokens,
                worker_died,
            } => {
                let mut inner = lock(&self.inner);
                end_tokens(&mut inner, &tokens, worker_died, Some(pid));
                Some(PrimReply::Unit)
            }
            PrimOp::Attach { id } => Some(self.attach(pid, holder, id)),
            PrimOp::Gone { path, clean } => {
                let mut full = origin;
                full.extend(path);
                if !full.is_empty() {
                    self.holders_gone(pid, Some(&full), clean);
                }
                Some(PrimReply::Unit)
            }
            op => {
                self.run_remote(holder, call_id, op, to);
                None
            }
        };
        if let Some(reply) = reply
            && call_id != 0
        {
            let _ = Waiter::Remote {
                call_id,
                to: to.clone(),
            }
            .complete(reply);
        }
    }

    /// The holder a descendant of worker `pid` is, by its path below it.
    fn descendant(&self, pid: u32, path: Vec<u32>) -> Holder {
        let mut inner = lock(&self.inner);
        let key = match inner.paths.get(&(pid, path.clone())) {
            Some(key) => *key,
            None => {
                let key = inner.next_path;
                inner.next_path += 1;
                inner.paths.insert((pid, path.clone()), key);
                inner.path_of.insert(key, (pid, path));
                key
            }
        };
        Holder::Descendant(pid, key)
    }

    /// An in-flight lease taken by a worker for a handle it passes on to a worker of its own.
    fn lease_for(&self, id: u64, holder: Holder) -> PrimReply {
        match self.lease_in_flight(id) {
            Some(token) => {
                lock(&self.inner).inflight_by.insert(token, holder);
                PrimReply::Count(token)
            }
            None => PrimReply::Error(format!("handle {id} names no live primitive")),
        }
    }

    fn run_remote(self: &Arc<Self>, holder: Holder, call_id: u64, op: PrimOp, to: &ReplyTo) {
        #[cfg(any(target_os = "linux", windows))]
        if let Some((channel, gone)) = self.direct(&op, Some(holder)) {
            // The send or receive may wait as long as its caller does: on a thread of its own
            // (never the runtime's, nor a pool's that waits could fill).
            let for_relay = to.clone();
            let registry = Arc::clone(self);
            let relayed = std::thread::Builder::new()
                .name("offspring-relay".into())
                .spawn(move || {
                    let to = for_relay;
                    let alive = || {
                        !to.frames.is_closed() && !gone.load(std::sync::atomic::Ordering::Acquire)
                    };
                    let reply = relay(&channel, op, alive);
                    lock(&registry.inner)
                        .relays
                        .retain(|(_, flag)| !Arc::ptr_eq(flag, &gone));
                    drop(channel);
                    if call_id != 0
                        && let Err(PrimReply::Item(_)) =
                            (Waiter::Remote { call_id, to }).complete(reply)
                    {
                        tracing::warn!(target: "offspring", ?holder, "a pipe's message taken for a worker that died that moment is lost");
                    }
                });
            if let Err(e) = relayed {
                let _ = (Waiter::Remote {
                    call_id,
                    to: to.clone(),
                })
                .complete(PrimReply::Error(format!(
                    "the parent cannot start a thread to relay the pipe: {e}"
                )));
            }
            return;
        }
        let timeout = op_timeout(&op);
        let id = op_id(&op);
        let waiter = Waiter::Remote {
            call_id,
            to: to.clone(),
        };
        match self.step(holder, op, waiter) {
            Step::Done(reply) => {
                if call_id != 0 {
                    let _ = Waiter::Remote {
                        call_id,
                        to: to.clone(),
                    }
                    .complete(reply);
                } else if let PrimReply::Error(reason) = reply {
                    // A one-way operation (an event's set, a queue's task_done) has no caller
                    // to tell: the parent's log says it failed, and for whom.
                    tracing::warn!(
                        target: "offspring",
                        ?holder,
                        reason,
                        "a one-way primitive operation from a worker failed"
                    );
                }
            }
            Step::Waiting(wait_id) => {
                if let Some(timeout) = timeout {
                    let registry = Arc::clone(self);
                    let to = to.clone();
                    self.runtime.spawn(async move {
                        tokio::time::sleep(timeout).await;
                        if registry.withdraw(id, wait_id) {
                            let _ = Waiter::Remote { call_id, to }.complete(PrimReply::Timeout);
                        }
                    });
                }
            }
        }
    }

    /// Takes an in-flight lease on `id` for a handle being serialized; its token.
    pub fn lease_in_flight(&self, id: u64) -> Option<u64> {
        let mut inner = lock(&self.inner);
        let token = inner.next_token;
        let object = inner.objects.get_mut(&id)?;
        *object.leases.entry(Holder::InFlight(token)).or_default() += 1;
        inner.next_token += 1;
        inner.inflight.insert(token, id);
        Some(token)
    }

    /// Ends in-flight leases that were never adopted (the call they travelled with ended).
    /// When the call ended because its worker died, a barrier among them breaks: the party it
    /// was sent to is gone (it may have died before its adoption reached the parent).
    pub fn end_in_flight(&self, tokens: &[u64], worker_died: bool) {
        if tokens.is_empty() {
            return;
        }
        // In a worker, the leases were taken from its parent's registry.
        if let Some(upstream) = self.upstream.get() {
            let op = PrimOp::EndInFlight {
                tokens: tokens.to_vec(),
                worker_died,
            };
            upstream.forward(Vec::new(), op, None);
            return;
        }
        let mut inner = lock(&self.inner);
        end_tokens(&mut inner, tokens, worker_died, None);
    }

    /// A worker exited (`clean`: it was shut down and exited with success). Its leases,
    /// permits and waits go, and those of its descendants; see the module docs. With an
    /// upstream, the parent learns that its descendant went.
    pub fn process_gone(&self, pid: u32, clean: bool) {
        #[cfg(target_os = "linux")]
        lock(&self.sides).remove(&pid);
        #[cfg(windows)]
        lock(&self.processes).remove(&pid);
        if let Some(upstream) = self.upstream.get() {
            let gone = PrimOp::Gone {
                path: vec![pid],
                clean,
            };
            upstream.forward(Vec::new(), gone, None);
            return;
        }
        self.holders_gone(pid, None, clean);
    }

    /// Worker `pid` exited (`below` is `None`), or its descendant at `below` did, with the
    /// descendants of that one.
    fn holders_gone(&self, pid: u32, below: Option<&[u32]>, clean: bool) {
        let mut inner = lock(&self.inner);
        let mut holders: Vec<(Holder, u32)> = Vec::new();
        if below.is_none() {
            holders.push((Holder::Worker(pid), pid));
        }
        let keys: Vec<(u64, u32)> = inner
            .path_of
            .iter()
            .filter(|(_, (worker, path))| {
                *worker == pid && below.is_none_or(|below| path.starts_with(below))
            })
            .map(|(key, (_, path))| (*key, path.last().copied().unwrap_or(pid)))
            .collect();
        for (key, last) in keys {
            if let Some(entry) = inner.path_of.remove(&key) {
                inner.paths.remove(&entry);
            }
            holders.push((Holder::Descendant(pid, key), last));
        }
        for (holder, who) in holders {
            let tokens: Vec<u64> = inner
                .inflight_by
                .iter()
                .filter(|(_, by)| **by == holder)
                .map(|(token, _)| *token)
                .collect();
            end_tokens(&mut inner, &tokens, !clean, None);
            holder_gone(&mut inner, holder, who, clean);
        }
    }

    fn withdraw(&self, id: u64, wait: u64) -> bool {
        let mut inner = lock(&self.inner);
        let Some(object) = inner.objects.get_mut(&id) else {
            return false;
        };
        let before = waits(&object.state);
        retain_waits(&mut object.state, |w| w.wait != wait);
        waits(&object.state) != before
    }

    fn step(&self, holder: Holder, op: PrimOp, waiter: Waiter) -> Step {
        let mut inner = lock(&self.inner);
        let wait = inner.next_wait;
        inner.next_wait += 1;
        let waiting = Waiting {
            wait,
            holder,
            waiter,
            lend: matches!(op, PrimOp::AcquireLent { .. }),
        };
        match op {
            PrimOp::Create { kind, param } => {
                let state = match kind {
                    Kind::Event => ObjectState::Event {
                        set: false,
                        waiters: Vec::new(),
                    },
                    Kind::Semaphore => ObjectState::Semaphore {
                        available: param,
                        held: HashMap::new(),
                        waiters: VecDeque::new(),
                        lenders: HashMap::new(),
                    },
                    Kind::Barrier => ObjectState::Barrier {
                        parties: (param & !offspring_wire::BARRIER_ACTION).max(1),
                        waiting: Vec::new(),
                        broken: None,
                        has_action: param & offspring_wire::BARRIER_ACTION != 0,
                        acting: None,
                    },
                    Kind::Queue => ObjectState::Queue {
                        items: VecDeque::new(),
                        bound: param,
                        unfinished: 0,
                        getters: VecDeque::new(),
                        putters: VecDeque::new(),
                        joiners: Vec::new(),
                        shut_down: false,
                    },
                    Kind::Condition => ObjectState::Condition {
                        sleepers: VecDeque::new(),
                    },
                    Kind::PipeEnd => {
                        return Step::Done(PrimReply::Error(
                            "pipe ends are created in pairs".into(),
                        ));
                    }
                    Kind::Shared => {
                        return Step::Done(PrimReply::Error(
                            "shared-memory objects are created with their size".into(),
                        ));
                    }
                };
                let id = insert(&mut inner, kind, holder, state);
                Step::Done(PrimReply::Id(id))
            }
            PrimOp::CreatePipe => {
                #[cfg(any(target_os = "linux", windows))]
                if let Ok((x, y)) = Channel::pair() {
                    let end = |channel| ObjectState::DirectEnd {
                        channel: Arc::new(channel),
                        relayed: 0,
                    };
                    let a = insert(&mut inner, Kind::PipeEnd, holder, end(x));
                    let b = insert(&mut inner, Kind::PipeEnd, holder, end(y));
                    return Step::Done(PrimReply::Pair(a, b));
                }
                let a = inner.next_id;
                let b = a + 1;
                let end = |peer| ObjectState::PipeEnd {
                    peer,
                    inbox: VecDeque::new(),
                    receivers: VecDeque::new(),
                    peer_closed: false,
                };
                insert(&mut inner, Kind::PipeEnd, holder, end(b));
                insert(&mut inner, Kind::PipeEnd, holder, end(a));
                Step::Done(PrimReply::Pair(a, b))
            }
            PrimOp::Adopt { id, token } => {
                let from_flight = inner.inflight.remove(&token) == Some(id);
                let Some(object) = inner.objects.get_mut(&id) else {
                    return Step::Done(PrimReply::Error(format!(
                        "handle {id} names no live primitive"
                    )));
                };
                if from_flight {
                    let flight = Holder::InFlight(token);
                    if let Some(count) = object.leases.get_mut(&flight) {
                        *count -= 1;
                        if *count == 0 {
                            object.leases.remove(&flight);
                        }
                    }
                }
                *object.leases.entry(holder).or_default() += 1;
                Step::Done(PrimReply::Unit)
            }
            PrimOp::Release { id } => {
                drop_lease(&mut inner, id, holder);
                Step::Done(PrimReply::Unit)
            }
            PrimOp::SharedCreate { len, writable } => {
                let object = match offspring_transport::shm::SharedObject::create(len, writable) {
                    Ok(object) => object,
                    Err(e) => {
                        return Step::Done(PrimReply::Error(format!(
                            "cannot create a shared-memory object of {len} bytes: {e}"
                        )));
                    }
                };
                let locator = object.locator();
                let state = ObjectState::Shared {
                    object,
                    sealed: writable,
                };
                let id = insert(&mut inner, Kind::Shared, holder, state);
                Step::Done(PrimReply::Shared {
                    id,
                    pid: locator.pid,
                    handle: locator.handle,
                    tag: locator.tag,
                })
            }
            PrimOp::Sync => Step::Done(PrimReply::Unit),
            PrimOp::SharedSeal { id } => {
                let Some(ObjectState::Shared { object, sealed }) =
                    inner.objects.get_mut(&id).map(|o| &mut o.state)
                else {
                    return Step::Done(no_such(id, Kind::Shared));
                };
                if *sealed {
                    return Step::Done(PrimReply::Unit);
                }
                match object.seal() {
                    Ok(()) => {
                        *sealed = true;
                        Step::Done(PrimReply::Unit)
                    }
                    Err(e) => Step::Done(PrimReply::Error(format!(
                        "cannot seal the shared-memory object: {e}"
                    ))),
                }
            }
            PrimOp::CondWait { id, lock, .. } => cond_wait(&mut inner, id, lock, waiting),
            PrimOp::CondNotify { id, n } => cond_notify(&mut inner, id, n),
            op => {
                let id = op_id(&op);
                let Some(object) = inner.objects.get_mut(&id) else {
                    return Step::Done(PrimReply::Error(format!(
                        "handle {id} names no live primitive (it was freed, or the bytes were not a handle)"
                    )));
                };
                let kind = object.kind;
                if let Some(expected) = op_kind(&op)
                    && expected != kind
                {
                    return Step::Done(no_such(id, expected));
                }
                let peer = match &object.state {
                    ObjectState::PipeEnd { peer, .. } => Some(*peer),
                    _ => None,
                };
                if let PrimOp::Send { item, .. } = op {
                    return Step::Done(pipe_send(&mut inner, peer.unwrap_or_default(), item));
                }
                apply(&mut object.state, op, waiting)
            }
        }
    }
}

fn op_id(op: &PrimOp) -> u64 {
    match op {
        PrimOp::Create { .. }
        | PrimOp::CreatePipe
        | PrimOp::EndInFlight { .. }
        | PrimOp::SharedCreate { .. }
        | PrimOp::Sync
        | PrimOp::Gone { .. } => 0,
        PrimOp::SharedSeal { id } => *id,
        PrimOp::LeaseInFlight { id }
        | PrimOp::Adopt { id, .. }
        | PrimOp::Release { id }
        | PrimOp::EventSet { id }
        | PrimOp::EventClear { id }
        | PrimOp::EventIsSet { id }
        | PrimOp::EventWait { id, .. }
        | PrimOp::Acquire { id, .. }
        | PrimOp::AcquireLent { id, .. }
        | PrimOp::ReleasePermit { id }
        | PrimOp::Available { id }
        | PrimOp::BarrierWait { id, .. }
        | PrimOp::BarrierAbort { id }
        | PrimOp::BarrierReset { id }
        | PrimOp::BarrierIsBroken { id }
        | PrimOp::BarrierActionDone { id, .. }
        | PrimOp::QueueShutdown { id, .. }
        | PrimOp::CondWait { id, .. }
        | PrimOp::CondNotify { id, .. }
        | PrimOp::Put { id, .. }
        | PrimOp::Get { id, .. }
        | PrimOp::Len { id }
        | PrimOp::TaskDone { id }
        | PrimOp::Join { id, .. }
        | PrimOp::Send { id, .. }
        | PrimOp::Recv { id, .. }
        | PrimOp::Attach { id } => *id,
    }
}

fn op_kind(op: &PrimOp) -> Option<Kind> {
    Some(match op {
        PrimOp::EventSet { .. }
        | PrimOp::EventClear { .. }
        | PrimOp::EventIsSet { .. }
        | PrimOp::EventWait { .. } => Kind::Event,
        PrimOp::Acquire { .. }
        | PrimOp::AcquireLent { .. }
        | PrimOp::ReleasePermit { .. }
        | PrimOp::Available { .. } => Kind::Semaphore,
        PrimOp::BarrierWait { .. }
        | PrimOp::BarrierAbort { .. }
        | PrimOp::BarrierReset { .. }
        | PrimOp::BarrierIsBroken { .. }
        | PrimOp::BarrierActionDone { .. } => Kind::Barrier,
        PrimOp::Put { .. }
        | PrimOp::Get { .. }
        | PrimOp::Len { .. }
        | PrimOp::TaskDone { .. }
        | PrimOp::Join { .. }
        | PrimOp::QueueShutdown { .. } => Kind::Queue,
        PrimOp::Send { .. } | PrimOp::Recv { .. } | PrimOp::Attach { .. } => Kind::PipeEnd,
        PrimOp::CondWait { .. } | PrimOp::CondNotify { .. } => Kind::Condition,
        _ => return None,
    })
}

fn insert(inner: &mut Table, kind: Kind, holder: Holder, state: ObjectState) -> u64 {
    let id = inner.next_id;
    inner.next_id += 1;
    inner.objects.insert(
        id,
        Object {
            kind,
            leases: HashMap::from([(holder, 1)]),
            state,
        },
    );
    id
}

/// Ends in-flight leases never adopted; with `by`, only those worker `by` or a descendant
/// of it took (a worker ends its own, never another's).
fn end_tokens(inner: &mut Table, tokens: &[u64], worker_died: bool, by: Option<u32>) {
    for token in tokens {
        if let Some(by) = by {
            match inner.inflight_by.get(token) {
                Some(Holder::Worker(pid) | Holder::Descendant(pid, _)) if *pid == by => {}
                _ => continue,
            }
        }
        inner.inflight_by.remove(token);
        if let Some(id) = inner.inflight.remove(token) {
            if worker_died
                && let Some(Object {
                    state:
                        ObjectState::Barrier {
                            waiting, broken, ..
                        },
                    ..
                }) = inner.objects.get_mut(&id)
                && broken.is_none()
            {
                let reason = "a party of the barrier died".to_owned();
                for party in waiting.drain(..) {
                    let _ = party.waiter.complete(PrimReply::Error(reason.clone()));
                }
                *broken = Some(reason);
            }
            drop_lease(inner, id, Holder::InFlight(*token));
        }
    }
}

/// `holder` (process `pid`) is gone: its permits go back, its waits are withdrawn, a
/// barrier it had a handle to breaks unless it exited cleanly, and its leases end.
fn holder_gone(inner: &mut Table, holder: Holder, pid: u32, clean: bool) {
    #[cfg(any(target_os = "linux", windows))]
    inner.relays.retain(|(by, gone)| {
        if *by == holder {
            gone.store(true, std::sync::atomic::Ordering::Release);
        }
        *by != holder
    });
    let ids: Vec<u64> = inner.objects.keys().copied().collect();
    for id in ids {
        let Some(object) = inner.objects.get_mut(&id) else {
            continue;
        };
        let had_lease = object.leases.contains_key(&holder);
        withdraw_holder(&mut object.state, holder);
        match &mut object.state {
            ObjectState::Semaphore {
                available,
                held,
                waiters,
                lenders,
            } => {
                lenders.remove(&holder);
                if let Some(count) = held.remove(&holder) {
                    for _ in 0..count {
                        grant_permit(available, held, waiters, lenders);
                    }
                }
            }
            ObjectState::Barrier {
                waiting, broken, ..
            } if had_lease && !clean && broken.is_none() => {
                let reason = format!("a party of the barrier (worker {pid}) died");
                for party in waiting.drain(..) {
                    let _ = party.waiter.complete(PrimReply::Error(reason.clone()));
                }
                *broken = Some(reason);
            }
            _ => {}
        }
        if had_lease {
            object.leases.remove(&holder);
            if object.leases.is_empty() {
                free(inner, id);
            }
        }
    }
}

fn drop_lease(inner: &mut Table, id: u64, holder: Holder) {
    let Some(object) = inner.objects.get_mut(&id) else {
        return;
    };
    if let Some(count) = object.leases.get_mut(&holder) {
        *count -= 1;
        if *count == 0 {
            object.leases.remove(&holder);
        }
    }
    if object.leases.is_empty() {
        free(inner, id);
    }
}

/// Frees a primitive with no lease left; a pipe end's peer learns it is closed.
fn free(inner: &mut Table, id: u64) {
    let Some(object) = inner.objects.remove(&id) else {
        return;
    };
    {
        let Table {
            inflight,
            inflight_by,
            ..
        } = &mut *inner;
        inflight.retain(|_, target| *target != id);
        inflight_by.retain(|token, _| inflight.contains_key(token));
    }
    if let ObjectState::PipeEnd { peer, .. } = object.state
        && let Some(ObjectState::PipeEnd {
            inbox,
            receivers,
            peer_closed,
            ..
        }) = inner.objects.get_mut(&peer).map(|o| &mut o.state)
    {
        *peer_closed = true;
        if inbox.is_empty() {
            for receiver in receivers.drain(..) {
                let _ = receiver.waiter.complete(closed_pipe());
            }
        }
    }
}

fn closed_pipe() -> PrimReply {
    PrimReply::Error(CLOSED_PIPE.into())
}

/// What a receiver hears once the other end of its pipe is closed and nothing is left.
pub const CLOSED_PIPE: &str = "the other end of the pipe is closed";

/// How long a relayed receive waits at a time before it looks whether its worker is still
/// there: a message is never taken for a receiver that is gone.
#[cfg(any(target_os = "linux", windows))]
const RELAY_SLICE: Duration = Duration::from_millis(100);

/// Performs `Send` or `Recv` on a direct pipe end's channel for a process that does not hold
/// it (one on another machine, a worker's own worker, a worker whose side channel failed),
/// waiting as the operation says; `alive` says whether the receiver still waits.
#[cfg(any(target_os = "linux", windows))]
fn relay(channel: &Channel, op: PrimOp, alive: impl Fn() -> bool) -> PrimReply {
    match op {
        PrimOp::Send { item, .. } => {
            if let Some(refused) = too_large(&item) {
                return refused;
            }
            match channel.send(&item) {
                Ok(()) => PrimReply::Unit,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => closed_pipe(),
                Err(e) => PrimReply::Error(format!("cannot send on the pipe: {e}")),
            }
        }
        PrimOp::Recv { timeout_ms, .. } => {
            let deadline = timeout_ms
                .and_then(|ms| std::time::Instant::now().checked_add(Duration::from_millis(ms)));
            loop {
                let left = deadline.map_or(RELAY_SLICE, |deadline| {
                    deadline.saturating_duration_since(std::time::Instant::now())
                });
                // Wait in slices, and look whether the receiver is still there before taking
                // anything: a message is taken only for a live one.
                let ready = match channel.readable(left.min(RELAY_SLICE)) {
                    Ok(ready) => ready,
                    Err(e) => return PrimReply::Error(format!("cannot receive on the pipe: {e}")),
                };
                if !alive() {
                    return PrimReply::Timeout;
                }
                if ready {
                    match channel.recv(Some(Duration::ZERO), MAX_ITEM, <[u8]>::to_vec) {
                        Ok(Some(item)) => return PrimReply::Item(item),
                        // Another holder took it first.
                        Ok(None) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            return closed_pipe();
                        }
                        Err(e) => {
                            return PrimReply::Error(format!("cannot receive on the pipe: {e}"));
                        }
                    }
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return PrimReply::Timeout;
                }
            }
        }
        _ => PrimReply::Error("operation does not fit the primitive".into()),
    }
}

/// The largest item a queue or pipe takes: one that fits, with its reply's envelope, in the
/// frame that hands it to a worker.
pub const MAX_ITEM: usize = offspring_wire::MAX_FRAME as usize - 64;

/// Refuses an item no worker could be handed (checked when it is put, where the putter can
/// still be told, so it is never taken from the queue and then lost).
fn too_large(item: &[u8]) -> Option<PrimReply> {
    (item.len() > MAX_ITEM).then(|| {
        PrimReply::Error(format!(
            "the item is {} bytes encoded, more than the {MAX_ITEM} a queue or pipe carries",
            item.len()
        ))
    })
}

fn pipe_send(inner: &mut Table, peer: u64, item: Vec<u8>) -> PrimReply {
    if let Some(refused) = too_large(&item) {
        return refused;
    }
    let Some(ObjectState::PipeEnd {
        inbox, receivers, ..
    }) = inner.objects.get_mut(&peer).map(|o| &mut o.state)
    else {
        return closed_pipe();
    };
    hand_over(inbox, receivers, item);
    PrimReply::Unit
}

/// What a granted acquire hears: [`PrimReply::Lent`] when its permit may stay lent to its
/// worker, then with where a recall reaches that worker. Only the registry's own workers
/// are lent permits: a recall could not reach a descendant through the worker in between.
fn granted(waiting: &Waiting) -> (PrimReply, Option<UnboundedSender<Vec<u8>>>) {
    match (&waiting.holder, &waiting.waiter) {
        (Holder::Worker(_), Waiter::Remote { to, .. }) if waiting.lend => {
            (PrimReply::Lent, Some(to.frames.clone()))
        }
        _ => (PrimReply::Bool(true), None),
    }
}

/// A process is about to wait for a permit of semaphore `id`: every holder of lent permits
/// is asked to give one back (at once if its task released it, else at its next release),
/// the waiter's own process too (another of its threads may keep one idle).
fn recall_lent(
    id: u64,
    held: &HashMap<Holder, u64>,
    lenders: &HashMap<Holder, UnboundedSender<Vec<u8>>>,
) {
    let Ok(frame) = encode(&ToWorker::Recall { id }) else {
        return;
    };
    for (holder, frames) in lenders {
        if held.get(holder).is_some_and(|count| *count > 0) {
            let _ = frames.send(frame.clone());
        }
    }
}

fn grant_permit(
    available: &mut u64,
    held: &mut HashMap<Holder, u64>,
    waiters: &mut VecDeque<Waiting>,
    lenders: &mut HashMap<Holder, UnboundedSender<Vec<u8>>>,
) {
    while let Some(next) = waiters.pop_front() {
        // With others still waiting, the permit is not lent: their recalls went out before
        // this holder had it, and it must come back on its release.
        let (reply, lender) = if waiters.is_empty() {
            granted(&next)
        } else {
            (PrimReply::Bool(true), None)
        };
        if next.waiter.complete(reply).is_ok() {
            *held.entry(next.holder).or_default() += 1;
            if let Some(frames) = lender {
                lenders.insert(next.holder, frames);
            }
            return;
        }
    }
    *available += 1;
}

/// `holder` gives back one permit it holds (to the next waiter, or to the count); false when it
/// holds none.
fn give_back_permit(
    available: &mut u64,
    held: &mut HashMap<Holder, u64>,
    waiters: &mut VecDeque<Waiting>,
    lenders: &mut HashMap<Holder, UnboundedSender<Vec<u8>>>,
    holder: Holder,
) -> bool {
    match held.get_mut(&holder) {
        Some(count) if *count > 0 => {
            *count -= 1;
            if *count == 0 {
                held.remove(&holder);
                lenders.remove(&holder);
            }
            grant_permit(available, held, waiters, lenders);
            true
        }
        _ => false,
    }
}

fn waits(state: &ObjectState) -> usize {
    match state {
        ObjectState::Event { waiters, .. } => waiters.len(),
        ObjectState::Semaphore { waiters, .. } => waiters.len(),
        ObjectState::Barrier { waiting, .. } => waiting.len(),
        ObjectState::Queue {
            getters,
            putters,
            joiners,
            ..
        } => getters.len() + putters.len() + joiners.len(),
        ObjectState::PipeEnd { receivers, .. } => receivers.len(),
        ObjectState::Condition { sleepers } => sleepers.len(),
        ObjectState::Shared { .. } => 0,
        #[cfg(any(target_os = "linux", windows))]
        ObjectState::DirectEnd { .. } => 0,
    }
}

fn retain_waits(state: &mut ObjectState, keep: impl Fn(&Waiting) -> bool) {
    match state {
        ObjectState::Event { waiters, .. } => waiters.retain(&keep),
        ObjectState::Semaphore { waiters, .. } => waiters.retain(&keep),
        ObjectState::Barrier { waiting, .. } => waiting.retain(&keep),
        ObjectState::Queue {
            getters,
            putters,
            joiners,
            ..
        } => {
            getters.retain(&keep);
            putters.retain(|(w, _)| keep(w));
            joiners.retain(&keep);
        }
        ObjectState::PipeEnd { receivers, .. } => receivers.retain(&keep),
        ObjectState::Condition { sleepers } => sleepers.retain(|(w, _)| keep(w)),
        ObjectState::Shared { .. } => {}
        #[cfg(any(target_os = "linux", windows))]
        ObjectState::DirectEnd { .. } => {}
    }
}

/// Withdraws a gone holder's waits. Each is answered with an error: for a descendant, the
/// process in between (which passed the wait on) forgets it then, instead of keeping it.
fn withdraw_holder(state: &mut ObjectState, holder: Holder) {
    retain_waits(state, |w| {
        if w.holder != holder {
            return true;
        }
        let _ = w
            .waiter
            .complete(PrimReply::Error("the waiting process is gone".into()));
        false
    });
}

fn apply(state: &mut ObjectState, op: PrimOp, waiting: Waiting) -> Step {
    let wait = waiting.wait;
    match (state, op) {
        (ObjectState::Event { set, waiters }, PrimOp::EventSet { .. }) => {
            *set = true;
            for waiter in waiters.drain(..) {
                let _ = waiter.waiter.complete(PrimReply::Bool(true));
            }
            Step::Done(PrimReply::Unit)
        }
        (ObjectState::Event { set, .. }, PrimOp::EventClear { .. }) => {
            *set = false;
            Step::Done(PrimReply::Unit)
        }
        (ObjectState::Event { set, .. }, PrimOp::EventIsSet { .. }) => {
            Step::Done(PrimReply::Bool(*set))
        }
        (ObjectState::Event { set, waiters }, PrimOp::EventWait { timeout_ms, .. }) => {
            if *set {
                Step::Done(PrimReply::Bool(true))
            } else if timeout_ms == Some(0) {
                Step::Done(PrimReply::Bool(false))
            } else {
                waiters.push(waiting);
                Step::Waiting(wait)
            }
        }
        (
            ObjectState::Semaphore {
                available,
                held,
                waiters,
                lenders,
            },
            PrimOp::Acquire { id, timeout_ms } | PrimOp::AcquireLent { id, timeout_ms },
        ) => {
            if *available > 0 {
                *available -= 1;
                *held.entry(waiting.holder).or_default() += 1;
                let (reply, lender) = granted(&waiting);
                if let Some(frames) = lender {
                    lenders.insert(waiting.holder, frames);
                }
                Step::Done(reply)
            } else if timeout_ms == Some(0) {
                // A mere try recalls nothing: a permit lent to a worker counts as taken.
                Step::Done(PrimReply::Bool(false))
            } else {
                recall_lent(id, held, lenders);
                waiters.push_back(waiting);
                Step::Waiting(wait)
            }
        }
        (
            ObjectState::Semaphore {
                available,
                held,
                waiters,
                lenders,
            },
            PrimOp::ReleasePermit { .. },
        ) => {
            if give_back_permit(available, held, waiters, lenders, waiting.holder) {
                Step::Done(PrimReply::Unit)
            } else {
                Step::Done(PrimReply::Error(
                    "this process holds no permit of that semaphore".into(),
                ))
            }
        }
        (ObjectState::Semaphore { available, .. }, PrimOp::Available { .. }) => {
            Step::Done(PrimReply::Count(*available))
        }
        (
            ObjectState::Barrier {
                parties,
                waiting: parked,
                broken,
                has_action,
                acting,
            },
            PrimOp::BarrierWait { timeout_ms, .. },
        ) => {
            if let Some(reason) = broken {
                return Step::Done(PrimReply::Error(reason.clone()));
            }
            let last = acting.is_none() && parked.len() as u64 + 1 >= *parties;
            if last && *has_action {
                // It runs the action, in its own process, before anyone is released.
                *acting = Some(waiting.holder);
                Step::Done(PrimReply::RunAction)
            } else if last {
                // Arrival indices in arrival order; the last party gets `parties - 1`.
                let last = parked.len() as u64;
                for (index, party) in parked.drain(..).enumerate() {
                    let _ = party.waiter.complete(PrimReply::Count(index as u64));
                }
                Step::Done(PrimReply::Count(last))
            } else if timeout_ms == Some(0) {
                Step::Done(PrimReply::Timeout)
            } else {
                parked.push(waiting);
                Step::Waiting(wait)
            }
        }
        (
            ObjectState::Barrier {
                parties,
                waiting: parked,
                broken,
                acting,
                ..
            },
            PrimOp::BarrierActionDone { failure, .. },
        ) => {
            if *acting != Some(waiting.holder) {
                return Step::Done(PrimReply::Error(
                    "this process is not running the barrier's action".into(),
                ));
            }
            *acting = None;
            if let Some(reason) = broken {
                return Step::Done(PrimReply::Error(reason.clone()));
            }
            if let Some(failure) = failure {
                let reason = format!("the barrier's action failed: {failure}");
                for party in parked.drain(..) {
                    let _ = party.waiter.complete(PrimReply::Error(reason.clone()));
                }
                *broken = Some(reason.clone());
                return Step::Done(PrimReply::Error(reason));
            }
            // The parties parked when the last arrived go; later arrivals (for the barrier's
            // next round) stay.
            let take = usize::try_from(*parties - 1)
                .unwrap_or(usize::MAX)
                .min(parked.len());
            for (index, party) in parked.drain(..take).enumerate() {
                let _ = party.waiter.complete(PrimReply::Count(index as u64));
            }
            Step::Done(PrimReply::Count(take as u64))
        }
        (
            ObjectState::Barrier {
                waiting: parked,
                broken,
                ..
            },
            PrimOp::BarrierAbort { .. },
        ) => {
            let reason = "the barrier was aborted".to_owned();
            for party in parked.drain(..) {
                let _ = party.waiter.complete(PrimReply::Error(reason.clone()));
            }
            *broken = Some(reason);
            Step::Done(PrimReply::Unit)
        }
        (
            ObjectState::Barrier {
                waiting: parked,
                broken,
                acting,
                ..
            },
            PrimOp::BarrierReset { .. },
        ) => {
            *acting = None;
            for party in parked.drain(..) {
                let _ = party.waiter.complete(PrimReply::Error(
                    "the barrier was reset while waiting".into(),
                ));
            }
            *broken = None;
            Step::Done(PrimReply::Unit)
        }
        (ObjectState::Barrier { broken, .. }, PrimOp::BarrierIsBroken { .. }) => {
            Step::Done(PrimReply::Bool(broken.is_some()))
        }
        (
            ObjectState::Queue {
                items,
                unfinished,
                getters,
                putters,
                joiners,
                shut_down,
                ..
            },
            PrimOp::QueueShutdown { immediate, .. },
        ) => {
            *shut_down = true;
            if immediate {
                let dropped = items.len() as u64;
                items.clear();
                *unfinished = unfinished.saturating_sub(dropped);
                if *unfinished == 0 {
                    for joiner in joiners.drain(..) {
                        let _ = joiner.waiter.complete(PrimReply::Bool(true));
                    }
                }
            }
            // Blocked putters' items are not accepted; getters wait only on an empty queue.
            for (putter, _) in putters.drain(..) {
                let _ = putter.waiter.complete(PrimReply::ShutDown);
            }
            if items.is_empty() {
                for getter in getters.drain(..) {
                    let _ = getter.waiter.complete(PrimReply::ShutDown);
                }
            }
            Step::Done(PrimReply::Unit)
        }
        (
            ObjectState::Queue {
                shut_down: true, ..
            },
            PrimOp::Put { .. },
        ) => Step::Done(PrimReply::ShutDown),
        (
            ObjectState::Queue {
                items,
                bound,
                unfinished,
                getters,
                putters,
                ..
            },
            PrimOp::Put {
                item, timeout_ms, ..
            },
        ) => {
            if let Some(refused) = too_large(&item) {
                Step::Done(refused)
            } else if *bound == 0 || (items.len() as u64) < *bound {
                *unfinished += 1;
                hand_over(items, getters, item);
                Step::Done(PrimReply::Unit)
            } else if timeout_ms == Some(0) {
                Step::Done(PrimReply::Timeout)
            } else {
                putters.push_back((waiting, item));
                Step::Waiting(wait)
            }
        }
        (
            ObjectState::Queue {
                items,
                bound,
                unfinished,
                getters,
                putters,
                shut_down,
                ..
            },
            PrimOp::Get { timeout_ms, .. },
        ) => match items.pop_front() {
            Some(item) => {
                admit_putter(items, *bound, unfinished, getters, putters);
                Step::Done(PrimReply::Item(item))
            }
            None if *shut_down => Step::Done(PrimReply::ShutDown),
            None if timeout_ms == Some(0) => Step::Done(PrimReply::Timeout),
            None => {
                getters.push_back(waiting);
                Step::Waiting(wait)
            }
        },
        (ObjectState::Queue { items, .. }, PrimOp::Len { .. }) => {
            Step::Done(PrimReply::Count(items.len() as u64))
        }
        (
            ObjectState::Queue {
                unfinished,
                joiners,
                ..
            },
            PrimOp::TaskDone { .. },
        ) => {
            if *unfinished == 0 {
                return Step::Done(PrimReply::Error(
                    "task_done() called more times than there were items".into(),
                ));
            }
            *unfinished -= 1;
            if *unfinished == 0 {
                for joiner in joiners.drain(..) {
                    let _ = joiner.waiter.complete(PrimReply::Bool(true));
                }
            }
            Step::Done(PrimReply::Unit)
        }
        (
            ObjectState::Queue {
                unfinished,
                joiners,
                ..
            },
            PrimOp::Join { timeout_ms, .. },
        ) => {
            if *unfinished == 0 {
                Step::Done(PrimReply::Bool(true))
            } else if timeout_ms == Some(0) {
                Step::Done(PrimReply::Bool(false))
            } else {
                joiners.push(waiting);
                Step::Waiting(wait)
            }
        }
        (
            ObjectState::PipeEnd {
                inbox,
                receivers,
                peer_closed,
                ..
            },
            PrimOp::Recv { timeout_ms, .. },
        ) => match inbox.pop_front() {
            Some(item) => Step::Done(PrimReply::Item(item)),
            None if *peer_closed => Step::Done(closed_pipe()),
            None if timeout_ms == Some(0) => Step::Done(PrimReply::Timeout),
            None => {
                receivers.push_back(waiting);
                Step::Waiting(wait)
            }
        },
        _ => Step::Done(PrimReply::Error(
            "operation does not fit the primitive".into(),
        )),
    }
}

/// `Condition::wait`: gives back the caller's permit of `lock` and parks it on condition `id`.
fn cond_wait(inner: &mut Table, id: u64, lock: u64, waiting: Waiting) -> Step {
    if !matches!(
        inner.objects.get(&id).map(|o| &o.state),
        Some(ObjectState::Condition { .. })
    ) {
        return Step::Done(no_such(id, Kind::Condition));
    }
    let Some(ObjectState::Semaphore {
        available,
        held,
        waiters,
        lenders,
    }) = inner.objects.get_mut(&lock).map(|o| &mut o.state)
    else {
        return Step::Done(no_such(lock, Kind::Semaphore));
    };
    if !give_back_permit(available, held, waiters, lenders, waiting.holder) {
        return Step::Done(PrimReply::Error(
            "wait on a condition whose lock this process does not hold".into(),
        ));
    }
    let wait = waiting.wait;
    if let Some(ObjectState::Condition { sleepers }) =
        inner.objects.get_mut(&id).map(|o| &mut o.state)
    {
        sleepers.push_back((waiting, lock));
    }
    Step::Waiting(wait)
}

/// `Condition::notify`: up to `n` sleepers of condition `id` queue for their lock; each hears
/// `Bool(true)` once it holds the lock again.
fn cond_notify(inner: &mut Table, id: u64, n: u64) -> Step {
    let Some(ObjectState::Condition { sleepers }) =
        inner.objects.get_mut(&id).map(|o| &mut o.state)
    else {
        return Step::Done(no_such(id, Kind::Condition));
    };
    let take = usize::try_from(n).unwrap_or(usize::MAX).min(sleepers.len());
    let woken: Vec<(Waiting, u64)> = sleepers.drain(..take).collect();
    let count = woken.len() as u64;
    for (sleeper, lock) in woken {
        let Some(ObjectState::Semaphore {
            available,
            held,
            waiters,
            lenders,
        }) = inner.objects.get_mut(&lock).map(|o| &mut o.state)
        else {
            let _ = sleeper
                .waiter
                .complete(PrimReply::Error("the condition's lock is gone".into()));
            continue;
        };
        // It queues for the lock like any acquirer; a free permit (there is no other waiter
        // then) goes to it at once, or back to the count if it is gone.
        waiters.push_back(sleeper);
        if *available > 0 {
            *available -= 1;
            grant_permit(available, held, waiters, lenders);
        }
    }
    Step::Done(PrimReply::Count(count))
}

/// Gives `item` to the first waiter still there (a queue's getter, a pipe end's receiver), or
/// keeps it in `items` when none is.
fn hand_over(items: &mut VecDeque<Vec<u8>>, waiters: &mut VecDeque<Waiting>, item: Vec<u8>) {
    let mut item = item;
    while let Some(waiter) = waiters.pop_front() {
        match waiter.waiter.complete(PrimReply::Item(item)) {
            Ok(()) => return,
            Err(PrimReply::Item(back)) => item = back,
            Err(_) => return,
        }
    }
    items.push_back(item);
}

fn admit_putter(
    items: &mut VecDeque<Vec<u8>>,
    bound: u64,
    unfinished: &mut u64,
    getters: &mut VecDeque<Waiting>,
    putters: &mut VecDeque<(Waiting, Vec<u8>)>,
) {
    while bound == 0 || (items.len() as u64) < bound {
        let Some((putter, item)) = putters.pop_front() else {
            return;
        };
        // The item is accepted only if its putter hears so; a dead putter's item is not.
        if putter.waiter.complete(PrimReply::Unit).is_ok() {
            *unfinished += 1;
            hand_over(items, getters, item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_too_large_for_a_frame_reaches_its_waiter_as_an_error_and_is_given_back() {
        let (frames, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let waiter = Waiter::Remote {
            call_id: 9,
            to: ReplyTo { frames, side: None },
        };
        let item = vec![7u8; offspring_wire::MAX_FRAME as usize + 1];
        let back = waiter.complete(PrimReply::Item(item));
        assert!(
            matches!(&back, Err(PrimReply::Item(bytes)) if bytes.len() == offspring_wire::MAX_FRAME as usize + 1),
            "the item is given back"
        );
        let frame = sent.try_recv().expect("the waiter was told");
        let message: ToWorker =
            offspring_wire::decode(&frame[4..]).expect("the error reply decodes");
        match message {
            ToWorker::Reply {
                call_id: 9,
                reply: PrimReply::Error(reason),
            } => assert!(reason.contains("could not send"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
