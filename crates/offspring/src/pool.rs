//! [`Pool`]: worker processes fed with tasks, like Python's `multiprocessing.Pool`, with
//! crashes that fail one call instead of the pool.
//!
//! The scheduling lives in the coordinator (`offspring_coordinator::PoolHandle`); this module
//! encodes arguments, decodes values into the user's types, and shapes the results (`apply`,
//! `map`, `imap`, ...). Large byte payloads should be `serde_bytes` types: see [`Pool`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offspring_coordinator::{CallResult, JobId, JobSink, JobSpec, PoolConfig, PoolHandle};
use serde::de::DeserializeOwned;

use crate::async_result::{CallbackCount, Cell};
use crate::codec::EncodedCall;
use crate::{AsyncResult, Error, Result, Task};

/// How long dropping the last clone of a pool waits for its killed workers to be reaped.
const TERMINATE_WAIT: Duration = Duration::from_secs(10);

/// How many calls per worker `imap` keeps submitted ahead of the consumer: it pulls at most
/// `consumed + IMAP_AHEAD × processes` items from its input.
pub const IMAP_AHEAD: usize = 2;

fn convert<R: DeserializeOwned + 'static>(
    task: &str,
    index: Option<usize>,
    result: CallResult,
) -> Result<R> {
    match result.outcome {
        Ok(bytes) => crate::codec::decode_value(task, index, bytes),
        Err(failure) => Err(Error::from_pool(task, result.pid, index, failure)),
    }
}

/// Builds a [`Pool`]; see [`Pool::builder`].
#[derive(Debug, Default)]
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<(String, Result<Vec<u8>>)>,
    max_tasks_per_child: Option<u64>,
    task_timeout: Option<Duration>,
    retries: u32,
    trace: Option<std::path::PathBuf>,
    /// Another program to run as the workers (tests only; see `__private`).
    program: Option<std::path::PathBuf>,
    /// Extra environment for the workers (test-only switches; see `__private`).
    worker_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// Workers report in frames, without a shared outcome segment (tests; see `__private`).
    frames_only: bool,
    /// How many calls of an async task a worker runs at once (`None`: 1).
    async_concurrency: Option<usize>,
    /// Where to serve the live view (see `dashboard`).
    #[cfg(feature = "dashboard")]
    dashboard: Option<String>,
    /// Who starts the workers (see `launcher`).
    launcher: Option<Arc<dyn crate::Launcher>>,
    /// Where to listen for workers on other machines (see `listen`).
    listen: Option<String>,
}

impl PoolBuilder {
    /// Records this pool's workers and tasks into a timeline file at `path` (Chrome
    /// trace-event JSON, for Perfetto or `cargo xtask timeline`), written when the pool ends
    /// (`join`, `terminate` or drop). `OFFSPRING_TRACE=path` records the whole process
    /// instead, written at exit.
    pub fn trace(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.trace = Some(path.into());
        self
    }

    /// Serves a live view of this pool (and of every other pool of the process that has one)
    /// at `addr`: a web page of its workers (pid, state, current call, calls done, deaths and
    /// restarts), its queue, its rate, its failures and the last minute of its timeline,
    /// updating by itself. `addr` is `host:port`; `":0"` is any free port on the loopback.
    /// The page needs the random token in [`Pool::dashboard_url`], which is also logged once
    /// at INFO (target `offspring::dashboard`). One view serves the whole process: the first
    /// pool's address is the one used. `OFFSPRING_DASHBOARD=addr` turns the view on for a
    /// program that does not call this. Needs the cargo feature `dashboard`; see
    /// `docs/dashboard.md`.
    #[cfg(feature = "dashboard")]
    pub fn dashboard(mut self, addr: impl Into<String>) -> Self {
        self.dashboard = Some(addr.into());
        self
    }

    pub(crate) fn with_program(mut self, program: std::path::PathBuf) -> Self {
        self.program = Some(program);
        self
    }

    pub(crate) fn with_worker_env(mut self, key: &str, value: &str) -> Self {
        self.worker_env.push((key.into(), value.into()));
        self
    }

    pub(crate) fn with_frames_only(mut self) -> Self {
        self.frames_only = true;
        self
    }

    /// How many worker processes (default: the available parallelism).
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// A task each worker runs once, before its first task (replacements too).
    pub fn initializer<S, T: Task<S>>(mut self, task: T, args: T::Args) -> Self {
        let _ = task;
        let name = crate::task_trait::task_name::<T>();
        let label = crate::task_trait::label::<T>(&name);
        let encoded = name.and_then(|name| crate::codec::encode_args(name, None, &args));
        self.initializer = Some((label.to_owned(), encoded));
        self
    }

