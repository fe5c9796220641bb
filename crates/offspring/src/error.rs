//! The facade's error type: what offspring saw go wrong, as data.

use std::process::ExitStatus;
use std::time::Duration;

use offspring_coordinator::{Failure, PoolFailure, SpawnError};

/// `Result<T, offspring::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which way a (de)serialization failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// Encoding the arguments in the parent.
    EncodeArgs,
    /// Decoding the arguments in the worker.
    DecodeArgs,
    /// Encoding the value in the worker.
    EncodeResult,
    /// Decoding the value in the parent.
    DecodeResult,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EncodeArgs => "encode the arguments in the parent",
            Self::DecodeArgs => "decode the arguments in the worker",
            Self::EncodeResult => "encode the result in the worker",
            Self::DecodeResult => "decode the result in the parent",
        })
    }
}

/// What offspring saw go wrong. A task's own `Err` is not one of these: a task returning
/// `Result<T, E>` has that `Result` as its value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task panicked in the worker; the worker survives.
    #[error("task `{task}`{} panicked in worker {pid}: {message}{}", item(.index), at(.location))]
    TaskPanicked {
        /// The task's name.
        task: String,
        /// The worker's pid.
        pid: u32,
        /// The panic message.
        message: String,
        /// `file:line:column` of the panic, where known.
        location: Option<String>,
        /// The input index of the failed call, for `map` and friends.
        index: Option<usize>,
    },
    /// The worker running the task exited or was killed.
    #[error("worker {pid}{} died while running task `{task}`{} ({})", on_host(.host), item(.index), describe_status(.status))]
    WorkerDied {
        /// The task's name.
        task: String,
        /// The worker's pid.
        pid: u32,
        /// Its exit status (code or signal), if it could be collected.
        status: Option<ExitStatus>,
        /// The input index of the failed call, for `map` and friends.
        index: Option<usize>,
        /// The worker's host, for a worker on another machine (started by a launcher such
        /// as [`Slurm`](crate::Slurm)); `None` for a local one.
        host: Option<String>,
    },
    /// The worker running the task broke offspring's protocol (it sent a malformed frame,
    /// or wrote its shared outcome memory in a way no well-behaved worker could) and was
    /// killed and replaced. The call may have run; what it returned is lost, and never
    /// replaced by a wrong value.
    #[error("worker {pid} broke the protocol while running task `{task}`{} and was killed: {reason}", item(.index))]
    WorkerMisbehaved {
        /// The task's name.
        task: String,
        /// The worker's pid.
        pid: u32,
        /// What it did.
        reason: String,
        /// The input index of the failed call, for `map` and friends.
        index: Option<usize>,
    },
    /// A `*_timeout` wait ran out of time; the work is still pending.
    #[error("timed out waiting; the work is still pending")]
    Timeout,
    /// The task ran past the pool's `task_timeout`: a sync call's worker was killed and
    /// replaced; an async call was cancelled by its worker, which lives on (unless it did
    /// not get control back in time: then it was killed too).
    #[error("task `{task}`{} ran longer than {limit:?} in worker {pid}", item(.index))]
    TaskTimedOut {
        /// The task's name.
        task: String,
        /// The worker's pid.
        pid: u32,
        /// The limit.
        limit: Duration,
        /// The input index of the failed call, for `map` and friends.
        index: Option<usize>,
    },
    /// Submitting after `close()`/`terminate()`, or a result lost to `terminate()`.
    #[error("the pool is closed")]
    PoolClosed,
    /// No worker could be started.
    #[error("could not start a worker: {reason}")]
    Spawn {
        /// Why, in one sentence.
        reason: String,
    },
    /// Workers cannot be started because `init()` did not run first in this process.
    #[error("{0}")]
    NotInitialized(&'static str),
    /// A function or closure without `#[offspring::task]` was passed where a task goes;
    /// nothing was sent to a worker.
    #[error("`{function}` is not an offspring task: put #[offspring::task] on its definition")]
    NotATask {
        /// The function's path (its type name).
        function: String,
    },
    /// The worker has no task by that name.
    #[error("task `{task}` is not registered in worker {pid}{}", item(.index))]
    UnknownTask {
        /// The task's name.
        task: String,
        /// The worker's pid.
        pid: u32,
        /// The input index of the failed call, for `map` and friends.
        index: Option<usize>,
    },
    /// Arguments or a value did not (de)serialize.
    #[error("could not {direction} of task `{task}`{}: {message}", item(.index))]
    Serialization {
        /// The task's name.
        task: String,
        /// Which way.
        direction: Direction,
        /// The serializer's message.
        message: String,
        /// The input index of the call, for `map` and friends.
        index: Option<usize>,
    },
    /// A pool's configuration is invalid (for example zero processes).
    #[error("invalid pool configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A primitive could not do what was asked: a party of a barrier died, the other end of a
    /// pipe is closed, a handle names no live object, an item does not (de)serialize.
    #[error("{reason}")]
    Primitive {
        /// What went wrong, in one sentence.
        reason: String,
    },
    /// A shared-memory object could not be made, mapped or decoded: the OS refused it, it
    /// is larger than allowed, or a handle names no live object.
    #[error("{reason}")]
    SharedMemory {
        /// What went wrong, in one sentence.
        reason: String,
    },
    /// The queue was shut down ([`Queue::shutdown`](crate::Queue::shutdown)): a put after
    /// it, or a get once nothing is left (Python's `ShutDown`).
    #[error("the queue is shut down")]
    ShutDown,
    /// The pool's initializer failed (panicked, or its worker died) in several new workers
    /// in a row, and the pool gave up; its calls fail with this.
    #[error("the pool's initializer keeps failing: {reason}")]
    InitializerFailed {
        /// The last failure, in one sentence.
        reason: String,
    },
    /// The pool could not start worker processes several times in a row (the executable
    /// cannot run, exits before connecting, or is refused) and gave up; its calls fail with
    /// this.
    #[error("the pool cannot start workers: {reason}")]
    CannotStartWorkers {
        /// The last failure, in one sentence.
        reason: String,
    },
    /// The value was already handed out by an earlier call.
    #[error("the result of task `{task}` was already taken")]
    AlreadyTaken {
        /// The task's name.
        task: String,
    },
}

