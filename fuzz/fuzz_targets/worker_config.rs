//! Decodes arbitrary bytes as one `WorkerConfig` body: the worker's configuration alone (it travels
//! inside `Verdict::Accepted`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::WorkerConfig;

fuzz_target!(|data: &[u8]| {
    offspring_wire_fuzz::decode_body::<WorkerConfig>(data);
});
