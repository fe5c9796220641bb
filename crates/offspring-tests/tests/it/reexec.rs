//! Re-execution: the lifeline after parent death, build identity, a program without `init()`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use offspring::{Error, Process};

#[offspring::task]
fn double(n: u32) -> u32 {
    n * 2
}

#[cfg(target_os = "linux")]
/// Makes this test process the reaper of orphans, so a worker whose parent we kill becomes
/// our child: visible, and reaped by us rather than left for init.
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes integers and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER failed");
}

#[cfg(target_os = "linux")]
/// Kills and reaps `pid` if it is still there when dropped, so a failing test leaves nothing.
struct Reap(u32);

#[cfg(target_os = "linux")]
impl Drop for Reap {
    fn drop(&mut self) {
        let pid = self.0 as libc::pid_t;
        // SAFETY: kill and waitpid take integers and a valid out-pointer; the pid is our child
        // (reparented to this subreaper) or gone, in which case both calls fail harmlessly.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
    }
}

fn parent_death(without_pdeathsig: bool) -> Duration {
    #[cfg(target_os = "linux")]
    become_subreaper();
    let mut command = Command::new(env!("CARGO_BIN_EXE_orphan_parent"));
    command.stdout(Stdio::piped()).stdin(Stdio::null());
    if without_pdeathsig {
        command.env("OFFSPRING_NO_PDEATHSIG", "1");
    }
    let mut parent = command.spawn().expect("start orphan_parent");
    let stdout = parent.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pid) = line.strip_prefix("spinning ") {
                let _ = tx.send(pid.trim().parse::<u32>().ok());
            }
        }
    });
    let worker = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .flatten()
        .expect("the worker never started spinning");
    #[cfg(target_os = "linux")]
    let _reap = Reap(worker);
    assert!(offspring_tests::process_running(worker));
    parent.kill().expect("kill the parent");
    let killed = Instant::now();
    parent.wait().expect("reap the parent");
    let gone = offspring_tests::wait_until(Duration::from_secs(10), || {
        !offspring_tests::process_running(worker)
    });
    let took = killed.elapsed();
    assert!(
        gone.is_some(),
        "worker {worker} still running 10 s after its parent was killed"
    );
    took
}

#[test]
fn a_busy_worker_exits_when_its_parent_is_killed() {
    let took = parent_death(false);
    println!(
        "worker gone {took:?} after its parent was killed (parent-death signal or job object armed)"
    );
}

#[test]
fn the_lifeline_alone_ends_a_busy_worker_whose_parent_is_killed() {
    let took = parent_death(true);
    println!("worker gone {took:?} after its parent was killed (lifeline only)");
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
