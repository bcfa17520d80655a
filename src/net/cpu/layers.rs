//! VGG's layers as candle custom operations: 3×3 convolution (+ bias + ReLU), 2×2 max and
//! average pooling.
//!
//! Why custom ops rather than `Tensor::conv2d` and friends:
//! - the network's weights are constants: we only ever need the gradient with respect to the
//!   *input* image, and candle's own conv2d backward always computes the weight gradient too;
//! - candle 0.11.1's CPU backward of `max_pool2d` scales the gradient at the maximum by 1/4
//!   (it multiplies by the average-pooled mask where it should divide), and its `avg_pool2d`
//!   backward maps rows wrongly when a side is odd (it upsamples with nearest neighbour
//!   instead of scattering to the pooled window);
//! - one place to make the CPU path fast: weights packed once, Winograd F(4×4,3×3) for the wide
//!   layers and row-tiled im2col + `gemm` for the narrow ones, bias and ReLU fused.
//!
//! Every op works on contiguous `f32` tensors of shape `(N, C, H, W)` on the CPU.

use std::mem::MaybeUninit;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::net::cpu::bf16;
use crate::net::cpu::conv_bf16::{self, Bf16Weights};
use crate::net::cpu::shared::SharedMut;
use crate::net::cpu::winograd;
use crate::net::precision::Precision;
use crate::net::profile;

/// Bytes of im2col buffer per row tile: small enough to stay in cache, large enough for `gemm`.
const IM2COL_TILE_BYTES: usize = 2 << 20;

/// How a 3×3 convolution is computed on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Row-tiled im2col + one `gemm` per tile: any channel count.
    Im2col,
    /// Winograd F(4×4, 3×3): 4× fewer multiplications; for layers with many channels.
    Winograd,
    /// Direct convolution with bf16 products and f32 sums on a [`bf16`] kernel
    /// ([`conv_bf16`]); where the CPU has none, this packs the f32 algorithm for the shape.
    DirectBf16,
}

/// Weights of one 3×3, stride-1, padding-1 convolution, packed once at load time:
/// `weight` is `[c_out][c_in·9]` (OIHW flattened, the im2col product's left operand),
/// `bias` is `[c_out]`, and `winograd` or `bf16` the weights packed for those algorithms.
#[derive(Debug, Clone)]
pub struct Conv3x3Weights {
    pub c_out: usize,
    pub c_in: usize,
    pub weight: Arc<Vec<f32>>,
    pub bias: Option<Arc<Vec<f32>>>,
    winograd: Option<Arc<Vec<f32>>>,
    bf16: Option<Arc<Bf16Weights>>,
    /// The bf16 kernel of the input-gradient convolution when only that one runs in bf16.
    bf16_input_gradient: Option<bf16::Kernel>,
    /// Images smaller than this run im2col even when packed for Winograd (see
    /// [`WINOGRAD_MIN_PIXELS`]; 0 when the algorithm was forced).
    winograd_min_pixels: usize,
}

/// Below this many pixels per image a layer packed for Winograd runs im2col: its transformed
/// weights (36·c_in·c_out, 4× the originals) are streamed once per call, and at small sizes
/// that costs more than the multiplications it saves. Measured (`BENCH_MODE=layers`, 2 cores,
/// forward + input gradient, im2col vs Winograd): 512→512 at 24×13 15.6 vs 16.5 ms and at 8×4
/// 2.7 vs 18.1 ms, 256→256 at 32×18 7.0 vs 8.1 ms, 128→256 at 32×18 4.7 vs 11.8 ms; but
/// 512→512 at 48×27 50.8 vs 25.8 ms and 128→128 at 64×36 7.9 vs 5.3 ms.
const WINOGRAD_MIN_PIXELS: usize = 1024;

/// Below this many input or output channels Winograd's transforms cost more than its 4× fewer
/// multiplications save (conv1_1 has 3 inputs). Measured with `BENCH_MODE=layers` at 384×216
/// on 2 cores, forward + input gradient, im2col vs Winograd: 3→64 27.5 vs 27.9 ms, 64→64 101
/// vs 52 ms, 128→128 75 vs 39 ms, 256→256 68 vs 36 ms, 512→512 63 vs 27 ms.
const WINOGRAD_MIN_CHANNELS: usize = 16;

