//! 3×3 convolution (stride 1, padding 1) with bf16 products: nine shifted matrix products
//! summed in f32 on a [`bf16`] kernel, with no im2col and no Winograd transform.
//!
//! The input is converted once into a zero-padded image of channel *pairs* in bf16 (the layout
//! the kernels read, see [`crate::net::cpu::bf16`]), stored row by row: padded row Y holds, for each
//! pair p, the `w + 2` padded columns, `P[Y][p][X]`. Tap (kh, kw) of output pixel (y, x) reads
//! `P[y + kh][·][x + kw]`, so for a run of pixels along a row every tap is the same matrix B
//! (rows: channel pairs, `w + 2` apart; columns: pixels) shifted by a constant, and
//!
//!   out[co][y][x] = bias[co] + Σ_{kh,kw} Σ_ci W[co][ci][kh][kw] · P[y + kh][ci][x + kw]
//!
//! is one block product over k = 9·c_in for each block of 32 output channels × 32 pixels of a
//! row (a shorter last block of a row reads on into the next padded row; those outputs are
//! dropped).
//!
//! Why not Winograd in bf16: F(4×4, 3×3) scales terms by up to 8 in its transforms, and with
//! bf16's 8-bit mantissa its outputs came out 2% (input gradients 10%) off f32 on VGG16's
//! shapes, where the direct sum stays within bf16's own rounding (tests/layers.rs).

use std::mem::MaybeUninit;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::net::cpu::bf16::{self, Kernel};
use crate::net::cpu::shared::SharedMut;

/// Output channels per block (a block may be 16 at the edge).
const BLOCK_ROWS: usize = 32;
/// Output positions per block.
const BLOCK_COLS: usize = 32;

/// A layer's weights for the bf16 kernels: tap t = 3·kh + kw as a row-major bf16 matrix,
/// `taps[t][co][ci]`, its channels padded with zero weights to the kernels' granularity
/// (outputs to a multiple of 16, inputs of 32: conv1_1's 3 inputs become 32, its input
/// gradient's 3 outputs 16).
#[derive(Debug)]
pub struct Bf16Weights {
    pub c_out: usize,
    pub c_in: usize,
    pub kernel: Kernel,
    /// Channels as padded: `c_out` rounded up to 16, `c_in` to 32.
    c_out_padded: usize,
    c_in_padded: usize,
    taps: Vec<u16>,
    /// The padded input of the last call, kept for the next (same size every iteration).
    scratch: Mutex<Vec<u32>>,
}

impl Bf16Weights {
    /// Packs OIHW f32 weights `[c_out][c_in][3][3]`, rounded to bf16.
    pub fn new(weight: &[f32], c_out: usize, c_in: usize, kernel: Kernel) -> Self {
        assert_eq!(weight.len(), c_out * c_in * 9);
        let (c_out_padded, c_in_padded) = (c_out.next_multiple_of(16), c_in.next_multiple_of(32));
        let mut taps = vec![0u16; 9 * c_out_padded * c_in_padded];
        for co in 0..c_out {
            for ci in 0..c_in {
                for t in 0..9 {
                    taps[(t * c_out_padded + co) * c_in_padded + ci] = bf16::to_bf16(weight[(co * c_in + ci) * 9 + t]);
                }
            }
        }
        Self { c_out, c_in, kernel, c_out_padded, c_in_padded, taps, scratch: Mutex::new(Vec::new()) }
    }
}

/// The input as zero-padded bf16 channel pairs, `P[Y][p][X]` at `(Y·pairs + p)·wp + X` with
/// `wp = w + 2`, followed by slack for the last block's overreach.
struct PaddedPairs {
    wp: usize,
    pairs: usize,
}

impl PaddedPairs {
    fn len(pairs: usize, h: usize, w: usize) -> usize {
        (h + 2) * pairs * (w + 2) + 2 * BLOCK_COLS
    }

    /// Fills `data` (at least [`Self::len`] long) from `c_in` channels, padded with zero channels
    /// to `2·pairs`. With `mask`, input entries whose mask entry is not positive count as zero
    /// (the ReLU backward entering the input-gradient convolution).
    fn fill(data: &mut [u32], input: &[f32], mask: Option<&[f32]>, (c_in, pairs): (usize, usize), h: usize, w: usize) -> Self {
        let wp = w + 2;
        let row_len = pairs * wp;
        let (rows, slack) = data[..Self::len(pairs, h, w)].split_at_mut((h + 2) * row_len);
        slack.fill(0);
        rows.par_chunks_mut(row_len).enumerate().for_each(|(padded_y, row)| {
            if padded_y == 0 || padded_y == h + 1 {
                row.fill(0);
                return;
            }
            let y = padded_y - 1;
            for (p, dst) in row.chunks_exact_mut(wp).enumerate() {
                if 2 * p + 1 >= c_in {
                    // A zero channel (padding), or an odd count's last channel paired with one.
                    dst.fill(0);
                    if 2 * p < c_in {
                        let e = &input[(2 * p * h + y) * w..][..w];
                        let me = mask.map(|m| &m[(2 * p * h + y) * w..][..w]);
                        for (x, (d, &a)) in dst[1..=w].iter_mut().zip(e).enumerate() {
                            let keep = me.is_none_or(|m| m[x] > 0.0);
                            *d = bf16::pack_pair(if keep { a } else { 0.0 }, 0.0);
                        }
                    }
                    continue;
                }
                dst[0] = 0;
                dst[wp - 1] = 0;
                let dst = &mut dst[1..=w];
                let (e, o) = (&input[(2 * p * h + y) * w..][..w], &input[((2 * p + 1) * h + y) * w..][..w]);
                let masks = mask.map(|m| (&m[(2 * p * h + y) * w..][..w], &m[((2 * p + 1) * h + y) * w..][..w]));
                bf16::pack_pairs(e, o, masks, dst);
            }
        });
        Self { wp, pairs }
    }
}

