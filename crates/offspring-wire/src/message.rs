//! The messages of an authenticated connection between the parent and one worker.

use serde::{Deserialize, Serialize};

use crate::{LogRecord, PrimOp, PrimReply};

/// Parent to worker. Append new variants at the end (see the crate's extension rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run a batch of calls of one task; the worker answers [`FromWorker::Started`], one
    /// [`FromWorker::Item`] per call in order, then [`FromWorker::Finished`].
    Run(RunTask),
    /// Finish the running task, if any, flush, and exit.
    Shutdown,
    /// The answer to a [`FromWorker::Call`].
    Reply {
        /// The call's id.
        call_id: u64,
        /// The answer.
        reply: PrimReply,
    },
}

/// A batch of calls of one task for a worker (one call for `apply`, a chunk for `map`). The
/// calls run one after the other; each reports as soon as it ends, so when a worker dies the
/// parent knows exactly which call was running (the first one not reported) and which never
/// started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTask {
    /// The parent's id for this batch; it comes back in the replies and logs.
    pub task_id: u64,
    /// The task's stable name, looked up in the worker's table.
    pub name: String,
    /// The postcard encoding of each call's arguments.
    pub items: Vec<Args>,
}

/// The postcard encoding of one call's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Args(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// Worker to parent. Append new variants at the end (see the crate's extension rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromWorker {
    /// The batch began running on the worker's task thread.
    Started {
        /// The id from [`RunTask::task_id`].
        task_id: u64,
    },
    /// One call of the batch ended.
    Item {
        /// The id from [`RunTask::task_id`].
        task_id: u64,
        /// The call's position in [`RunTask::items`].
        index: u32,
        /// How it ended.
        outcome: Outcome,
        /// How long the call ran in the worker, in microseconds (for timelines: the parent
        /// places the call on its own clock as ending when the report arrives).
        elapsed_us: u64,
    },
    /// Every call of the batch ended; the worker is ready for the next batch.
    Finished {
        /// The id from [`RunTask::task_id`].
        task_id: u64,
    },
    /// A log record emitted in the worker.
    Log(LogRecord),
    /// An operation on a primitive; call id 0 wants no reply.
    Call {
        /// The worker's id for this call, echoed in [`ToWorker::Reply`].
        call_id: u64,
        /// The operation.
        op: PrimOp,
    },
    /// Log records the worker dropped because its forwarding queue was full, counted since
    /// the worker started. Sent before a batch's [`FromWorker::Finished`] when it grew.
    LogsDropped {
        /// The running total.
        total: u64,
    },
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
