//! How offspring processes find and trust each other: local sockets, frames over async byte
//! streams, the re-executed worker's environment, and the mutual handshake.
//!
//! This crate owns the seam between "a byte stream to a peer" and everything above it. Above
//! it, a connection is a [`Conn`]: a boxed async reader and writer plus, where the OS tells, the
//! peer's pid, so that workers on other machines (dialling back over TCP with the same frames
//! and handshake) can fit the same seam. It knows nothing of pools, tasks or primitives; the coordinator and the worker
//! depend on it.
//!
//! Today the coordinator's worker actor still owns the child process it started (it reaps it
//! to learn how a worker died); remote workers will need that part made optional.
//!
//! Platform-specific code (socket naming, peer credentials, parent-death signals, shared
//! memory) lives in [`sys`], [`Segment`] and the private `endpoint` module, each `unsafe`
//! block with its invariant.

mod auth;
#[cfg(target_os = "linux")]
pub mod channel;
#[cfg(windows)]
#[path = "channel_win.rs"]
pub mod channel;
mod direct;
mod endpoint;
mod env;
mod error;
mod frame;
mod identity;
pub mod seal;
mod segment;
pub mod shm;
mod spawn;
pub mod sys;

pub use auth::{Authed, Expected, Secret, accept_handshake, connect_handshake};
pub use direct::DirectWriter;
pub use endpoint::{Conn, ENV_SOCKET_KIND, Endpoint, Listener, connect};
pub use env::{
    ENV_ENDPOINT, ENV_NO_PDEATHSIG, ENV_PARENT_PID, ENV_REMOTE, ENV_ROLE, ENV_SECRET, ENV_SIDE,
    ENV_WORKER_ID, EXIT_BAD_ENV, EXIT_BAD_TABLE, EXIT_HANDSHAKE, EXIT_PARENT_GONE, WorkerEnv,
    early_exit_hint, worker_env_present,
};
pub use error::{HandshakeError, TransportError};
pub use frame::{FrameReader, FrameWriter};
pub use identity::{BuildIdentity, build_identity};
pub use segment::Segment;
pub use spawn::{SpawnSpec, spawn_worker};
