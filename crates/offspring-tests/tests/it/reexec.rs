//! Re-execution: build identity, a program without `init()`, the filesystem socket. (Parent
//! death has its own test binary, `tests/parent_death.rs`.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use offspring::{Error, Process};

#[offspring::task]
fn double(n: u32) -> u32 {
    n * 2
}

#[test]
fn a_different_binary_with_the_real_secret_is_refused_for_its_build() {
    let started = Instant::now();
    let result = offspring::__private::spawn_with_program(
        env!("CARGO_BIN_EXE_other_build").into(),
        double,
        21,
    );
    match result {
        Err(Error::Spawn { reason }) => {
            assert!(reason.contains("different executable"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    println!("refused in {:?}", started.elapsed());
}

#[test]
fn a_child_that_exits_before_connecting_is_a_spawn_error() {
    let started = Instant::now();
    let result = offspring::__private::spawn_with_program(
        env!("CARGO_BIN_EXE_forgot_init").into(),
        double,
        1,
    );
    match result {
        Err(Error::Spawn { reason }) => {
            assert!(reason.contains("exited before connecting"), "{reason}");
            // "exit status: 3" on Unix, "exit code: 3" on Windows.
            assert!(reason.contains(": 3)"), "{reason}");
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
    let took = started.elapsed();
    println!("spawn error after {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_worker_that_skips_init_fails_with_a_clear_error_instead_of_spawning() {
    // Run the program as its parent would start it, with the worker variables set.
    let output = Command::new(env!("CARGO_BIN_EXE_forgot_init"))
        .env("OFFSPRING_ROLE", "worker")
        .env("OFFSPRING_ENDPOINT", "ns:offspring-test-nowhere")
        .env("OFFSPRING_WORKER_ID", "1")
        .env("OFFSPRING_SECRET", "00".repeat(32))
        .env("OFFSPRING_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run forgot_init");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("offspring::init() did not run"), "{stderr}");
}

#[test]
fn a_program_without_init_refuses_to_start_workers() {
    let output = Command::new(env!("CARGO_BIN_EXE_forgot_init"))
        .stdin(Stdio::null())
        .output()
        .expect("run forgot_init");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("must run first in main"), "{stderr}");
}

#[test]
fn workers_can_be_started_from_many_threads_at_once() -> offspring::Result<()> {
    let handles: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || Process::spawn(double, i)?.join()))
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().expect("thread")?, 2 * i as u32);
    }
    Ok(())
}

#[cfg(unix)]
#[test]
fn the_filesystem_socket_works_and_its_private_directory_is_removed_at_exit() {
    let temp = std::env::temp_dir();
    let dirs = || -> std::collections::HashSet<std::path::PathBuf> {
        std::fs::read_dir(&temp)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("ofs-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = dirs();
    let output = Command::new(env!("CARGO_BIN_EXE_roundtrip"))
        .env("OFFSPRING_SOCKET_KIND", "fs")
        .stdin(Stdio::null())
        .output()
        .expect("run roundtrip");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "process 5 pool 90");
    let left: Vec<_> = dirs().difference(&before).cloned().collect();
    assert!(left.is_empty(), "socket directories left behind: {left:?}");
}

/// Kills `orphan_parent` while its three workers are in `mode` (`busy`, `event`, or
/// `awaiting`: 20 async calls each awaiting a timer), on any
/// platform, and returns how long the last worker outlived it. (`tests/parent_death.rs` covers
/// every mode on Linux, with a subreaper; this is the version Windows runs too.)
fn workers_outlive_their_parent_by(mode: &str, state: &str, without_os_help: bool) -> Duration {
    use std::io::{BufRead, BufReader};

    let mut command = Command::new(env!("CARGO_BIN_EXE_orphan_parent"));
    command
        .arg(mode)
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    if without_os_help {
        command.env("OFFSPRING_NO_PDEATHSIG", "1");
    }
    let mut parent = command.spawn().expect("start orphan_parent");
    let stdout = parent.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let word = format!("{state} ");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pid) = line.strip_prefix(&word)
                && let Ok(pid) = pid.trim().parse::<u32>()
                && tx.send(pid).is_err()
            {
                return;
            }
        }
    });
    let mut workers = Vec::new();
    while workers.len() < 3 {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(pid) => workers.push(pid),
            Err(e) => {
                let _ = parent.kill();
                let _ = parent.wait();
                panic!("{mode}: only {workers:?} reached `{state}`: {e}");
            }
        }
    }
    parent.kill().expect("kill the parent");
    let killed = Instant::now();
    parent.wait().expect("reap the parent");
    let gone = offspring_tests::wait_until(Duration::from_secs(20), || {
        workers
            .iter()
            .all(|&pid| !offspring_tests::process_running(pid))
    });
    assert!(
        gone.is_some(),
        "{mode}: workers {workers:?} still running 20 s after their parent was killed"
    );
    killed.elapsed()
}

#[test]
fn busy_and_waiting_workers_exit_when_their_parent_is_killed_on_every_platform() {
    for (mode, state) in [
        ("busy", "busy"),
        ("event", "waiting"),
        ("awaiting", "awaiting"),
    ] {
        for without_os_help in [false, true] {
            let took = workers_outlive_their_parent_by(mode, state, without_os_help);
            let how = if without_os_help {
                "the lifeline alone"
            } else {
                "with the OS's help (parent-death signal, kqueue or job object)"
            };
            println!("{mode}: last worker gone {took:?} after the parent was killed, {how}");
        }
    }
}
