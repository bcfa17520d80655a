//! Media in and out: video files, image sequences and still images, read into RGB frames and
//! written back atomically, with timing, colour and the other streams kept.
//! May import: `error` only (it knows nothing of the network or the jobs).

pub mod image_io;
pub mod matte;
pub mod paths;
pub mod sequence;
pub mod text;
#[cfg(feature = "media")]
pub mod video;
