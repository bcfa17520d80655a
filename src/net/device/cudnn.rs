//! cuDNN for the network's 3×3 convolutions on CUDA (the `cudnn` feature): the forward
//! conv(x, W) and its backward-data ∂J/∂x = conv(∂J/∂y, W̃), called through cudarc directly
//! rather than through candle's `conv2d` because the precision must be ours to choose:
//! - fp32: `CUDNN_FMA_MATH`, strict f32 (cuDNN's default math lets Ampere and later GPUs
//!   multiply f32 in TF32, which candle's own cuDNN convolution leaves on);
//! - tf32: `CUDNN_DEFAULT_MATH`, TF32 tensor cores allowed (PyTorch's default for convolutions);
//! - bf16: bf16 tensors, f32 accumulation, tensor cores.
//!
//! Each shape's algorithm is chosen once by cuDNN's heuristics (as PyTorch does by default)
//! and remembered; the workspace is one buffer per device, grown when a layer needs more.
//! Both calls are queued on candle's stream: nothing waits for the GPU here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::cudnn::safe::{ConvBackwardData, ConvForward, Cudnn};
use candle_core::cuda::cudarc::cudnn::{sys, CudnnDataType};
use candle_core::cuda::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda::{CudaDType, CudaDevice, DeviceId};
use candle_core::{CpuStorage, CudaStorage, CustomOp2, DType, Layout, Shape, Tensor};

use crate::error::Result;
use crate::net::precision::Precision;

/// y = conv3x3(x, W), stride 1, padding 1: x `(n, c_in, h, w)`, W `(c_out, c_in, 3, 3)`.
pub fn forward(x: &Tensor, kernel: &Tensor, precision: Precision) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op2_no_bwd(&kernel.contiguous()?, &Conv3x3 { direction: Direction::Forward, precision })?)
}

/// ∂J/∂x from ∂J/∂y `(n, c_out, h, w)` for y = conv3x3(x, W): cuDNN's backward-data.
pub fn backward_data(grad_output: &Tensor, kernel: &Tensor, precision: Precision) -> Result<Tensor> {
    let op = Conv3x3 { direction: Direction::BackwardData, precision };
    Ok(grad_output.contiguous()?.apply_op2_no_bwd(&kernel.contiguous()?, &op)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    Forward,
    BackwardData,
}

struct Conv3x3 {
    direction: Direction,
    precision: Precision,
}

/// What an algorithm is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Problem {
    device: DeviceId,
    direction: Direction,
    /// n, c_in, c_out, h, w.
    dims: [i32; 5],
    precision: Precision,
}

#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    BackwardData(sys::cudnnConvolutionBwdDataAlgo_t),
}

/// Per thread, as candle keeps its own: cuDNN handles are neither Send nor Sync.
struct State {
    handles: HashMap<DeviceId, Arc<Cudnn>>,
    algorithms: HashMap<Problem, Algorithm>,
    workspaces: HashMap<DeviceId, CudaSlice<u8>>,
}

thread_local! {
    static STATE: RefCell<State> =
        RefCell::new(State { handles: HashMap::new(), algorithms: HashMap::new(), workspaces: HashMap::new() });
}

fn failed(what: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN {what}: {e}"))
}

impl CustomOp2 for Conv3x3 {
    fn name(&self) -> &'static str {
        "cudnn-conv3x3"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Err(candle_core::Error::Msg("the cuDNN convolution runs on CUDA tensors only".into()))
    }

    fn cuda_fwd(&self, x: &CudaStorage, x_layout: &Layout, w: &CudaStorage, w_layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        match (x.dtype(), w.dtype()) {
            (DType::F32, DType::F32) => self.run::<f32>(x, x_layout, w, w_layout),
            (DType::BF16, DType::BF16) => self.run::<half::bf16>(x, x_layout, w, w_layout),
            (a, b) => Err(candle_core::Error::Msg(format!("cuDNN convolution of {a:?} data with {b:?} weights"))),
        }
    }
}

