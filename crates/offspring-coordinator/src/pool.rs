//! The pool's scheduler: an actor on the coordinator's runtime that owns a pool's workers and
//! its queue of calls, and decides what runs where.
//!
//! # Scheduling
//!
//! A submission is a *job*: calls of one task, each with its input index, cut into batches of
//! `chunk` calls, fewer when their arguments would not fit in one frame together (a call too
//! large on its own goes alone, and fails alone). An idle worker gets the next batch from the
//! job at the front of the queue; each worker has at most one batch, so no worker holds a
//! second batch while another worker idles (within a batch, calls wait for their turn on their
//! worker). Async calls on a pool with `async_concurrency(n)` are the exception: they go one
//! per batch, and a worker holds up to n of them at once (see `Actor::fill_free_slots`).
//!
//! Single calls (`apply`, `apply_async`: jobs of one call) of the same task queued one behind
//! the other go to a worker together, in one batch, when no other worker is idle: a burst of
//! `apply_async` then costs one round trip per batch, not per call. How many is set by time,
//! not count: as many as the task's calls are expected to run in [`MERGE_BUDGET`] (a moving
//! average of what its batches took, see [`CallTimes`]), at most [`MAX_MERGED`], and one until
//! a call of the task has been timed. So a worker never sits on more than about a millisecond
//! of calls it has not started while another worker has become idle, and slow calls are never
//! put together at all. Merging stops at the first queued job that is not such a call (the
//! queue keeps its order), and is off under `max_tasks_per_child`, where each call is a task
//! of its own. Each call of a merged batch keeps its own job: its value, its failure, its log
//! records (under its job's span) and its timeline slice.
//!
//! A worker reports each call as it ends; when it dies, the call
//! that was running (the first one not reported) fails with the death, or goes back to the
//! front of the queue while it has retries left, and the calls of the batch that never
//! started go back to the front of the queue untouched: only the running call is ever blamed
//! (for async calls running at once, every call that began and did not report).
//!
//! # Workers
//!
//! The actor keeps `processes` workers alive: a dead or retired one (after
//! `max_tasks_per_child` batches) is replaced. A new worker first runs the initializer, if
//! any. [`MAX_START_FAILURES`] consecutive failed starts (the spawn failed, or the
//! initializer panicked or killed its worker) break the pool: every queued and later call
//! fails with the reason, and no more workers are started (no endless respawn loop).
//!
//! # Lifecycle
//!
//! `close` refuses new jobs; once the queue is empty and no batch runs, the workers are
//! shut down, and when all have exited the pool is *drained* (what `join` waits for).
//! `terminate` fails every queued and running call with [`PoolFailure::Closed`], kills the
//! workers, and drains once they are reaped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::coordinator::{lock, wait_for};
#[cfg(feature = "live")]
use crate::live::{Doing, LiveBoard};
use crate::trace::{Timeline, Timelines};
use crate::{
    BatchContext, BatchSink, Coordinator, Death, Failure, LogCounts, SpawnError, SpawnOptions,
    WorkerHandle,
};

/// How long past the task timeout an async call's worker gets to cancel it before it is
/// killed (a call that blocks its worker's runtime never lets it).
pub const ASYNC_TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// Consecutive failed worker starts after which a pool gives up.
pub const MAX_START_FAILURES: u32 = 3;

/// How a pool is set up.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// How many workers to keep.
    pub processes: usize,
    /// A task (name and encoded arguments) each new worker runs before its first batch.
    pub initializer: Option<(String, Vec<u8>)>,
    /// Batches a worker runs before it is replaced (a `map` chunk counts as one).
    pub max_tasks_per_child: Option<u64>,
    /// A call running longer than this is stopped: a sync call by killing its worker, an
    /// async call by its worker cancelling it (the worker is killed only when it has not within
    /// [`ASYNC_TIMEOUT_GRACE`]).
    pub task_timeout: Option<Duration>,
    /// How many times a call whose worker died is run again elsewhere.
    pub retries: u32,
    /// Arguments for worker processes (see `SpawnOptions::args`).
    pub worker_args: Vec<std::ffi::OsString>,
    /// Run this program as the workers instead of the running executable (for tests).
    pub program: Option<std::path::PathBuf>,
    /// Extra environment variables for the workers (test-only switches).
    pub worker_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Workers report in frames, without an outcome segment (see `SpawnOptions`).
    pub frames_only: bool,
    /// A timeline file of this pool's own, written when the pool ends.
    pub timeline: Option<Arc<Timeline>>,
    /// How many calls of an async task a worker runs at once (see
    /// [`JobSpec::concurrent`]); 0 means 1.
    pub async_concurrency: usize,
    /// Keep a live board of the pool for its live view ([`PoolHandle::live_board`]); only
    /// with the `live` feature, and ignored without it.
    pub live: bool,
    /// Start the workers through this launcher, over TCP (see `SpawnOptions::launch`).
    pub launch: Option<Arc<dyn crate::Launch>>,
    /// Where to listen for TCP workers (see `SpawnOptions::listen`).
    pub listen: Option<String>,
}

/// Why a call of a pool produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolFailure {
    /// What the worker reported, or its death.
    Task(Failure),
    /// The call ran past the pool's `task_timeout`; its worker was killed.
    TimedOut(Duration),
    /// The pool was terminated, or closed before the job arrived.
    Closed,
    /// The pool gave up: its initializer failed in [`MAX_START_FAILURES`] new workers in a
    /// row.
    InitializerFailed(String),
    /// The pool gave up: [`MAX_START_FAILURES`] workers in a row could not be started.
    CannotStart(String),
}

/// Which part of a worker's start failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartStep {
    /// Starting the process, or its handshake.
    Spawn,
    /// Running the pool's initializer in it.
    Initializer,
}

/// The end of one call.
#[derive(Debug)]
pub struct CallResult {
    /// The encoded value, or why there is none.
    pub outcome: Result<Vec<u8>, PoolFailure>,
    /// The worker that ran it, if one did.
    pub pid: Option<u32>,
}

/// Receives each call's result, exactly once per call, on the coordinator's thread.
pub trait JobSink: Send + Sync + 'static {
    /// Call `index` (its input index) ended.
    fn deliver(&self, index: usize, result: CallResult);

    /// Several calls ended, in the order they did: as [`deliver`](Self::deliver) of each, which
    /// a sink may do with one lock instead of one per call.
    fn deliver_many(&self, results: Vec<(usize, CallResult)>) {
        for (index, result) in results {
            self.deliver(index, result);
        }
    }

    /// Several calls returned, each its input index and its encoded value (borrowed from
    /// the buffer a read of the worker's ring filled), all run by worker `pid`: as
    /// [`deliver_many`](Self::deliver_many) of each, which a sink may do by decoding each
    /// value where it lies, with no vector per call.
    fn deliver_values(&self, values: &[(usize, &[u8])], pid: u32) {
        self.deliver_many(
            values
                .iter()
                .map(|&(index, value)| {
                    let result = CallResult {
                        outcome: Ok(value.to_vec()),
                        pid: Some(pid),
                    };
                    (index, result)
                })
                .collect(),
        );
    }
}

/// The encoded values of consecutive calls of a batch, in one buffer: what a read of a
/// worker's ring reports in the common case, without a vector per call.
#[derive(Debug, Default)]
struct Values {
    bytes: Vec<u8>,
    /// Where each value ends in `bytes`.
    ends: Vec<usize>,
}

impl Values {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, value: &[u8]) {
        self.bytes.extend_from_slice(value);
        self.ends.push(self.bytes.len());
    }

    /// Value `i`, or nothing past the end.
    fn get(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before]);
        self.ends
            .get(i)
            .and_then(|&end| self.bytes.get(start..end))
            .unwrap_or_default()
    }
}

/// The in-flight leases of a job's calls, by input index. Each ends when its call is
/// delivered (saying whether its worker died) or cancelled; what is left ends when the job
/// is gone.
struct JobLeases {
    registry: Arc<crate::Registry>,
    by_call: Mutex<HashMap<usize, Vec<u64>>>,
}

impl JobLeases {
    fn new(registry: Arc<crate::Registry>) -> Arc<Self> {
        Arc::new(Self {
            registry,
            by_call: Mutex::new(HashMap::new()),
        })
    }

    fn add(&self, leases: Vec<(usize, Vec<u64>)>) {
        let mut by_call = lock(&self.by_call);
        for (index, tokens) in leases {
            if !tokens.is_empty() {
                by_call.insert(index, tokens);
            }
        }
    }

    fn end(&self, index: usize, worker_died: bool) {
        let tokens = lock(&self.by_call).remove(&index);
        if let Some(tokens) = tokens {
            self.registry.end_in_flight(&tokens, worker_died);
        }
    }
}

impl Drop for JobLeases {
    fn drop(&mut self) {
        let all = std::mem::take(&mut *lock(&self.by_call));
        for tokens in all.values() {
            self.registry.end_in_flight(tokens, false);
        }
    }
}

