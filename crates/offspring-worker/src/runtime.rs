//! A worker's lifecycle, step by step:
//!
//! 1. **spawn**: the parent re-executes its own binary with the worker variables set;
//!    `offspring::init()`, first in `main`, takes them out of the environment and calls
//!    [`run`], which never returns.
//! 2. **arm**: ignore SIGINT (Ctrl-C is the parent's decision) and, where the OS offers it,
//!    ask to be killed when the parent dies, then check the parent is still there.
//! 3. **connect and handshake** on the `offspring-io` thread, which runs a small tokio
//!    runtime and owns the socket; failures print one line on stderr and exit with a
//!    distinct code ([`EXIT_HANDSHAKE`], ...).
//! 4. **serve**: the thread that called `init()` (the main thread; the harness's test thread
//!    under `test_support!`) runs sync tasks one at a time (and an async task's calls on a
//!    runtime of its own, up to the configured number at once),
//!    never inside an async runtime, so a task may block or start its own runtime. The
//!    `offspring-io` thread keeps reading the socket all the while: that is the lifeline.
//!    When the parent's end closes, the worker exits at once, even if a task is spinning.
//!    On Unix the task thread writes its own reports to the socket; the i/o thread writes
//!    what nobody waits for, such as log records (see `outbox`).
//! 5. **drain**: on `Shutdown` the running task finishes, its reply and pending log records
//!    are flushed (bounded by [`FLUSH_TIMEOUT`]), and the process exits with status 0.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offspring_transport::{
    BuildIdentity, ENV_NO_PDEATHSIG, Endpoint, FrameReader, HandshakeError, Segment, WorkerEnv,
    build_identity, connect, connect_handshake, sys,
};
use offspring_wire::{FromWorker, Outcome, RunTask, ToWorker, WorkerConfig, decode, encode};
use tracing_subscriber::layer::SubscriberExt;

use crate::forward::{CURRENT_TASK, ForwardLayer};
use crate::outbox::Outbox;
use crate::reports::{DOORBELL_DELAY, Doorbell, Ring, Scribble, report};
use crate::{RunError, TaskTable, task_table};

pub use offspring_transport::{EXIT_BAD_ENV, EXIT_BAD_TABLE, EXIT_HANDSHAKE, EXIT_PARENT_GONE};

/// How long the drain step waits for the last frames to be written.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The parent's pid, once this process runs as a worker.
static PARENT_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The pid of the process that started this one as a worker; `None` when this process is not
/// a worker.
pub fn parent_pid() -> Option<u32> {
    PARENT_PID.get().copied()
}

