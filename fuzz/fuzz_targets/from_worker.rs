//! Decodes arbitrary bytes as one `FromWorker` body: a worker-to-parent message, as the parent's
//! reader task decodes it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::FromWorker;

fuzz_target!(|data: &[u8]| {
    offspring_wire_fuzz::decode_body::<FromWorker>(data);
});
