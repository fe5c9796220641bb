//! Running a bench program: its stdout read line by line into the collector while the
//! program is polled for exit and killed past its time limit.

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::report::Collector;
use crate::util;

/// The longest `offspring-bench` may run before it is killed.
pub(super) const TIME_LIMIT: Duration = Duration::from_secs(1200);

/// The longest the Python baseline may run before it is killed. A full run takes a few minutes at most.
pub(super) const PYTHON_TIME_LIMIT: Duration = Duration::from_secs(900);

/// The Python interpreter the baseline runs under, found on `PATH`.
pub(super) const PYTHON: &str = "python3";

/// The baseline script, relative to the workspace root.
pub(super) const PYTHON_SCRIPT: &str = "xtask/bench/baseline.py";

/// How long stdout may stay open after a bench program exits. A worker process that inherited the pipe could keep it open indefinitely, and we would rather lose its last lines than hang.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How often a bench program is polled for exit while its output is being read.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Starts a bench program with its stdout piped and feeds every line to `collector`, killing the program after `limit`.
///
/// # Errors
///
/// `Err` only when the program cannot be started, so the caller can tell a missing interpreter apart. Once started, the result is the exit status, or `None` when the limit expired and the program was killed and reaped.
pub(crate) fn run_program(
    label: &str,
    command: &mut Command,
    limit: Duration,
    collector: &mut Collector,
) -> io::Result<Option<ExitStatus>> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("$ {}", util::describe(command));
    let started = Instant::now();
    let mut child = command.spawn()?;
    let status = collect_output(&mut child, limit, collector);
    eprintln!(
        "bench: {label} finished in {}",
        util::format_duration(started.elapsed())
    );
    status
}

/// Reads a started program's stdout into `collector` until it exits or overruns `limit`, and reaps it either way.
pub(crate) fn collect_output(
    child: &mut Child,
    limit: Duration,
    collector: &mut Collector,
) -> io::Result<Option<ExitStatus>> {
    let started = Instant::now();
    let Some(stdout) = child.stdout.take() else {
        util::kill_and_reap(child).map_err(io::Error::other)?;
        return Err(io::Error::other("stdout was not captured"));
    };
    let lines = spawn_line_reader(stdout);
    let mut stdout_open = true;
    let status = loop {
        // Reading and polling are interleaved so that non-protocol lines are echoed while the program is still running, and so that a full pipe never blocks it.
        if stdout_open {
            match lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => collector.accept(&line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stdout_open = false,
            }
        } else {
            thread::sleep(POLL_INTERVAL);
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(err) => {
                util::kill_and_reap(child).map_err(io::Error::other)?;
                return Err(io::Error::other(format!("cannot poll it: {err}")));
            }
        }
        if started.elapsed() >= limit {
            util::kill_and_reap(child).map_err(io::Error::other)?;
            break None;
        }
    };
    if stdout_open {
        drain(&lines, collector);
    }
    Ok(status)
}

/// Reads the child's stdout on a thread, line by line, so the main thread can keep polling the child and enforce its time limit.
pub(crate) fn spawn_line_reader(stdout: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer) {
                Ok(0) => break,
                Ok(_) => {
                    // Lossy decoding keeps one stray byte from losing a whole line; protocol lines are ASCII anyway.
                    let line = String::from_utf8_lossy(&buffer);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    if sender.send(line).is_err() {
                        break;
                    }
                }
                Err(err) => {
                    eprintln!("bench: warning: cannot read the bench program's stdout: {err}");
                    break;
                }
            }
        }
    });
    receiver
}

/// Collects the lines still in the pipe after the bench program exited, giving up after [`DRAIN_GRACE`].
pub(crate) fn drain(lines: &Receiver<String>, collector: &mut Collector) {
    let deadline = Instant::now() + DRAIN_GRACE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!(
                "bench: warning: stdout still open {}s after the bench program exited (a worker process may hold it); ignoring further output",
                DRAIN_GRACE.as_secs()
            );
            return;
        }
        match lines.recv_timeout(left) {
            Ok(line) => collector.accept(&line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Turns the bench program's exit into the result of the command.
pub(crate) fn check_status(status: Option<ExitStatus>) -> Result<(), String> {
    match status {
        None => Err(format!(
            "offspring-bench overran its {}s limit and was killed",
            TIME_LIMIT.as_secs()
        )),
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("offspring-bench failed ({status})")),
    }
}
