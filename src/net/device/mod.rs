//! The network's convolutions on any candle device (a GPU), forward and input gradient, with
//! cuDNN where the `cudnn` feature is on.
//! May import: `error` and the rest of `net`.

pub mod conv;
#[cfg(feature = "cudnn")]
pub mod cudnn;