    /// A worker is replaced after running this many tasks. A `map` chunk counts as one task
    /// (as in Python), whatever its number of items; an async call run alongside others
    /// (`async_concurrency` above 1) counts as one.
    pub fn max_tasks_per_child(mut self, tasks: u64) -> Self {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// A task running longer than this (from when it starts on its worker) reports
    /// [`Error::TaskTimedOut`]. A sync task is stopped by killing and replacing its worker;
    /// an `async fn` call is cancelled (its future dropped) by its worker, which lives on,
    /// unless the call blocks the worker's runtime for 2 s more: then the worker is killed
    /// too, and its other calls fail with [`Error::WorkerDied`].
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// How many calls of an `async fn` task each worker runs at once (default 1), on its
    /// runtime: with `n` workers, up to `n × concurrency` such calls are in flight. Sync tasks
    /// still run one at a time. With more than 1, a worker's death fails every call it was
    /// running, each with [`Error::WorkerDied`], and only those; a panic in one call fails
    /// that call alone.
    ///
    /// The primitives' waiting operations (`Queue::get`, `Event::wait`, `Lock::lock`, ...)
    /// block the thread that calls them: inside an async call they stop every call of that
    /// worker until they return. Wait on them with a timeout, or from
    /// `tokio::task::spawn_blocking`, in async code.
    ///
    /// ```standalone_crate
    /// use std::time::Duration;
    ///
    /// #[offspring::task]
    /// async fn fetch(n: u64) -> u64 {
    ///     tokio::time::sleep(Duration::from_millis(100)).await; // a slow request
    ///     n
    /// }
    ///
    /// # offspring::test_support!();
    /// fn main() -> offspring::Result<()> {
    ///     offspring::init();
    ///     let pool = offspring::Pool::builder()
    ///         .processes(2)
    ///         .async_concurrency(32)
    ///         .build()?;
    ///     let started = std::time::Instant::now();
    ///     assert_eq!(pool.map(fetch, 0..64)?.len(), 64);
    ///     // 64 calls of 100 ms, 32 at a time on each of 2 workers: about 100 ms, not 3.2 s.
    ///     assert!(started.elapsed() < Duration::from_secs(3));
    ///     Ok(())
    /// }
    /// ```
    pub fn async_concurrency(mut self, concurrency: usize) -> Self {
        self.async_concurrency = Some(concurrency);
        self
    }

    /// A task whose worker died is run again on another worker up to this many times before
    /// it reports [`Error::WorkerDied`] (default 0). A panic is not retried.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Who starts the workers: [`Local`](crate::Local) children of this process (the
    /// default, unless `OFFSPRING_LAUNCHER=slurm` is set), or [`Slurm`](crate::Slurm) steps
    /// on any node of a cluster. Workers a launcher starts elsewhere dial back to this
    /// process over TCP (see [`listen`](Self::listen)); every method works the same, except
    /// that shared memory does not reach them.
    pub fn launcher(mut self, launcher: impl crate::Launcher) -> Self {
        self.launcher = Some(Arc::new(launcher));
        self
    }

    /// Where this process listens for workers on other machines, as `host:port` (port 0:
    /// any free one). Workers dial `host`, or this machine's name when `host` is
    /// unspecified (`0.0.0.0`, `[::]`). Default: `OFFSPRING_LISTEN`, else `0.0.0.0:0`. One
    /// address per process: the first pool with remote workers binds it.
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = Some(address.into());
        self
    }

