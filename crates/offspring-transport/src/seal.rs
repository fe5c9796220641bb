//! Sealed frames for connections that cross a network (TCP): an ephemeral key exchange bound
//! to the one-time secret, and an AEAD over every byte sent after the handshake.
//!
//! The secret reaches a remote worker inside the launcher's own messages (Slurm signs them
//! with munge but does not encrypt them), so keys derived from the secret alone would let
//! whoever saw it read recorded traffic. Instead:
//!
//! 1. Each side makes a fresh X25519 key pair for the connection and sends its public half
//!    as its handshake nonce (the worker in `ClientHello`, the parent in `ServerChallenge`).
//!    Both MACs of the handshake cover both public halves, so neither can be swapped.
//! 2. Once each side has checked the other's proof, both compute the X25519 result and derive
//!    two 256-bit keys with HKDF-SHA256 (salt: the secret; info: a label and the handshake
//!    transcript): one per direction. The private halves are dropped then, so the keys
//!    cannot be found again from the secret and a recording: forward secrecy.
//! 3. Every write after that is a sequence of *records*: a `u32` little-endian length (the
//!    ciphertext and its tag), the ChaCha20-Poly1305 ciphertext of up to [`RECORD_MAX`]
//!    plaintext bytes, and the 16-byte tag, with the length header as associated data. The
//!    nonce is the record's number in its direction, counted by both sides and never sent:
//!    a record altered, dropped, reordered, replayed, or taken from another connection (other
//!    keys) fails to open, and the connection ends.
//!
//! Records carry the byte stream of frames, not frames: a frame larger than a record spans
//! several, and the reader checks each frame's announced length against its cap as before.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::{HandshakeError, Secret};

/// Bytes of a record's authentication tag.
pub const TAG_LEN: usize = 16;

/// Most plaintext bytes in one record. A reader allocates at most this (plus the tag) for a
/// record before it has opened it.
pub const RECORD_MAX: usize = 256 * 1024;

/// Bytes of a record's length header.
pub const RECORD_HEADER: usize = 4;

const LABEL: &[u8] = b"offspring seal v1";

/// Which end of the connection keys are derived for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that listened and accepted.
    Parent,
    /// The side that dialled.
    Worker,
}

/// This side's key pair for one connection. Its `Debug` output never shows the private half.
pub struct Ephemeral {
    secret: StaticSecret,
    public: [u8; 32],
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ephemeral").finish_non_exhaustive()
    }
}

impl Ephemeral {
    /// A fresh key pair from the OS random source.
    ///
    /// # Errors
    ///
    /// The OS error when the random source fails.
    pub fn generate() -> std::io::Result<Self> {
        let secret = StaticSecret::from(crate::auth::random_bytes()?);
        let public = PublicKey::from(&secret).to_bytes();
        Ok(Self { secret, public })
    }

    /// The public half, sent as this side's handshake nonce.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// Completes the exchange with the peer's public half and derives this side's keys. The
    /// private half is consumed.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::BadKey`] when the peer's half is a low-order point (the result would
    /// not depend on our private half).
    pub fn agree(
        self,
        peer: [u8; 32],
        secret: &Secret,
        transcript: &[&[u8]],
        role: Role,
    ) -> Result<(Sealer, Opener), HandshakeError> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(peer));
        if !shared.was_contributory() {
            return Err(HandshakeError::BadKey);
        }
        derive(secret, shared.as_bytes(), transcript, role)
    }
}