/// Whether a launcher started this worker on another machine (see
/// [`offspring_transport::ENV_REMOTE`]).
static REMOTE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether this process is a worker its launcher started elsewhere (another machine, a Slurm
/// step): shared memory of its parent is not reachable from it.
pub fn is_remote() -> bool {
    REMOTE.get().copied().unwrap_or(false)
}

/// Test switch: a worker over TCP flips one bit of its sealed write with this number (see
/// `FrameWriter::corrupt_sealed_write`), as a tampering network would.
pub const ENV_TEST_CORRUPT_SEALED: &str = "OFFSPRING_TEST_CORRUPT_SEALED";

/// The name of the thread that owns the socket.
const IO_THREAD: &str = "offspring-io";

/// How long connecting and the handshake may take in total.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs this process as a worker for the parent described by `env`. Never returns.
pub fn run(env: WorkerEnv) -> ! {
    let _ = PARENT_PID.set(env.parent_pid);
    let _ = REMOTE.set(env.remote);
    sys::ignore_interrupt();
    // A remote worker's parent process is its launcher's (a Slurm step's `slurmstepd`): it
    // lives by its connection and heartbeats instead.
    if !env.remote
        && std::env::var_os(ENV_NO_PDEATHSIG).is_none()
        && !sys::arm_parent_death(env.parent_pid, EXIT_PARENT_GONE)
    {
        std::process::exit(EXIT_PARENT_GONE);
    }
    let table = match task_table() {
        Ok(table) => table,
        Err(e) => fail(EXIT_BAD_TABLE, &e),
    };
    let identity = build_identity(table.descriptions());
    #[cfg(target_os = "linux")]
    let side = env.side.and_then(|fd| {
        offspring_transport::channel::Channel::inherited(fd)
            .map_err(|e| {
                eprintln!("offspring worker: no side channel ({e}); pipes go through the parent")
            })
            .ok()
    });
    #[cfg(not(target_os = "linux"))]
    let side = None;
    let (task_tx, task_rx) = std::sync::mpsc::channel::<RunTask>();
    // Rung with each batch (and `Shutdown`), for a task thread serving async calls.
    let wake = Arc::new(tokio::sync::Notify::new());
    let io_wake = Arc::clone(&wake);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let io = std::thread::Builder::new()
        .name(IO_THREAD.into())
        .spawn(move || io_thread(env, identity, task_tx, io_wake, ready_tx));
    if let Err(e) = io {
        fail(EXIT_HANDSHAKE, &format!("cannot start the i/o thread: {e}"));
    }
    let (config, outbox, ring) = match ready_rx.recv() {
        Ok(Ok(ready)) => ready,
        Ok(Err(message)) => fail(EXIT_HANDSHAKE, &message),
        Err(_) => fail(
            EXIT_HANDSHAKE,
            "the i/o thread stopped during the handshake",
        ),
    };
    crate::client::install(Arc::clone(&outbox), side);
    install_logging(&config, Arc::clone(&outbox));
    install_panic_hook();
    install_exit_flush(&outbox);
    serve(table, &task_rx, &wake, &outbox, ring, &config);
    outbox.flush(Instant::now() + FLUSH_TIMEOUT);
    // Through the C runtime's `exit`, so a task's own `atexit` handlers run on Windows too.
    sys::exit(0);
}

/// How long a task's own `exit` waits for its queued records to be written.
const EXIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// A task that calls `std::process::exit` still gets its last log lines to the parent: the
/// exit handler flushes the queue first.
fn install_exit_flush(outbox: &Arc<Outbox>) {
    let outbox = Arc::clone(outbox);
    offspring_transport::sys::at_exit(move || {
        // The i/o thread exits when the parent is gone: nothing can be written then, and it
        // must not block on a full socket.
        if std::thread::current().name() != Some(IO_THREAD) {
            outbox.flush(Instant::now() + EXIT_FLUSH_TIMEOUT);
        }
    });
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("offspring worker {}: {message}", std::process::id());
    std::process::exit(code);
}

fn install_logging(config: &WorkerConfig, out: Arc<Outbox>) {
    let filter = worker_filter(&config.log_filter);
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(ForwardLayer::new(out));
    // A worker runs no user code before this point, so no subscriber can be set yet; if one
    // somehow is, keep it rather than fail the worker.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The worker's filter for the parent's log directives (`RUST_LOG` syntax), so the worker
/// does not forward records the parent would discard. Only targets and levels count: a
/// directive's span and field conditions (`target[span{field=1}]=debug`) are dropped, which
/// lets through a superset of what the parent keeps (it filters again with its own
/// subscriber). This keeps the regular-expression engine a full `EnvFilter` needs out of
/// every program's binary, and of every worker's memory. Directives that do not parse give
/// `info`.
fn worker_filter(directives: &str) -> tracing_subscriber::filter::Targets {
    let simplified: Vec<String> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(without_conditions)
        .collect();
    simplified.join(",").parse().unwrap_or_else(|_| {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
    })
}

/// `target[span{field=value}]=level` without its bracketed span and field conditions.
fn without_conditions(directive: &str) -> String {
    let mut out = String::with_capacity(directive.len());
    let mut depth = 0usize;
    for c in directive.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

thread_local! {
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A panic on the task thread becomes the task's `Panicked` outcome, with its location; it is
/// not printed (the parent gets it as an error value). Panics elsewhere keep the default
/// report.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_TASK.with(std::cell::Cell::get) {
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
        } else {
            previous(info);
        }
    }));
}

