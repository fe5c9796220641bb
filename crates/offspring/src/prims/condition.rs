//! [`Condition`]: waiting for a state that other processes change, under a shared lock.

use std::time::{Duration, Instant};

use offspring_wire::{Kind, PrimOp, PrimReply};
use serde::{Deserialize, Serialize};

use super::handle::{Handle, handle_serde, log_failure, millis};
use super::semaphore::{Lock, LockGuard};
use crate::Result;

/// A condition variable that processes share, like Python's `multiprocessing.Condition`:
/// take its lock, check the shared state, and [`wait`](Self::wait) (which gives the lock
/// back while it sleeps) until another process changes it and calls
/// [`notify`](Self::notify). Its lock is a [`Lock`], given back when its holder dies; a
/// waiter that dies is simply gone.
///
/// Unlike Python, `notify` does not insist that the caller hold the lock; notifying without
/// it can miss a waiter that is about to sleep, as anywhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Condition {
    core: ConditionCore,
    lock: Lock,
}

#[derive(Debug, Clone)]
struct ConditionCore {
    handle: Handle,
}

impl ConditionCore {
    fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }
}

handle_serde!(ConditionCore, Kind::Condition);

/// The guard of a [`Condition`]'s lock, which [`Condition::wait`] takes and gives back.
#[derive(Debug)]
pub struct ConditionGuard {
    _lock: LockGuard,
}

impl Condition {
    /// A condition with a lock of its own.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn new() -> Result<Self> {
        Self::with_lock(Lock::new()?)
    }

    /// A condition over `lock`, which others may also take directly.
    ///
    /// # Errors
    ///
    /// The errors of `init()`'s checks in a parent.
    pub fn with_lock(lock: Lock) -> Result<Self> {
        let handle = Handle::create(Kind::Condition, 0)?;
        Ok(Self {
            core: ConditionCore::from_handle(handle),
            lock,
        })
    }

    /// Takes the condition's lock, waiting for it.
    ///
    /// # Panics
    ///
    /// As [`Lock::lock`].
    pub fn lock(&self) -> ConditionGuard {
        ConditionGuard {
            _lock: self.lock.lock(),
        }
    }

    /// The condition's lock if it is free now.
    pub fn try_lock(&self) -> Option<ConditionGuard> {
        self.lock
            .try_lock()
            .map(|lock| ConditionGuard { _lock: lock })
    }

    /// Gives the lock back, sleeps until notified, and takes the lock again before it
    /// returns. Wake-ups are as Python's: check the state again ([`wait_for`](Self::wait_for)
    /// does).
    pub fn wait(&self, guard: ConditionGuard) -> ConditionGuard {
        self.sleep(guard, None).0
    }

    /// As [`wait`](Self::wait), for at most `timeout`; whether it was notified. Either way
    /// the lock is held again when it returns.
    pub fn wait_timeout(&self, guard: ConditionGuard, timeout: Duration) -> (ConditionGuard, bool) {
        self.sleep(guard, Some(millis(timeout)))
    }

    /// Waits until `predicate` holds, checking it under the lock before each wait and after
    /// each wake-up.
    pub fn wait_for(
        &self,
        mut guard: ConditionGuard,
        mut predicate: impl FnMut() -> bool,
    ) -> ConditionGuard {
        while !predicate() {
            guard = self.wait(guard);
        }
        guard
    }

    /// As [`wait_for`](Self::wait_for), giving up after `timeout`; whether `predicate` held.
    pub fn wait_for_timeout(
        &self,
        mut guard: ConditionGuard,
        timeout: Duration,
        mut predicate: impl FnMut() -> bool,
    ) -> (ConditionGuard, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if predicate() {
                return (guard, true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (guard, false);
            }
            guard = self.wait_timeout(guard, left).0;
        }
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes up to `n` waiters; each takes the lock again in turn.
    pub fn notify(&self, n: usize) {
        let reply = self.core.handle.call(PrimOp::CondNotify {
            id: self.core.handle.id(),
            n: n as u64,
        });
        if !matches!(reply, PrimReply::Count(_)) {
            log_failure("Condition::notify", &reply);
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify(usize::MAX);
    }

    fn sleep(&self, guard: ConditionGuard, timeout_ms: Option<u64>) -> (ConditionGuard, bool) {
        // The coordinator gives the guard's permit back while this waits and grants it
        // again on a notify; the guard stays valid across, so nothing is released twice.
        let reply = self.core.handle.call(PrimOp::CondWait {
            id: self.core.handle.id(),
            lock: self.lock.semaphore_id(),
            timeout_ms,
        });
        match reply {
            PrimReply::Bool(true) => (guard, true),
            PrimReply::Timeout => {
                // Timed out before a notify reached it: the permit was given back, so take
                // it again for the same guard.
                self.lock.retake();
                (guard, false)
            }
            other => {
                // Refused before it gave the permit back: the lock is still held.
                log_failure("Condition::wait", &other);
                (guard, false)
            }
        }
    }
}
