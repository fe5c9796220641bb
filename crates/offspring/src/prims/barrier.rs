//! [`Barrier`]: a meeting point for a fixed number of parties.

use std::time::Duration;

use offspring_wire::{Kind, PrimOp, PrimReply};

use super::handle::{Handle, handle_serde, millis, unexpected};
use crate::{Error, Result};

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

    /// As [`wait`](Self::wait), and says in which order this party arrived: `0` for the
    /// first, `parties - 1` for the last (the one that released the others), as the value of
    /// Python's `Barrier.wait()`.
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_index(&self) -> Result<usize> {
        self.arrive(None)
    }

    /// Breaks the barrier, as Python's `abort()`: the parties waiting now and every later
    /// `wait` get an error, until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.command(PrimOp::BarrierAbort {
            id: self.handle.id(),
        });
    }

    /// Returns the barrier to its empty state, unbroken, as Python's `reset()`: the parties
    /// waiting now get an error; later waits count afresh.
    pub fn reset(&self) {
        self.command(PrimOp::BarrierReset {
            id: self.handle.id(),
        });
    }

    /// Whether the barrier is broken: aborted, or a party died while others waited.
    pub fn is_broken(&self) -> bool {
        match self.handle.call(PrimOp::BarrierIsBroken {
            id: self.handle.id(),
        }) {
            PrimReply::Bool(broken) => broken,
            other => {
                tracing::warn!(target: "offspring", reply = ?other, "Barrier::is_broken failed");
                true
            }
        }
    }

    fn command(&self, op: PrimOp) {
        let reply = self.handle.call(op);
        if reply != PrimReply::Unit {
            tracing::warn!(target: "offspring", ?reply, "a barrier operation failed");
        }
    }

    fn wait_for(&self, timeout_ms: Option<u64>) -> Result<()> {
        self.arrive(timeout_ms).map(drop)
    }

    fn arrive(&self, timeout_ms: Option<u64>) -> Result<usize> {
        match self.handle.call(PrimOp::BarrierWait {
            id: self.handle.id(),
            timeout_ms,
        }) {
            PrimReply::Count(index) => Ok(usize::try_from(index).unwrap_or(usize::MAX)),
            PrimReply::Unit => Ok(0),
            other => Err(unexpected(other)),
        }
    }
}