/// The message of a caught panic's payload (a `&str` or a `String`, as `panic!` makes).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("panic with a non-string payload")
    }
}

/// Runs `f` as part of call `index` of batch `task_id`: its log records go out under that
/// call, and a panic in it is the call's `Panicked` outcome.
fn in_call<R>(task_id: u64, index: u32, f: impl FnOnce() -> R) -> Result<R, Outcome> {
    CURRENT_TASK.with(|c| c.set(Some((task_id, index))));
    IN_TASK.with(|c| c.set(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    IN_TASK.with(|c| c.set(false));
    CURRENT_TASK.with(|c| c.set(None));
    result.map_err(|payload| Outcome::Panicked {
        message: panic_message(payload.as_ref()),
        location: PANIC_LOCATION.with(|slot| slot.borrow_mut().take()),
    })
}

/// The outcome of a call whose body returned.
fn outcome_of(result: Result<Vec<u8>, RunError>) -> Outcome {
    match result {
        Ok(bytes) => Outcome::Value(bytes),
        Err(RunError::BadArgs(e)) => Outcome::BadArgs(e),
        Err(RunError::BadResult(e)) => Outcome::BadResult(e),
    }
}

fn call(entry: &crate::TaskEntry, task_id: u64, index: u32, args: Vec<u8>) -> Outcome {
    in_call(task_id, index, || entry.run(args)).map_or_else(|panicked| panicked, outcome_of)
}

fn serve(
    table: &TaskTable,
    tasks: &std::sync::mpsc::Receiver<RunTask>,
    wake: &tokio::sync::Notify,
    out: &Outbox,
    mut ring: Option<Ring>,
    config: &WorkerConfig,
) {
    let time_calls = config.time_calls;
    let concurrency = config.async_concurrency;
    let limit = config.task_timeout_ms.map(Duration::from_millis);
    let mut dropped_reported = 0;
    let mut scribble = ring.as_ref().and_then(|_| Scribble::from_env());
    // A batch that arrived while async calls ran, and waited for them to end.
    let mut deferred: Option<RunTask> = None;
    loop {
        let run = match deferred.take() {
            Some(run) => run,
            None => match next_run(tasks, &mut ring) {
                Some(run) => run,
                None => break,
            },
        };
        if concurrency > 1 && table.get(&run.name).is_some_and(crate::TaskEntry::is_async) {
            let mut serving = AsyncServing {
                table,
                tasks,
                wake,
                out,
                time_calls,
                limit,
                ring: &mut ring,
                scribble: &mut scribble,
                dropped_reported: &mut dropped_reported,
            };
            deferred = serving.run(run);
            continue;
        }
        let task_id = run.task_id;
        // Sent on its own, so the parent knows the batch runs (its timeline, its timeouts).
        let mut last_report = out
            .send(report(&FromWorker::Started { task_id }))
            .unwrap_or(0);
        let entry = table.get(&run.name);
        let calls = run.items.len();
        let mut tail = Vec::with_capacity(3);
        // Calls are timed only for a parent that writes a timeline, with one clock read per
        // call: a call's end is the next one's start (so a call's time includes publishing
        // the previous outcome, a fraction of a microsecond). Otherwise their times are 0.
        let mut began: Option<std::time::Instant> = None;
        for (index, args) in run.items.into_iter().enumerate() {
            let index_u32 = u32::try_from(index).unwrap_or(u32::MAX);
            let more = index + 1 < calls;
            match &ring {
                // The call is started in the segment before it runs; `Started` is in the
                // socket before the batch's first call (the parent's timeline and timeouts
                // rely on it, and on Windows the i/o thread writes it).
                Some(_) => {
                    if index == 0 {
                        out.wait_written(last_report);
                    }
                }
                // The reports so far (`Started` too, which the parent's timeline and
                // timeouts rely on) must survive this call killing the process (see
                // `outbox`); with a direct writer they are already in the socket and this
                // is a counter check.
                None => out.wait_written(last_report),
            }
            let start = time_calls.then(|| *began.get_or_insert_with(std::time::Instant::now));
            if let Some(ring) = &ring {
                ring.start(task_id, index, start);
            }
            let outcome = match entry {
                None => Outcome::UnknownTask,
                // An async task's calls one at a time: on the runtime, each cancelled at the
                // task timeout.
                Some(entry) if entry.is_async() => {
                    match start_call(entry, task_id, index_u32, &args.0) {
                        Ok(call) => crate::block_on(within(call, limit)),
                        Err(outcome) => outcome,
                    }
                }
                Some(entry) => call(entry, task_id, index_u32, args.0),
            };
            let elapsed_us = match start {
                Some(start) => {
                    let ended = std::time::Instant::now();
                    began = Some(ended);
                    u64::try_from(ended.duration_since(start).as_micros()).unwrap_or(u64::MAX)
                }
                None => 0,
            };
            let call = Published {
                task_id,
                index: index_u32,
                elapsed_us,
                more,
            };
            call.publish(
                outcome,
                out,
                &mut ring,
                &mut scribble,
                &mut last_report,
                &mut tail,
            );
        }
        let _ = finish_batch(task_id, out, ring.as_ref(), &mut dropped_reported, tail);
    }
}

/// Ends a batch: `tail` (the last call's report, if it goes as a frame), the dropped-log
/// count when it grew, and `Finished`. Returns the number of the last frame sent, if any.
fn finish_batch(
    task_id: u64,
    out: &Outbox,
    ring: Option<&Ring>,
    dropped_reported: &mut u64,
    mut tail: Vec<Vec<u8>>,
) -> Option<u64> {
    let dropped = out
        .log_counters()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    if dropped != *dropped_reported {
        *dropped_reported = dropped;
        tail.extend(report(&FromWorker::LogsDropped { total: dropped }));
    }
    tail.extend(report(&FromWorker::Finished { task_id }));
    if let Some(ring) = ring {
        ring.announced();
    }
    out.send(tail)
}

/// One call's report, about to go out.
struct Published {
    task_id: u64,
    index: u32,
    elapsed_us: u64,
    /// Whether calls of the batch follow.
    more: bool,
}

impl Published {
    /// Publishes the outcome in the ring, or sends it as an `Item` frame (the batch's last
    /// goes into `tail`, out with the end).
    fn publish(
        self,
        outcome: Outcome,
        out: &Outbox,
        ring: &mut Option<Ring>,
        scribble: &mut Option<Scribble>,
        last_report: &mut u64,
        tail: &mut Vec<Vec<u8>>,
    ) {
        if let Some(client) = crate::client::client() {
            client.return_lent();
            // The parent may read the ring before frames sent earlier, and operations on
            // the side channel keep no order with anything else: what this call did
            // through one-way operations is applied first.
            if ring.is_some() || client.has_side() {
                client.sync_one_way();
            }
        }
        if let Some(ring) = ring {
            ring.publish(
                out,
                self.task_id,
                self.index,
                self.elapsed_us,
                outcome,
                self.more,
            );
            if let Some(scribble) = scribble {
                scribble.after_call(ring);
            }
            return;
        }
        let item = report(&FromWorker::Item {
            task_id: self.task_id,
            index: self.index,
            outcome,
            elapsed_us: self.elapsed_us,
        });
        if self.more {
            *last_report = out.send(item).unwrap_or(*last_report);
        } else {
            tail.extend(item);
        }
    }
}

/// The next batch from the parent, giving the ring's pages back while idle; `None` once the
/// parent said `Shutdown` (or is gone).
fn next_run(
    tasks: &std::sync::mpsc::Receiver<RunTask>,
    ring: &mut Option<Ring>,
) -> Option<RunTask> {
    loop {
        match ring.as_ref().and_then(Ring::trim_after) {
            None => return tasks.recv().ok(),
            Some(idle) => match tasks.recv_timeout(idle) {
                Ok(run) => return Some(run),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(ring) = ring {
                        ring.trim();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
            },
        }
    }
}

/// Serving an async task's calls, several at once, on the task thread's runtime: each batch
/// the parent sends (one call each, as many as the configured concurrency) starts when it
/// arrives, even while others run, and reports the moment it ends.
struct AsyncServing<'a> {
    table: &'a TaskTable,
    tasks: &'a std::sync::mpsc::Receiver<RunTask>,
    /// Rung by the i/o thread when a batch arrives or the parent says `Shutdown`.
    wake: &'a tokio::sync::Notify,
    out: &'a Outbox,
    time_calls: bool,
    /// The task timeout: a call running longer is cancelled.
    limit: Option<Duration>,
    ring: &'a mut Option<Ring>,
    scribble: &'a mut Option<Scribble>,
    dropped_reported: &'a mut u64,
}

/// An async batch in flight: its calls' outcomes, reported in order as they end.
struct AsyncBatch {
    ended: Vec<Option<(Outcome, u64)>>,
    next: usize,
    last_report: u64,
    tail: Vec<Vec<u8>>,
}

impl AsyncServing<'_> {
    /// Runs `first` and every async batch that arrives while calls run; returns once none
    /// runs, with a batch that must wait for that (a sync task's), if one came.
    fn run(&mut self, first: RunTask) -> Option<RunTask> {
        crate::block_on(async {
            let local = tokio::task::LocalSet::new();
            local.run_until(self.serve(first)).await
        })
    }

    async fn serve(&mut self, first: RunTask) -> Option<RunTask> {
        let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
        let mut batches: HashMap<u64, AsyncBatch> = HashMap::new();
        let mut arrived = Some(first);
        let mut deferred = None;
        let mut closed = false;
        loop {
            while deferred.is_none() {
                let run = match arrived.take() {
                    Some(run) => run,
                    None if closed => break,
                    None => match self.tasks.try_recv() {
                        Ok(run) => run,
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    },
                };
                match self.table.get(&run.name) {
                    Some(entry) if entry.is_async() => {
                        let batch = self.start(entry, &run, &done_tx);
                        batches.insert(run.task_id, batch);
                    }
                    // A sync task (or an unknown one) runs once these calls have ended.
                    _ => deferred = Some(run),
                }
            }
            if batches.is_empty() {
                return deferred;
            }
            tokio::select! {
                Some((task_id, index, outcome, elapsed_us)) = done.recv() => {
                    self.ended(&mut batches, task_id, index, outcome, elapsed_us);
                }
                () = self.wake.notified(), if deferred.is_none() && !closed => {}
            }
        }
    }

    /// Says the batch began and starts each of its calls.
    fn start(
        &mut self,
        entry: &crate::TaskEntry,
        run: &RunTask,
        done: &tokio::sync::mpsc::UnboundedSender<(u64, usize, Outcome, u64)>,
    ) -> AsyncBatch {
        let task_id = run.task_id;
        // `Started` is in the socket before the calls run (the parent blames every call of
        // a batch that began when the worker dies).
        let last_report = self
            .out
            .send(report(&FromWorker::Started { task_id }))
            .unwrap_or(0);
        self.out.wait_written(last_report);
        for (index, args) in run.items.iter().enumerate() {
            let index_u32 = u32::try_from(index).unwrap_or(u32::MAX);
            let started = self.time_calls.then(Instant::now);
            let call = start_call(entry, task_id, index_u32, &args.0);
            let done = done.clone();
            let limit = self.limit;
            tokio::task::spawn_local(async move {
                let outcome = match call {
                    Ok(call) => within(call, limit).await,
                    Err(outcome) => outcome,
                };
                let elapsed_us = started.map_or(0, |started| {
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
                });
                let _ = done.send((task_id, index, outcome, elapsed_us));
            });
        }
        AsyncBatch {
            ended: run.items.iter().map(|_| None).collect(),
            next: 0,
            last_report,
            tail: Vec::new(),
        }
    }

    /// A call ended: reports what of its batch can go now, in order, and ends the batch
    /// once all of it has.
    fn ended(
        &mut self,
        batches: &mut HashMap<u64, AsyncBatch>,
        task_id: u64,
        index: usize,
        outcome: Outcome,
        elapsed_us: u64,
    ) {
        let Some(batch) = batches.get_mut(&task_id) else {
            return;
        };
        if let Some(slot) = batch.ended.get_mut(index) {
            *slot = Some((outcome, elapsed_us));
        }
        let calls = batch.ended.len();
        while let Some((outcome, elapsed_us)) =
            batch.ended.get_mut(batch.next).and_then(Option::take)
        {
            let index_u32 = u32::try_from(batch.next).unwrap_or(u32::MAX);
            batch.next += 1;
            let call = Published {
                task_id,
                index: index_u32,
                elapsed_us,
                more: batch.next < calls,
            };
            call.publish(
                outcome,
                self.out,
                self.ring,
                self.scribble,
                &mut batch.last_report,
                &mut batch.tail,
            );
        }
        if batch.next == calls
            && let Some(batch) = batches.remove(&task_id)
        {
            let sent = finish_batch(
                task_id,
                self.out,
                self.ring.as_ref(),
                self.dropped_reported,
                batch.tail,
            );
            // In the socket before any other call runs on: a sibling call that ends the
            // process must not take this batch's report with it.
            if let Some(sent) = sent {
                self.out.wait_written(sent);
            }
        }
    }
}

/// An async task's call, started: its arguments decoded (a panic there is the call's
/// outcome, as in a sync call), its future ready to poll.
fn start_call(
    entry: &crate::TaskEntry,
    task_id: u64,
    index: u32,
    args: &[u8],
) -> Result<Caught, Outcome> {
    match in_call(task_id, index, || entry.start(args))? {
        Some(Ok(future)) => Ok(Caught::new(future, task_id, index)),
        Some(Err(e)) => Err(outcome_of(Err(e))),
        None => Err(Outcome::UnknownTask),
    }
}

/// Runs an async call to its end, or cancels it (drops its future) at `limit`.
async fn within(call: Caught, limit: Option<Duration>) -> Outcome {
    let Some(limit) = limit else {
        return call.await;
    };
    let started = Instant::now();
    match tokio::time::timeout(limit, call).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::TimedOut {
            after_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
    }
}

/// An async call's future, polled with its call marked current (so its log records go out
/// under its call) and its panics caught as its outcome, at the poll that panicked.
struct Caught {
    future: crate::CallFuture,
    task_id: u64,
    index: u32,
}

impl Caught {
    fn new(future: crate::CallFuture, task_id: u64, index: u32) -> Self {
        Self {
            future,
            task_id,
            index,
        }
    }
}

impl std::future::Future for Caught {
    type Output = Outcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        let (task_id, index) = (self.task_id, self.index);
        match in_call(task_id, index, || self.future.as_mut().poll(cx)) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(result)) => std::task::Poll::Ready(outcome_of(result)),
            Err(panicked) => std::task::Poll::Ready(panicked),
        }
    }
}

