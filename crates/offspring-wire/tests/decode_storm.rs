//! A deterministic storm of random, truncated and bit-flipped frames thrown at every decoder.
//!
//! Each message type the parent or a worker decodes gets one `storm` line below. The storm
//! starts from valid encodings of representative values (every variant of every enum, nested
//! ones included), mutates them, mixes in pure random bytes, and feeds whole streams with
//! tampered length prefixes through `read_frame` under both caps. Decoding may fail, and
//! usually does; it must never panic. Whatever does decode must encode again, and decode back
//! to the same value. A panic anywhere fails the test: nothing here catches one.
//!
//! The generator is a fixed-seed SplitMix64, so every run feeds the same frames and a failure
//! reproduces exactly. A new message type is covered by adding its seeds and one `storm` line.
//! The storm takes a few seconds of CPU even in a debug build, so it runs with the rest of
//! `cargo test` rather than in a release-only step.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::io::{self, Read};
use std::time::Instant;

use offspring_wire::arena::{SharedArg, SharedBytes};
use offspring_wire::{
    Args, ClientHello, ClientProof, FromWorker, HEADER_LEN, Kind, Level, LogField, LogRecord,
    MAX_FRAME, NONCE_LEN, Outcome, PRE_AUTH_MAX_FRAME, PrimOp, PrimReply, RunTask, SegmentRef,
    ServerChallenge, SharedRun, SpanRecord, ToWorker, Verdict, WireError, WorkerConfig, decode,
    encode, frame_len, read_frame,
};
use serde::{Serialize, de::DeserializeOwned};

/// The least number of frames the whole storm must feed to the decoders.
const MIN_FRAMES: u64 = 1_000_000;

#[test]
fn decode_storm() {
    let started = Instant::now();
    let mut total = Tally::default();
    // One line per decoded message type. The counts add up to a little over `MIN_FRAMES`.
    total += storm(&to_worker_seeds(), 300_000);
    total += storm(&from_worker_seeds(), 420_000);
    total += storm(&client_hello_seeds(), 60_000);
    total += storm(&server_challenge_seeds(), 60_000);
    total += storm(&client_proof_seeds(), 60_000);
    total += storm(&verdict_seeds(), 60_000);
    total += storm(&worker_config_seeds(), 60_000);
    let elapsed = started.elapsed();
    println!(
        "decode storm: {} frames tried ({} bodies decoded directly, {} frames read from {} \
         streams), {} decoded and round-tripped, {} refused as too large, in {:.2?}",
        total.frames(),
        total.bodies,
        total.reads,
        total.streams,
        total.decoded,
        total.too_large,
        elapsed,
    );
    assert!(
        total.frames() >= MIN_FRAMES,
        "only {} frames tried, fewer than {MIN_FRAMES}",
        total.frames()
    );
    // Each kind of input must actually have been exercised, or the storm proves little.
    assert!(total.decoded > 0 && total.too_large > 0 && total.streams > 0);
}

/// What one storm did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Bodies handed to `decode` directly (mutated seeds and pure random bytes).
    bodies: u64,
    /// Byte streams handed to `read_frame`.
    streams: u64,
    /// Frames `read_frame` read or refused on those streams.
    reads: u64,
    /// Inputs that decoded, and therefore went through the round trip.
    decoded: u64,
    /// Frames `read_frame` refused for a length over the cap.
    too_large: u64,
}

impl Tally {
    fn frames(&self) -> u64 {
        self.bodies + self.reads
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.bodies += other.bodies;
        self.streams += other.streams;
        self.reads += other.reads;
        self.decoded += other.decoded;
        self.too_large += other.too_large;
    }
}

