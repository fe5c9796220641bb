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
///
/// # Lent permits
///
/// A permit a pool worker takes from a `Semaphore` (not a `Lock`) is lent to it: when its task
/// releases the permit, the worker keeps it, and its next `acquire` takes it again with no message
/// to the parent. The worker gives it back as soon as another process waits for a permit (the
/// parent recalls it), when the call that released it ends (before its outcome reaches the caller,
/// so a permit released inside a task is free once `apply` returns), or when the worker dies. So a
/// semaphore is not first-come: as with Python's, a process that releases may take the permit again
/// ahead of one that waits, until the recall reaches it. While a permit is kept,
/// [`Semaphore::available`] counts it as taken and a [`try_acquire`](Semaphore::try_acquire)
/// elsewhere does not get it; any wait of another process does. `Lock`s and `RLock`s are never
/// lent: a `Condition` gives its lock's permit back in the parent while it waits.
#[derive(Debug, Clone)]
pub struct Semaphore {
    handle: Handle,
}

handle_serde!(Semaphore, Kind::Semaphore);

/// A permit of a [`Semaphore`]; given back when dropped.
#[derive(Debug)]
pub struct SemaphorePermit {
    handle: Handle,
    /// Lent to this worker: kept on release unless recalled (see [`Semaphore`]).
    lent: bool,
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        let id = self.handle.id();
        if self.lent
            && let Some(client) = self.handle.client()
            && client.keep_lent(id, Box::new(self.handle.clone()))
        {
            return;
        }
        self.handle.notify(PrimOp::ReleasePermit { id });
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

    /// Takes a permit; `lend`: one a worker may keep lent (see [`Semaphore`]).
    pub(super) fn take(&self, timeout_ms: Option<u64>, lend: bool) -> Option<SemaphorePermit> {
        let id = self.handle.id();
        let client = self.handle.client().filter(|_| lend);
        if let Some(client) = client
            && client.take_lent(id)
        {
            return Some(SemaphorePermit {
                handle: self.handle.clone(),
                lent: true,
            });
        }
        let op = match client {
            Some(_) => PrimOp::AcquireLent { id, timeout_ms },
            None => PrimOp::Acquire { id, timeout_ms },
        };
        match self.handle.call(op) {
            PrimReply::Bool(true) => Some(SemaphorePermit {
                handle: self.handle.clone(),
                lent: false,
            }),
            PrimReply::Lent => Some(SemaphorePermit {
                handle: self.handle.clone(),
                lent: true,
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
        self.acquire_with(true)
    }

    pub(super) fn acquire_with(&self, lend: bool) -> SemaphorePermit {
        match self.take(None, lend) {
            Some(permit) => permit,
            None => panic!("offspring: acquire on a semaphore handle that names no live semaphore"),
        }
    }

    /// A permit if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphorePermit> {
        self.take(Some(0), true)
    }

    /// A permit if one frees up within `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit> {
        self.take(Some(millis(timeout)), true)
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
            _permit: self.semaphore.acquire_with(false),
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
            .take(Some(0), false)
            .map(|permit| LockGuard { _permit: permit })
    }

    /// The lock if it frees up within `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<LockGuard> {
        self.semaphore
            .take(Some(millis(timeout)), false)
            .map(|permit| LockGuard { _permit: permit })
    }
}