fn io_thread(
    env: WorkerEnv,
    identity: BuildIdentity,
    tasks: std::sync::mpsc::Sender<RunTask>,
    wake: Arc<tokio::sync::Notify>,
    ready: std::sync::mpsc::SyncSender<Result<Ready, String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the i/o runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        if matches!(env.endpoint, Endpoint::Tcp(_)) {
            // The digest of the executable (computed once) before dialling: it must not eat
            // into the parent's handshake timeout.
            let _ = identity.portable();
        }
        let handshake = async {
            let mut pause = Duration::from_millis(20);
            loop {
                let attempt = async {
                    let mut conn = connect(&env.endpoint)
                        .await
                        .map_err(|e| (true, e.to_string()))?;
                    let config =
                        connect_handshake(&mut conn, env.worker_id, &env.secret, &identity)
                            .await
                            .map_err(|e| (matches!(e, HandshakeError::Wire(_)), e.to_string()))?;
                    Ok::<_, (bool, String)>((conn, config))
                };
                match attempt.await {
                    Ok(done) => return Ok::<_, String>(done),
                    // A parent whose TCP strangers are at their cap closes new connections
                    // at once (it cannot tell this worker from them before the hello), and
                    // a parent's port may not take connections yet: dial again until the
                    // deadline. A refusal or a failed proof is final.
                    Err((true, _)) if matches!(env.endpoint, Endpoint::Tcp(_)) => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                    }
                    Err((_, message)) => return Err(message),
                }
            }
        };
        let (mut conn, config) = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(done)) => done,
            Ok(Err(message)) => {
                let _ = ready.send(Err(message));
                return;
            }
            Err(_) => {
                let _ = ready.send(Err(
                    "the parent did not complete the handshake in time".into()
                ));
                return;
            }
        };
        let remote = conn.is_remote();
        let direct = conn.take_direct_writer();
        let offspring_transport::Conn {
            reader, mut writer, ..
        } = conn;
        if let Some(n) = std::env::var(ENV_TEST_CORRUPT_SEALED)
            .ok()
            .and_then(|n| n.parse().ok())
        {
            writer.corrupt_sealed_write(n);
        }
        // The task thread writes its own frames where the platform allows (see `outbox`);
        // this thread writes the rest, and keeps reading.
        let outbox = Arc::new(Outbox::new(direct));
        let ring = open_ring(&config, &outbox);
        let segment = ring.as_ref().map(Ring::segment);
        let _ = ready.send(Ok((config, Arc::clone(&outbox), ring)));
        if remote {
            if let Ok(frame) = encode(&FromWorker::Node {
                host: sys::hostname(),
            }) {
                let _ = outbox.post(frame, false);
            }
            let beats = Arc::clone(&outbox);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(offspring_wire::HEARTBEAT);
                loop {
                    every.tick().await;
                    if let Ok(frame) = encode(&FromWorker::Heartbeat) {
                        let _ = beats.post(frame, false);
                    }
                }
            });
        }
        tokio::spawn(async move { outbox.run_writer(writer).await });
        lifeline(reader, tasks, &wake, segment).await;
    });
}

