//! Winograd F(4×4, 3×3) convolution for VGG's 3×3, stride-1, padding-1 layers (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016; interpolation points 0, ±1, ±2, ∞).
//!
//! Each 4×4 output tile Y comes from a 6×6 input tile d as Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A.
//! Summed over input channels, the elementwise products become 36 matrix products
//! M_ξ = U_ξ · V_ξ (ξ = the 36 positions of a 6×6 tile) with U_ξ = (G g Gᵀ)_ξ of shape
//! c_out × c_in (computed once per layer) and V_ξ = (Bᵀ d B)_ξ of shape c_in × tiles. That is
//! 36·c_out·c_in multiply-adds per 16 outputs instead of 144: 4× fewer than a direct
//! convolution (F(2×2, 3×3) saves 2.25×), the products done by `gemm`. The price is a little
//! precision (f32 results agree with a direct convolution to ~2e-5 of the output's scale) and transformed
//! weights 4× the size of the originals. Tiles are processed in cache-sized blocks so the
//! transformed tiles never leave the cache, and blocks run in parallel.

use rayon::prelude::*;

use crate::net::cpu::shared::SharedMut;

/// Outputs per tile side (m in F(m×m, 3×3)).
const M: usize = 4;
/// Inputs per tile side: m + 3 − 1.
const T: usize = M + 2;
/// Positions ξ of a transformed tile.
const XI: usize = T * T;

/// G (6×3) applied to a kernel column or row: the weight transform's 1-D step.
#[inline(always)]
fn g_1d([g0, g1, g2]: [f32; 3]) -> [f32; T] {
    [
        g0 / 4.0,
        -(g0 + g1 + g2) / 6.0,
        -(g0 - g1 + g2) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    ]
}

/// Bᵀ (6×6) applied to six inputs: the input transform's 1-D step, with
/// Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
///       [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]].
#[inline(always)]
fn bt_1d([d0, d1, d2, d3, d4, d5]: [f32; T]) -> [f32; T] {
    [
        4.0 * d0 - 5.0 * d2 + d4,
        -4.0 * (d1 + d2) + d3 + d4,
        4.0 * (d1 - d2) - d3 + d4,
        2.0 * (d3 - d1) - d2 + d4,
        2.0 * (d1 - d3) - d2 + d4,
        4.0 * d1 - 5.0 * d3 + d5,
    ]
}

/// Aᵀ (4×6) applied to six transformed values: the output transform's 1-D step, with
/// Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]].
#[inline(always)]
fn at_1d([m0, m1, m2, m3, m4, m5]: [f32; T]) -> [f32; M] {
    let (sum12, diff12, sum34, diff34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
    [m0 + sum12 + sum34, diff12 + 2.0 * diff34, sum12 + 4.0 * sum34, diff12 + 8.0 * diff34 + m5]
}

/// Transformed weights U_ξ = (G g Gᵀ)_ξ, laid out `[ξ][c_out][c_in]`.
pub fn transform_weights(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut u = vec![0f32; XI * c_out * c_in];
    for co in 0..c_out {
        for ci in 0..c_in {
            let g = &weight[(co * c_in + ci) * 9..][..9];
            // t = G g (6×3): G applied to each kernel column; then U = t Gᵀ: G to each row of t.
            let columns: [[f32; T]; 3] = std::array::from_fn(|j| g_1d([g[j], g[3 + j], g[6 + j]]));
            for i in 0..T {
                let row = g_1d([columns[0][i], columns[1][i], columns[2][i]]);
                for (j, &value) in row.iter().enumerate() {
                    u[((i * T + j) * c_out + co) * c_in + ci] = value;
                }
            }
        }
    }
    u
}

/// Bytes of transformed input and output per block of tiles (per thread).
const BLOCK_BYTES: usize = 4 << 20;

/// `out[co] = relu?(bias[co] + conv3x3(input)[co])` for one image `[c_in][h][w]` → `[c_out][h][w]`,
/// with `u` from [`transform_weights`]. With `input_mask`, input entries whose mask entry is not
/// positive count as zero (the ReLU backward, fused into the input transform).
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(
    u: &[f32],
    bias: Option<&[f32]>,
    c_out: usize,
    c_in: usize,
    input: &[f32],
    input_mask: Option<&[f32]>,
    h: usize,
    w: usize,
    relu: bool,
    out: &mut [std::mem::MaybeUninit<f32>],
) {
    assert_eq!(u.len(), XI * c_out * c_in, "winograd: transformed weights of the wrong size");
    assert!(input.len() >= c_in * h * w && out.len() >= c_out * h * w, "winograd: buffers of the wrong size");
    assert!(input_mask.is_none_or(|m| m.len() >= c_in * h * w), "winograd: mask of the wrong size");
    let (tiles_h, tiles_w) = (h.div_ceil(M), w.div_ceil(M));
    let tiles = tiles_h * tiles_w;
    let threads = rayon::current_num_threads();
    let mut block = BLOCK_BYTES / (XI * 4 * (c_in + c_out));
    if c_in.min(c_out) >= 512 {
        // Deep layers have few tiles and big weights, which gemm packs again for every block:
        // one block per thread.
        block = block.max(tiles.div_ceil(threads));
    }
    let block = block.clamp(32, tiles.max(32));
    let blocks: Vec<(usize, usize)> = (0..tiles).step_by(block).map(|t0| (t0, (t0 + block).min(tiles))).collect();
    // Few blocks (deep layers, small images): let gemm split each product across the threads.
    let gemm_parallelism =
        if blocks.len() < threads { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let conv = Conv {
        u, bias, c_out, c_in, input, input_mask, h, w, tiles_w, relu, gemm_parallelism,
        out: SharedMut::new(out),
    };
    blocks.par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(v, m): &mut (Vec<f32>, Vec<f32>), &(t0, t1)| conv.block_widest_simd(t0, t1, v, m),
    );
}

/// One convolution's operands, shared by the tasks that compute its blocks of tiles.
struct Conv<'a> {
    u: &'a [f32],
    bias: Option<&'a [f32]>,
    c_out: usize,
    c_in: usize,
    input: &'a [f32],
    input_mask: Option<&'a [f32]>,
    h: usize,
    w: usize,
    tiles_w: usize,
    relu: bool,
    gemm_parallelism: gemm::Parallelism,
    out: SharedMut,
}

