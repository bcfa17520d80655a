//! stylize-video: turn a video into a painting in motion.
//!
//! The data path, one module per step:
//! - [`video`]: video files in (decode, scale, rotate) and out (encode, copy the other streams),
//!   colour tags and timecode kept;
//! - [`sequence`]: numbered image sequences (`shots/f_%04d.png`) in and out;
//! - [`image_io`]: still images ↔ network input tensors, atomic writes;
//! - [`vgg`] (with [`layers`], [`winograd`] on the CPU; [`conv_device`] on a GPU): the VGG16
//!   feature extractor with constant weights, its forward trace and its own backward;
//! - [`loss`]: Gram matrices, J_style, J_content, J_tv as in Gatys et al.;
//! - [`optim`]: L-BFGS and Adam over the pixels (on the host; [`optim_device`] on the device);
//! - [`stylize`]: J(G) = α J_content + β J_style + γ_tv J_tv, optimised from a starting image;
//! - [`still`]: the still-image job (preview tool);
//! - [`preview`]: the preview grid: a few frames × styles × one swept option, stylized as stills
//!   and labelled in one image (with [`text`] for the labels);
//! - [`pipeline`]: the video job: decode → warm-started stylization → encode, on three threads;
//! - [`cache`]: loaded networks and style targets, reused by the jobs that follow;
//! - [`batch`]: several inputs in one run, each failure reported and the others still done,
//!   sharing one cache;
//! - [`segment`]: a clip split into segments for array jobs on a cluster, and their assembly;
//! - [`workdir`]: finished frames kept beside the output so interrupted runs resume;
//! - [`progress`]: how a run reports its progress;
//! - [`memory`]: the process's allocator policy (freed tensors kept for reuse).
//!
//! The `media` feature (on by default) brings FFmpeg (video in and out) and OpenCV (optical
//! flow): [`video`], [`pipeline`], [`preview`], [`batch`], [`segment`] and the flow estimators
//! need it. Without it the crate is the network, the losses, the optimisers and still images:
//! what the GPU benchmark binary (`benches/gpu.rs`) runs on a machine without those libraries.

#[cfg(feature = "media")]
pub mod batch;
pub mod bf16;
pub mod cache;
pub mod conv_bf16;
pub mod conv_device;
#[cfg(feature = "cudnn")]
pub mod cudnn;
pub mod error;
pub mod flow;
pub mod image_io;
pub mod job;
pub mod layers;
pub mod loss;
pub mod memory;
pub mod optim;
pub mod optim_device;
#[cfg(feature = "media")]
pub mod pipeline;
pub mod precision;
#[cfg(feature = "media")]
pub mod preview;
pub mod profile;
pub mod progress;
#[cfg(feature = "media")]
pub mod segment;
pub mod sequence;
pub mod still;
pub mod stylize;
pub mod temporal;
pub mod text;
pub mod vgg;
pub mod winograd;
#[cfg(feature = "media")]
pub mod video;
pub mod workdir;

pub use error::{Error, Result};
