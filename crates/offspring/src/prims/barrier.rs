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
