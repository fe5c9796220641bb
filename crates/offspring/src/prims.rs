//! Cross-process primitives: [`Event`], [`Semaphore`], [`Lock`], [`Barrier`], [`Queue`] and
//! [`pipe`]. Their state lives in the parent's coordinator; a handle is an id. In the parent
//! an operation goes straight to the coordinator's table; in a worker it travels over the
//! worker's connection and the task thread waits for the answer (the connection's lifeline
//! keeps running meanwhile).
//!
//! Handles are `Clone + Serialize + Deserialize + Send + Sync`: pass them inside task
//! arguments, and every copy refers to the same object. A primitive lives while a handle to it
//! exists in any process, including handles in flight inside arguments: serializing a handle
//! in the parent takes a lease that the worker inherits when it decodes the handle, and that
//! ends with the call if it never did (a worker killed before it used what it was sent).
//! Handles can be sent from the parent to its workers; sending one further (from a worker to
//! its own workers, or back in a result) is an error for now.
//!
//! What a dead process held is given back: its semaphore permits and locks (a waiter wakes),
//! its pipe ends (the other end's receiver gets an error once it has read everything), its
//! leases; a barrier one of whose parties died breaks (its waiters get an error).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use offspring_coordinator::Registry;
use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

#[derive(Clone, Copy)]
enum Backend {
    Parent(&'static Registry),
    Worker(&'static offspring_worker::Client),
}

fn backend() -> Result<Backend> {
    if let Some(client) = offspring_worker::client() {
        return Ok(Backend::Worker(client));
    }
    Ok(Backend::Parent(crate::init::coordinator()?.registry()))
}

impl Backend {
    fn call(self, op: PrimOp) -> PrimReply {
        match self {
            Self::Parent(registry) => registry.local(op),
            Self::Worker(client) => client.call(op),
        }
    }

    fn notify(self, op: PrimOp) {
        match self {
            Self::Parent(registry) => {
                registry.local(op);
            }
            Self::Worker(client) => client.notify(op),
        }
    }
}

const FURTHER_DOWN: &str =
    "offspring handles can be sent only from the parent to its workers for now";

/// The reason a handle refused to serialize, taken by the encoder (postcard keeps no message).
pub(crate) fn take_handle_error() -> Option<&'static str> {
    HANDLE_ERROR.with(|e| e.borrow_mut().take())
}

thread_local! {
    static HANDLE_ERROR: RefCell<Option<&'static str>> = const { RefCell::new(None) };
    /// In-flight lease tokens taken while encoding one call's arguments.
    static COLLECTING: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
}

/// Runs `encode`, collecting the in-flight lease tokens taken by handles it serializes.
pub(crate) fn collect_leases<R>(encode: impl FnOnce() -> R) -> (R, Vec<u64>) {
    let previous = COLLECTING.with(|c| c.borrow_mut().replace(Vec::new()));
    let result = encode();
    let tokens = COLLECTING
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
        .unwrap_or_default();
    (result, tokens)
}

/// Ends the in-flight leases of a call that ended (those its worker adopted are unaffected).
pub(crate) fn end_leases(tokens: &[u64]) {
    end_leases_of(tokens, false);
}

/// As [`end_leases`], for a call whose worker died.
pub(crate) fn end_leases_of(tokens: &[u64], worker_died: bool) {
    if tokens.is_empty() {
        return;
    }
    if let Ok(coordinator) = crate::init::coordinator() {
        coordinator.registry().end_in_flight(tokens, worker_died);
    }
}

fn millis(timeout: Duration) -> u64 {
    // Round up, so a positive timeout never becomes a mere try.
    let ms = timeout.as_micros().div_ceil(1000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

struct Inner {
    id: u64,
    kind: Kind,
    backend: Backend,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.backend.notify(PrimOp::Release { id: self.id });
    }
}

/// A reference to a primitive: its id, kind, and where operations go.
#[derive(Clone)]
struct Handle(Arc<Inner>);

impl Handle {
    fn create(kind: Kind, param: u64) -> Result<Self> {
        let backend = backend()?;
        match backend.call(PrimOp::Create { kind, param }) {
            PrimReply::Id(id) => Ok(Self(Arc::new(Inner { id, kind, backend }))),
            other => Err(unexpected(other)),
        }
    }

    fn id(&self) -> u64 {
        self.0.id
    }

    fn call(&self, op: PrimOp) -> PrimReply {
        self.0.backend.call(op)
    }

    fn notify(&self, op: PrimOp) {
        self.0.backend.notify(op);
    }
}

fn unexpected(reply: PrimReply) -> Error {
    match reply {
        PrimReply::Error(reason) => Error::Primitive { reason },
        PrimReply::Timeout => Error::Timeout,
        other => Error::Primitive {
            reason: format!("unexpected reply from the coordinator: {other:?}"),
        },
    }
}

/// Reports a failure of an operation whose signature cannot return it (a handle that names
/// nothing): the caller gets the neutral value, the log gets the reason.
fn log_failure(what: &str, reply: &PrimReply) {
    tracing::error!(target: "offspring", operation = what, ?reply, "a primitive operation failed");
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}#{}", self.0.kind, self.0.id)
    }
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Event => 0,
        Kind::Semaphore => 1,
        Kind::Barrier => 2,
        Kind::Queue => 3,
        Kind::PipeEnd => 4,
    }
}

