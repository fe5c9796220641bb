//! Decodes arbitrary bytes as one `ToWorker` body: a parent-to-worker message, as the worker's
//! `offspring-io` thread decodes it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::ToWorker;

fuzz_target!(|data: &[u8]| {
    offspring_wire_fuzz::decode_body::<ToWorker>(data);
});
