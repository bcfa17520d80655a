//! Optical flow between input frames and what Ruder, Dosovitskiy & Brox (2016) build on it:
//! dense flow fields estimated by OpenCV (DIS by default, DeepFlow as the paper's slower
//! choice), bilinear warping ω along a flow, and the per-pixel reliability weights c that
//! mark disoccluded pixels and motion boundaries.
//!
//! Conventions: a [`FlowField`] lives on one frame's pixel grid; the pixel at (x, y) of that
//! frame is at (x + u, y + v) in the other frame. For frame t, the *backward* flow ŵ (t → t−1)
//! is on frame t's grid and the *forward* flow w (t−1 → t) on frame t−1's. Warping the
//! previous stylized frame to frame t samples it at (x, y) + ŵ(x, y).

use std::str::FromStr;

use image::{GrayImage, RgbImage};
#[cfg(feature = "media")]
use opencv::core::{Mat, Ptr, Vec2f};
#[cfg(feature = "media")]
use opencv::prelude::*;
#[cfg(feature = "media")]
use opencv::video::DenseOpticalFlow;

#[cfg(feature = "media")]
use crate::error::{Error, Result};

/// Which optical-flow algorithm estimates the flow (`--flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FlowMethod {
    /// OpenCV's Dense Inverse Search (Kroeger et al. 2016), preset "medium": milliseconds
    /// per frame pair at the processing sizes.
    Dis,
    /// OpenCV's DeepFlow (Weinzaepfel et al. 2013), the flow of Ruder et al.'s paper: more
    /// accurate on large motions, seconds per frame pair.
    #[value(name = "deepflow")]
    DeepFlow,
}

impl FromStr for FlowMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "dis" => Ok(FlowMethod::Dis),
            "deepflow" => Ok(FlowMethod::DeepFlow),
            _ => Err(format!("unknown flow method '{s}' (expected dis or deepflow)")),
        }
    }
}

/// A dense displacement field on one frame's grid: (u, v) per pixel, in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowField {
    width: usize,
    height: usize,
    /// (u, v) interleaved, row-major.
    uv: Vec<f32>,
}

impl FlowField {
    /// A field whose displacement at (x, y) is `f(x, y)`.
    pub fn from_fn(width: usize, height: usize, f: impl Fn(usize, usize) -> (f32, f32)) -> Self {
        let mut uv = Vec::with_capacity(2 * width * height);
        for y in 0..height {
            for x in 0..width {
                let (u, v) = f(x, y);
                uv.extend([u, v]);
            }
        }
        FlowField { width, height, uv }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// (u, v) at a pixel.
    pub fn at(&self, x: usize, y: usize) -> (f32, f32) {
        let i = 2 * (y * self.width + x);
        (self.uv[i], self.uv[i + 1])
    }

    /// (u, v) at a real-valued position, bilinearly interpolated (positions outside the grid
    /// take the nearest border value).
    pub fn sample(&self, x: f32, y: f32) -> (f32, f32) {
        bilinear(x, y, self.width, self.height, |xi, yi| self.at(xi, yi))
    }

    /// Where the pixel (x, y) lands in the other frame, if inside it.
    fn target(&self, x: usize, y: usize) -> Option<(f32, f32)> {
        let (u, v) = self.at(x, y);
        let (tx, ty) = (x as f32 + u, y as f32 + v);
        let inside = tx >= 0.0 && ty >= 0.0 && tx <= (self.width - 1) as f32 && ty <= (self.height - 1) as f32;
        inside.then_some((tx, ty))
    }
}

/// Bilinear interpolation of `value` at (x, y) on a `width × height` grid, clamping to the border.
fn bilinear<T>(x: f32, y: f32, width: usize, height: usize, value: impl Fn(usize, usize) -> T) -> T
where
    T: Lerp,
{
    let x = x.clamp(0.0, (width - 1) as f32);
    let y = y.clamp(0.0, (height - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = value(x0, y0).lerp(value(x1, y0), fx);
    let bottom = value(x0, y1).lerp(value(x1, y1), fx);
    top.lerp(bottom, fy)
}

trait Lerp: Sized {
    fn lerp(self, other: Self, t: f32) -> Self;
}

impl Lerp for f32 {
    fn lerp(self, other: f32, t: f32) -> f32 {
        self + (other - self) * t
    }
}

impl Lerp for (f32, f32) {
    fn lerp(self, other: (f32, f32), t: f32) -> (f32, f32) {
        (self.0.lerp(other.0, t), self.1.lerp(other.1, t))
    }
}

/// ω: warps a planar image (`channels` planes of `flow.width × flow.height`, as the network's
/// `(1, C, H, W)` tensors hold them) along `flow`, which lives on the *target* frame's grid:
/// ω(x)(p) = x(p + flow(p)), bilinear, the border replicated where p + flow(p) leaves the frame.
pub fn warp_planar(image: &[f32], channels: usize, flow: &FlowField) -> Vec<f32> {
    let (w, h) = (flow.width, flow.height);
    assert_eq!(image.len(), channels * w * h, "image and flow sizes differ");
    let mut out = vec![0f32; image.len()];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = flow.at(x, y);
            let (sx, sy) = (x as f32 + u, y as f32 + v);
            for c in 0..channels {
                let plane = &image[c * w * h..(c + 1) * w * h];
                out[c * w * h + y * w + x] = bilinear(sx, sy, w, h, |xi, yi| plane[yi * w + xi]);
            }
        }
    }
    out
}

/// Ruder et al.'s reliability weights c on frame t's grid, from the backward flow ŵ (t → t−1,
/// on frame t's grid) and the forward flow w (t−1 → t, on frame t−1's grid). With
/// w̃(p) = w(p + ŵ(p)) the forward flow sampled where ŵ points, c(p) = 0 where
/// - forward and backward flow disagree (disocclusion): |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5;
/// - p is on a motion boundary: |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002 (central differences);
/// - p + ŵ(p) lies outside frame t−1 (content that entered the frame: nothing to warp from);
///
/// and c(p) = 1 elsewhere.
pub fn reliability(backward: &FlowField, forward: &FlowField) -> Vec<f32> {
    let (w, h) = (backward.width, backward.height);
    assert_eq!((forward.width, forward.height), (w, h), "forward and backward flows differ in size");
    let gradient = |x: usize, y: usize| -> f32 {
        // |∇û|² + |∇v̂|², central differences inside, one-sided at the border.
        let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
        let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
        let dx = |(a, b): (f32, f32), (c, d): (f32, f32), span: usize| {
            let s = span.max(1) as f32;
            ((c - a) / s, (d - b) / s)
        };
        let (ux, vx) = dx(backward.at(xl, y), backward.at(xr, y), xr - xl);
        let (uy, vy) = dx(backward.at(x, yu), backward.at(x, yd), yd - yu);
        ux * ux + uy * uy + vx * vx + vy * vy
    };
    let mut c = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let Some((tx, ty)) = backward.target(x, y) else { continue };
            let (bu, bv) = backward.at(x, y);
            let (fu, fv) = forward.sample(tx, ty);
            let backward_sq = bu * bu + bv * bv;
            let forward_sq = fu * fu + fv * fv;
            let sum_sq = (fu + bu).powi(2) + (fv + bv).powi(2);
            let disoccluded = sum_sq > 0.01 * (forward_sq + backward_sq) + 0.5;
            let boundary = gradient(x, y) > 0.01 * backward_sq + 0.002;
            if !disoccluded && !boundary {
                c[y * w + x] = 1.0;
            }
        }
    }
    c
}

