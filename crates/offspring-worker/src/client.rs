//! A worker's side of the cross-process primitives: operations travel to the parent as
//! `FromWorker::Call`, written by the calling thread itself.
//!
//! - **With a side channel** (Linux, a worker the parent started itself): every operation,
//!   one-way ones and those passed on for this process's own workers included, goes on the
//!   side channel, so the parent applies them in the order this process sent them. A
//!   thread's call asks for its reply there too ([`offspring_wire::SIDE_REPLY`]) and reads it itself: one
//!   waiting thread at a time reads the channel for all of them, hands the others their
//!   replies and, once it has its own, lets the next one read. The receive spins a moment
//!   before it sleeps, so a reply that comes at once wakes nobody. The end of the channel is
//!   the parent's end: the call waits for the lifeline, as below.
//! - **Otherwise** the operation goes on the connection (see `outbox`), and the task thread
//!   waits for the `ToWorker::Reply`, which the i/o thread reads and hands over while it
//!   keeps reading the socket (the lifeline never stops).
//!
//! A worker that is a parent too passes its own workers' operations on with
//! [`Client::forward`]; their replies come on the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use offspring_wire::{FromWorker, PrimOp, PrimReply, encode};

use crate::outbox::Outbox;

/// The test-only switch that makes a worker's primitive calls meet a closed connection, as
/// they would in the moment between the parent's end closing and the lifeline noticing: set
/// (to anything), every call finds the connection closed.
pub const ENV_TEST_CLOSED_CLIENT: &str = "OFFSPRING_TEST_CLOSED_CLIENT";

/// How long a call that met a closed connection waits for the lifeline to end the process
/// before it ends it itself.
const LIFELINE_GRACE: Duration = Duration::from_secs(2);

/// The worker's connection to the parent's primitives.
pub struct Client {
    outbox: Arc<Outbox>,
    next_call: AtomicU64,
    pending: Mutex<HashMap<u64, Waiting>>,
    /// Whether calls behave as if the connection were closed (see [`ENV_TEST_CLOSED_CLIENT`]).
    closed_for_test: bool,
    /// Whether a one-way operation that others can observe (a `set`, a permit's release)
    /// was sent since the last [`Client::sync_one_way`].
    one_way: std::sync::atomic::AtomicBool,
    /// Permits the parent lent this process, by semaphore (see [`Client::keep_lent`]).
    lent: Mutex<HashMap<u64, Lent>>,
    /// Whether `lent` holds a permit or a handle for [`Client::return_lent`] to give back
    /// (set and cleared with `lent` locked), so that a call ending without takes no lock.
    lent_kept: std::sync::atomic::AtomicBool,
    /// This worker's side channel: its operations and their replies, and the direct pipes'
    /// ends the parent passes down (see [`Client::attach`]).
    #[cfg(target_os = "linux")]
    side: Option<Side>,
}

#[cfg(target_os = "linux")]
struct Side {
    channel: offspring_transport::channel::Channel,
    /// Held by the one waiting thread that reads the channel for all of them.
    reading: Mutex<()>,
    /// Pipe ends received, by the attach they answer.
    received: Mutex<HashMap<u64, Vec<std::os::fd::OwnedFd>>>,
}

/// The lent permits of one semaphore.
#[derive(Default)]
struct Lent {
    /// Released by this process's tasks and kept: taken again without asking.
    idle: u64,
    /// Recalls that found no idle permit: the next releases give their permits back. Kept
    /// across calls (a permit may outlive the call that took it, in another thread), so a
    /// recall is never forgotten; one that no release answers costs a later give-back.
    recalled: u64,
    /// What keeps the primitive alive while idle permits are kept (a handle, whose drop
    /// would end this process's lease): dropped once they went back, so the lease never
    /// ends ahead of the permits.
    keep: Option<Box<dyn std::any::Any + Send>>,
}

/// A call waiting for its reply: a thread of this process, or an operation this process
/// passes on for one of its own workers (a function that sends the reply down).
enum Waiting {
    Thread(Arc<Reply>),
    Forwarded(Box<dyn FnOnce(PrimReply) + Send>),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Reply {
    value: Mutex<Option<PrimReply>>,
    ready: Condvar,
}

static CLIENT: OnceLock<Client> = OnceLock::new();

/// The client, in a worker process once it has connected; `None` in the parent.
pub fn client() -> Option<&'static Client> {
    CLIENT.get()
}