    /// Starts the pool. Workers start in the background; calls queue until one is ready.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero processes or a zero timeout,
    /// [`Error::Serialization`] when the initializer's arguments do not encode, and the
    /// errors of [`init`](crate::init)'s checks.
    pub fn build(self) -> Result<Pool> {
        let processes = match self.processes {
            Some(0) => {
                return Err(Error::InvalidConfig {
                    reason: "a pool needs at least one process".into(),
                });
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if self.task_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig {
                reason: "a task timeout of zero would kill every task".into(),
            });
        }
        if self.async_concurrency == Some(0) {
            return Err(Error::InvalidConfig {
                reason: "async_concurrency must be at least 1".into(),
            });
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::InvalidConfig {
                reason: "max_tasks_per_child must be at least 1".into(),
            });
        }
        let initializer = match self.initializer {
            Some((name, args)) => Some((name, args?)),
            None => None,
        };
        let async_concurrency = self.async_concurrency.unwrap_or(1);
        let coordinator = crate::init::coordinator()?;
        let launcher = match self.launcher {
            Some(launcher) => Some(launcher),
            None => crate::launcher::from_env()?,
        }
        .filter(|launcher| !launcher.is_local());
        if let Some(launcher) = &launcher {
            launcher.prepare(processes)?;
        }
        #[cfg(feature = "dashboard")]
        let dashboard = match self.dashboard.or_else(dashboard_from_env) {
            Some(addr) => Some(
                offspring_dashboard::serve(coordinator.runtime(), &addr).map_err(|e| {
                    Error::InvalidConfig {
                        reason: format!("cannot serve the live view at `{addr}`: {e}"),
                    }
                })?,
            ),
            None => None,
        };
        #[cfg(not(feature = "dashboard"))]
        warn_without_dashboard();
        let handle = PoolHandle::start(
            coordinator,
            PoolConfig {
                processes,
                initializer,
                max_tasks_per_child: self.max_tasks_per_child,
                task_timeout: self.task_timeout,
                retries: self.retries,
                worker_args: crate::init::worker_args(),
                program: self.program,
                worker_env: self.worker_env,
                frames_only: self.frames_only,
                timeline: self.trace.map(offspring_coordinator::Timeline::new),
                async_concurrency,
                #[cfg(feature = "dashboard")]
                live: dashboard.is_some(),
                #[cfg(not(feature = "dashboard"))]
                live: false,
                launch: launcher.map(|launcher| {
                    Arc::new(crate::launcher::Bridge(launcher))
                        as Arc<dyn offspring_coordinator::Launch>
                }),
                listen: self.listen,
            },
        );
        #[cfg(feature = "dashboard")]
        let dashboard_url = match (dashboard, handle.live_board()) {
            (Some(dashboard), Some(board)) => {
                dashboard.show(Arc::clone(board));
                Some(dashboard.url())
            }
            _ => None,
        };
        Ok(Pool {
            inner: Arc::new(PoolCore {
                handle,
                #[cfg(feature = "dashboard")]
                dashboard_url,
                processes,
                async_concurrency,
                callbacks: Arc::new(CallbackCount::default()),
            }),
        })
    }
}

/// The environment variable that turns the live view on for an unchanged program: its
/// value is the address to serve at, as for [`PoolBuilder::dashboard`].
const DASHBOARD_ENV: &str = "OFFSPRING_DASHBOARD";

/// The address `OFFSPRING_DASHBOARD` names, if set, in the parent. Workers inherit the
/// variable, and a pool a task builds is shown only when it asks itself: the parent's view is
/// the program's (a second server at the same address could not bind).
#[cfg(feature = "dashboard")]
fn dashboard_from_env() -> Option<String> {
    if crate::current_process().is_worker {
        return None;
    }
    std::env::var(DASHBOARD_ENV)
        .ok()
        .filter(|addr| !addr.is_empty())
}

/// Says once that `OFFSPRING_DASHBOARD` is set in a program built without the view.
#[cfg(not(feature = "dashboard"))]
fn warn_without_dashboard() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os(DASHBOARD_ENV).is_some_and(|addr| !addr.is_empty())
        && !crate::current_process().is_worker
    {
        ONCE.call_once(|| {
            tracing::warn!(target: "offspring::dashboard", "OFFSPRING_DASHBOARD is set, but this program was built without offspring's `dashboard` feature: no live view");
        });
    }
}

struct PoolCore {
    handle: PoolHandle,
    /// The live view's URL, when this pool is shown in it.
    #[cfg(feature = "dashboard")]
    dashboard_url: Option<String>,
    processes: usize,
    /// See [`PoolBuilder::async_concurrency`].
    async_concurrency: usize,
    callbacks: Arc<CallbackCount>,
}

impl PoolCore {
    /// How many calls of `task` a worker runs at once: the pool's async concurrency for an
    /// async task, else 1.
    fn concurrent(&self, task: &str) -> usize {
        if self.async_concurrency > 1 && is_async(task) {
            self.async_concurrency
        } else {
            1
        }
    }
}

/// Whether `task` is an `async fn`.
fn is_async(task: &str) -> bool {
    offspring_worker::task_table()
        .ok()
        .and_then(|table| table.get(task))
        .is_some_and(offspring_worker::TaskEntry::is_async)
}

impl Drop for PoolCore {
    fn drop(&mut self) {
        // Dropping the last clone terminates, as leaving Python's `with Pool()` does; it waits
        // (bounded) for the killed workers to be reaped, but never for callbacks, so a drop on
        // the callback thread cannot wait on itself.
        self.handle.terminate();
        self.handle.wait_drained(Some(TERMINATE_WAIT));
    }
}

