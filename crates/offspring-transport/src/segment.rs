//! Shared memory between a parent and one of its workers: an anonymous segment the parent
//! creates and hands to the child at spawn, seen by both as a slice of [`AtomicU64`].
//!
//! - **Linux**: a `memfd` (close-on-exec), whose descriptor only the child it is meant for
//!   inherits: the spawn clears close-on-exec on it in that child alone, between fork and
//!   exec.
//! - **macOS**: `shm_open` under a random name, unlinked at once, handed down the same way.
//! - **Windows**: an unnamed pagefile-backed file mapping, whose handle the parent duplicates
//!   into the child once it runs.
//!
//! The pages are the OS's zero pages until touched, so a segment costs no resident memory
//! until the worker writes to it. Every access goes through atomics: the other process may
//! write any word at any time, and what it wrote is read as untrusted input.

use std::io;
use std::sync::atomic::AtomicU64;

/// A mapped segment. Dropping it unmaps it (and closes the descriptor, if still open).
pub struct Segment {
    ptr: std::ptr::NonNull<AtomicU64>,
    len: usize,
    #[cfg(unix)]
    fd: Option<std::os::fd::OwnedFd>,
    #[cfg(windows)]
    handle: Option<std::os::windows::io::OwnedHandle>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: the mapping is shared memory accessed only through `AtomicU64`s (see `words`), which
// are `Sync`; the pointer stays valid until `Drop` unmaps it, and nothing else frees it.
unsafe impl Send for Segment {}
// SAFETY: as for `Send`: every access is atomic.
unsafe impl Sync for Segment {}

impl Segment {
    /// The segment as words. Every word may change under the caller's feet (the other
    /// process writes it): read it as untrusted.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is a live, page-aligned mapping of `len` bytes, readable and writable,
        // for as long as `self` lives (it is unmapped only in `Drop`); `len` is a multiple of
        // 8; `AtomicU64` has the size and alignment of `u64`, and every access to the mapping
        // in this process goes through these atomics, so a concurrent write by the other
        // process is never a data race on non-atomic memory.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len / 8) }
    }

    /// The segment's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the segment has no bytes (never, for a segment that was created).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Creates a zeroed segment of `len` bytes (rounded up to a whole page).
    ///
    /// # Errors
    ///
    /// What the OS says when it cannot create or map it.
    pub fn create(len: usize) -> io::Result<Self> {
        let len = len.div_ceil(PAGE) * PAGE;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty segment",
            ));
        }
        imp::create(len)
    }

    /// The descriptor a child started with [`Segment::inheritable_fd`] (Unix) uses in
    /// [`Segment::open`]: the same number in the child.
    #[cfg(unix)]
    pub fn inheritable_fd(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Duplicates the segment's handle into `process` (a child's process handle), for the
    /// child's [`Segment::open`]; the value of the handle there.
    ///
    /// # Errors
    ///
    /// What `DuplicateHandle` says.
    #[cfg(windows)]
    pub fn duplicate_into(&self, process: std::os::windows::io::RawHandle) -> io::Result<u64> {
        imp::duplicate_into(self, process)
    }

    /// Maps the segment the parent made for this worker, then closes the descriptor so that
    /// nothing this worker starts inherits it.
    ///
    /// # Errors
    ///
    /// What the OS says when the descriptor names no mappable segment of `len` bytes.
    pub fn open(handle: u64, len: u64) -> io::Result<Self> {
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len > 0 && len % PAGE == 0 && *len <= MAX_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a bad segment size"))?;
        imp::open(handle, len)
    }

    /// Gives the pages of bytes `from..` (whole pages) back to the OS: they read as zero
    /// until written again. Used to trim a ring after a burst of use.
    pub fn release_from(&self, from: usize) {
        self.release(from..self.len);
    }

    /// Gives the whole pages inside bytes `range` back to the OS, as
    /// [`release_from`](Self::release_from) does: used to trim one part of a segment while
    /// another process may be writing a different part.
    pub fn release(&self, range: std::ops::Range<usize>) {
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = range.end.min(self.len) / PAGE * PAGE;
        if start < end {
            imp::release(self, start, end);
        }
    }
}

/// The granularity of segments: sizes are whole pages of this many bytes (a multiple of the
/// page size of every supported OS).
pub(crate) const PAGE: usize = 16 * 1024;

