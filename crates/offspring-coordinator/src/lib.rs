//! The parent's brain: it listens for workers, starts and authenticates them, dispatches tasks
//! to them, watches them die, and turns their forwarded logs into the parent's own events.
//!
//! It runs on its own tokio runtime (one long-lived thread named `offspring-coordinator`),
//! started the first time the process needs a worker. The blocking API the facade exposes
//! talks to it through channels and never blocks inside a runtime, so it works from plain
//! threads and from inside a user's own tokio runtime alike. Workers are started from the
//! coordinator's thread on purpose: Linux's parent-death signal fires when the *thread* that
//! started a child exits, and this thread lives as long as the process.
//!
//! The coordinator never depends on the worker runtime (`offspring-worker`): it sees tasks only
//! as names and bytes. It does not know the user's types; the facade decodes results.

#![forbid(unsafe_code)]

mod coordinator;
mod error;
#[cfg(feature = "live")]
pub mod live;
mod logs;
mod pool;
mod prims;
mod trace;
mod worker;

pub use coordinator::{
    Coordinator, CoordinatorConfig, DEFAULT_CONNECT_TIMEOUT, ENV_LISTEN, ENV_TRANSPORT,
    HANDSHAKE_TIMEOUT, Launch, MAX_STRANGERS, SEGMENT_BYTES, SpawnOptions, wait_for,
};
pub use error::{Failure, SpawnError};
pub use logs::LogCounts;
pub use pool::{
    ASYNC_TIMEOUT_GRACE, CallResult, JobId, JobSink, JobSpec, MAX_START_FAILURES, PoolConfig,
    PoolCounters, PoolFailure, PoolHandle,
};
pub use prims::{CLOSED_PIPE, Holder, MAX_ITEM, Registry, ReplyFn, Upstream};
pub use trace::{MAX_EVENTS, TRACE_ENV, Timeline, program_name};
pub use worker::{BatchContext, BatchSink, Death, WorkerHandle};
