//! Motion between input frames: optical flow, warping, reliability weights, shot cuts and the
//! warping error (Ruder et al. 2016; Lai et al. 2018).
//! May import: `error`, `media`, `net`.

pub mod flow;
pub mod temporal;
