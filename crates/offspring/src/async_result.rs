//! [`AsyncResult`]: a pending result of a pool, with blocking waits, callbacks, and
//! `.await`.
//!
//! # Callbacks
//!
//! `callback` and `error_callback` run in the parent, exactly once, on the process's callback
//! thread (`offspring-callbacks`), never on the coordinator's thread and never in a worker;
//! also when attached after the result arrived, and also when nobody calls `get`. They run one
//! at a time in the order their results arrived, so a slow callback delays the callbacks
//! after it (not the pool's work, which goes on). A panicking callback is caught and logged.
//! A callback may submit more work to the pool, and even wait for it: the work runs on the
//! workers and the coordinator, not on the callback thread. (Waiting inside a callback for a
//! result that itself has a callback would wait for the callback thread, so do not do that.)

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use offspring_coordinator::wait_for;

use crate::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// Runs a job on the process's callback thread, started on first use.
fn run_on_callback_thread(job: Job) {
    static THREAD: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let sender = THREAD.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("offspring-callbacks".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(target: "offspring", error = %e, "cannot start the callback thread; callbacks will run inline");
        }
        Mutex::new(tx)
    });
    let sender = sender
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Err(std::sync::mpsc::SendError(job)) = sender.send(job) {
        job();
    }
}

/// Counts a pool's callbacks that are scheduled and not yet finished, so `join` can wait
/// for them.
#[derive(Debug, Default)]
pub(crate) struct CallbackCount {
    pending: Mutex<usize>,
    idle: Condvar,
}

impl CallbackCount {
    fn add(&self) {
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }

    fn done(&self) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            self.idle.notify_all();
        }
    }

    /// Waits until no callback is scheduled or running; `false` on timeout.
    pub(crate) fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = self
                .idle
                .wait_timeout(pending, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }
}

type OnOk<R> = Box<dyn FnOnce(&R) + Send>;
type OnErr = Box<dyn FnOnce(&Error) + Send>;

struct CellState<R> {
    /// The outcome, while it is here (not yet taken, and not lent to a callback).
    outcome: Option<Result<R>>,
    /// The outcome arrived (it may be lent to a callback, or taken).
    arrived: bool,
    /// Ready as users see it (`wait`, `ready`, `successful`): the outcome is here and the
    /// callback attached before it arrived, if any, has returned (as in Python, whose result
    /// handler runs the callback before it marks the result ready). A callback attached
    /// later does not turn it back.
    settled: bool,
    successful: Option<bool>,
    taken: bool,
    /// A callback holds the outcome for the moment.
    lent: bool,
    on_ok: Option<OnOk<R>>,
    on_err: Option<OnErr>,
    wakers: Vec<Waker>,
}

pub(crate) struct Cell<R> {
    state: Mutex<CellState<R>>,
    changed: Condvar,
    callbacks: Arc<CallbackCount>,
    task: &'static str,
}

impl<R: Send + 'static> Cell<R> {
    pub(crate) fn new(task: &'static str, callbacks: Arc<CallbackCount>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(CellState {
                outcome: None,
                arrived: false,
                settled: false,
                successful: None,
                taken: false,
                lent: false,
                on_ok: None,
                on_err: None,
                wakers: Vec::new(),
            }),
            changed: Condvar::new(),
            callbacks,
            task,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CellState<R>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the outcome (the first one wins) and schedules a matching callback.
    pub(crate) fn resolve(self: &Arc<Self>, outcome: Result<R>) {
        let mut state = self.lock();
        if state.arrived {
            return;
        }
        let successful = outcome.is_ok();
        state.outcome = Some(outcome);
        state.arrived = true;
        for waker in state.wakers.drain(..) {
            waker.wake();
        }
        self.schedule(&mut state);
        // Without a callback to run, the result is settled now; otherwise once it returned.
        state.successful = Some(successful);
        if !state.lent {
            state.settled = true;
        }
        drop(state);
        self.changed.notify_all();
    }

    fn schedule(self: &Arc<Self>, state: &mut CellState<R>) {
        if !state.arrived || state.taken || state.lent {
            return;
        }
        let job: Job = match &state.outcome {
            Some(Ok(_)) => match state.on_ok.take() {
                Some(callback) => {
                    let cell = Arc::clone(self);
                    Box::new(move || {
                        cell.lend(|outcome| {
                            if let Ok(value) = outcome {
                                callback(value);
                            }
                        })
                    })
                }
                None => return,
            },
            Some(Err(_)) => match state.on_err.take() {
                Some(callback) => {
                    let cell = Arc::clone(self);
                    Box::new(move || {
                        cell.lend(|outcome| {
                            if let Err(error) = outcome {
                                callback(error);
                            }
                        })
                    })
                }
                None => return,
            },
            None => return,
        };
        state.lent = true;
        self.callbacks.add();
        run_on_callback_thread(job);
    }

    /// Lends the outcome to a callback, catching its panic, then puts it back.
    fn lend(self: &Arc<Self>, callback: impl FnOnce(&Result<R>)) {
        let outcome = self.lock().outcome.take();
        if let Some(outcome) = &outcome {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(outcome)));
            if let Err(payload) = run {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".to_owned());
                tracing::error!(target: "offspring", task = self.task, %message, "a callback panicked");
            }
        }
        let mut state = self.lock();
        state.outcome = outcome;
        state.lent = false;
        state.settled = true;
        for waker in state.wakers.drain(..) {
            waker.wake();
        }
        drop(state);
        self.changed.notify_all();
        self.callbacks.done();
    }

    fn set_callback(self: &Arc<Self>, on_ok: Option<OnOk<R>>, on_err: Option<OnErr>) {
        let mut state = self.lock();
        if on_ok.is_some() {
            state.on_ok = on_ok;
        }
        if on_err.is_some() {
            state.on_err = on_err;
        }
        self.schedule(&mut state);
    }

    fn take(&self, timeout: Option<Duration>) -> Result<R> {
        let mut state = wait_for(&self.changed, self.lock(), timeout, |s| {
            !s.arrived || s.lent
        });
        if !state.arrived || state.lent {
            return Err(Error::Timeout);
        }
        match state.outcome.take() {
            Some(outcome) if !state.taken => {
                state.taken = true;
                outcome
            }
            _ => Err(Error::AlreadyTaken {
                task: self.task.to_owned(),
            }),
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        wait_for(&self.changed, self.lock(), timeout, |s| !s.settled).settled
    }
}