/// What the i/o thread hands the task thread once connected.
type Ready = (WorkerConfig, Arc<Outbox>, Option<Ring>);

/// Maps the outcome segment the parent named, if any, and starts the delayed doorbell on
/// this runtime. Without a segment, or if it cannot be mapped, calls report in frames.
fn open_ring(config: &WorkerConfig, outbox: &Arc<Outbox>) -> Option<Ring> {
    let named = config.segment?;
    let segment = match Segment::open(named.handle, named.len) {
        Ok(segment) => segment,
        Err(e) => {
            eprintln!(
                "offspring worker {}: cannot map the outcome segment ({e}); reporting in frames",
                std::process::id()
            );
            return None;
        }
    };
    let doorbell = Arc::new(Doorbell::default());
    let ring = Ring::attach(Arc::new(segment), Arc::clone(&doorbell))?;
    let outbox = Arc::clone(outbox);
    tokio::spawn(async move {
        loop {
            doorbell.wake.notified().await;
            tokio::time::sleep(DOORBELL_DELAY).await;
            if doorbell.take()
                && let Ok(frame) = encode(&FromWorker::Doorbell)
            {
                let _ = outbox.post(frame, false);
            }
        }
    });
    Some(ring)
}

/// Reads the parent's messages for as long as the connection lives. The end of the stream,
/// or a frame that does not decode, means the parent is gone (or broken): exit now.
async fn lifeline(
    mut reader: FrameReader,
    tasks: std::sync::mpsc::Sender<RunTask>,
    wake: &tokio::sync::Notify,
    segment: Option<Arc<Segment>>,
) {
    let mut tasks = Some(tasks);
    loop {
        // A TCP reader fails by itself after `SILENCE_LIMIT` without a byte.
        match reader.read_frame().await {
            Ok(Some(body)) => match decode::<ToWorker>(&body) {
                Ok(ToWorker::Run(run)) => {
                    if let Some(tasks) = &tasks {
                        let _ = tasks.send(run);
                        wake.notify_one();
                    }
                }
                Ok(ToWorker::RunShared(shared)) => {
                    let run = match take_shared(segment.as_deref(), shared) {
                        Ok(run) => run,
                        Err(e) => {
                            eprintln!(
                                "offspring worker {}: the parent's arena: {e}",
                                std::process::id()
                            );
                            std::process::exit(EXIT_PARENT_GONE);
                        }
                    };
                    if let Some(tasks) = &tasks {
                        let _ = tasks.send(run);
                        wake.notify_one();
                    }
                }
                // Closing the task channel lets the task thread finish, flush and exit.
                Ok(ToWorker::Shutdown) => {
                    tasks = None;
                    wake.notify_one();
                }
                Ok(ToWorker::Reply { call_id, reply }) => {
                    if let Some(client) = crate::client::client() {
                        client.deliver(call_id, reply);
                    }
                }
                Ok(ToWorker::Recall { id }) => {
                    if let Some(client) = crate::client::client() {
                        client.recall(id);
                    }
                }
                Ok(ToWorker::Heartbeat) => {}
                Err(e) => {
                    eprintln!(
                        "offspring worker {}: malformed message from the parent: {e}",
                        std::process::id()
                    );
                    std::process::exit(EXIT_PARENT_GONE);
                }
            },
            Ok(None) => std::process::exit(EXIT_PARENT_GONE),
            Err(e) => {
                if remote_error(&e) {
                    eprintln!(
                        "offspring worker {}: the connection to the parent failed: {e}",
                        std::process::id()
                    );
                }
                std::process::exit(EXIT_PARENT_GONE);
            }
        }
    }
}

