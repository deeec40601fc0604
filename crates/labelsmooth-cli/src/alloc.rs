//! A global allocator that can count live bytes and their peak, for memory figures in
//! benchmarks. Counting starts with [`reset_peak`]; until then each allocation costs one
//! relaxed load more than the system allocator (shared counters updated from every thread
//! would slow training down).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The system allocator, counting once [`reset_peak`] has been called.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed since counting started (memory allocated before then
/// and freed after makes it lower than what is live; differences stay exact).
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(bytes: usize) {
    if ON.load(Ordering::Relaxed) {
        let now = LIVE.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    if ON.load(Ordering::Relaxed) {
        LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System`; the counters do not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

/// The running count of allocated bytes (meaningful in differences, see [`peak`]).
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts counting (if not yet) and a new peak measurement from the count now.
pub fn reset_peak() {
    ON.store(true, Ordering::SeqCst);
    PEAK.store(live(), Ordering::Relaxed);
}

/// The highest count since the last [`reset_peak`]: `peak() - live()` taken right after
/// `reset_peak` is the most memory held at once above that moment.
pub fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

/// Asks glibc's malloc to keep freed memory for reuse rather than hand it back to the kernel.
///
/// Training allocates and frees the same large buffers (activations, their gradients) every
/// step; with glibc's defaults those above its trim and mmap thresholds go back to the kernel
/// when freed, and every step then pays the page faults of mapping them again (a third of the
/// time of the LSTM benchmark). Elsewhere this does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
