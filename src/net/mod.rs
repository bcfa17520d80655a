//! The network: VGG16 with constant weights, its forward trace and its own backward, on this
//! crate's CPU kernels (`cpu/`) or on a GPU (`device/`), at a chosen precision.
//! May import: `error` only.

pub mod cpu;
pub mod device;
pub mod input;
pub mod memory;
pub mod precision;
pub mod profile;
pub mod vgg;
