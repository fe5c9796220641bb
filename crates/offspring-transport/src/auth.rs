//! The mutual challenge–response handshake (see `offspring_wire`'s handshake module for the
//! steps) and the one-time secrets it proves.

use hmac::{Hmac, Mac};
use offspring_wire::{
    ClientHello, ClientProof, NONCE_LEN, PROTOCOL_VERSION, ServerChallenge, Verdict, WorkerConfig,
    decode, encode,
};
use sha2::Sha256;

use crate::seal::{Ephemeral, Role};
use crate::{BuildIdentity, Conn, HandshakeError};

type HmacSha256 = Hmac<Sha256>;

const PARENT_LABEL: &[u8] = b"offspring parent proof v1";
const WORKER_LABEL: &[u8] = b"offspring worker proof v1";

/// A one-time secret shared by the parent and one worker it started. Its `Debug` output
/// never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; NONCE_LEN]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh secret from the OS random source.
    ///
    /// # Errors
    ///
    /// The OS error when the random source fails.
    pub fn generate() -> std::io::Result<Self> {
        random_bytes().map(Self)
    }

    /// The raw bytes, for the key schedule of sealed connections.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The form carried in the worker's environment (hex).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses [`Secret::to_hex`]'s output.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != NONCE_LEN * 2 {
            return None;
        }
        let mut out = [0u8; NONCE_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// The keyed MAC over a handshake's label, hello and nonce. `None` only if the key were
    /// refused (HMAC takes keys of any length, so never for a 32-byte secret); every caller
    /// then fails the handshake rather than fall back to a key anyone knows.
    fn mac(&self, label: &[u8], hello: &[u8], server_nonce: &[u8]) -> Option<HmacSha256> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(label);
        mac.update(&(hello.len() as u64).to_le_bytes());
        mac.update(hello);
        mac.update(server_nonce);
        Some(mac)
    }

    /// The proof that we know the secret, or [`HandshakeError::BadKey`].
    fn prove(
        &self,
        label: &[u8],
        hello: &[u8],
        server_nonce: &[u8],
    ) -> Result<[u8; NONCE_LEN], HandshakeError> {
        self.mac(label, hello, server_nonce)
            .map(|mac| mac.finalize().into_bytes().into())
            .ok_or(HandshakeError::BadKey)
    }

    /// Constant-time check (the `hmac` crate compares with `subtle`); false when no MAC can
    /// be made.
    fn verify(&self, label: &[u8], hello: &[u8], server_nonce: &[u8], proof: &[u8]) -> bool {
        self.mac(label, hello, server_nonce)
            .is_some_and(|mac| mac.verify_slice(proof).is_ok())
    }
}

pub(crate) fn random_bytes() -> std::io::Result<[u8; NONCE_LEN]> {
    let mut out = [0u8; NONCE_LEN];
    getrandom::fill(&mut out).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(out)
}

pub(crate) fn random_hex(bytes: usize) -> std::io::Result<String> {
    let raw = random_bytes()?;
    Ok(hex(&raw[..bytes.min(NONCE_LEN)]))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// What the parent expects of the worker behind a worker id.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The one-time secret given to that worker.
    pub secret: Secret,
    /// The pid of the child the parent started, when it started one itself.
    pub pid: Option<u32>,
    /// The outcome segment made for that worker, named in its [`WorkerConfig`].
    pub segment: Option<offspring_wire::SegmentRef>,
    /// Whether that worker times its calls (see [`WorkerConfig::time_calls`]).
    pub time_calls: bool,
    /// How many async calls that worker runs at once (see
    /// [`WorkerConfig::async_concurrency`]).
    pub async_concurrency: u32,
    /// The task timeout that worker cancels async calls after (see
    /// [`WorkerConfig::task_timeout_ms`]).
    pub task_timeout_ms: Option<u64>,
}

/// A connection that completed the handshake.
#[derive(Debug)]
pub struct Authed {
    /// The connection, its frame cap raised.
    pub conn: Conn,
    /// What the worker said of itself.
    pub hello: ClientHello,
}

async fn send<T: serde::Serialize>(conn: &mut Conn, msg: &T) -> Result<(), HandshakeError> {
    let frame = encode(msg)?;
    conn.writer
        .write_frame(&frame)
        .await
        .map_err(|e| HandshakeError::Wire(e.into()))
}

async fn recv<T: serde::de::DeserializeOwned>(conn: &mut Conn) -> Result<T, HandshakeError> {
    match conn.reader.read_frame().await? {
        Some(body) => Ok(decode(&body)?),
        None => Err(HandshakeError::Wire(
            std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into(),
        )),
    }
}