/// A pool of worker processes. `Clone + Send + Sync`: clones share the workers (a callback
/// can hold one and submit more work), and the workers stop when the last clone is dropped.
///
/// # Large byte payloads
///
/// Arguments and values cross to the workers encoded with postcard. A task whose one
/// parameter, or whose value, is a `Vec<u8>` (or a `serde_bytes::ByteBuf`) has it moved as
/// one block, with no per-byte work: `fn echo(payload: Vec<u8>) -> Vec<u8>` is as fast as it
/// gets, and above a few hundred KiB (on Linux) the bytes go through shared memory. Inside a
/// tuple or a struct, postcard encodes a plain `Vec<u8>` (or `[u8; N]`, `&[u8]`) one element
/// at a time, which for megabytes costs far more than the copy: there, use
/// `serde_bytes::ByteBuf` or mark the field `#[serde(with = "serde_bytes")]`.
///
/// ```standalone_crate
/// #[offspring::task]
/// fn add(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// # offspring::test_support!();
/// fn main() -> offspring::Result<()> {
///     offspring::init();
///     let pool = offspring::Pool::new(2)?;
///     assert_eq!(pool.apply(add, (2, 3))?, 5);
///     assert_eq!(pool.starmap(add, vec![(1, 2), (3, 4)])?, vec![3, 7]);
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolCore>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.inner.processes)
            .field("counters", &self.inner.handle.counters())
            .finish()
    }
}

/// A pool's counters: see [`Pool::counters`].
pub type PoolCounters = offspring_coordinator::PoolCounters;

struct OneSink<R> {
    cell: Arc<Cell<R>>,
    task: &'static str,
}

impl<R: DeserializeOwned + Send + 'static> JobSink for OneSink<R> {
    fn deliver(&self, _index: usize, result: CallResult) {
        self.cell.resolve(convert(self.task, None, result));
    }
}

/// Collects a `map`'s values in input order, each decoded as its batch is delivered (so
/// the last delivery has nothing left to decode but its own), keeping only the first failure
/// in input order.
struct MapSink<R> {
    cell: Arc<Cell<Vec<R>>>,
    task: &'static str,
    state: Mutex<MapState<R>>,
    remaining: AtomicUsize,
}

struct MapState<R> {
    values: Vec<Option<R>>,
    /// The failure with the lowest input index so far.
    failed: Option<(usize, Error)>,
}

impl<R> MapSink<R> {
    fn new(cell: Arc<Cell<Vec<R>>>, task: &'static str, len: usize) -> Self {
        Self {
            cell,
            task,
            state: Mutex::new(MapState {
                values: (0..len).map(|_| None).collect(),
                failed: None,
            }),
            remaining: AtomicUsize::new(len),
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> JobSink for MapSink<R> {
    fn deliver(&self, index: usize, result: CallResult) {
        self.deliver_many(vec![(index, result)]);
    }

    fn deliver_many(&self, delivered: Vec<(usize, CallResult)>) {
        let count = delivered.len();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (index, result) in delivered {
            state.store(index, convert(self.task, Some(index), result));
        }
        self.delivered(state, count);
    }

    fn deliver_values(&self, values: &[(usize, &[u8])], _pid: u32) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &(index, value) in values {
            let value = crate::codec::decode_value_in(self.task, Some(index), value);
            state.store(index, value);
        }
        self.delivered(state, values.len());
    }
}

impl<R> MapState<R> {
    /// Call `index` ended with `value`.
    fn store(&mut self, index: usize, value: Result<R>) {
        match value {
            Ok(value) => {
                if let Some(slot) = self.values.get_mut(index) {
                    *slot = Some(value);
                }
            }
            Err(e) => {
                if self.failed.as_ref().is_none_or(|(first, _)| index < *first) {
                    self.failed = Some((index, e));
                }
            }
        }
    }
}

impl<R: Send + 'static> MapSink<R> {
    /// `count` more calls were stored in `state`: the last one resolves the map.
    fn delivered(&self, mut state: std::sync::MutexGuard<'_, MapState<R>>, count: usize) {
        if self.remaining.fetch_sub(count, Ordering::AcqRel) == count {
            let failed = state.failed.take();
            let values = std::mem::take(&mut state.values);
            drop(state);
            let outcome = match failed {
                Some((_, e)) => Err(e),
                // Every call was delivered once: no slot is empty.
                None => values
                    .into_iter()
                    .collect::<Option<Vec<R>>>()
                    .ok_or(Error::PoolClosed),
            };
            self.cell.resolve(outcome);
        }
    }
}

struct ChannelSink {
    results: Mutex<Sender<(usize, CallResult)>>,
}

impl JobSink for ChannelSink {
    fn deliver(&self, index: usize, result: CallResult) {
        let sender = self
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The consumer may be gone (a dropped imap); its calls were cancelled.
        let _ = sender.send((index, result));
    }
}

impl Pool {
    /// A pool of `processes` workers.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for `Pool::new(0)`; see [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Self> {
        Self::builder().processes(processes).build()
    }