/// The key schedule: both directions' keys from the exchange's result, the secret and the
/// transcript. Public so that a test can show that every input an eavesdropper holding the
/// secret has (everything but the exchange's result) opens nothing.
///
/// # Errors
///
/// [`HandshakeError::BadKey`] if HKDF refused the output length (it never does for 64 bytes).
pub fn derive(
    secret: &Secret,
    shared: &[u8; 32],
    transcript: &[&[u8]],
    role: Role,
) -> Result<(Sealer, Opener), HandshakeError> {
    let hkdf = Hkdf::<Sha256>::new(Some(secret.bytes()), shared);
    let mut info: Vec<&[u8]> = vec![LABEL];
    let lengths: Vec<[u8; 8]> = transcript
        .iter()
        .map(|part| (part.len() as u64).to_le_bytes())
        .collect();
    for (part, len) in transcript.iter().zip(&lengths) {
        info.push(len);
        info.push(part);
    }
    let mut okm = [0u8; 64];
    hkdf.expand_multi_info(&info, &mut okm)
        .map_err(|_| HandshakeError::BadKey)?;
    let (to_parent, to_worker) = okm.split_at(32);
    let cipher =
        |key: &[u8]| ChaCha20Poly1305::new_from_slice(key).map_err(|_| HandshakeError::BadKey);
    let (seal, open) = match role {
        Role::Parent => (cipher(to_worker)?, cipher(to_parent)?),
        Role::Worker => (cipher(to_parent)?, cipher(to_worker)?),
    };
    okm.fill(0);
    Ok((
        Sealer {
            cipher: seal,
            counter: 0,
        },
        Opener {
            cipher: open,
            counter: 0,
        },
    ))
}

fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(bytes)
}

fn sealing_failed(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Seals one direction's bytes.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("records", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Appends `plain` to `out` as sealed records.
    ///
    /// # Errors
    ///
    /// An [`std::io::ErrorKind::InvalidData`] error after 2^64 records (never in practice) or
    /// if the cipher refused the length.
    pub fn seal_into(&mut self, plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        out.reserve(plain.len() + plain.len().div_ceil(RECORD_MAX) * (RECORD_HEADER + TAG_LEN));
        for chunk in plain.chunks(RECORD_MAX) {
            let header = u32::try_from(chunk.len() + TAG_LEN)
                .map_err(|_| sealing_failed("record too long"))?
                .to_le_bytes();
            out.extend_from_slice(&header);
            let body = out.len();
            out.extend_from_slice(chunk);
            let tag = self
                .cipher
                .encrypt_in_place_detached(&nonce(self.counter), &header, &mut out[body..])
                .map_err(|_| sealing_failed("cannot seal a record"))?;
            out.extend_from_slice(&tag);
            self.counter = self
                .counter
                .checked_add(1)
                .ok_or_else(|| sealing_failed("record counter exhausted"))?;
        }
        Ok(())
    }
}