/// The parent's side of the handshake on a freshly accepted connection. `lookup` maps the
/// worker id the peer names to what the parent expects of it. The caller bounds the time.
///
/// # Errors
///
/// A [`HandshakeError`] saying why the peer is not trusted; the caller drops the connection.
pub async fn accept_handshake(
    mut conn: Conn,
    lookup: impl FnOnce(u64) -> Option<Expected>,
    ours: &BuildIdentity,
    mut config: WorkerConfig,
) -> Result<Authed, HandshakeError> {
    let hello_bytes = conn.reader.read_frame().await?.ok_or_else(|| {
        HandshakeError::Wire(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into())
    })?;
    let hello: ClientHello = decode(&hello_bytes)?;
    if hello.protocol != PROTOCOL_VERSION {
        return Err(HandshakeError::Protocol {
            ours: PROTOCOL_VERSION,
            theirs: hello.protocol,
        });
    }
    let expected = lookup(hello.worker_id).ok_or(HandshakeError::UnknownWorker(hello.worker_id))?;
    if let (Some(expected), Some(actual)) = (expected.pid, conn.peer_pid)
        && expected != actual
    {
        return Err(HandshakeError::PidMismatch { expected, actual });
    }
    // Over TCP the nonce is the public half of this connection's key pair (see `seal`).
    let ephemeral = if conn.is_remote() {
        Some(Ephemeral::generate().map_err(|e| HandshakeError::Wire(e.into()))?)
    } else {
        None
    };
    let nonce = match &ephemeral {
        Some(ephemeral) => ephemeral.public(),
        None => random_bytes().map_err(|e| HandshakeError::Wire(e.into()))?,
    };
    let proof = expected.secret.prove(PARENT_LABEL, &hello_bytes, &nonce)?;
    send(&mut conn, &ServerChallenge { nonce, proof }).await?;
    let reply: ClientProof = recv(&mut conn).await?;
    if !expected
        .secret
        .verify(WORKER_LABEL, &hello_bytes, &nonce, &reply.proof)
    {
        return Err(HandshakeError::BadProof);
    }
    if let Some(ephemeral) = ephemeral {
        let (sealer, opener) = ephemeral.agree(
            hello.nonce,
            &expected.secret,
            &[&hello_bytes, &nonce],
            Role::Parent,
        )?;
        conn.seal(sealer, opener);
    }
    let ours = if conn.is_remote() {
        ours.portable()
    } else {
        *ours
    };
    let mismatch = if hello.build_id != ours.build_id {
        Some("the worker runs a different executable than the parent (another build)")
    } else if hello.table_id != ours.table_id {
        Some("the worker's task table differs from the parent's")
    } else {
        None
    };
    if let Some(reason) = mismatch {
        // Best effort: the worker prints the reason; the parent reports it either way.
        let _ = send(&mut conn, &Verdict::Rejected(reason.to_owned())).await;
        return Err(HandshakeError::Mismatch(reason.to_owned()));
    }
    config.segment = expected.segment;
    config.time_calls = expected.time_calls;
    config.async_concurrency = expected.async_concurrency;
    config.task_timeout_ms = expected.task_timeout_ms;
    send(&mut conn, &Verdict::Accepted(config)).await?;
    conn.authenticated();
    Ok(Authed { conn, hello })
}

/// The worker's side of the handshake on a freshly dialled connection. The caller bounds the
/// time.
///
/// # Errors
///
/// A [`HandshakeError`]: the parent could not prove the secret (a squatter), refused us, or
/// the stream failed.
pub async fn connect_handshake(
    conn: &mut Conn,
    worker_id: u64,
    secret: &Secret,
    ours: &BuildIdentity,
) -> Result<WorkerConfig, HandshakeError> {
    let ephemeral = if conn.is_remote() {
        Some(Ephemeral::generate().map_err(|e| HandshakeError::Wire(e.into()))?)
    } else {
        None
    };
    let ours = if conn.is_remote() {
        ours.portable()
    } else {
        *ours
    };
    let hello = ClientHello {
        protocol: PROTOCOL_VERSION,
        worker_id,
        pid: std::process::id(),
        nonce: match &ephemeral {
            Some(ephemeral) => ephemeral.public(),
            None => random_bytes().map_err(|e| HandshakeError::Wire(e.into()))?,
        },
        build_id: ours.build_id,
        table_id: ours.table_id,
    };
    let frame = encode(&hello)?;
    let hello_bytes = &frame[offspring_wire::HEADER_LEN..];
    conn.writer
        .write_frame(&frame)
        .await
        .map_err(|e| HandshakeError::Wire(e.into()))?;
    let challenge: ServerChallenge = recv(conn).await?;
    if !secret.verify(
        PARENT_LABEL,
        hello_bytes,
        &challenge.nonce,
        &challenge.proof,
    ) {
        return Err(HandshakeError::BadProof);
    }
    let proof = secret.prove(WORKER_LABEL, hello_bytes, &challenge.nonce)?;
    send(conn, &ClientProof { proof }).await?;
    if let Some(ephemeral) = ephemeral {
        let (sealer, opener) = ephemeral.agree(
            challenge.nonce,
            secret,
            &[hello_bytes, &challenge.nonce],
            Role::Worker,
        )?;
        conn.seal(sealer, opener);
    }
    match recv::<Verdict>(conn).await? {
        Verdict::Accepted(config) => {
            conn.authenticated();
            Ok(config)
        }
        Verdict::Rejected(reason) => Err(HandshakeError::Refused(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hex_round_trip() -> std::io::Result<()> {
        let secret = Secret::generate()?;
        assert_eq!(Secret::from_hex(&secret.to_hex()), Some(secret));
        assert_eq!(Secret::from_hex("zz"), None);
        assert_eq!(Secret::from_hex(&"g".repeat(64)), None);
        Ok(())
    }

    #[test]
    fn proofs_are_labelled() -> std::io::Result<()> {
        let secret = Secret::generate()?;
        let parent = secret
            .prove(PARENT_LABEL, b"hello", b"nonce")
            .expect("a proof");
        assert!(secret.verify(PARENT_LABEL, b"hello", b"nonce", &parent));
        assert!(!secret.verify(WORKER_LABEL, b"hello", b"nonce", &parent));
        let other = Secret::generate()?;
        assert!(!other.verify(PARENT_LABEL, b"hello", b"nonce", &parent));
        Ok(())
    }
}
