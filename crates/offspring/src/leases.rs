//! In-flight leases: serializing a handle in the parent takes a lease that the receiving
//! worker inherits when it decodes the handle, and that ends with the call if it never did.
//! Encoding a call collects the tokens of the leases its arguments took ([`collect`]); they
//! travel with the call in its job, and the coordinator's scheduler ends them as the call is
//! delivered or its worker dies.

use std::cell::RefCell;

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

/// Ends in-flight leases taken for a call that never reached a pool (its arguments, or a
/// later call's, failed to encode): those of calls that did are the scheduler's to end.
pub(crate) fn end(tokens: &[u64]) {
    if tokens.is_empty() {
        return;
    }
    if let Ok(coordinator) = crate::init::coordinator() {
        coordinator.registry().end_in_flight(tokens, false);
    }
}