/// Feeds `n` inputs derived from `seeds` to the decoders of `M`: about one in eight is pure
/// random bytes, five in eight are mutated encodings of the seeds, and a quarter are streams
/// of one to three frames with tampered length prefixes, read with `read_frame` under
/// [`PRE_AUTH_MAX_FRAME`] or [`MAX_FRAME`].
fn storm<M>(seeds: &[M], n: u64) -> Tally
where
    M: DeserializeOwned + Serialize + PartialEq + Debug,
{
    assert!(!seeds.is_empty(), "a storm needs at least one seed");
    let bodies: Vec<Vec<u8>> = seeds
        .iter()
        .map(|seed| {
            let frame = encode(seed).expect("a seed encodes");
            let back: M = decode(&frame[HEADER_LEN..]).expect("a seed decodes");
            assert_eq!(&back, seed, "a seed does not round-trip");
            frame[HEADER_LEN..].to_vec()
        })
        .collect();
    // Each type gets its own stream of random numbers, so adding a type changes no other's.
    let mut rng = Rng::new(fnv1a(std::any::type_name::<M>().as_bytes()));
    let mut tally = Tally::default();
    for _ in 0..n {
        match rng.below(8) {
            0 => {
                let body = random_bytes(&mut rng);
                tally.bodies += 1;
                tally.decoded += u64::from(check::<M>(&body));
            }
            1..=5 => {
                let mut body = bodies[rng.below(bodies.len())].clone();
                mutate(&mut rng, &mut body, &bodies);
                tally.bodies += 1;
                tally.decoded += u64::from(check::<M>(&body));
            }
            _ => {
                let stream = stream(&mut rng, &bodies);
                tally.streams += 1;
                read_stream::<M>(&mut rng, &stream, &mut tally);
            }
        }
    }
    tally
}

/// Decodes `body` as an `M`. A malformed body is fine; anything that decodes must survive the
/// round trip. Returns whether it decoded.
fn check<M>(body: &[u8]) -> bool
where
    M: DeserializeOwned + Serialize + PartialEq + Debug,
{
    match decode::<M>(body) {
        Ok(msg) => {
            round_trip(&msg, body.len());
            true
        }
        Err(WireError::Malformed(_)) => false,
        Err(e) => panic!("decode failed with something other than Malformed: {e}"),
    }
}

/// Encodes a decoded message and decodes it again. Postcard's encoding is the shortest one
/// (minimal varints), so it can never be longer than the input the message came from.
fn round_trip<M>(msg: &M, input_len: usize)
where
    M: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let frame = encode(msg).expect("a decoded message encodes again");
    let header = [frame[0], frame[1], frame[2], frame[3]];
    let len = frame_len(header, MAX_FRAME).expect("an encoded frame is within the cap");
    assert_eq!(len, frame.len() - HEADER_LEN, "the header states the body");
    assert!(
        len <= input_len,
        "{msg:?} re-encodes to {len} bytes, more than the {input_len} it decoded from"
    );
    let back: M = decode(&frame[HEADER_LEN..]).expect("a re-encoded message decodes");
    assert_eq!(&back, msg, "the round trip changed the message");
}

/// Builds a stream of one to three frames from the seeds, with bodies sometimes mutated,
/// length prefixes sometimes wrong (off by a little, over a cap, random, one bit flipped),
/// and the whole stream sometimes cut short.
fn stream(rng: &mut Rng, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..=rng.below(3) {
        let mut body = bodies[rng.below(bodies.len())].clone();
        if rng.below(2) == 0 {
            mutate(rng, &mut body, bodies);
        }
        let true_len = u32::try_from(body.len()).expect("a test body fits a u32");
        let len = match rng.below(8) {
            0..=3 => true_len,
            4 => {
                let delta = 1 + rng.below(4) as u32;
                if rng.below(2) == 0 {
                    true_len.wrapping_add(delta)
                } else {
                    true_len.wrapping_sub(delta)
                }
            }
            5 => {
                const EDGES: [u32; 6] = [
                    PRE_AUTH_MAX_FRAME,
                    PRE_AUTH_MAX_FRAME + 1,
                    MAX_FRAME,
                    MAX_FRAME + 1,
                    u32::MAX / 2 + 1,
                    u32::MAX,
                ];
                EDGES[rng.below(EDGES.len())]
            }
            6 => rng.next() as u32,
            _ => true_len ^ (1 << rng.below(32)),
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&body);
    }
    if rng.below(4) == 0 {
        out.truncate(rng.below(out.len() + 1));
    }
    out
}

