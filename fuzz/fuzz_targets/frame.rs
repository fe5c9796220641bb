//! Reads arbitrary bytes as a stream of frames under either cap (the first byte chooses the
//! cap and the read size), and decodes every body read as each message type of the protocol.

#![no_main]

use libfuzzer_sys::fuzz_target;
use offspring_wire::{
    ClientHello, ClientProof, FromWorker, ServerChallenge, ToWorker, Verdict, WorkerConfig,
};
use offspring_wire_fuzz::{decode_body, read_frames};

fuzz_target!(|data: &[u8]| {
    read_frames(data, |body| {
        decode_body::<ClientHello>(body);
        decode_body::<ServerChallenge>(body);
        decode_body::<ClientProof>(body);
        decode_body::<Verdict>(body);
        decode_body::<WorkerConfig>(body);
        decode_body::<ToWorker>(body);
        decode_body::<FromWorker>(body);
    });
});
