//! The jobs a user runs: a still, a video (decode → stylize → encode), a preview grid, a batch,
//! cluster segments; with what they share (spec, cache, work directory, progress records).
//! May import: everything below it (`error`, `progress`, `media`, `net`, `motion`, `stylize`).

pub mod spec;
pub mod cache;
pub mod progress;
pub mod pyramid;
pub mod keyframes;
pub mod revealed;
pub mod shots;
pub mod still;
pub mod workdir;
#[cfg(feature = "media")]
pub mod batch;
#[cfg(feature = "media")]
pub mod passes;
#[cfg(feature = "media")]
pub mod pipeline;
#[cfg(feature = "media")]
pub mod preview;
#[cfg(feature = "media")]
pub mod segment;
