//! The VGG16 feature extractor: the 13 convolution layers of the ImageNet-trained network,
//! described as data (blocks of channels and layer names) and loaded through a `VarBuilder`
//! so that the names here are the names in `weights/vgg16-conv.safetensors`.
//!
//! It runs either on this crate's CPU kernels ([`crate::net::cpu::layers`]) or, on any device candle
//! supports (a CUDA GPU with the `cuda` feature), on candle's own ops: see [`crate::net::precision::Compute`].
//!
//! Input convention: an RGB image tensor `(1, 3, H, W)` holding pixel values 0..255 minus the
//! ImageNet mean ([`crate::net::input::IMAGENET_MEAN_RGB`]). The original (Caffe) weights expect BGR input; we
//! reverse conv1_1's input channels once at load time so the rest of the program stays RGB.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use crate::net::cpu::layers::{Conv3x3Relu, Conv3x3Weights, ConvAlgorithm, Pool2x2};
use crate::net::device::conv::DeviceConv;
use crate::net::precision::{Compute, Precision};

/// VGG16's convolution blocks: (number of 3×3 conv layers, output channels). A 2×2/2 pooling
/// follows every block but the last.
pub const VGG16_BLOCKS: [(usize, usize); 5] = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)];

/// Environment variable that points the tool at another weights file.
pub const WEIGHTS_ENV: &str = "STYLIZE_VIDEO_WEIGHTS";
/// Where the weights live in the source tree (fixed at build time, so `cargo install --path .`
/// keeps finding them as long as the clone stays where it was built).
pub const BUNDLED_WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/weights/vgg16-conv.safetensors");

/// The weights file to use: an explicit path, else `$STYLIZE_VIDEO_WEIGHTS`, else the file
/// beside the executable's source tree (`weights/vgg16-conv.safetensors`).
pub fn weights_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(WEIGHTS_ENV) {
        return PathBuf::from(p);
    }
    PathBuf::from(BUNDLED_WEIGHTS)
}

/// Pooling between VGG's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Max,
    Avg,
}

impl FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "max" => Ok(Pooling::Max),
            "avg" => Ok(Pooling::Avg),
            _ => Err(format!("unknown pooling '{s}' (expected max or avg)")),
        }
    }
}

/// A ReLU output of VGG16 that losses can tap: `relu{block}_{conv}`, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerName {
    pub block: usize,
    pub conv: usize,
}

impl LayerName {
    /// Position in the sequence of the 13 conv layers (0-based): how deep the network must run.
    pub fn depth(&self) -> usize {
        VGG16_BLOCKS[..self.block - 1].iter().map(|(n, _)| n).sum::<usize>() + self.conv - 1
    }

    /// Channels n_C of this layer's activations.
    pub fn channels(&self) -> usize {
        VGG16_BLOCKS[self.block - 1].1
    }

    /// All 13 tappable layers, shallow to deep.
    pub fn all() -> Vec<LayerName> {
        VGG16_BLOCKS
            .iter()
            .enumerate()
            .flat_map(|(b, &(convs, _))| (1..=convs).map(move |c| LayerName { block: b + 1, conv: c }))
            .collect()
    }
}

impl fmt::Display for LayerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "relu{}_{}", self.block, self.conv)
    }
}

impl serde::Serialize for LayerName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for LayerName {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            let names: Vec<String> = LayerName::all().iter().map(|l| l.to_string()).collect();
            format!("unknown VGG16 layer '{s}' (expected one of {})", names.join(", "))
        };
        let rest = s.trim().strip_prefix("relu").ok_or_else(bad)?;
        let (b, c) = rest.split_once('_').ok_or_else(bad)?;
        let (block, conv): (usize, usize) = (b.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?);
        if block == 0 || block > VGG16_BLOCKS.len() || conv == 0 || conv > VGG16_BLOCKS[block - 1].0 {
            return Err(bad());
        }
        Ok(LayerName { block, conv })
    }
}