/// A job's sink that ends each call's leases before the call's result goes on, so a handle
/// the call carried is released by the time its caller has the value.
struct LeasedSink {
    inner: Arc<dyn JobSink>,
    leases: Arc<JobLeases>,
}

impl LeasedSink {
    fn wrap(inner: Arc<dyn JobSink>, leases: Arc<JobLeases>) -> Arc<dyn JobSink> {
        Arc::new(Self { inner, leases })
    }
}

/// Whether a call ended because its worker died (or was killed for its timeout).
fn worker_died(result: &CallResult) -> bool {
    matches!(
        result.outcome,
        Err(PoolFailure::Task(Failure::Died { .. })) | Err(PoolFailure::TimedOut(_))
    )
}

impl JobSink for LeasedSink {
    fn deliver(&self, index: usize, result: CallResult) {
        self.leases.end(index, worker_died(&result));
        self.inner.deliver(index, result);
    }

    fn deliver_many(&self, results: Vec<(usize, CallResult)>) {
        for (index, result) in &results {
            self.leases.end(*index, worker_died(result));
        }
        self.inner.deliver_many(results);
    }

    fn deliver_values(&self, values: &[(usize, &[u8])], pid: u32) {
        for &(index, _) in values {
            self.leases.end(index, false);
        }
        self.inner.deliver_values(values, pid);
    }
}

/// Calls of one task to run.
pub struct JobSpec {
    /// The task's stable name.
    pub name: Arc<str>,
    /// Each call's input index and encoded arguments.
    pub items: Vec<(usize, Vec<u8>)>,
    /// Calls per batch sent to a worker.
    pub chunk: usize,
    /// How many of the job's calls a worker runs at once: 1, or the pool's
    /// `async_concurrency` for an async task. Above 1, each call goes alone in a batch of its
    /// own, never merged with others, and a worker holds up to this many such batches.
    pub concurrent: usize,
    /// Whether the task is an `async fn`: its worker cancels a call that runs past the task
    /// timeout, and is killed only if it has not within [`ASYNC_TIMEOUT_GRACE`].
    pub is_async: bool,
    /// Where results go.
    pub sink: Arc<dyn JobSink>,
    /// The job's span (see [`PoolHandle::job_span`]); ignored for more calls of a job
    /// already submitted.
    pub span: tracing::Span,
    /// The in-flight lease tokens the handles inside each call's arguments took, by input
    /// index (see the registry's module docs): the scheduler ends them as each call is
    /// delivered, cancelled or dropped, and at once when the pool refuses the job.
    pub leases: Vec<(usize, Vec<u64>)>,
}

impl std::fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSpec")
            .field("name", &self.name)
            .field("items", &self.items.len())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

/// A pool's counters, as last updated by its scheduler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Calls waiting for a worker.
    pub queued: u64,
    /// Calls sent to a worker and not yet reported.
    pub running: u64,
    /// Calls that returned a value.
    pub done: u64,
    /// Calls that failed (panic, death, timeout, closed).
    pub failed: u64,
    /// Workers started to replace one that died or retired.
    pub restarted: u64,
    /// Workers started in all.
    pub spawned: u64,
    /// Log records the pool's workers forwarded to the parent (sent and received, whether or
    /// not the parent's subscriber kept them).
    pub logs_forwarded: u64,
    /// Log records the pool's workers dropped because forwarding fell behind.
    pub logs_dropped: u64,
    /// Workers that died while one of their calls was running (not yet reported), whatever
    /// the cause: a crash, a kill from outside, or the pool's own kill after `task_timeout`.
    /// Each such death blames exactly the call that was running (every call that began, for
    /// async calls running at once): it fails with the death (or its timeout), or is run
    /// again while retries remain. Deaths of idle workers are not counted here.
    pub died_running: u64,
    /// Batches sent to workers: a `map` chunk is one, and so are single calls (`apply`,
    /// `apply_async`) that went to a worker together. Fewer batches than calls means the
    /// per-batch round trip was shared.
    pub batches: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    running: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    restarted: AtomicU64,
    spawned: AtomicU64,
    died_running: AtomicU64,
    batches: AtomicU64,
}

struct PoolShared {
    id: u64,
    counters: Counters,
    logs: Arc<LogCounts>,
    closed: AtomicBool,
    next_job: AtomicU64,
    drained: Mutex<bool>,
    drained_cv: Condvar,
    /// Pids of the workers that ran a batch and have not been seen to exit.
    serving: Mutex<Vec<u32>>,
    /// The registry that holds the leases of handles in flight in calls' arguments.
    registry: Arc<crate::Registry>,
}

impl PoolShared {
    fn counters(&self) -> PoolCounters {
        let c = &self.counters;
        PoolCounters {
            queued: c.queued.load(Ordering::Relaxed),
            running: c.running.load(Ordering::Relaxed),
            done: c.done.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            restarted: c.restarted.load(Ordering::Relaxed),
            spawned: c.spawned.load(Ordering::Relaxed),
            logs_forwarded: self.logs.forwarded.load(Ordering::Relaxed),
            logs_dropped: self.logs.dropped.load(Ordering::Relaxed),
            died_running: c.died_running.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
        }
    }
}

/// A handle to a pool's scheduler. Clones share it; the scheduler lives until it is
/// terminated or drained after `close`.
#[derive(Clone)]
pub struct PoolHandle {
    events: mpsc::UnboundedSender<ActorEvent>,
    shared: Arc<PoolShared>,
    #[cfg(feature = "live")]
    live: Option<Arc<LiveBoard>>,
}

impl std::fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolHandle")
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

/// The id of a submitted job, for [`PoolHandle::submit_as`] and [`PoolHandle::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobId(u64);

enum ActorEvent {
    Submit(JobId, JobSpec),
    Cancel(JobId),
    Close,
    Terminate,
    Spawned(Result<WorkerHandle, SpawnError>),
    Exited(u64),
    /// A worker's batch (by its task id) began.
    Started {
        worker: u64,
        task_id: u64,
    },
    /// Calls of a worker's batch that reported, in order.
    Items {
        worker: u64,
        task_id: u64,
        items: Vec<(usize, Result<Vec<u8>, Failure>)>,
    },
    /// Calls `first..` of a worker's batch returned these values, in order.
    Values {
        worker: u64,
        task_id: u64,
        first: usize,
        values: Values,
    },
    Finished {
        worker: u64,
        task_id: u64,
    },
    Died {
        worker: u64,
        task_id: u64,
        death: Death,
    },
    InitDone {
        worker: u64,
        error: Option<String>,
    },
    Tick,
}

