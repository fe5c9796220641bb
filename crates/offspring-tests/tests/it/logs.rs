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
