//! Pool workers started by a real Slurm (`cargo xtask slurm` starts a one-node cluster and
//! runs this file with `SLURM_CONF` and `OFFSPRING_SLURM=required`). Without a cluster each
//! test says why it skipped, unless `OFFSPRING_SLURM=required`: then a missing cluster is a
//! failure.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]
#![cfg(unix)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use offspring::{Error, Event, Pool, Queue, Slurm};

offspring::test_support!();

/// Set to run the ignored test that plays a parent to be killed.
const ENV_KILLED_PARENT: &str = "OFFSPRING_TEST_SLURM_PARENT";

/// How long after its parent's death a worker step and the allocation may linger: the
/// parent's connection closes at once; `SILENCE_LIMIT` (10 s) bounds a parent that vanished
/// without closing it, and Slurm's `KillWait` adds 2 s to end a step.
const GONE_BOUND: Duration = Duration::from_secs(30);

fn cluster() -> bool {
    let required = std::env::var("OFFSPRING_SLURM").is_ok_and(|v| v == "required");
    let works = Command::new("sinfo")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            !required,
            "OFFSPRING_SLURM=required but `sinfo` does not reach a Slurm cluster (is SLURM_CONF set?)"
        );
        println!("skipped: no Slurm cluster (run `cargo xtask slurm`)");
    }
    works
}