impl PoolHandle {
    /// Starts a pool's scheduler on the coordinator and begins starting its workers.
    pub fn start(coordinator: &'static Coordinator, config: PoolConfig) -> Self {
        static NEXT_POOL: AtomicU64 = AtomicU64::new(1);
        let (events, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(PoolShared {
            id: NEXT_POOL.fetch_add(1, Ordering::Relaxed),
            counters: Counters::default(),
            logs: Arc::default(),
            closed: AtomicBool::new(false),
            next_job: AtomicU64::new(1),
            drained: Mutex::new(false),
            drained_cv: Condvar::new(),
            serving: Mutex::new(Vec::new()),
            registry: Arc::clone(coordinator.registry()),
        });
        if let Some(timeout) = config.task_timeout {
            let ticks = events.clone();
            let period = (timeout / 10).clamp(Duration::from_millis(5), Duration::from_millis(100));
            coordinator.runtime().spawn(async move {
                let mut interval = tokio::time::interval(period);
                while ticks.send(ActorEvent::Tick).is_ok() {
                    interval.tick().await;
                }
            });
        }
        #[cfg(feature = "live")]
        let live = config.live.then(|| {
            let counted = Arc::clone(&shared);
            LiveBoard::new(
                shared.id,
                config.processes,
                Box::new(move || counted.counters()),
            )
        });
        let actor = Actor {
            #[cfg(feature = "live")]
            live: live.clone(),
            coordinator,
            timelines: Timelines::new(coordinator.timeline(), config.timeline.as_ref()),
            config,
            events: events.clone(),
            shared: Arc::clone(&shared),
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            workers: HashMap::new(),
            starting: 0,
            next_worker: 1,
            closed: false,
            terminated: false,
            broken: None,
            start_failures: 0,
            times: CallTimes::default(),
        };
        coordinator.runtime().spawn(actor.run(rx));
        Self {
            events,
            shared,
            #[cfg(feature = "live")]
            live,
        }
    }

    /// The pool's live board, when it was started with one ([`PoolConfig::live`]).
    #[cfg(feature = "live")]
    pub fn live_board(&self) -> Option<&Arc<LiveBoard>> {
        self.live.as_ref()
    }

    /// Submits a job. A closed pool gives the job back.
    ///
    /// # Errors
    ///
    /// The job itself when the pool is closed or terminated.
    pub fn submit(&self, job: JobSpec) -> Result<JobId, Box<JobSpec>> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(self.refuse(job));
        }
        let id = self.reserve();
        self.submit_as(id, job)?;
        Ok(id)
    }

    /// A fresh job id, for a job submitted in parts with [`PoolHandle::submit_as`].
    pub fn reserve(&self) -> JobId {
        JobId(self.shared.next_job.fetch_add(1, Ordering::Relaxed))
    }

    /// Submits calls under a job id: the first part of a job, or more calls of it (`imap`
    /// feeds its job as the consumer makes room).
    ///
    /// # Errors
    ///
    /// The job itself when the pool is closed or terminated.
    pub fn submit_as(&self, id: JobId, job: JobSpec) -> Result<(), Box<JobSpec>> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(self.refuse(job));
        }
        self.shared
            .counters
            .queued
            .fetch_add(job.items.len() as u64, Ordering::Relaxed);
        match self.events.send(ActorEvent::Submit(id, job)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(ActorEvent::Submit(_, job))) => Err(self.refuse(job)),
            // Only a Submit was sent, so only a Submit can come back.
            Err(_) => Ok(()),
        }
    }

    /// A job the pool will not run: its leases end now, and it goes back without them.
    fn refuse(&self, mut job: JobSpec) -> Box<JobSpec> {
        for (_, tokens) in std::mem::take(&mut job.leases) {
            self.shared.registry.end_in_flight(&tokens, false);
        }
        Box::new(job)
    }

    /// Drops the calls of a job that have not started; they are never delivered.
    pub fn cancel(&self, id: JobId) {
        let _ = self.events.send(ActorEvent::Cancel(id));
    }

    /// Refuses new jobs; queued and running calls still finish, then the workers exit.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = self.events.send(ActorEvent::Close);
    }

    /// Fails every queued and running call with [`PoolFailure::Closed`] and kills the
    /// workers.
    pub fn terminate(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = self.events.send(ActorEvent::Terminate);
    }

    /// Whether `close` or `terminate` was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Waits until the pool is drained (closed, every call delivered, every worker exited);
    /// `false` if `timeout` passed first.
    pub fn wait_drained(&self, timeout: Option<Duration>) -> bool {
        let drained = lock(&self.shared.drained);
        *wait_for(&self.shared.drained_cv, drained, timeout, |drained| {
            !*drained
        })
    }

    /// The pool's counters.
    pub fn counters(&self) -> PoolCounters {
        self.shared.counters()
    }

    /// Pids of the workers that have run a batch and are not known to have exited: connected
    /// and initialized, so killing one is a worker's death, never a failed start (tests use
    /// it to pick victims).
    pub fn serving_pids(&self) -> Vec<u32> {
        lock(&self.shared.serving).clone()
    }

    /// This pool's number, unique in the process (shown in logs and timelines).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The span a job's story is told in: made in the caller's thread, so it is a child of
    /// the caller's current span. Worker log records of the job's calls appear under it.
    pub fn job_span(&self, id: JobId, name: &str, calls: usize) -> tracing::Span {
        tracing::info_span!(target: "offspring::task", "task", task = name, task_id = id.0, pool = self.shared.id, calls)
    }
}

struct Pending {
    index: usize,
    args: Vec<u8>,
    attempts: u32,
}

impl Drop for Pending {
    /// A call done with its large arguments leaves their buffer for the next large value
    /// that comes back through an arena.
    fn drop(&mut self) {
        if self.args.capacity() >= offspring_wire::arena::MIN_SHARED {
            crate::worker::keep_spare(std::mem::take(&mut self.args));
        }
    }
}

struct Job {
    name: Arc<str>,
    pending: VecDeque<Pending>,
    chunk: usize,
    /// See [`JobSpec::concurrent`].
    concurrent: usize,
    /// See [`JobSpec::is_async`].
    is_async: bool,
    sink: Arc<dyn JobSink>,
    /// The in-flight leases of its calls, once a part of it carried any (`sink` then ends
    /// them as it delivers).
    leases: Option<Arc<JobLeases>>,
    /// Calls submitted and not yet delivered (pending or running).
    outstanding: usize,
    span: tracing::Span,
    submitted: Instant,
    /// Calls submitted in all, and how many failed.
    calls: usize,
    failed: usize,
}

/// Calls of one task on their way to one worker, or running there.
struct Batch {
    /// The batch's id on its worker.
    task_id: u64,
    name: Arc<str>,
    /// Which job each call belongs to: runs of calls, by the position of each run's first
    /// call. One run for a chunk of a job; several for single calls of several jobs put
    /// together (see [`Actor::next_batch`]).
    parts: Vec<Part>,
    items: Vec<Pending>,
    reported: usize,
    since: Instant,
    /// When the worker said the batch began (for the task's [`CallTimes`]).
    began: Option<Instant>,
    timed_out: bool,
    /// Whether the worker runs its calls at once (an async task's, see
    /// [`JobSpec::concurrent`]): then every call not reported when it dies was running.
    concurrent: bool,
    /// Whether its worker cancels its calls at the task timeout (see [`JobSpec::is_async`]).
    is_async: bool,
}

/// Results of calls of one job, for its sink.
type Delivery = (JobId, Arc<dyn JobSink>, Vec<(usize, CallResult)>);

/// Values of calls of one job, each with its input index, for its sink.
type ValueDelivery<'a> = (JobId, Arc<dyn JobSink>, Vec<(usize, &'a [u8])>);

/// A run of a batch's calls that belong to one job.
struct Part {
    start: usize,
    job: JobId,
    sink: Arc<dyn JobSink>,
}

impl Batch {
    /// The run call `index` belongs to.
    fn part(&self, index: usize) -> &Part {
        part_at(&self.parts, index)
    }
}

/// The run of `parts` that call `index` belongs to.
fn part_at(parts: &[Part], index: usize) -> &Part {
    let after = parts.partition_point(|part| part.start <= index);
    // `parts` is never empty and its first run starts at 0, so `after` is at least 1.
    &parts[after.saturating_sub(1)]
}

/// How long a call of each task takes, as the parent sees it (a batch's time from its start
/// to its end, over its calls): a moving average, which sizes batches of single calls.
#[derive(Default)]
struct CallTimes(HashMap<Arc<str>, f64>);

impl CallTimes {
    /// Weight of the newest batch in the average.
    const WEIGHT: f64 = 0.3;

    fn record(&mut self, name: &Arc<str>, batch: Duration, calls: usize) {
        let per_call = batch.as_secs_f64() / calls.max(1) as f64;
        self.0
            .entry(Arc::clone(name))
            .and_modify(|average| *average += Self::WEIGHT * (per_call - *average))
            .or_insert(per_call);
    }

    /// How many single calls of task `name` may go to a worker together: as many as are
    /// expected to run within [`MERGE_BUDGET`], at most [`MAX_MERGED`]; one until a call of
    /// the task has been timed.
    fn merge_limit(&self, name: &str) -> usize {
        match self.0.get(name) {
            Some(&per_call) if per_call > 0.0 => {
                let fit = MERGE_BUDGET.as_secs_f64() / per_call;
                (fit as usize).clamp(1, MAX_MERGED)
            }
            Some(_) => MAX_MERGED,
            None => 1,
        }
    }
}

/// The most work, in expected run time, that single calls put together in one batch may
/// hold: the longest a worker can sit on calls it has not started while another worker has
/// become idle.
const MERGE_BUDGET: Duration = Duration::from_millis(1);

/// The most single calls in one batch.
const MAX_MERGED: usize = 256;

enum SlotState {
    Initializing,
    Idle,
    /// Running one batch, or, for calls run at once (an async task's), up to the pool's
    /// `async_concurrency` batches of one call each.
    Busy(Vec<Batch>),
    Retiring,
}

struct Slot {
    handle: WorkerHandle,
    state: SlotState,
    batches: u64,
}

struct Actor {
    #[cfg(feature = "live")]
    live: Option<Arc<LiveBoard>>,
    coordinator: &'static Coordinator,
    timelines: Timelines,
    config: PoolConfig,
    events: mpsc::UnboundedSender<ActorEvent>,
    shared: Arc<PoolShared>,
    jobs: HashMap<JobId, Job>,
    queue: VecDeque<JobId>,
    workers: HashMap<u64, Slot>,
    starting: usize,
    next_worker: u64,
    closed: bool,
    terminated: bool,
    broken: Option<PoolFailure>,
    start_failures: u32,
    times: CallTimes,
}

/// Forwards a worker's reports on one batch to the pool's actor: the calls read together
/// (one drain of the worker's ring, or one frame) as one event.
struct CallReports {
    worker: u64,
    task_id: u64,
    events: mpsc::UnboundedSender<ActorEvent>,
    /// Reports held back until the next flush, in order: a run of values from call
    /// `first`, or (never both at once) other reports.
    items: Vec<(usize, Result<Vec<u8>, Failure>)>,
    first: usize,
    values: Values,
}

impl CallReports {
    fn new(worker: u64, task_id: u64, events: mpsc::UnboundedSender<ActorEvent>) -> Self {
        Self {
            worker,
            task_id,
            events,
            items: Vec::new(),
            first: 0,
            values: Values::default(),
        }
    }