/// The side channel this worker inherited, if its parent made one.
#[cfg(target_os = "linux")]
pub(crate) type SideChannel = Option<offspring_transport::channel::Channel>;
#[cfg(not(target_os = "linux"))]
pub(crate) type SideChannel = Option<std::convert::Infallible>;

pub(crate) fn install(outbox: Arc<Outbox>, side: SideChannel) {
    #[cfg(not(target_os = "linux"))]
    let _ = side;
    let _ = CLIENT.set(Client {
        #[cfg(target_os = "linux")]
        side: side.map(|channel| Side {
            channel,
            reading: Mutex::new(()),
            received: Mutex::new(HashMap::new()),
        }),
        outbox,
        next_call: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        closed_for_test: std::env::var_os(ENV_TEST_CLOSED_CLIENT).is_some(),
        one_way: std::sync::atomic::AtomicBool::new(false),
        lent: Mutex::new(HashMap::new()),
        lent_kept: std::sync::atomic::AtomicBool::new(false),
    });
}

/// Why an operation did not go out.
enum Unsent {
    /// The connection to the parent is closed.
    Closed,
    /// It does not encode as a frame (it is over the frame limit): why.
    Unencodable(String),
}

/// The connection to the parent is closed: the parent is gone, and the lifeline is about to
/// end this process. Wait for it; end the process here if it has not within a grace period.
fn parent_gone() -> ! {
    std::thread::sleep(LIFELINE_GRACE);
    eprintln!(
        "offspring worker {}: the connection to the parent is closed",
        std::process::id()
    );
    std::process::exit(offspring_transport::EXIT_PARENT_GONE);
}

