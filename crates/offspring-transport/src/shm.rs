//! Shared objects: memory that any process of one parent's tree maps by a [`Locator`], for the
//! facade's `SharedBytes`, `SharedSlice`, `SharedArray` and `Value`.
//!
//! The process at the top of the tree owns every object ([`SharedObject`], held by its
//! registry for as long as a lease on it exists anywhere). Other processes map it by its
//! locator, which names it privately to that owner:
//!
//! - **Linux**: a `memfd` (close-on-exec, never in `/dev/shm`), reached by others through
//!   `/proc/<owner pid>/fd/<n>`. The object's name carries a random tag, checked on every
//!   open, so a forged locator or one whose descriptor number was reused names nothing. A
//!   read-only object is sealed against writes, growing and shrinking once its creator has
//!   filled it, and a writable one against resizing, so no process can change the first or
//!   make the second fault under another's feet. The memory is the kernel's to free once the
//!   last descriptor and mapping are gone: when its owner dies, so does the object.
//! - **macOS**: a POSIX shared-memory object named by its tag, unlinked when the owner drops
//!   it. Receivers of read-only objects open and map them read-only.
//! - **Windows**: a pagefile-backed mapping named by the owner's pid and the tag, in the
//!   session's `Local\` namespace; Windows frees it with its last handle or view, so it never
//!   outlives its processes. Receivers of read-only objects map read-only views.
//!
//! A locator is untrusted input: every field is checked, and opening one that names nothing
//! live is an error, never a mapping of something else.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use serde::{Deserialize, Serialize};

/// Sizes of mappings are whole pages of this many bytes (a multiple of every supported OS's
/// page size).
const PAGE: usize = 16 * 1024;

/// The largest object: beyond this, creating one is an error rather than an attempt.
pub const MAX_SHARED: u64 = 1 << 46;

/// Where a shared object lives: enough for a process of the same tree, on the same machine,
/// to map it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locator {
    /// The owner's pid.
    pub pid: u32,
    /// The owner's descriptor for it (Linux; 0 elsewhere).
    pub handle: u64,
    /// The random tag in its name.
    pub tag: u64,
    /// Its length in bytes, as created.
    pub len: u64,
    /// Writable (an array or a value), or sealed read-only bytes.
    pub writable: bool,
}

impl Locator {
    /// The size of its mapping: the length rounded up to whole pages, at least one.
    fn map_len(&self) -> io::Result<usize> {
        if self.len > MAX_SHARED {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a shared object of {} bytes is larger than the {MAX_SHARED} allowed",
                    self.len
                ),
            ));
        }
        let len = usize::try_from(self.len).map_err(io::Error::other)?;
        Ok(len.max(1).div_ceil(PAGE) * PAGE)
    }

    fn name(&self) -> String {
        let access = if self.writable { 'w' } else { 'r' };
        format!("offspring-{:016x}-{access}", self.tag)
    }
}

/// The owner's reference to a shared object. Dropping it gives the object up: the memory goes
/// once no process maps it.
pub struct SharedObject {
    locator: Locator,
    /// Keeps the object alive (and on Linux seals it); elsewhere it is only held.
    #[cfg(unix)]
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fd: std::os::fd::OwnedFd,
    #[cfg(windows)]
    _handle: std::os::windows::io::OwnedHandle,
}

impl std::fmt::Debug for SharedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedObject")
            .field("locator", &self.locator)
            .finish_non_exhaustive()
    }
}

impl SharedObject {
    /// Creates a zeroed object of `len` bytes, owned by this process.
    ///
    /// # Errors
    ///
    /// A length over [`MAX_SHARED`], or what the OS says when it cannot make it.
    pub fn create(len: u64, writable: bool) -> io::Result<Self> {
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(|e| io::Error::other(e.to_string()))?;
        let locator = Locator {
            pid: std::process::id(),
            handle: 0,
            tag: u64::from_le_bytes(tag),
            len,
            writable,
        };
        // Linux hands out shared pages only as they are touched, so an object larger than the
        // machine would be made, and fail (killed, or SIGBUS) only once filled: refuse it now.
        if let Some(limit) = imp::memory_limit()
            && len > limit
        {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("it is larger than this machine's memory and swap ({limit} bytes)"),
            ));
        }
        imp::create(locator)
    }

    /// How other processes find it.
    pub fn locator(&self) -> Locator {
        self.locator
    }

    /// Makes a read-only object's contents final, once its creator has filled it and
    /// dropped every writable mapping (Linux: seals it; elsewhere read-only views are what
    /// keeps receivers from writing).
    ///
    /// # Errors
    ///
    /// What the OS says (on Linux `EBUSY` while a writable mapping of it exists).
    pub fn seal(&self) -> io::Result<()> {
        imp::seal(self)
    }
}