fn squeue(args: &[&str]) -> String {
    let out = Command::new("squeue")
        .args(args)
        .output()
        .expect("run squeue");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The name of the worker's parent process: `slurmstepd` for a Slurm step.
#[offspring::task]
fn parent_name(_: ()) -> (u32, String) {
    let ppid = std::os::unix::process::parent_id();
    let name = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default();
    (std::process::id(), name.trim().to_owned())
}

#[offspring::task]
fn square(n: u64) -> u64 {
    n * n
}

#[offspring::task]
fn abort_now(_: ()) -> u64 {
    std::process::abort()
}

#[offspring::task]
fn wait_and_put(args: (Event, Queue<u64>)) -> u64 {
    let (event, queue) = args;
    event.wait();
    queue.put(&11).map(|()| 11).unwrap_or(0)
}

fn slurm_pool(processes: usize) -> offspring::Result<Pool> {
    Pool::builder()
        .processes(processes)
        .launcher(Slurm::new())
        .build()
}

#[test]
fn a_pool_of_four_slurm_steps_runs_map_callbacks_and_primitives() -> offspring::Result<()> {
    if !cluster() {
        return Ok(());
    }
    let began = Instant::now();
    let pool = slurm_pool(4)?;
    assert_eq!(
        pool.map(square, 0..200u64)?,
        (0..200).map(|n| n * n).collect::<Vec<_>>()
    );
    println!(
        "first map over 4 Slurm steps done {:?} after build",
        began.elapsed()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let pending: Vec<_> = (0..16u64)
        .map(|n| {
            let tx = tx.clone();
            pool.apply_async(square, n).callback(move |v| {
                let _ = tx.send(*v);
            })
        })
        .collect();
    for p in pending {
        p.get()?;
    }
    let mut got: Vec<u64> = (0..16).map(|_| rx.recv().expect("a callback")).collect();
    got.sort_unstable();
    assert_eq!(got, (0..16).map(|n| n * n).collect::<Vec<_>>());
    let event = Event::new()?;
    let queue = Queue::<u64>::new()?;
    let waiting = pool.apply_async(wait_and_put, (event.clone(), queue.clone()));
    event.set();
    assert_eq!(waiting.get()?, 11);
    assert_eq!(queue.get()?, 11);
    // The workers are Slurm's children, not ours.
    let parents: Vec<(u32, String)> = (0..8)
        .map(|_| pool.apply(parent_name, ()))
        .collect::<offspring::Result<_>>()?;
    for (pid, parent) in &parents {
        assert_eq!(parent, "slurmstepd", "worker {pid}'s parent is {parent}");
        assert!(!offspring::active_children().contains(pid));
    }
    Ok(())
}

#[test]
fn an_aborting_slurm_worker_fails_only_its_call_and_a_new_step_replaces_it() -> offspring::Result<()>
{
    if !cluster() {
        return Ok(());
    }
    let pool = slurm_pool(1)?;
    let (first, _) = pool.apply(parent_name, ())?;
    match pool.apply(abort_now, ()) {
        Err(Error::WorkerDied { host, .. }) => {
            println!("the aborted worker's host: {host:?}");
            assert!(host.is_some(), "WorkerDied does not name the host");
        }
        other => panic!("an abort gave {other:?}"),
    }
    let (second, parent) = pool.apply(parent_name, ())?;
    assert_ne!(first, second);
    assert_eq!(parent, "slurmstepd");
    assert_eq!(pool.apply(square, 9)?, 81);
    Ok(())
}

/// Plays the parent that `a_killed_parent_leaves_no_job_or_step` kills: obtains its own
/// allocation, prints its job id, and waits.
#[test]
#[ignore = "run by a_killed_parent_leaves_no_job_or_step"]
fn killed_parent() -> offspring::Result<()> {
    if std::env::var_os(ENV_KILLED_PARENT).is_none() {
        return Ok(());
    }
    let launcher = Slurm::new();
    let pool = Pool::builder()
        .processes(2)
        .launcher(launcher.clone())
        .build()?;
    assert_eq!(pool.map(square, 0..10u64)?.len(), 10);
    println!("job {}", launcher.job_id().unwrap_or_default());
    std::thread::sleep(Duration::from_secs(600));
    Ok(())
}

#[test]
fn a_killed_parent_leaves_no_job_or_step() {
    if !cluster() {
        return;
    }
    let exe = std::env::current_exe().expect("this test binary");
    let mut parent = Command::new(exe)
        .args(["--ignored", "--exact", "killed_parent", "--nocapture"])
        .env(ENV_KILLED_PARENT, "1")
        .env_remove("SLURM_JOB_ID")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the parent");
    let stdout = parent.stdout.take().expect("stdout");
    let mut job = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if let Some(id) = line.strip_prefix("job ") {
            job = Some(id.trim().to_owned());
            break;
        }
    }
    let job = job.expect("the parent printed its job id");
    assert!(!job.is_empty(), "the parent has no allocation of its own");
    // Both workers served calls; their steps are registered once each `srun` is.
    let began = Instant::now();
    let steps = loop {
        let steps = squeue(&["-h", "-s", "-j", &job, "-o", "%i"]);
        if steps.lines().count() >= 2 || began.elapsed() > Duration::from_secs(20) {
            break steps;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("job {job} runs steps: {steps:?}");
    assert!(
        steps.lines().count() >= 2,
        "expected 2 worker steps, saw {steps:?}"
    );
    let killed = Instant::now();
    let _ = parent.kill();
    let _ = parent.wait();
    loop {
        let jobs = squeue(&["-h", "-j", &job, "-o", "%i"]);
        let steps = squeue(&["-h", "-s", "-j", &job, "-o", "%i"]);
        if jobs.is_empty() && steps.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < GONE_BOUND,
            "job {job} outlived its parent by {:?}: jobs {jobs:?}, steps {steps:?}",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "job {job} and its steps were gone {:?} after the parent's SIGKILL",
        killed.elapsed()
    );
}

/// A node that cannot run the program (no shared filesystem at its path) is a spawn error
/// that says so, early: `srun` ends at once, and the pool gives up after its tries.
#[test]
fn a_program_the_node_cannot_run_is_an_early_spawn_error_that_says_so() {
    if !cluster() {
        return;
    }
    let pool = offspring::__private::pool_with_program("/nonexistent/offspring-worker".into())
        .processes(1)
        .launcher(Slurm::new())
        .build()
        .expect("the pool builds; its workers fail to start");
    let began = Instant::now();
    let err = pool
        .apply(square, 2)
        .expect_err("a worker that cannot exist ran a call");
    let text = err.to_string();
    println!("after {:?}: {text}", began.elapsed());
    assert!(
        text.contains("shared filesystem") && text.contains("/nonexistent/offspring-worker"),
        "the error does not say why: {text}"
    );
    assert!(began.elapsed() < Duration::from_secs(60));
}