/// Opens the other direction's records, in order.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("records", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// The body length (ciphertext and tag) a record header announces, checked before
    /// anything is allocated for it.
    ///
    /// # Errors
    ///
    /// [`std::io::ErrorKind::InvalidData`] for a length shorter than a tag or longer than
    /// [`RECORD_MAX`] plus the tag.
    pub fn body_len(header: [u8; RECORD_HEADER]) -> std::io::Result<usize> {
        let len = u32::from_le_bytes(header) as usize;
        if (TAG_LEN..=RECORD_MAX + TAG_LEN).contains(&len) {
            Ok(len)
        } else {
            Err(sealing_failed(
                "a sealed record announces an impossible length (the connection is not sealed, or was altered)",
            ))
        }
    }

    /// Opens the next record in place: `body` is its ciphertext and tag; on success the
    /// plaintext is `body[..returned]`.
    ///
    /// # Errors
    ///
    /// [`std::io::ErrorKind::InvalidData`] when the record does not open: altered, reordered,
    /// replayed, or sealed for another connection. The connection must end.
    pub fn open(&mut self, header: [u8; RECORD_HEADER], body: &mut [u8]) -> std::io::Result<usize> {
        let plain = body
            .len()
            .checked_sub(TAG_LEN)
            .ok_or_else(|| sealing_failed("a sealed record is shorter than its tag"))?;
        let (text, tag) = body.split_at_mut(plain);
        let tag = Tag::clone_from_slice(tag);
        self.cipher
            .decrypt_in_place_detached(&nonce(self.counter), &header, text, &tag)
            .map_err(|_| {
                sealing_failed(
                    "a sealed frame failed to open: altered, reordered, replayed or from another connection",
                )
            })?;
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| sealing_failed("record counter exhausted"))?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> ((Sealer, Opener), (Sealer, Opener)) {
        let secret = Secret::generate().expect("secret");
        let parent = Ephemeral::generate().expect("key");
        let worker = Ephemeral::generate().expect("key");
        let (pp, wp) = (parent.public(), worker.public());
        let transcript: [&[u8]; 2] = [b"hello", &pp];
        let p = parent
            .agree(wp, &secret, &transcript, Role::Parent)
            .expect("parent keys");
        let w = worker
            .agree(pp, &secret, &transcript, Role::Worker)
            .expect("worker keys");
        (p, w)
    }

    fn records(sealed: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = sealed;
        while !rest.is_empty() {
            let header: [u8; 4] = rest[..4].try_into().expect("header");
            let len = Opener::body_len(header).expect("len");
            out.push((header, rest[4..4 + len].to_vec()));
            rest = &rest[4 + len..];
        }
        out
    }

    #[test]
    fn both_directions_round_trip_across_records() {
        let ((mut p_seal, mut p_open), (mut w_seal, mut w_open)) = pair();
        let big: Vec<u8> = (0..RECORD_MAX * 2 + 7).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        p_seal.seal_into(&big, &mut wire).expect("seal");
        p_seal.seal_into(b"second", &mut wire).expect("seal");
        let mut got = Vec::new();
        for (header, mut body) in records(&wire) {
            let n = w_open.open(header, &mut body).expect("open");
            got.extend_from_slice(&body[..n]);
        }
        assert_eq!(got, [big.as_slice(), b"second"].concat());
        let mut back = Vec::new();
        w_seal.seal_into(b"reply", &mut back).expect("seal");
        let (header, mut body) = records(&back).remove(0);
        let n = p_open.open(header, &mut body).expect("open");
        assert_eq!(&body[..n], b"reply");
    }

    #[test]
    fn a_flipped_bit_a_replay_a_reorder_and_the_wrong_direction_fail() {
        let ((mut p_seal, _), (_, mut w_open)) = pair();
        let mut wire = Vec::new();
        p_seal.seal_into(b"one", &mut wire).expect("seal");
        p_seal.seal_into(b"two", &mut wire).expect("seal");
        let recs = records(&wire);
        // Reordered: the second record first.
        let (h, mut b) = recs[1].clone();
        assert!(w_open.open(h, &mut b).is_err());
        // In order it opens (a failed open does not advance the count).
        let (h, mut b) = recs[0].clone();
        assert!(w_open.open(h, &mut b).is_ok());
        // Replayed.
        let (h, mut b) = recs[0].clone();
        assert!(w_open.open(h, &mut b).is_err());
        // One flipped bit anywhere.
        for i in 0..recs[1].1.len() {
            let (h, mut b) = recs[1].clone();
            b[i] ^= 0x10;
            assert!(w_open.open(h, &mut b).is_err(), "flip at {i}");
        }
        let (mut h, mut b) = recs[1].clone();
        h[0] ^= 1;
        assert!(w_open.open(h, &mut b).is_err(), "header flip");
        // A parent's record does not open with the parent's own opener (other key).
        let ((mut p_seal, mut p_open), _) = pair();
        let mut wire = Vec::new();
        p_seal.seal_into(b"x", &mut wire).expect("seal");
        let (h, mut b) = records(&wire).remove(0);
        assert!(p_open.open(h, &mut b).is_err());
    }

    #[test]
    fn another_connection_cannot_open_it() {
        let ((mut p_seal, _), _) = pair();
        let (_, (_, mut other)) = pair();
        let mut wire = Vec::new();
        p_seal.seal_into(b"secret work", &mut wire).expect("seal");
        let (h, mut b) = records(&wire).remove(0);
        assert!(other.open(h, &mut b).is_err());
    }

    #[test]
    fn impossible_lengths_are_refused_before_allocating() {
        assert!(Opener::body_len(0u32.to_le_bytes()).is_err());
        assert!(Opener::body_len(15u32.to_le_bytes()).is_err());
        assert!(Opener::body_len(((RECORD_MAX + TAG_LEN + 1) as u32).to_le_bytes()).is_err());
        assert!(Opener::body_len(u32::MAX.to_le_bytes()).is_err());
        assert_eq!(Opener::body_len(16u32.to_le_bytes()).ok(), Some(16));
    }

    #[test]
    fn a_low_order_peer_key_is_refused() {
        let secret = Secret::generate().expect("secret");
        let ours = Ephemeral::generate().expect("key");
        assert!(matches!(
            ours.agree([0u8; 32], &secret, &[], Role::Parent),
            Err(HandshakeError::BadKey)
        ));
    }
}
