//! What a pool's live view shows (cargo feature `live`): a board its scheduler keeps up to
//! date as it goes, and snapshots of it that a reader takes without ever holding the
//! scheduler up. Plain data: the view (`offspring-dashboard`) encodes it.
//!
//! The scheduler writes to the board under a short lock at the events it already handles (a
//! worker started, a batch sent, calls reported, a worker gone); a reader copies a
//! [`PoolSnapshot`] under the same lock and does everything else (encoding, network writes)
//! after letting go. Nothing is recorded unless the pool was started with a board, and the
//! board keeps bounded history: the last [`WINDOW`] of timeline slices (at most
//! [`SLICES_PER_WORKER`] per worker), the last [`MAX_FAILURES`] failures and [`MAX_ENDED`] ended workers.
//!
//! Workers are shown by *lane*: a lane is one of the pool's `processes` places, taken by each
//! new worker in turn (the lowest lane without a live worker), so a lane's deaths and
//! restarts say how often that place lost its worker. Timeline slices are those of the
//! timeline file (one track per worker process), except that the calls one report carried
//! (one drain of a worker's ring, one frame) are one slice with their count, so a `map` of
//! millions of small calls stays a few slices per second.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::coordinator::lock;
use crate::pool::PoolCounters;

/// How much of the past the timeline keeps.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Timeline slices kept per worker the pool keeps (and at least [`MIN_SLICES`] in all): a
/// busy worker makes at most about 20 a second (see [`MERGE_SPAN`]), so this holds the minute.
pub const SLICES_PER_WORKER: usize = 1_500;

/// Timeline slices kept at least, whatever the pool's size.
pub const MIN_SLICES: usize = 4_000;

/// The longest error text kept for a failure; longer ones are cut there.
pub const MAX_ERROR_TEXT: usize = 4096;

/// Failures kept (the newest).
pub const MAX_FAILURES: usize = 50;

/// Ended workers kept (the newest).
pub const MAX_ENDED: usize = 32;

/// A pool's live board: written by its scheduler, read by the live view.
pub struct LiveBoard {
    pool: u64,
    processes: usize,
    epoch: Instant,
    counters: Box<dyn Fn() -> PoolCounters + Send + Sync>,
    state: Mutex<BoardState>,
}

impl std::fmt::Debug for LiveBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBoard")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct BoardState {
    /// Slices kept at most (see [`SLICES_PER_WORKER`]).
    max_slices: usize,
    lanes: Vec<Lane>,
    workers: Vec<Row>,
    ended: VecDeque<Row>,
    failures: VecDeque<FailureSnapshot>,
    failures_total: u64,
    slices: VecDeque<SliceSnapshot>,
    /// Calls that ended, per whole second since the epoch: (second, count), the newest last.
    per_second: VecDeque<(u64, u64)>,
    closed: bool,
    drained: bool,
}

#[derive(Default)]
struct Lane {
    /// The worker in it, until it ends or starts retiring (then its successor may take it).
    owner: Option<u64>,
    generations: u64,
    deaths: u64,
}

struct Row {
    snapshot: WorkerSnapshot,
    /// Where the worker's next timeline slice starts.
    busy_since: Option<Instant>,
    /// Its newest slice, still growing while reports of the same job follow each other
    /// closely (see [`MERGE_SPAN`]).
    open: Option<SliceSnapshot>,
}

/// Reports of one job that follow each other on a worker with no gap go into one slice
/// while it is shorter than this (about a pixel of the page's minute), so a `map` of tiny
/// calls is at most about 20 slices per second per worker, not one per report.
pub const MERGE_SPAN: f64 = 0.05;

/// Two reports closer than this (in seconds) follow each other with no gap.
const NO_GAP: f64 = 0.001;

/// A worker as the live view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSnapshot {
    /// The worker's number in its pool.
    pub worker: u64,
    /// Its lane (see the module docs).
    pub lane: usize,
    /// Its process id.
    pub pid: u32,
    /// `initializing`, `idle`, `busy`, `retiring`, `exited` or `died`.
    pub state: &'static str,
    /// The task of the call it runs (or runs next, while its batch waits to begin).
    pub task: Option<Arc<str>>,
    /// That call's job (the task id of logs and timelines).
    pub job: Option<u64>,
    /// That call's index in its job.
    pub call: Option<usize>,
    /// Calls running at once on it (an async task's), or 1.
    pub running: usize,
    /// Its calls that returned a value.
    pub calls_done: u64,
    /// Its calls that failed.
    pub calls_failed: u64,
    /// Deaths of workers in its lane, this one included.
    pub deaths: u64,
    /// Workers started in its lane before this one.
    pub restarts: u64,
    /// When it was started, in seconds since the pool began.
    pub started: f64,
    /// When it ended, and how.
    pub ended: Option<f64>,
    /// How it ended: its exit status, or why it died.
    pub exit: Option<String>,
}