/// One process's mapping of a shared object. Dropping it unmaps it.
pub struct Mapping {
    ptr: NonNull<u8>,
    map_len: usize,
    len: usize,
    writable: bool,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

// SAFETY: the mapping is plain memory valid until `Drop` unmaps it; `bytes_mut` needs
// `&mut self`, so moving or sharing the `Mapping` between threads gives no thread access the
// others could race with (what other processes may do is in `bytes`' contract).
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: through `&Mapping` a thread only reads (`bytes`) or uses atomics.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the object `locator` names: read-only for a read-only object, read-write for a
    /// writable one.
    ///
    /// # Errors
    ///
    /// When the locator names no live object of this kind (forged, or freed), or what the OS
    /// says when it cannot map it.
    pub fn open(locator: &Locator) -> io::Result<Self> {
        let map_len = locator.map_len()?;
        let len = usize::try_from(locator.len).map_err(io::Error::other)?;
        let ptr = imp::map(locator, map_len, locator.writable)?;
        Ok(Self {
            ptr,
            map_len,
            len,
            writable: locator.writable,
        })
    }

    /// The object's bytes.
    ///
    /// For a read-only object nobody can write them (Linux seals them; elsewhere every
    /// receiver's view is read-only). For a writable object, other processes may write them:
    /// the caller reads only while it holds the object's cross-process lock, which every
    /// writer holds too.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `map_len >= len` bytes until `Drop`; this
        // process writes it only through `bytes_mut`, which needs `&mut self`, so no
        // in-process write overlaps this borrow. Writes by other processes happen only to
        // writable objects, under the lock this method's contract has the caller hold.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The object's bytes, to write; `None` for a read-only object. The caller holds the
    /// object's cross-process lock (see [`Mapping::bytes`]).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
        }
        // SAFETY: as in `bytes`; the mapping is writable, and `&mut self` makes this the only
        // borrow of it in this process.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// The first word of a writable object, as an atomic; `None` for a read-only one or one
    /// shorter than a word.
    pub fn atomic_u64(&self) -> Option<&AtomicU64> {
        if !self.writable || self.len < 8 {
            return None;
        }
        // SAFETY: the mapping is page-aligned (so aligned for `AtomicU64`), writable and at
        // least 8 bytes long, and lives as long as the borrow; every process touches a value's
        // word through atomics only.
        Some(unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().cast()) })
    }

    /// As [`Mapping::atomic_u64`], for a 4-byte value.
    pub fn atomic_u32(&self) -> Option<&AtomicU32> {
        if !self.writable || self.len < 4 {
            return None;
        }
        // SAFETY: as in `atomic_u64`, for 4 bytes.
        Some(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().cast()) })
    }
}

/// Writes a new read-only object's contents (its creator, before [`SharedObject::seal`]).
///
/// # Errors
///
/// When the locator names no live object, or more bytes than it holds.
pub fn fill(locator: &Locator, data: &[u8]) -> io::Result<()> {
    if data.len() as u64 > locator.len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "more bytes than the shared object holds",
        ));
    }
    imp::fill(locator, data)
}

/// Whether `locator` still names the live object it named when it was mapped: checked before
/// a mapping kept for reuse is used again (Linux: the owner's descriptor is still that
/// object; macOS: its name still exists). Always false on Windows, where nothing says so
/// while a view exists.
pub fn still_names(locator: &Locator) -> bool {
    imp::still_names(locator)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what.to_owned())
}