    /// A builder for a pool with more settings.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.inner.processes
    }

    /// The pool's counters: calls queued, running, done and failed; workers restarted and
    /// spawned; workers that died while running a call.
    pub fn counters(&self) -> PoolCounters {
        self.inner.handle.counters()
    }

    /// The URL of the live view this pool is shown in, with its access token; `None` when
    /// the pool was built without [`PoolBuilder::dashboard`] (or `OFFSPRING_DASHBOARD`).
    #[cfg(feature = "dashboard")]
    pub fn dashboard_url(&self) -> Option<String> {
        self.inner.dashboard_url.clone()
    }

    pub(crate) fn serving_pids(&self) -> Vec<u32> {
        self.inner.handle.serving_pids()
    }

    fn cell<R: Send + 'static>(&self, task: &'static str) -> Arc<Cell<R>> {
        Cell::new(task, Arc::clone(&self.inner.callbacks))
    }

    /// Submits a new job, with its span made here, in the caller's thread.
    /// Submits a job whose calls' in-flight leases are `leases` (ended by the scheduler, also
    /// when it refuses the job).
    fn submit(
        &self,
        task: &'static str,
        items: Vec<(usize, Vec<u8>)>,
        leases: Vec<(usize, Vec<u64>)>,
        chunk: usize,
        sink: Arc<dyn JobSink>,
    ) -> std::result::Result<JobId, ()> {
        let handle = &self.inner.handle;
        let id = handle.reserve();
        let span = handle.job_span(id, task, items.len());
        let spec = JobSpec {
            name: Arc::from(task),
            items,
            chunk,
            concurrent: self.inner.concurrent(task),
            is_async: is_async(task),
            sink,
            span,
            leases,
        };
        handle.submit_as(id, spec).map(|()| id).map_err(|_| ())
    }

    /// Runs `task(args)` on a worker and waits for its value.
    ///
    /// # Errors
    ///
    /// What offspring saw go wrong: [`Error::TaskPanicked`], [`Error::WorkerDied`],
    /// [`Error::TaskTimedOut`], [`Error::PoolClosed`], ...
    pub fn apply<S, T: Task<S>>(&self, task: T, args: T::Args) -> Result<T::Output> {
        self.apply_async(task, args).get()
    }

    /// Submits `task(args)` and returns at once.
    pub fn apply_async<S, T: Task<S>>(&self, task: T, args: T::Args) -> AsyncResult<T::Output> {
        let _ = task;
        let name = crate::task_trait::task_name::<T>();
        let cell = self.cell::<T::Output>(crate::task_trait::label::<T>(&name));
        match name
            .and_then(|name| crate::codec::encode_call(name, None, args).map(|call| (name, call)))
        {
            Err(e) => cell.resolve(Err(e)),
            Ok((name, (bytes, leases))) => {
                let sink = Arc::new(OneSink {
                    cell: Arc::clone(&cell),
                    task: name,
                });
                if self
                    .submit(name, vec![(0, bytes)], vec![(0, leases)], 1, sink)
                    .is_err()
                {
                    cell.resolve(Err(Error::PoolClosed));
                }
            }
        }
        AsyncResult::from_cell(cell)
    }

    /// The chunk size `map` picks: `ceil(len / (4 × processes))`, as Python does, so each
    /// worker gets about four chunks (enough to even out uneven items, few enough that the
    /// per-chunk round trip is amortized).
    fn auto_chunk(&self, len: usize) -> usize {
        len.div_ceil(4 * self.inner.processes).max(1)
    }

    /// Runs `task` on every item and returns the values in input order.
    ///
    /// # Errors
    ///
    /// The first failure in input order, naming its input index.
    pub fn map<S, T: Task<S>, I>(&self, task: T, iter: I) -> Result<Vec<T::Output>>
    where
        I: IntoIterator<Item = T::Args>,
    {
        self.map_async_with(task, iter, None).get()
    }

    /// As [`map`](Self::map), sending `chunksize` items to a worker at a time.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    pub fn map_chunked<S, T: Task<S>, I>(
        &self,
        task: T,
        iter: I,
        chunksize: usize,
    ) -> Result<Vec<T::Output>>
    where
        I: IntoIterator<Item = T::Args>,
    {
        self.map_async_with(task, iter, Some(chunksize)).get()
    }

    /// As [`map`](Self::map), returning at once. The input is consumed before it returns.
    pub fn map_async<S, T: Task<S>, I>(&self, task: T, iter: I) -> AsyncResult<Vec<T::Output>>
    where
        I: IntoIterator<Item = T::Args>,
    {
        self.map_async_with(task, iter, None)
    }

    /// Runs `task` on every tuple of arguments; the same as [`map`](Self::map) (tasks take
    /// their several parameters as one tuple).
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    pub fn starmap<S, T: Task<S>, I>(&self, task: T, iter: I) -> Result<Vec<T::Output>>
    where
        I: IntoIterator<Item = T::Args>,
    {
        self.map(task, iter)
    }

    /// As [`starmap`](Self::starmap), returning at once (Python's `starmap_async`). The input
    /// is consumed before it returns; callbacks attach as on any [`AsyncResult`].
    pub fn starmap_async<S, T: Task<S>, I>(&self, task: T, iter: I) -> AsyncResult<Vec<T::Output>>
    where
        I: IntoIterator<Item = T::Args>,
    {
        self.map_async_with(task, iter, None)
    }

    fn map_async_with<S, T: Task<S>, I>(
        &self,
        _task: T,
        iter: I,
        chunksize: Option<usize>,
    ) -> AsyncResult<Vec<T::Output>>
    where
        I: IntoIterator<Item = T::Args>,
    {
        let name = crate::task_trait::task_name::<T>();
        let cell = self.cell::<Vec<T::Output>>(crate::task_trait::label::<T>(&name));
        let name = match name {
            Ok(name) => name,
            Err(e) => {
                cell.resolve(Err(e));
                return AsyncResult::from_cell(cell);
            }
        };
        let (items, leases) = match crate::codec::encode_calls(name, iter.into_iter()) {
            Ok(encoded) => encoded,
            Err(e) => {
                cell.resolve(Err(e));
                return AsyncResult::from_cell(cell);
            }
        };
        if items.is_empty() {
            cell.resolve(Ok(Vec::new()));
            return AsyncResult::from_cell(cell);
        }
        let len = items.len();
        let chunk = chunksize.unwrap_or_else(|| self.auto_chunk(len)).max(1);
        let sink = Arc::new(MapSink::<T::Output>::new(Arc::clone(&cell), name, len));
        if self.submit(name, items, leases, chunk, sink).is_err() {
            cell.resolve(Err(Error::PoolClosed));
        }
        AsyncResult::from_cell(cell)
    }

    /// Runs `task` on every item, lazily, yielding each item's own result in input order.
    /// It pulls from `iter` only as results are consumed (at most
    /// `consumed + 2 × processes` items), so memory stays bounded on endless input; dropping
    /// the iterator cancels the items that have not started.
    ///
    /// If `iter` panics, it is not pulled again, the values of the items before it are still
    /// yielded, and the panic resumes (`std::panic::resume_unwind`) when the consumer reaches
    /// its position, as Python's `imap` raises there. [`imap_unordered`](Self::imap_unordered)
    /// resumes it at once, and [`map`](Self::map) lets it reach the caller; the pool stays
    /// usable either way.
    pub fn imap<S, T: Task<S>, I>(&self, task: T, iter: I) -> Imap<T::Output>
    where
        I: IntoIterator<Item = T::Args>,
        I::IntoIter: Send + 'static,
    {
        Imap::new(self, task, iter.into_iter(), true)
    }

    /// As [`imap`](Self::imap), yielding results in the order they complete.
    pub fn imap_unordered<S, T: Task<S>, I>(&self, task: T, iter: I) -> Imap<T::Output>
    where
        I: IntoIterator<Item = T::Args>,
        I::IntoIter: Send + 'static,
    {
        Imap::new(self, task, iter.into_iter(), false)
    }

    /// As [`imap`](Self::imap), sending `chunksize` items to a worker at a time (as Python's
    /// `imap(f, it, chunksize)`): ordered and lazy, each item with its own result. It pulls at
    /// most `consumed + 2 × chunksize × processes` items ahead.
    pub fn imap_chunked<S, T: Task<S>, I>(
        &self,
        task: T,
        iter: I,
        chunksize: usize,
    ) -> Imap<T::Output>
    where
        I: IntoIterator<Item = T::Args>,
        I::IntoIter: Send + 'static,
    {
        Imap::new(self, task, iter.into_iter(), true).chunked(chunksize)
    }

    /// As [`imap_chunked`](Self::imap_chunked), yielding results in the order they complete.
    pub fn imap_unordered_chunked<S, T: Task<S>, I>(
        &self,
        task: T,
        iter: I,
        chunksize: usize,
    ) -> Imap<T::Output>
    where
        I: IntoIterator<Item = T::Args>,
        I::IntoIter: Send + 'static,
    {
        Imap::new(self, task, iter.into_iter(), false).chunked(chunksize)
    }

    /// No more submissions (they fail with [`Error::PoolClosed`]); work already submitted
    /// finishes, then the workers exit.
    pub fn close(&self) {
        self.inner.handle.close();
    }

    /// After [`close`](Self::close): waits for all work, its callbacks, and the workers'
    /// exit.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the pool was not closed (the wait would never end).
    pub fn join(&self) -> Result<()> {
        if !self.inner.handle.is_closed() {
            return Err(Error::InvalidConfig {
                reason: "join() needs close() or terminate() first".into(),
            });
        }
        self.inner.handle.wait_drained(None);
        // Every result is delivered once drained, so every callback is scheduled by now.
        while !self.inner.callbacks.wait_idle(Duration::from_secs(3600)) {}
        Ok(())
    }

    /// Stops the workers now; pending results become [`Error::PoolClosed`].
    pub fn terminate(&self) {
        self.inner.handle.terminate();
        self.inner.handle.wait_drained(Some(TERMINATE_WAIT));
    }
}

