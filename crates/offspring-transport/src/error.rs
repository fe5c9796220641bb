//! The transport's errors.

use offspring_wire::WireError;

/// Why a handshake did not produce a trusted connection.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {theirs}, this build speaks {ours}")]
    Protocol {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The peer named a worker id the parent is not waiting for.
    #[error("no worker with id {0} is expected")]
    UnknownWorker(u64),
    /// The OS reports a different pid for the peer than the child the parent started.
    #[error("peer pid {actual} is not the expected worker pid {expected}")]
    PidMismatch {
        /// The pid of the child the parent started.
        expected: u32,
        /// The pid the OS reports for the peer.
        actual: u32,
    },
    /// The peer's MAC did not verify: it does not know the secret.
    #[error("the peer failed to prove it knows the secret")]
    BadProof,
    /// The secret could not key the MAC; the handshake fails rather than prove anything
    /// with another key.
    #[error("the secret cannot key the handshake's MAC")]
    BadKey,
    /// The peer proved the secret but runs another build or task table.
    #[error("{0}")]
    Mismatch(String),
    /// The parent refused this worker; the reason comes from the parent.
    #[error("the parent refused this worker: {0}")]
    Refused(String),
    /// The peer did not complete the handshake in time.
    #[error("the peer did not complete the handshake in time")]
    TimedOut,
    /// A frame was too large, malformed, or the stream failed.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Errors of the transport outside the handshake.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An I/O error, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The worker environment variables are present but do not parse.
    #[error("malformed offspring worker environment: {0}")]
    BadEnv(String),
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

impl TransportError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }

    /// Whether the OS refused for want of a resource that may be back in a moment (a process
    /// table or memory commit momentarily full: `EAGAIN` on Unix; on Windows, among others,
    /// the `ERROR_INTERNAL_ERROR` Wine answers when many processes start at once), so that
    /// trying again shortly is worth it.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        let Self::Io { source, .. } = self else {
            return false;
        };
        if source.kind() == std::io::ErrorKind::WouldBlock
            || source.kind() == std::io::ErrorKind::Interrupted
        {
            return true;
        }
        // ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY, ERROR_INTERNAL_ERROR,
        // ERROR_NO_SYSTEM_RESOURCES, ERROR_COMMITMENT_LIMIT.
        cfg!(windows) && matches!(source.raw_os_error(), Some(8 | 14 | 1359 | 1450 | 1455))
    }
}
