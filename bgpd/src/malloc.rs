// glibc malloc settings for a daemon that holds a full table. By default
// glibc gives every thread its own arena and raises its mmap threshold
// after each large free, so the memory of tables that grew (hash table
// shards double as routes arrive) stays in per-thread free lists: at
// 500,000 routes that was 51 MB resident for 32 MB of live heap. One arena
// and fixed thresholds hand freed memory back: 40 MB (bench/fib-ingest).
// The only other unsafe code is in session/transport/sockopt.rs and
// fib/sys.rs.

/// glibc's mallopt parameters (malloc.h).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod param {
    pub const M_TRIM_THRESHOLD: i32 = -1;
    pub const M_MMAP_THRESHOLD: i32 = -3;
    pub const M_ARENA_MAX: i32 = -8;
}

/// Allocations at least this large get their own mapping, returned to the
/// kernel when freed (hash table shards, netlink buffers).
const MMAP_THRESHOLD: i32 = 64 << 10;
/// Free memory at the top of the heap beyond this goes back to the kernel.
const TRIM_THRESHOLD: i32 = 128 << 10;

/// Applies the settings above. Call first thing in main, before any thread
/// starts. Does nothing where the C library is not glibc.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any other thread exists, with parameters glibc documents.
    unsafe {
        libc::mallopt(param::M_ARENA_MAX, 1);
        libc::mallopt(param::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(param::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
