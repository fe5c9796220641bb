//! What can go wrong when starting a worker or running a task on one.

use std::process::ExitStatus;
use std::time::Duration;

/// Why a worker could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpawnError {
    /// The coordinator itself could not start (runtime or listener).
    #[error("the coordinator could not start: {0}")]
    Coordinator(String),
    /// The OS could not start the process.
    #[error("could not start a worker process: {0}")]
    Io(String),
    /// The child exited before it connected and authenticated.
    #[error(
        "worker {pid} exited before connecting ({status}); {}",
        offspring_transport::early_exit_hint(status.code())
    )]
    ExitedEarly {
        /// The child's pid.
        pid: u32,
        /// How it exited.
        status: ExitStatus,
    },
    /// The child did not connect within the deadline; it was killed.
    #[error("worker {pid} did not connect within {after:?} and was killed")]
    ConnectTimedOut {
        /// The child's pid.
        pid: u32,
        /// The deadline.
        after: Duration,
    },
    /// The process a launcher started for a worker (a Slurm `srun`) ended before the worker
    /// connected.
    #[error(
        "the {launcher} launch of a worker (process {pid}) ended before the worker connected ({status}); {hint}"
    )]
    LaunchEnded {
        /// The launcher's name.
        launcher: String,
        /// The launcher's process.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// What that usually means, from the launcher.
        hint: String,
    },
    /// The child proved the secret but was refused (another build or task table).
    #[error("worker {pid} was refused: {reason}")]
    Refused {
        /// The child's pid.
        pid: u32,
        /// Why.
        reason: String,
    },
}

fn on_host(host: Option<&str>) -> String {
    host.map(|host| format!(" on host {host}"))
        .unwrap_or_default()
}

/// Why a task produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The task panicked; the worker caught it and lives on.
    Panicked {
        /// The panic message.
        message: String,
        /// Where, if known.
        location: Option<String>,
    },
    /// The worker exited or was killed while the task was assigned to it.
    Died {
        /// Its exit status, if it could be collected in time.
        status: Option<ExitStatus>,
        /// The worker's host, for a remote worker.
        host: Option<String>,
    },
    /// The worker has no task by that name.
    UnknownTask,
    /// The worker could not decode the arguments.
    BadArgs(String),
    /// The worker could not encode the value.
    BadResult(String),
    /// The parent could not send the call (its arguments do not fit in a frame).
    Unsendable(String),
    /// The worker broke the protocol (a malformed frame, or an outcome segment no
    /// well-behaved worker could have written) and was killed; what the call returned, if it
    /// ran, is lost.
    Misbehaved(String),
    /// An async call ran past the task timeout: its worker cancelled it and lives on.
    TimedOut {
        /// How long it had run.
        after: Duration,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Panicked {
                message,
                location: Some(location),
            } => write!(f, "panicked at {location}: {message}"),
            Self::Panicked {
                message,
                location: None,
            } => write!(f, "panicked: {message}"),
            Self::Died {
                status: Some(status),
                host,
            } => write!(f, "worker{} died ({status})", on_host(host.as_deref())),
            Self::Died { status: None, host } => {
                write!(f, "worker{} died", on_host(host.as_deref()))
            }
            Self::UnknownTask => f.write_str("no such task in the worker"),
            Self::BadArgs(e) => write!(f, "arguments did not decode: {e}"),
            Self::BadResult(e) => write!(f, "value did not encode: {e}"),
            Self::Unsendable(e) => write!(f, "arguments cannot be sent: {e}"),
            Self::Misbehaved(e) => write!(f, "the worker broke the protocol: {e}"),
            Self::TimedOut { after } => write!(f, "cancelled by its worker after {after:?}"),
        }
    }
}
