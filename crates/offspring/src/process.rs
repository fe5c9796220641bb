//! `Process`: one task in a child process of its own, like Python's `multiprocessing.Process`.

use std::marker::PhantomData;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offspring_coordinator::{BatchContext, BatchSink, Death, Failure, SpawnOptions, WorkerHandle};
use serde::de::DeserializeOwned;

use crate::slot::{Missing, Slot};
use crate::{Error, Result, Task};

/// How long `join` waits for the child to exit once its value is in. The child exits right
/// after it reports; this bound only matters for a child that hangs on its way out.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Starts tasks in child processes of their own.
#[derive(Debug, Clone, Copy)]
pub struct Process;

impl Process {
    /// Starts a child process running `task(args)` and returns a handle to it. The child
    /// runs until the task returns, then exits.
    ///
    /// # Errors
    ///
    /// [`Error::NotInitialized`] when `init()` did not run first; [`Error::Spawn`] when the
    /// child could not be started, exited before connecting, or was refused;
    /// [`Error::Serialization`] when the arguments do not encode; [`Error::NotATask`] when
    /// `task` has no `#[offspring::task]`.
    pub fn spawn<S, T: Task<S>>(task: T, args: T::Args) -> Result<ProcessHandle<T::Output>> {
        spawn_with(None, task, args)
    }
}

pub(crate) fn spawn_with<S, T: Task<S>>(
    program: Option<std::path::PathBuf>,
    _task: T,
    args: T::Args,
) -> Result<ProcessHandle<T::Output>> {
    let name = crate::task_trait::task_name::<T>()?;
    let coordinator = crate::init::coordinator()?;
    let (args, leases) = crate::codec::encode_call(name, None, args)?;
    let worker = coordinator
        .spawn_worker(SpawnOptions {
            program,
            args: crate::init::worker_args(),
            ..SpawnOptions::default()
        })
        .map_err(|e| {
            crate::leases::end(&leases);
            Error::spawn(e)
        })?;
    let slot = Arc::new(Slot::new());
    let sink = OneCall {
        slot: Arc::clone(&slot),
        worker: worker.clone(),
    };
    let task_id = coordinator.next_task_id();
    let context = BatchContext::new(
        task_id,
        tracing::info_span!(target: "offspring::task", "task", task = name, task_id, worker_pid = worker.pid()),
    );
    worker.submit_leased(
        task_id,
        name,
        &args,
        context,
        (Arc::clone(coordinator.registry()), leases),
        Box::new(sink),
    );
    Ok(ProcessHandle {
        worker,
        slot,
        task: name,
        _value: PhantomData,
    })
}

/// What a process's single call reports.
struct Report {
    outcome: std::result::Result<Vec<u8>, Failure>,
    pid: u32,
}

struct OneCall {
    slot: Arc<Slot<Report>>,
    worker: WorkerHandle,
}

impl BatchSink for OneCall {
    fn item(&mut self, _index: usize, outcome: std::result::Result<Vec<u8>, Failure>, pid: u32) {
        self.slot.fill(Report { outcome, pid });
    }

    fn finished(self: Box<Self>, _pid: u32) {
        // One task per process: once it reported, the child may go.
        self.worker.shutdown();
    }

    fn died(self: Box<Self>, death: Death) {
        let failure = match death.misbehaved {
            Some(reason) => Failure::Misbehaved(reason),
            None => Failure::Died {
                status: death.status,
                host: death.host,
            },
        };
        self.slot.fill(Report {
            outcome: Err(failure),
            pid: death.pid,
        });
    }
}

/// A child process started by [`Process::spawn`]. Dropping it detaches: the child runs on, is
/// still reaped, and still dies with the parent.
pub struct ProcessHandle<R> {
    worker: WorkerHandle,
    slot: Arc<Slot<Report>>,
    task: &'static str,
    _value: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ProcessHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("task", &self.task)
            .field("pid", &self.worker.pid())
            .finish_non_exhaustive()
    }
}

impl<R: DeserializeOwned + 'static> ProcessHandle<R> {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.worker.pid()
    }

    /// Whether the child has not exited yet.
    pub fn is_alive(&self) -> bool {
        self.worker.is_alive()
    }

    /// Waits for the task to end and returns its value, then waits (briefly) for the child
    /// to exit. The value is handed out once.
    ///
    /// # Errors
    ///
    /// [`Error::TaskPanicked`], [`Error::WorkerDied`] (with the exit status or signal),
    /// [`Error::Serialization`], or [`Error::AlreadyTaken`] on a second call.
    pub fn join(&self) -> Result<R> {
        self.finish(None)
    }

    /// As [`join`](Self::join), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] while the task is still running (the child is left alone and a
    /// later `join` can still get the value); otherwise as `join`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<R> {
        self.finish(Some(timeout))
    }

    fn finish(&self, timeout: Option<Duration>) -> Result<R> {
        let started = Instant::now();
        let report = self.slot.take(timeout).map_err(|missing| match missing {
            Missing::Timeout => Error::Timeout,
            Missing::Taken => Error::AlreadyTaken {
                task: self.task.to_owned(),
            },
        })?;
        let left = timeout.map_or(EXIT_WAIT, |t| t.saturating_sub(started.elapsed()));
        self.worker.wait_exit(left.min(EXIT_WAIT));
        match report.outcome {
            Ok(bytes) => crate::codec::decode_value(self.task, None, bytes),
            Err(failure) => Err(Error::from_failure(self.task, report.pid, None, failure)),
        }
    }

    /// Asks the child to stop: SIGTERM on Unix, `TerminateProcess` on Windows. A task still
    /// running makes `join` return [`Error::WorkerDied`].
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for platforms where the request can fail.
    pub fn terminate(&self) -> Result<()> {
        self.worker.terminate();
        Ok(())
    }

    /// Kills the child: SIGKILL on Unix, `TerminateProcess` on Windows.
    ///
    /// # Errors
    ///
    /// None today; see [`terminate`](Self::terminate).
    pub fn kill(&self) -> Result<()> {
        self.worker.kill();
        Ok(())
    }

    /// The child's exit status, once it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.worker.exit_status()
    }
}
