//! [`Barrier`]: a meeting point for a fixed number of parties.

use std::time::Duration;

use offspring_wire::{BARRIER_ACTION, Kind, PrimOp, PrimReply};
use serde::{Deserialize, Serialize};

use super::handle::{Handle, handle_serde, millis, unexpected};
use crate::task_trait::Task;
use crate::{Error, Result};

/// A barrier for a fixed number of parties, like Python's `multiprocessing.Barrier`. It
/// breaks when a process holding it dies, so the others get an error instead of a hang.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Barrier {
    core: BarrierCore,
    /// The task the last party runs before the others are released, with its arguments.
    action: Option<Action>,
}

#[derive(Debug, Clone)]
struct BarrierCore {
    handle: Handle,
}

impl BarrierCore {
    fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }
}

handle_serde!(BarrierCore, Kind::Barrier);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Action {
    task: String,
    args: Vec<u8>,
}

impl Barrier {
    fn from_handle(handle: Handle) -> Self {
        Self {
            core: BarrierCore::from_handle(handle),
            action: None,
        }
    }

    /// A barrier whose last party to arrive runs `task` with `args` once, in its own process,
    /// before any party is released (Python's `Barrier(parties, action)`); handles travel
    /// with the barrier, so every copy carries the action. An action that fails (panics, or
    /// its arguments do not decode) breaks the barrier: every party gets an error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero parties, or arguments that hold offspring handles
    /// (an action outlives any one call, which their leases cannot);
    /// [`Error::NotATask`] when `task` is not a `#[offspring::task]`; the errors of
    /// `init()`'s checks.
    pub fn with_action<S, T: Task<S>>(parties: usize, task: T, args: T::Args) -> Result<Self> {
        let _ = task;
        if parties == 0 {
            return Err(Error::InvalidConfig {
                reason: "a barrier needs at least one party".into(),
            });
        }
        let name = crate::task_trait::task_name::<T>()?;
        let (args, tokens) = crate::codec::encode_call(name, None, args)?;
        if !tokens.is_empty() {
            crate::leases::end(&tokens);
            return Err(Error::InvalidConfig {
                reason: "a barrier's action cannot take offspring handles as arguments".into(),
            });
        }
        let handle = Handle::create(Kind::Barrier, parties as u64 | BARRIER_ACTION)?;
        Ok(Self {
            core: BarrierCore::from_handle(handle),
            action: Some(Action {
                task: name.to_owned(),
                args,
            }),
        })
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
            id: self.core.handle.id(),
        });
    }

    /// Returns the barrier to its empty state, unbroken, as Python's `reset()`: the parties
    /// waiting now get an error; later waits count afresh.
    pub fn reset(&self) {
        self.command(PrimOp::BarrierReset {
            id: self.core.handle.id(),
        });
    }

    /// Whether the barrier is broken: aborted, or a party died while others waited.
    pub fn is_broken(&self) -> bool {
        match self.core.handle.call(PrimOp::BarrierIsBroken {
            id: self.core.handle.id(),
        }) {
            PrimReply::Bool(broken) => broken,
            other => {
                tracing::warn!(target: "offspring", reply = ?other, "Barrier::is_broken failed");
                true
            }
        }
    }

    fn command(&self, op: PrimOp) {
        let reply = self.core.handle.call(op);
        if reply != PrimReply::Unit {
            tracing::warn!(target: "offspring", ?reply, "a barrier operation failed");
        }
    }

    fn wait_for(&self, timeout_ms: Option<u64>) -> Result<()> {
        self.arrive(timeout_ms).map(drop)
    }

    fn arrive(&self, timeout_ms: Option<u64>) -> Result<usize> {
        match self.core.handle.call(PrimOp::BarrierWait {
            id: self.core.handle.id(),
            timeout_ms,
        }) {
            PrimReply::Count(index) => Ok(usize::try_from(index).unwrap_or(usize::MAX)),
            PrimReply::Unit => Ok(0),
            PrimReply::RunAction => {
                let failure = self.run_action();
                match self.core.handle.call(PrimOp::BarrierActionDone {
                    id: self.core.handle.id(),
                    failure,
                }) {
                    PrimReply::Count(index) => Ok(usize::try_from(index).unwrap_or(usize::MAX)),
                    other => Err(unexpected(other)),
                }
            }
            other => Err(unexpected(other)),
        }
    }

    /// Runs the action here, as the last party; why it failed, if it did.
    fn run_action(&self) -> Option<String> {
        let Some(action) = &self.action else {
            return Some("this copy of the barrier carries no action".into());
        };
        let table = match offspring_worker::task_table() {
            Ok(table) => table,
            Err(reason) => return Some(reason),
        };
        let Some(entry) = table.get(&action.task) else {
            return Some(format!("no task named {} in this process", action.task));
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            entry.run(action.args.clone())
        }));
        match ran {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("{e:?}")),
            Err(payload) => Some(format!(
                "it panicked: {}",
                offspring_worker::panic_message(payload.as_ref())
            )),
        }
    }
}