impl Conv3x3Weights {
    /// Packs the weights, choosing the fastest algorithm for the layer's shape and the
    /// (effective) precision: Winograd for the wide layers, its products in bf16 at
    /// [`Precision::Bf16`]. (The environment variable `STYLIZE_VIDEO_CONV=im2col` forces im2col
    /// everywhere, for comparisons.)
    pub fn new(c_out: usize, c_in: usize, weight: Vec<f32>, bias: Option<Vec<f32>>, precision: Precision) -> Self {
        let forced_im2col = std::env::var("STYLIZE_VIDEO_CONV").is_ok_and(|v| v == "im2col");
        let bf16 = precision == Precision::Bf16 && !forced_im2col;
        let algorithm = match (c_in.min(c_out) >= WINOGRAD_MIN_CHANNELS && !forced_im2col, bf16) {
            (_, true) if c_in >= WINOGRAD_MIN_CHANNELS => ConvAlgorithm::DirectBf16,
            (false, _) => ConvAlgorithm::Im2col,
            (true, _) => ConvAlgorithm::Winograd,
        };
        let mut weights = Self::with_algorithm(c_out, c_in, weight, bias, algorithm);
        weights.winograd_min_pixels = if forced_im2col { usize::MAX } else { WINOGRAD_MIN_PIXELS };
        if bf16 && weights.bf16.is_none() {
            // conv1_1 (3 inputs): the forward stays f32, since rounding the image's pixel values
            // to bf16 doubled the reference-loss error (0.26% to 0.65%) and, with its inputs
            // padded to 32 channels, saved no time; its input gradient (3 outputs, padded to 16)
            // runs in bf16 at half the time of im2col.
            weights.bf16_input_gradient = bf16::Kernel::detect();
        }
        weights
    }

    /// Packs the weights for a given algorithm, used at every size (tests and benchmarks
    /// compare them).
    pub fn with_algorithm(c_out: usize, c_in: usize, weight: Vec<f32>, bias: Option<Vec<f32>>, algorithm: ConvAlgorithm) -> Self {
        assert_eq!(weight.len(), c_out * c_in * 9, "conv3x3 weights must be c_out × c_in × 3 × 3");
        let kernel = bf16::Kernel::detect();
        let algorithm = match (algorithm, kernel) {
            (ConvAlgorithm::DirectBf16, Some(kernel)) => {
                return Self::direct_bf16_on(c_out, c_in, weight, bias, kernel);
            }
            (ConvAlgorithm::DirectBf16, None) if c_in.min(c_out) >= WINOGRAD_MIN_CHANNELS => ConvAlgorithm::Winograd,
            (ConvAlgorithm::DirectBf16, None) => ConvAlgorithm::Im2col,
            (other, _) => other,
        };
        let winograd = (algorithm == ConvAlgorithm::Winograd).then(|| Arc::new(winograd::transform_weights(&weight, c_out, c_in)));
        Self {
            c_out,
            c_in,
            weight: Arc::new(weight),
            bias: bias.map(Arc::new),
            winograd,
            bf16: None,
            bf16_input_gradient: None,
            winograd_min_pixels: 0,
        }
    }

    /// The direct bf16 convolution on a given kernel (tests and benchmarks compare the kernels;
    /// [`Self::new`] uses the detected one). The kernel must be available and the shape suit it.
    pub fn direct_bf16_on(c_out: usize, c_in: usize, weight: Vec<f32>, bias: Option<Vec<f32>>, kernel: bf16::Kernel) -> Self {
        assert!(kernel.available(), "the {kernel} bf16 kernel is not available on this CPU");
        let packed = Arc::new(Bf16Weights::new(&weight, c_out, c_in, kernel));
        Self {
            c_out,
            c_in,
            weight: Arc::new(weight),
            bias: bias.map(Arc::new),
            winograd: None,
            bf16: Some(packed),
            bf16_input_gradient: None,
            winograd_min_pixels: 0,
        }
    }

    /// The algorithm the weights were packed for (bf16 only where a kernel took it).
    pub fn algorithm(&self) -> ConvAlgorithm {
        match (&self.bf16, &self.winograd) {
            (Some(_), _) => ConvAlgorithm::DirectBf16,
            (None, Some(_)) => ConvAlgorithm::Winograd,
            (None, None) => ConvAlgorithm::Im2col,
        }
    }