/// Whether a read error says more than "the parent is gone": silence or a frame that failed
/// to open, on a TCP connection.
fn remote_error(error: &offspring_wire::WireError) -> bool {
    matches!(error, offspring_wire::WireError::Io(e)
        if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::InvalidData))
}

/// The batch of a `RunShared`, with its calls' arguments copied out of the to-worker arena
/// (each checked against its checksum). The parent writes nothing there until the batch
/// ended, so the copy may be taken now, before the calls run.
fn take_shared(
    segment: Option<&Segment>,
    shared: offspring_wire::SharedRun,
) -> Result<RunTask, String> {
    let offspring_wire::SharedRun { mut run, shared } = shared;
    let to_worker = segment
        .and_then(|segment| offspring_wire::arena::parts(segment.words()).to_worker)
        .ok_or("a batch names an arena this worker does not have")?;
    for arg in shared {
        let item = run
            .items
            .get_mut(arg.index as usize)
            .ok_or("a batch names an argument it does not have")?;
        let len = usize::try_from(arg.bytes.len)
            .unwrap_or(0)
            .min(offspring_wire::arena::data_bytes(to_worker));
        item.0 = crate::reports::SPARE.take(len);
        offspring_wire::arena::read(to_worker, arg.bytes, &mut item.0)
            .map_err(|e| e.to_string())?;
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;

    fn at(filter: &Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn the_worker_filter_keeps_targets_and_levels() {
        let filter = super::worker_filter("warn,app::jobs=trace,offspring=debug");
        assert!(at(&filter, "app::jobs::queue", Level::TRACE));
        assert!(!at(&filter, "app::web", Level::INFO));
        assert!(at(&filter, "app::web", Level::WARN));
        assert!(at(&filter, "offspring::task", Level::DEBUG));
        assert!(!at(&filter, "offspring::task", Level::TRACE));
    }

    #[test]
    fn span_and_field_conditions_widen_to_their_target() {
        let filter = super::worker_filter("info,app[request{id=7}]=trace,db[{sql}]=debug");
        assert!(at(&filter, "app::handler", Level::TRACE));
        assert!(at(&filter, "db", Level::DEBUG));
        assert!(!at(&filter, "other", Level::DEBUG));
    }

    #[test]
    fn bare_levels_targets_and_nonsense() {
        assert!(at(&super::worker_filter("trace"), "x", Level::TRACE));
        assert!(!at(&super::worker_filter("off"), "x", Level::ERROR));
        assert!(at(&super::worker_filter("app"), "app::x", Level::TRACE));
        let fallback = super::worker_filter("=nonsense==");
        assert!(at(&fallback, "x", Level::INFO));
        assert!(!at(&fallback, "x", Level::DEBUG));
    }
}
