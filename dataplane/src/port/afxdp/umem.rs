//! The UMEM: the packet memory every XDP socket of the process receives
//! into and transmits from, and its frame allocator.
//!
//! One region per process, mapped once and never unmapped, like a DPDK
//! mempool that lives as long as the EAL: a packet is then just a frame
//! offset, valid on every thread for as long as it lives, and a frame
//! received on one interface can be transmitted on another without a copy.
//! Every socket registers the same region as its own UMEM (`XDP_UMEM_REG`),
//! rather than sharing one registration (`XDP_SHARED_UMEM`), so that each
//! socket picks its own mode (zero-copy on a NIC that has it, copy on veth);
//! a frame offset means the same memory in all of them.
//!
//! Frames are handed out by a per-thread cache over a global lock-free
//! queue: a worker allocates and frees without atomics until its cache runs
//! dry or overflows, then moves frames in batches. A thread that ends gives
//! its cache back.
//!
//! The region is a memfd mapped shared, so that `ferrovs upgrade` can hand
//! it to the next process with the sockets (`crate::port::afxdp::handover`):
//! the kernel keeps the pages it pinned for each socket, and the new process
//! maps the same pages and goes on from the frames the old one left free.

use crossbeam_queue::ArrayQueue;
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Bytes per frame (aligned chunk mode: a power of two, at most a page).
pub const FRAME_SIZE: usize = 2048;
/// Frames the region holds unless the first opener asks for more (64 MiB).
pub const DEFAULT_FRAMES: u32 = 32768;
/// Frames moved between a thread's cache and the global queue at a time.
const BATCH: usize = 256;
/// A thread's cache size beyond which frames go back to the global queue.
const CACHE_MAX: usize = 4 * BATCH;

pub struct Umem {
    base: *mut u8,
    frames: u32,
    /// The memfd behind the mapping (handed to the next process).
    fd: OwnedFd,
    free: ArrayQueue<u32>,
    /// Frames a thread wanted when both its cache and the queue were empty.
    pub exhausted: AtomicU64,
}

// SAFETY: `base` points to a mapping that is never unmapped; which frame a
// thread may touch is decided by ownership of its offset (the allocator hands
// each offset to one owner at a time), not by this struct.
unsafe impl Send for Umem {}
// SAFETY: as above; the shared parts are the lock-free queue and atomics.
unsafe impl Sync for Umem {}

static UMEM: OnceLock<Umem> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());
/// The region's base, for the packet accessors (a plain load, no OnceLock
/// state check per packet).
static BASE: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());

/// A thread's frames; given back to the global queue when the thread ends
/// (a stopped worker's frames must not be lost to a hand-over).
struct Cache(Vec<u32>);

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(u) = UMEM.get() {
            for f in self.0.drain(..) {
                let _ = u.free.push(f);
            }
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Cache(Vec::new())) };
}

/// Maps `len` bytes of the memfd `fd` shared; `populate` maps every page
/// now (a new region: the kernel pins them at registration anyway; an
/// adopted one's pages exist, and mapping 64 MiB of them would lengthen
/// the hand-over's pause: they are mapped as they are touched).
fn map_shared(fd: &OwnedFd, len: usize, populate: bool) -> io::Result<*mut u8> {
    let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
    // SAFETY: a shared mapping of our own memfd at an address the kernel
    // picks; checked below.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mapping {} MiB of AF_XDP packet memory: {e}", len >> 20),
        ));
    }
    Ok(p as *mut u8)
}

