//! A worker's side of the cross-process primitives: operations travel to the parent as
//! `FromWorker::Call`, written by the calling thread itself where the platform allows (see
//! `outbox`), and the task thread waits for the `ToWorker::Reply`, which the i/o thread reads
//! and hands over while it keeps reading the socket (the lifeline never stops).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use offspring_wire::{FromWorker, PrimOp, PrimReply, encode};

use crate::outbox::Outbox;

/// The worker's connection to the parent's primitives.
pub struct Client {
    outbox: Arc<Outbox>,
    next_call: AtomicU64,
    pending: Mutex<HashMap<u64, Arc<Reply>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Reply {
    value: Mutex<Option<PrimReply>>,
    ready: Condvar,
}

static CLIENT: OnceLock<Client> = OnceLock::new();

/// The client, in a worker process once it has connected; `None` in the parent.
pub fn client() -> Option<&'static Client> {
    CLIENT.get()
}

pub(crate) fn install(outbox: Arc<Outbox>) {
    let _ = CLIENT.set(Client {
        outbox,
        next_call: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// Sends `op` to the parent and waits for its reply. The parent runs any timeout; if the
    /// parent goes away, the worker exits, so this never waits on a dead parent.
    pub fn call(&self, op: PrimOp) -> PrimReply {
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let reply = Arc::new(Reply::default());
        lock(&self.pending).insert(call_id, Arc::clone(&reply));
        if !self.send(call_id, op) {
            lock(&self.pending).remove(&call_id);
            return PrimReply::Error("the connection to the parent is closed".into());
        }
        let mut value = lock(&reply.value);
        loop {
            if let Some(value) = value.take() {
                return value;
            }
            value = reply
                .ready
                .wait(value)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Sends `op` without waiting for a reply (releases).
    pub fn notify(&self, op: PrimOp) {
        let _ = self.send(0, op);
    }

    fn send(&self, call_id: u64, op: PrimOp) -> bool {
        match encode(&FromWorker::Call { call_id, op }) {
            Ok(frame) => self.outbox.send([frame]).is_some(),
            Err(_) => false,
        }
    }

    /// Hands a reply from the parent to the waiting call.
    pub(crate) fn deliver(&self, call_id: u64, value: PrimReply) {
        if let Some(reply) = lock(&self.pending).remove(&call_id) {
            *lock(&reply.value) = Some(value);
            reply.ready.notify_all();
        }
    }
}