fn serialize_handle<S: Serializer>(handle: &Handle, serializer: S) -> Result<S::Ok, S::Error> {
    let token = match handle.0.backend {
        Backend::Parent(registry) => registry.lease_in_flight(handle.id()).unwrap_or_default(),
        Backend::Worker(_) => {
            // postcard drops custom messages; keep ours for the error the caller sees.
            HANDLE_ERROR.with(|e| *e.borrow_mut() = Some(FURTHER_DOWN));
            return Err(serde::ser::Error::custom(FURTHER_DOWN));
        }
    };
    COLLECTING.with(|c| {
        if let Some(tokens) = c.borrow_mut().as_mut() {
            tokens.push(token);
        }
    });
    (kind_code(handle.0.kind), handle.id(), token).serialize(serializer)
}

fn deserialize_handle<'de, D: Deserializer<'de>>(
    deserializer: D,
    kind: Kind,
) -> Result<Handle, D::Error> {
    let (code, id, token) = <(u8, u64, u64)>::deserialize(deserializer)?;
    if code != kind_code(kind) {
        return Err(serde::de::Error::custom(format!(
            "expected a handle to a {kind:?}, found another kind"
        )));
    }
    let backend = backend().map_err(serde::de::Error::custom)?;
    // Taking the lease cannot fail in a way that matters here: a handle that names nothing
    // reports that on use.
    backend.notify(PrimOp::Adopt { id, token });
    Ok(Handle(Arc::new(Inner { id, kind, backend })))
}

macro_rules! handle_serde {
    ($ty:ident $(<$g:ident>)?, $kind:expr) => {
        impl$(<$g>)? Serialize for $ty$(<$g>)? {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_handle(&self.handle, serializer)
            }
        }

        impl<'de $(, $g)?> Deserialize<'de> for $ty$(<$g>)? {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(Self::from_handle(deserialize_handle(deserializer, $kind)?))
            }
        }
    };
}

/// A flag that processes can set, clear and wait for, like Python's `multiprocessing.Event`.
/// Starts false.
#[derive(Debug, Clone)]
pub struct Event {
    handle: Handle,
}

handle_serde!(Event, Kind::Event);

