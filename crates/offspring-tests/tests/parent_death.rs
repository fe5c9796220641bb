//! Parent death: `orphan_parent` is SIGKILLed while its workers are idle, busy on the CPU,
//! blocked in `Event::wait`, or blocked writing a 60 MiB value nobody reads; every worker must
//! be gone soon after, with the parent-death signal and with the socket lifeline alone
//! (`OFFSPRING_NO_PDEATHSIG=1`).
//!
//! A test binary of its own: this process becomes a child subreaper, so the orphaned workers
//! are re-parented to it (visible, and reaped here rather than by init), and that setting
//! applies to the whole process.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use offspring_tests::{process_running, signal, thread_states, try_reap};

/// How long the workers may outlive their parent before the test fails. The goal is well under
/// a second; the bound is generous for a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

/// How long the helper may take to start its workers and bring them to the state under test.
const SETUP: Duration = Duration::from_secs(60);

fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes integers and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER failed");
}

/// Kills and reaps the helper and its workers if they are still there when dropped, so a
/// failing test leaves nothing behind.
struct Reap {
    parent: Child,
    workers: Vec<u32>,
}

impl Drop for Reap {
    fn drop(&mut self) {
        let helper = self.parent.id();
        let _ = self.parent.kill();
        let _ = self.parent.wait();
        let me = std::process::id();
        for &pid in &self.workers {
            // Only a process that is still the helper's or ours is one of its workers (a pid
            // reaped earlier may name another process by now).
            if !matches!(offspring_tests::parent_of(pid), Some(p) if p == me || p == helper) {
                continue;
            }
            signal(pid, libc::SIGKILL);
            // The worker is our child once its parent is gone (we are its subreaper); reap it,
            // waiting a bounded time for the kernel to re-parent it.
            let _ = offspring_tests::wait_until(Duration::from_secs(5), || try_reap(pid));
        }
    }
}

/// The lines the helper's workers print (a word and a pid), in any interleaving.
struct Lines {
    rx: Receiver<(String, u32)>,
    seen: Vec<(String, u32)>,
}

