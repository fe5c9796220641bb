//! Decodes arbitrary bytes as one `Verdict` body: handshake step 4, as the worker decodes it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::Verdict;

fuzz_target!(|data: &[u8]| {
    offspring_wire_fuzz::decode_body::<Verdict>(data);
});