impl Conv3x3 {
    fn run<T: CudaDType + DeviceRepr + CudnnDataType + candle_core::WithDType>(
        &self,
        x: &CudaStorage,
        x_layout: &Layout,
        w: &CudaStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (n, c_x, h, width) = x_layout.shape().dims4()?;
        let (c_out, c_in, kh, kw) = w_layout.shape().dims4()?;
        if !x_layout.is_contiguous() || !w_layout.is_contiguous() || (kh, kw) != (3, 3) {
            return Err(candle_core::Error::Msg("cuDNN convolution: contiguous 3×3 kernels only".into()));
        }
        // Forward: x has c_in channels, y c_out; backward-data: the gradient dy has c_out, dx c_in.
        let (c_src, c_dst) = match self.direction {
            Direction::Forward => (c_in, c_out),
            Direction::BackwardData => (c_out, c_in),
        };
        if c_x != c_src {
            return Err(candle_core::Error::Msg(format!("cuDNN convolution: {c_x} channels in, the kernel expects {c_src}")));
        }
        let device: &CudaDevice = x.device();
        let src = x.as_cuda_slice::<T>()?.slice(x_layout.start_offset()..);
        let filter = w.as_cuda_slice::<T>()?.slice(w_layout.start_offset()..);
        let dims = |c: usize| [n as i32, c as i32, h as i32, width as i32];
        let problem = Problem {
            device: device.id(),
            direction: self.direction,
            dims: [n as i32, c_in as i32, c_out as i32, h as i32, width as i32],
            precision: self.precision,
        };
        let out_len = n * c_dst * h * width;
        // SAFETY: `alloc` is unsafe because the memory is uninitialised: nothing reads `out`
        // before the convolution below writes every one of its n·c_dst·h·w elements (β = 0:
        // cuDNN overwrites the destination, never reads it), on the same stream, so any later
        // reader (candle, queued after) sees it written. On an error `out` is dropped unread.
        let mut out = unsafe { device.alloc::<T>(out_len)? };
        STATE.with(|state| -> candle_core::Result<()> {
            let mut state = state.borrow_mut();
            let cudnn = match state.handles.get(&device.id()) {
                Some(handle) => handle.clone(),
                None => {
                    let handle = Cudnn::new(device.cuda_stream()).map_err(|e| failed("handle", e))?;
                    state.handles.insert(device.id(), handle.clone());
                    handle
                }
            };
            let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
            // Products accumulate in f32 at every precision (for bf16: cuDNN's "pseudo bf16").
            let mut conv = cudnn
                .create_conv2d::<f32>([1, 1], [1, 1], [1, 1], sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION)
                .map_err(|e| failed("convolution descriptor", e))?;
            conv.set_math_type(match self.precision {
                Precision::Fp32 => sys::cudnnMathType_t::CUDNN_FMA_MATH,
                Precision::Tf32 => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
                Precision::Bf16 => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
            })
            .map_err(|e| failed("math type", e))?;
            let filter_desc = cudnn
                .create_4d_filter::<T>(nchw, [c_out as i32, c_in as i32, 3, 3])
                .map_err(|e| failed("filter descriptor", e))?;
            let src_desc = cudnn.create_4d_tensor::<T>(nchw, dims(c_src)).map_err(|e| failed("tensor descriptor", e))?;
            let dst_desc = cudnn.create_4d_tensor::<T>(nchw, dims(c_dst)).map_err(|e| failed("tensor descriptor", e))?;
            let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));
            match self.direction {
                Direction::Forward => {
                    let op = ConvForward { conv: &conv, x: &src_desc, w: &filter_desc, y: &dst_desc };
                    let algorithm = match state.algorithms.get(&problem) {
                        Some(Algorithm::Forward(a)) => *a,
                        _ => {
                            let picked = op.pick_algorithm().map_err(|e| failed("forward algorithm", e))?;
                            state.algorithms.insert(problem, Algorithm::Forward(picked));
                            picked
                        }
                    };
                    let size = op.get_workspace_size(algorithm).map_err(|e| failed("workspace size", e))?;
                    let workspace = workspace(&mut state.workspaces, device, size)?;
                    // SAFETY: cuDNN reads and writes through raw device pointers sized by the
                    // descriptors, so those must match the buffers: x_desc is (n, c_in, h, w) of
                    // T and `src` holds that many (x is contiguous with c_x = c_in, checked
                    // above); w_desc is (c_out, c_in, 3, 3) of T, the contiguous `filter`; y_desc
                    // is (n, c_out, h, w) of T, the `out_len` elements of `out`. The workspace is
                    // at least the size cuDNN asked for this algorithm (or none if it asked for
                    // none); cudarc passes α = 1, β = 0 as the scaling type cuDNN expects for T
                    // (f32 for bf16). All of it is queued on candle's stream, in order.
                    unsafe { op.launch(algorithm, workspace, (one, zero), &src, &filter, &mut out) }
                        .map_err(|e| failed("forward", e))?;
                }
                Direction::BackwardData => {
                    let op = ConvBackwardData { conv: &conv, dx: &dst_desc, w: &filter_desc, dy: &src_desc };
                    let algorithm = match state.algorithms.get(&problem) {
                        Some(Algorithm::BackwardData(a)) => *a,
                        _ => {
                            let picked = op.pick_algorithm().map_err(|e| failed("backward-data algorithm", e))?;
                            state.algorithms.insert(problem, Algorithm::BackwardData(picked));
                            picked
                        }
                    };
                    let size = op.get_workspace_size(algorithm).map_err(|e| failed("workspace size", e))?;
                    let workspace = workspace(&mut state.workspaces, device, size)?;
                    // SAFETY: as for the forward, with the roles swapped: dy_desc is
                    // (n, c_out, h, w), the input `src` (c_x = c_out, checked above); dx_desc is
                    // (n, c_in, h, w), the `out_len` elements of `out`; w_desc the same filter.
                    // The workspace is as large as cuDNN asked for this algorithm.
                    unsafe { op.launch(algorithm, workspace, (one, zero), &mut out, &filter, &src) }
                        .map_err(|e| failed("backward-data", e))?;
                }
            }
            Ok(())
        })?;
        let shape = Shape::from((n, c_dst, h, width));
        Ok((CudaStorage::wrap_cuda_slice(out, device.clone()), shape))
    }
}

/// The device's workspace, at least `size` bytes (`None` when none is needed).
fn workspace<'a>(
    workspaces: &'a mut HashMap<DeviceId, CudaSlice<u8>>,
    device: &CudaDevice,
    size: usize,
) -> candle_core::Result<Option<&'a mut CudaSlice<u8>>> {
    if size == 0 {
        return Ok(None);
    }
    let too_small = workspaces.get(&device.id()).is_none_or(|w| w.len() < size);
    if too_small {
        // Grown to what the largest layer asks for, then kept; stream order makes reuse safe.
        workspaces.remove(&device.id());
        // SAFETY: the memory is uninitialised, which is all a workspace needs: cuDNN uses it
        // as scratch, writing before it reads, and nothing else ever reads it. The old, smaller
        // buffer freed just above is released in stream order, after the work queued on it.
        let fresh = unsafe { device.alloc::<u8>(size)? };
        workspaces.insert(device.id(), fresh);
    }
    Ok(workspaces.get_mut(&device.id()))
}
