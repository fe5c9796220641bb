//! Integration tests of the foundation: real worker processes over real sockets, through the
//! facade. One binary for all of them keeps link time down.

offspring::test_support!();

mod hostile;
mod logs;
mod process;
mod reexec;