impl Event {
    fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }

    /// A new event, its flag false.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn new() -> Result<Self> {
        Handle::create(Kind::Event, 0).map(Self::from_handle)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let reply = self.handle.call(PrimOp::EventSet {
            id: self.handle.id(),
        });
        if reply != PrimReply::Unit {
            log_failure("Event::set", &reply);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        let reply = self.handle.call(PrimOp::EventClear {
            id: self.handle.id(),
        });
        if reply != PrimReply::Unit {
            log_failure("Event::clear", &reply);
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        match self.handle.call(PrimOp::EventIsSet {
            id: self.handle.id(),
        }) {
            PrimReply::Bool(set) => set,
            other => {
                log_failure("Event::is_set", &other);
                false
            }
        }
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        self.wait_for(None);
    }

    /// Waits up to `timeout`; whether the flag was set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_for(Some(millis(timeout)))
    }

    fn wait_for(&self, timeout_ms: Option<u64>) -> bool {
        match self.handle.call(PrimOp::EventWait {
            id: self.handle.id(),
            timeout_ms,
        }) {
            PrimReply::Bool(set) => set,
            PrimReply::Timeout => false,
            other => {
                log_failure("Event::wait", &other);
                false
            }
        }
    }
}

/// A counter of permits that processes take and give back, like Python's
/// `multiprocessing.Semaphore`, with RAII permits. A permit held by a process that dies is
/// given back.
#[derive(Debug, Clone)]
pub struct Semaphore {
    handle: Handle,
}

handle_serde!(Semaphore, Kind::Semaphore);

/// A permit of a [`Semaphore`]; given back when dropped.
#[derive(Debug)]
pub struct SemaphorePermit {
    handle: Handle,
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        self.handle.notify(PrimOp::ReleasePermit {
            id: self.handle.id(),
        });
    }
}

impl Semaphore {
    fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }

    /// A semaphore with `permits` permits.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn new(permits: usize) -> Result<Self> {
        Handle::create(Kind::Semaphore, permits as u64).map(Self::from_handle)
    }

    fn take(&self, timeout_ms: Option<u64>) -> Option<SemaphorePermit> {
        match self.handle.call(PrimOp::Acquire {
            id: self.handle.id(),
            timeout_ms,
        }) {
            PrimReply::Bool(true) => Some(SemaphorePermit {
                handle: self.handle.clone(),
            }),
            PrimReply::Bool(false) | PrimReply::Timeout => None,
            other => {
                log_failure("Semaphore::acquire", &other);
                None
            }
        }
    }

    /// Waits for a permit.
    ///
    /// # Panics
    ///
    /// When the handle names no live semaphore (it was forged or outlived its object): the
    /// signature has no error to return, and a permit that is not held must not be handed
    /// out.
    pub fn acquire(&self) -> SemaphorePermit {
        match self.take(None) {
            Some(permit) => permit,
            None => panic!("offspring: acquire on a semaphore handle that names no live semaphore"),
        }
    }

    /// A permit if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        self.take(Some(0))
    }

    /// A permit if one frees up within `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit> {
        self.take(Some(millis(timeout)))
    }

    /// Permits free now.
    pub fn available(&self) -> usize {
        match self.handle.call(PrimOp::Available {
            id: self.handle.id(),
        }) {
            PrimReply::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            other => {
                log_failure("Semaphore::available", &other);
                0
            }
        }
    }
}

/// A lock that processes share: a semaphore of one permit, released when its guard drops
/// (also when the holder dies).
#[derive(Debug, Clone)]
pub struct Lock {
    semaphore: Semaphore,
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.semaphore.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            semaphore: Semaphore::deserialize(deserializer)?,
        })
    }
}

/// The guard of a held [`Lock`]; the lock is released when it drops.
#[derive(Debug)]
pub struct LockGuard {
    _permit: SemaphorePermit,
}

impl Lock {
    /// A new, unlocked lock.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn new() -> Result<Self> {
        Ok(Self {
            semaphore: Semaphore::new(1)?,
        })
    }

    /// Waits for the lock.
    ///
    /// # Panics
    ///
    /// As [`Semaphore::acquire`].
    pub fn lock(&self) -> LockGuard {
        LockGuard {
            _permit: self.semaphore.acquire(),
        }
    }

    /// The lock if it is free now.
    pub fn try_lock(&self) -> Option<LockGuard> {
        self.semaphore
            .try_acquire()
            .map(|permit| LockGuard { _permit: permit })
    }

    /// The lock if it frees up within `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockGuard> {
        self.semaphore
            .acquire_timeout(timeout)
            .map(|permit| LockGuard { _permit: permit })
    }
}

