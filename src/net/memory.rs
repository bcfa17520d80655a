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
    // SAFETY: mallopt takes two integers (no pointers) and only changes glibc malloc's tuning
    // parameters, under the allocator's own lock, so it is thread-safe; memory allocated before
    // stays valid (the settings apply to later allocations and frees). Unknown values are
    // rejected with a 0 return, which we ignore: the policy is an optimisation.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
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
