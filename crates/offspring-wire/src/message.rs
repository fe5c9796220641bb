//! The messages of an authenticated connection between the parent and one worker.

use serde::ser::{SerializeSeq, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::arena::{SharedArg, SharedBytes};
use crate::{LogRecord, PrimOp, PrimReply, WireError};

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
    /// As [`ToWorker::Run`], with some calls' arguments in the worker's to-worker arena
    /// (see [`arena`](crate::arena)) instead of in the frame.
    RunShared(SharedRun),
    /// Another process waits for a permit of semaphore `id`: give back one that is lent to
    /// this process (see [`PrimOp::AcquireLent`](crate::PrimOp::AcquireLent)) now if its task
    /// released it, or else as soon as it does.
    Recall {
        /// The semaphore.
        id: u64,
    },
    /// The parent is alive: sent every [`HEARTBEAT`](crate::HEARTBEAT) on a connection over
    /// TCP, where no lifeline of the OS tells a worker that its parent or the network is gone.
    Heartbeat,
}

/// A batch whose large arguments lie in the to-worker arena.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRun {
    /// The batch; the items named in `shared` are empty here.
    pub run: RunTask,
    /// Where each of those calls' arguments lie, in call order.
    pub shared: Vec<SharedArg>,
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

/// Encodes `ToWorker::Run(RunTask { task_id, name, items })` as one frame straight from
/// borrowed arguments: the bytes are those of [`encode`](crate::encode) of the owned message,
/// without first copying every call's arguments into a [`RunTask`]. The parent keeps its
/// calls' arguments (to run them again elsewhere if their worker dies), so this leaves one
/// copy of a large argument on the way out: into the frame.
///
/// # Errors
///
/// As [`encode`](crate::encode): [`WireError::TooLarge`] when the body would exceed
/// [`MAX_FRAME`](crate::MAX_FRAME).
pub fn encode_run(task_id: u64, name: &str, items: &[&[u8]]) -> Result<Vec<u8>, WireError> {
    crate::encode(&RunRef {
        task_id,
        name,
        items: ItemsRef(items),
    })
}

/// As [`encode_run`] for `ToWorker::RunShared`: `items` holds the calls' arguments, and the
/// calls `shared` names are sent as empty (their arguments are in the arena).
///
/// # Errors
///
/// As [`encode_run`].
pub fn encode_run_shared(
    task_id: u64,
    name: &str,
    items: &[&[u8]],
    shared: &[SharedArg],
) -> Result<Vec<u8>, WireError> {
    let mut kept: Vec<&[u8]> = items.to_vec();
    for arg in shared {
        if let Some(item) = kept.get_mut(arg.index as usize) {
            *item = &[];
        }
    }
    crate::encode(&SharedRunRef {
        run: RunRef {
            task_id,
            name,
            items: ItemsRef(&kept),
        },
        shared,
    })
}

/// [`ToWorker::RunShared`]'s position among `ToWorker`'s variants.
const RUN_SHARED_VARIANT: u32 = 3;

/// Serializes as `ToWorker::RunShared(SharedRun { .. })`, borrowing the arguments.
struct SharedRunRef<'a> {
    run: RunRef<'a>,
    shared: &'a [SharedArg],
}

impl Serialize for SharedRunRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Run<'b>(&'b SharedRunRef<'b>);
        impl Serialize for Run<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut run = serializer.serialize_struct("SharedRun", 2)?;
                run.serialize_field("run", &TaskRef(&self.0.run))?;
                run.serialize_field("shared", self.0.shared)?;
                run.end()
            }
        }
        serializer.serialize_newtype_variant(
            "ToWorker",
            RUN_SHARED_VARIANT,
            "RunShared",
            &Run(self),
        )
    }
}

/// Serializes as a `RunTask`, borrowing the arguments.
struct TaskRef<'b>(&'b RunRef<'b>);

impl Serialize for TaskRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut task = serializer.serialize_struct("RunTask", 3)?;
        task.serialize_field("task_id", &self.0.task_id)?;
        task.serialize_field("name", self.0.name)?;
        task.serialize_field("items", &self.0.items)?;
        task.end()
    }
}

/// [`ToWorker::Run`]'s position among `ToWorker`'s variants: postcard encodes a variant by its
/// index. `encode_run_matches_encode` checks it.
const RUN_VARIANT: u32 = 0;

/// Serializes as `ToWorker::Run(RunTask { .. })`, borrowing the arguments.
struct RunRef<'a> {
    task_id: u64,
    name: &'a str,
    items: ItemsRef<'a>,
}

struct ItemsRef<'a>(&'a [&'a [u8]]);

impl Serialize for RunRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_variant("ToWorker", RUN_VARIANT, "Run", &TaskRef(self))
    }
}

