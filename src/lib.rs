//! stylize-video: turn a video into a painting in motion.
//!
//! The tree follows the data path: media in → frames → motion + the stylizer over the network →
//! frames → media out, with the jobs that wire them on top. Each folder may import only the
//! folders listed before it here (its `mod.rs` says which; `tests/architecture.rs` checks it,
//! and that no two files import each other in a circle):
//!
//! - [`error`]: the one error type, naming the file or option at fault;
//! - [`progress`]: how an optimisation reports its progress (plain numbers; the binary draws it);
//! - [`media`]: frames in and out:
//!   - [`media::video`]: video files through FFmpeg (decode, scale, rotate; encode, copy the
//!     other streams), colour tags and timecode kept;
//!   - [`media::sequence`]: numbered image sequences (`shots/f_%04d.png`) in and out;
//!   - [`media::image_io`]: still images, resizing, colour conversions, atomic writes;
//!   - [`media::matte`]: mattes (which part of each frame is painted) read beside the input,
//!     and the painting put over the source by them;
//!   - [`media::text`]: labels drawn on images (the preview grid's);
//! - [`net`]: the VGG16 network with constant weights, its forward trace and its own backward:
//!   - [`net::vgg`]: the network as data, loaded through a `VarBuilder`;
//!   - [`net::input`]: RGB pixels ↔ the network's input tensors (ImageNet mean);
//!   - [`net::precision`]: where it runs ([`net::precision::Compute`]) and at which precision;
//!   - [`net::cpu`]: this crate's CPU kernels (Winograd, im2col, bf16 with AMX or AVX-512);
//!   - [`net::device`]: the convolutions on a GPU (candle's ops, cuDNN);
//!   - [`net::memory`], [`net::profile`]: the allocator policy; where an iteration's time goes;
//! - [`motion`]: optical flow, warping, reliability weights, shot cuts, warping error;
//! - [`stylize`]: the Gatys et al. objective and its minimisation over the pixels:
//!   - [`stylize::loss`]: Gram matrices, J_style, J_content, J_tv, J_temporal;
//!   - [`stylize::optim`], [`stylize::optim_device`]: L-BFGS and Adam on the host and the device;
//!   - [`stylize::stylizer`]: J(G) = α J_content + β J_style + γ_tv J_tv (+ γ_temp J_temporal),
//!     optimised from a starting image;
//! - [`jobs`]: what a user runs:
//!   - [`jobs::spec`]: what the jobs share (network, style images, starting image, checks);
//!   - [`jobs::pyramid`]: coarse-to-fine painting of large images and warm frames, level by level;
//!   - [`jobs::keyframes`]: weights and style blends that change over a clip, per frame;
//!   - [`jobs::still`]: a still image;
//!   - [`jobs::pipeline`]: a video: decode → warm-started stylization → encode, on three threads;
//!   - [`jobs::preview`]: a grid of frames × styles × one swept option;
//!   - [`jobs::batch`]: several inputs, each failure reported and the others still done;
//!   - [`jobs::segment`]: a clip split into segments for array jobs on a cluster, and assembly;
//!   - [`jobs::workdir`]: finished frames kept beside the output so interrupted runs resume;
//!   - [`jobs::cache`]: loaded networks and style targets, reused by the jobs that follow;
//!   - [`jobs::progress`]: the records of finished frames and cells, and their progress traits.
//!
//! The command line (`src/main.rs` and `src/cli/`) parses the options, builds a job, draws the
//! progress and reports errors; the library prints nothing.
//!
//! The `media` feature (on by default) brings FFmpeg (video in and out) and OpenCV (optical
//! flow): [`media::video`], [`jobs::pipeline`], [`jobs::preview`], [`jobs::batch`],
//! [`jobs::segment`] and the flow estimators need it. Without it the crate is the network, the
//! losses, the optimisers and still images: what the GPU benchmark binary (`benches/gpu.rs`)
//! runs on a machine without those libraries.

pub mod error;
pub mod progress;

pub mod media;
pub mod net;

pub mod motion;
pub mod stylize;

pub mod jobs;

pub use error::{Error, Result};