    fn flush_values(&mut self) {
        if self.values.len() > 0 {
            // The next read is likely as long as this one.
            let next = Values {
                bytes: Vec::with_capacity(self.values.bytes.len()),
                ends: Vec::with_capacity(self.values.len()),
            };
            let _ = self.events.send(ActorEvent::Values {
                worker: self.worker,
                task_id: self.task_id,
                first: self.first,
                values: std::mem::replace(&mut self.values, next),
            });
        }
    }

    fn flush_items(&mut self) {
        if !self.items.is_empty() {
            let next = Vec::with_capacity(self.items.len());
            let _ = self.events.send(ActorEvent::Items {
                worker: self.worker,
                task_id: self.task_id,
                items: std::mem::replace(&mut self.items, next),
            });
        }
    }
}

impl BatchSink for CallReports {
    fn started(&mut self, _pid: u32) {
        let _ = self.events.send(ActorEvent::Started {
            worker: self.worker,
            task_id: self.task_id,
        });
    }

    fn item(&mut self, index: usize, outcome: Result<Vec<u8>, Failure>, _pid: u32) {
        self.flush_values();
        self.items.push((index, outcome));
    }

    fn value(&mut self, index: usize, value: &[u8], _pid: u32) {
        self.flush_items();
        if self.values.len() > 0 && self.first + self.values.len() != index {
            self.flush_values();
        }
        if self.values.len() == 0 {
            self.first = index;
        }
        self.values.push(value);
    }

    fn flush(&mut self) {
        // At most one of the two holds anything.
        self.flush_items();
        self.flush_values();
    }

    fn finished(mut self: Box<Self>, _pid: u32) {
        self.flush();
        let _ = self.events.send(ActorEvent::Finished {
            worker: self.worker,
            task_id: self.task_id,
        });
    }

    fn died(mut self: Box<Self>, death: Death) {
        self.flush();
        let _ = self.events.send(ActorEvent::Died {
            worker: self.worker,
            task_id: self.task_id,
            death,
        });
    }
}

/// Tells the pool's actor how a new worker's initializer ended: once, with the failure if
/// it failed or its worker died.
struct InitReports {
    worker: u64,
    events: mpsc::UnboundedSender<ActorEvent>,
    error: Option<String>,
}

impl BatchSink for InitReports {
    fn started(&mut self, _pid: u32) {}

    fn item(&mut self, _index: usize, outcome: Result<Vec<u8>, Failure>, _pid: u32) {
        if let Err(failure) = outcome {
            self.error = Some(describe(&failure));
        }
    }

    fn finished(self: Box<Self>, _pid: u32) {
        let _ = self.events.send(ActorEvent::InitDone {
            worker: self.worker,
            error: self.error,
        });
    }

    fn died(self: Box<Self>, death: Death) {
        let failure = match death.misbehaved {
            Some(reason) => Failure::Misbehaved(reason),
            None => Failure::Died {
                status: death.status,
                host: death.host,
            },
        };
        let _ = self.events.send(ActorEvent::InitDone {
            worker: self.worker,
            error: Some(describe(&failure)),
        });
    }
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Panicked { message, .. } => format!("the initializer panicked: {message}"),
        Failure::Died { status, .. } => match status {
            Some(status) => format!("the initializer's worker died ({status})"),
            None => "the initializer's worker died".to_owned(),
        },
        Failure::UnknownTask => "the initializer is not a registered task".to_owned(),
        Failure::BadArgs(e) => format!("the initializer's arguments did not decode: {e}"),
        Failure::BadResult(e) => format!("the initializer's value did not encode: {e}"),
        Failure::Unsendable(e) => format!("the initializer's arguments cannot be sent: {e}"),
        Failure::Misbehaved(e) => format!("the initializer's worker broke the protocol: {e}"),
        Failure::TimedOut { after } => format!("the initializer ran past {after:?}"),
    }
}

/// Room left in a `Run` frame for its envelope: the message tag, the batch id, the task
/// name's length prefix and the item count, each at most a 10-byte varint. Generous on purpose.
const RUN_ENVELOPE: usize = 64;

/// Room per call for its length prefix (a varint of at most 10 bytes).
const CALL_ENVELOPE: usize = 10;

/// How many of the calls at the front of `pending` go into the next batch: at most `chunk`,
/// and no more than fit in one frame together. At least one, so a call too large on its own
/// is sent alone and fails alone (the worker's actor reports it as unsendable).
fn batch_len(name: &str, pending: &VecDeque<Pending>, chunk: usize) -> usize {
    let budget = offspring_wire::MAX_FRAME as usize;
    let mut used = RUN_ENVELOPE + name.len();
    let mut take = 0;
    for call in pending.iter().take(chunk) {
        used += call.args.len() + CALL_ENVELOPE;
        if take > 0 && used > budget {
            break;
        }
        take += 1;
    }
    take.max(1).min(pending.len())
}

