//! Helpers shared by the integration tests: process-table checks, resource counts of this
//! process, a tiny random generator, and hostile-client plumbing.
//!
//! The helper programs in `src/bin/` are started by the tests: each plays a role a test needs
//! (a parent that is killed, a different build holding a real secret, a program that forgot
//! `init()`).

use std::time::{Duration, Instant};

/// Whether `pid` names a process that exists and has not exited.
#[cfg(windows)]
pub fn process_running(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, WAIT_TIMEOUT};
    use windows_sys::Win32::System::Threading::{
        OpenProcess, PROCESS_SYNCHRONIZE, WaitForSingleObject,
    };
    // SAFETY: OpenProcess takes plain integers; the handle is checked, used once and closed.
    unsafe {
        let handle = OpenProcess(PROCESS_SYNCHRONIZE, 0, pid);
        if handle.is_null() {
            return false;
        }
        let running = WaitForSingleObject(handle, 0) == WAIT_TIMEOUT;
        CloseHandle(handle);
        running
    }
}

/// Whether `pid` names a process that exists and is not a zombie.
#[cfg(not(windows))]
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Polls `check` every 10 ms until it holds or `timeout` passes; returns the time it took.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The abstract-namespace socket names this process listens on whose name starts with
/// `prefix`, read from `/proc/net/unix` as any local process could.
pub fn abstract_sockets(prefix: &str) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut names: Vec<String> = table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(7))
        .filter_map(|path| path.strip_prefix('@'))
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether the tests run as Windows binaries under Wine (`cargo xtask cross` sets
/// `OFFSPRING_UNDER_WINE=1`), where every process start costs a few hundred milliseconds.
pub fn under_wine() -> bool {
    std::env::var_os("OFFSPRING_UNDER_WINE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `n` for a heavy test's iteration count, or a tenth of it (at least 1) under Wine: every
/// scenario still runs, with fewer repetitions.
pub fn scaled(n: usize) -> usize {
    if under_wine() { (n / 10).max(1) } else { n }
}

/// The parent of `pid`, while `pid` exists (zombies included).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name: the state, then the parent's pid.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The pids of the processes whose parent is `parent`, zombies included, read from `/proc`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect();
    children.sort_unstable();
    children
}

/// The state letter of every thread of `pid` (`R` running, `S` sleeping, ...), empty once
/// the process is gone.
pub fn thread_states(pid: u32) -> Vec<char> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next()?.chars().next()
        })
        .collect()
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`, ...); 0 if absent.
pub fn status_kib(field: &str) -> u64 {
    proc_kib("/proc/self/status", field).unwrap_or(0)
}

/// A `Field:   123 kB` line of a `/proc` file (`/proc/meminfo`, `/proc/<pid>/smaps_rollup`,
/// a status file), in KiB; `None` if the file or the field is missing.
pub fn proc_kib(path: impl AsRef<std::path::Path>, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// How many descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// How many threads this process has.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

/// A tiny deterministic generator (xorshift64*), enough to pick victims and delays; its seed
/// is printed by the tests so a run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (zero is replaced, as xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A seed from the clock and the pid.
    pub fn seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `bound` (a zero bound counts as one).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// Sends `signal` to `pid`; whether it was delivered.
#[cfg(unix)]
pub fn signal(pid: u32, signal: i32) -> bool {
    // SAFETY: kill takes integers and touches no memory of ours.
    unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
}

/// Waits for and reaps the child `pid` without blocking; whether it was reaped now.
#[cfg(unix)]
pub fn try_reap(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid takes integers and a valid out-pointer; a pid that is not our child
    // makes it fail harmlessly.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) == pid as libc::pid_t }
}