/// Reads `stream` frame by frame until it ends or a read fails, decoding every body read.
/// Checks that a refused frame was refused after its header only, before any of its body
/// was read (so before anything of the announced size could be allocated for it).
fn read_stream<M>(rng: &mut Rng, stream: &[u8], tally: &mut Tally)
where
    M: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let cap = if rng.below(2) == 0 {
        PRE_AUTH_MAX_FRAME
    } else {
        MAX_FRAME
    };
    let mut reader = Trickle {
        data: stream,
        pos: 0,
        chunk: if rng.below(2) == 0 {
            usize::MAX
        } else {
            1 + rng.below(7)
        },
        interrupt: rng.below(4) == 0,
        interrupted: false,
    };
    loop {
        let start = reader.pos;
        let read = read_frame(&mut reader, cap);
        // A clean end of stream is not a frame; everything else (read or refused) is one.
        tally.reads += u64::from(!matches!(read, Ok(None)));
        match read {
            Ok(None) => {
                assert_eq!(start, stream.len(), "end of stream reported mid-stream");
                break;
            }
            Ok(Some(body)) => {
                assert!(body.len() <= cap as usize, "a body over the cap was read");
                assert_eq!(reader.pos, start + HEADER_LEN + body.len());
                let header = &stream[start..start + HEADER_LEN];
                assert_eq!(header, (body.len() as u32).to_le_bytes());
                tally.decoded += u64::from(check::<M>(&body));
            }
            Err(WireError::TooLarge { len, max }) => {
                assert_eq!(max, cap);
                assert!(
                    len > u64::from(cap),
                    "{len} bytes refused under a cap of {cap}"
                );
                assert_eq!(
                    reader.pos,
                    start + HEADER_LEN,
                    "a frame over the cap had its body read before it was refused"
                );
                tally.too_large += 1;
                break;
            }
            Err(WireError::Io(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
                assert_eq!(reader.pos, stream.len(), "a read failed before the end");
                break;
            }
            Err(e) => panic!("read_frame failed with an unexpected error: {e}"),
        }
    }
}

/// A reader over a slice that hands out at most `chunk` bytes per read, and (when
/// `interrupt` is set) fails every other read with `Interrupted`, as a signal would.
struct Trickle<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
    interrupt: bool,
    interrupted: bool,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt {
            self.interrupted = !self.interrupted;
            if self.interrupted {
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
        let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Applies one to three random mutations to `body`; `pool` supplies material for splices.
fn mutate(rng: &mut Rng, body: &mut Vec<u8>, pool: &[Vec<u8>]) {
    for _ in 0..=rng.below(3) {
        match rng.below(8) {
            // Flip one bit.
            0 if !body.is_empty() => {
                let i = rng.below(body.len());
                body[i] ^= 1 << rng.below(8);
            }
            // Cut the body short.
            1 => body.truncate(rng.below(body.len() + 1)),
            // Overwrite a byte with a value that sits on a boundary (tags, varint bits).
            2 if !body.is_empty() => {
                const EDGES: [u8; 7] = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff];
                let i = rng.below(body.len());
                body[i] = if rng.below(2) == 0 {
                    EDGES[rng.below(EDGES.len())]
                } else {
                    rng.next() as u8
                };
            }
            // Insert a few random bytes.
            3 => {
                let at = rng.below(body.len() + 1);
                let extra: Vec<u8> = (0..=rng.below(8)).map(|_| rng.next() as u8).collect();
                body.splice(at..at, extra);
            }
            // Remove a range.
            4 if !body.is_empty() => {
                let from = rng.below(body.len());
                let to = from + 1 + rng.below(body.len() - from);
                body.drain(from..to);
            }
            // Keep a prefix and finish with the tail of another seed.
            5 => {
                let other = &pool[rng.below(pool.len())];
                body.truncate(rng.below(body.len() + 1));
                body.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            // Plant a huge varint: a sequence, string or byte length of billions, or an
            // overlong encoding that must be refused rather than wrap.
            6 => {
                const HUGE: [&[u8]; 4] = [
                    &[0xff, 0xff, 0xff, 0xff, 0x0f],
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                    &[0xff; 11],
                    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
                ];
                let at = rng.below(body.len() + 1);
                let huge = HUGE[rng.below(HUGE.len())];
                if rng.below(2) == 0 {
                    body.splice(at..at, huge.iter().copied());
                } else {
                    let end = (at + huge.len()).min(body.len());
                    body.splice(at..end, huge.iter().copied());
                }
            }
            // Repeat a range, as a duplicated field or element would.
            _ if !body.is_empty() => {
                let from = rng.below(body.len());
                let to = from + 1 + rng.below((body.len() - from).min(16));
                let copy = body[from..to].to_vec();
                body.splice(to..to, copy);
            }
            _ => body.push(rng.next() as u8),
        }
    }
}

/// Random bytes: usually short (most messages are), now and then a few hundred.
fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let max = if rng.below(8) == 0 { 512 } else { 48 };
    (0..rng.below(max)).map(|_| rng.next() as u8).collect()
}

/// SplitMix64: a tiny generator with a fixed seed, so the storm is the same on every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be zero. The modulo bias is irrelevant here.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// FNV-1a, to turn a type's name into its storm's seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

// Seeds: representative values of every message, with every variant of every enum they hold.
// Each `*_variant` function matches exhaustively, so a new variant does not compile until it
// is listed there, and the storm then asserts that the seeds include it.

/// Asserts that the seeds hold every one of `count` variants, as numbered by `variant`.
fn assert_covers<M>(seeds: &[M], variant: fn(&M) -> usize, count: usize) {
    let seen: BTreeSet<usize> = seeds.iter().map(variant).collect();
    let all: BTreeSet<usize> = (0..count).collect();
    assert_eq!(
        seen,
        all,
        "the seeds of {} miss a variant",
        std::any::type_name::<M>()
    );
}

fn to_worker_variant(msg: &ToWorker) -> usize {
    match msg {
        ToWorker::Run(_) => 0,
        ToWorker::Shutdown => 1,
        ToWorker::Reply { .. } => 2,
        ToWorker::RunShared(_) => 3,
        ToWorker::Recall { .. } => 4,
        ToWorker::Heartbeat => 5,
    }
}

fn from_worker_variant(msg: &FromWorker) -> usize {
    match msg {
        FromWorker::Started { .. } => 0,
        FromWorker::Item { .. } => 1,
        FromWorker::Finished { .. } => 2,
        FromWorker::Log(_) => 3,
        FromWorker::Call { .. } => 4,
        FromWorker::LogsDropped { .. } => 5,
        FromWorker::Doorbell => 6,
        FromWorker::CallFor { .. } => 7,
        FromWorker::Heartbeat => 8,
        FromWorker::Node { .. } => 9,
    }
}

fn outcome_variant(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Value(_) => 0,
        Outcome::Panicked { .. } => 1,
        Outcome::UnknownTask => 2,
        Outcome::BadArgs(_) => 3,
        Outcome::BadResult(_) => 4,
        Outcome::TimedOut { .. } => 5,
        Outcome::Shared { .. } => 6,
    }
}

