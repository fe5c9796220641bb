//! Decodes arbitrary bytes as one `ServerChallenge` body: handshake step 2, as the worker decodes
//! it before the parent has proved the secret.

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::ServerChallenge;

fuzz_target!(|data: &[u8]| {
    offspring_wire_fuzz::decode_body::<ServerChallenge>(data);
});