/// The exact length of an iterator, when its size hint gives one.
fn iter_len_hint<I: Iterator>(iter: &I) -> Option<usize> {
    match iter.size_hint() {
        (low, Some(high)) if low == high => Some(low),
        _ => None,
    }
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: one `Result` per input item.
pub struct Imap<R> {
    pool: Pool,
    job: JobId,
    span: tracing::Span,
    task: &'static str,
    input: Box<dyn Iterator<Item = Result<EncodedCall>> + Send>,
    input_done: bool,
    sink: Arc<ChannelSink>,
    results: Receiver<(usize, CallResult)>,
    ready: BTreeMap<usize, Result<R>>,
    submitted: usize,
    yielded: usize,
    ordered: bool,
    window: usize,
    /// Calls sent to a worker together.
    chunk: usize,
    /// The input panicked when item `.0` was pulled: the panic resumes when the consumer
    /// reaches that position (ordered), or at once (unordered).
    input_panic: Option<(usize, Box<dyn std::any::Any + Send>)>,
    #[cfg(feature = "progress")]
    bar: Option<progress::Bar>,
}

impl<R> std::fmt::Debug for Imap<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("task", &self.task)
            .field("submitted", &self.submitted)
            .field("yielded", &self.yielded)
            .finish_non_exhaustive()
    }
}