/// One conv layer + ReLU, on the ops [`Compute`] chose.
enum ConvLayer {
    /// This crate's CPU kernel (weights packed for it).
    Kernel(Conv3x3Relu),
    /// candle's ops on the device (cuDNN with the `cudnn` feature on CUDA); `weights` is the
    /// host copy.
    Device { weights: Conv3x3Weights, conv: DeviceConv },
}

impl ConvLayer {
    fn weights(&self) -> &Conv3x3Weights {
        match self {
            ConvLayer::Kernel(op) => &op.weights,
            ConvLayer::Device { weights, .. } => weights,
        }
    }

    /// relu(conv3x3(x) + bias), differentiable by candle's autograd.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            ConvLayer::Kernel(op) => x.apply_op1(op.clone())?,
            ConvLayer::Device { conv, .. } => conv.forward_differentiable(x)?,
        })
    }
}

/// 2×2, stride-2 pooling with candle's ops (any device): the window becomes two axes of
/// length 2 that a max or a mean reduces; odd trailing rows and columns are dropped, as in
/// [`Pool2x2`]. (candle's own `max_pool2d`/`avg_pool2d` have wrong backward passes.)
fn pool_with_candle_ops(x: &Tensor, pooling: Pooling) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    let windows = x.narrow(2, 0, 2 * oh)?.narrow(3, 0, 2 * ow)?.contiguous()?.reshape((n, c, oh, 2, ow, 2))?;
    Ok(match pooling {
        Pooling::Max => windows.max(5)?.max(3)?,
        Pooling::Avg => windows.mean(5)?.mean(3)?,
    })
}

/// The 13 conv layers of VGG16 with their pooling; weights are constants (no gradients).
pub struct Vgg16 {
    convs: Vec<(LayerName, ConvLayer)>,
    pooling: Pooling,
    compute: Compute,
    precision: Precision,
    device: Device,
}

impl Vgg16 {
    /// [`Self::load_for`] the default [`Compute::Cpu`].
    pub fn load(path: &Path, pooling: Pooling) -> Result<Self> {
        Self::load_for(path, pooling, Compute::Cpu)
    }

    /// [`Self::load_with`] in fp32, the reference precision (what the reference-loss tests use).
    pub fn load_for(path: &Path, pooling: Pooling, compute: Compute) -> Result<Self> {
        Self::load_with(path, pooling, compute, Some(Precision::Fp32))
    }