fn prim_op_variant(op: &PrimOp) -> usize {
    match op {
        PrimOp::Create { .. } => 0,
        PrimOp::CreatePipe => 1,
        PrimOp::Adopt { .. } => 2,
        PrimOp::Release { .. } => 3,
        PrimOp::EventSet { .. } => 4,
        PrimOp::EventClear { .. } => 5,
        PrimOp::EventIsSet { .. } => 6,
        PrimOp::EventWait { .. } => 7,
        PrimOp::Acquire { .. } => 8,
        PrimOp::ReleasePermit { .. } => 9,
        PrimOp::Available { .. } => 10,
        PrimOp::BarrierWait { .. } => 11,
        PrimOp::Put { .. } => 12,
        PrimOp::Get { .. } => 13,
        PrimOp::Len { .. } => 14,
        PrimOp::TaskDone { .. } => 15,
        PrimOp::Join { .. } => 16,
        PrimOp::Send { .. } => 17,
        PrimOp::Recv { .. } => 18,
        PrimOp::BarrierAbort { .. } => 19,
        PrimOp::BarrierReset { .. } => 20,
        PrimOp::BarrierIsBroken { .. } => 21,
        PrimOp::QueueShutdown { .. } => 22,
        PrimOp::CondWait { .. } => 23,
        PrimOp::CondNotify { .. } => 24,
        PrimOp::BarrierActionDone { .. } => 25,
        PrimOp::LeaseInFlight { .. } => 26,
        PrimOp::EndInFlight { .. } => 27,
        PrimOp::Gone { .. } => 28,
        PrimOp::SharedCreate { .. } => 29,
        PrimOp::SharedSeal { .. } => 30,
        PrimOp::Sync => 31,
        PrimOp::AcquireLent { .. } => 32,
        PrimOp::Attach { .. } => 33,
    }
}

fn prim_reply_variant(reply: &PrimReply) -> usize {
    match reply {
        PrimReply::Unit => 0,
        PrimReply::Bool(_) => 1,
        PrimReply::Count(_) => 2,
        PrimReply::Id(_) => 3,
        PrimReply::Pair(..) => 4,
        PrimReply::Item(_) => 5,
        PrimReply::Timeout => 6,
        PrimReply::Error(_) => 7,
        PrimReply::ShutDown => 8,
        PrimReply::RunAction => 9,
        PrimReply::Shared { .. } => 10,
        PrimReply::Lent => 11,
    }
}

