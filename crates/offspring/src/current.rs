//! `current_process` and `active_children`: what this process is, and which workers it runs.

/// What [`current_process`] says about the running process (Python's
/// `multiprocessing.current_process()` and `parent_process()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    /// This process's pid.
    pub pid: u32,
    /// In a worker, the pid of the offspring process that started it. Elsewhere the
    /// operating system's parent where it tells without asking (Unix), `None` on Windows.
    pub parent_pid: Option<u32>,
    /// Whether this process runs as an offspring worker (a pool worker or a `Process`).
    pub is_worker: bool,
}

/// What this process is: its pid, its parent's, and whether it is a worker.
#[must_use]
pub fn current_process() -> ProcessInfo {
    let worker_parent = offspring_worker::parent_pid();
    ProcessInfo {
        pid: std::process::id(),
        parent_pid: worker_parent.or_else(os_parent),
        is_worker: worker_parent.is_some(),
    }
}

#[cfg(unix)]
fn os_parent() -> Option<u32> {
    Some(std::os::unix::process::parent_id())
}

#[cfg(not(unix))]
fn os_parent() -> Option<u32> {
    None
}

/// The pids of this process's live workers, oldest first: every pool's workers and every
/// [`Process`](crate::Process) started here that has not exited and been reaped (as Python's
/// `active_children()`, pool workers included). Empty until a worker was started; a worker's
/// own children count in that worker, not in its parent.
#[must_use]
pub fn active_children() -> Vec<u32> {
    offspring_coordinator::Coordinator::started()
        .map(offspring_coordinator::Coordinator::live_workers)
        .unwrap_or_default()
}