/// A failed call as the live view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureSnapshot {
    /// When it was reported, in seconds since the pool began.
    pub at: f64,
    /// Its task.
    pub task: Arc<str>,
    /// Its job.
    pub job: u64,
    /// Its index in the job.
    pub call: usize,
    /// The worker that ran it.
    pub pid: u32,
    /// The error, as the caller gets it (cut at [`MAX_ERROR_TEXT`] bytes).
    pub error: Arc<str>,
}

/// Calls of one job that one report of a worker carried, on the worker's timeline track.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceSnapshot {
    /// The worker's process id (the track).
    pub pid: u32,
    /// Its lane.
    pub lane: usize,
    /// Start and end, in seconds since the pool began.
    pub start: f64,
    /// See `start`.
    pub end: f64,
    /// The task.
    pub task: Arc<str>,
    /// The job.
    pub job: u64,
    /// Calls in the slice.
    pub calls: usize,
    /// How many of them failed.
    pub failed: usize,
}

/// Everything the live view shows of one pool, at one moment.
#[derive(Debug, Clone)]
pub struct PoolSnapshot {
    /// The pool's number in its process.
    pub pool: u64,
    /// How many workers it keeps.
    pub processes: usize,
    /// The moment of the snapshot, in seconds since the pool began.
    pub now: f64,
    /// `running`, `closed` (no new calls) or `ended` (drained).
    pub state: &'static str,
    /// The pool's counters.
    pub counters: PoolCounters,
    /// Calls that ended per second, over the last 4 to 5 seconds.
    pub calls_per_second: f64,
    /// Calls that ended in each of the last 60 whole seconds, oldest first.
    pub per_second: Vec<u64>,
    /// Live workers, by lane, then the ended ones, newest first.
    pub workers: Vec<WorkerSnapshot>,
    /// The newest failures, newest first.
    pub failures: Vec<FailureSnapshot>,
    /// Failures in all.
    pub failures_total: u64,
    /// The last minute of the timeline.
    pub slices: Vec<SliceSnapshot>,
}

/// What a live worker is doing, as the scheduler tells the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Doing {
    pub(crate) state: &'static str,
    pub(crate) task: Option<(Arc<str>, u64, usize)>,
    pub(crate) running: usize,
}

