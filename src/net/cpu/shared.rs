//! [`SharedMut`]: how the parallel kernels ([`super::layers`], [`super::winograd`],
//! [`super::conv_bf16`]) let rayon tasks write their own parts of one output buffer.

use std::mem::MaybeUninit;

/// A pointer to the start of an `f32` output buffer, copied into every rayon task that writes a
/// part of it. The parts are strided (a tile of rows in every output channel, a block of
/// channels × a run of rows, the pixels of a block of Winograd tiles), so the buffer cannot be
/// handed out as `par_chunks_mut` slices.
///
/// Making one is safe; writing through [`Self::get`] is `unsafe`, and each such write relies on
/// the invariant that whoever made the `SharedMut` keeps:
/// - **lifetime**: the buffer outlives every task holding a copy: the tasks are joined (the
///   rayon `for_each` returns) before the function that made it returns, and the `&mut` it was
///   made from is not used meanwhile;
/// - **disjointness**: no two tasks write the same element, and no task reads an element
///   another task writes (the tasks only write through it, never read);
/// - **bounds**: every write lies inside the buffer it was made from.
///
/// The buffer may be uninitialised (`MaybeUninit`): the tasks only write it. Each call site
/// states, in its `SAFETY` comment, why its tasks' regions are disjoint and in bounds.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(*mut f32);

impl SharedMut {
    /// Shares `out`, whose elements the tasks will write.
    pub(crate) fn new(out: &mut [MaybeUninit<f32>]) -> Self {
        SharedMut(out.as_mut_ptr() as *mut f32)
    }

    /// The pointer to the buffer's first element. (A method rather than the field, so that a
    /// closure captures the whole `Send` wrapper, not the bare raw pointer, which is not.)
    #[inline(always)]
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: sending a `SharedMut` to another thread sends only the address; by the type's
// invariant the buffer outlives the tasks and each task writes elements no other task touches,
// so the writes made through it on that thread cannot race with any other access.
unsafe impl Send for SharedMut {}
// SAFETY: through `&SharedMut` a thread gets only a copy of the address (there is no interior
// access); what it then writes is covered by the invariant, as for `Send`.
unsafe impl Sync for SharedMut {}
