//! The worker's outgoing queue, with a way for the task thread to wait until what it queued
//! is written to the socket.
//!
//! Why wait: a call that kills its worker (`abort`, a segfault) takes the process down before
//! the i/o thread has written the reports of the calls before it, and the parent would blame
//! the wrong call. So before each call of a batch, the task thread waits until every report
//! queued so far is in the socket (the kernel keeps it after the process dies). The wait is a
//! short spin, then a condition variable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::runtime::Outgoing;

/// How long the task thread spins before it sleeps while waiting for the writer.
const SPIN: Duration = Duration::from_micros(50);

pub(crate) struct Outbox {
    tx: UnboundedSender<Outgoing>,
    sent: AtomicU64,
    written: AtomicU64,
    waiting: AtomicBool,
    lock: Mutex<()>,
    progress: Condvar,
}

impl Outbox {
    pub(crate) fn new(tx: UnboundedSender<Outgoing>) -> Self {
        Self {
            tx,
            sent: AtomicU64::new(0),
            written: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            lock: Mutex::new(()),
            progress: Condvar::new(),
        }
    }

    /// Queues an item; frames are counted so [`Outbox::wait_written`] can wait for them.
    /// Returns the count of frames queued so far, or `None` when the writer is gone.
    pub(crate) fn send(&self, item: Outgoing) -> Option<u64> {
        let counted = matches!(item, Outgoing::Frame(_) | Outgoing::Log(_));
        let seq = if counted {
            self.sent.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.sent.load(Ordering::SeqCst)
        };
        match self.tx.send(item) {
            Ok(()) => Some(seq),
            Err(_) => {
                if counted {
                    // Never written: count it as written so no one waits for it.
                    self.written.fetch_add(1, Ordering::SeqCst);
                }
                None
            }
        }
    }

    /// Frames queued so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Called by the writer after each frame is in the socket (or was given up on).
    pub(crate) fn mark_written(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            let _guard = self
                .lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.progress.notify_all();
        }
    }

    /// Waits until at least `target` frames were written.
    pub(crate) fn wait_written(&self, target: u64) {
        let started = Instant::now();
        while self.written.load(Ordering::SeqCst) < target {
            if started.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            self.waiting.store(true, Ordering::SeqCst);
            let guard = self
                .lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.written.load(Ordering::SeqCst) < target {
                // The timeout only guards against a missed wake-up; the loop re-checks.
                let _ = self
                    .progress
                    .wait_timeout(guard, Duration::from_millis(10))
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}