    /// Loads the weights from a safetensors file with keys `conv{b}_{c}.weight` (OIHW, Caffe
    /// BGR input order for conv1_1) and `conv{b}_{c}.bias`, for the given [`Compute`] at the
    /// given precision (`None`: the device's default; see [`Precision::effective`]).
    pub fn load_with(path: &Path, pooling: Pooling, compute: Compute, precision: Option<Precision>) -> Result<Self> {
        let precision = Precision::effective(precision, compute);
        let weights_error = |problem: String| Error::Weights { path: path.to_path_buf(), problem };
        if !path.is_file() {
            return Err(weights_error(format!(
                "file not found (run scripts/fetch-weights, or point --weights / ${WEIGHTS_ENV} at it)"
            )));
        }
        let device = compute.device()?;
        if matches!(compute, Compute::Cuda(_)) {
            // cuBLAS's f32 products in TF32 or not (a process-wide switch in candle). Without
            // cuDNN the convolutions are cuBLAS products (im2col), so tf32 needs it; with cuDNN
            // the convolutions set their own math mode (crate::net::device::cudnn) and the Gram matrices stay
            // strict f32, as PyTorch's defaults have them.
            candle_core::cuda::set_gemm_reduced_precision_f32(precision == Precision::Tf32 && !cfg!(feature = "cudnn"));
            #[cfg(feature = "cuda")]
            crate::net::memory::gpu::keep_freed_memory(&device)?;
        }
        // SAFETY: mapping a file is unsafe because the memory would change under the tensors'
        // references if someone modified or truncated the file while it is mapped. The weights
        // file is an input the tool only reads (never written by this process), and the mapping
        // lives only as long as `vb`, for this function: every tensor is copied out of it into an
        // owned Vec (`to_vec1`) before it returns. safetensors checks the header's offsets
        // against the file's length before any tensor is read.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &Device::Cpu) }
            .map_err(|e| weights_error(e.to_string()))?;
        let mut convs = Vec::new();
        let mut c_in = 3;
        for layer in LayerName::all() {
            let c_out = layer.channels();
            let name = format!("conv{}_{}", layer.block, layer.conv);
            let read = |t: candle_core::Result<Tensor>| -> Result<Vec<f32>> {
                t.and_then(|t| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
                    .map_err(|e| weights_error(format!("{name}: {e}")))
            };
            let mut weight = read(vb.pp(&name).get((c_out, c_in, 3, 3), "weight"))?;
            let bias = read(vb.pp(&name).get(c_out, "bias"))?;
            if let Some(bad) = weight.iter().chain(&bias).find(|v| !v.is_finite()) {
                return Err(weights_error(format!("{name} holds a non-finite value ({bad})")));
            }
            if c_in == 3 {
                // BGR → RGB: reverse the input-channel axis of conv1_1.
                let original = weight.clone();
                for co in 0..c_out {
                    for ci in 0..3 {
                        let (dst, src) = ((co * 3 + ci) * 9, (co * 3 + (2 - ci)) * 9);
                        weight[dst..dst + 9].copy_from_slice(&original[src..src + 9]);
                    }
                }
            }
            let conv = if compute.uses_crate_kernels() {
                ConvLayer::Kernel(Conv3x3Relu::new(Conv3x3Weights::new(c_out, c_in, weight, Some(bias), precision)))
            } else {
                let conv = DeviceConv::new(&weight, &bias, c_out, c_in, &device, precision)?;
                let weights = Conv3x3Weights::with_algorithm(c_out, c_in, weight, Some(bias), ConvAlgorithm::Im2col);
                ConvLayer::Device { weights, conv }
            };
            convs.push((layer, conv));
            c_in = c_out;
        }
        Ok(Self { convs, pooling, compute, precision, device })
    }

    pub fn compute(&self) -> Compute {
        self.compute
    }

    /// The precision the convolutions run in (after the device's fallbacks).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The packed weights of one conv layer (conv1_1's input channels already in RGB order).
    pub fn conv_weights(&self, layer: LayerName) -> &Conv3x3Weights {
        self.convs[layer.depth()].1.weights()
    }

    /// Runs the network on `image` `(1, 3, H, W)` only as deep as the deepest requested layer
    /// and returns the activations a^[l] `(1, n_C, n_H, n_W)` of each requested layer, in order.
    pub fn features(&self, image: &Tensor, layers: &[LayerName]) -> Result<Vec<Tensor>> {
        let deepest = layers.iter().map(|l| l.depth()).max().unwrap_or(0);
        let mut taps: Vec<Option<Tensor>> = vec![None; layers.len()];
        let mut x = image.contiguous()?;
        let pool = self.pool_kind();
        for (name, conv) in &self.convs[..=deepest] {
            if name.conv == 1 && name.block > 1 {
                x = if self.compute.uses_crate_kernels() { x.apply_op1(pool)? } else { pool_with_candle_ops(&x, self.pooling)? };
            }
            x = conv.forward(&x)?;
            for (slot, wanted) in taps.iter_mut().zip(layers) {
                if wanted == name {
                    // The losses read f32 (in bf16 the network's activations are bf16).
                    *slot = Some(x.to_dtype(DType::F32)?);
                }
            }
        }
        Ok(taps.into_iter().map(|t| t.expect("every requested layer is at most the deepest")).collect())
    }

    /// Runs the network on this crate's CPU kernels only as deep as `deepest`, keeping every
    /// conv layer's output, for [`Self::backward`]. `image` is `[3][h][w]` (see the module's
    /// input convention).
    pub fn trace(&self, image: &[f32], h: usize, w: usize, deepest: LayerName) -> Result<Trace> {
        let pool = self.kernels_pool()?;
        let mut outputs: Vec<Activation> = Vec::with_capacity(deepest.depth() + 1);
        for (i, (name, _)) in self.convs[..=deepest.depth()].iter().enumerate() {
            let op = self.kernel(i);
            // The layer's input and size: the image, the previous output, or that output pooled.
            let (input, lh, lw) = match outputs.last() {
                None => (Cow::Borrowed(image), h, w),
                Some(previous) if name.conv == 1 => (
                    Cow::Owned(pool.forward(&previous.values, previous.channels, previous.h, previous.w)),
                    previous.h / 2,
                    previous.w / 2,
                ),
                Some(previous) => (Cow::Borrowed(&previous.values[..]), previous.h, previous.w),
            };
            let values = op.forward(&input, lh, lw);
            outputs.push(Activation { layer: *name, values, channels: op.weights.c_out, h: lh, w: lw });
        }
        Ok(Trace { outputs, image_size: (h, w) })
    }

    /// ∂J/∂image `[3][h][w]`: the layers' input gradients chained from the deepest layer back,
    /// on the CPU kernels, with ∂J/∂a^[l] added where `tap_gradient` gives one for a layer's
    /// output (asked once per layer, deepest first, when the walk reaches it). This is what
    /// candle's autograd computes through the same ops, without its bookkeeping (a zero tensor
    /// and an addition for every gradient of every layer).
    ///
    /// Memory: the trace is consumed, each layer's output dropped once the walk is past it, and
    /// a tap's gradient is made only when it is needed, so the shallow layers' backward (the
    /// largest buffers) does not also hold the deep layers' outputs or the early layers' taps.
    /// At 1920×1080 the taps alone are 1 GB (relu1_1's: 530 MB).
    pub fn backward(&self, trace: Trace, mut tap_gradient: impl FnMut(&Activation) -> Option<Vec<f32>>) -> Result<Vec<f32>> {
        let pool = self.kernels_pool()?;
        let Trace { mut outputs, image_size: (h, w) } = trace;
        let mut gradient: Option<Vec<f32>> = None;
        while let Some(activation) = outputs.pop() {
            let i = outputs.len();
            if let Some(tap) = tap_gradient(&activation) {
                assert_eq!(tap.len(), activation.values.len(), "{}: gradient of the wrong size", activation.layer);
                gradient = Some(match gradient {
                    None => tap,
                    Some(mut sum) => {
                        sum.iter_mut().zip(&tap).for_each(|(s, t)| *s += t);
                        sum
                    }
                });
            }
            let Some(grad) = gradient.take() else { continue };
            let grad_input = self.kernel(i).input_gradient(&grad, &activation.values, activation.h, activation.w);
            let starts_block = activation.layer.conv == 1;
            drop((grad, activation));
            gradient = Some(match (starts_block, i.checked_sub(1)) {
                (true, Some(previous)) => {
                    let before_pool = &outputs[previous];
                    pool.input_gradient(&before_pool.values, &grad_input, before_pool.channels, before_pool.h, before_pool.w)
                }
                _ => grad_input,
            });
        }
        Ok(gradient.unwrap_or_else(|| vec![0f32; 3 * h * w]))
    }

    /// Runs the network on candle's ops (a GPU, or `cpu-reference`) only as deep as `deepest`,
    /// keeping every conv layer's output and every pooled input, for [`Self::device_backward`].
    /// `image` is `(1, 3, H, W)` f32; the activations are in the precision's dtype.
    pub fn device_trace(&self, image: &Tensor, deepest: LayerName) -> Result<DeviceTrace> {
        let mut outputs: Vec<DeviceActivation> = Vec::with_capacity(deepest.depth() + 1);
        let mut x = image.contiguous()?;
        for (i, (name, _)) in self.convs[..=deepest.depth()].iter().enumerate() {
            let pooled = match outputs.last() {
                Some(previous) if name.conv == 1 => {
                    let pooled = pool_with_candle_ops(&previous.values, self.pooling)?;
                    x = pooled.clone();
                    Some(pooled)
                }
                _ => None,
            };
            x = self.device_conv(i).forward(&x)?;
            outputs.push(DeviceActivation { layer: *name, values: x.clone(), pooled });
        }
        Ok(DeviceTrace { outputs, image_dims: image.dims4()? })
    }

    /// ∂J/∂image `(1, 3, H, W)` f32 from the gradients ∂J/∂a^[l] (f32) at tapped layers, on the
    /// device: per layer the ReLU's mask, the input gradient as a convolution with the flipped
    /// kernel ([`DeviceConv::input_gradient`]) and the pooling's backward; the masks come from
    /// the trace's outputs, nothing is recomputed, and no kernel gradient is made.
    pub fn device_backward(&self, trace: &DeviceTrace, mut tap_gradients: Vec<(LayerName, Tensor)>) -> Result<Tensor> {
        // The gradient with respect to the current layer's output, and whether the ReLU's mask is
        // already in it (max pooling's backward applies it on the way).
        let mut gradient: Option<(Tensor, bool)> = None;
        for (i, activation) in trace.outputs.iter().enumerate().rev() {
            let conv = self.device_conv(i);
            for (_, tap) in tap_gradients.extract_if(.., |(layer, _)| *layer == activation.layer) {
                let tap = tap.to_dtype(conv.dtype())?;
                gradient = Some(match gradient.take() {
                    None => (tap, false),
                    Some((sum, false)) => ((sum + tap)?, false),
                    Some((sum, true)) => ((sum + relu_mask(&tap, &activation.values)?)?, true),
                });
            }
            let Some((grad, masked)) = gradient.take() else { continue };
            let grad_pre_activation = if masked { grad } else { relu_mask(&grad, &activation.values)? };
            let grad_input = conv.input_gradient(&grad_pre_activation)?;
            gradient = Some(match (&activation.pooled, i.checked_sub(1)) {
                (Some(pooled), Some(previous)) => pool_backward(&trace.outputs[previous].values, pooled, &grad_input, self.pooling)?,
                _ => (grad_input, false),
            });
        }
        let (n, c, h, w) = trace.image_dims;
        match gradient {
            Some((grad, _)) => Ok(grad.to_dtype(DType::F32)?),
            None => Ok(Tensor::zeros((n, c, h, w), DType::F32, &self.device)?),
        }
    }

    /// Conv layer `i` on candle's ops (a network not on the CPU kernels).
    fn device_conv(&self, i: usize) -> &DeviceConv {
        match &self.convs[i].1 {
            ConvLayer::Device { conv, .. } => conv,
            ConvLayer::Kernel(_) => unreachable!("the device path runs on a network loaded for candle's ops"),
        }
    }

    fn pool_kind(&self) -> Pool2x2 {
        match self.pooling {
            Pooling::Max => Pool2x2::Max,
            Pooling::Avg => Pool2x2::Avg,
        }
    }

    /// The pooling, where the network runs on this crate's CPU kernels ([`Self::trace`] and
    /// [`Self::backward`] need them), or an error.
    fn kernels_pool(&self) -> Result<Pool2x2> {
        if !self.compute.uses_crate_kernels() {
            return Err(Error::Settings(format!("{}: the network's own backward needs the CPU kernels", self.compute)));
        }
        Ok(self.pool_kind())
    }

    /// Conv layer `i` on the CPU kernels (checked by [`Self::kernels_pool`]).
    fn kernel(&self, i: usize) -> &Conv3x3Relu {
        match &self.convs[i].1 {
            ConvLayer::Kernel(op) => op,
            ConvLayer::Device { .. } => unreachable!("a network on the CPU kernels packs every layer for them"),
        }
    }
}

/// One conv layer's output (after its ReLU) in a [`Trace`], `[channels][h][w]`.
#[derive(Clone)]
pub struct Activation {
    pub layer: LayerName,
    pub values: Vec<f32>,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
}

/// Every conv layer's output of one forward pass ([`Vgg16::trace`]), shallow to deep.
pub struct Trace {
    outputs: Vec<Activation>,
    image_size: (usize, usize),
}

impl Trace {
    /// a^[l] of a layer the pass reached.
    pub fn activation(&self, layer: LayerName) -> Option<&Activation> {
        self.outputs.get(layer.depth()).filter(|a| a.layer == layer)
    }
}

/// One conv layer's output (after its ReLU) in a [`DeviceTrace`], `(1, n_C, n_H, n_W)` in the
/// precision's dtype, with its input pooled from the layer before where a block starts.
pub struct DeviceActivation {
    pub layer: LayerName,
    pub values: Tensor,
    pub pooled: Option<Tensor>,
}

/// Every conv layer's output of one forward pass on the device ([`Vgg16::device_trace`]).
pub struct DeviceTrace {
    outputs: Vec<DeviceActivation>,
    image_dims: (usize, usize, usize, usize),
}

impl DeviceTrace {
    /// a^[l] of a layer the pass reached, as f32 (what the losses read).
    pub fn activation(&self, layer: LayerName) -> Option<Result<Tensor>> {
        self.outputs
            .get(layer.depth())
            .filter(|a| a.layer == layer)
            .map(|a| Ok(a.values.to_dtype(DType::F32)?))
    }
}

/// g ⊙ [y > 0]: the ReLU's backward, read off its output y (≥ 0, so sign(y) is the mask).
fn relu_mask(grad: &Tensor, output: &Tensor) -> Result<Tensor> {
    Ok((grad * output.sign()?)?)
}

/// The gradient at the pooling's input `before` `(1, c, H, W)` from the gradient at its output
/// `grad_pooled` `(1, c, H/2, W/2)`; odd trailing rows and columns (dropped by the pooling) get 0.
/// Max pooling sends each window's gradient to the entries equal to the window's maximum and
/// applies the ReLU mask of `before` on the way (the second value, true): the maximum is 0 only
/// where the whole window is, so the mask is the pooled output's sign, taken at a quarter of the
/// size. Average pooling spreads a quarter to each entry; the mask is left to the caller.
fn pool_backward(before: &Tensor, pooled: &Tensor, grad_pooled: &Tensor, pooling: Pooling) -> Result<(Tensor, bool)> {
    let (n, c, h, w) = before.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    let spread = (n * c, oh, 1, ow, 1);
    let (windows, masked) = match pooling {
        Pooling::Max => {
            let grad = (grad_pooled * pooled.sign()?)?.reshape(spread)?;
            let inputs = before.narrow(2, 0, 2 * oh)?.narrow(3, 0, 2 * ow)?.contiguous()?.reshape((n * c, oh, 2, ow, 2))?;
            let at_maximum = inputs.broadcast_eq(&pooled.reshape(spread)?)?.to_dtype(grad.dtype())?;
            (at_maximum.broadcast_mul(&grad)?, true)
        }
        Pooling::Avg => ((grad_pooled * 0.25)?.reshape(spread)?.broadcast_as((n * c, oh, 2, ow, 2))?.contiguous()?, false),
    };
    let mut grad = windows.reshape((n, c, 2 * oh, 2 * ow))?;
    if h > 2 * oh {
        grad = grad.pad_with_zeros(2, 0, h - 2 * oh)?;
    }
    if w > 2 * ow {
        grad = grad.pad_with_zeros(3, 0, w - 2 * ow)?;
    }
    Ok((grad, masked))
}