impl<R: DeserializeOwned + Send + 'static> Imap<R> {
    fn new<S, T: Task<S, Output = R>, I>(pool: &Pool, _task: T, iter: I, ordered: bool) -> Self
    where
        I: Iterator<Item = T::Args> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let name = crate::task_trait::task_name::<T>();
        let label = crate::task_trait::label::<T>(&name);
        // A function that is no task fails every item, and nothing is sent.
        let name = name.map_err(|_| ());
        let input = iter.map(move |args| match name {
            Ok(name) => crate::codec::encode_call(name, None, args),
            Err(()) => Err(Error::NotATask {
                function: label.to_owned(),
            }),
        });
        let job = pool.inner.handle.reserve();
        // Unknown for an iterator without an exact length: shown as 0.
        let calls = iter_len_hint(&input).unwrap_or(0);
        Self {
            pool: pool.clone(),
            job,
            span: pool.inner.handle.job_span(job, label, calls),
            task: label,
            input: Box::new(input),
            input_done: false,
            sink: Arc::new(ChannelSink {
                results: Mutex::new(tx),
            }),
            results: rx,
            ready: BTreeMap::new(),
            submitted: 0,
            yielded: 0,
            ordered,
            // Calls run at once on a worker (an async task's) count as that many workers.
            window: IMAP_AHEAD * pool.inner.processes * pool.inner.concurrent(label),
            chunk: 1,
            input_panic: None,
            #[cfg(feature = "progress")]
            bar: None,
        }
    }

    /// Sends `chunksize` calls at a time, and reads far enough ahead to keep every worker
    /// busy with them.
    fn chunked(mut self, chunksize: usize) -> Self {
        self.chunk = chunksize.max(1);
        self.window = self.window.max(2 * self.chunk * self.pool.inner.processes);
        self
    }

    /// Shows a progress bar on stderr as results are consumed: items done (of how many, when
    /// the input's length is known), failures, rate and time left. Hidden when stderr is not
    /// a terminal. Needs the `progress` feature (on by default).
    ///
    /// ```standalone_crate
    /// #[offspring::task]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// # offspring::test_support!();
    /// fn main() -> offspring::Result<()> {
    ///     offspring::init();
    ///     let pool = offspring::Pool::new(2)?;
    ///     let total: u64 = pool
    ///         .imap(square, 0..100u64)
    ///         .progress()
    ///         .map(|r| r.unwrap_or(0))
    ///         .sum();
    ///     assert_eq!(total, 328_350);
    ///     Ok(())
    /// }
    /// ```
    #[cfg(feature = "progress")]
    #[must_use]
    pub fn progress(mut self) -> Self {
        self.bar = Some(progress::Bar::new(self.task, iter_len_hint(&self.input)));
        self
    }

    /// Pulls and submits input while fewer than `window` items are ahead of the consumer, in
    /// groups of `chunk` calls (fewer at the end of the input or of the window).
    fn top_up(&mut self) {
        let mut group: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut leases: Vec<(usize, Vec<u64>)> = Vec::new();
        while !self.input_done && self.submitted - self.yielded < self.window {
            let pulled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.input.next()));
            let item = match pulled {
                Ok(Some(item)) => item,
                Ok(None) => {
                    self.input_done = true;
                    break;
                }
                Err(payload) => {
                    // The input is not pulled again; the values before it are still yielded.
                    self.input_done = true;
                    self.input_panic = Some((self.submitted, payload));
                    break;
                }
            };
            let index = self.submitted;
            self.submitted += 1;
            match item {
                Err(mut e) => {
                    if let Error::Serialization { index: slot, .. } = &mut e {
                        *slot = Some(index);
                    }
                    self.ready.insert(index, Err(e));
                }
                Ok((bytes, tokens)) => {
                    if !tokens.is_empty() {
                        leases.push((index, tokens));
                    }
                    group.push((index, bytes));
                    if group.len() >= self.chunk {
                        self.submit(std::mem::take(&mut group), std::mem::take(&mut leases));
                    }
                }
            }
        }
        if !group.is_empty() {
            self.submit(group, leases);
        }
    }

    fn submit(&mut self, items: Vec<(usize, Vec<u8>)>, leases: Vec<(usize, Vec<u64>)>) {
        let indices: Vec<usize> = items.iter().map(|(index, _)| *index).collect();
        let spec = JobSpec {
            name: Arc::from(self.task),
            items,
            chunk: self.chunk,
            concurrent: self.pool.inner.concurrent(self.task),
            is_async: is_async(self.task),
            sink: Arc::clone(&self.sink) as Arc<dyn JobSink>,
            span: self.span.clone(),
            leases,
        };
        // A refused part's leases were ended by the pool.
        if self.pool.inner.handle.submit_as(self.job, spec).is_err() {
            for index in indices {
                self.ready.insert(index, Err(Error::PoolClosed));
            }
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> Iterator for Imap<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.top_up();
            let due = match &self.input_panic {
                Some((at, _)) => !self.ordered || self.yielded == *at,
                None => false,
            };
            if due && let Some((_, payload)) = self.input_panic.take() {
                std::panic::resume_unwind(payload);
            }
            let next = if self.ordered {
                self.ready.remove(&self.yielded)
            } else {
                self.ready.pop_first().map(|(_, value)| value)
            };
            if let Some(value) = next {
                self.yielded += 1;
                #[cfg(feature = "progress")]
                if let Some(bar) = &mut self.bar {
                    bar.tick(value.is_ok());
                }
                return Some(value);
            }
            if self.yielded == self.submitted && self.input_done {
                #[cfg(feature = "progress")]
                if let Some(bar) = self.bar.take() {
                    bar.finish();
                }
                return None;
            }
            match self.results.recv() {
                Ok((index, result)) => {
                    let value = convert(self.task, Some(index), result);
                    self.ready.insert(index, value);
                }
                // Every sender is gone: the pool stopped without delivering the rest.
                Err(_) => {
                    self.yielded += 1;
                    return Some(Err(Error::PoolClosed));
                }
            }
        }
    }
}

impl<R> Drop for Imap<R> {
    fn drop(&mut self) {
        self.pool.inner.handle.cancel(self.job);
    }
}

#[cfg(feature = "progress")]
mod progress {
    //! The progress bar of [`Imap::progress`](super::Imap::progress).

    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

    /// A bar on stderr (drawn only when stderr is a terminal) counting consumed results.
    pub(super) struct Bar {
        bar: ProgressBar,
        failed: u64,
    }

    impl Bar {
        pub(super) fn new(task: &str, len: Option<usize>) -> Self {
            let bar = match len {
                Some(len) => {
                    ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr())
                }
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = match len {
                Some(_) => "{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}",
                None => "{prefix} {spinner} {pos} done {msg} {per_sec}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(task.to_owned());
            Self { bar, failed: 0 }
        }

        pub(super) fn tick(&mut self, ok: bool) {
            if !ok {
                self.failed += 1;
                self.bar.set_message(format!("({} failed)", self.failed));
            }
            self.bar.inc(1);
        }

        pub(super) fn finish(self) {
            self.bar.finish();
        }
    }

    impl Drop for Bar {
        fn drop(&mut self) {
            if !self.bar.is_finished() {
                self.bar.abandon();
            }
        }
    }
}
