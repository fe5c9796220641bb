//! Read-only mappings kept for a moment past their last handle in this process, so that a
//! pool's next call with the same table maps nothing and takes no page faults again. A
//! handle of a table decoded for each call would otherwise map it, fault in every page the
//! task reads, and unmap it, call after call: on this project's test machine a 256 MiB
//! table read at 4 KiB strides costs about 0.4 s of faults and unmapping per call that way.
//!
//! An entry is reused only for a locator naming the same live object: the owner's descriptor
//! still names the object the tag names (checked on every hit), so a handle decoded after
//! its object was freed fails as it would without the cache. An entry goes [`LINGER`] after
//! the last handle of this process that used it. Windows keeps a named mapping alive while
//! any view of it exists, so no such check is possible there, and nothing is cached.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use offspring_transport::shm::{Locator, Mapping};

/// How long a mapping stays after its last handle in this process went.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// How often the sweeper looks.
const SWEEP: Duration = Duration::from_millis(200);

struct Entry {
    map: Arc<Mapping>,
    idle_since: Option<Instant>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<(u32, u64, u64), Entry>,
    sweeping: bool,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// A read-only mapping of the object `locator` names: the cached one if it is still that
/// object's, else a new one (cached from now on).
pub(super) fn read_only(locator: &Locator) -> io::Result<Arc<Mapping>> {
    if cfg!(windows) {
        return Mapping::open(locator).map(Arc::new);
    }
    let key = (locator.pid, locator.tag, locator.len);
    let cached = lock()
        .get_or_insert_default()
        .entries
        .get(&key)
        .map(|e| Arc::clone(&e.map));
    if let Some(map) = cached {
        if offspring_transport::shm::still_names(locator) {
            return Ok(map);
        }
        // The object is gone: what the entry maps is no longer it.
        lock().get_or_insert_default().entries.remove(&key);
    }
    let map = Arc::new(Mapping::open(locator)?);
    let mut guard = lock();
    let cache = guard.get_or_insert_default();
    let map = Arc::clone(
        &cache
            .entries
            .entry(key)
            .or_insert(Entry {
                map,
                idle_since: None,
            })
            .map,
    );
    if !cache.sweeping {
        cache.sweeping = std::thread::Builder::new()
            .name("offspring-shm".into())
            .spawn(sweep)
            .is_ok();
    }
    Ok(map)
}

fn lock() -> std::sync::MutexGuard<'static, Option<Cache>> {
    CACHE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Drops entries idle for [`LINGER`]; ends once the cache is empty.
fn sweep() {
    loop {
        std::thread::sleep(SWEEP);
        let now = Instant::now();
        let mut gone = Vec::new();
        {
            let mut guard = lock();
            let cache = guard.get_or_insert_default();
            cache.entries.retain(|_, entry| {
                if Arc::strong_count(&entry.map) > 1 {
                    entry.idle_since = None;
                    return true;
                }
                let since = *entry.idle_since.get_or_insert(now);
                if now.duration_since(since) < LINGER {
                    return true;
                }
                gone.push(Arc::clone(&entry.map));
                false
            });
            if cache.entries.is_empty() {
                cache.sweeping = false;
                return;
            }
        }
        // Unmapping takes a while for a large table: not under the lock.
        drop(gone);
    }
}
