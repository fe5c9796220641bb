//! Decodes arbitrary bytes as one `ClientHello` body: handshake step 1, as the parent decodes it
//! from a peer not yet trusted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::ClientHello;

fuzz_target!(|data: &[u8]| {
    offspring_wire_fuzz::decode_body::<ClientHello>(data);
});
