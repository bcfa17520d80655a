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
//!
//! Two more ways glibc handed memory back, found at 1080p: trimming the top of the heap once
//! more than `M_TRIM_THRESHOLD` is free there, which `i32::MAX` (2 GiB) only postponed — a
//! 1080p iteration frees more than that at once — so trimming is now off altogether (-1); and
//! the rayon threads' own arenas, whose sub-heaps are unmapped when they empty, so all threads
//! now share the main one (`M_ARENA_MAX` 1; the allocations are few and large, so the lock is
//! not contended). Two 1080p frames (`--size source`, 2 cores) took 4.2 million page faults
//! (16 GiB of zeroed pages; 20 s of system time) and now about 1 million, what the peak itself
//! needs: 0.91× the wall time, 4.13 instead of 4.34 GiB peak (three alternated runs each).

/// Makes the allocator keep freed memory for reuse (glibc: no `mmap`ped blocks, no trimming of
/// the heap, one arena for all threads). Call once, early, from a program's `main`; a no-op on
/// other C libraries.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers (no pointers) and only changes glibc malloc's tuning
    // parameters, under the allocator's own lock, so it is thread-safe; memory allocated before
    // stays valid (the settings apply to later allocations and frees). Unknown values are
    // rejected with a 0 return, which we ignore: the policy is an optimisation.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The same policy for a CUDA GPU's memory, and its peak. candle allocates device memory from
/// the device's stream-ordered pool (`cuMemAllocAsync`), which by default hands freed memory
/// back to the driver at every synchronisation — once per iteration here, since the stylizer
/// reads J's terms — so each iteration would map its activations afresh. Keeping freed memory
/// in the pool (as PyTorch's caching allocator does) makes iterations reuse it; the pool's
/// high-water mark is the peak GPU memory the benchmark reports.
#[cfg(feature = "cuda")]
pub mod gpu {
    use candle_core::cuda::cudarc::driver::{result, sys};
    use candle_core::Device;

    use crate::error::{Error, Result};

    fn default_pool(device: &Device) -> Result<sys::CUmemoryPool> {
        let Device::Cuda(cuda) = device else {
            return Err(Error::Settings(format!("{device:?} is not a CUDA device")));
        };
        let stream = cuda.cuda_stream();
        let context = stream.context();
        context.bind_to_thread().map_err(|e| Error::Settings(format!("CUDA context: {e}")))?;
        // SAFETY: `cu_device` is the CUdevice of candle's live context, which was just bound to
        // this thread (the driver call needs a current context); cuDeviceGetDefaultMemPool only
        // writes the pool handle into cudarc's own out-parameter.
        unsafe { result::device::get_default_mem_pool(context.cu_device()) }
            .map_err(|e| Error::Settings(format!("CUDA memory pool: {e}")))
    }

    fn attribute(device: &Device, attribute: sys::CUmemPool_attribute, set: Option<u64>) -> Result<u64> {
        let pool = default_pool(device)?;
        let mut value = set.unwrap_or(0);
        let pointer = &mut value as *mut u64 as *mut std::ffi::c_void;
        // SAFETY: `pool` is the device's default pool, valid for the process. `pointer` points
        // to `value`, a live, aligned u64 for the duration of the call, and both attributes
        // passed here (CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, CU_MEMPOOL_ATTR_USED_MEM_HIGH) are
        // cuuint64_t per the CUDA driver API, so the driver reads or writes exactly 8 bytes.
        unsafe {
            match set {
                Some(_) => result::mem_pool::set_attribute(pool, attribute, pointer),
                None => result::mem_pool::get_attribute(pool, attribute, pointer),
            }
        }
        .map_err(|e| Error::Settings(format!("CUDA memory pool attribute: {e}")))?;
        Ok(value)
    }

    /// Freed device memory stays in the pool for reuse (release threshold: unlimited).
    pub fn keep_freed_memory(device: &Device) -> Result<()> {
        attribute(device, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, Some(u64::MAX)).map(|_| ())
    }

    /// The most memory the pool had in use at once since the start or [`reset_peak`], bytes.
    pub fn peak_bytes(device: &Device) -> Result<u64> {
        attribute(device, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, None)
    }

    pub fn reset_peak(device: &Device) -> Result<()> {
        attribute(device, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, Some(0)).map(|_| ())
    }
}

/// Peak memory of painting a `width × height` frame on the CPU kernels in fp32 (one level at
/// that size; the coarser levels are smaller), in bytes: a fixed part (the network, the
/// process) plus a part per pixel (the forward trace, the backward's buffers, L-BFGS's pairs).
/// Fitted to `scripts/bench-hd`'s one-iteration runs: 3.89 GiB at 1920×1080 and 12.2 GiB at
/// 3840×2160 (fp32, 2 threads). A video adds its decoder, flow and warped frames to this.
pub fn estimated_peak_bytes(width: u32, height: u32) -> u64 {
    const FIXED: u64 = 1_200_000_000;
    const PER_PIXEL: u64 = 1_434;
    FIXED + PER_PIXEL * width as u64 * height as u64
}

/// This machine's memory (Linux's MemTotal), when it can be read.
pub fn total_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Fails, saying how much is needed, when painting at `width × height` could not fit in this
/// machine's memory (see [`estimated_peak_bytes`]); checked before any work.
pub fn check_fits(width: u32, height: u32) -> std::result::Result<(), String> {
    let needed = estimated_peak_bytes(width, height);
    match total_memory_bytes() {
        Some(total) if needed > total => Err(format!(
            "painting {width}×{height} needs about {:.1} GiB and this machine has {:.1} GiB; choose a smaller --size",
            gib(needed),
            gib(total)
        )),
        _ => Ok(()),
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_measured_peaks() {
        // scripts/bench-hd, one iteration at full size (fp32): 1080p 3.89 GiB, 4K 12.2 GiB;
        // 720p 2.61 GiB before the backward freed as it went (so at most that now).
        for ((w, h), measured_gib) in [((1920, 1080), 3.89), ((3840, 2160), 12.2)] {
            let estimate = gib(estimated_peak_bytes(w, h));
            assert!((estimate / measured_gib - 1.0).abs() < 0.05, "{w}×{h}: estimated {estimate:.2} GiB, measured {measured_gib}");
        }
        assert!(gib(estimated_peak_bytes(1280, 720)) < 2.61);
        // --size 100000 on 16:9 footage: far beyond any machine.
        assert!(gib(estimated_peak_bytes(100_000, 56_250)) > 7_000.0);
        let err = check_fits(100_000, 56_250).unwrap_err();
        assert!(err.contains("100000×56250") && err.contains("GiB") && err.contains("--size"), "{err}");
        assert!(check_fits(256, 192).is_ok());
    }
}
