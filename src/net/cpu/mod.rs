//! The CPU kernels behind [`super::vgg`]: 3×3 convolutions (Winograd, im2col, bf16 direct),
//! pooling and the Gram product, forward and backward.
//! May import: `error` and the rest of `net`.

pub mod bf16;
pub mod conv_bf16;
pub mod layers;
mod shared;
pub mod winograd;