    /// The weights of the convolution whose output is the input gradient of this one:
    /// `W'[ci][co][kh][kw] = W[co][ci][2-kh][2-kw]`, no bias.
    pub fn input_gradient_weights(&self) -> Conv3x3Weights {
        let (c_out, c_in) = (self.c_out, self.c_in);
        let mut flipped = vec![0f32; c_out * c_in * 9];
        for co in 0..c_out {
            for ci in 0..c_in {
                for k in 0..9 {
                    flipped[(ci * c_out + co) * 9 + (8 - k)] = self.weight[(co * c_in + ci) * 9 + k];
                }
            }
        }
        match self.bf16.as_ref().map(|packed| packed.kernel).or(self.bf16_input_gradient) {
            Some(kernel) => Conv3x3Weights::direct_bf16_on(c_in, c_out, flipped, None, kernel),
            None => {
                // conv1_1's input gradient (64 → 3 channels): im2col would copy 9 × 64 rows per
                // pixel for a 3-row product; Winograd transforms the 64 channels once
                // (measured at 384×216: 11 → 8 ms per iteration).
                let forced = self.winograd_min_pixels == 0;
                let algorithm = match self.algorithm() {
                    ConvAlgorithm::Im2col if !forced && c_out >= WINOGRAD_MIN_CHANNELS => ConvAlgorithm::Winograd,
                    other => other,
                };
                let mut weights = Conv3x3Weights::with_algorithm(c_in, c_out, flipped, None, algorithm);
                weights.winograd_min_pixels = self.winograd_min_pixels;
                weights
            }
        }
    }
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("stylize-video layers need contiguous tensors"),
    }
}