impl Umem {
    /// The process's region, mapped on first use with at least `frames`
    /// frames; an error when it exists already and is smaller.
    pub fn get(frames: u32) -> io::Result<&'static Umem> {
        let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = UMEM.get() {
            if u.frames < frames {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!(
                        "the AF_XDP packet memory has {} frames and {frames} are needed; it is sized once per process",
                        u.frames
                    ),
                ));
            }
            return Ok(u);
        }
        let frames = frames.max(DEFAULT_FRAMES);
        let len = frames as usize * FRAME_SIZE;
        // SAFETY: memfd_create with a constant name; the result is checked.
        let raw = unsafe { libc::memfd_create(c"ferrovs-umem".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ftruncate on our own memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let p = map_shared(&fd, len, true)?;
        let free = ArrayQueue::new(frames as usize);
        for i in 0..frames {
            let _ = free.push(i * FRAME_SIZE as u32);
        }
        Ok(Umem::install(p, frames, fd, free))
    }

    /// The region another process handed over (`fd`, `frames` frames),
    /// with the frames it left free; the others are in the sockets' rings
    /// or the kernel's hands and come back through them.
    pub fn adopt(fd: OwnedFd, frames: u32, free_frames: &[u32]) -> io::Result<&'static Umem> {
        let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if UMEM.get().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the AF_XDP packet memory is mapped already",
            ));
        }
        let len = frames as usize * FRAME_SIZE;
        let size = fstat_size(&fd)?;
        if size < len as u64 || frames == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the packet memory handed over has {size} bytes, {len} expected"),
            ));
        }
        let p = map_shared(&fd, len, false)?;
        let free = ArrayQueue::new(frames as usize);
        for &f in free_frames {
            // Only frame starts inside the region: a bad list loses
            // frames, never hands out memory outside it.
            if f % FRAME_SIZE as u32 == 0 && (f as usize) < len {
                let _ = free.push(f);
            }
        }
        Ok(Umem::install(p, frames, fd, free))
    }

    /// Makes the region mapped at `p` the process's (under `INIT`).
    fn install(p: *mut u8, frames: u32, fd: OwnedFd, free: ArrayQueue<u32>) -> &'static Umem {
        BASE.store(p, Ordering::Release);
        UMEM.get_or_init(|| Umem {
            base: p,
            frames,
            fd,
            free,
            exhausted: AtomicU64::new(0),
        })
    }

    /// A duplicate of the region's memfd, for the next process.
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Empties the global queue: the frames free once every worker has
    /// stopped (their caches came back when their threads ended), for the
    /// next process.
    pub fn take_free(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.free.len());
        while let Some(f) = self.free.pop() {
            v.push(f);
        }
        v
    }

    /// The region, if it was mapped.
    pub fn existing() -> Option<&'static Umem> {
        UMEM.get()
    }

    pub fn base(&self) -> *mut u8 {
        self.base
    }
    pub fn len(&self) -> usize {
        self.frames as usize * FRAME_SIZE
    }
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }
    pub fn frames(&self) -> u32 {
        self.frames
    }
    /// Frames in the global queue (not counting threads' caches).
    pub fn free_global(&self) -> usize {
        self.free.len()
    }

    /// A free frame's offset, from this thread's cache.
    #[inline]
    pub fn alloc(&self) -> Option<u32> {
        let got = CACHE.try_with(|c| {
            let c = &mut c.borrow_mut().0;
            if c.is_empty() {
                for _ in 0..BATCH {
                    match self.free.pop() {
                        Some(f) => c.push(f),
                        None => break,
                    }
                }
            }
            c.pop()
        });
        match got {
            Ok(Some(f)) => Some(f),
            Ok(None) => {
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                None
            }
            // Thread exiting: straight from the queue.
            Err(_) => self.free.pop(),
        }
    }

    /// Gives a frame back.
    #[inline]
    pub fn free(&self, frame: u32) {
        let cached = CACHE.try_with(|c| {
            let c = &mut c.borrow_mut().0;
            if c.len() >= CACHE_MAX {
                for f in c.drain(CACHE_MAX - BATCH..) {
                    // Cannot fail: the queue holds every frame.
                    let _ = self.free.push(f);
                }
            }
            c.push(frame);
        });
        if cached.is_err() {
            let _ = self.free.push(frame);
        }
    }

    /// Returns this thread's cached frames to the global queue (a worker
    /// that stops, so that its frames are not stranded).
    pub fn flush_thread_cache(&self) {
        let _ = CACHE.try_with(|c| {
            for f in c.borrow_mut().0.drain(..) {
                let _ = self.free.push(f);
            }
        });
    }
}

fn fstat_size(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: all-zero is a valid stat (integers only); fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on our own descriptor into a local.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_size as u64)
}

/// The base of the region. Only called for packets, which exist only once
/// the region does.
#[inline(always)]
pub(super) fn base() -> *mut u8 {
    BASE.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_unique_and_come_back() {
        let u = Umem::get(1).unwrap();
        let mut got: Vec<u32> = (0..1000).map(|_| u.alloc().unwrap()).collect();
        assert!(got.iter().all(|f| f % FRAME_SIZE as u32 == 0));
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 1000);
        for f in got {
            u.free(f);
        }
        u.flush_thread_cache();
        assert!(Umem::get(u.frames() + 1).is_err());
    }
}