/// The side channel carried something the parent never sends: the process cannot trust
/// what it would read next, and ends as it does for a malformed frame on its connection.
#[cfg(target_os = "linux")]
fn side_broken(what: &dyn std::fmt::Display) -> ! {
    eprintln!(
        "offspring worker {}: malformed message from the parent on the side channel: {what}",
        std::process::id()
    );
    std::process::exit(offspring_transport::EXIT_PARENT_GONE);
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// Sends `op` to the parent and waits for its reply. The parent runs any timeout; if the
    /// parent goes away, the worker exits, so this never waits on a dead parent, and never
    /// returns an answer the parent did not give: a call that finds the connection closed
    /// waits for the lifeline to end the process (and ends it itself after a few seconds).
    pub fn call(&self, op: PrimOp) -> PrimReply {
        #[cfg(target_os = "linux")]
        if let Some(side) = &self.side {
            return self.call_side(side, op);
        }
        let reply = match self.start_call(0, op) {
            Ok((_, reply)) => reply,
            Err(refused) => return refused,
        };
        let mut value = lock(&reply.value);
        loop {
            if let Some(value) = value.take() {
                return value;
            }
            value = reply
                .ready
                .wait(value)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Sends `op` as a new call whose id carries `flags`, with a thread waiting for its
    /// reply: its id and where the reply will be put, or the reply the caller gets at once.
    fn start_call(&self, flags: u64, op: PrimOp) -> Result<(u64, Arc<Reply>), PrimReply> {
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed) | flags;
        let reply = Arc::new(Reply::default());
        lock(&self.pending).insert(call_id, Waiting::Thread(Arc::clone(&reply)));
        match self.send(call_id, op) {
            Ok(()) => Ok((call_id, reply)),
            Err(Unsent::Closed) => {
                lock(&self.pending).remove(&call_id);
                parent_gone();
            }
            // An operation that cannot be a frame (an item over the limit): the caller's
            // error, and the worker goes on.
            Err(Unsent::Unencodable(reason)) => {
                lock(&self.pending).remove(&call_id);
                Err(PrimReply::Error(reason))
            }
        }
    }

    /// [`Client::call`] on the side channel: the reply comes there, and a waiting thread
    /// reads it (see the module docs).
    #[cfg(target_os = "linux")]
    fn call_side(&self, side: &Side, op: PrimOp) -> PrimReply {
        let (call_id, reply) = match self.start_call(offspring_wire::SIDE_REPLY, op) {
            Ok(started) => started,
            Err(refused) => return refused,
        };
        let mut value = lock(&reply.value);
        loop {
            if let Some(value) = value.take() {
                return value;
            }
            // Holding `value` while trying: a reader stepping down notifies under it, so
            // this thread either gets the lead now or hears that it is free.
            let reading = match side.reading.try_lock() {
                Ok(reading) => Some(reading),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            match reading {
                Some(reading) => {
                    drop(value);
                    return self.read_side(side, reading, call_id, &reply);
                }
                None => {
                    value = reply
                        .ready
                        .wait(value)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
        }
    }

    /// Reads the side channel for every waiting thread until call `call_id`'s own reply
    /// comes, then lets another waiting thread read.
    #[cfg(target_os = "linux")]
    fn read_side(
        &self,
        side: &Side,
        reading: std::sync::MutexGuard<'_, ()>,
        call_id: u64,
        mine: &Reply,
    ) -> PrimReply {
        use offspring_transport::channel::Received;
        let answer = loop {
            // Handed over by the thread that read before this one.
            if let Some(value) = lock(&mine.value).take() {
                break value;
            }
            let received =
                side.channel
                    .recv_any(None, offspring_wire::MAX_FRAME as usize, |bytes| {
                        offspring_wire::decode::<offspring_wire::ToWorker>(bytes)
                    });
            match received {
                Ok(Some(Received::Message(Ok(offspring_wire::ToWorker::Reply {
                    call_id: id,
                    reply,
                })))) => {
                    if id == call_id {
                        lock(&self.pending).remove(&id);
                        break reply;
                    }
                    self.deliver(id, reply);
                }
                Ok(Some(Received::Descriptor(tag, fd))) => {
                    lock(&side.received).entry(tag).or_default().push(fd);
                }
                Ok(Some(Received::Message(Ok(other)))) => side_broken(&format_args!("{other:?}")),
                Ok(Some(Received::Message(Err(e)))) => side_broken(&e),
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => parent_gone(),
                Err(e) => side_broken(&e),
            }
        };
        drop(reading);
        // Another waiting thread reads now: each one looks.
        for waiting in lock(&self.pending).values() {
            if let Waiting::Thread(reply) = waiting {
                let _value = lock(&reply.value);
                reply.ready.notify_all();
            }
        }
        answer
    }

    /// This process's own channel of direct pipe end `id`, passed down by the parent, to
    /// send and receive on itself; `Ok(None)` when its operations must go through the
    /// parent instead (no side channel, an end that is not direct, another OS).
    ///
    /// # Errors
    ///
    /// Why the parent refused (the handle names nothing), or why the side channel failed.
    #[cfg(target_os = "linux")]
    pub fn attach(&self, id: u64) -> Result<Option<offspring_transport::channel::Channel>, String> {
        let Some(side) = &self.side else {
            return Ok(None);
        };
        match self.call(PrimOp::Attach { id }) {
            PrimReply::Unit => {}
            PrimReply::Bool(false) => return Ok(None),
            PrimReply::Error(reason) => return Err(reason),
            other => return Err(format!("unexpected reply to an attach: {other:?}")),
        }
        // The parent sent the descriptor before its reply, on the same channel: it was
        // received before the reply was.
        lock(&side.received)
            .get_mut(&id)
            .and_then(Vec::pop)
            .map(|fd| Some(offspring_transport::channel::Channel::from_fd(fd)))
            .ok_or_else(|| "the parent's reply to an attach came without the pipe's end".to_owned())
    }

    /// As on Linux; the parent duplicates the end's handle into this process and answers
    /// with its value.
    ///
    /// # Errors
    ///
    /// Why the parent refused, or a handle that is not a pipe's.
    #[cfg(windows)]
    pub fn attach(&self, id: u64) -> Result<Option<offspring_transport::channel::Channel>, String> {
        match self.call(PrimOp::Attach { id }) {
            PrimReply::Count(handle) => offspring_transport::channel::Channel::inherited(handle)
                .map(Some)
                .map_err(|e| format!("the parent's pipe end: {e}")),
            PrimReply::Bool(false) => Ok(None),
            PrimReply::Error(reason) => Err(reason),
            other => Err(format!("unexpected reply to an attach: {other:?}")),
        }
    }

    /// Sends `op` without waiting for a reply (releases, an event's `set` and `clear`, a
    /// queue's `task_done`).
    pub fn notify(&self, op: PrimOp) {
        // A handle's lease changing is not something another process waits to see, and on
        // the connection it arrives ahead of the call's outcome anyway; on the side channel
        // nothing does, and an adoption must be seen before the call that carried the
        // handle is reported (its in-flight lease ends then).
        let observed =
            self.has_side() || !matches!(op, PrimOp::Release { .. } | PrimOp::Adopt { .. });
        let sent = self.send(0, op).is_ok();
        // Set once sent, so that a `sync_one_way` that clears it is never ahead of it.
        if observed && sent {
            self.one_way.store(true, Ordering::Release);
        }
    }

    /// Whether operations go on a side channel, which nothing else sent keeps order with
    /// (see [`Client::sync_one_way`]).
    pub(crate) fn has_side(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.side.is_some();
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Waits until the parent applied every one-way operation sent so far, if any was: run
    /// before a call's outcome goes into the ring, which the parent may read before frames
    /// sent earlier, or anywhere when operations go on the side channel, so that an outcome
    /// is never delivered ahead of what its call did (the permit it released, the event it
    /// set). Frames on the connection need none: they arrive in order.
    pub(crate) fn sync_one_way(&self) {
        // A load first: most calls sent nothing one-way, and a swap would take the flag's
        // cache line each time.
        if self.one_way.load(Ordering::Acquire) && self.one_way.swap(false, Ordering::AcqRel) {
            let _ = self.call(PrimOp::Sync);
        }
    }

    /// Takes a permit of semaphore `id` that was lent to this process and released since,
    /// if one is kept: no message, no wait.
    pub fn take_lent(&self, id: u64) -> bool {
        match lock(&self.lent).get_mut(&id) {
            Some(lent) if lent.idle > 0 => {
                lent.idle -= 1;
                true
            }
            _ => false,
        }
    }

    /// A task released a lent permit of semaphore `id`: keeps it (true) for this process's
    /// next acquire, unless the parent recalled one, which this release answers (false: the
    /// caller gives it back). `keep` (the caller's handle) stays with the kept permit.
    pub fn keep_lent(&self, id: u64, keep: Box<dyn std::any::Any + Send>) -> bool {
        let mut lent = lock(&self.lent);
        let entry = lent.entry(id).or_default();
        if entry.recalled > 0 {
            entry.recalled -= 1;
            return false;
        }
        entry.idle += 1;
        entry.keep.get_or_insert(keep);
        self.lent_kept.store(true, Ordering::Release);
        true
    }

    /// The parent recalls a lent permit of semaphore `id` (another process waits): an idle
    /// one goes back now, else the next release gives its permit back. Runs on the i/o
    /// thread: the release goes on the side channel, or is queued for the connection's
    /// writer, never written to the connection here.
    pub(crate) fn recall(&self, id: u64) {
        let mut lent = lock(&self.lent);
        let entry = lent.entry(id).or_default();
        if entry.idle == 0 {
            entry.recalled += 1;
            return;
        }
        entry.idle -= 1;
        // Queued while the table is locked: a call ending now (`return_lent`, then
        // `sync_one_way`) sees either the idle permit or this release ahead of its outcome.
        // The kept handle stays: dropping it here would write on the i/o thread.
        if let Ok(frame) = encode(&FromWorker::Call {
            call_id: 0,
            op: PrimOp::ReleasePermit { id },
        }) && self.post(frame).is_some()
        {
            self.one_way.store(true, Ordering::Release);
        }
    }

    /// A call ends: the lent permits its process keeps go back, so that a permit a task
    /// released is free for others once the call's outcome is delivered (an idle lent
    /// permit is kept no longer than the call that released it). Recalls still owed stay.
    pub(crate) fn return_lent(&self) {
        if !self.lent_kept.load(Ordering::Acquire) {
            return;
        }
        let (idle, kept) = {
            let mut lent = lock(&self.lent);
            self.lent_kept.store(false, Ordering::Release);
            if lent.is_empty() {
                return;
            }
            let mut idle = Vec::new();
            let mut kept = Vec::new();
            for (&id, entry) in lent.iter_mut() {
                if entry.idle > 0 {
                    idle.push((id, std::mem::take(&mut entry.idle)));
                }
                kept.extend(entry.keep.take());
            }
            // Owed recalls stay (see `Lent::recalled`).
            lent.retain(|_, entry| entry.recalled > 0);
            (idle, kept)
        };
        for (id, count) in idle {
            for _ in 0..count {
                self.notify(PrimOp::ReleasePermit { id });
            }
        }
        // The handles go after their permits: a lease never ends ahead of them.
        drop(kept);
    }

    /// Passes on an operation that a descendant of this process made (this process is a
    /// parent too; see `FromWorker::CallFor`), without waiting: `reply`, if given, gets the
    /// answer on the i/o thread. `origin` names the descendant (empty: this process itself).
    /// The frame is queued behind everything this process sent before, so its operations
    /// and those it passes on reach the parent in the order they were made here.
    pub fn forward(
        &self,
        origin: Vec<u32>,
        op: PrimOp,
        reply: Option<Box<dyn FnOnce(PrimReply) + Send>>,
    ) {
        let call_id = match reply {
            Some(reply) => {
                let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
                lock(&self.pending).insert(call_id, Waiting::Forwarded(reply));
                call_id
            }
            None => 0,
        };
        let message = if origin.is_empty() {
            FromWorker::Call { call_id, op }
        } else {
            FromWorker::CallFor {
                call_id,
                origin,
                op,
            }
        };
        let failed = match encode(&message) {
            Ok(frame) => self
                .post(frame)
                .is_none()
                .then(|| "the connection to the parent is closed".to_owned()),
            Err(e) => Some(format!("the operation cannot be passed on: {e}")),
        };
        if call_id == 0 && failed.is_none() {
            self.one_way.store(true, Ordering::Release);
        }
        if let Some(reason) = failed
            && let Some(Waiting::Forwarded(reply)) = lock(&self.pending).remove(&call_id)
        {
            reply(PrimReply::Error(reason));
        }
    }

    fn send(&self, call_id: u64, op: PrimOp) -> Result<(), Unsent> {
        if self.closed_for_test {
            return Err(Unsent::Closed);
        }
        let frame = encode(&FromWorker::Call { call_id, op })
            .map_err(|e| Unsent::Unencodable(format!("the operation cannot be sent: {e}")))?;
        #[cfg(target_os = "linux")]
        if let Some(side) = &self.side {
            // The side channel takes a message whole, without the frame's header.
            return match side.channel.send(frame_body(&frame)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Unsent::Closed),
                Err(e) => Err(Unsent::Unencodable(format!(
                    "the operation cannot be sent: {e}"
                ))),
            };
        }
        match self.outbox.send([frame]) {
            Some(_) => Ok(()),
            None => Err(Unsent::Closed),
        }
    }

    /// Sends an operation's `frame` from any thread, the i/o thread's too: on the side
    /// channel, or queued for the connection's writer. `None` when the parent is gone.
    fn post(&self, frame: Vec<u8>) -> Option<()> {
        #[cfg(target_os = "linux")]
        if let Some(side) = &self.side {
            return side.channel.send(frame_body(&frame)).ok();
        }
        self.outbox.post(frame, false).map(drop)
    }

    /// Hands a reply from the parent to the waiting call.
    pub(crate) fn deliver(&self, call_id: u64, value: PrimReply) {
        let waiting = lock(&self.pending).remove(&call_id);
        match waiting {
            Some(Waiting::Thread(reply)) => {
                *lock(&reply.value) = Some(value);
                reply.ready.notify_all();
            }
            Some(Waiting::Forwarded(reply)) => reply(value),
            None => {}
        }
    }
}

/// An encoded frame without its length header: what a side channel's message holds.
#[cfg(target_os = "linux")]
fn frame_body(frame: &[u8]) -> &[u8] {
    frame.get(offspring_wire::HEADER_LEN..).unwrap_or_default()
}
