//! [`RLock`]: a lock that the thread holding it may take again, across processes.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::semaphore::{Semaphore, SemaphorePermit};
use crate::Result;

/// A re-entrant lock that processes share, like Python's `multiprocessing.RLock`: the thread
/// that holds it may lock it again without deadlock, and it is released once every guard of
/// that thread has dropped. Between processes it is a [`Lock`](crate::Lock): one process
/// holds it at a time, and a holder that dies gives it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RLock {
    semaphore: Semaphore,
}

/// The guard of a held [`RLock`]. It stays on the thread that took it (it is not `Send`): the
/// lock belongs to that thread until its last guard drops.
#[derive(Debug)]
pub struct RLockGuard {
    id: u64,
    _on_this_thread: PhantomData<*const ()>,
}

/// Who holds each re-entrant lock held in this process: the thread, how many of its guards
/// are alive, and the one permit behind them. Keyed by the primitive's id, so every handle of
/// one lock in this process shares it.
struct Owner {
    thread: ThreadId,
    depth: usize,
    _permit: SemaphorePermit,
}

static OWNERS: Mutex<Option<HashMap<u64, Owner>>> = Mutex::new(None);

fn owners() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Owner>>> {
    OWNERS.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn new() -> Result<Self> {
        Ok(Self {
            semaphore: Semaphore::new(1)?,
        })
    }

    /// Takes the lock, waiting for another thread or process to release it; at once when this
    /// thread holds it already.
    ///
    /// # Panics
    ///
    /// As [`Semaphore::acquire`].
    pub fn lock(&self) -> RLockGuard {
        if let Some(guard) = self.again() {
            return guard;
        }
        let permit = self.semaphore.acquire_with(false);
        self.hold(permit)
    }

    /// The lock if this thread holds it already or it is free now.
    pub fn try_lock(&self) -> Option<RLockGuard> {
        self.again().or_else(|| {
            self.semaphore
                .take(Some(0), false)
                .map(|permit| self.hold(permit))
        })
    }

    /// The lock if this thread holds it already or it frees up within `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<RLockGuard> {
        self.again().or_else(|| {
            self.semaphore
                .take(Some(super::handle::millis(timeout)), false)
                .map(|permit| self.hold(permit))
        })
    }

    fn id(&self) -> u64 {
        self.semaphore.id()
    }

    /// Another guard, when this thread holds the lock already.
    fn again(&self) -> Option<RLockGuard> {
        let me = std::thread::current().id();
        let mut owners = owners();
        let owner = owners.as_mut()?.get_mut(&self.id())?;
        (owner.thread == me).then(|| {
            owner.depth += 1;
            self.guard()
        })
    }

    /// This thread took the lock's permit: it owns the lock now.
    fn hold(&self, permit: SemaphorePermit) -> RLockGuard {
        let owner = Owner {
            thread: std::thread::current().id(),
            depth: 1,
            _permit: permit,
        };
        owners()
            .get_or_insert_with(HashMap::new)
            .insert(self.id(), owner);
        self.guard()
    }

    fn guard(&self) -> RLockGuard {
        RLockGuard {
            id: self.id(),
            _on_this_thread: PhantomData,
        }
    }
}

impl Drop for RLockGuard {
    fn drop(&mut self) {
        let released = {
            let mut owners = owners();
            let Some(table) = owners.as_mut() else {
                return;
            };
            match table.get_mut(&self.id) {
                Some(owner) if owner.depth > 1 => {
                    owner.depth -= 1;
                    None
                }
                // The last guard: the entry goes first, then (outside the table's lock) the
                // permit, so a thread that takes the permit next finds no stale owner.
                Some(_) => table.remove(&self.id),
                None => None,
            }
        };
        drop(released);
    }
}