/// `out[co][y][x] = bias[co] + Σ_{ci,kh,kw} W[co][ci][kh][kw] · in[ci][y+kh-1][x+kw-1]`
/// for one image, optionally followed by ReLU, computed tile of rows by tile of rows
/// (im2col into a cache-sized buffer, then one `gemm` per tile).
fn conv3x3_image(w: &Conv3x3Weights, input: &[f32], h: usize, wd: usize, relu: bool, out: &mut [MaybeUninit<f32>]) {
    assert!(out.len() >= w.c_out * h * wd, "conv3x3: output of the wrong size");
    let (c_in, c_out) = (w.c_in, w.c_out);
    let k = c_in * 9;
    let rows_per_tile = (IM2COL_TILE_BYTES / (k * wd * 4)).clamp(1, h);
    let tiles: Vec<(usize, usize)> =
        (0..h).step_by(rows_per_tile).map(|r0| (r0, (r0 + rows_per_tile).min(h))).collect();
    let out_ptr = SharedMut::new(out);
    tiles.par_iter().for_each_init(Vec::new, |cols: &mut Vec<f32>, &(r0, r1)| {
        let n = (r1 - r0) * wd;
        cols.clear();
        cols.resize(k * n, 0.0);
        for ci in 0..c_in {
            let plane = &input[ci * h * wd..(ci + 1) * h * wd];
            for kh in 0..3 {
                for kw in 0..3 {
                    let row = &mut cols[(ci * 9 + kh * 3 + kw) * n..][..n];
                    for y in r0..r1 {
                        let dst = &mut row[(y - r0) * wd..][..wd];
                        let sy = y as isize + kh as isize - 1;
                        if sy < 0 || sy >= h as isize {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[sy as usize * wd..][..wd];
                        match kw {
                            0 => {
                                dst[0] = 0.0;
                                dst[1..].copy_from_slice(&src[..wd - 1]);
                            }
                            1 => dst.copy_from_slice(src),
                            _ => {
                                dst[..wd - 1].copy_from_slice(&src[1..]);
                                dst[wd - 1] = 0.0;
                            }
                        }
                    }
                }
            }
        }
        // SAFETY: `out` holds c_out·h·wd entries (asserted) and outlives the tasks (joined by
        // `for_each`). gemm writes the c_out × n block at dst with row stride h·wd, i.e. entries
        // [co·h·wd + r0·wd, co·h·wd + r1·wd) of each channel co: inside `out`, and disjoint from
        // every other tile's (the tiles' row ranges do not overlap). It reads the c_out × k
        // weights (row stride k) and the k × n columns (row stride n), both of exactly that size.
        // The bias/ReLU pass then rewrites exactly the n entries per channel gemm just wrote.
        unsafe {
            let dst = out_ptr.get().add(r0 * wd);
            gemm::gemm(
                c_out, n, k,
                dst, 1, (h * wd) as isize, false,
                w.weight.as_ptr(), 1, k as isize,
                cols.as_ptr(), 1, n as isize,
                0.0, 1.0, false, false, false,
                gemm::Parallelism::None,
            );
            for co in 0..c_out {
                let tile = std::slice::from_raw_parts_mut(dst.add(co * h * wd), n);
                let b = w.bias.as_ref().map_or(0.0, |b| b[co]);
                if relu {
                    tile.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
                } else if b != 0.0 {
                    tile.iter_mut().for_each(|v| *v += b);
                }
            }
        }
    });
}

/// Convolves a batch; with `input_mask`, input entries whose mask entry is not positive count
/// as zero (how the ReLU backward enters the input-gradient convolution).
fn conv3x3_batch(
    w: &Conv3x3Weights,
    input: &[f32],
    input_mask: Option<&[f32]>,
    shape: &Shape,
    relu: bool,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (n, c, h, wd) = shape.dims4()?;
    if c != w.c_in {
        candle_core::bail!("conv3x3: input has {c} channels, weights expect {}", w.c_in);
    }
    if n == 1 {
        return Ok((CpuStorage::F32(conv3x3_image_any(w, input, input_mask, h, wd, relu)), Shape::from((1, w.c_out, h, wd))));
    }
    let out: Vec<f32> = (0..n)
        .flat_map(|b| {
            let image = &input[b * c * h * wd..(b + 1) * c * h * wd];
            let mask = input_mask.map(|m| &m[b * c * h * wd..(b + 1) * c * h * wd]);
            conv3x3_image_any(w, image, mask, h, wd, relu)
        })
        .collect();
    Ok((CpuStorage::F32(out), Shape::from((n, w.c_out, h, wd))))
}

/// One image through whichever algorithm the weights were packed for; with `input_mask`,
/// input entries whose mask entry is not positive count as zero (then this is a layer's input
/// gradient, and is profiled as such, under the forward layer's channels).
fn conv3x3_image_any(w: &Conv3x3Weights, image: &[f32], mask: Option<&[f32]>, h: usize, wd: usize, relu: bool) -> Vec<f32> {
    let label = || match mask {
        None => format!("conv {:>3}->{:<3} {:?} forward", w.c_in, w.c_out, w.algorithm()),
        Some(_) => format!("conv {:>3}->{:<3} {:?} input gradient", w.c_out, w.c_in, w.algorithm()),
    };
    profile::time(label, || conv3x3_image_unprofiled(w, image, mask, h, wd, relu))
}

fn conv3x3_image_unprofiled(w: &Conv3x3Weights, image: &[f32], mask: Option<&[f32]>, h: usize, wd: usize, relu: bool) -> Vec<f32> {
    assert!(image.len() == w.c_in * h * wd && mask.is_none_or(|m| m.len() == image.len()), "conv3x3: input of the wrong size");
    // Every algorithm writes every output entry: no zero-filling.
    let total = w.c_out * h * wd;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    let result = &mut out.spare_capacity_mut()[..total];
    let bias = w.bias.as_deref().map(|b| &b[..]);
    // Winograd only where the image is large enough to pay for streaming its transformed
    // weights, 4× the originals (see WINOGRAD_MIN_PIXELS); im2col below that.
    let winograd = w.winograd.as_ref().filter(|_| h * wd >= w.winograd_min_pixels);
    match (&w.bf16, winograd, mask) {
        (Some(packed), _, mask) => conv_bf16::conv3x3(packed, bias, image, mask, h, wd, relu, result),
        (None, Some(u), mask) => winograd::conv3x3(u, bias, w.c_out, w.c_in, image, mask, h, wd, relu, result),
        (None, None, None) => conv3x3_image(w, image, h, wd, relu, result),
        (None, None, Some(mask)) => {
            let masked: Vec<f32> = image.par_iter().zip(mask.par_iter()).map(|(&g, &k)| if k > 0.0 { g } else { 0.0 }).collect();
            conv3x3_image(w, &masked, h, wd, relu, result)
        }
    }
    // SAFETY: the capacity is `total`, and each algorithm above initialised all `total`
    // entries: im2col's tiles cover rows 0..h of every channel, Winograd's output transform
    // writes every in-image pixel of every tile of every channel, and the bf16 convolution's
    // tasks cover every (channel < c_out, row, column).
    unsafe { out.set_len(total) };
    out
}

/// `relu(conv3x3(x) + bias)` whose backward gives the input gradient only.
#[derive(Debug, Clone)]
pub struct Conv3x3Relu {
    pub weights: Conv3x3Weights,
    /// Precomputed weights of the backward convolution.
    pub input_gradient: Conv3x3Weights,
}

impl Conv3x3Relu {
    pub fn new(weights: Conv3x3Weights) -> Self {
        let input_gradient = weights.input_gradient_weights();
        Self { weights, input_gradient }
    }

    /// relu(conv3x3(x) + bias) of one image `[c_in][h][w]` → `[c_out][h][w]`.
    pub fn forward(&self, input: &[f32], h: usize, w: usize) -> Vec<f32> {
        conv3x3_image_any(&self.weights, input, None, h, w, true)
    }

    /// The input gradient `[c_in][h][w]` of one image, given the gradient `grad` with respect
    /// to the output and the output itself (the ReLU's mask).
    pub fn input_gradient(&self, grad: &[f32], output: &[f32], h: usize, w: usize) -> Vec<f32> {
        conv3x3_image_any(&self.input_gradient, grad, Some(output), h, w, false)
    }
}

impl CustomOp1 for Conv3x3Relu {
    fn name(&self) -> &'static str {
        "conv3x3-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        conv3x3_batch(&self.weights, contiguous_f32(storage, layout)?, None, layout.shape(), true)
    }


    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad_res = grad_res.contiguous()?;
        let res = res.contiguous()?;
        let grad = grad_res.apply_op2_no_bwd(&res, &ReluConv3x3InputGrad(self.input_gradient.clone()))?;
        Ok(Some(grad))
    }
}

