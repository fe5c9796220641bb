//! The offspring protocol: every message that crosses a process boundary, and its framing.
//!
//! This crate owns the bytes on the wire and nothing else. It knows nothing of tokio, sockets,
//! processes or tracing subscribers, so it can be tested (and fuzzed: see `fuzz/` and `tests/decode_storm.rs`) on its own. The
//! transport reads and writes frames with it; the coordinator (parent) and the worker (child)
//! speak its messages.
//!
//! # Framing
//!
//! A frame is a `u32` little-endian length followed by that many bytes of a postcard body.
//! The reader checks the length against a cap *before* it allocates anything: the cap is
//! [`PRE_AUTH_MAX_FRAME`] until the peer has proved it knows the secret, and [`MAX_FRAME`]
//! after. A body that does not decode is an error, never a panic.
//!
//! # Extension rule
//!
//! Both ends of a connection always run the same build (the handshake checks a build
//! identity), so the rule is about keeping recorded frames and test vectors meaningful:
//!
//! 1. A new message is a new variant appended at the *end* of [`ToWorker`] or
//!    [`FromWorker`] (postcard encodes the variant index, so appending keeps old indices).
//! 2. A new field in an existing message, a reordered variant, or a changed meaning bumps
//!    [`PROTOCOL_VERSION`].
//! 3. Wire types stay non-recursive: postcard has no recursion limit, so a recursive type
//!    would let a hostile frame exhaust the stack. Nested data (span stacks, fields) is a
//!    flat `Vec` of records.

#![forbid(unsafe_code)]

pub mod arena;
mod frame;
mod handshake;
mod log;
mod message;
mod prims;
pub mod ring;
pub mod varint;

pub use frame::{
    HEADER_LEN, MAX_FRAME, PRE_AUTH_MAX_FRAME, WireError, decode, encode, frame_len, read_frame,
};
pub use handshake::{
    ClientHello, ClientProof, NONCE_LEN, SegmentRef, ServerChallenge, Verdict, WorkerConfig,
};
pub use log::{Level, LogField, LogRecord, SpanRecord};
pub use message::{
    Args, FromWorker, Outcome, RunTask, SIDE_REPLY, SharedRun, ToWorker, encode_run,
    encode_run_shared,
};
pub use prims::{BARRIER_ACTION, Kind, PrimOp, PrimReply};

/// The version of the protocol described by this crate. See the extension rule above.
///
/// 2: `FromWorker::Item` carries `elapsed_us`, `SpanRecord` its `level`.
/// 3: `WorkerConfig` names the worker's outcome segment; `FromWorker::Doorbell`.
/// 4: `LogRecord` carries its call's position in the batch (`call`); `WorkerConfig` says
///    whether the worker times its calls (`time_calls`).
/// 5: `WorkerConfig` says how many async calls the worker runs at once
///    (`async_concurrency`) and the task timeout (`task_timeout_ms`);
///    `Outcome::TimedOut`; `FromWorker::CallFor`.
/// 6: a segment may carry arenas after its ring (`arena`); `ToWorker::RunShared`,
///    `Outcome::Shared`.
/// 7: lent permits: `PrimOp::AcquireLent`, `PrimReply::Lent`, `ToWorker::Recall`.
/// 8: TCP: `ToWorker::Heartbeat`, `FromWorker::Heartbeat`, `FromWorker::Node`.
/// 9: direct pipes: `PrimOp::Attach`.
/// 10: primitive operations on a worker's side channel, replies there for [`SIDE_REPLY`]
///    call ids.
/// 11: compact ring entries, and a ring of a power of two of bytes (layout version 2 in
///    `ring::MAGIC`).
pub const PROTOCOL_VERSION: u32 = 11;

/// How often each side of a TCP connection sends a heartbeat.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a side of a TCP connection waits without hearing any frame before it takes the
/// other side for gone: the parent then fails the worker's calls as its death, and a worker
/// exits. Five heartbeats.
pub const SILENCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A xorshift generator from `seed`, for the unit tests' random inputs (the same on every
/// run).
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
