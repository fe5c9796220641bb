//! The child's runtime: a worker process connects back to its parent, proves itself, runs
//! tasks by name one at a time, forwards its logs, and exits when the parent goes.
//!
//! This crate owns the task table (every `#[offspring::task]` registers a [`TaskEntry`] here
//! through `inventory`, looked up by its stable name, never by a code address) and the worker's
//! lifecycle, written down in [`runtime`]. It must not depend on the coordinator: the parent's
//! side is reached only through the wire protocol. The facade calls [`run`] from
//! `offspring::init()` when the process was started as a worker.

#![forbid(unsafe_code)]

mod client;
mod forward;
mod outbox;
mod reports;
pub mod runtime;
mod table;
mod tasks_runtime;

pub use client::{Client, ENV_TEST_CLOSED_CLIENT, client};
pub use reports::ENV_TEST_SCRIBBLE;
pub use runtime::{
    ENV_TEST_CORRUPT_SEALED, EXIT_BAD_ENV, EXIT_BAD_TABLE, EXIT_HANDSHAKE, EXIT_PARENT_GONE,
    is_remote, panic_message, parent_pid, run,
};
pub use table::{CallFuture, RunError, StartFn, TaskEntry, TaskTable, task_table};
pub use tasks_runtime::block_on;

#[doc(hidden)]
pub use inventory;