impl Conv<'_> {
    /// Tiles t0..t1: input transform into `v`, the 36 products into `m`, output transform.
    #[inline(always)]
    fn block(&self, t0: usize, t1: usize, v: &mut Vec<f32>, m: &mut Vec<f32>) {
        let (c_in, c_out, nt) = (self.c_in, self.c_out, t1 - t0);
        // Every entry is written before it is read: grow the buffers, never clear them.
        grow(v, XI * c_in * nt);
        grow(m, XI * c_out * nt);
        self.input_transform(t0, t1, v);
        for xi in 0..XI {
            // SAFETY: M_ξ (c_out × nt, row stride nt) is written at xi·c_out·nt in `m`, which
            // `grow` made at least XI·c_out·nt long and which is this task's own buffer; U_ξ
            // (c_out × c_in, row stride c_in) is read at xi·c_out·c_in in `u`, of length
            // XI·c_out·c_in (asserted in `conv3x3`); V_ξ (c_in × nt) at xi·c_in·nt in `v`, at least
            // XI·c_in·nt long. `m` is borrowed mutably, so it overlaps neither operand.
            unsafe {
                gemm::gemm(
                    c_out, nt, c_in,
                    m.as_mut_ptr().add(xi * c_out * nt), 1, nt as isize, false,
                    self.u.as_ptr().add(xi * c_out * c_in), 1, c_in as isize,
                    v.as_ptr().add(xi * c_in * nt), 1, nt as isize,
                    0.0, 1.0, false, false, false,
                    self.gemm_parallelism,
                );
            }
        }
        // SAFETY: `self.out` was made in `conv3x3` from an output of at least c_out·h·w entries
        // (asserted), which outlives this task (`for_each` joins the tasks first).
        // `output_transform` writes only the in-image pixels of tiles t0..t1, and the blocks'
        // tile ranges are disjoint, so no other task writes them. `m` holds this block's M_ξ.
        unsafe { self.output_transform(m, t0, t1) };
    }

    /// [`Self::block`] compiled for the widest vector unit the CPU has: the transforms are
    /// plain loops that LLVM vectorises, and the crate itself targets baseline x86-64 (SSE2).
    /// (`gemm` chooses its own kernels at run time.)
    fn block_widest_simd(&self, t0: usize, t1: usize, v: &mut Vec<f32>, m: &mut Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        {
            /// [`Conv::block`] compiled with AVX-512 enabled.
            ///
            /// # Safety
            /// The CPU must have AVX-512 F, VL, BW and DQ.
            #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
            unsafe fn avx512(conv: &Conv, t0: usize, t1: usize, v: &mut Vec<f32>, m: &mut Vec<f32>) {
                conv.block(t0, t1, v, m)
            }
            /// [`Conv::block`] compiled with AVX2 and FMA enabled.
            ///
            /// # Safety
            /// The CPU must have AVX2 and FMA.
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(conv: &Conv, t0: usize, t1: usize, v: &mut Vec<f32>, m: &mut Vec<f32>) {
                conv.block(t0, t1, v, m)
            }
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512dq")
            {
                // SAFETY: `avx512` is unsafe only for its target features, all four of which
                // the CPU has (detected just above); `block` itself is safe to call.
                return unsafe { avx512(self, t0, t1, v, m) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above, for AVX2 and FMA (both detected just above).
                return unsafe { avx2(self, t0, t1, v, m) };
            }
        }
        self.block(t0, t1, v, m)
    }
}

