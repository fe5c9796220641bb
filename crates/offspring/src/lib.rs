//! Process pools, processes and cross-process primitives for Rust: what Python's
//! `multiprocessing` gives Python programs. Linux is tested today; macOS and Windows are
//! type-checked.
//!
//! Your binary re-executes itself as worker processes. [`init`] must run first in `main`: in
//! a worker it runs the worker and never returns; in the parent it returns at once. Workers
//! connect back over an authenticated local socket and run tasks by their stable name: a
//! function marked [`#[offspring::task]`](task) becomes a task *value* you hand to
//! [`Process::spawn`].
//!
//! ```standalone_crate
//! #[offspring::task]
//! fn square(n: u64) -> u64 {
//!     n * n
//! }
//!
//! fn main() -> offspring::Result<()> {
//!     offspring::init(); // first: in a worker this runs the worker and never returns
//!     let child = offspring::Process::spawn(square, 7)?;
//!     assert_eq!(child.join()?, 49);
//!     assert_eq!(square(3), 9); // the body, run in this process
//!     let square = child.pid(); // the name stays free for locals
//!     assert_ne!(square, 0);
//!     Ok(())
//! }
//! ```
//!
//! # Tasks
//!
//! `#[offspring::task] fn f(a: A, b: B) -> R` registers `f` as a task and leaves it a plain
//! function: `f(a, b)` (or `f::call(a, b)`) runs the body in-process, and its name may be
//! shadowed by locals and parameters like any function's. Passed to a method, it is a
//! [`Task`] with `Args = (A, B)` (one parameter: `A` itself; none: `()`) and `Output = R`,
//! checked at compile time; the parent finds its stable name by the function's type, so a
//! function without the attribute fails with [`Error::NotATask`] before anything is sent.
//! Arguments and results are owned serde types, carried by postcard, which cannot carry
//! some serde features: `#[serde(flatten)]`,
//! untagged and internally tagged enums, `skip_serializing_if`, and types that need
//! `deserialize_any` (such as `serde_json::Value`). `async fn` and generic functions are
//! refused at compile time for now. A task's stable name is its module path and function name
//! (`my_crate::jobs::f`), or the one given by `#[offspring::task(name = "...")]`; two tasks
//! under one name are an error when the first worker starts.
//!
//! # Shared memory
//!
//! [`SharedBytes`], [`SharedSlice`], [`SharedArray`] and [`Value`] pass by handle: the
//! receiving process maps the same pages, and nothing is copied. The [`shared`] module's
//! docs say where each lives, when it is freed, and why a worker cannot change read-only
//! memory under another process's feet.
//!
//! # Tests
//!
//! Put [`test_support!()`](test_support) once in a test crate: workers started from tests then
//! run the worker instead of re-running the test suite, under `cargo test` and
//! `cargo nextest run` alike.
//!
//! This crate is the only public API boundary of the project; the other `offspring-*` crates
//! are its parts.

#![forbid(unsafe_code)]

mod async_result;
mod codec;
mod current;
mod error;
mod init;
mod launcher;
mod leases;
mod pool;
mod prims;
mod process;
pub mod shared;
mod slot;
mod task_trait;

#[doc(hidden)]
pub mod __private;

pub use async_result::{AsyncResult, AsyncResultFuture};
/// The crate of [`bytemuck::Pod`], which every element type of shared memory implements.
pub use bytemuck;
pub use current::{ProcessInfo, active_children, current_process};
pub use error::{Direction, Error, Result};
pub use init::init;
pub use launcher::{ENV_LAUNCHER, Launcher, Local, Slurm};
pub use offspring_macros::{main, task};
pub use pool::{IMAP_AHEAD, Imap, Pool, PoolBuilder, PoolCounters};
#[doc(hidden)]
pub use prims::live_primitives;
pub use prims::{
    Barrier, Condition, ConditionGuard, Connection, Event, Lock, LockGuard, Queue, RLock,
    RLockGuard, Semaphore, SemaphorePermit, pipe,
};
pub use process::{Process, ProcessHandle};
pub use shared::{SharedArray, SharedArrayGuard, SharedBytes, SharedSlice, Value, ValueType};
pub use task_trait::Task;