fn verdict_variant(verdict: &Verdict) -> usize {
    match verdict {
        Verdict::Accepted(_) => 0,
        Verdict::Rejected(_) => 1,
    }
}

fn kind_variant(kind: &Kind) -> usize {
    match kind {
        Kind::Event => 0,
        Kind::Semaphore => 1,
        Kind::Barrier => 2,
        Kind::Queue => 3,
        Kind::PipeEnd => 4,
        Kind::Condition => 5,
        Kind::Shared => 6,
    }
}

fn level_variant(level: &Level) -> usize {
    match level {
        Level::Trace => 0,
        Level::Debug => 1,
        Level::Info => 2,
        Level::Warn => 3,
        Level::Error => 4,
    }
}

const KINDS: [Kind; 7] = [
    Kind::Event,
    Kind::Semaphore,
    Kind::Barrier,
    Kind::Queue,
    Kind::PipeEnd,
    Kind::Condition,
    Kind::Shared,
];

const LEVELS: [Level; 5] = [
    Level::Trace,
    Level::Debug,
    Level::Info,
    Level::Warn,
    Level::Error,
];

fn prim_replies() -> Vec<PrimReply> {
    let replies = vec![
        PrimReply::Unit,
        PrimReply::Bool(true),
        PrimReply::Bool(false),
        PrimReply::Count(0),
        PrimReply::Count(u64::MAX),
        PrimReply::Id(300),
        PrimReply::Pair(1, u64::MAX),
        PrimReply::Item(vec![0, 1, 2, 0xff]),
        PrimReply::Item(Vec::new()),
        PrimReply::Timeout,
        PrimReply::Error("the other end is gone".to_owned()),
        PrimReply::ShutDown,
        PrimReply::RunAction,
        PrimReply::Shared {
            id: 7,
            pid: u32::MAX,
            handle: 12,
            tag: u64::MAX,
        },
        PrimReply::Lent,
    ];
    assert_covers(&replies, prim_reply_variant, 12);
    replies
}

fn prim_ops() -> Vec<PrimOp> {
    assert_covers(&KINDS, kind_variant, 7);
    let mut ops: Vec<PrimOp> = KINDS
        .iter()
        .map(|&kind| PrimOp::Create { kind, param: 3 })
        .collect();
    ops.extend([
        PrimOp::Create {
            kind: Kind::Queue,
            param: u64::MAX,
        },
        PrimOp::CreatePipe,
        PrimOp::Adopt {
            id: 7,
            token: u64::MAX,
        },
        PrimOp::Release { id: 7 },
        PrimOp::EventSet { id: 1 },
        PrimOp::EventClear { id: 1 },
        PrimOp::EventIsSet { id: 1 },
        PrimOp::EventWait {
            id: 1,
            timeout_ms: None,
        },
        PrimOp::EventWait {
            id: 1,
            timeout_ms: Some(0),
        },
        PrimOp::Acquire {
            id: 2,
            timeout_ms: Some(250),
        },
        PrimOp::ReleasePermit { id: 2 },
        PrimOp::Available { id: 2 },
        PrimOp::BarrierWait {
            id: 3,
            timeout_ms: Some(u64::MAX),
        },
        PrimOp::Put {
            id: 4,
            item: vec![9, 8, 7, 6, 5],
            timeout_ms: None,
        },
        PrimOp::Get {
            id: 4,
            timeout_ms: Some(10),
        },
        PrimOp::Len { id: 4 },
        PrimOp::TaskDone { id: 4 },
        PrimOp::Join {
            id: 4,
            timeout_ms: None,
        },
        PrimOp::Send {
            id: 5,
            item: Vec::new(),
        },
        PrimOp::Recv {
            id: 6,
            timeout_ms: Some(1),
        },
        PrimOp::BarrierAbort { id: 3 },
        PrimOp::BarrierReset { id: 3 },
        PrimOp::BarrierIsBroken { id: u64::MAX },
        PrimOp::QueueShutdown {
            id: 4,
            immediate: true,
        },
        PrimOp::QueueShutdown {
            id: 4,
            immediate: false,
        },
        PrimOp::CondWait {
            id: 8,
            lock: 2,
            timeout_ms: Some(5),
        },
        PrimOp::CondNotify { id: 8, n: u64::MAX },
        PrimOp::BarrierActionDone {
            id: 3,
            failure: Some("it panicked: ünï".to_owned()),
        },
        PrimOp::BarrierActionDone {
            id: 3,
            failure: None,
        },
        PrimOp::LeaseInFlight { id: 4 },
        PrimOp::EndInFlight {
            tokens: vec![1, u64::MAX],
            worker_died: true,
        },
        PrimOp::EndInFlight {
            tokens: Vec::new(),
            worker_died: false,
        },
        PrimOp::Gone {
            path: vec![17, u32::MAX],
            clean: false,
        },
        PrimOp::Gone {
            path: Vec::new(),
            clean: true,
        },
        PrimOp::SharedCreate {
            len: u64::MAX,
            writable: true,
        },
        PrimOp::SharedCreate {
            len: 0,
            writable: false,
        },
        PrimOp::SharedSeal { id: 3 },
        PrimOp::Sync,
        PrimOp::AcquireLent {
            id: 2,
            timeout_ms: None,
        },
        PrimOp::AcquireLent {
            id: u64::MAX,
            timeout_ms: Some(0),
        },
        PrimOp::Attach { id: 7 },
        PrimOp::Attach { id: u64::MAX },
    ]);
    assert_covers(&ops, prim_op_variant, 34);
    ops
}

