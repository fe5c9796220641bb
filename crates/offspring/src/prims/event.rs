//! [`Event`]: a flag processes set, clear and wait for.

use std::time::Duration;

use offspring_wire::{Kind, PrimOp, PrimReply};

use super::handle::{Handle, handle_serde, log_failure, millis};
use crate::Result;

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

    /// Sets the flag and wakes every waiter. From a worker this sends one message and waits
    /// for no answer; the parent applies this process's operations in the order they were
    /// made, so anything this thread does afterwards through the parent (a `put`, another
    /// event's `wait`) is seen after the flag is set. Shared memory is not in that order: a
    /// [`Value`](crate::Value) stored after a `set` can be seen by another process before
    /// the flag is.
    pub fn set(&self) {
        self.handle.one_way(
            "Event::set",
            PrimOp::EventSet {
                id: self.handle.id(),
            },
        );
    }

    /// Clears the flag (one message from a worker, as [`Event::set`]).
    pub fn clear(&self) {
        self.handle.one_way(
            "Event::clear",
            PrimOp::EventClear {
                id: self.handle.id(),
            },
        );
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