fn bump(counter: &AtomicU64, delta: i64) {
    if delta >= 0 {
        counter.fetch_add(delta as u64, Ordering::Relaxed);
    } else {
        counter.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

impl Actor {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<ActorEvent>) {
        self.maintain();
        while let Some(event) = events.recv().await {
            self.handle(event);
            if self.is_drained() {
                // Stop: dropping the receiver makes later submissions fail at the sender, where
                // the facade reports them as closed.
                self.timelines.each(Timeline::write_logged);
                self.live_drained();
                *lock(&self.shared.drained) = true;
                self.shared.drained_cv.notify_all();
                return;
            }
        }
    }

    fn is_drained(&self) -> bool {
        (self.closed || self.terminated)
            && self.workers.is_empty()
            && self.starting == 0
            && self.queue.is_empty()
    }

    fn handle(&mut self, event: ActorEvent) {
        match event {
            ActorEvent::Submit(id, job) => self.submit(id, job),
            ActorEvent::Cancel(id) => self.cancel(id),
            ActorEvent::Close => {
                self.closed = true;
                self.maybe_retire_idle();
                self.live_all();
            }
            ActorEvent::Terminate => {
                self.terminate();
                self.live_all();
            }
            ActorEvent::Spawned(result) => self.spawned(result),
            ActorEvent::Exited(worker) => {
                if let Some(slot) = self.workers.get(&worker)
                    && matches!(slot.state, SlotState::Idle | SlotState::Retiring)
                {
                    let died = matches!(slot.state, SlotState::Idle) && !self.closed;
                    if died {
                        // An idle worker died (killed from outside): replace it.
                        bump(&self.shared.counters.restarted, 1);
                    }
                    if let Some(slot) = self.workers.remove(&worker) {
                        self.forget_serving(slot.handle.pid());
                        self.live_ended(worker, died, false, || match slot.handle.exit_status() {
                            Some(status) if died => format!("died while idle ({status})"),
                            Some(status) => format!("exited ({status})"),
                            None => "exited".to_owned(),
                        });
                    }
                    self.maintain();
                    self.dispatch();
                }
            }
            ActorEvent::Started { worker, task_id } => {
                if let Some((batch, _)) = self.batch_mut(worker, task_id) {
                    let now = Instant::now();
                    batch.since = now;
                    batch.began = Some(now);
                }
            }
            ActorEvent::Items {
                worker,
                task_id,
                items,
            } => self.items(worker, task_id, items),
            ActorEvent::Values {
                worker,
                task_id,
                first,
                values,
            } => self.values(worker, task_id, first, &values),
            ActorEvent::Finished { worker, task_id } => self.finished(worker, task_id),
            ActorEvent::Died {
                worker,
                task_id,
                death,
            } => self.died(worker, task_id, &death),
            ActorEvent::InitDone { worker, error } => self.init_done(worker, error),
            ActorEvent::Tick => self.tick(),
        }
    }

    fn deliver(&self, sink: &Arc<dyn JobSink>, index: usize, result: CallResult) {
        if result.outcome.is_ok() {
            bump(&self.shared.counters.done, 1);
        } else {
            bump(&self.shared.counters.failed, 1);
        }
        sink.deliver(index, result);
    }

    fn fail_job_items(
        &self,
        sink: &Arc<dyn JobSink>,
        items: impl IntoIterator<Item = (usize, Vec<u8>)>,
        failure: &PoolFailure,
    ) {
        for (index, _) in items {
            bump(&self.shared.counters.queued, -1);
            self.deliver(
                sink,
                index,
                CallResult {
                    outcome: Err(failure.clone()),
                    pid: None,
                },
            );
        }
    }

    fn submit(&mut self, id: JobId, mut spec: JobSpec) {
        if self.terminated || self.broken.is_some() {
            let failure = match &self.broken {
                Some(failure) => failure.clone(),
                None => PoolFailure::Closed,
            };
            for (_, tokens) in &spec.leases {
                self.shared.registry.end_in_flight(tokens, false);
            }
            self.fail_job_items(&spec.sink, spec.items, &failure);
            return;
        }
        let leases = std::mem::take(&mut spec.leases);
        let count = spec.items.len();
        tracing::debug!(target: "offspring::task", parent: &spec.span, calls = count, "queued");
        let pending = spec.items.into_iter().map(|(index, args)| Pending {
            index,
            args,
            attempts: 0,
        });
        match self.jobs.get_mut(&id) {
            Some(job) => {
                if !leases.is_empty() {
                    let table = job.leases.get_or_insert_with(|| {
                        let table = JobLeases::new(Arc::clone(&self.shared.registry));
                        job.sink = LeasedSink::wrap(Arc::clone(&job.sink), Arc::clone(&table));
                        table
                    });
                    table.add(leases);
                }
                job.pending.extend(pending);
                job.outstanding += count;
                job.calls += count;
                // More calls of a job (`imap` feeds its job this way): queued unless it is.
                if !self.queue.contains(&id) {
                    self.queue.push_back(id);
                }
            }
            None => {
                // A new job is in no queue yet: no scan (a burst of `apply_async` queues
                // thousands of jobs, and a scan each would be quadratic).
                self.queue.push_back(id);
                let (sink, table) = if leases.is_empty() {
                    (spec.sink, None)
                } else {
                    let table = JobLeases::new(Arc::clone(&self.shared.registry));
                    table.add(leases);
                    (LeasedSink::wrap(spec.sink, Arc::clone(&table)), Some(table))
                };
                self.jobs.insert(
                    id,
                    Job {
                        name: spec.name,
                        pending: pending.collect(),
                        chunk: spec.chunk.max(1),
                        concurrent: spec.concurrent.max(1),
                        is_async: spec.is_async,
                        sink,
                        leases: table,
                        outstanding: count,
                        span: spec.span,
                        submitted: Instant::now(),
                        calls: count,
                        failed: 0,
                    },
                );
            }
        }
        self.dispatch();
    }

    fn cancel(&mut self, id: JobId) {
        if let Some(job) = self.jobs.get_mut(&id) {
            let dropped = job.pending.len();
            if let Some(leases) = &job.leases {
                for call in &job.pending {
                    leases.end(call.index, false);
                }
            }
            job.pending.clear();
            job.outstanding -= dropped;
            bump(&self.shared.counters.queued, -(dropped as i64));
            if job.outstanding == 0 {
                self.jobs.remove(&id);
            }
        }
        self.queue.retain(|queued| *queued != id);
        self.maybe_retire_idle();
    }

    /// Gives idle workers the next batches.
    fn dispatch(&mut self) {
        let idle: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, slot)| matches!(slot.state, SlotState::Idle))
            .map(|(key, _)| *key)
            .collect();
        let count = idle.len();
        for (position, worker) in idle.into_iter().enumerate() {
            // Single calls go together only while no other worker is idle (see `next_batch`).
            let others_idle = position + 1 < count;
            let Some(batch) = self.next_batch(!others_idle) else {
                break;
            };
            self.send(worker, batch);
        }
        self.fill_free_slots();
        self.maybe_retire_idle();
    }

    /// Workers running calls at once that have free slots get more such calls, one at a
    /// time round the workers, while the job at the front of the queue is one of them (the
    /// queue keeps its order: a sync job at the front waits for a worker with nothing
    /// running, and the calls behind it wait with it, so neither kind starves the other).
    fn fill_free_slots(&mut self) {
        let limit = self.config.async_concurrency;
        if limit <= 1 {
            return;
        }
        // A worker due to retire takes no more calls than its remaining count.
        let retire_at = self.config.max_tasks_per_child;
        loop {
            // Jobs with nothing left to send leave the front first.
            while let Some(id) = self.queue.front() {
                match self.jobs.get(id) {
                    Some(job) if !job.pending.is_empty() => break,
                    _ => {
                        self.queue.pop_front();
                    }
                }
            }
            let front_concurrent = self
                .queue
                .front()
                .and_then(|id| self.jobs.get(id))
                .is_some_and(|job| job.concurrent > 1);
            if !front_concurrent {
                return;
            }
            let open: Vec<u64> = self
                .workers
                .iter()
                .filter(|(_, slot)| match &slot.state {
                    SlotState::Busy(batches) => {
                        batches.len() < limit
                            && batches.iter().all(|b| b.concurrent)
                            && retire_at
                                .is_none_or(|max| slot.batches + (batches.len() as u64) < max)
                    }
                    _ => false,
                })
                .map(|(key, _)| *key)
                .collect();
            if open.is_empty() {
                return;
            }
            for worker in open {
                let front_concurrent = self
                    .queue
                    .front()
                    .and_then(|id| self.jobs.get(id))
                    .is_some_and(|job| job.concurrent > 1 && !job.pending.is_empty());
                if !front_concurrent {
                    break;
                }
                let Some(batch) = self.next_batch(false) else {
                    return;
                };
                self.send(worker, batch);
            }
        }
    }

    /// The next batch for an idle worker: a chunk of the job at the front of the queue, or,
    /// when `merge` (no other worker is idle) and that job is a single call (`apply`,
    /// `apply_async`), it and the single calls of the same task queued right behind it, as
    /// many as [`CallTimes::merge_limit`] allows and one frame holds. Merging stops at the
    /// first job that is not such a call, so the queue keeps its order. A worker never holds
    /// more than about [`MERGE_BUDGET`] of merged calls it has not started, and never while
    /// another worker was idle when the batch was made; with `max_tasks_per_child` calls are
    /// never merged (each is a task of its own there).
    fn next_batch(&mut self, merge: bool) -> Option<Batch> {
        while let Some(&id) = self.queue.front() {
            let Some(job) = self.jobs.get_mut(&id) else {
                self.queue.pop_front();
                continue;
            };
            if job.pending.is_empty() {
                self.queue.pop_front();
                continue;
            }
            // A call run at once with others (an async task's) goes alone, so it reports
            // the moment it ends and a worker with a free slot takes the next.
            let concurrent = job.concurrent > 1;
            let chunk = if concurrent { 1 } else { job.chunk };
            let take = batch_len(&job.name, &job.pending, chunk);
            let items: Vec<Pending> = job.pending.drain(..take).collect();
            let single = job.calls == 1 && !concurrent;
            let mut batch = Batch {
                task_id: 0,
                name: Arc::clone(&job.name),
                parts: vec![Part {
                    start: 0,
                    job: id,
                    sink: Arc::clone(&job.sink),
                }],
                items,
                reported: 0,
                since: Instant::now(),
                began: None,
                timed_out: false,
                concurrent,
                is_async: job.is_async,
            };
            if job.pending.is_empty() {
                self.queue.pop_front();
            }
            if merge && single && self.config.max_tasks_per_child.is_none() {
                self.merge_singles(&mut batch);
            }
            return Some(batch);
        }
        None
    }

    /// Adds to `batch` the single calls of its task queued at the front (see `next_batch`), as
    /// many as their times allow.
    fn merge_singles(&mut self, batch: &mut Batch) {
        let limit = self.times.merge_limit(&batch.name);
        let budget = offspring_wire::MAX_FRAME as usize;
        let mut used = RUN_ENVELOPE
            + batch.name.len()
            + batch
                .items
                .iter()
                .map(|call| call.args.len() + CALL_ENVELOPE)
                .sum::<usize>();
        while batch.items.len() < limit {
            let Some(&id) = self.queue.front() else {
                break;
            };
            let Some(job) = self.jobs.get_mut(&id) else {
                self.queue.pop_front();
                continue;
            };
            let fits = job
                .pending
                .front()
                .is_some_and(|call| used + call.args.len() + CALL_ENVELOPE <= budget);
            if job.calls != 1 || job.pending.len() != 1 || job.name != batch.name || !fits {
                break;
            }
            let Some(call) = job.pending.pop_front() else {
                break;
            };
            used += call.args.len() + CALL_ENVELOPE;
            batch.parts.push(Part {
                start: batch.items.len(),
                job: id,
                sink: Arc::clone(&job.sink),
            });
            batch.items.push(call);
            self.queue.pop_front();
        }
    }

    fn send(&mut self, worker: u64, mut batch: Batch) {
        let Some(slot) = self.workers.get_mut(&worker) else {
            return;
        };
        let count = batch.items.len() as i64;
        let task_id = self.coordinator.next_task_id();
        batch.task_id = task_id;
        let pid = slot.handle.pid();
        if slot.batches == 0 {
            // Its first batch: from now on the worker is serving (once per worker, off the
            // per-batch path).
            lock(&self.shared.serving).push(pid);
        }
        let mut context: Option<BatchContext> = None;
        for (n, part) in batch.parts.iter().enumerate() {
            let calls = batch
                .parts
                .get(n + 1)
                .map_or(batch.items.len(), |next| next.start)
                - part.start;
            let span = self
                .jobs
                .get(&part.job)
                .map(|job| job.span.clone())
                .unwrap_or_else(tracing::Span::none);
            tracing::debug!(target: "offspring::task", parent: &span, worker_pid = pid, batch = task_id, calls, "dispatched");
            self.timelines
                .each(|t| t.dispatched(part.job.0, task_id, pid, calls));
            match &mut context {
                None => context = Some(BatchContext::new(part.job.0, span)),
                Some(context) => context.push(part.start, part.job.0, span),
            }
        }
        // The batch keeps its arguments (a call whose worker dies may run again elsewhere);
        // the frame is encoded from them, not from a copy.
        let items: Vec<&[u8]> = batch.items.iter().map(|p| p.args.as_slice()).collect();
        slot.handle.submit(
            task_id,
            &batch.name,
            &items,
            context.unwrap_or_default(),
            Box::new(CallReports::new(worker, task_id, self.events.clone())),
        );
        match &mut slot.state {
            SlotState::Busy(batches) => batches.push(batch),
            state => *state = SlotState::Busy(vec![batch]),
        }
        self.live_worker(worker, false);
        bump(&self.shared.counters.batches, 1);
        bump(&self.shared.counters.queued, -count);
        bump(&self.shared.counters.running, count);
    }

    /// Calls of `worker`'s batch reported: each goes to its job's sink, a job's calls
    /// together.
    fn items(&mut self, worker: u64, task_id: u64, items: Vec<(usize, Result<Vec<u8>, Failure>)>) {
        let limit = self.config.task_timeout;
        // An async call its worker cancelled failed by the pool's timeout.
        let failed = |failure: Failure| match failure {
            Failure::TimedOut { after } => PoolFailure::TimedOut(limit.unwrap_or(after)),
            failure => PoolFailure::Task(failure),
        };
        let live = self.has_live();
        let Some((batch, pid)) = self.batch_mut(worker, task_id) else {
            return;
        };
        batch.since = Instant::now();
        let name = live.then(|| Arc::clone(&batch.name));
        // Runs of calls of one job: (job, sink, its results).
        let mut groups: Vec<Delivery> = Vec::new();
        let mut failures = Vec::new();
        let count = items.len();
        for (index, outcome) in items {
            let Some(item) = batch.items.get(index) else {
                continue;
            };
            let call = item.index;
            batch.reported = index + 1;
            let part = batch.part(index);
            let outcome = outcome.map_err(failed);
            if let Err(failure) = &outcome {
                failures.push((part.job, call, failure.clone()));
            }
            let result = CallResult {
                outcome,
                pid: Some(pid),
            };
            match groups.last_mut() {
                Some((job, _, results)) if *job == part.job => results.push((call, result)),
                _ => {
                    // Most reads are of one job's calls: room for all of them.
                    let mut results = Vec::with_capacity(count);
                    results.push((call, result));
                    groups.push((part.job, Arc::clone(&part.sink), results));
                }
            }
        }
        for (job, call, failure) in failures {
            self.note_failure(job, call, pid, &failure);
        }
        for (job, sink, results) in groups {
            let count = results.len();
            let failed = results.iter().filter(|(_, r)| r.outcome.is_err()).count();
            self.live_calls(worker, name.as_ref(), job, count, failed);
            bump(&self.shared.counters.running, -(count as i64));
            bump(&self.shared.counters.done, (count - failed) as i64);
            bump(&self.shared.counters.failed, failed as i64);
            sink.deliver_many(results);
            self.settle(job, count);
        }
        self.live_worker(worker, false);
    }

    /// Calls `first..` of `worker`'s batch `task_id` returned `values`: each run of them that
    /// belongs to one job goes to its sink in one [`JobSink::deliver_values`].
    fn values(&mut self, worker: u64, task_id: u64, first: usize, values: &Values) {
        let live = self.has_live();
        let Some((batch, pid)) = self.batch_mut(worker, task_id) else {
            return;
        };
        batch.since = Instant::now();
        let name = live.then(|| Arc::clone(&batch.name));
        let end = first.saturating_add(values.len()).min(batch.items.len());
        if first >= end {
            return;
        }
        batch.reported = end;
        // Runs of calls of one job: (job, sink, its values).
        let mut groups: Vec<ValueDelivery<'_>> = Vec::new();
        let mut at = first;
        while at < end {
            let after = batch.parts.partition_point(|part| part.start <= at);
            let part = &batch.parts[after.saturating_sub(1)];
            let run_end = batch
                .parts
                .get(after)
                .map_or(end, |next| next.start.min(end));
            let run = (at..run_end)
                .map(|i| (batch.items[i].index, values.get(i - first)))
                .collect();
            groups.push((part.job, Arc::clone(&part.sink), run));
            at = run_end;
        }
        for (job, sink, run) in groups {
            let count = run.len();
            self.live_calls(worker, name.as_ref(), job, count, 0);
            bump(&self.shared.counters.running, -(count as i64));
            bump(&self.shared.counters.done, count as i64);
            sink.deliver_values(&run, pid);
            self.settle(job, count);
        }
        self.live_worker(worker, false);
    }

    /// Call `index` of job `id`, run by worker `pid`, failed: told in the job's span.
    fn note_failure(&mut self, id: JobId, index: usize, pid: u32, failure: &PoolFailure) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.failed += 1;
            tracing::warn!(target: "offspring::task", parent: &job.span, worker_pid = pid, index, error = %failure, "call failed");
            #[cfg(feature = "live")]
            if let Some(board) = &self.live {
                board.failure(&job.name, id.0, index, pid, &failure.to_string());
            }
        }
    }

    /// `delivered` calls of job `id` were delivered: forget the job once nothing is left.
    fn settle(&mut self, id: JobId, delivered: usize) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.outstanding = job.outstanding.saturating_sub(delivered);
            if job.outstanding == 0
                && job.pending.is_empty()
                && let Some(job) = self.jobs.remove(&id)
            {
                let elapsed = job.submitted.elapsed();
                tracing::debug!(target: "offspring::task", parent: &job.span, calls = job.calls, failed = job.failed, ?elapsed, "finished");
                let pool = self.shared.id;
                self.timelines
                    .each(|t| t.job(&job.name, id.0, pool, job.calls, job.submitted));
            }
        }
    }

    /// `worker`'s batch and the worker's pid.
    fn batch_mut(&mut self, worker: u64, task_id: u64) -> Option<(&mut Batch, u32)> {
        let slot = self.workers.get_mut(&worker)?;
        let pid = slot.handle.pid();
        match &mut slot.state {
            SlotState::Busy(batches) => batches
                .iter_mut()
                .find(|b| b.task_id == task_id)
                .map(|b| (b, pid)),
            _ => None,
        }
    }

    fn finished(&mut self, worker: u64, task_id: u64) {
        let Some(slot) = self.workers.get_mut(&worker) else {
            return;
        };
        let SlotState::Busy(batches) = &mut slot.state else {
            return;
        };
        let Some(at) = batches.iter().position(|b| b.task_id == task_id) else {
            return;
        };
        let batch = batches.remove(at);
        let more = !batches.is_empty();
        slot.batches += 1;
        if !more {
            slot.state = SlotState::Idle;
        }
        if !batch.concurrent
            && let Some(began) = batch.began
        {
            self.times
                .record(&batch.name, began.elapsed(), batch.items.len());
        }
        self.live_worker(worker, false);
        if more {
            // Calls still run on it: the freed slot takes the next such call.
            self.dispatch();
            return;
        }
        let Some(slot) = self.workers.get_mut(&worker) else {
            return;
        };
        if self
            .config
            .max_tasks_per_child
            .is_some_and(|max| slot.batches >= max)
        {
            slot.state = SlotState::Retiring;
            slot.handle.shutdown();
            bump(&self.shared.counters.restarted, 1);
            self.live_worker(worker, false);
            self.maintain();
        }
        self.dispatch();
    }

    fn forget_serving(&self, pid: u32) {
        lock(&self.shared.serving).retain(|p| *p != pid);
    }

    /// `worker` died, as its batch `task_id` reports; its other batches (calls run at once)
    /// end with it. The worker's actor hands on every batch's reports before any death, so
    /// each batch's count of reported calls is final here.
    fn died(&mut self, worker: u64, task_id: u64, death: &Death) {
        let Some(slot) = self.workers.remove(&worker) else {
            return;
        };
        let pid = slot.handle.pid();
        self.forget_serving(pid);
        // Killed by `terminate`, or exiting anyway: not a death to count.
        let unasked = !self.terminated && !matches!(slot.state, SlotState::Retiring);
        let mut blamed = false;
        if let SlotState::Busy(batches) = slot.state {
            for batch in batches {
                if batch.task_id == task_id {
                    self.batch_died(batch, death, pid, &mut blamed);
                } else {
                    let theirs = Death {
                        next: batch.reported,
                        ..death.clone()
                    };
                    self.batch_died(batch, &theirs, pid, &mut blamed);
                }
            }
        }
        self.live_ended(worker, unasked, blamed, || death_text(death));
        let winding_down = self.terminated || (self.closed && self.queue.is_empty());
        if !winding_down {
            bump(&self.shared.counters.restarted, 1);
        }
        self.maintain();
        self.dispatch();
    }

    /// The worker running `batch` died: what it reported is delivered already; the call that
    /// was running fails (or runs again while it has retries), and the calls that never
    /// started go back to the front of the queue, each to its own job.
    ///
    /// `blamed` turns true when a call that was running is blamed (failed or run again): the
    /// death counts as one in a call then, once, before any failure reaches a caller, so a
    /// caller who has seen its failure sees the death counted.
    fn batch_died(&mut self, batch: Batch, death: &Death, pid: u32, blamed: &mut bool) {
        let mut blame = |this: &Self, any: bool| {
            if any && !*blamed {
                *blamed = true;
                bump(&this.shared.counters.died_running, 1);
            }
        };
        let status = death.status;
        let Batch {
            parts,
            items,
            timed_out,
            concurrent,
            began,
            ..
        } = batch;
        let part_of = |index: usize| {
            let part = part_at(&parts, index);
            (part.job, Arc::clone(&part.sink))
        };
        let mut items = items.into_iter().enumerate().skip(death.next).peekable();
        // Per job, in the batch's order: calls to queue again, and calls delivered.
        let mut requeue: Vec<(JobId, Vec<Pending>)> = Vec::new();
        let mut delivered: Vec<(JobId, usize)> = Vec::new();
        let count = |list: &mut Vec<(JobId, usize)>, job: JobId| match list.last_mut() {
            Some((last, n)) if *last == job => *n += 1,
            _ => list.push((job, 1)),
        };
        if let Some(reason) = &death.misbehaved {
            // The worker broke the protocol: its unreported calls may have run, and what
            // they returned is lost. They fail (never run twice, never a wrong value).
            let failure = PoolFailure::Task(Failure::Misbehaved(reason.clone()));
            blame(self, items.peek().is_some());
            for (index, call) in items.by_ref() {
                let (job, sink) = part_of(index);
                bump(&self.shared.counters.running, -1);
                self.note_failure(job, call.index, pid, &failure);
                self.deliver(
                    &sink,
                    call.index,
                    CallResult {
                        outcome: Err(failure.clone()),
                        pid: Some(pid),
                    },
                );
                count(&mut delivered, job);
            }
        }
        // The call that was running. Calls run at once all started when the worker said the
        // batch began: then every call not reported was running.
        let running: Vec<(usize, Pending)> = if concurrent {
            if began.is_some() {
                items.by_ref().collect()
            } else {
                Vec::new()
            }
        } else if death.running {
            items.next().into_iter().collect()
        } else {
            Vec::new()
        };
        blame(self, !running.is_empty());
        for (index, mut running) in running {
            let (job, sink) = part_of(index);
            bump(&self.shared.counters.running, -1);
            let failure = if timed_out {
                PoolFailure::TimedOut(self.config.task_timeout.unwrap_or_default())
            } else {
                PoolFailure::Task(Failure::Died {
                    status,
                    host: death.host.clone(),
                })
            };
            if !timed_out && running.attempts < self.config.retries && !self.terminated {
                running.attempts += 1;
                tracing::debug!(target: "offspring", worker_pid = pid, attempt = running.attempts, "retrying a call whose worker died");
                requeue.push((job, vec![running]));
            } else {
                self.note_failure(job, running.index, pid, &failure);
                self.deliver(
                    &sink,
                    running.index,
                    CallResult {
                        outcome: Err(failure),
                        pid: Some(pid),
                    },
                );
                count(&mut delivered, job);
            }
        }
        // Calls that never started run elsewhere as if nothing happened.
        for (index, untouched) in items {
            let job = part_at(&parts, index).job;
            bump(&self.shared.counters.running, -1);
            match requeue.last_mut() {
                Some((last, calls)) if *last == job => calls.push(untouched),
                _ => requeue.push((job, vec![untouched])),
            }
        }
        // The last job first, so the batch's first job ends up at the front of the queue.
        for (job, calls) in requeue.into_iter().rev() {
            self.requeue(job, calls);
        }
        for (job, n) in delivered {
            self.settle(job, n);
        }
    }

    fn requeue(&mut self, id: JobId, items: Vec<Pending>) {
        if items.is_empty() {
            return;
        }
        let count = items.len() as i64;
        if self.terminated || self.broken.is_some() {
            let failure = match &self.broken {
                Some(failure) => failure.clone(),
                None => PoolFailure::Closed,
            };
            if let Some(job) = self.jobs.get(&id) {
                let sink = Arc::clone(&job.sink);
                for item in &items {
                    self.deliver(
                        &sink,
                        item.index,
                        CallResult {
                            outcome: Err(failure.clone()),
                            pid: None,
                        },
                    );
                }
            }
            self.settle(id, items.len());
            return;
        }
        if let Some(job) = self.jobs.get_mut(&id) {
            for item in items.into_iter().rev() {
                job.pending.push_front(item);
            }
            bump(&self.shared.counters.queued, count);
            self.queue.retain(|queued| *queued != id);
            self.queue.push_front(id);
        }
    }

    fn init_done(&mut self, worker: u64, error: Option<String>) {
        match error {
            None => {
                self.start_failures = 0;
                if let Some(slot) = self.workers.get_mut(&worker) {
                    slot.state = SlotState::Idle;
                }
                self.live_worker(worker, false);
                self.dispatch();
            }
            Some(reason) => {
                if let Some(slot) = self.workers.remove(&worker) {
                    slot.handle.kill();
                    self.live_ended(worker, true, false, || {
                        format!("its initializer failed: {reason}")
                    });
                }
                self.start_failed(StartStep::Initializer, reason);
            }
        }
    }

    fn start_failed(&mut self, step: StartStep, reason: String) {
        self.start_failures += 1;
        tracing::warn!(target: "offspring", failures = self.start_failures, %reason, "a pool worker failed to start");
        if self.start_failures >= MAX_START_FAILURES {
            self.break_pool(step, reason);
        } else {
            self.maintain();
        }
    }

    /// Gives up after the last of [`MAX_START_FAILURES`] failed starts, which names the
    /// failure: queued calls and later submissions fail with it.
    fn break_pool(&mut self, step: StartStep, reason: String) {
        tracing::error!(target: "offspring", %reason, "the pool gave up starting workers");
        let reason =
            format!("{MAX_START_FAILURES} consecutive worker starts failed; the last: {reason}");
        let failure = match step {
            StartStep::Spawn => PoolFailure::CannotStart(reason),
            StartStep::Initializer => PoolFailure::InitializerFailed(reason),
        };
        self.broken = Some(failure.clone());
        for id in std::mem::take(&mut self.queue) {
            if let Some(mut job) = self.jobs.remove(&id) {
                let items: Vec<_> = job
                    .pending
                    .drain(..)
                    .map(|mut p| (p.index, std::mem::take(&mut p.args)))
                    .collect();
                self.fail_job_items(&job.sink, items, &failure);
            }
        }
    }

    fn spawned(&mut self, result: Result<WorkerHandle, SpawnError>) {
        self.starting = self.starting.saturating_sub(1);
        let handle = match result {
            Ok(handle) => handle,
            Err(e) => {
                self.start_failed(StartStep::Spawn, e.to_string());
                return;
            }
        };
        if self.terminated || self.broken.is_some() {
            handle.kill();
            return;
        }
        bump(&self.shared.counters.spawned, 1);
        let worker = self.next_worker;
        self.next_worker += 1;
        let watcher = handle.clone();
        let events = self.events.clone();
        self.coordinator.runtime().spawn(async move {
            watcher.exited().await;
            let _ = events.send(ActorEvent::Exited(worker));
        });
        let state = match &self.config.initializer {
            Some((name, args)) => {
                handle.submit(
                    self.coordinator.next_task_id(),
                    name,
                    &[args.as_slice()],
                    BatchContext::default(),
                    Box::new(InitReports {
                        worker,
                        events: self.events.clone(),
                        error: None,
                    }),
                );
                SlotState::Initializing
            }
            None => {
                self.start_failures = 0;
                SlotState::Idle
            }
        };
        self.workers.insert(
            worker,
            Slot {
                handle,
                state,
                batches: 0,
            },
        );
        self.live_worker(worker, true);
        self.dispatch();
    }

    /// Starts workers until the pool has its size (none once it is closed and idle).
    fn maintain(&mut self) {
        if self.terminated || self.broken.is_some() {
            return;
        }
        if self.closed && self.queue.is_empty() {
            return;
        }
        let live = self
            .workers
            .values()
            .filter(|slot| !matches!(slot.state, SlotState::Retiring))
            .count()
            + self.starting;
        for _ in live..self.config.processes {
            self.starting += 1;
            let spawn = self.coordinator.spawn_worker_async(SpawnOptions {
                program: self.config.program.clone(),
                args: self.config.worker_args.clone(),
                env: self.config.worker_env.clone(),
                frames_only: self.config.frames_only,
                timeline: self.config.timeline.clone(),
                logs: Some(Arc::clone(&self.shared.logs)),
                async_concurrency: u32::try_from(self.config.async_concurrency).unwrap_or(u32::MAX),
                task_timeout: self.config.task_timeout,
                launch: self.config.launch.clone(),
                listen: self.config.listen.clone(),
                ..SpawnOptions::default()
            });
            let events = self.events.clone();
            self.coordinator.runtime().spawn(async move {
                let _ = events.send(ActorEvent::Spawned(spawn.await));
            });
        }
    }

    /// After `close`, once nothing is queued, idle workers are shut down.
    fn maybe_retire_idle(&mut self) {
        if !self.closed || !self.queue.is_empty() {
            return;
        }
        let mut retired = Vec::new();
        for (&worker, slot) in &mut self.workers {
            if matches!(slot.state, SlotState::Idle) {
                slot.state = SlotState::Retiring;
                slot.handle.shutdown();
                retired.push(worker);
            }
        }
        for worker in retired {
            self.live_worker(worker, false);
        }
    }

    fn terminate(&mut self) {
        self.terminated = true;
        self.closed = true;
        for id in std::mem::take(&mut self.queue) {
            if let Some(mut job) = self.jobs.remove(&id) {
                let items: Vec<_> = job
                    .pending
                    .drain(..)
                    .map(|mut p| (p.index, std::mem::take(&mut p.args)))
                    .collect();
                self.fail_job_items(&job.sink, items, &PoolFailure::Closed);
            }
        }
        let busy: Vec<Batch> = self
            .workers
            .values_mut()
            .flat_map(|slot| {
                slot.handle.kill();
                match std::mem::replace(&mut slot.state, SlotState::Retiring) {
                    SlotState::Busy(batches) => batches,
                    _ => Vec::new(),
                }
            })
            .collect();
        for batch in busy {
            for (index, item) in batch.items.iter().enumerate().skip(batch.reported) {
                bump(&self.shared.counters.running, -1);
                self.deliver(
                    &batch.part(index).sink,
                    item.index,
                    CallResult {
                        outcome: Err(PoolFailure::Closed),
                        pid: None,
                    },
                );
            }
        }
        self.jobs.clear();
    }

    fn tick(&mut self) {
        let Some(limit) = self.config.task_timeout else {
            return;
        };
        for slot in self.workers.values_mut() {
            let SlotState::Busy(batches) = &mut slot.state else {
                continue;
            };
            let running = |batch: &Batch| !batch.timed_out && batch.reported < batch.items.len();
            // An async call's worker cancels it at the limit itself; the worker is killed only
            // when it has not, a grace period later (something blocks its runtime).
            let overdue = batches.iter().any(|batch| {
                let allowed = if batch.is_async {
                    limit + ASYNC_TIMEOUT_GRACE
                } else {
                    limit
                };
                running(batch) && batch.since.elapsed() > allowed
            });
            if !overdue {
                continue;
            }
            // Calls past the limit fail with the timeout; any other call it was running
            // fails with the worker's death.
            for batch in batches.iter_mut() {
                if running(batch) && batch.since.elapsed() > limit {
                    batch.timed_out = true;
                    tracing::warn!(target: "offspring", worker_pid = slot.handle.pid(), task = %batch.name, ?limit, "a task ran past its timeout; killing its worker");
                }
            }
            slot.handle.kill();
        }
    }
}

