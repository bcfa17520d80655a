//! What the video job takes from the motion between consecutive input frames (Ruder,
//! Dosovitskiy & Brox 2016; Lai et al. 2018): per frame, the backward flow and the reliability
//! weights c ([`Motion`], estimated on the decoder's side of the pipeline), whether the frame
//! starts a new shot, the previous stylized frame warped into place, and the warping error
//! users compare settings by.

#[cfg(feature = "media")]
use std::collections::VecDeque;
use std::str::FromStr;
#[cfg(feature = "media")]
use std::time::Instant;

use candle_core::{Device, Tensor};
use image::{GrayImage, RgbImage};

use crate::error::Result;
use crate::motion::flow::{self, FlowField};
use crate::net::input;
#[cfg(feature = "media")]
use crate::motion::flow::{FlowEstimator, FlowMethod};
use crate::net::vgg::{LayerName, Vgg16};

/// A frame is a shot cut when more than this share of its pixels is unreliable (the flow found
/// no consistent match for them)…
pub const CUT_UNRELIABLE_SHARE: f64 = 0.6;
/// …or when its grey-level histogram moved this far (total-variation distance, 0..1) from the
/// previous frame's.
pub const CUT_HISTOGRAM_CHANGE: f64 = 0.5;
/// Bins of the grey-level histograms compared for cuts.
const HISTOGRAM_BINS: usize = 32;

/// How each video frame after the first starts its optimisation (`--init-video`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VideoInit {
    /// The previous stylized frame warped along the flow; unreliable pixels (c = 0) from the
    /// frame's own content under the previous frame's warped brushwork.
    PrevWarped,
    /// The previous stylized frame as it is (plain warm start).
    Prev,
    /// The frame's own content (every frame independent of the last).
    Content,
}

impl FromStr for VideoInit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "prev-warped" => Ok(VideoInit::PrevWarped),
            "prev" => Ok(VideoInit::Prev),
            "content" => Ok(VideoInit::Content),
            _ => Err(format!("unknown video init '{s}' (expected prev-warped, prev or content)")),
        }
    }
}

/// The motion from input frame t−1 to input frame t, on frame t's grid.
#[derive(Debug, Clone)]
pub struct Motion {
    /// ŵ: the flow t → t−1; the previous stylized frame is warped along it.
    pub backward: FlowField,
    /// c ∈ {0, 1} per pixel (see [`flow::reliability`]).
    pub reliability: Vec<f32>,
    /// Share of pixels with c = 0.
    pub unreliable_share: f64,
    /// Total-variation distance between the frames' grey-level histograms, 0..1.
    pub histogram_change: f64,
    /// Wall time of the flow estimation and the masks (with `earlier`'s).
    pub seconds: f64,
    /// For long-term consistency: the motion from frames further back (t−j, j > 1, as
    /// [`MotionEstimator::new`] was asked), nearest first; empty after a cut.
    pub earlier: Vec<(usize, Motion)>,
}

impl Motion {
    /// From the two flows (and the grey frames, for the histogram test).
    pub fn from_flows(backward: FlowField, forward: &FlowField, previous: &GrayImage, current: &GrayImage) -> Self {
        let reliability = flow::reliability(&backward, forward);
        let unreliable = reliability.iter().filter(|&&c| c == 0.0).count();
        Motion {
            unreliable_share: unreliable as f64 / reliability.len().max(1) as f64,
            histogram_change: histogram_change(previous, current),
            reliability,
            backward,
            seconds: 0.0,
            earlier: Vec::new(),
        }
    }

    /// Ruder et al.'s long-term weights: for this motion (j = 1) and each of `earlier` in
    /// order, c_long^(t−j) = max(c^(t−j) − Σ_{k<j} c^(t−k), 0) — a pixel is held to the
    /// nearest earlier frame that saw it reliably, and to no other. Returns (j, weights).
    pub fn long_term_weights(&self) -> Vec<(usize, Vec<f32>)> {
        let mut covered = vec![0f32; self.reliability.len()];
        std::iter::once((1, self))
            .chain(self.earlier.iter().map(|(j, m)| (*j, m)))
            .map(|(j, motion)| {
                let weights: Vec<f32> =
                    motion.reliability.iter().zip(&covered).map(|(c, sum)| (c - sum).max(0.0)).collect();
                for (sum, c) in covered.iter_mut().zip(&motion.reliability) {
                    *sum += c;
                }
                (j, weights)
            })
            .collect()
    }

