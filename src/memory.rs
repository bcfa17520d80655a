//! The process's memory policy: keep freed buffers for reuse instead of handing them back to
//! the operating system.
//!
//! Every optimisation iteration allocates and frees the same large tensors (tens of MiB each:
//! activations, gradients, transformed tiles). By default glibc serves large blocks with `mmap`
//! (over 128 KiB at first; the threshold adapts, but never past 32 MiB, and our tensors at
//! 640×360 reach 60 MiB) and returns them with `munmap`, so
//! each iteration pays again for page faults, zeroed pages and cross-CPU TLB flushes; on a
//! virtual machine with 2 cores that was 12–20% of an iteration (measured with
//! `BENCH_MODE=iteration` at 384×216 and 640×360). Keeping freed memory in the heap makes later
//! iterations reuse it. Peak memory stays what one iteration needs: the same sizes recur
//! every iteration and every frame.

/// Makes the allocator keep freed memory for reuse (glibc: no `mmap`ped blocks, no trimming of
/// the heap). Call once, early, from a program's `main`; a no-op on other C libraries.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