/// The pending result of [`Pool::apply_async`](crate::Pool::apply_async) and
/// [`Pool::map_async`](crate::Pool::map_async). It does not borrow its pool and may outlive
/// it (it then resolves to [`Error::PoolClosed`] if the work was lost).
pub struct AsyncResult<R> {
    cell: Arc<Cell<R>>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("task", &self.cell.task)
            .finish_non_exhaustive()
    }
}

impl<R: Send + 'static> AsyncResult<R> {
    pub(crate) fn from_cell(cell: Arc<Cell<R>>) -> Self {
        Self { cell }
    }

    /// Runs `callback` with the value, in the parent, exactly once, on the callback thread,
    /// when the task succeeds (at once if it already has).
    pub fn callback(self, callback: impl FnOnce(&R) + Send + 'static) -> Self {
        self.cell.set_callback(Some(Box::new(callback)), None);
        self
    }

    /// Runs `callback` with the error, in the parent, exactly once, on the callback thread,
    /// when the task fails (at once if it already has).
    pub fn error_callback(self, callback: impl FnOnce(&Error) + Send + 'static) -> Self {
        self.cell.set_callback(None, Some(Box::new(callback)));
        self
    }

    /// Waits for the result and takes it.
    ///
    /// # Errors
    ///
    /// What offspring saw go wrong with the task, or [`Error::AlreadyTaken`] when
    /// `get_timeout` or `.await` already handed the value out.
    pub fn get(self) -> Result<R> {
        self.cell.take(None)
    }

    /// Waits up to `timeout` for the result and takes it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] while it is not ready (it stays pending and retrievable), otherwise
    /// as [`get`](Self::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        self.cell.take(Some(timeout))
    }

    /// Waits until the result is ready: the value or error is there, and a callback or
    /// error callback attached before it arrived has returned (as Python's `wait`).
    pub fn wait(&self) {
        self.cell.wait(None);
    }

    /// Waits up to `timeout`; whether the result is ready (see [`wait`](Self::wait)).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell.wait(Some(timeout))
    }

    /// Whether the result is ready: there, and any callback attached before it arrived has
    /// returned. A callback attached after that does not make it unready again.
    pub fn ready(&self) -> bool {
        self.cell.lock().settled
    }

    /// `None` while not [`ready`](Self::ready); then whether the task succeeded.
    pub fn successful(&self) -> Option<bool> {
        let state = self.cell.lock();
        if state.settled {
            state.successful
        } else {
            None
        }
    }
}

/// The future of an [`AsyncResult`]: resolves to its result without blocking the runtime.
pub struct AsyncResultFuture<R> {
    cell: Arc<Cell<R>>,
}

impl<R> std::fmt::Debug for AsyncResultFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResultFuture")
            .field("task", &self.cell.task)
            .finish_non_exhaustive()
    }
}

impl<R: Send + 'static> Future for AsyncResultFuture<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.cell.lock();
        if state.arrived && !state.lent {
            if state.taken {
                return Poll::Ready(Err(Error::AlreadyTaken {
                    task: self.cell.task.to_owned(),
                }));
            }
            if let Some(outcome) = state.outcome.take() {
                state.taken = true;
                return Poll::Ready(outcome);
            }
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<R: Send + 'static> IntoFuture for AsyncResult<R> {
    type Output = Result<R>;
    type IntoFuture = AsyncResultFuture<R>;

    fn into_future(self) -> Self::IntoFuture {
        AsyncResultFuture { cell: self.cell }
    }
}