    /// Whether frame t starts a new shot: the flow to the previous frame means nothing there.
    pub fn is_cut(&self) -> bool {
        self.unreliable_share > CUT_UNRELIABLE_SHARE || self.histogram_change > CUT_HISTOGRAM_CHANGE
    }

    /// c as a `(1, 1, H, W)` tensor, to weigh the temporal cost and blend the start image.
    pub fn reliability_tensor(&self, device: &Device) -> Result<Tensor> {
        self.weights_tensor(&self.reliability, device)
    }

    /// Per-pixel weights on this motion's grid as a `(1, 1, H, W)` tensor.
    pub fn weights_tensor(&self, weights: &[f32], device: &Device) -> Result<Tensor> {
        let (w, h) = (self.backward.width(), self.backward.height());
        Ok(Tensor::from_slice(weights, (1, 1, h, w), device)?)
    }

    /// ω(x_{t−1}): a `(1, C, H, W)` image of frame t−1 warped to frame t.
    pub fn warp_tensor(&self, previous: &Tensor) -> Result<Tensor> {
        let (_, channels, h, w) = previous.dims4()?;
        let data = previous.flatten_all()?.to_vec1::<f32>()?;
        let warped = flow::warp_planar(&data, channels, &self.backward);
        Ok(Tensor::from_vec(warped, (1, channels, h, w), previous.device())?)
    }
}

/// Estimates the [`Motion`] of each frame from the one before (and, for long-term
/// consistency, from frames further back), frame by frame (needs the `media` feature: OpenCV).
#[cfg(feature = "media")]
pub struct MotionEstimator {
    flow: FlowEstimator,
    /// The earlier frames j > 1 to estimate motion from, ascending.
    long_term: Vec<usize>,
    /// Grey versions of the frames given so far in this shot, newest first.
    history: VecDeque<GrayImage>,
}

#[cfg(feature = "media")]
impl MotionEstimator {
    /// `temporal_frames`: the set J of earlier frames (1 = the previous one) the temporal cost
    /// looks back to; motion is always estimated from the previous frame.
    pub fn new(method: FlowMethod, temporal_frames: &[usize]) -> Result<Self> {
        let mut long_term: Vec<usize> = temporal_frames.iter().copied().filter(|&j| j > 1).collect();
        long_term.sort_unstable();
        long_term.dedup();
        Ok(MotionEstimator { flow: FlowEstimator::new(method)?, long_term, history: VecDeque::new() })
    }

    /// The motion from the frame given last to `frame` (`None` for the first frame), with the
    /// motion from the frames further back unless `frame` starts a new shot.
    pub fn next(&mut self, frame: &RgbImage) -> Result<Option<Motion>> {
        let started = Instant::now();
        let current = flow::grey(frame);
        if self.history.front().is_some_and(|previous| previous.dimensions() != current.dimensions()) {
            self.history.clear();
        }
        let motion = match self.history.front() {
            Some(previous) => {
                let mut motion = between(&mut self.flow, &current, previous)?;
                if motion.is_cut() {
                    self.history.clear();
                } else {
                    for &j in &self.long_term {
                        if let Some(earlier) = self.history.get(j - 1) {
                            motion.earlier.push((j, between(&mut self.flow, &current, earlier)?));
                        }
                    }
                }
                motion.seconds = started.elapsed().as_secs_f64();
                Some(motion)
            }
            None => None,
        };
        self.history.push_front(current);
        self.history.truncate(self.long_term.last().copied().unwrap_or(1));
        Ok(motion)
    }

}