impl LiveBoard {
    pub(crate) fn new(
        pool: u64,
        processes: usize,
        counters: Box<dyn Fn() -> PoolCounters + Send + Sync>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            processes,
            epoch: Instant::now(),
            counters,
            state: Mutex::new(BoardState {
                max_slices: (SLICES_PER_WORKER * processes).max(MIN_SLICES),
                ..BoardState::default()
            }),
        })
    }

    /// The pool's number.
    pub fn pool(&self) -> u64 {
        self.pool
    }

    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_secs_f64()
    }

    /// Where `row`'s next slice, ending at `end`, starts: when it last became busy or
    /// reported, never after `end`.
    fn busy_start(&self, row: &Row, end: f64) -> f64 {
        row.busy_since
            .map_or(end, |since| self.secs(since))
            .min(end)
    }

    /// Worker `worker` (process `pid`) joined the pool.
    pub(crate) fn worker_started(&self, worker: u64, pid: u32, doing: &Doing) {
        let now = Instant::now();
        let started = self.secs(now);
        let mut state = lock(&self.state);
        let lane = match state.lanes.iter().position(|lane| lane.owner.is_none()) {
            Some(lane) => lane,
            None => {
                state.lanes.push(Lane::default());
                state.lanes.len() - 1
            }
        };
        let entry = &mut state.lanes[lane];
        entry.owner = Some(worker);
        entry.generations += 1;
        let (deaths, restarts) = (entry.deaths, entry.generations - 1);
        let mut row = Row {
            snapshot: WorkerSnapshot {
                worker,
                lane,
                pid,
                state: "idle",
                task: None,
                job: None,
                call: None,
                running: 0,
                calls_done: 0,
                calls_failed: 0,
                deaths,
                restarts,
                started,
                ended: None,
                exit: None,
            },
            busy_since: None,
            open: None,
        };
        apply(&mut row, doing, now);
        state.workers.push(row);
        state.workers.sort_by_key(|row| row.snapshot.lane);
    }

    /// What worker `worker` does now. A retiring worker gives its lane to its successor.
    pub(crate) fn worker_doing(&self, worker: u64, doing: &Doing) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let Some(row) = state.row_mut(worker) else {
            return;
        };
        apply(row, doing, now);
        let lane = row.snapshot.lane;
        if doing.state == "retiring" {
            state.free_lane(lane, worker);
        }
    }

    /// Worker `worker` reported `calls` calls of `job` (`failed` of them failed).
    pub(crate) fn calls(
        &self,
        worker: u64,
        task: &Arc<str>,
        job: u64,
        calls: usize,
        failed: usize,
    ) {
        let now = Instant::now();
        let end = self.secs(now);
        let done = calls.saturating_sub(failed);
        let mut state = lock(&self.state);
        state.ended_calls(end, done);
        let Some(row) = state.row_mut(worker) else {
            return;
        };
        // Failed calls are counted by `failure`, which hears of every one.
        row.snapshot.calls_done += done as u64;
        let start = self.busy_start(row, end);
        row.busy_since = Some(now);
        match &mut row.open {
            Some(open)
                if open.job == job
                    && start - open.end < NO_GAP
                    && end - open.start < MERGE_SPAN =>
            {
                open.end = end;
                open.calls += calls;
                open.failed += failed;
                return;
            }
            _ => {}
        }
        let slice = SliceSnapshot {
            pid: row.snapshot.pid,
            lane: row.snapshot.lane,
            start,
            end,
            task: Arc::clone(task),
            job,
            calls,
            failed,
        };
        if let Some(closed) = row.open.replace(slice) {
            state.push_slice(closed);
        }
    }

    /// A call failed, on worker `pid`.
    pub(crate) fn failure(&self, task: &Arc<str>, job: u64, call: usize, pid: u32, error: &str) {
        let mut cut = error.len().min(MAX_ERROR_TEXT);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        let error: Arc<str> = Arc::from(&error[..cut]);
        let at = self.secs(Instant::now());
        let mut state = lock(&self.state);
        state.ended_calls(at, 1);
        state.failures_total += 1;
        if let Some(row) = state.workers.iter_mut().find(|r| r.snapshot.pid == pid) {
            row.snapshot.calls_failed += 1;
        }
        state.failures.push_front(FailureSnapshot {
            at,
            task: Arc::clone(task),
            job,
            call,
            pid,
            error,
        });
        state.failures.truncate(MAX_FAILURES);
    }

    /// Worker `worker` is gone: it `died` (was not asked to go), as `exit` says; `blamed`:
    /// the call it was running is blamed on its death (its failure, if it failed rather than
    /// ran again, was told to `failure` already).
    pub(crate) fn worker_ended(&self, worker: u64, died: bool, blamed: bool, exit: String) {
        let ended = self.secs(Instant::now());
        let mut state = lock(&self.state);
        let Some(at) = state
            .workers
            .iter()
            .position(|r| r.snapshot.worker == worker)
        else {
            return;
        };
        let mut row = state.workers.remove(at);
        if let Some(open) = row.open.take() {
            state.push_slice(open);
        }
        if blamed && let (Some(task), Some(job)) = (&row.snapshot.task, row.snapshot.job) {
            // The call its death is blamed on never reported: its slice ends here, failed.
            let start = self.busy_start(&row, ended);
            state.push_slice(SliceSnapshot {
                pid: row.snapshot.pid,
                lane: row.snapshot.lane,
                start,
                end: ended,
                task: Arc::clone(task),
                job,
                calls: 1,
                failed: 1,
            });
        }
        state.free_lane(row.snapshot.lane, worker);
        if died && let Some(lane) = state.lanes.get_mut(row.snapshot.lane) {
            lane.deaths += 1;
        }
        let snapshot = &mut row.snapshot;
        if died {
            snapshot.deaths += 1;
        }
        snapshot.state = if died { "died" } else { "exited" };
        snapshot.ended = Some(ended);
        snapshot.exit = Some(exit);
        snapshot.running = 0;
        state.ended.push_front(row);
        state.ended.truncate(MAX_ENDED);
    }

    /// The pool takes no more calls.
    pub(crate) fn closed(&self) {
        lock(&self.state).closed = true;
    }

    /// The pool is drained: every call delivered, every worker gone.
    pub(crate) fn drained(&self) {
        lock(&self.state).drained = true;
    }

    /// The board as it stands.
    pub fn snapshot(&self) -> PoolSnapshot {
        let counters = (self.counters)();
        let now = self.secs(Instant::now());
        let state = lock(&self.state);
        let second = now as u64;
        let count_at = |at: u64| {
            state
                .per_second
                .iter()
                .find(|(s, _)| *s == at)
                .map_or(0, |(_, n)| *n)
        };
        let per_second: Vec<u64> = (0..WINDOW.as_secs())
            .rev()
            .map(|back| second.checked_sub(back + 1).map_or(0, count_at))
            .collect();
        // The rate over the current second and the four before it, over the time they span.
        let from = second.saturating_sub(4);
        let recent: u64 = (from..=second).map(count_at).sum();
        let span = (now - from as f64).max(0.001);
        PoolSnapshot {
            pool: self.pool,
            processes: self.processes,
            now,
            state: if state.drained {
                "ended"
            } else if state.closed {
                "closed"
            } else {
                "running"
            },
            counters,
            calls_per_second: recent as f64 / span,
            per_second,
            workers: state
                .workers
                .iter()
                .chain(state.ended.iter())
                .map(|row| row.snapshot.clone())
                .collect(),
            failures: state.failures.iter().cloned().collect(),
            failures_total: state.failures_total,
            slices: state
                .slices
                .iter()
                .chain(state.workers.iter().filter_map(|row| row.open.as_ref()))
                .cloned()
                .collect(),
        }
    }

    /// Whether the pool has ended (the view may let it go).
    pub fn has_ended(&self) -> bool {
        lock(&self.state).drained
    }
}

