//! A crash fails one call, never the pool: panics, deaths of every kind, timeouts, retries,
//! initializers and worker recycling, with real workers.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use offspring::{Error, Pool};
use offspring_coordinator::MAX_START_FAILURES;

#[offspring::task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[offspring::task]
fn boom() -> u32 {
    panic!("boom");
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Death {
    Abort,
    Segfault,
    Exit,
    Hang,
}

#[offspring::task]
fn die(how: Death) {
    match how {
        Death::Abort => std::process::abort(),
        Death::Exit => std::process::exit(9),
        #[cfg(unix)]
        // SAFETY: these calls only reset a signal disposition and deliver the signal to this
        // process (the default action, as a real segfault gets once std's handler passes it on);
        // the crash is the point.
        Death::Segfault => unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::raise(libc::SIGSEGV);
        },
        #[cfg(not(unix))]
        Death::Segfault => std::process::abort(),
        Death::Hang => loop {
            std::thread::sleep(Duration::from_secs(60));
        },
    }
}

/// Puts this worker's pid in `pids`, then hangs.
#[offspring::task]
fn hang_telling(pids: offspring::Queue<u32>) {
    let _ = pids.put(&std::process::id());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Returns `n`, except that it aborts the worker on the chosen items: always, or (with a
/// marker directory) only on the first attempt of each.
#[offspring::task]
fn abort_on(n: u64, chosen: Vec<u64>, first_attempt_only: Option<PathBuf>) -> u64 {
    if chosen.contains(&n) {
        match first_attempt_only {
            None => std::process::abort(),
            Some(dir) => {
                let marker = dir.join(n.to_string());
                if std::fs::create_dir(&marker).is_ok() {
                    std::process::abort();
                }
            }
        }
    }
    n
}

static INITIALIZED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[offspring::task]
fn remember(value: u32) {
    INITIALIZED.fetch_add(value, std::sync::atomic::Ordering::SeqCst);
}

#[offspring::task]
fn initialized() -> u32 {
    INITIALIZED.load(std::sync::atomic::Ordering::SeqCst)
}

#[offspring::task]
fn bad_init() {
    panic!("the initializer fails on purpose");
}

#[offspring::task]
fn fatal_init() {
    std::process::abort();
}

#[offspring::task]
fn spin_ms(ms: u64) -> u64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(ms) {
        std::hint::spin_loop();
    }
    ms
}

#[test]
fn a_panic_fails_its_call_and_the_same_worker_serves_the_next() -> offspring::Result<()> {
    let pool = Pool::new(1)?;
    let before = pool.apply(worker_pid, ())?;
    match pool.apply(boom, ()) {
        Err(Error::TaskPanicked { message, pid, .. }) => {
            assert_eq!(message, "boom");
            assert_eq!(pid, before);
        }
        other => panic!("expected TaskPanicked, got {other:?}"),
    }
    assert_eq!(
        pool.apply(worker_pid, ())?,
        before,
        "the worker survived its panic"
    );
    Ok(())
}

#[test]
fn every_kind_of_death_fails_one_call_and_the_pool_recovers() -> offspring::Result<()> {
    let pool = Pool::new(2)?;
    for how in [Death::Abort, Death::Segfault, Death::Exit] {
        let started = Instant::now();
        match pool.apply(die, how) {
            Err(Error::WorkerDied { pid, status, .. }) => {
                assert!(pid > 0);
                println!(
                    "{how:?}: worker {pid} died ({status:?}), seen after {:?}",
                    started.elapsed()
                );
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    let status = status.expect("exit status collected");
                    match how {
                        Death::Abort => assert_eq!(status.signal(), Some(libc::SIGABRT)),
                        Death::Segfault => assert_eq!(status.signal(), Some(libc::SIGSEGV)),
                        Death::Exit => assert_eq!(status.code(), Some(9)),
                        Death::Hang => {}
                    }
                }
            }
            other => panic!("{how:?}: expected WorkerDied, got {other:?}"),
        }
        assert_eq!(
            pool.map(spin_ms, vec![1; 8])?,
            vec![1; 8],
            "the pool works after {how:?}"
        );
    }
    // Killed from outside while running.
    #[cfg(target_os = "linux")]
    {
        // The hanging call says which worker runs it: other tests' workers are children of
        // this process too, so the process table alone cannot tell.
        let pids = offspring::Queue::new()?;
        let running = pool.apply_async(hang_telling, pids.clone());
        let victim = pids.get_timeout(Duration::from_secs(60))?;
        kill(victim);
        assert!(matches!(running.get(), Err(Error::WorkerDied { pid, .. }) if pid == victim));
        assert_eq!(pool.apply(spin_ms, 1)?, 1);
        assert!(pool.counters().restarted >= 4, "{:?}", pool.counters());
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn kill(pid: u32) {
    // SAFETY: kill takes integers; the pid is a live child of this process.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
}

#[test]
fn only_the_chosen_items_of_a_10_000_item_map_die_and_retries_bring_them_back()
-> offspring::Result<()> {
    let chosen = vec![17, 2_000, 4_999, 7_777, 9_998];
    let pool = Pool::new(2)?;
    let started = Instant::now();
    let results: Vec<_> = pool
        .imap(abort_on, {
            let chosen = chosen.clone();
            (0..10_000u64).map(move |n| (n, chosen.clone(), None))
        })
        .collect();
    let mut died = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(value, n as u64),
            Err(Error::WorkerDied { index, .. }) => died.push(index.expect("an index")),
            Err(other) => panic!("item {n}: unexpected {other}"),
        }
    }
    let chosen_idx: Vec<usize> = chosen.iter().map(|&n| n as usize).collect();
    assert_eq!(died, chosen_idx);
    println!(
        "10 000 items, 5 deaths, in {:?}; counters {:?}",
        started.elapsed(),
        pool.counters()
    );
    assert_eq!(
        pool.map(spin_ms, vec![0; 100])?.len(),
        100,
        "the same pool runs another map"
    );

    // The same through map's chunks: calls queued behind a dying one run elsewhere.
    let err = pool
        .map(abort_on, (0..10_000u64).map(|n| (n, chosen.clone(), None)))
        .expect_err("map reports the first death");
    assert!(
        matches!(
            err,
            Error::WorkerDied {
                index: Some(17),
                ..
            }
        ),
        "{err}"
    );

    let markers = tempdir();
    let retrying = Pool::builder().processes(2).retries(1).build()?;
    let values = retrying.map(
        abort_on,
        (0..10_000u64).map(|n| (n, chosen.clone(), Some(markers.clone()))),
    )?;
    assert_eq!(values, (0..10_000).collect::<Vec<u64>>());
    println!(
        "with retries(1): all 10 000 values; counters {:?}",
        retrying.counters()
    );
    let _ = std::fs::remove_dir_all(&markers);
    Ok(())
}

