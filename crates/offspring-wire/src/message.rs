//! The messages of an authenticated connection between the parent and one worker.

use serde::{Deserialize, Serialize};

use crate::LogRecord;

/// Parent to worker. Append new variants at the end (see the crate's extension rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run one task; the worker answers [`FromWorker::Started`] then [`FromWorker::Finished`].
    Run(RunTask),
    /// Finish the running task, if any, flush, and exit.
    Shutdown,
}

/// One task for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTask {
    /// The parent's id for this run of the task; it comes back in the replies and logs.
    pub task_id: u64,
    /// The task's stable name, looked up in the worker's table.
    pub name: String,
    /// The postcard encoding of the task's arguments.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
}

/// Worker to parent. Append new variants at the end (see the crate's extension rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The task began running on the worker's task thread.
    Started {
        /// The id from [`RunTask::task_id`].
        task_id: u64,
    },
    /// The task ended; the worker is ready for the next one.
    Finished {
        /// The id from [`RunTask::task_id`].
        task_id: u64,
        /// How it ended.
        outcome: Outcome,
    },
    /// A log record emitted in the worker.
    Log(LogRecord),
}

/// How a task ended in the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The task returned; this is the postcard encoding of its value.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The task panicked; the worker caught it and lives on.
    Panicked {
        /// The panic message.
        message: String,
        /// `file:line:column` of the panic, where known.
        location: Option<String>,
    },
    /// The worker has no task under that name.
    UnknownTask,
    /// The arguments did not decode as the task's argument type.
    BadArgs(String),
    /// The task's value could not be encoded.
    BadResult(String),
}