impl BoardState {
    /// Keeps `slice`, and lets go of what is older than [`WINDOW`] or beyond `max_slices`.
    fn push_slice(&mut self, slice: SliceSnapshot) {
        let oldest = slice.end - WINDOW.as_secs_f64();
        self.slices.push_back(slice);
        while self.slices.len() > self.max_slices
            || self.slices.front().is_some_and(|s| s.end < oldest)
        {
            self.slices.pop_front();
        }
    }

    /// `calls` calls ended at `at` (seconds since the epoch), for the rate.
    fn ended_calls(&mut self, at: f64, calls: usize) {
        let second = at as u64;
        match self.per_second.back_mut() {
            Some((s, count)) if *s == second => *count += calls as u64,
            _ => self.per_second.push_back((second, calls as u64)),
        }
        while self
            .per_second
            .front()
            .is_some_and(|(s, _)| *s + WINDOW.as_secs() < second)
        {
            self.per_second.pop_front();
        }
    }

    /// Live worker `worker`'s row.
    fn row_mut(&mut self, worker: u64) -> Option<&mut Row> {
        self.workers
            .iter_mut()
            .find(|row| row.snapshot.worker == worker)
    }

    /// Worker `worker` no longer holds lane `lane` (if it still did).
    fn free_lane(&mut self, lane: usize, worker: u64) {
        if let Some(lane) = self.lanes.get_mut(lane)
            && lane.owner == Some(worker)
        {
            lane.owner = None;
        }
    }
}

