//! Messages for the cross-process primitives (events, semaphores, barriers, queues, pipes),
//! whose state lives in the parent's coordinator. A worker sends a [`PrimOp`] inside
//! `FromWorker::Call` and, when the call id is not zero, gets a [`PrimReply`] inside
//! `ToWorker::Reply`. Blocking operations carry their timeout: the parent runs the clock, so
//! a call that times out in the worker can never still take a permit or an item later.

use serde::{Deserialize, Serialize};

/// The kind of a primitive, checked on every use of a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// `Event`
    Event,
    /// `Semaphore` (and `Lock`, a semaphore of one permit)
    Semaphore,
    /// `Barrier`
    Barrier,
    /// `Queue`
    Queue,
    /// One end of a pipe
    PipeEnd,
    /// `Condition` (its lock is a `Semaphore` of its own)
    Condition,
    /// A shared-memory object (`SharedBytes`, `SharedSlice`, `SharedArray`, `Value`): the
    /// registry owns the OS object and frees it with the last lease.
    Shared,
}

/// An operation on a primitive. `timeout_ms`: `None` waits without limit, `Some(0)` only
/// tries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrimOp {
    /// Create a primitive (`param`: permits, parties or queue bound, 0 for none) → `Id`. A
    /// barrier with an action has [`BARRIER_ACTION`] set in `param` besides its parties.
    Create {
        /// Which kind.
        kind: Kind,
        /// Its parameter.
        param: u64,
    },
    /// Create a pipe → `Pair`.
    CreatePipe,
    /// This process now holds a handle that was sent to it under lease `token`.
    Adopt {
        /// The primitive.
        id: u64,
        /// The in-flight lease the sender took.
        token: u64,
    },
    /// This process dropped a handle.
    Release {
        /// The primitive.
        id: u64,
    },
    /// `Event::set`.
    EventSet {
        /// The event.
        id: u64,
    },
    /// `Event::clear`.
    EventClear {
        /// The event.
        id: u64,
    },
    /// `Event::is_set` → `Bool`.
    EventIsSet {
        /// The event.
        id: u64,
    },
    /// `Event::wait` → `Bool` (whether the flag was set).
    EventWait {
        /// The event.
        id: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Take a permit → `Bool` (whether one was taken).
    Acquire {
        /// The semaphore.
        id: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Give back a permit this process holds.
    ReleasePermit {
        /// The semaphore.
        id: u64,
    },
    /// Permits free now → `Count`.
    Available {
        /// The semaphore.
        id: u64,
    },
    /// Wait at a barrier → `Count` (the party's arrival index), `Timeout` or `Error`.
    BarrierWait {
        /// The barrier.
        id: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Put an item in a queue → `Unit` once accepted, or `Timeout`.
    Put {
        /// The queue.
        id: u64,
        /// The encoded item.
        #[serde(with = "serde_bytes")]
        item: Vec<u8>,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Take an item from a queue → `Item` or `Timeout`.
    Get {
        /// The queue.
        id: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Items in a queue → `Count`.
    Len {
        /// The queue.
        id: u64,
    },
    /// One item taken from the queue was processed.
    TaskDone {
        /// The queue.
        id: u64,
    },
    /// Wait until every item put was marked done → `Bool`.
    Join {
        /// The queue.
        id: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Send on a pipe end (the other end receives) → `Unit`.
    Send {
        /// The sending end.
        id: u64,
        /// The encoded message.
        #[serde(with = "serde_bytes")]
        item: Vec<u8>,
    },
    /// Receive on a pipe end → `Item`, `Timeout`, or `Error` when the other end is gone.
    Recv {
        /// The receiving end.
        id: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Break a barrier: its waiters and later waits get `Error` until it is reset.
    BarrierAbort {
        /// The barrier.
        id: u64,
    },
    /// Return a barrier to its empty, unbroken state; parties waiting now get `Error`.
    BarrierReset {
        /// The barrier.
        id: u64,
    },
    /// Whether a barrier is broken → `Bool`.
    BarrierIsBroken {
        /// The barrier.
        id: u64,
    },
    /// Wait on a condition → `Bool(true)` once notified and holding `lock` again, or
    /// `Timeout` (the lock is not held again then: the caller takes it). The caller must hold
    /// a permit of `lock`, which is given back while it waits.
    CondWait {
        /// The condition.
        id: u64,
        /// The semaphore that is the condition's lock.
        lock: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// Wake up to `n` waiters of a condition, each taking its lock again in turn →
    /// `Count` (how many were woken).
    CondNotify {
        /// The condition.
        id: u64,
        /// How many (`u64::MAX`: all).
        n: u64,
    },
    /// The last party of a barrier with an action ran it (see [`PrimReply::RunAction`]) →
    /// `Count` (its arrival index) once the parties are released, or `Error` when the
    /// barrier broke meanwhile. `failure`: why the action failed, which breaks the barrier.
    BarrierActionDone {
        /// The barrier.
        id: u64,
        /// Why the action failed, if it did.
        failure: Option<String>,
    },
    /// Shut a queue down: puts get `ShutDown` from now on, gets once it is empty. With
    /// `immediate`, what is queued is dropped (and counted done for `Join`) first.
    QueueShutdown {
        /// The queue.
        id: u64,
        /// Drop what is queued and wake every waiter now.
        immediate: bool,
    },
    /// Take an in-flight lease on a primitive for a handle this process is sending to a
    /// worker of its own → `Count` (the lease token), or `Error` when it names nothing.
    LeaseInFlight {
        /// The primitive.
        id: u64,
    },
    /// In-flight leases this process took that were never adopted end (the calls they
    /// travelled with ended). `worker_died`: those calls ended because their worker died.
    EndInFlight {
        /// The lease tokens.
        tokens: Vec<u64>,
        /// Whether the calls' worker died.
        worker_died: bool,
    },
    /// A descendant of this process exited (`path`: pids from this process's worker down to
    /// it, see `FromWorker::CallFor`); its leases, permits and waits go, and those of its own
    /// descendants with them. `clean`: it was shut down and exited with success.
    Gone {
        /// The descendant, as a path of pids.
        path: Vec<u32>,
        /// Whether it exited cleanly.
        clean: bool,
    },
    /// Create a shared-memory object of `len` bytes → `Shared`.
    SharedCreate {
        /// Its length in bytes.
        len: u64,
        /// Writable (an array or a value), or bytes sealed read-only once filled.
        writable: bool,
    },
    /// The creator of a read-only shared object filled it: seal it → `Unit`.
    SharedSeal {
        /// The object.
        id: u64,
    },
    /// → `Unit` once every operation this process sent before it was applied: a worker
    /// sends it before publishing, in its ring, the outcome of a call that made one-way
    /// operations (an event's `set`, a permit's release), so the parent never delivers the
    /// outcome ahead of them.
    Sync,
    /// As [`PrimOp::Acquire`], from a worker that can keep the permit lent: the answer is
    /// [`PrimReply::Lent`] when it may (it is the parent's own worker), `Bool(true)` when it
    /// may not. A worker keeps a lent permit its task released, to take it again without
    /// asking, until the parent recalls it (`ToWorker::Recall`, sent when another process
    /// waits for a permit) or the call ends, and gives it back then.
    AcquireLent {
        /// The semaphore.
        id: u64,
        /// Timeout in milliseconds.
        timeout_ms: Option<u64>,
    },
    /// A worker holding a handle to pipe end `id` asks for the end itself, to send and
    /// receive without the parent in between: `Unit` once the parent passed the end's
    /// descriptor down the worker's side channel (tagged with `id`), `Bool(false)` when the
    /// end is not direct or cannot reach this worker (then its operations go through the
    /// parent, as `Send` and `Recv`), `Error` when it names nothing.
    Attach {
        /// The pipe end.
        id: u64,
    },
}

/// The answer to a [`PrimOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrimReply {
    /// Done.
    Unit,
    /// A yes or no.
    Bool(bool),
    /// A count.
    Count(u64),
    /// A new primitive's id.
    Id(u64),
    /// A new pipe's two ends.
    Pair(u64, u64),
    /// An item or message.
    Item(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The wait ran out of time; nothing was taken.
    Timeout,
    /// The operation failed: one lowercase sentence (no such primitive, a party died, the
    /// other end is gone, ...).
    Error(String),
    /// The queue was shut down: no more puts, and no more items to get.
    ShutDown,
    /// To the last party of a barrier with an action: run the action now, in this process,
    /// then send `BarrierActionDone`; the other parties stay parked until then.
    RunAction,
    /// A new shared-memory object: its id, and where it lives (see the transport's
    /// `shm::Locator`).
    Shared {
        /// Its id.
        id: u64,
        /// The pid of the process that owns it.
        pid: u32,
        /// The owner's descriptor for it (Linux).
        handle: u64,
        /// The random tag in its name.
        tag: u64,
    },
    /// To [`PrimOp::AcquireLent`]: a permit was taken, and is lent (see there).
    Lent,
}

/// The bit of a barrier's `Create` parameter that says it has an action.
pub const BARRIER_ACTION: u64 = 1 << 63;