#[cfg(unix)]
pub(crate) mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::ptr::NonNull;

    use super::{Locator, SharedObject, bad};

    pub(super) fn sized(fd: &OwnedFd, map_len: usize) -> io::Result<()> {
        let size = libc::off_t::try_from(map_len).map_err(io::Error::other)?;
        // SAFETY: ftruncate on a descriptor we own; it touches no memory of ours.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    pub(super) fn create(mut locator: Locator) -> io::Result<SharedObject> {
        let map_len = locator.map_len()?;
        let name = std::ffi::CString::new(locator.name()).map_err(io::Error::other)?;
        // SAFETY: memfd_create with a NUL-terminated name and flags; it returns a new
        // descriptor or -1, checked below.
        let raw = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just returned to us and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        sized(&fd, map_len)?;
        if locator.writable {
            add_seals(
                &fd,
                libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
            )?;
        }
        locator.handle = u64::try_from(fd.as_raw_fd()).map_err(io::Error::other)?;
        Ok(SharedObject { locator, fd })
    }

    #[cfg(target_os = "linux")]
    fn add_seals(fd: &OwnedFd, seals: libc::c_int) -> io::Result<()> {
        // SAFETY: fcntl on a descriptor we own; it touches no memory of ours.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    pub(super) fn seal(object: &SharedObject) -> io::Result<()> {
        if object.locator.writable {
            return Ok(());
        }
        add_seals(
            &object.fd,
            libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
        )
    }

    /// Opens the object through its owner's descriptor table, and checks it is the one named.
    #[cfg(target_os = "linux")]
    fn open(locator: &Locator, write: bool, map_len: usize) -> io::Result<std::fs::File> {
        use std::os::unix::fs::MetadataExt;
        let fd = i32::try_from(locator.handle).map_err(|_| bad("a bad shared-object handle"))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(format!("/proc/{}/fd/{fd}", locator.pid))
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the shared object is gone (or the handle was forged): {e}"),
                )
            })?;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        let expected = format!("/memfd:{} (deleted)", locator.name());
        if link.as_os_str() != expected.as_str() {
            return Err(bad(
                "the handle names no live shared object (it was freed, or forged)",
            ));
        }
        // SAFETY: F_GET_SEALS on a descriptor we own; it touches no memory of ours.
        let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
        // Every object must be unable to shrink (a mapping of it could fault otherwise), and
        // a read-only one unable to change, whoever made the descriptor the locator names.
        // Only the creator of a read-only object opens it for writing, to fill it before it
        // is sealed.
        let needed = match (locator.writable, write) {
            (true, _) => libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
            (false, false) => libc::F_SEAL_SHRINK | libc::F_SEAL_WRITE,
            (false, true) => 0,
        };
        if seals < 0 || seals & needed != needed {
            return Err(bad("the shared object is not sealed as its kind requires"));
        }
        if usize::try_from(file.metadata()?.size()).ok() != Some(map_len) {
            return Err(bad("the shared object's size is not the one announced"));
        }
        Ok(file)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn create(locator: Locator) -> io::Result<SharedObject> {
        let map_len = locator.map_len()?;
        let name = shm_name(&locator)?;
        let fd = shm_create(&name)?;
        if let Err(e) = sized(&fd, map_len) {
            // SAFETY: unlinking the name we just created.
            unsafe { libc::shm_unlink(name.as_ptr()) };
            return Err(e);
        }
        Ok(SharedObject { locator, fd })
    }

    /// Creates a new POSIX shared-memory object under `name` (which must not exist), owner
    /// read-write only, its descriptor close-on-exec.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn shm_create(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
        // SAFETY: shm_open with a NUL-terminated name; it returns a new descriptor or -1.
        let raw = unsafe {
            libc::shm_open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just returned to us and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: setting close-on-exec on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        Ok(fd)
    }

    #[cfg(not(target_os = "linux"))]
    fn shm_name(locator: &Locator) -> io::Result<std::ffi::CString> {
        // macOS keeps names to 31 bytes: this one has 29.
        std::ffi::CString::new(format!("/{}", locator.name())).map_err(io::Error::other)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn seal(_object: &SharedObject) -> io::Result<()> {
        Ok(())
    }

    /// Memory and swap together, in bytes (Linux: `sysinfo`).
    #[cfg(target_os = "linux")]
    pub(super) fn memory_limit() -> Option<u64> {
        // SAFETY: `sysinfo` fills the zeroed struct we own and touches nothing else.
        let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `info` is a valid out-pointer.
        if unsafe { libc::sysinfo(&mut info) } != 0 {
            return None;
        }
        let unit = u64::from(info.mem_unit.max(1));
        (info.totalram as u64)
            .checked_add(info.totalswap as u64)?
            .checked_mul(unit)
    }

    /// Elsewhere the OS reserves the memory when the object is made, and refuses then.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn memory_limit() -> Option<u64> {
        None
    }

    #[cfg(target_os = "linux")]
    pub(super) fn still_names(locator: &Locator) -> bool {
        std::fs::read_link(format!("/proc/{}/fd/{}", locator.pid, locator.handle)).is_ok_and(
            |link| link.as_os_str() == format!("/memfd:{} (deleted)", locator.name()).as_str(),
        )
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn still_names(locator: &Locator) -> bool {
        let Ok(name) = shm_name(locator) else {
            return false;
        };
        // SAFETY: shm_open with a NUL-terminated name; it returns a new descriptor or -1.
        let raw = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDONLY, 0) };
        if raw < 0 {
            return false;
        }
        // SAFETY: closing the descriptor just opened, which nothing else uses.
        unsafe { libc::close(raw) };
        true
    }

    #[cfg(not(target_os = "linux"))]
    impl Drop for SharedObject {
        fn drop(&mut self) {
            if let Ok(name) = shm_name(&self.locator) {
                // SAFETY: unlinking the name this object was created under.
                unsafe { libc::shm_unlink(name.as_ptr()) };
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open(locator: &Locator, write: bool, map_len: usize) -> io::Result<std::fs::File> {
        use std::os::unix::fs::MetadataExt;
        let name = shm_name(locator)?;
        let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
        // SAFETY: shm_open with a NUL-terminated name; it returns a new descriptor or -1.
        let raw = unsafe { libc::shm_open(name.as_ptr(), flags, 0) };
        if raw < 0 {
            return Err(bad(
                "the handle names no live shared object (it was freed, or forged)",
            ));
        }
        // SAFETY: `raw` is a descriptor just returned to us and owned by nobody else.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        // SAFETY: setting close-on-exec on a descriptor we own.
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        if usize::try_from(file.metadata()?.size()).ok() < Some(map_len) {
            return Err(bad("the shared object's size is not the one announced"));
        }
        Ok(file)
    }

    pub(super) fn map(locator: &Locator, map_len: usize, write: bool) -> io::Result<NonNull<u8>> {
        let file = open(locator, write, map_len)?;
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh shared mapping of `map_len` bytes of a descriptor we hold, at an
        // address the kernel chooses; no existing memory is touched. The file is at least
        // `map_len` long and cannot shrink (sealed, or ours alone elsewhere). The result is
        // checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
    }

    pub(super) fn fill(locator: &Locator, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = open(locator, true, locator.map_len()?)?;
        file.write_all_at(data, 0)
    }

    pub(super) fn unmap(ptr: NonNull<u8>, map_len: usize) {
        // SAFETY: unmapping a mapping `map` made, from `Mapping::drop`: no borrow of it
        // outlives the `Mapping`.
        unsafe { libc::munmap(ptr.as_ptr().cast(), map_len) };
    }
}

#[cfg(windows)]
mod imp {
    use std::io;
    use std::os::windows::io::{FromRawHandle, OwnedHandle, RawHandle};
    use std::ptr::NonNull;

    use windows_sys::Win32::Foundation::{CloseHandle, ERROR_ALREADY_EXISTS, GetLastError, HANDLE};
    use windows_sys::Win32::System::Memory::{
        CreateFileMappingW, FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_MAPPED_VIEW_ADDRESS,
        MapViewOfFile, OpenFileMappingW, PAGE_READWRITE, UnmapViewOfFile,
    };

    use super::{Locator, SharedObject, bad};

    fn wide_name(locator: &Locator) -> Vec<u16> {
        format!("Local\\{}-{}", locator.name(), locator.pid)
            .encode_utf16()
            .chain(Some(0))
            .collect()
    }

    pub(super) fn create(locator: Locator) -> io::Result<SharedObject> {
        let size = locator.map_len()? as u64;
        let name = wide_name(&locator);
        // SAFETY: a named, pagefile-backed mapping with default security (not inheritable);
        // the name is NUL-terminated. The result is checked for null.
        let raw = unsafe {
            CreateFileMappingW(
                -1isize as HANDLE,
                std::ptr::null(),
                PAGE_READWRITE,
                (size >> 32) as u32,
                size as u32,
                name.as_ptr(),
            )
        };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: reading this thread's last error, right after the call that set it.
        let existed = unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
        // SAFETY: `raw` is a handle just returned to us and owned by nobody else.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) };
        if existed {
            return Err(io::Error::other(
                "a shared object of that name exists already",
            ));
        }
        Ok(SharedObject {
            locator,
            _handle: handle,
        })
    }

    pub(super) fn seal(_object: &SharedObject) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn still_names(_locator: &Locator) -> bool {
        false
    }

    /// Windows commits a pagefile-backed mapping when it is made, and refuses one beyond the
    /// commit limit then.
    pub(super) fn memory_limit() -> Option<u64> {
        None
    }

    pub(super) fn map(locator: &Locator, map_len: usize, write: bool) -> io::Result<NonNull<u8>> {
        let name = wide_name(locator);
        let access = if write {
            FILE_MAP_READ | FILE_MAP_WRITE
        } else {
            FILE_MAP_READ
        };
        // SAFETY: opening a mapping by a NUL-terminated name; the result is checked for null.
        let raw = unsafe { OpenFileMappingW(access, 0, name.as_ptr()) };
        if raw.is_null() {
            return Err(bad(
                "the handle names no live shared object (it was freed, or forged)",
            ));
        }
        // SAFETY: mapping a view of the mapping just opened; a view larger than the mapping
        // fails, and the result is checked for null.
        let view = unsafe { MapViewOfFile(raw, access, 0, 0, map_len) };
        let error = io::Error::last_os_error();
        // SAFETY: closing the handle just opened; the view keeps the mapping alive.
        unsafe { CloseHandle(raw) };
        NonNull::new(view.Value.cast::<u8>()).ok_or(error)
    }

    pub(super) fn fill(locator: &Locator, data: &[u8]) -> io::Result<()> {
        let map_len = locator.map_len()?;
        let ptr = map(locator, map_len, true)?;
        // SAFETY: `ptr` is a fresh writable view of `map_len >= data.len()` bytes that nothing
        // else in this process refers to; it is unmapped right after.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr.as_ptr(), data.len()) };
        unmap(ptr, map_len);
        Ok(())
    }

    pub(super) fn unmap(ptr: NonNull<u8>, _map_len: usize) {
        // SAFETY: unmapping a view `map` made, from `Mapping::drop` or `fill`: no borrow of it
        // outlives that.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                Value: ptr.as_ptr().cast(),
            })
        };
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        imp::unmap(self.ptr, self.map_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_filled_sealed_and_mapped_read_only() {
        let object = SharedObject::create(100_000, false).expect("an object");
        let locator = object.locator();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        fill(&locator, &data).expect("filled");
        object.seal().expect("sealed");
        let mapping = Mapping::open(&locator).expect("mapped");
        assert_eq!(mapping.bytes(), &data[..]);
        #[cfg(target_os = "linux")]
        assert!(
            fill(&locator, &data).is_err(),
            "a sealed object takes no writes"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sealed_object_refuses_writes_and_writable_mappings() {
        let object = SharedObject::create(4096, false).expect("an object");
        let locator = object.locator();
        fill(&locator, b"sealed").expect("filled");
        object.seal().expect("sealed");
        // A receiver that goes around `Mapping` and asks for a writable mapping, or writes
        // through a descriptor opened for writing, is refused by the kernel.
        assert!(imp::map(&locator, PAGE, true).is_err());
        assert!(fill(&locator, b"changed").is_err());
        let mapping = Mapping::open(&locator).expect("mapped read-only");
        assert_eq!(&mapping.bytes()[..6], b"sealed");
    }

    /// A descriptor made to look like an object (its name, a forged locator), but without
    /// the seals, is refused: mapping it would let its maker shrink it under the mapper.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_unsealed_look_alike_is_refused() {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        for writable in [true, false] {
            let locator = Locator {
                pid: std::process::id(),
                handle: 0,
                tag: 0x1234,
                len: 4096,
                writable,
            };
            let name = std::ffi::CString::new(locator.name()).expect("a name");
            // SAFETY: memfd_create with a NUL-terminated name; the result is checked.
            let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
            assert!(raw >= 0);
            // SAFETY: a descriptor just returned to us.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            imp::sized(&fd, PAGE).expect("sized");
            let forged = Locator {
                handle: fd.as_raw_fd() as u64,
                ..locator
            };
            assert!(Mapping::open(&forged).is_err(), "writable: {writable}");
        }
    }

    #[test]
    fn an_object_larger_than_the_machine_is_refused() {
        if let Some(limit) = imp::memory_limit() {
            let error = SharedObject::create(limit + 1, true).expect_err("larger than memory");
            assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        }
    }

    #[test]
    fn a_writable_object_is_shared_between_mappings() {
        let object = SharedObject::create(8, true).expect("an object");
        let a = Mapping::open(&object.locator()).expect("mapped");
        let b = Mapping::open(&object.locator()).expect("mapped");
        let word = a.atomic_u64().expect("a word");
        word.fetch_add(5, std::sync::atomic::Ordering::SeqCst);
        let seen = b.atomic_u64().expect("a word");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn forged_and_freed_locators_are_refused() {
        let object = SharedObject::create(4096, false).expect("an object");
        let locator = object.locator();
        fill(&locator, b"x").expect("filled");
        object.seal().expect("sealed");
        let forged = Locator {
            tag: locator.tag ^ 1,
            ..locator
        };
        assert!(Mapping::open(&forged).is_err());
        let other_kind = Locator {
            writable: true,
            ..locator
        };
        assert!(Mapping::open(&other_kind).is_err());
        let too_big = Locator {
            len: MAX_SHARED + 1,
            ..locator
        };
        assert!(Mapping::open(&too_big).is_err());
        drop(object);
        assert!(
            Mapping::open(&locator).is_err(),
            "a freed object names nothing"
        );
        assert!(SharedObject::create(MAX_SHARED + 1, true).is_err());
    }
}