fn outcomes() -> Vec<Outcome> {
    let outcomes = vec![
        Outcome::Value(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        Outcome::Value(Vec::new()),
        Outcome::Panicked {
            message: "index out of bounds: the len is 3 but the index is 7".to_owned(),
            location: Some("src/main.rs:12:5".to_owned()),
        },
        Outcome::Panicked {
            message: "boom ✓ é".to_owned(),
            location: None,
        },
        Outcome::UnknownTask,
        Outcome::BadArgs("unexpected end of input".to_owned()),
        Outcome::BadResult(String::new()),
        Outcome::TimedOut { after_ms: 1500 },
        Outcome::TimedOut { after_ms: u64::MAX },
        Outcome::Shared {
            count: 3,
            bytes: SharedBytes {
                at: 64,
                len: 1 << 20,
                sum: 0x1234_5678_9abc_def0,
            },
        },
    ];
    assert_covers(&outcomes, outcome_variant, 7);
    outcomes
}

fn log_records() -> Vec<LogRecord> {
    assert_covers(&LEVELS, level_variant, 5);
    let field = |name: &str, value: &str| LogField {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let mut records: Vec<LogRecord> = LEVELS
        .iter()
        .map(|&level| LogRecord {
            level,
            target: "app::jobs".to_owned(),
            message: "processing".to_owned(),
            fields: vec![field("n", "42"), field("name", "\"ünï\"")],
            spans: vec![
                SpanRecord {
                    level,
                    name: "outer".to_owned(),
                    target: "app".to_owned(),
                    fields: vec![field("id", "1")],
                },
                SpanRecord {
                    level: Level::Trace,
                    name: "inner".to_owned(),
                    target: "app::jobs".to_owned(),
                    fields: Vec::new(),
                },
            ],
            task_id: Some(17),
            call: 3,
            file: Some("src/jobs.rs".to_owned()),
            line: Some(88),
            time_us: 1_700_000_000_000_000,
        })
        .collect();
    records.push(LogRecord {
        level: Level::Info,
        target: String::new(),
        message: String::new(),
        fields: Vec::new(),
        spans: Vec::new(),
        task_id: None,
        call: 0,
        file: None,
        line: None,
        time_us: 0,
    });
    records
}

fn to_worker_seeds() -> Vec<ToWorker> {
    let mut seeds = vec![
        ToWorker::Run(RunTask {
            task_id: 1,
            name: "app::square".to_owned(),
            items: vec![Args(vec![4])],
        }),
        ToWorker::Run(RunTask {
            task_id: u64::MAX,
            name: "app::jobs::résumé".to_owned(),
            items: vec![Args(vec![1, 2, 3]), Args(Vec::new()), Args(vec![0xff; 40])],
        }),
        ToWorker::Run(RunTask {
            task_id: 0,
            name: String::new(),
            items: Vec::new(),
        }),
        ToWorker::Shutdown,
        ToWorker::RunShared(SharedRun {
            run: RunTask {
                task_id: 5,
                name: "app::echo".to_owned(),
                items: vec![Args(Vec::new()), Args(vec![2])],
            },
            shared: vec![SharedArg {
                index: 0,
                bytes: SharedBytes {
                    at: 0,
                    len: 300_000,
                    sum: u64::MAX,
                },
            }],
        }),
        ToWorker::Recall { id: 9 },
        ToWorker::Recall { id: u64::MAX },
        ToWorker::Heartbeat,
    ];
    seeds.extend(
        prim_replies()
            .into_iter()
            .enumerate()
            .map(|(i, reply)| ToWorker::Reply {
                call_id: 1 << ((i * 5) % 64),
                reply,
            }),
    );
    assert_covers(&seeds, to_worker_variant, 6);
    seeds
}

fn from_worker_seeds() -> Vec<FromWorker> {
    let mut seeds = vec![
        FromWorker::Started { task_id: 9 },
        FromWorker::Finished { task_id: u64::MAX },
        FromWorker::LogsDropped { total: 1 },
        FromWorker::LogsDropped { total: u64::MAX },
        FromWorker::Doorbell,
        FromWorker::Heartbeat,
        FromWorker::Node {
            host: "node-17.cluster".into(),
        },
        FromWorker::Node {
            host: String::new(),
        },
    ];
    seeds.extend(
        outcomes()
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| FromWorker::Item {
                task_id: 9,
                index: 1 << ((i * 4) % 32),
                outcome,
                elapsed_us: 1 << ((i * 9) % 64),
            }),
    );
    seeds.extend(log_records().into_iter().map(FromWorker::Log));
    seeds.extend(
        prim_ops()
            .into_iter()
            .enumerate()
            .map(|(i, op)| FromWorker::Call {
                call_id: i as u64,
                op,
            }),
    );
    seeds.extend([
        FromWorker::CallFor {
            call_id: 3,
            origin: vec![4242],
            op: PrimOp::Get {
                id: 4,
                timeout_ms: None,
            },
        },
        FromWorker::CallFor {
            call_id: 0,
            origin: vec![1, 2, u32::MAX],
            op: PrimOp::Release { id: 9 },
        },
    ]);
    assert_covers(&seeds, from_worker_variant, 10);
    seeds
}

fn client_hello_seeds() -> Vec<ClientHello> {
    vec![
        ClientHello {
            protocol: offspring_wire::PROTOCOL_VERSION,
            worker_id: 3,
            pid: 4242,
            nonce: [0x5a; NONCE_LEN],
            build_id: [0xff; NONCE_LEN],
            table_id: [0; NONCE_LEN],
        },
        ClientHello {
            protocol: u32::MAX,
            worker_id: u64::MAX,
            pid: u32::MAX,
            nonce: [0x80; NONCE_LEN],
            build_id: [0x7f; NONCE_LEN],
            table_id: [1; NONCE_LEN],
        },
    ]
}

fn server_challenge_seeds() -> Vec<ServerChallenge> {
    vec![ServerChallenge {
        nonce: [0x11; NONCE_LEN],
        proof: [0xee; NONCE_LEN],
    }]
}

fn client_proof_seeds() -> Vec<ClientProof> {
    vec![
        ClientProof {
            proof: [0x42; NONCE_LEN],
        },
        ClientProof {
            proof: [0; NONCE_LEN],
        },
    ]
}

fn verdict_seeds() -> Vec<Verdict> {
    let seeds: Vec<Verdict> = worker_config_seeds()
        .into_iter()
        .map(Verdict::Accepted)
        .chain([Verdict::Rejected(
            "the worker runs a different executable than the parent (another build)".to_owned(),
        )])
        .collect();
    assert_covers(&seeds, verdict_variant, 2);
    seeds
}

fn worker_config_seeds() -> Vec<WorkerConfig> {
    vec![
        WorkerConfig {
            log_filter: "info".to_owned(),
            segment: None,
            time_calls: false,
            async_concurrency: 1,
            task_timeout_ms: None,
        },
        WorkerConfig {
            log_filter: "warn,app::jobs=trace,offspring=debug".to_owned(),
            segment: Some(SegmentRef {
                handle: 3,
                len: 1 << 20,
            }),
            time_calls: true,
            async_concurrency: u32::MAX,
            task_timeout_ms: Some(u64::MAX),
        },
        WorkerConfig {
            log_filter: String::new(),
            segment: Some(SegmentRef {
                handle: u64::MAX,
                len: u64::MAX,
            }),
            time_calls: false,
            async_concurrency: 1,
            task_timeout_ms: None,
        },
    ]
}