impl Serialize for ItemsRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut items = serializer.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            // As `Args`: a newtype around bytes (serde_bytes), not a sequence of `u8`.
            items.serialize_element(&ArgsRef(item))?;
        }
        items.end()
    }
}

struct ArgsRef<'a>(&'a [u8]);

impl Serialize for ArgsRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct("Args", serde_bytes::Bytes::new(self.0))
    }
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
    /// An operation on a primitive; call id 0 wants no reply. A worker with a side channel
    /// (Linux) sends these and [`FromWorker::CallFor`] there, never on its connection; a call
    /// id with [`SIDE_REPLY`] set is answered there too.
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
    /// Outcomes wait in the worker's ring (see [`ring`](crate::ring)): read them. Sent when
    /// the ring fills up, while the worker waits for room, and a few milliseconds after an
    /// outcome no other frame announced. Every other report (`Started`, `Item`, `Finished`,
    /// `LogsDropped`) announces the ring too: the parent reads it before it handles the frame.
    /// A `Call`, `CallFor` or `Log` does not: the parent handles it first, so what a call did
    /// before it ended is seen before its outcome.
    Doorbell,
    /// An operation on a primitive that a descendant of this worker made: the worker is a
    /// parent too, and passes its workers' operations on to its own parent, which holds the
    /// primitive. Call id 0 wants no reply.
    CallFor {
        /// The worker's id for this call, echoed in [`ToWorker::Reply`].
        call_id: u64,
        /// Who made it: pids from this worker's own worker down to the process that made it
        /// (one pid for a worker of this worker, two for a worker of that one, ...).
        origin: Vec<u32>,
        /// The operation.
        op: PrimOp,
    },
    /// The worker is alive: as [`ToWorker::Heartbeat`], the other way.
    Heartbeat,
    /// Where a worker connected over TCP runs: sent once, first, so that the parent's logs
    /// and errors name the worker's host.
    Node {
        /// The host's name, as the worker's OS gives it.
        host: String,
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
    /// An async call ran past the pool's task timeout: the worker cancelled it (dropped its
    /// future) and lives on.
    TimedOut {
        /// How long it had run, in milliseconds.
        after_ms: u64,
    },
    /// The task returned, and the encoding of its value is in the worker's to-parent arena
    /// (see [`arena`](crate::arena)). The parent turns it into [`Outcome::Value`] before
    /// anything else sees it.
    Shared {
        /// The worker's count of values written to the arena, this one included.
        count: u64,
        /// Where the bytes are.
        bytes: SharedBytes,
    },
}

/// The bit of a [`FromWorker::Call`]'s id that asks for the [`ToWorker::Reply`] on the side
/// channel the call came on, where the calling thread reads it itself, instead of on the
/// connection, where the worker's i/o thread would read it and wake the caller.
pub const SIDE_REPLY: u64 = 1 << 63;

#[cfg(test)]
mod tests {
    use super::*;

    /// The borrowed encoder writes exactly the bytes of the owned message, for empty,
    /// small, and large arguments (lengths whose varint takes one, two and four bytes).
    #[test]
    fn encode_run_matches_encode() -> Result<(), WireError> {
        let large: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let cases: [Vec<Vec<u8>>; 4] = [
            vec![],
            vec![vec![]],
            vec![vec![1, 2, 3], vec![0; 200]],
            vec![large, vec![9], vec![]],
        ];
        for (n, items) in cases.into_iter().enumerate() {
            let task_id = 1 << (n * 15);
            let name = "crate::module::some_task";
            let borrowed: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
            let owned = ToWorker::Run(RunTask {
                task_id,
                name: name.to_owned(),
                items: items.iter().cloned().map(Args).collect(),
            });
            assert_eq!(
                encode_run(task_id, name, &borrowed)?,
                crate::encode(&owned)?,
                "case {n}"
            );
            let shared: Vec<SharedArg> = (0..items.len())
                .step_by(2)
                .map(|index| SharedArg {
                    index: index as u32,
                    bytes: SharedBytes {
                        at: 8 * index as u64,
                        len: 3,
                        sum: 9,
                    },
                })
                .collect();
            let mut kept = items.clone();
            for arg in &shared {
                kept[arg.index as usize].clear();
            }
            let owned = ToWorker::RunShared(SharedRun {
                run: RunTask {
                    task_id,
                    name: name.to_owned(),
                    items: kept.into_iter().map(Args).collect(),
                },
                shared: shared.clone(),
            });
            assert_eq!(
                encode_run_shared(task_id, name, &borrowed, &shared)?,
                crate::encode(&owned)?,
                "shared case {n}"
            );
        }
        Ok(())
    }
}