/// A barrier for a fixed number of parties, like Python's `multiprocessing.Barrier`. It
/// breaks when a process holding it dies, so the others get an error instead of a hang.
#[derive(Debug, Clone)]
pub struct Barrier {
    handle: Handle,
}

handle_serde!(Barrier, Kind::Barrier);

impl Barrier {
    fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }

    /// A barrier that releases its waiters when `parties` of them wait.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero parties; the errors of `init()`'s checks.
    pub fn new(parties: usize) -> Result<Self> {
        if parties == 0 {
            return Err(Error::InvalidConfig {
                reason: "a barrier needs at least one party".into(),
            });
        }
        Handle::create(Kind::Barrier, parties as u64).map(Self::from_handle)
    }

    /// Waits until all parties wait.
    ///
    /// # Errors
    ///
    /// [`Error::Primitive`] when a party died before the barrier filled.
    pub fn wait(&self) -> Result<()> {
        self.wait_for(None)
    }

    /// As [`wait`](Self::wait), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it did not fill in time; otherwise as `wait`.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.wait_for(Some(millis(timeout)))
    }

    fn wait_for(&self, timeout_ms: Option<u64>) -> Result<()> {
        match self.handle.call(PrimOp::BarrierWait {
            id: self.handle.id(),
            timeout_ms,
        }) {
            PrimReply::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

/// A queue of `T` shared by processes, like Python's `multiprocessing.JoinableQueue`:
/// unbounded, or bounded with [`Queue::bounded`]. Every item is delivered once; an item
/// `put` reported as accepted is never lost.
pub struct Queue<T> {
    handle: Handle,
    _items: PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _items: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Queue").field(&self.handle).finish()
    }
}

handle_serde!(Queue<T>, Kind::Queue);

fn encode_item<T: Serialize>(item: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(item).map_err(|e| Error::Primitive {
        reason: format!("cannot encode the item: {e}"),
    })
}

/// Runs a taking operation (a queue's `Get`, a pipe end's `Recv`): the decoded item, `None`
/// when it timed out, or the error.
fn take_item<T: DeserializeOwned>(handle: &Handle, op: PrimOp) -> Result<Option<T>> {
    match handle.call(op) {
        PrimReply::Item(bytes) => decode_item(&bytes).map(Some),
        PrimReply::Timeout => Ok(None),
        other => Err(unexpected(other)),
    }
}

fn decode_item<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Primitive {
        reason: format!("cannot decode the item: {e}"),
    })
}

