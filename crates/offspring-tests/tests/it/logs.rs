//! A worker's `tracing` events reach the parent's subscriber, tagged with the worker's pid.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use offspring::Process;

#[offspring::task]
fn chatty(n: u32) -> u32 {
    tracing::info!(n, "hello from the worker");
    n
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("one subscriber per test binary");
        log
    })
}

#[test]
fn a_workers_info_event_reaches_the_parents_log_with_its_pid() -> offspring::Result<()> {
    let log = captured();
    let child = Process::spawn(chatty, 17)?;
    assert_eq!(child.join()?, 17);
    let text = String::from_utf8_lossy(
        &log.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    let line = text
        .lines()
        .find(|line| {
            line.contains("hello from the worker")
                && line.contains(&format!("worker_pid={}", child.pid()))
        })
        .unwrap_or_else(|| panic!("no forwarded line in the parent's log:\n{text}"));
    println!("{line}");
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains("chatty"),
        "the task's name is missing: {line}"
    );
    assert!(
        line.contains("n=17"),
        "the event's fields are missing: {line}"
    );
    Ok(())
}

#[offspring::task]
async fn chatty_later(n: u32) -> u32 {
    tracing::info!(n, "async hello before the await");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    tracing::info!(n, "async hello after the await");
    n
}

/// The events of async calls running at once on one worker reach the parent's log, each
/// under its own task's span, before and after an await.
#[test]
fn async_calls_running_at_once_log_under_their_task() -> offspring::Result<()> {
    let log = captured();
    let pool = offspring::Pool::builder()
        .processes(1)
        .async_concurrency(4)
        .build()?;
    assert_eq!(pool.map(chatty_later, 100..104)?, [100, 101, 102, 103]);
    pool.close();
    pool.join()?;
    let text = String::from_utf8_lossy(
        &log.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    for n in 100..104 {
        for when in ["before", "after"] {
            let line = text
                .lines()
                .find(|line| {
                    line.contains(&format!("async hello {when} the await"))
                        && line.contains(&format!("n={n}"))
                })
                .unwrap_or_else(|| panic!("no line {when} the await of call {n}:\n{text}"));
            assert!(line.contains("chatty_later"), "the task is missing: {line}");
        }
    }
    Ok(())
}
