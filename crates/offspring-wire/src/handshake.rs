//! The messages of the authentication handshake, exchanged before the connection is trusted.
//!
//! The steps (the transport implements them; each frame is capped at
//! [`PRE_AUTH_MAX_FRAME`](crate::PRE_AUTH_MAX_FRAME)):
//!
//! 1. The worker connects and sends [`ClientHello`]: who it claims to be, a fresh nonce, and the
//!    identities of its build and task table. Nothing secret.
//! 2. The parent looks up the one-time secret it gave that worker id and answers
//!    [`ServerChallenge`]: its own nonce and a MAC over both, proving it knows the secret
//!    without revealing it. A process squatting the socket name cannot produce it.
//! 3. The worker checks that MAC in constant time and only then sends [`ClientProof`], its own
//!    MAC over the same transcript (with a different label, so neither proof can be replayed
//!    as the other).
//! 4. The parent checks the proof in constant time, then the build and table identities, and
//!    sends a [`Verdict`]. From here on frames may be as large as [`MAX_FRAME`](crate::MAX_FRAME).

use serde::{Deserialize, Serialize};

/// Bytes in a handshake nonce and in each identity and MAC.
pub const NONCE_LEN: usize = 32;

/// Step 1, worker to parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    /// The worker's [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
    pub protocol: u32,
    /// The id the parent gave this worker when it started it.
    pub worker_id: u64,
    /// The worker's own process id, as it sees it.
    pub pid: u32,
    /// A fresh random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// A digest identifying the executable the worker runs.
    pub build_id: [u8; NONCE_LEN],
    /// A digest of the worker's task table (names and signatures).
    pub table_id: [u8; NONCE_LEN],
}

/// Step 2, parent to worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerChallenge {
    /// The parent's fresh random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// MAC over the transcript with the parent's label.
    pub proof: [u8; NONCE_LEN],
}

/// Step 3, worker to parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientProof {
    /// MAC over the transcript with the worker's label.
    pub proof: [u8; NONCE_LEN],
}

/// Step 4, parent to worker: the end of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The worker is trusted and may serve tasks, configured as given.
    Accepted(WorkerConfig),
    /// The worker proved the secret but cannot serve (for example another build); the reason is
    /// one lowercase sentence the worker prints before it exits.
    Rejected(String),
}

/// What the parent tells an accepted worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// Log filter directives for the worker (the parent's `RUST_LOG`, or `info`), so the
    /// worker does not serialize records the parent would discard.
    pub log_filter: String,
    /// The worker's outcome segment (see [`ring`](crate::ring)), when the parent made one:
    /// the worker maps it and writes its calls' outcomes there instead of in frames.
    pub segment: Option<SegmentRef>,
    /// Whether the worker times each call (the run time in its report, the start time in its
    /// segment's lane): only a parent writing a timeline uses them, and a clock read costs
    /// about as much as a trivial call.
    pub time_calls: bool,
    /// How many calls of an async task the worker runs at once (at least 1). With more than
    /// one, the parent sends an async task's calls in batches of at most this many, and the
    /// worker starts every call of such a batch at once.
    pub async_concurrency: u32,
    /// The pool's task timeout in milliseconds, if it has one: the worker cancels an async
    /// call that runs longer (a sync call it cannot stop: the parent kills the worker).
    pub task_timeout_ms: Option<u64>,
}

/// How a worker finds the segment its parent made for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// The descriptor in the worker's process: an inherited file descriptor on Unix, a
    /// handle the parent duplicated into the worker on Windows.
    pub handle: u64,
    /// The segment's size in bytes.
    pub len: u64,
}