fn grow(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

/// The rows of tiles that tiles t0..t1 (numbered row by row) touch, each as
/// (tile row, first tile column, end tile column, index of its first tile within the block).
fn tile_rows(tiles_w: usize, t0: usize, t1: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (t0 / tiles_w..t1.div_ceil(tiles_w)).map(move |ty| {
        let first = t0.max(ty * tiles_w);
        let end = t1.min((ty + 1) * tiles_w);
        (ty, first - ty * tiles_w, end - ty * tiles_w, first - t0)
    })
}

impl Conv<'_> {
    /// V_ξ[ci][t] = (Bᵀ d B)_ξ for the 6×6 input patch d of tile t (zero outside the image).
    /// Computed a row of tiles at a time, in two vectorisable passes: first Bᵀ d for the whole
    /// width (the six input rows combined column by column), stored split by column phase
    /// (padded column M·k + phase at `[phase][k]`) so that tile k's six columns are entry k or
    /// k + 1 of the four phases; then · B for every tile, writing each ξ's row of tiles contiguously.
    #[inline(always)]
    fn input_transform(&self, t0: usize, t1: usize, v: &mut [f32]) {
        let &Conv { input, input_mask: mask, c_in, h, w, tiles_w, .. } = self;
        let nt = t1 - t0;
        let kw = tiles_w + 1; // entries per phase
        let padded = M * kw; // padded column p holds image column p − 1
        let mut rows = vec![0f32; T * padded];
        let mut transformed = vec![0f32; T * padded];
        let mut phases = vec![0f32; T * M * kw]; // [i][phase][k] = (Bᵀ d)_i at padded column M·k + phase
        for ci in 0..c_in {
            let plane = &input[ci * h * w..][..h * w];
            for (ty, tx0, tx1, offset) in tile_rows(tiles_w, t0, t1) {
                for (i, row) in rows.chunks_exact_mut(padded).enumerate() {
                    let y = (M * ty + i) as isize - 1;
                    row.fill(0.0);
                    if y >= 0 && (y as usize) < h {
                        let line = &plane[y as usize * w..][..w];
                        match mask {
                            None => row[1..=w].copy_from_slice(line),
                            Some(mask) => {
                                let keep = &mask[ci * h * w + y as usize * w..][..w];
                                for ((r, &x), &k) in row[1..=w].iter_mut().zip(line).zip(keep) {
                                    *r = if k > 0.0 { x } else { 0.0 };
                                }
                            }
                        }
                    }
                }
                // Bᵀ d, whole rows at a time: column p of the six rows is d's column, ..
                for p in 0..padded {
                    // SAFETY: `rows` and `transformed` are T·padded long, and i < T, p < padded,
                    // so every index i·padded + p is in bounds.
                    unsafe {
                        let at = |i: usize| *rows.get_unchecked(i * padded + p);
                        let column = bt_1d([at(0), at(1), at(2), at(3), at(4), at(5)]);
                        for (i, &value) in column.iter().enumerate() {
                            *transformed.get_unchecked_mut(i * padded + p) = value;
                        }
                    }
                }
                // .. split by phase: padded column M·k + phase → phases[i][phase][k].
                for (i, row) in transformed.chunks_exact(padded).enumerate() {
                    for (k, quad) in row.chunks_exact(M).enumerate() {
                        for (phase, &value) in quad.iter().enumerate() {
                            // SAFETY: `phases` is T·M·kw long, and i < T (rows of `transformed`),
                            // phase < M (entries of a quad), k < padded/M = kw (quads of a row),
                            // so (i·M + phase)·kw + k < T·M·kw.
                            unsafe { *phases.get_unchecked_mut((i * M + phase) * kw + k) = value };
                        }
                    }
                }
                // · B per tile: tile k's six columns are entries k and k + 1 of the phases.
                let count = tx1 - tx0;
                for i in 0..T {
                    let q = &phases[i * M * kw..][..M * kw];
                    let base = (i * T * c_in + ci) * nt + offset;
                    assert!(tx0 + count < kw && v.len() >= base + (T - 1) * c_in * nt + count);
                    for k in tx0..tx0 + count {
                        // SAFETY: `q` is M·kw long and reads phase·kw + k and phase·kw + k + 1 with
                        // phase < M and k + 1 ≤ tx0 + count < kw (asserted). The six writes go to
                        // base + j·c_in·nt + (k − tx0) with j < T and k − tx0 < count, at most
                        // base + (T−1)·c_in·nt + count − 1 < v.len() (asserted).
                        unsafe {
                            let at = |phase: usize, k: usize| *q.get_unchecked(phase * kw + k);
                            let row = bt_1d([at(0, k), at(1, k), at(2, k), at(3, k), at(0, k + 1), at(1, k + 1)]);
                            for (j, &value) in row.iter().enumerate() {
                                *v.get_unchecked_mut(base + j * c_in * nt + k - tx0) = value;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Conv<'_> {
    /// Y = Aᵀ M A (+ bias, ReLU) written into the output pixels of tiles t0..t1 that lie inside
    /// the image; a row of tiles at a time: first Aᵀ M for all the row's tiles (vectorised over the
    /// tiles), then · A per tile, four neighbouring output pixels at a time.
    ///
    /// # Safety
    /// `self.out` must point to a live buffer of at least c_out·h·w f32 that no one else reads or
    /// writes at the pixels of tiles t0..t1 while this runs (see [`SharedMut`]); `m` must hold
    /// the block's products M_ξ as [`Self::block`] lays them out.
    #[inline(always)]
    unsafe fn output_transform(&self, m: &[f32], t0: usize, t1: usize) {
        let &Conv { bias, c_out, h, w, tiles_w, relu, out, .. } = self;
        let out = out.get();
        let nt = t1 - t0;
        let mut s = vec![0f32; M * T * tiles_w]; // [i][j][k] = (Aᵀ M)[i][j] of tile k
        for co in 0..c_out {
            let b = bias.map_or(0.0, |b| b[co]);
            let plane = out.add(co * h * w);
            for (ty, tx0, tx1, offset) in tile_rows(tiles_w, t0, t1) {
                let count = tx1 - tx0;
                assert!(m.len() >= ((T * T - 1) * c_out + co) * nt + offset + count && count <= tiles_w);
                for j in 0..T {
                    for k in 0..count {
                        // SAFETY: the largest entry of m read (l = j = T−1, k = count−1) is
                        // ((T·T−1)·c_out + co)·nt + offset + count − 1 < m.len() (asserted); the
                        // writes go to (i·T + j)·tiles_w + k < M·T·tiles_w = s.len(), as i < M,
                        // j < T and k < count ≤ tiles_w (asserted).
                        unsafe {
                            let at = |l: usize| *m.get_unchecked(((l * T + j) * c_out + co) * nt + offset + k);
                            let column = at_1d([at(0), at(1), at(2), at(3), at(4), at(5)]);
                            for (i, &value) in column.iter().enumerate() {
                                *s.get_unchecked_mut((i * T + j) * tiles_w + k) = value;
                            }
                        }
                    }
                }
                // Tiles 0..full lie wholly inside the image's width.
                let full = (w / M).saturating_sub(tx0).min(count);
                for i in 0..M {
                    let y = M * ty + i;
                    if y >= h {
                        break;
                    }
                    let line = plane.add(y * w + M * tx0);
                    let si = &s[i * T * tiles_w..][..T * tiles_w];
                    let tile = |k: usize| {
                        // SAFETY: `si` is T·tiles_w long, j < T and k < count ≤ tiles_w.
                        let at = |j: usize| unsafe { *si.get_unchecked(j * tiles_w + k) };
                        at_1d([at(0), at(1), at(2), at(3), at(4), at(5)]).map(|v| if relu { (v + b).max(0.0) } else { v + b })
                    };
                    // The writes below (under this fn's contract): pixel (y, M·(tx0 + k) + x) of
                    // channel co, with y < h, and M·(tx0 + k) + x < w (whole tiles below `full`,
                    // the first `inside` pixels of the others): inside the image, in tile tx0 + k
                    // of row ty, which is one of tiles t0..t1.
                    for k in 0..full {
                        for (x, value) in tile(k).into_iter().enumerate() {
                            *line.add(M * k + x) = value;
                        }
                    }
                    for k in full..count {
                        let inside = w - M * (tx0 + k);
                        for (x, value) in tile(k).into_iter().take(inside).enumerate() {
                            *line.add(M * k + x) = value;
                        }
                    }
                }
            }
        }
    }
}
