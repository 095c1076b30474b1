//! Memory a table can live in so that it outlives the process (issue 17):
//! a file on tmpfs mapped shared, whose pages stay in the page cache when
//! the process exits, is killed or execs a new binary. The next process
//! reads the file back (`crate::persist`) and rebuilds its tables from it.
//!
//! A [`Region`] is either that mapping or plain heap memory (tests, the
//! benchmark, `state_dir off`); the tables index it as a slice either way,
//! so the fast path is the same code.
//!
//! The file is a 4 KiB header page (`crate::persist::Header`) and the
//! array after it, page-aligned.

use std::fs::OpenOptions;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;

/// Bytes before the array: the header page.
pub const HEADER_BYTES: usize = 4096;

enum Backing<T> {
    Heap(#[allow(dead_code)] Vec<T>),
    /// The mapping's start and length (header included).
    Mapped(NonNull<u8>, usize),
}

/// `len` elements of `T`, on the heap or in a shared file mapping.
pub struct Region<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    backing: Backing<T>,
}

// SAFETY: a Region owns its memory exclusively, like a Vec: the mapping is
// private to this value (the file is written by no one else while it
// lives), so moving it to another thread is as sound as moving a Vec<T>.
unsafe impl<T: Copy + Send> Send for Region<T> {}
// SAFETY: shared references only read, as for a Vec<T>.
unsafe impl<T: Copy + Sync> Sync for Region<T> {}

impl<T: Copy> Region<T> {
    /// `len` copies of `fill` on the heap.
    pub fn heap(len: usize, fill: T) -> Region<T> {
        let mut v = vec![fill; len];
        let ptr = NonNull::new(v.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Region {
            ptr,
            len,
            backing: Backing::Heap(v),
        }
    }

    /// `len` copies of `fill` in a new file at `path` (replacing one that
    /// is there), mapped shared, with `header` (at most [`HEADER_BYTES`])
    /// in its first page. The pages are written, so a tmpfs without room
    /// fails here, not in the fast path with SIGBUS.
    pub fn create(path: &Path, header: &[u8], len: usize, fill: T) -> io::Result<Region<T>> {
        if header.len() > HEADER_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "header too long",
            ));
        }
        let body = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "region too large"))?;
        let total = HEADER_BYTES + body;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.set_len(total as u64)?;
        // Reserve the pages now (tmpfs allocates them lazily): a full
        // tmpfs is an error at start, never a SIGBUS in a worker.
        // SAFETY: fallocate(2) on a descriptor we own; no memory involved.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, total as libc::off_t) };
        if r != 0 {
            let e = io::Error::last_os_error();
            // Filesystems without fallocate: the pages come when written.
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("reserving {} MiB in {}: {e}", total >> 20, path.display()),
                ));
            }
        }
        // SAFETY: a new shared mapping of the whole file, at an address the
        // kernel picks; the result is checked before use. The file stays
        // mapped after `f` is closed.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p as *mut u8).ok_or_else(io::Error::last_os_error)?;
        // SAFETY: the mapping is `total` bytes, readable and writable; the
        // header fits in its first page (checked above).
        unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), base.as_ptr(), header.len()) };
        // SAFETY: HEADER_BYTES (4096) keeps the array page-aligned, so
        // aligned for any T with alignment up to a page; the bytes after
        // the header are `body` = len × size_of::<T>().
        let ptr = unsafe { NonNull::new_unchecked(base.as_ptr().add(HEADER_BYTES) as *mut T) };
        let mut r = Region {
            ptr,
            len,
            backing: Backing::Mapped(base, total),
        };
        // Every element written: the file's bytes are now valid `T`s, as
        // the slice view requires.
        for i in 0..len {
            // SAFETY: `i < len`, within the mapping; write() does not read
            // the (zero) bytes there as a T.
            unsafe { r.ptr.as_ptr().add(i).write(fill) };
        }
        r.len = len;
        Ok(r)
    }

    /// Whether the elements live in a file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped(..))
    }

    /// Writes `bytes` into the header page at `offset` (a flag the next
    /// process reads, such as a clean stop). Nothing on the heap.
    pub fn write_header(&mut self, offset: usize, bytes: &[u8]) {
        if let Backing::Mapped(base, _) = self.backing {
            if offset + bytes.len() <= HEADER_BYTES {
                // SAFETY: within the header page of our own mapping.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        base.as_ptr().add(offset),
                        bytes.len(),
                    )
                };
            }
        }
    }
}

impl<T: Copy> Drop for Region<T> {
    fn drop(&mut self) {
        if let Backing::Mapped(base, total) = self.backing {
            // SAFETY: exactly the mapping made in `create`; nothing borrows
            // it any more (we are being dropped).
            unsafe { libc::munmap(base.as_ptr() as *mut libc::c_void, total) };
        }
    }
}

impl<T: Copy> Deref for Region<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised elements (written in
        // `heap`/`create`) that live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for Region<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Default for Region<T> {
    fn default() -> Region<T> {
        Region {
            ptr: NonNull::dangling(),
            len: 0,
            backing: Backing::Heap(Vec::new()),
        }
    }
}

/// A file mapped read-only: the previous process's table, read where it
/// lies (only the pages the reader touches are read, where a copy would
/// read the whole capacity).
pub struct MappedFile {
    ptr: NonNull<u8>,
    len: usize,
}

impl MappedFile {
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let f = std::fs::File::open(path)?;
        let len = f.metadata()?.len() as usize;
        if len == 0 {
            return Ok(MappedFile {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: a private read-only mapping of the whole file, at an
        // address the kernel picks; checked below. The files are renamed
        // aside before they are read, so no process writes them meanwhile.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p as *mut u8).ok_or_else(io::Error::last_os_error)?;
        Ok(MappedFile { ptr, len })
    }
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` readable bytes mapped for as long as `self` lives
        // (or a dangling pointer with length 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: exactly the mapping made in `open`.
            unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
        }
    }
}

/// CLOCK_MONOTONIC in milliseconds: the clock `Instant` reads on Linux,
/// shared by every process of one boot, so an expiry written by one
/// process means the same moment to the next.
pub fn monotonic_ms() -> u64 {
    super::sys::monotonic_ns() / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_region_is_read_back_from_its_file() {
        let dir = std::env::temp_dir().join(format!("ferrovs-shm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r");
        {
            let mut r: Region<u32> = Region::create(&path, b"HDR", 1000, 7).unwrap();
            assert!(r.is_mapped());
            assert_eq!(r.len(), 1000);
            assert!(r.iter().all(|&x| x == 7));
            r[999] = 42;
            r.write_header(8, b"ok");
        }
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len(), HEADER_BYTES + 4000);
        assert_eq!(&b[..3], b"HDR");
        assert_eq!(&b[8..10], b"ok");
        let last = &b[HEADER_BYTES + 999 * 4..];
        assert_eq!(u32::from_ne_bytes(last.try_into().unwrap()), 42);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_heap_region_is_a_slice() {
        let mut r = Region::heap(3, 1u8);
        r[1] = 2;
        assert_eq!(&r[..], &[1, 2, 1]);
        assert!(!r.is_mapped());
        let e: Region<u64> = Region::default();
        assert!(e.is_empty());
    }
}