/// Backward of [`Conv3x3Relu`]: `conv3x3(grad ⊙ [res > 0], W')` with the flipped weights W'.
struct ReluConv3x3InputGrad(Conv3x3Weights);

impl CustomOp2 for ReluConv3x3InputGrad {
    fn name(&self) -> &'static str {
        "conv3x3-relu-input-grad"
    }

    fn cpu_fwd(
        &self,
        grad: &CpuStorage,
        grad_layout: &Layout,
        res: &CpuStorage,
        res_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let grad_s = contiguous_f32(grad, grad_layout)?;
        let res_s = contiguous_f32(res, res_layout)?;
        conv3x3_batch(&self.0, grad_s, Some(res_s), grad_layout.shape(), false)
    }
}

/// 2×2, stride-2 pooling (output `floor(H/2) × floor(W/2)`, as in Caffe/PyTorch by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool2x2 {
    Max,
    Avg,
}

impl Pool2x2 {
    fn label(&self) -> &'static str {
        match self {
            Pool2x2::Max => "max-pool-2x2",
            Pool2x2::Avg => "avg-pool-2x2",
        }
    }

    /// Pools `planes` planes of `h × w` → `floor(h/2) × floor(w/2)`.
    pub fn forward(&self, input: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
        profile::time(|| format!("{} forward", self.label()), || {
            assert_eq!(input.len(), planes * h * w, "pool: input of the wrong size");
            let (oh, ow) = (h / 2, w / 2);
            let total = planes * oh * ow;
            let mut out: Vec<f32> = Vec::with_capacity(total);
            if oh > 0 && ow > 0 {
                let kind = *self;
                out.spare_capacity_mut()[..total].par_chunks_mut(oh * ow).zip(input.par_chunks(h * w)).for_each(|(o, i)| {
                    widest_simd(|| {
                        for (y, o_row) in o.chunks_exact_mut(ow).enumerate() {
                            let r0 = &i[2 * y * w..][..2 * ow];
                            let r1 = &i[(2 * y + 1) * w..][..2 * ow];
                            for ((o, p0), p1) in o_row.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                                o.write(match kind {
                                    Pool2x2::Max => p0[0].max(p0[1]).max(p1[0].max(p1[1])),
                                    Pool2x2::Avg => 0.25 * ((p0[0] + p0[1]) + (p1[0] + p1[1])),
                                });
                            }
                        }
                    })
                });
            }
            // SAFETY: the capacity is `total`; the planes' chunks of oh·ow cover all `total`
            // entries and every (y, x) of each is written above (with oh or ow zero, total is 0).
            unsafe { out.set_len(total) };
            out
        })
    }

    /// The input gradient of [`Self::forward`] given its input and the gradient with respect to
    /// its output: max pooling routes each window's gradient to its (first) maximum, as PyTorch
    /// does; average pooling spreads it evenly, a quarter to each input. Inputs in a trailing
    /// odd row or column take part in no window and get zero.
    pub fn input_gradient(&self, input: &[f32], grad: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
        profile::time(|| format!("{} input gradient", self.label()), || {
            let (oh, ow) = (h / 2, w / 2);
            assert!(input.len() == planes * h * w && grad.len() == planes * oh * ow, "pool: gradient of the wrong size");
            let total = input.len();
            if oh == 0 || ow == 0 {
                return vec![0f32; total];
            }
            let mut out: Vec<f32> = Vec::with_capacity(total);
            let zero = MaybeUninit::new(0f32);
            let kind = *self;
            out.spare_capacity_mut()[..total].par_chunks_mut(h * w).zip(input.par_chunks(h * w)).zip(grad.par_chunks(oh * ow)).for_each(
                |((o, i), g)| {
                    widest_simd(|| {
                        if w % 2 == 1 || h % 2 == 1 {
                            o.fill(zero);
                        }
                        for (y, g_row) in g.chunks_exact(ow).enumerate() {
                            let (r0, r1) = (&i[2 * y * w..][..2 * ow], &i[(2 * y + 1) * w..][..2 * ow]);
                            let (o0, o1) = o[2 * y * w..].split_at_mut(w);
                            let (o0, o1) = (&mut o0[..2 * ow], &mut o1[..2 * ow]);
                            // Sixteen windows at a time with AVX-512, the rest one by one.
                            let done = if kind == Pool2x2::Max { max_pool_backward_avx512(r0, r1, g_row, o0, o1) } else { 0 };
                            let (r0, r1, o0, o1) = (&r0[2 * done..], &r1[2 * done..], &mut o0[2 * done..], &mut o1[2 * done..]);
                            let g_row = &g_row[done..];
                            let quads = r0.chunks_exact(2).zip(r1.chunks_exact(2)).zip(o0.chunks_exact_mut(2).zip(o1.chunks_exact_mut(2)));
                            for (((p0, p1), (q0, q1)), &gv) in quads.zip(g_row) {
                                match kind {
                                    Pool2x2::Max => {
                                        // The window's first maximum, in reading order.
                                        let m = p0[0].max(p0[1]).max(p1[0].max(p1[1]));
                                        let a = p0[0] == m;
                                        let b = !a && p0[1] == m;
                                        let c = !a && !b && p1[0] == m;
                                        let d = !a && !b && !c;
                                        q0[0].write(if a { gv } else { 0.0 });
                                        q0[1].write(if b { gv } else { 0.0 });
                                        q1[0].write(if c { gv } else { 0.0 });
                                        q1[1].write(if d { gv } else { 0.0 });
                                    }
                                    Pool2x2::Avg => {
                                        let quarter = MaybeUninit::new(0.25 * gv);
                                        q0.fill(quarter);
                                        q1.fill(quarter);
                                    }
                                }
                            }
                        }
                    })
                },
            );
            // SAFETY: the capacity is `total`. Every plane's chunk is initialised: each 2×2
            // window wrote its four inputs (the AVX-512 part its first `done` windows of a row,
            // the scalar loop the rest), and where h or w is odd the whole plane, trailing row and
            // column included, was zero-filled first.
            unsafe { out.set_len(total) };
            out
        })
    }
}

