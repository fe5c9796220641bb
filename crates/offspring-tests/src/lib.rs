//! Helpers shared by the integration tests: process-table checks and hostile-client plumbing.
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