/// The live board's side of the scheduler: each method does nothing without the `live`
/// feature or a board, and takes what it needs by reference so that nothing is computed for
/// a pool without one.
impl Actor {
    /// Whether the pool keeps a live board.
    fn has_live(&self) -> bool {
        #[cfg(feature = "live")]
        return self.live.is_some();
        #[cfg(not(feature = "live"))]
        false
    }

    /// Worker `worker` joined, or changed what it does.
    fn live_worker(&self, worker: u64, joined: bool) {
        #[cfg(feature = "live")]
        if let Some(board) = &self.live
            && let Some(slot) = self.workers.get(&worker)
        {
            let doing = doing(slot);
            if joined {
                board.worker_started(worker, slot.handle.pid(), &doing);
            } else {
                board.worker_doing(worker, &doing);
            }
        }
        #[cfg(not(feature = "live"))]
        let _ = (worker, joined);
    }

    /// Every live worker may have changed what it does (the pool closed or was terminated).
    fn live_all(&self) {
        #[cfg(feature = "live")]
        if let Some(board) = &self.live {
            if self.closed {
                board.closed();
            }
            for (&worker, slot) in &self.workers {
                board.worker_doing(worker, &doing(slot));
            }
        }
    }

    /// Worker `worker` reported `calls` calls of `job` (task `task`, named when the pool has
    /// a board), `failed` of them failed.
    fn live_calls(
        &self,
        worker: u64,
        task: Option<&Arc<str>>,
        job: JobId,
        calls: usize,
        failed: usize,
    ) {
        #[cfg(feature = "live")]
        if let Some(board) = &self.live
            && let Some(task) = task
        {
            board.calls(worker, task, job.0, calls, failed);
        }
        #[cfg(not(feature = "live"))]
        let _ = (worker, task, job, calls, failed);
    }