fn apply(row: &mut Row, doing: &Doing, now: Instant) {
    let snapshot = &mut row.snapshot;
    snapshot.state = doing.state;
    snapshot.running = doing.running;
    match &doing.task {
        Some((task, job, call)) => {
            if snapshot.task.as_ref() != Some(task) {
                snapshot.task = Some(Arc::clone(task));
            }
            snapshot.job = Some(*job);
            snapshot.call = Some(*call);
            if row.busy_since.is_none() {
                row.busy_since = Some(now);
            }
        }
        None => {
            snapshot.task = None;
            snapshot.job = None;
            snapshot.call = None;
            row.busy_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> Arc<LiveBoard> {
        LiveBoard::new(1, 2, Box::new(PoolCounters::default))
    }

    fn doing(state: &'static str, task: Option<(&str, u64)>) -> Doing {
        Doing {
            state,
            task: task.map(|(name, job)| (Arc::from(name), job, 0)),
            running: usize::from(task.is_some()),
        }
    }

    #[test]
    fn a_replacement_takes_the_free_lane_and_counts_its_deaths_and_restarts() {
        let board = board();
        board.worker_started(1, 100, &doing("idle", None));
        board.worker_started(2, 101, &doing("idle", None));
        board.failure(&Arc::from("t"), 1, 0, 100, "worker died");
        board.worker_ended(1, true, true, "signal: 9 (SIGKILL)".into());
        board.worker_started(3, 102, &doing("idle", None));
        let snap = board.snapshot();
        let live: Vec<_> = snap.workers.iter().filter(|w| w.ended.is_none()).collect();
        assert_eq!(live.len(), 2);
        assert_eq!((live[0].pid, live[0].lane), (102, 0));
        assert_eq!((live[0].deaths, live[0].restarts), (1, 1));
        assert_eq!((live[1].pid, live[1].lane), (101, 1));
        let dead = &snap.workers[2];
        assert_eq!((dead.pid, dead.state), (100, "died"));
        assert_eq!(dead.exit.as_deref(), Some("signal: 9 (SIGKILL)"));
        assert_eq!(dead.calls_failed, 1);
    }

    #[test]
    fn a_retiring_worker_gives_its_lane_to_its_successor() {
        let board = board();
        board.worker_started(1, 100, &doing("idle", None));
        board.worker_started(2, 101, &doing("idle", None));
        board.worker_doing(1, &doing("retiring", None));
        board.worker_started(3, 102, &doing("idle", None));
        board.worker_ended(1, false, false, "exited (exit status: 0)".into());
        board.worker_started(4, 103, &doing("idle", None));
        let snap = board.snapshot();
        let lanes: Vec<(u32, usize)> = snap
            .workers
            .iter()
            .filter(|w| w.ended.is_none())
            .map(|w| (w.pid, w.lane))
            .collect();
        assert_eq!(lanes, vec![(102, 0), (101, 1), (103, 2)]);
        assert_eq!((snap.workers[0].restarts, snap.workers[0].deaths), (1, 0));
    }

    #[test]
    fn reports_become_slices_and_counts() {
        let board = board();
        board.worker_started(1, 100, &doing("busy", Some(("square", 7))));
        let square: Arc<str> = Arc::from("square");
        board.calls(1, &square, 7, 10, 2);
        board.failure(&square, 7, 3, 100, "boom");
        board.failure(&square, 7, 4, 100, "boom");
        std::thread::sleep(Duration::from_secs_f64(MERGE_SPAN * 1.5));
        board.calls(1, &square, 7, 5, 0);
        board.worker_doing(1, &doing("idle", None));
        let snap = board.snapshot();
        assert_eq!(snap.workers[0].calls_done, 13);
        assert_eq!(snap.workers[0].calls_failed, 2);
        assert_eq!(snap.slices.len(), 2);
        assert!(snap.slices[0].end <= snap.slices[1].start);
        assert_eq!((snap.slices[0].calls, snap.slices[0].failed), (10, 2));
        assert_eq!(snap.workers[0].state, "idle");
        assert!(snap.calls_per_second > 0.0);
    }

    #[test]
    fn reports_that_follow_each_other_closely_share_a_slice() {
        let board = board();
        board.worker_started(1, 100, &doing("busy", Some(("t", 1))));
        let t: Arc<str> = Arc::from("t");
        for _ in 0..100 {
            board.calls(1, &t, 1, 3, 0);
        }
        board.calls(1, &t, 2, 1, 1);
        let snap = board.snapshot();
        // A hundred reports take far less than `MERGE_SPAN`: only pauses of the machine
        // longer than that split them.
        let (first, second): (Vec<_>, Vec<_>) = snap.slices.iter().partition(|s| s.job == 1);
        assert!(first.len() < 10, "{:?}", snap.slices);
        assert_eq!(first.iter().map(|s| s.calls).sum::<usize>(), 300);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].failed, 1);
    }

    #[test]
    fn history_is_bounded() {
        let board = board();
        board.worker_started(1, 100, &doing("idle", None));
        let t: Arc<str> = Arc::from("t");
        let long = "é".repeat(3 * MAX_ERROR_TEXT);
        for n in 0..(MIN_SLICES + 10) {
            // Each report of another job: a slice of its own.
            board.calls(1, &t, n as u64, 1, 0);
            board.failure(&t, 1, n, 100, &long);
        }
        let snap = board.snapshot();
        // The kept ones, and the one still open.
        assert_eq!(snap.slices.len(), MIN_SLICES + 1);
        assert_eq!(snap.failures.len(), MAX_FAILURES);
        assert_eq!(snap.failures_total, (MIN_SLICES + 10) as u64);
        assert_eq!(snap.failures[0].call, MIN_SLICES + 9);
        // Cut at a character boundary at most MAX_ERROR_TEXT bytes in.
        assert_eq!(snap.failures[0].error.len(), MAX_ERROR_TEXT);
    }
}
