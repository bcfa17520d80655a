//! The network's 3×3 convolutions on candle tensors, for the devices that do not run this
//! crate's CPU kernels: a CUDA GPU, and the CPU as `cpu-reference` (where every step of the GPU
//! path is tested). Forward relu(conv(x) + b), and the input gradient of the convolution alone.
//!
//! The input gradient of y = conv(x, W) (3×3, stride 1, padding 1) is again a convolution:
//! ∂J/∂x = conv(∂J/∂y, W̃) with W̃[c_in][c_out][i][j] = W[c_out][c_in][2−i][2−j], the kernel
//! flipped in space with its two channel axes swapped. So the backward is as fast as the
//! forward, with no `conv_transpose2d` (candle's is 2–8× slower than its conv2d on CUDA) and no
//! kernel gradient (autograd computes one nobody asked for).
//!
//! With the `cudnn` feature, on CUDA both go through cuDNN ([`crate::net::device::cudnn`]: forward and
//! backward-data) at the precision's math mode; elsewhere through candle's `conv2d`.
//!
//! Precision: fp32 and tf32 keep f32 tensors (tf32 is cuBLAS's/cuDNN's reduced-precision
//! products, switched in [`crate::net::vgg::Vgg16::load_with`] and [`crate::net::device::cudnn`]); bf16 runs the
//! convolutions on bf16 tensors (products accumulated in f32 by cuBLAS and cuDNN) and the
//! network keeps its activations in bf16 between layers, as PyTorch's autocast does.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;
use crate::net::precision::Precision;

/// The dtype the network's activations and weights have at a precision on a candle device.
pub fn compute_dtype(precision: Precision) -> DType {
    match precision {
        Precision::Bf16 => DType::BF16,
        Precision::Fp32 | Precision::Tf32 => DType::F32,
    }
}

/// One conv layer's weights on the device, in the precision's dtype.
pub struct DeviceConv {
    /// W, `(c_out, c_in, 3, 3)`.
    kernel: Tensor,
    /// W̃, `(c_in, c_out, 3, 3)`: W flipped in space, channel axes swapped (the input gradient's
    /// kernel where cuDNN's backward-data is not used).
    flipped: Tensor,
    /// b, `(1, c_out, 1, 1)`.
    bias: Tensor,
    precision: Precision,
}

impl DeviceConv {
    /// From the host weights `[c_out][c_in][3][3]` and bias `[c_out]`.
    pub fn new(weight: &[f32], bias: &[f32], c_out: usize, c_in: usize, device: &Device, precision: Precision) -> Result<Self> {
        let dtype = compute_dtype(precision);
        let mut flipped = vec![0f32; weight.len()];
        for co in 0..c_out {
            for ci in 0..c_in {
                for k in 0..9 {
                    flipped[(ci * c_out + co) * 9 + (8 - k)] = weight[(co * c_in + ci) * 9 + k];
                }
            }
        }
        Ok(Self {
            kernel: Tensor::from_slice(weight, (c_out, c_in, 3, 3), device)?.to_dtype(dtype)?,
            flipped: Tensor::from_vec(flipped, (c_in, c_out, 3, 3), device)?.to_dtype(dtype)?,
            bias: Tensor::from_slice(bias, (1, c_out, 1, 1), device)?.to_dtype(dtype)?,
            precision,
        })
    }

    pub fn dtype(&self) -> DType {
        self.kernel.dtype()
    }

    /// relu(conv3x3(x) + b) with candle's ops throughout, so that autograd can differentiate it
    /// (the style and content targets, [`crate::stylize::stylizer::Stylizer::cost`]).
    pub fn forward_differentiable(&self, x: &Tensor) -> Result<Tensor> {
        Ok(conv3x3(&x.to_dtype(self.dtype())?, &self.kernel)?.broadcast_add(&self.bias)?.relu()?)
    }

    /// relu(conv3x3(x) + b) for the optimiser's forward pass (cuDNN where there is one).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.dtype())?;
        #[cfg(feature = "cudnn")]
        if x.device().is_cuda() {
            let y = crate::net::device::cudnn::forward(&x, &self.kernel, self.precision)?;
            return Ok(y.broadcast_add(&self.bias)?.relu()?);
        }
        Ok(conv3x3(&x, &self.kernel)?.broadcast_add(&self.bias)?.relu()?)
    }

    /// ∂J/∂x from ∂J/∂(conv(x) + b), the gradient at the layer's pre-activation (the ReLU's mask
    /// already applied): conv(·, W̃), or cuDNN's backward-data with W.
    pub fn input_gradient(&self, grad_pre_activation: &Tensor) -> Result<Tensor> {
        let g = grad_pre_activation.to_dtype(self.dtype())?;
        #[cfg(feature = "cudnn")]
        if g.device().is_cuda() {
            return crate::net::device::cudnn::backward_data(&g, &self.kernel, self.precision);
        }
        let _ = self.precision;
        conv3x3(&g, &self.flipped)
    }
}

/// candle's conv2d, stride 1, padding 1. candle's CPU backend has no bf16 matrix product, so on
/// the CPU (`cpu-reference`) a bf16 convolution multiplies the bf16 values as f32 — products of
/// bf16 values are exact in f32 — sums in f32 and rounds the result to bf16: what a GPU's bf16
/// convolution computes (f32 accumulation), up to the order of the sums.
fn conv3x3(x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::BF16 && x.device().is_cpu() {
        let y = x.to_dtype(DType::F32)?.conv2d(&kernel.to_dtype(DType::F32)?, 1, 1, 1, 1)?;
        return Ok(y.to_dtype(DType::BF16)?);
    }
    Ok(x.conv2d(kernel, 1, 1, 1, 1)?)
}