/// A fresh directory: named by this process and a counter, so two tests never share one.
fn tempdir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "offspring-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

#[test]
fn the_initializer_runs_once_in_each_worker_including_replacements() -> offspring::Result<()> {
    let pool = Pool::builder()
        .processes(2)
        .initializer(remember, 5)
        .max_tasks_per_child(3)
        .build()?;
    let seen: Vec<u32> = pool.map_chunked(initialized, vec![(); 40], 1)?;
    assert!(seen.iter().all(|&v| v == 5), "{seen:?}");
    let counters = pool.counters();
    println!("{counters:?}");
    assert!(
        counters.spawned >= 40 / 3,
        "workers were recycled: {counters:?}"
    );
    Ok(())
}

#[test]
fn max_tasks_per_child_replaces_workers() -> offspring::Result<()> {
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()?;
    let pids: Vec<u32> = (0..6)
        .map(|_| pool.apply(worker_pid, ()))
        .collect::<offspring::Result<_>>()?;
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2]);
    Ok(())
}

#[test]
fn an_initializer_that_fails_breaks_the_pool_without_a_respawn_loop() -> offspring::Result<()> {
    for init in [0, 1] {
        let builder = Pool::builder().processes(2);
        let pool = if init == 0 {
            builder.initializer(bad_init, ()).build()?
        } else {
            builder.initializer(fatal_init, ()).build()?
        };
        let started = Instant::now();
        match pool.apply(worker_pid, ()) {
            Err(Error::InitializerFailed { reason }) => println!("{reason}"),
            other => panic!("expected InitializerFailed, got {other:?}"),
        }
        assert!(matches!(
            pool.apply(worker_pid, ()),
            Err(Error::InitializerFailed { .. })
        ));
        std::thread::sleep(Duration::from_millis(300));
        let counters = pool.counters();
        println!("gave up after {:?}: {counters:?}", started.elapsed());
        assert!(
            counters.spawned <= u64::from(MAX_START_FAILURES) + 2,
            "respawned too often: {counters:?}"
        );
    }
    Ok(())
}

#[test]
fn a_pool_whose_workers_cannot_start_says_so_without_a_respawn_loop() -> offspring::Result<()> {
    // Another build: it runs, connects, proves the secret, and is refused for its identity.
    let pool = offspring::__private::pool_with_program(env!("CARGO_BIN_EXE_other_build").into())
        .processes(2)
        .build()?;
    let started = Instant::now();
    match pool.apply(worker_pid, ()) {
        Err(e @ Error::CannotStartWorkers { .. }) => {
            let message = e.to_string();
            assert!(message.contains("cannot start workers"), "{message}");
            assert!(message.contains("refused"), "{message}");
            println!("{message}");
        }
        other => panic!("expected CannotStartWorkers, got {other:?}"),
    }
    assert!(matches!(
        pool.apply(worker_pid, ()),
        Err(Error::CannotStartWorkers { .. })
    ));
    let counters = pool.counters();
    println!("gave up after {:?}: {counters:?}", started.elapsed());
    Ok(())
}

#[test]
fn a_task_past_its_timeout_is_stopped_and_the_pool_goes_on() -> offspring::Result<()> {
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_secs(1))
        .build()?;
    let started = Instant::now();
    match pool.apply(die, Death::Hang) {
        Err(Error::TaskTimedOut { limit, .. }) => assert_eq!(limit, Duration::from_secs(1)),
        other => panic!("expected TaskTimedOut, got {other:?}"),
    }
    let took = started.elapsed();
    println!("timed out after {took:?}");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(30));
    assert_eq!(pool.apply(spin_ms, 10)?, 10);
    Ok(())
}