/// The motion from `earlier` to `current`: both flows and the masks. `earlier` may also be a
/// later frame (the backward passes of `--passes` warp the next frame into this one).
#[cfg(feature = "media")]
pub fn between(flow: &mut FlowEstimator, current: &GrayImage, earlier: &GrayImage) -> Result<Motion> {
    let backward = flow.estimate(current, earlier)?;
    let forward = flow.estimate(earlier, current)?;
    Ok(Motion::from_flows(backward, &forward, earlier, current))
}

/// Total-variation distance between two grey images' normalised histograms (0: same, 1: disjoint).
pub fn histogram_change(a: &GrayImage, b: &GrayImage) -> f64 {
    let histogram = |image: &GrayImage| {
        let mut bins = [0f64; HISTOGRAM_BINS];
        for p in image.pixels() {
            bins[p[0] as usize * HISTOGRAM_BINS / 256] += 1.0;
        }
        let n = (image.width() * image.height()).max(1) as f64;
        bins.map(|b| b / n)
    };
    let (ha, hb) = (histogram(a), histogram(b));
    0.5 * ha.iter().zip(&hb).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

/// The warping error of output frame t (Lai et al. 2018): the mean, over the pixels with
/// c = 1, of the squared RGB difference (values in 0..1, summed over the three channels)
/// between output t and ω(x_{t−1}), output t−1 warped to frame t by the input's flow (as
/// [`Motion::warp_tensor`] gives it, in the network's units). `None` when no pixel is reliable.
pub fn warping_error(output: &RgbImage, warped_previous: &Tensor, motion: &Motion) -> Result<Option<f64>> {
    let current = input::to_tensor(output, &Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
    let warped = warped_previous.flatten_all()?.to_vec1::<f32>()?;
    let plane = motion.reliability.len();
    let (mut sum, mut count) = (0f64, 0usize);
    for (i, &c) in motion.reliability.iter().enumerate() {
        if c == 0.0 {
            continue;
        }
        count += 1;
        sum += (0..3).map(|ch| ((current[ch * plane + i] - warped[ch * plane + i]) as f64 / 255.0).powi(2)).sum::<f64>();
    }
    Ok((count > 0).then(|| sum / count as f64))
}

/// How far an output frame's shallow features are from its own input frame's: Σ over relu2_1
/// and relu3_1 of mean((F_l(output) − F_l(input))²). Averaged over a clip's frames 2…N and
/// divided by the same for per-frame independent stylization, it is the *content lag*: trails
/// and lagging objects raise it above 1.
pub fn content_distance(vgg: &Vgg16, output: &Tensor, input: &Tensor) -> Result<f64> {
    let layers = [LayerName { block: 2, conv: 1 }, LayerName { block: 3, conv: 1 }];
    let (a, b) = (vgg.features(output, &layers)?, vgg.features(input, &layers)?);
    let mut total = 0.0;
    for (a, b) in a.iter().zip(&b) {
        total += (a - b)?.to_dtype(candle_core::DType::F64)?.sqr()?.mean_all()?.to_scalar::<f64>()?;
    }
    Ok(total)
}

/// The warping error of each consecutive pair of a clip's output frames, measured with the
/// optical flow between its input frames (the same size): entry t is frame t's
/// [`warping_error`] against frame t−1 (`None` for frame 0, and where no pixel is reliable).
/// Two renderings of one clip compare pair by pair this way.
#[cfg(feature = "media")]
pub fn pair_warping_errors(inputs: &[RgbImage], outputs: &[RgbImage], method: FlowMethod) -> Result<Vec<Option<f64>>> {
    let mut estimator = MotionEstimator::new(method, &[1])?;
    let mut errors = Vec::with_capacity(outputs.len());
    for (t, (input, output)) in inputs.iter().zip(outputs).enumerate() {
        let error = match estimator.next(input)? {
            Some(motion) if t > 0 => {
                let warped = motion.warp_tensor(&input::to_tensor(&outputs[t - 1], &Device::Cpu)?)?;
                warping_error(output, &warped, &motion)?
            }
            _ => None,
        };
        errors.push(error);
    }
    Ok(errors)
}