/// The largest segment a worker agrees to map.
pub(crate) const MAX_LEN: usize = 1 << 30;

#[cfg(unix)]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::ptr::NonNull;
    use std::sync::atomic::AtomicU64;

    use super::Segment;

    fn map(fd: &OwnedFd, len: usize) -> io::Result<NonNull<AtomicU64>> {
        // SAFETY: a fresh shared mapping of `len` bytes of `fd` at an address the kernel
        // chooses; no existing memory is touched. The result is checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))
    }

    fn sized(fd: OwnedFd, len: usize) -> io::Result<Segment> {
        let size = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: ftruncate on a descriptor we own; it touches no memory of ours.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let ptr = map(&fd, len)?;
        Ok(Segment {
            ptr,
            len,
            fd: Some(fd),
        })
    }

    #[cfg(target_os = "linux")]
    pub(super) fn create(len: usize) -> io::Result<Segment> {
        // SAFETY: memfd_create with a NUL-terminated name and flags; it returns a new
        // descriptor or -1, checked below.
        let raw = unsafe { libc::memfd_create(c"offspring-segment".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just returned to us and owned by nobody else.
        sized(unsafe { OwnedFd::from_raw_fd(raw) }, len)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn create(len: usize) -> io::Result<Segment> {
        let token = crate::auth::random_hex(8)?;
        let name = std::ffi::CString::new(format!("/offspring-{token}"))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let fd = crate::shm::imp::shm_create(&name)?;
        // SAFETY: unlinking the name we just created; the descriptor keeps the object alive.
        unsafe { libc::shm_unlink(name.as_ptr()) };
        sized(fd, len)
    }

    pub(super) fn open(handle: u64, len: usize) -> io::Result<Segment> {
        let raw = i32::try_from(handle)
            .ok()
            .filter(|fd| *fd > 2)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a bad descriptor"))?;
        // SAFETY: fstat of a descriptor number into a zeroed struct we own; it fails cleanly
        // when the number names nothing.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `stat` is a valid out-pointer.
        if unsafe { libc::fstat(raw, &mut stat) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if usize::try_from(stat.st_size).ok() != Some(len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the segment's size is not the one announced",
            ));
        }
        // SAFETY: the parent handed this descriptor down for us alone (it was inheritable in
        // this child only), and nothing else in this process uses it: we take ownership.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ptr = map(&fd, len)?;
        // The mapping outlives the descriptor; closing it keeps it from our own children.
        drop(fd);
        Ok(Segment { ptr, len, fd: None })
    }

    /// `start..end` is page-aligned and inside the mapping (see `Segment::release`).
    pub(super) fn release(segment: &Segment, start: usize, end: usize) {
        // SAFETY: the range lies inside our own live mapping (the caller aligned it to pages
        // and bounded it by the mapping's length); MADV_REMOVE (Linux) frees the shared
        // pages, which then read as zero, and MADV_DONTNEED elsewhere drops our copy.
        // Neither invalidates the mapping, and all access is atomic.
        unsafe {
            let base = segment.ptr.as_ptr().cast::<u8>().add(start);
            #[cfg(target_os = "linux")]
            libc::madvise(base.cast(), end - start, libc::MADV_REMOVE);
            #[cfg(not(target_os = "linux"))]
            libc::madvise(base.cast(), end - start, libc::MADV_DONTNEED);
        }
    }

    impl Drop for Segment {
        fn drop(&mut self) {
            // SAFETY: unmapping the mapping this segment made; `words` borrows `self`, so no
            // reference into it outlives this.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

#[cfg(windows)]
mod imp {
    use std::io;
    use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
    use std::ptr::NonNull;
    use std::sync::atomic::AtomicU64;

    use windows_sys::Win32::Foundation::{DUPLICATE_SAME_ACCESS, DuplicateHandle, HANDLE};
    use windows_sys::Win32::System::Memory::{
        CreateFileMappingW, FILE_MAP_ALL_ACCESS, MEMORY_MAPPED_VIEW_ADDRESS, MapViewOfFile,
        PAGE_READWRITE, UnmapViewOfFile,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;

    use super::Segment;

    fn map(handle: &OwnedHandle, len: usize) -> io::Result<NonNull<AtomicU64>> {
        // SAFETY: mapping a view of a file mapping we hold a handle to; the result is checked
        // for null.
        let view = unsafe {
            MapViewOfFile(
                handle.as_raw_handle() as HANDLE,
                FILE_MAP_ALL_ACCESS,
                0,
                0,
                len,
            )
        };
        NonNull::new(view.Value.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)
    }

    pub(super) fn create(len: usize) -> io::Result<Segment> {
        let size = len as u64;
        // SAFETY: an unnamed, pagefile-backed mapping with default security (not inheritable);
        // the result is checked for null.
        let raw = unsafe {
            CreateFileMappingW(
                -1isize as HANDLE,
                std::ptr::null(),
                PAGE_READWRITE,
                (size >> 32) as u32,
                size as u32,
                std::ptr::null(),
            )
        };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a handle just returned to us and owned by nobody else.
        let handle = unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) };
        let ptr = map(&handle, len)?;
        Ok(Segment {
            ptr,
            len,
            handle: Some(handle),
        })
    }

    pub(super) fn duplicate_into(segment: &Segment, process: RawHandle) -> io::Result<u64> {
        let handle = segment
            .handle
            .as_ref()
            .ok_or_else(|| io::Error::other("the segment's handle is closed"))?;
        let mut target: HANDLE = std::ptr::null_mut();
        // SAFETY: duplicating a handle we own into a process handle the caller holds; the
        // out-pointer is a local. The result is checked.
        let ok = unsafe {
            DuplicateHandle(
                GetCurrentProcess(),
                handle.as_raw_handle() as HANDLE,
                process as HANDLE,
                &mut target,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(target as usize as u64)
    }

    pub(super) fn open(handle: u64, len: usize) -> io::Result<Segment> {
        let raw = usize::try_from(handle)
            .ok()
            .filter(|h| *h != 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a bad handle"))?;
        // SAFETY: the parent duplicated this handle into our process for us alone, and
        // nothing else in this process uses it: we take ownership.
        let owned = unsafe { OwnedHandle::from_raw_handle(raw as RawHandle) };
        let ptr = map(&owned, len)?;
        drop(owned);
        Ok(Segment {
            ptr,
            len,
            handle: None,
        })
    }

    pub(super) fn release(_segment: &Segment, _start: usize, _end: usize) {
        // A pagefile-backed view cannot give pages back while mapped; the pages stay
        // committed (docs/platforms.md).
    }

    impl Drop for Segment {
        fn drop(&mut self) {
            // SAFETY: unmapping the view this segment mapped; `words` borrows `self`, so no
            // reference into it outlives this.
            unsafe {
                UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                    Value: self.ptr.as_ptr().cast(),
                })
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn a_segment_is_zeroed_writable_and_trimmed_to_zero() {
        let segment = Segment::create(3 * PAGE).expect("a segment");
        assert_eq!(segment.len(), 3 * PAGE);
        let words = segment.words();
        assert!(words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
        for (i, w) in words.iter().enumerate() {
            w.store(i as u64, Ordering::Relaxed);
        }
        segment.release_from(PAGE);
        assert_eq!(words[7].load(Ordering::Relaxed), 7);
        #[cfg(target_os = "linux")]
        assert_eq!(words[PAGE / 8 + 1].load(Ordering::Relaxed), 0);
        // A range keeps what lies outside it, and a partial page.
        for (i, w) in words.iter().enumerate() {
            w.store(i as u64 + 1, Ordering::Relaxed);
        }
        segment.release(PAGE - 8..2 * PAGE + 8);
        assert_eq!(words[PAGE / 8 - 1].load(Ordering::Relaxed), PAGE as u64 / 8);
        assert_eq!(
            words[2 * PAGE / 8].load(Ordering::Relaxed),
            2 * PAGE as u64 / 8 + 1
        );
        #[cfg(target_os = "linux")]
        assert_eq!(words[PAGE / 8].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn bad_descriptors_and_sizes_are_refused() {
        assert!(Segment::open(u64::MAX, PAGE as u64).is_err());
        assert!(Segment::open(1, PAGE as u64).is_err());
        assert!(Segment::open(100_000, 7).is_err());
        assert!(Segment::open(100_000, 0).is_err());
    }
}
