//! Integration tests of the foundation: real worker processes over real sockets, through the
//! facade. One binary for all of them keeps link time down.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]

offspring::test_support!();

mod arena;
mod async_tasks;
mod flow;
mod hostile;
mod logs;
mod pipes;
mod pool;
mod pool_failures;
mod prims;
mod process;
mod reexec;
mod ring;
mod shared;
mod side;
mod tasks;