    /// Worker `worker` is gone; it `died` unasked, as `exit` tells, and was `blamed` for the
    /// call it was running.
    fn live_ended(&self, worker: u64, died: bool, blamed: bool, exit: impl FnOnce() -> String) {
        #[cfg(feature = "live")]
        if let Some(board) = &self.live {
            board.worker_ended(worker, died, blamed, exit());
        }
        #[cfg(not(feature = "live"))]
        let _ = (worker, died, blamed, exit);
    }

    /// The pool is drained.
    fn live_drained(&self) {
        #[cfg(feature = "live")]
        if let Some(board) = &self.live {
            board.drained();
        }
    }
}

/// What a worker's slot says it does, for the live board.
#[cfg(feature = "live")]
fn doing(slot: &Slot) -> Doing {
    let (state, task, running) = match &slot.state {
        SlotState::Initializing => ("initializing", None, 0),
        SlotState::Idle => ("idle", None, 0),
        SlotState::Retiring => ("retiring", None, 0),
        SlotState::Busy(batches) => {
            let current = batches
                .iter()
                .find(|b| b.reported < b.items.len())
                .and_then(|b| {
                    let item = b.items.get(b.reported)?;
                    Some((Arc::clone(&b.name), b.part(b.reported).job.0, item.index))
                });
            let running = batches
                .iter()
                .filter(|b| b.reported < b.items.len())
                .count();
            ("busy", current, running)
        }
    };
    Doing {
        state,
        task,
        running,
    }
}

