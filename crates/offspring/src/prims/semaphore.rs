//! [`Semaphore`] and [`Lock`] (a semaphore of one permit), with RAII permits given back
//! when they drop or their holder dies.

use std::time::Duration;

use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::{Deserialize, Serialize};

use super::handle::{Handle, handle_serde, log_failure, millis};
use crate::Result;

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

    /// The primitive's id (the key a process's re-entrant lock state is kept under).
    pub(super) fn id(&self) -> u64 {
        self.handle.id()
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
/// (also when the holder dies). It crosses a process boundary as its semaphore does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lock {
    semaphore: Semaphore,
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

    /// The id of the semaphore behind the lock (a condition names it when it waits).
    pub(super) fn semaphore_id(&self) -> u64 {
        self.semaphore.id()
    }

    /// Takes the permit again for a guard whose permit the coordinator gave back (a
    /// condition's wait that timed out), waiting for it.
    pub(super) fn retake(&self) {
        let reply = self.semaphore.handle.call(PrimOp::Acquire {
            id: self.semaphore.id(),
            timeout_ms: None,
        });
        if reply != PrimReply::Bool(true) {
            log_failure("Condition::wait_timeout", &reply);
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