impl<T> Queue<T> {
    fn from_handle(handle: Handle) -> Self {
        Self {
            handle,
            _items: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn new() -> Result<Self> {
        Handle::create(Kind::Queue, 0).map(Self::from_handle)
    }

    /// A queue that holds at most `maxsize` items; `put` waits while it is full.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bound of zero; the errors of `init()`'s checks.
    pub fn bounded(maxsize: usize) -> Result<Self> {
        if maxsize == 0 {
            return Err(Error::InvalidConfig {
                reason: "a bounded queue needs room for at least one item".into(),
            });
        }
        Handle::create(Kind::Queue, maxsize as u64).map(Self::from_handle)
    }

    /// Puts an item, waiting while a bounded queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Primitive`] when the item does not encode or the handle names no queue.
    pub fn put(&self, item: &T) -> Result<()> {
        let item = encode_item(item)?;
        match self.handle.call(PrimOp::Put {
            id: self.handle.id(),
            item,
            timeout_ms: None,
        }) {
            PrimReply::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn take(&self, timeout_ms: Option<u64>) -> Result<Option<T>> {
        take_item(
            &self.handle,
            PrimOp::Get {
                id: self.handle.id(),
                timeout_ms,
            },
        )
    }

    /// Takes the next item, waiting for one.
    ///
    /// # Errors
    ///
    /// [`Error::Primitive`] when the item does not decode or the handle names no queue.
    pub fn get(&self) -> Result<T> {
        self.take(None)?.ok_or(Error::Timeout)
    }

    /// Takes the next item, waiting up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when none came; otherwise as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.take(Some(millis(timeout)))?.ok_or(Error::Timeout)
    }

    /// Takes the next item if there is one now.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn try_get(&self) -> Result<Option<T>> {
        self.take(Some(0))
    }

    /// Items in the queue now.
    pub fn len(&self) -> usize {
        match self.handle.call(PrimOp::Len {
            id: self.handle.id(),
        }) {
            PrimReply::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            other => {
                log_failure("Queue::len", &other);
                0
            }
        }
    }

    /// Whether the queue is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks one item taken from the queue as processed (for [`join`](Self::join)).
    pub fn task_done(&self) {
        let reply = self.handle.call(PrimOp::TaskDone {
            id: self.handle.id(),
        });
        if reply != PrimReply::Unit {
            log_failure("Queue::task_done", &reply);
        }
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) {
        self.join_for(None);
    }

    /// As [`join`](Self::join), giving up after `timeout`; whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_for(Some(millis(timeout)))
    }

    fn join_for(&self, timeout_ms: Option<u64>) -> bool {
        match self.handle.call(PrimOp::Join {
            id: self.handle.id(),
            timeout_ms,
        }) {
            PrimReply::Bool(done) => done,
            PrimReply::Timeout => false,
            other => {
                log_failure("Queue::join", &other);
                false
            }
        }
    }
}

/// One end of a duplex pipe made by [`pipe`]: what one end sends, only the other receives.
pub struct Connection<T> {
    handle: Handle,
    _items: PhantomData<fn() -> T>,
}

impl<T> Clone for Connection<T> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _items: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Connection").field(&self.handle).finish()
    }
}

handle_serde!(Connection<T>, Kind::PipeEnd);

/// A duplex pipe: two connected ends, like Python's `multiprocessing.Pipe()`.
///
/// # Errors
///
/// The errors of `init()`'s checks in a parent.
pub fn pipe<T: Serialize + DeserializeOwned>() -> Result<(Connection<T>, Connection<T>)> {
    let backend = backend()?;
    match backend.call(PrimOp::CreatePipe) {
        PrimReply::Pair(a, b) => {
            let end = |id| Connection {
                handle: Handle(Arc::new(Inner {
                    id,
                    kind: Kind::PipeEnd,
                    backend,
                })),
                _items: PhantomData,
            };
            Ok((end(a), end(b)))
        }
        other => Err(unexpected(other)),
    }
}

impl<T> Connection<T> {
    fn from_handle(handle: Handle) -> Self {
        Self {
            handle,
            _items: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Connection<T> {
    /// Sends a message to the other end.
    ///
    /// # Errors
    ///
    /// [`Error::Primitive`] when the other end is closed or the message does not encode.
    pub fn send(&self, value: &T) -> Result<()> {
        let item = encode_item(value)?;
        match self.handle.call(PrimOp::Send {
            id: self.handle.id(),
            item,
        }) {
            PrimReply::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn take(&self, timeout_ms: Option<u64>) -> Result<Option<T>> {
        take_item(
            &self.handle,
            PrimOp::Recv {
                id: self.handle.id(),
                timeout_ms,
            },
        )
    }

    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`Error::Primitive`] when the other end is closed (every handle to it dropped, or its
    /// process died) and nothing is left to read.
    pub fn recv(&self) -> Result<T> {
        self.take(None)?.ok_or(Error::Timeout)
    }

    /// As [`recv`](Self::recv), waiting up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when nothing came; otherwise as `recv`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        self.take(Some(millis(timeout)))?.ok_or(Error::Timeout)
    }

    /// The next message if there is one now.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Option<T>> {
        self.take(Some(0))
    }
}

/// How many primitives the parent's coordinator holds (for tests: a leak shows here).
#[doc(hidden)]
pub fn live_primitives() -> usize {
    crate::init::coordinator().map_or(0, |c| c.registry().len())
}