fn on_host(host: &Option<String>) -> String {
    host.as_ref()
        .map(|host| format!(" on host {host}"))
        .unwrap_or_default()
}

fn item(index: &Option<usize>) -> String {
    index
        .map(|i| format!(" (input index {i})"))
        .unwrap_or_default()
}

fn at(location: &Option<String>) -> String {
    location
        .as_ref()
        .map(|l| format!(" (at {l})"))
        .unwrap_or_default()
}

/// "exit status 3", "killed by signal 9 (SIGKILL)", "killed by its parent (TerminateProcess)"
/// on Windows, or "exit status unknown".
pub(crate) fn describe_status(status: &Option<ExitStatus>) -> String {
    let Some(status) = status else {
        return "exit status unknown".into();
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    match status.code() {
        // Windows: the codes the parent's `kill` and `terminate` leave (no signals there).
        Some(code) if cfg!(windows) && code as u32 == offspring_transport::sys::EXIT_KILLED => {
            "killed by its parent (TerminateProcess)".into()
        }
        Some(code) if cfg!(windows) && code as u32 == offspring_transport::sys::EXIT_TERMINATED => {
            "terminated by its parent (TerminateProcess)".into()
        }
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

impl Error {
    pub(crate) fn spawn(e: SpawnError) -> Self {
        Self::Spawn {
            reason: e.to_string(),
        }
    }

    pub(crate) fn from_failure(
        task: &str,
        pid: u32,
        index: Option<usize>,
        failure: Failure,
    ) -> Self {
        let task = task.to_owned();
        match failure {
            Failure::Panicked { message, location } => Self::TaskPanicked {
                task,
                pid,
                message,
                location,
                index,
            },
            Failure::Died { status, host } => Self::WorkerDied {
                task,
                pid,
                status,
                index,
                host,
            },
            Failure::UnknownTask => Self::UnknownTask { task, pid, index },
            Failure::BadArgs(message) => Self::Serialization {
                task,
                direction: Direction::DecodeArgs,
                message,
                index,
            },
            Failure::BadResult(message) => Self::Serialization {
                task,
                direction: Direction::EncodeResult,
                message,
                index,
            },
            Failure::Unsendable(message) => Self::Serialization {
                task,
                direction: Direction::EncodeArgs,
                message,
                index,
            },
            Failure::Misbehaved(reason) => Self::WorkerMisbehaved {
                task,
                pid,
                reason,
                index,
            },
            Failure::TimedOut { after } => Self::TaskTimedOut {
                task,
                pid,
                limit: after,
                index,
            },
        }
    }

    /// The error for one call of a pool job.
    pub(crate) fn from_pool(
        task: &str,
        pid: Option<u32>,
        index: Option<usize>,
        failure: PoolFailure,
    ) -> Self {
        let pid_or_zero = pid.unwrap_or_default();
        match failure {
            PoolFailure::Task(failure) => Self::from_failure(task, pid_or_zero, index, failure),
            PoolFailure::TimedOut(limit) => Self::TaskTimedOut {
                task: task.to_owned(),
                pid: pid_or_zero,
                limit,
                index,
            },
            PoolFailure::InitializerFailed(reason) => Self::InitializerFailed { reason },
            PoolFailure::CannotStart(reason) => Self::CannotStartWorkers { reason },
            PoolFailure::Closed => Self::PoolClosed,
        }
    }
}