/// How a worker's death reads on the live board.
fn death_text(death: &Death) -> String {
    match (&death.misbehaved, death.status) {
        (Some(what), _) => format!("killed for breaking the protocol: {what}"),
        (None, Some(status)) => format!("died ({status})"),
        (None, None) => "died (its connection closed)".to_owned(),
    }
}

impl std::fmt::Display for PoolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Task(failure) => failure.fmt(f),
            Self::TimedOut(limit) => write!(f, "ran past the pool's task timeout of {limit:?}"),
            Self::Closed => f.write_str("the pool was closed"),
            Self::InitializerFailed(reason) => {
                write!(f, "the pool's initializer keeps failing: {reason}")
            }
            Self::CannotStart(reason) => write!(f, "the pool cannot start workers: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(sizes: &[usize]) -> VecDeque<Pending> {
        sizes
            .iter()
            .enumerate()
            .map(|(index, &size)| Pending {
                index,
                args: vec![0; size],
                attempts: 0,
            })
            .collect()
    }

    #[test]
    fn a_batch_takes_chunk_calls_while_they_fit_in_a_frame() {
        let mib = 1024 * 1024;
        assert_eq!(batch_len("t", &calls(&[1, 2, 3, 4, 5]), 3), 3);
        assert_eq!(batch_len("t", &calls(&[1, 2]), 8), 2);
        assert_eq!(batch_len("t", &calls(&[20 * mib; 4]), 4), 3);
        // A call too large on its own goes alone.
        assert_eq!(batch_len("t", &calls(&[70 * mib, 1, 1]), 3), 1);
        assert_eq!(batch_len("t", &calls(&[1, 70 * mib, 1]), 3), 1);
    }

    /// Single calls go together by their expected time: one until timed, none together once
    /// a call takes longer than the budget, up to the cap when they take next to nothing.
    #[test]
    fn single_calls_merge_by_their_measured_time() {
        let mut times = CallTimes::default();
        let name: Arc<str> = Arc::from("t");
        assert_eq!(times.merge_limit("t"), 1, "untimed");
        times.record(&name, Duration::from_millis(40), 1);
        assert_eq!(times.merge_limit("t"), 1, "slower than the budget");
        let mut quick = CallTimes::default();
        quick.record(&name, Duration::from_micros(100), 10);
        assert_eq!(quick.merge_limit("t"), 100, "10 us a call, 1 ms budget");
        quick.record(&name, Duration::ZERO, 100);
        quick.record(&name, Duration::ZERO, 100);
        assert!(quick.merge_limit("t") > 100, "the average follows");
        quick.record(&name, Duration::ZERO, 0);
        for _ in 0..100 {
            quick.record(&name, Duration::from_nanos(1), 256);
        }
        assert_eq!(quick.merge_limit("t"), MAX_MERGED);
        // A slow batch pulls the average up at once.
        quick.record(&name, Duration::from_millis(500), 1);
        assert_eq!(quick.merge_limit("t"), 1);
    }
}