impl Lines {
    fn of(child: &mut Child) -> Self {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((word, pid)) = line.split_once(' ')
                    && let Ok(pid) = pid.trim().parse::<u32>()
                    && tx.send((word.to_owned(), pid)).is_err()
                {
                    return;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until `count` lines said `word`; their pids.
    fn expect(&mut self, word: &str, count: usize) -> Vec<u32> {
        let deadline = Instant::now() + SETUP;
        loop {
            let pids: Vec<u32> = self
                .seen
                .iter()
                .filter(|(said, _)| said == word)
                .map(|(_, pid)| *pid)
                .collect();
            if pids.len() >= count {
                return pids;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("waiting for {count} `{word}` lines, got {pids:?}: {e}"),
            }
        }
    }
}

/// Waits until every thread of `pid` is in `state` (`S` sleeping in a blocking call, `T`
/// stopped).
fn settle(pid: u32, state: char) {
    let settled = offspring_tests::wait_until(SETUP, || {
        let states = thread_states(pid);
        !states.is_empty() && states.iter().all(|s| *s == state)
    });
    assert!(
        settled.is_some(),
        "process {pid} never settled in {state}: {:?}",
        thread_states(pid)
    );
}

/// Starts the helper in `mode`, brings its workers to the state under test, SIGKILLs the
/// parent, and returns how long the last worker outlived it.
fn parent_death(mode: &str, without_pdeathsig: bool) -> Duration {
    parent_death_then(mode, without_pdeathsig, || {})
}

/// As [`parent_death`], running `before_kill` once the workers are in their state.
fn parent_death_then(mode: &str, without_pdeathsig: bool, before_kill: impl FnOnce()) -> Duration {
    become_subreaper();
    let go = std::env::temp_dir().join(format!(
        "offspring-go-{}-{mode}-{without_pdeathsig}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&go);
    let mut command = Command::new(env!("CARGO_BIN_EXE_orphan_parent"));
    command
        .arg(mode)
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    if mode == "write" {
        command.arg(&go);
    }
    if without_pdeathsig {
        command.env("OFFSPRING_NO_PDEATHSIG", "1");
    }
    let mut parent = command.spawn().expect("start orphan_parent");
    let mut lines = Lines::of(&mut parent);
    let parent_pid = parent.id();
    let mut reap = Reap {
        parent,
        workers: Vec::new(),
    };
    let count = if mode == "write" { 2 } else { 3 };
    reap.workers = lines.expect("up", count);
    match mode {
        "idle" => {
            for &pid in &reap.workers {
                settle(pid, 'S');
            }
        }
        "busy" => {
            lines.expect("busy", count);
        }
        "event" => {
            for pid in lines.expect("waiting", count) {
                settle(pid, 'S');
            }
        }
        "awaiting" => {
            for pid in lines.expect("awaiting", count) {
                settle(pid, 'S');
            }
        }
        "shared" => {
            lines.expect("holding", count);
        }
        "write" => {
            // The call must have reached its worker before the parent stops: a stopped parent
            // dispatches nothing, and no worker would ever write.
            lines.expect("started", 1);
            // Stop the parent so nothing reads, then let the worker write.
            assert!(signal(parent_pid, libc::SIGSTOP));
            settle(parent_pid, 'T');
            std::fs::write(&go, b"go").expect("create the go-file");
            let writer = lines.expect("writing", 1)[0];
            // Both of its threads block: the task thread waits for work, the i/o thread for
            // room in a socket buffer far smaller than the value.
            settle(writer, 'S');
        }
        other => panic!("unknown mode {other}"),
    }
    for &pid in &reap.workers {
        assert!(process_running(pid), "worker {pid} is not running");
    }
    before_kill();
    assert!(signal(parent_pid, libc::SIGKILL));
    let killed = Instant::now();
    let _ = reap.parent.wait();
    let mut last_gone = None;
    while killed.elapsed() < BOUND {
        if reap.workers.iter().all(|&pid| !process_running(pid)) {
            last_gone = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = std::fs::remove_file(&go);
    let still: Vec<u32> = reap
        .workers
        .iter()
        .copied()
        .filter(|&pid| process_running(pid))
        .collect();
    let took = last_gone.unwrap_or_else(|| {
        panic!("{mode}: workers {still:?} still running {BOUND:?} after their parent was killed")
    });
    // Reap the orphans (zombies of ours now) so nothing is left.
    drop(reap);
    took
}

fn both(mode: &str, what: &str) {
    let armed = parent_death(mode, false);
    let lifeline = parent_death(mode, true);
    println!(
        "{what}: last worker gone {:.2} ms after the parent was SIGKILLed with the parent-death \
         signal, {:.2} ms with the socket lifeline alone",
        armed.as_secs_f64() * 1e3,
        lifeline.as_secs_f64() * 1e3,
    );
}

#[test]
fn idle_workers_exit_when_their_parent_is_killed() {
    both("idle", "3 idle workers");
}

#[test]
fn busy_workers_exit_when_their_parent_is_killed() {
    both("busy", "3 workers spinning on the CPU");
}

#[test]
fn workers_blocked_in_event_wait_exit_when_their_parent_is_killed() {
    both("event", "3 workers blocked in Event::wait");
}

#[test]
fn workers_with_async_calls_in_flight_exit_when_their_parent_is_killed() {
    both(
        "awaiting",
        "3 workers with 20 async calls each awaiting a timer",
    );
}

#[test]
fn a_worker_blocked_writing_a_large_value_exits_when_its_parent_is_killed() {
    both(
        "write",
        "a worker blocked writing 60 MiB to a stopped parent, and an idle one",
    );
}

/// Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the parent and
/// every worker. Workers ignore it (the parent decides), so the parent's default action ends
/// it, and its busy workers follow it through the parent-death signal and the lifeline, with no
/// traceback, no hang and no orphan.
#[test]
fn ctrl_c_to_the_process_group_ends_the_parent_and_then_its_busy_workers() {
    use std::os::unix::process::CommandExt;

    become_subreaper();
    let mut command = Command::new(env!("CARGO_BIN_EXE_orphan_parent"));
    command
        .arg("busy")
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        // A process group of its own, as a shell gives a foreground job.
        .process_group(0);
    let mut parent = command.spawn().expect("start orphan_parent");
    let mut lines = Lines::of(&mut parent);
    let group = parent.id();
    let mut reap = Reap {
        parent,
        workers: Vec::new(),
    };
    reap.workers = lines.expect("up", 3);
    lines.expect("busy", 3);
    // SAFETY: kill with a negative pid signals that process group; no memory is involved.
    let sent = unsafe { libc::kill(-(group as libc::pid_t), libc::SIGINT) } == 0;
    assert!(sent, "could not signal the process group");
    let interrupted = Instant::now();
    let status = reap.parent.wait().expect("reap the parent");
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");
    }
    let gone = offspring_tests::wait_until(BOUND, || {
        reap.workers.iter().all(|&pid| !process_running(pid))
    });
    let took = interrupted.elapsed();
    assert!(
        gone.is_some(),
        "workers {:?} still running {BOUND:?} after Ctrl-C",
        reap.workers
    );
    println!(
        "Ctrl-C: the parent ended by SIGINT, its 3 busy workers gone {:.2} ms after the signal",
        took.as_secs_f64() * 1e3
    );
    drop(reap);
}

/// The machine's shared memory in use (`Shmem` in `/proc/meminfo`), in MiB.
fn shmem_mib() -> u64 {
    offspring_tests::proc_kib("/proc/meminfo", "Shmem").expect("a Shmem line in /proc/meminfo")
        / 1024
}

fn dev_shm() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn no_shared_memory_outlives_a_killed_parent() {
    let before = shmem_mib();
    let files_before = dev_shm();
    let mut held = 0;
    let took = parent_death_then("shared", false, || held = shmem_mib());
    // The three workers and their parent map one copy of 256 MiB.
    assert!(
        held >= before + 200 && held < before + 400,
        "Shmem was {before} MiB before, {held} MiB while three workers held 256 MiB"
    );
    let back = offspring_tests::wait_until(BOUND, || shmem_mib() < before + 64);
    let after = shmem_mib();
    assert!(
        back.is_some(),
        "Shmem {before} MiB before, {held} MiB held, still {after} MiB after the tree died"
    );
    let new_files: Vec<String> = dev_shm()
        .into_iter()
        .filter(|f| !files_before.contains(f))
        .collect();
    assert!(new_files.is_empty(), "left in /dev/shm: {new_files:?}");
    println!(
        "shared memory: Shmem {before} MiB before, {held} MiB while held, {after} MiB after; the \
         workers were gone {:.1} ms after the parent was SIGKILLed",
        took.as_secs_f64() * 1e3
    );
}
