//! `Process`: values, timeouts, kills, panics.

use std::time::{Duration, Instant};

use offspring::{Error, Process};

#[offspring::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[offspring::task]
fn sleep_then(ms: u64, value: String) -> String {
    std::thread::sleep(Duration::from_millis(ms));
    value
}

#[offspring::task]
fn sleep_forever() {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[offspring::task]
fn boom(message: String) -> u32 {
    panic!("{message}");
}

#[offspring::task]
fn exit_with(code: i32) {
    std::process::exit(code);
}

#[offspring::task]
fn whoami() -> u32 {
    std::process::id()
}

#[test]
fn a_task_returns_its_value_from_a_child() -> offspring::Result<()> {
    let started = Instant::now();
    let child = Process::spawn(add, (2, 3))?;
    assert_ne!(child.pid(), std::process::id());
    assert_eq!(child.join()?, 5);
    println!("spawn to value: {:?}", started.elapsed());
    assert!(!child.is_alive(), "the child exits after its task");
    assert!(child.exit_status().is_some_and(|s| s.success()));
    assert!(matches!(child.join(), Err(Error::AlreadyTaken { .. })));
    Ok(())
}

#[test]
fn the_task_runs_in_the_child_process() -> offspring::Result<()> {
    let child = Process::spawn(whoami, ())?;
    assert_eq!(child.join()?, child.pid());
    Ok(())
}

#[test]
fn join_timeout_times_out_and_the_value_stays_retrievable() -> offspring::Result<()> {
    let child = Process::spawn(sleep_then, (1500, "late".to_owned()))?;
    assert!(matches!(
        child.join_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(child.is_alive());
    assert_eq!(child.join_timeout(Duration::from_secs(30))?, "late");
    Ok(())
}

#[test]
fn kill_then_join_reports_worker_died_with_the_signal() -> offspring::Result<()> {
    let child = Process::spawn(sleep_forever, ())?;
    let pid = child.pid();
    child.kill()?;
    match child.join() {
        Err(Error::WorkerDied {
            pid: died,
            status,
            task,
            ..
        }) => {
            assert_eq!(died, pid);
            assert!(task.ends_with("sleep_forever"), "{task}");
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(status.and_then(|s| s.signal()), Some(9));
            }
            // Windows has no signals: the parent's kill leaves a code of its own, never a
            // task's `exit(1)`.
            #[cfg(not(unix))]
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(0x0FF5_0009),
                "{status:?}"
            );
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(!child.is_alive());
    Ok(())
}

#[test]
fn terminate_stops_a_running_task() -> offspring::Result<()> {
    let child = Process::spawn(sleep_forever, ())?;
    child.terminate()?;
    let err = child.join().expect_err("a terminated task has no value");
    assert!(matches!(err, Error::WorkerDied { .. }), "{err}");
    println!("{err}");
    let said = err.to_string();
    if cfg!(windows) {
        assert!(said.contains("terminated by its parent"), "{said}");
    } else {
        assert!(said.contains("SIGTERM"), "{said}");
    }
    Ok(())
}

/// Where the C `atexit` handler of [`register_c_atexit`] writes.
static AT_EXIT_PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

extern "C" fn write_at_exit() {
    if let Some(path) = AT_EXIT_PATH.get() {
        let _ = std::fs::write(path, "ran");
    }
}

/// Registers a C `atexit` handler in the worker, as a task using a C library might.
#[offspring::task]
fn register_c_atexit(path: std::path::PathBuf) {
    let _ = AT_EXIT_PATH.set(path);
    // SAFETY: `atexit` only records the pointer of a plain `extern "C"` function that does
    // not unwind (it only writes a file, ignoring errors).
    unsafe {
        libc::atexit(write_at_exit);
    }
}

/// A worker that ends normally runs the C `atexit` handlers its tasks registered, on Windows
/// as on Linux (there through the C runtime's `exit`, not `ExitProcess`).
#[test]
fn a_workers_c_exit_handlers_run_when_it_ends() -> offspring::Result<()> {
    let path = std::env::temp_dir().join(format!("offspring-{}-atexit", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let pool = offspring::Pool::new(1)?;
    pool.apply(register_c_atexit, path.clone())?;
    pool.close();
    pool.join()?;
    let written = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        written.ok().as_deref(),
        Some("ran"),
        "the handler did not run"
    );
    Ok(())
}

#[test]
fn a_panicking_task_gives_task_panicked_with_its_message() -> offspring::Result<()> {
    let child = Process::spawn(boom, "the answer is not 42".to_owned())?;
    match child.join() {
        Err(Error::TaskPanicked {
            message,
            location,
            pid,
            ..
        }) => {
            assert_eq!(message, "the answer is not 42");
            assert_eq!(pid, child.pid());
            assert!(location.is_some_and(|l| l.contains("process.rs")));
        }
        other => panic!("expected TaskPanicked, got {other:?}"),
    }
    // The panic was caught: the worker shut down normally afterwards.
    assert!(child.exit_status().is_some_and(|s| s.success()));
    Ok(())
}

#[test]
fn a_task_that_exits_its_process_gives_worker_died_with_the_code() -> offspring::Result<()> {
    let child = Process::spawn(exit_with, 7)?;
    match child.join() {
        Err(Error::WorkerDied { status, .. }) => {
            assert_eq!(status.and_then(|s| s.code()), Some(7));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    Ok(())
}

#[test]
fn in_process_call_runs_the_body() {
    assert_eq!(add::call(40, 2), 42);
}

#[test]
fn a_dropped_handle_detaches_and_the_child_is_still_reaped() -> offspring::Result<()> {
    let child = Process::spawn(sleep_then, (200, "x".to_owned()))?;
    let pid = child.pid();
    drop(child);
    // Reaped by this process's coordinator: gone from its live children. On Linux the pid
    // names no process either, not even a zombie. Windows (and Wine) reuse a pid at once,
    // often for another test's worker, so there the pid says nothing once it is reaped.
    let gone = offspring_tests::wait_until(Duration::from_secs(20), || {
        !offspring::active_children().contains(&pid)
            && (cfg!(windows)
                || (!offspring_tests::process_running(pid)
                    && !std::path::Path::new(&format!("/proc/{pid}")).exists()))
    });
    assert!(gone.is_some(), "detached child {pid} was not reaped");
    Ok(())
}

/// What a worker says of itself: its own pid, its parent's, and that it is a worker.
#[offspring::task]
fn about_me() -> (u32, Option<u32>, bool) {
    let me = offspring::current_process();
    (me.pid, me.parent_pid, me.is_worker)
}

#[test]
fn current_process_tells_a_worker_from_its_parent() -> offspring::Result<()> {
    let here = offspring::current_process();
    assert_eq!(here.pid, std::process::id());
    assert!(!here.is_worker);
    let child = Process::spawn(about_me, ())?;
    let (pid, parent, is_worker) = child.join()?;
    assert_eq!(pid, child.pid());
    assert_eq!(parent, Some(std::process::id()));
    assert!(is_worker);
    let pool = offspring::Pool::new(1)?;
    let (pid, parent, is_worker) = pool.apply(about_me, ())?;
    assert_ne!(pid, std::process::id());
    assert_eq!(parent, Some(std::process::id()));
    assert!(is_worker);
    Ok(())
}

/// A live worker is among `active_children` (pool workers too) until it has exited and been
/// reaped. Other tests run workers at the same time, so only these pids are checked.
#[test]
fn active_children_lists_live_workers_until_they_are_reaped() -> offspring::Result<()> {
    let child = Process::spawn(sleep_forever, ())?;
    let pool = offspring::Pool::new(1)?;
    let pool_worker = pool.apply(whoami, ())?;
    let children = offspring::active_children();
    assert!(children.contains(&child.pid()), "{children:?}");
    assert!(children.contains(&pool_worker), "{children:?}");
    child.kill()?;
    drop(pool);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = offspring::active_children();
        if !children.contains(&child.pid()) && !children.contains(&pool_worker) {
            break;
        }
        assert!(Instant::now() < deadline, "still listed: {children:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