/// Estimates dense optical flow between grey frames with OpenCV (needs the `media` feature).
#[cfg(feature = "media")]
pub struct FlowEstimator {
    method: FlowMethod,
    engine: Ptr<DenseOpticalFlow>,
}

#[cfg(feature = "media")]
impl FlowEstimator {
    pub fn new(method: FlowMethod) -> Result<Self> {
        let failed = |e: opencv::Error| Error::Settings(format!("cannot create the {method:?} optical flow: {e}"));
        let engine: Ptr<DenseOpticalFlow> = match method {
            FlowMethod::Dis => {
                opencv::video::DISOpticalFlow::create(opencv::video::DISOpticalFlow_PRESET_MEDIUM).map_err(failed)?.into()
            }
            FlowMethod::DeepFlow => opencv::optflow::create_opt_flow_deep_flow().map_err(failed)?,
        };
        Ok(FlowEstimator { method, engine })
    }

    /// The flow from `from` to `to` on `from`'s grid.
    pub fn estimate(&mut self, from: &GrayImage, to: &GrayImage) -> Result<FlowField> {
        if from.dimensions() != to.dimensions() {
            return Err(Error::Settings(format!(
                "optical flow between frames of different sizes ({:?} and {:?})",
                from.dimensions(),
                to.dimensions()
            )));
        }
        let failed = |e: opencv::Error| Error::Settings(format!("optical flow ({:?}) failed: {e}", self.method));
        let (w, h) = (from.width() as usize, from.height() as usize);
        let a = Mat::new_rows_cols_with_data(h as i32, w as i32, from.as_raw()).map_err(failed)?;
        let b = Mat::new_rows_cols_with_data(h as i32, w as i32, to.as_raw()).map_err(failed)?;
        let mut flow = Mat::default();
        self.engine.calc(&a, &b, &mut flow).map_err(failed)?;
        let values = flow.data_typed::<Vec2f>().map_err(failed)?;
        if values.len() != w * h {
            return Err(Error::Settings(format!("optical flow returned {} vectors for {w}×{h}", values.len())));
        }
        Ok(FlowField { width: w, height: h, uv: values.iter().flat_map(|v| [v[0], v[1]]).collect() })
    }
}

/// Luma of an RGB frame (BT.601 weights, as OpenCV's grey conversion), the flow's input.
pub fn grey(image: &RgbImage) -> GrayImage {
    GrayImage::from_fn(image.width(), image.height(), |x, y| {
        let [luma, _, _] = crate::media::image_io::rgb_to_ycbcr(image.get_pixel(x, y).0.map(f32::from));
        image::Luma([luma.round().clamp(0.0, 255.0) as u8])
    })
}
