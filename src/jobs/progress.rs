//! What a video or preview job reports as it goes: the record of each finished frame (what the
//! report lists, the work directory keeps and a display shows) and of each preview cell, and
//! the progress traits that receive them, extending [`crate::progress::Progress`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::jobs::keyframes::FrameValues;
use crate::jobs::pyramid::LevelRecord;
use crate::jobs::revealed::RevealedRecord;
use crate::progress::{NoProgress, Progress};
use crate::stylize::stylizer::{LossTerms, Stylized};

/// What the report says of one frame; also the on-disk record of a finished frame.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameRecord {
    /// 0-based position among the frames processed.
    pub index: u64,
    pub pts_seconds: f64,
    pub iterations: usize,
    /// Evaluations of J (see [`Stylized::evaluations`]); 0 in records of older runs.
    #[serde(default)]
    pub evaluations: usize,
    #[serde(rename = "J")]
    pub total: f64,
    #[serde(rename = "J_content")]
    pub content: f64,
    #[serde(rename = "J_style")]
    pub style: f64,
    #[serde(rename = "J_tv")]
    pub tv: f64,
    #[serde(rename = "J_temporal", default)]
    pub temporal: f64,
    /// Wall time spent stylizing this frame (in the run that computed it).
    pub seconds: f64,
    /// Warping error against the previous output frame (Lai et al. 2018; see
    /// [`crate::motion::temporal::warping_error`]); none for the first frame and after a cut.
    #[serde(default)]
    pub warping_error: Option<f64>,
    /// True when the frame starts a new shot and was stylized afresh.
    #[serde(default)]
    pub cut: bool,
    /// Share of the frame's pixels the flow from the previous frame could not vouch for
    /// (c = 0: disoccluded, on a motion boundary, or new at the border).
    #[serde(default)]
    pub unreliable_share: Option<f64>,
    /// Wall time of the optical flow and masks to the previous input frame.
    #[serde(default)]
    pub flow_seconds: Option<f64>,
    /// True when the frame was taken from an earlier, interrupted run.
    #[serde(default)]
    pub resumed: bool,
    /// Why the earlier run's copy of this frame was recomputed instead of resumed: its image
    /// or record did not read back whole, or an earlier frame of its shot was recomputed (it
    /// was started from that one). None when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired: Option<String>,
    /// Each level of the coarse-to-fine painting (one at the default size); none in records of
    /// older runs.
    #[serde(default)]
    pub levels: Vec<LevelRecord>,
    /// J_style over its shot's reference, the J_style of the shot's first frame (1 for that
    /// frame): how much less painted than its shot the frame is. None in records of older runs.
    #[serde(default)]
    pub style_ratio: Option<f64>,
    /// Why a warm frame's optimisation stopped where it did (see
    /// [`crate::jobs::pyramid::TopUp`]); none for a shot's first frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The crop `--paint-revealed` painted before the frame (none without it, or when the
    /// frame revealed nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revealed: Option<RevealedRecord>,
    /// The pass of `--passes` that painted the frame (2, 3, …); none for the first pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<usize>,
    /// With `--matte`, the share of the frame it paints (its mean, 0..1); J_style is over that
    /// region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matte_share: Option<f64>,
    /// The keyframed settings' values this frame was painted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyframed: Option<FrameValues>,
}

impl FrameRecord {
    /// The record of a frame just stylized (no temporal facts yet).
    pub fn new(index: u64, pts_seconds: f64, stylized: &Stylized, seconds: f64) -> Self {
        let terms = &stylized.terms;
        FrameRecord {
            index,
            pts_seconds,
            iterations: stylized.iterations,
            evaluations: stylized.evaluations,
            total: terms.total,
            content: terms.content,
            style: terms.style,
            tv: terms.tv,
            temporal: terms.temporal,
            seconds,
            warping_error: None,
            cut: false,
            unreliable_share: None,
            flow_seconds: None,
            resumed: false,
            repaired: None,
            levels: Vec::new(),
            style_ratio: None,
            stopped: None,
            revealed: None,
            pass: None,
            matte_share: None,
            keyframed: None,
        }
    }
}

/// One cell's settings and outcome, for the report and the progress display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CellRecord {
    pub row: usize,
    pub column: usize,
    /// "starry_night.jpg · style-weight 5e-4, t = 1.5 s".
    pub label: String,
    pub style: PathBuf,
    pub style_scale: f64,
    pub content_weight: f64,
    pub style_weight: f64,
    pub tv_weight: f64,
    /// The frame's time in the clip (none for a still).
    pub t_seconds: Option<f64>,
    #[serde(flatten)]
    pub terms: LossTerms,
    pub iterations: usize,
    /// Evaluations of J (see [`crate::stylize::stylizer::Stylized::evaluations`]).
    pub evaluations: usize,
    pub seconds: f64,
}

/// How a video run reports progress: per frame, and per iteration within a frame.
pub trait VideoProgress: Progress {
    /// Called once the input is open; `total` is the expected frame count, if known.
    fn begin(&mut self, total: Option<u64>);
    /// Called when a frame is finished (computed, or resumed from an earlier run).
    fn frame(&mut self, record: &FrameRecord);
}

/// How a preview grid reports progress: per cell, and per iteration within a cell.
pub trait PreviewProgress: Progress {
    /// Called once the frames are decoded and the network is loaded.
    fn begin_cells(&mut self, total: usize);
    /// Called when a cell is finished.
    fn cell(&mut self, record: &CellRecord);
}

impl VideoProgress for NoProgress {
    fn begin(&mut self, _: Option<u64>) {}
    fn frame(&mut self, _: &FrameRecord) {}
}

impl PreviewProgress for NoProgress {
    fn begin_cells(&mut self, _: usize) {}
    fn cell(&mut self, _: &CellRecord) {}
}

/// Passes iteration progress on and turns the stop flag into [`Progress::should_stop`].
pub struct StopAware<'a> {
    pub inner: &'a mut dyn VideoProgress,
    pub stop: &'a AtomicBool,
}

impl Progress for StopAware<'_> {
    fn iteration(&mut self, done: usize, total: usize, cost: f64) {
        self.inner.iteration(done, total, cost);
    }
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