/// `out[co] = relu?(bias[co] + conv3x3(input ⊙ mask?)[co])` for one image `[c_in][h][w]` →
/// `[c_out][h][w]`.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    weights: &Bf16Weights,
    bias: Option<&[f32]>,
    input: &[f32],
    mask: Option<&[f32]>,
    h: usize,
    w: usize,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    let &Bf16Weights { c_out, c_in, kernel, c_out_padded, c_in_padded, ref taps, ref scratch } = weights;
    assert!(input.len() >= c_in * h * w && out.len() >= c_out * h * w, "bf16 convolution: buffers of the wrong size");
    assert!(mask.is_none_or(|m| m.len() >= c_in * h * w), "bf16 convolution: mask of the wrong size");
    // The padded input's buffer is kept with the weights (each call rewrites all of it); a
    // concurrent call on the same layer gets a buffer of its own.
    let mut own = Vec::new();
    let mut kept = scratch.try_lock().ok();
    let data = kept.as_deref_mut().unwrap_or(&mut own);
    let len = PaddedPairs::len(c_in_padded / 2, h, w);
    if data.len() < len {
        data.resize(len, 0);
    }
    let padded = PaddedPairs::fill(data, input, mask, (c_in, c_in_padded / 2), h, w);
    let (wp, pairs) = (padded.wp, padded.pairs);
    let data: &[u32] = data;
    // Tap t = 3·kh + kw reads padded row y + kh (P's rows are pairs·wp apart), column x + kw.
    let offsets: [usize; 9] = std::array::from_fn(|t| (t / 3) * pairs * wp + t % 3);
    let x_blocks = w.div_ceil(BLOCK_COLS);
    let co_blocks = c_out_padded.div_ceil(BLOCK_ROWS);
    // Tasks: runs of rows × groups of channel blocks, enough of them to share out.
    let threads = rayon::current_num_threads();
    let row_run = h.div_ceil(8 * threads).clamp(1, 4);
    let co_group = if h.div_ceil(row_run) >= 4 * threads { co_blocks } else { co_blocks.div_ceil(4 * threads).max(1) };
    let tasks: Vec<(usize, usize)> =
        (0..h).step_by(row_run).flat_map(|y| (0..co_blocks).step_by(co_group).map(move |cb| (y, cb))).collect();
    let out_ptr = SharedMut::new(out);
    tasks.par_iter().for_each(|&(y0, cb0)| {
        let session = bf16::Session::start(kernel);
        let mut acc = [0f32; BLOCK_ROWS * BLOCK_COLS];
        for cb in cb0..(cb0 + co_group).min(co_blocks) {
            let co0 = cb * BLOCK_ROWS;
            let rows = (c_out_padded - co0).min(BLOCK_ROWS);
            for y in y0..(y0 + row_run).min(h) {
                for xb in 0..x_blocks {
                    let x0 = xb * BLOCK_COLS;
                    let valid = (w - x0).min(BLOCK_COLS);
                    let cols = if valid > 16 { 32 } else { 16 };
                    // SAFETY: the session's kernel is available (`Session::start` asserts it).
                    // A_t, rows co0..co0+rows (≤ c_out_padded) of tap t, c_in_padded wide, lies in
                    // `taps` (9·c_out_padded·c_in_padded). B_t's c_in_padded/2 = pairs rows of
                    // `cols` pairs start at padded row y + t/3, column x0 + t%3: with y < h and
                    // x0 + cols ≤ w + 31, the last entry read, at most
                    // (h+2)·pairs·wp − wp + x0 + cols + 1 ≤ (h+2)·pairs·wp + 30, lies in the
                    // padded image or its 2·BLOCK_COLS of slack (`data` is at least that long).
                    // C is `acc`, rows × cols ≤ 32 × 32 at row stride 32, a local array that
                    // overlaps neither operand.
                    unsafe {
                        bf16::block(
                            &session,
                            (rows, cols, c_in_padded),
                            (taps.as_ptr().add(co0 * c_in_padded), c_in_padded, c_out_padded * c_in_padded),
                            (data.as_ptr().add(y * pairs * wp + x0), wp, &offsets),
                            (acc.as_mut_ptr(), BLOCK_COLS),
                        );
                    }
                    for r in 0..rows.min(c_out.saturating_sub(co0)) {
                        let co = co0 + r;
                        let b = bias.map_or(0.0, |b| b[co]);
                        // SAFETY: co < c_out, y < h and x0 + valid ≤ w, so the `valid` entries
                        // from (co·h + y)·w + x0 lie in `out` (≥ c_out·h·w, asserted), which
                        // outlives the tasks (`for_each` joins them). A task writes only rows
                        // y0..y0+row_run of the channels of blocks cb0..cb0+co_group, and the
                        // tasks' (row run, channel group) pairs are all different, so no other
                        // task touches these entries while this slice lives. `MaybeUninit`: they
                        // are only written.
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(out_ptr.get().add((co * h + y) * w + x0) as *mut MaybeUninit<f32>, valid)
                        };
                        let src = &acc[r * BLOCK_COLS..][..valid];
                        if relu {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| _ = d.write((s + b).max(0.0)));
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, &s)| _ = d.write(s + b));
                        }
                    }
                }
            }
        }
    });
}
