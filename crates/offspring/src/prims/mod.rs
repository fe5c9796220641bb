//! Cross-process primitives: [`Event`], [`Semaphore`], [`Lock`], [`RLock`], [`Condition`],
//! [`Barrier`], [`Queue`] and [`pipe`]. Their state lives in the parent's coordinator; a handle is an id. In the parent
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

mod barrier;
mod condition;
mod event;
pub(crate) mod handle;
mod pipe;
mod queue;
mod rlock;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard};
pub use event::Event;
pub use pipe::{Connection, pipe};
pub use queue::Queue;
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{Lock, LockGuard, Semaphore, SemaphorePermit};

/// How many primitives the parent's coordinator holds (for tests: a leak shows here).
#[doc(hidden)]
pub fn live_primitives() -> usize {
    crate::init::coordinator().map_or(0, |c| c.registry().len())
}
