//! In-flight leases: serializing a handle in the parent takes a lease that the receiving
//! worker inherits when it decodes the handle, and that ends with the call if it never did.
//! Encoding a call collects the tokens of the leases its arguments took ([`collect`]), and
//! the call's sink ends them as the call ends ([`CallLeases`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

thread_local! {
    /// The reason a handle refused to serialize (postcard keeps no custom message).
    static REFUSED: RefCell<Option<&'static str>> = const { RefCell::new(None) };
    /// Why a handle refused to decode (postcard keeps no custom message either way).
    static UNDECODABLE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// In-flight lease tokens taken while encoding one call's arguments.
    static COLLECTING: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
}

/// Runs `encode`, collecting the in-flight lease tokens taken by handles it serializes.
pub(crate) fn collect<R>(encode: impl FnOnce() -> R) -> (R, Vec<u64>) {
    let previous = COLLECTING.with(|c| c.borrow_mut().replace(Vec::new()));
    let result = encode();
    let tokens = COLLECTING
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
        .unwrap_or_default();
    (result, tokens)
}

/// Whether a call's arguments are being encoded on this thread (so the leases that handles
/// take end with the call).
pub(crate) fn collecting() -> bool {
    COLLECTING.with(|c| c.borrow().is_some())
}

/// Records a lease token taken by a handle being serialized, for the call being encoded.
pub(crate) fn record(token: u64) {
    COLLECTING.with(|c| {
        if let Some(tokens) = c.borrow_mut().as_mut() {
            tokens.push(token);
        }
    });
}

/// Remembers why a handle refused to serialize, for the encoder's error; returns `reason`.
pub(crate) fn refuse(reason: &'static str) -> &'static str {
    REFUSED.with(|e| *e.borrow_mut() = Some(reason));
    reason
}

/// The reason a handle refused to serialize, taken by the encoder.
pub(crate) fn take_refusal() -> Option<&'static str> {
    REFUSED.with(|e| e.borrow_mut().take())
}

/// Remembers why a handle refused to decode, for the decoder's error; returns `reason`.
pub(crate) fn undecodable(reason: String) -> String {
    UNDECODABLE.with(|e| *e.borrow_mut() = Some(reason.clone()));
    reason
}

/// The message of a decoding error: a handle's own reason if one refused, else postcard's.
pub(crate) fn decode_message(error: &postcard::Error) -> String {
    UNDECODABLE
        .with(|e| e.borrow_mut().take())
        .unwrap_or_else(|| error.to_string())
}

/// Ends the in-flight leases of a call that ended (those its worker adopted are unaffected).
pub(crate) fn end(tokens: &[u64]) {
    end_after(tokens, false);
}

/// As [`end`], saying whether the call's worker died.
pub(crate) fn end_after(tokens: &[u64], worker_died: bool) {
    if tokens.is_empty() {
        return;
    }
    // In a worker, the leases were taken from its parent's registry (see `prims::handle`).
    if let Some(client) = offspring_worker::client() {
        let op = offspring_wire::PrimOp::EndInFlight {
            tokens: tokens.to_vec(),
            worker_died,
        };
        client.forward(Vec::new(), op, None);
        return;
    }
    if let Ok(coordinator) = crate::init::coordinator() {
        coordinator.registry().end_in_flight(tokens, worker_died);
    }
}

/// The in-flight leases of a job's calls, by input index, ended as each call is delivered.
#[derive(Default)]
pub(crate) struct CallLeases {
    by_call: Mutex<HashMap<usize, Vec<u64>>>,
    /// Whether any call has leases: most jobs carry no handles, and their calls skip the lock.
    any: AtomicBool,
}

impl CallLeases {
    pub(crate) fn add(&self, index: usize, tokens: Vec<u64>) {
        if !tokens.is_empty() {
            self.any.store(true, Ordering::Release);
            self.by_call
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(index, tokens);
        }
    }

    pub(crate) fn end_all(&self) {
        let all = std::mem::take(&mut *self.by_call.lock().unwrap_or_else(PoisonError::into_inner));
        for tokens in all.values() {
            end(tokens);
        }
    }

    pub(crate) fn end(&self, index: usize) {
        self.end_after(index, false);
    }

    pub(crate) fn end_after(&self, index: usize, worker_died: bool) {
        // Leases are added before their call is submitted, so a call with leases sees `any`.
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let tokens = self
            .by_call
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&index);
        if let Some(tokens) = tokens {
            end_after(&tokens, worker_died);
        }
    }
}