impl CustomOp1 for Pool2x2 {
    fn name(&self) -> &'static str {
        self.label()
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(storage, layout)?;
        let (n, c, h, w) = layout.shape().dims4()?;
        Ok((CpuStorage::F32(self.forward(input, n * c, h, w)), Shape::from((n, c, h / 2, w / 2))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = arg.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &Pool2x2InputGrad(*self))?;
        Ok(Some(grad))
    }
}

/// Max-pooling backward for one row of windows (input rows `r0`, `r1`, output gradient `g`,
/// input-gradient rows `o0`, `o1`), sixteen windows per step, where the CPU has AVX-512: each
/// window's gradient goes to its first maximum in reading order, zeros elsewhere. Returns how
/// many windows it did (a multiple of 16; 0 without AVX-512).
fn max_pool_backward_avx512(r0: &[f32], r1: &[f32], g: &[f32], o0: &mut [MaybeUninit<f32>], o1: &mut [MaybeUninit<f32>]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            let windows = g.len() / 16 * 16;
            assert!(r0.len() >= 2 * windows && r1.len() >= 2 * windows && o0.len() >= 2 * windows && o1.len() >= 2 * windows);
            // SAFETY: AVX-512F was detected just above. The function reads r0 and r1 at
            // [0, 2·windows) and g at [0, windows) and writes o0 and o1 at [0, 2·windows):
            // windows ≤ g.len() by construction and the other lengths are asserted. The outputs
            // are `&mut` borrows, so they overlap none of the inputs.
            unsafe { max_pool_backward_rows(r0.as_ptr(), r1.as_ptr(), g.as_ptr(), o0.as_mut_ptr() as *mut f32, o1.as_mut_ptr() as *mut f32, windows) };
            return windows;
        }
    }
    let _ = (r0, r1, g, o0, o1);
    0
}

