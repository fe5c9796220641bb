//! The identity of a build: what the handshake compares so that a worker runs exactly the
//! parent's code and task table.

use offspring_wire::NONCE_LEN;
use sha2::{Digest, Sha256};

/// The two digests compared by the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildIdentity {
    /// Digest of the running executable's identity on disk.
    pub build_id: [u8; NONCE_LEN],
    /// Digest of the task table (given by the caller).
    pub table_id: [u8; NONCE_LEN],
}

impl BuildIdentity {
    /// The identity a worker on another machine proves: the build part is a digest of the
    /// executable's bytes instead of its file identity, which differs between the nodes
    /// that see one file over a network filesystem (`st_dev` is per client). Computed once
    /// per process, on first use: only processes with remote connections pay for it.
    pub fn portable(&self) -> Self {
        static DIGEST: std::sync::OnceLock<[u8; NONCE_LEN]> = std::sync::OnceLock::new();
        let build_id = *DIGEST.get_or_init(|| {
            let mut build = Sha256::new();
            build.update(b"offspring portable build v1\0");
            build.update(env!("CARGO_PKG_VERSION").as_bytes());
            match crate::sys::self_exe().and_then(std::fs::File::open) {
                Ok(mut file) => {
                    if std::io::copy(&mut file, &mut build).is_err() {
                        build.update(b"unreadable executable");
                    }
                }
                Err(_) => build.update(b"unknown executable"),
            }
            build.finalize().into()
        });
        Self {
            build_id,
            table_id: self.table_id,
        }
    }
}

/// Computes this process's build identity; `table` lists the task table's entries (for example
/// `name:signature`), in any order.
///
/// The build part digests the executable's file identity rather than its bytes: on Unix the
/// device, inode, size and modification time of `/proc/self/exe` (or the current exe), which a
/// worker re-executed from `/proc/self/exe` shares with its parent even when the file on disk
/// was since replaced, and which any other binary lacks. Hashing the whole file would cost
/// milliseconds on every worker start.
pub fn build_identity<'a>(table: impl IntoIterator<Item = &'a str>) -> BuildIdentity {
    let mut build = Sha256::new();
    build.update(b"offspring build v1\0");
    build.update(env!("CARGO_PKG_VERSION").as_bytes());
    build.update(crate::sys::executable_fingerprint().as_bytes());
    let mut entries: Vec<&str> = table.into_iter().collect();
    entries.sort_unstable();
    let mut tasks = Sha256::new();
    tasks.update(b"offspring task table v1\0");
    for entry in entries {
        tasks.update((entry.len() as u64).to_le_bytes());
        tasks.update(entry.as_bytes());
    }
    BuildIdentity {
        build_id: build.finalize().into(),
        table_id: tasks.finalize().into(),
    }
}
