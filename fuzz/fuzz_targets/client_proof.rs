//! Decodes arbitrary bytes as one `ClientProof` body: handshake step 3, as the parent decodes it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::ClientProof;

fuzz_target!(|data: &[u8]| {
    offspring_wire_fuzz::decode_body::<ClientProof>(data);
});