/// The AVX-512 loop of [`max_pool_backward_avx512`], `windows` (a multiple of 16) windows.
///
/// # Safety
/// The CPU must have AVX-512F. `r0`, `r1`, `o0` and `o1` must be valid for `2·windows` f32
/// reads (`r0`, `r1`) or writes (`o0`, `o1`), `g` for `windows` reads, and the outputs must not
/// overlap the inputs or each other.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_pool_backward_rows(r0: *const f32, r1: *const f32, g: *const f32, o0: *mut f32, o1: *mut f32, windows: usize) {
    use std::arch::x86_64::*;
    // Lanes of the even (left) and odd (right) inputs of 16 windows from two vectors, and back.
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for k in (0..windows).step_by(16) {
        let (t0, t1) = (_mm512_loadu_ps(r0.add(2 * k)), _mm512_loadu_ps(r0.add(2 * k + 16)));
        let (b0, b1) = (_mm512_loadu_ps(r1.add(2 * k)), _mm512_loadu_ps(r1.add(2 * k + 16)));
        let (a, b) = (_mm512_permutex2var_ps(t0, even, t1), _mm512_permutex2var_ps(t0, odd, t1));
        let (c, d) = (_mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1));
        let m = _mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d));
        let gv = _mm512_loadu_ps(g.add(k));
        let is_a = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, m);
        let is_b = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(b, m) & !is_a;
        let is_c = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(c, m) & !is_a & !is_b;
        let is_d = !(is_a | is_b | is_c);
        let (ga, gb) = (_mm512_maskz_mov_ps(is_a, gv), _mm512_maskz_mov_ps(is_b, gv));
        let (gc, gd) = (_mm512_maskz_mov_ps(is_c, gv), _mm512_maskz_mov_ps(is_d, gv));
        _mm512_storeu_ps(o0.add(2 * k), _mm512_permutex2var_ps(ga, low, gb));
        _mm512_storeu_ps(o0.add(2 * k + 16), _mm512_permutex2var_ps(ga, high, gb));
        _mm512_storeu_ps(o1.add(2 * k), _mm512_permutex2var_ps(gc, low, gd));
        _mm512_storeu_ps(o1.add(2 * k + 16), _mm512_permutex2var_ps(gc, high, gd));
    }
}

/// Runs `f` compiled for AVX-512 where the CPU has it (the crate itself targets baseline
/// x86-64): for the plain loops of pooling, which LLVM vectorises.
#[inline(always)]
fn widest_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// `f()`, compiled with AVX-512 enabled.
        ///
        /// # Safety
        /// The CPU must have AVX-512 F, VL, BW and DQ.
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512dq")
        {
            // SAFETY: `avx512` is unsafe only because of its target features, and the CPU has
            // all four (detected at run time just above); `f` itself is safe code.
            return unsafe { avx512(f) };
        }
    }
    f()
}

/// Backward of [`Pool2x2`] ([`Pool2x2::input_gradient`]) as a candle op.
struct Pool2x2InputGrad(Pool2x2);

impl CustomOp2 for Pool2x2InputGrad {
    fn name(&self) -> &'static str {
        "pool-2x2-input-grad"
    }

    fn cpu_fwd(
        &self,
        arg: &CpuStorage,
        arg_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous_f32(arg, arg_layout)?;
        let grad = contiguous_f32(grad, grad_layout)?;
        let (n, c, h, w) = arg_layout.shape().dims4()?;
        Ok((CpuStorage::F32(self.0.input_gradient(input, grad, n * c, h, w)), arg_layout.shape().clone()))
    }
}

/// Gram matrix of one image's activations `(1, C, H, W)` → `(C, C)`: G = F Fᵀ with F the
/// activations as a C × HW matrix, one multithreaded `gemm`. Its backward is the single product
/// (∂J/∂G + ∂J/∂Gᵀ) F, where autograd through `matmul(F, Fᵀ)` would do two products and copy Fᵀ.
#[derive(Debug, Clone, Copy)]
pub struct Gram;

/// `dst (m × n, row-major) = lhs (m × k, strides lhs_rs/lhs_cs) · rhs (k × n, strides rhs_rs/rhs_cs)`
/// on all rayon threads.
#[allow(clippy::too_many_arguments)]
fn matmul_into(
    dst: &mut [MaybeUninit<f32>],
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || (m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len());
    assert!(n == 0 || k == 0 || (k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len());
    // SAFETY: gemm writes the m × n block at dst with row stride n (m·n ≤ dst.len(), asserted;
    // read_dst is false, so the uninitialised entries are never read) and reads the largest
    // offsets (m−1)·lhs_rs + (k−1)·lhs_cs of lhs and (k−1)·rhs_rs + (n−1)·rhs_cs of rhs, both
    // asserted in bounds. dst is a `&mut` borrow, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m, n, k,
            dst.as_mut_ptr() as *mut f32, 1, n as isize, false,
            lhs.as_ptr(), lhs_cs as isize, lhs_rs as isize,
            rhs.as_ptr(), rhs_cs as isize, rhs_rs as isize,
            0.0, 1.0, false, false, false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
}

impl Gram {
    /// G = F Fᵀ for activations F `[c][hw]`, `[c][c]`. Summed over chunks of positions in a
    /// fixed grouping (one group per thread, added in order), so the result does not depend on
    /// how the threads were scheduled: gemm alone parallelises over G's c × c entries, too few
    /// for the wide-and-short early layers.
    pub fn compute(a: &[f32], c: usize, hw: usize) -> Vec<f32> {
        profile::time(|| "gram forward".to_string(), || {
            assert_eq!(a.len(), c * hw, "gram: activations of the wrong size");
            let threads = rayon::current_num_threads();
            let chunk = hw.div_ceil(4 * threads).clamp(256, 2048);
            let chunks: Vec<(usize, usize)> = (0..hw).step_by(chunk).map(|p0| (p0, (p0 + chunk).min(hw))).collect();
            let per_group = chunks.len().div_ceil(threads).max(1);
            let partials: Vec<Vec<f32>> = chunks
                .par_chunks(per_group)
                .map(|group| {
                    let mut partial = vec![0f32; c * c];
                    for &(p0, p1) in group {
                        let k = p1 - p0;
                        let f = &a[p0..];
                        assert!((c - 1) * hw + k <= f.len());
                        // SAFETY: partial += F[:, p0..p1] · F[:, p0..p1]ᵀ (Fᵀ: swapped strides).
                        // Both operands read rows j < c of F from j·hw into `f`, k entries each:
                        // the last ends at (c−1)·hw + k ≤ f.len() (asserted). The c × c result
                        // (row stride c) is exactly `partial`, this task's own buffer, which the
                        // operands do not overlap.
                        unsafe {
                            gemm::gemm(
                                c, c, k,
                                partial.as_mut_ptr(), 1, c as isize, true,
                                f.as_ptr(), 1, hw as isize,
                                f.as_ptr(), hw as isize, 1,
                                1.0, 1.0, false, false, false,
                                gemm::Parallelism::None,
                            );
                        }
                    }
                    partial
                })
                .collect();
            let mut partials = partials.into_iter();
            let mut g = partials.next().unwrap_or_else(|| vec![0f32; c * c]);
            for partial in partials {
                g.iter_mut().zip(&partial).for_each(|(x, y)| *x += y);
            }
            g
        })
    }

    /// The gradient S · F `[c][hw]` for a symmetric `S = ∂J/∂G + ∂J/∂Gᵀ` `[c][c]`.
    pub fn input_gradient(s: &[f32], a: &[f32], c: usize, hw: usize) -> Vec<f32> {
        profile::time(|| "gram input gradient".to_string(), || {
            let mut grad: Vec<f32> = Vec::with_capacity(c * hw);
            matmul_into(&mut grad.spare_capacity_mut()[..c * hw], c, hw, c, s, (c, 1), a, (hw, 1));
            // SAFETY: the capacity is c·hw, and matmul_into (m = c, n = hw, not reading dst)
            // wrote all c·hw entries.
            unsafe { grad.set_len(c * hw) };
            grad
        })
    }
}

impl CustomOp1 for Gram {
    fn name(&self) -> &'static str {
        "gram"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = contiguous_f32(storage, layout)?;
        let (n, c, h, w) = layout.shape().dims4()?;
        if n != 1 {
            candle_core::bail!("gram: one image at a time, got a batch of {n}");
        }
        Ok((CpuStorage::F32(Gram::compute(a, c, h * w)), Shape::from((c, c))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let symmetric = (grad_res + grad_res.t()?)?.contiguous()?;
        Ok(Some(symmetric.apply_op2_no_bwd(&arg.contiguous()?, &GramInputGrad)?))
    }
}

/// Backward of [`Gram`] ([`Gram::input_gradient`]) as a candle op.
struct GramInputGrad;

impl CustomOp2 for GramInputGrad {
    fn name(&self) -> &'static str {
        "gram-input-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, s_layout: &Layout, a: &CpuStorage, a_layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = contiguous_f32(s, s_layout)?;
        let a = contiguous_f32(a, a_layout)?;
        let (_, c, h, w) = a_layout.shape().dims4()?;
        Ok((CpuStorage::F32(Gram::input_gradient(s, a, c, h * w)), a_layout.shape().clone()))
    }
}
