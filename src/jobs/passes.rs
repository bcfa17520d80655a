//! Ruder et al.'s multi-pass (2018), `--passes N`: after the first pass (the video job's own
//! forward, warm-started loop), every frame is painted again N − 1 times, backward and forward
//! in turn. In pass k a frame starts from its pass k − 1 painting blended with its neighbour in
//! the pass's direction — painted earlier in this pass and warped along the flow — where the
//! flow vouches for it,
//!
//!   x'_t = x^(k−1)_t + δ · c ∘ (ω(x^(k)_{t∓1}) − x^(k−1)_t),   δ = [`BLEND`],
//!
//! and J_temporal holds the same pixels to that neighbour. One forward pass only carries the
//! painting forward: what enters the frame is painted by the frames after it, from the photo,
//! and a frame never hears of the ones that follow. A backward pass carries the later frames'
//! painting back over what they have in common, so consistency spreads both ways.
//!
//! The passes need the clip in both directions: the first pass keeps each input frame, at the
//! processing size, in the work directory, and pass k its paintings in `pass-k/` inside it, so
//! an interrupted run resumes in the pass and at the frame where it stopped. The frames are
//! encoded once the last pass is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Tensor;
use image::RgbImage;

use crate::error::{Error, Result};
use crate::jobs::progress::{FrameRecord, StopAware, VideoProgress};
use crate::jobs::pyramid::{Painter, Warm};
use crate::jobs::shots::{self, set_style_ratios, shot_figures, shot_reference_style, ShotFigures};
use crate::jobs::workdir::{Finished, WorkDir};
use crate::media::image_io::FinishedFrame;
use crate::media::matte::FrameMatte;
use crate::motion::flow::{self, FlowEstimator, FlowMethod};
use crate::motion::temporal::{between, warping_error};
use crate::net::input;
use crate::stylize::stylizer::TemporalTarget;

/// δ: the share of the warped neighbour in a reliable pixel's start (Ruder et al.'s blend
/// weight 1: the previous pass's painting and the neighbour's, half and half).
pub const BLEND: f64 = 0.5;

/// The order a pass paints the frames in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Forward,
    Backward,
}

impl Direction {
    /// Pass 1 (the streamed one) goes forward, pass 2 backward, and so on in turn.
    pub fn of_pass(pass: usize) -> Direction {
        if pass % 2 == 1 {
            Direction::Forward
        } else {
            Direction::Backward
        }
    }
}

/// What one pass did, in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassFigures {
    pub pass: usize,
    pub direction: Direction,
    /// Frames this run painted in the pass (the others were taken from an earlier run).
    pub computed_frames: u64,
    pub iterations: usize,
    pub evaluations: usize,
    /// Seconds of the frames this run painted in the pass.
    pub seconds: f64,
    /// Mean warping error of each frame against its neighbour painted before it in the pass
    /// (the previous frame going forward, the next one going backward).
    pub warping_error: Option<f64>,
    /// Mean J_style over the clip.
    pub mean_style: f64,
    /// Per shot, the style ratios of this pass's paintings (against its shot's first frame in
    /// the same pass).
    pub shots: Vec<ShotFigures>,
}

impl PassFigures {
    fn new(pass: usize, records: &[FrameRecord]) -> PassFigures {
        let computed: Vec<&FrameRecord> = records.iter().filter(|r| !r.resumed).collect();
        let errors: Vec<f64> = records.iter().filter_map(|r| r.warping_error).collect();
        PassFigures {
            pass,
            direction: Direction::of_pass(pass),
            computed_frames: computed.len() as u64,
            iterations: computed.iter().map(|r| r.iterations).sum(),
            evaluations: computed.iter().map(|r| r.evaluations).sum(),
            seconds: computed.iter().map(|r| r.seconds).sum(),
            warping_error: (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64),
            mean_style: records.iter().map(|r| r.style).sum::<f64>() / records.len().max(1) as f64,
            shots: shot_figures(records),
        }
    }
}

/// What the passes after the first take from the video job.
pub struct Repaint<'a> {
    /// Passes in all, the first included.
    pub passes: usize,
    /// Iterations of every frame in each later pass; with `max_iterations`, the least.
    pub iterations: usize,
    pub max_iterations: Option<usize>,
    pub flow: FlowMethod,
    /// The settings the work directory holds: each pass's directory is opened with them.
    pub settings: &'a serde_json::Value,
    /// The frame as written, from a painting, its input frame and its matte (its depth,
    /// `--original-colors`, the composite).
    pub finish: &'a FinishFrame<'a>,
    /// With `--matte`, its feather: each frame's matte is the one the first pass kept.
    pub matte_feather: Option<f32>,
}

/// Makes the frame as written from a painting, its input frame and its matte.
pub type FinishFrame<'a> = dyn Fn(&Tensor, &RgbImage, Option<&FrameMatte>) -> Result<FinishedFrame> + 'a;

/// Paints passes 2 to `plan.passes` over the frames the first pass left in `workdir`
/// (`first_pass`: its records, in order), then hands `send` the last pass's frames in order.
/// Returns the last pass's records and each pass's figures, the first's included.
pub fn repaint(
    plan: &Repaint,
    painter: &Painter,
    workdir: &WorkDir,
    first_pass: &[FrameRecord],
    send: &mut dyn FnMut(u64, FinishedFrame) -> Result<()>,
    progress: &mut dyn VideoProgress,
    stop: &AtomicBool,
) -> Result<(Vec<FrameRecord>, Vec<PassFigures>)> {
    let mut figures = vec![PassFigures::new(1, first_pass)];
    // A pass takes an earlier run's paintings only while everything it starts from was taken
    // too: one frame painted anew upstream changes every frame of the passes after it.
    let mut upstream_painted = first_pass.iter().any(|r| !r.resumed);
    let (mut records, mut previous_dir) = (first_pass.to_vec(), None::<WorkDir>);
    for pass in 2..=plan.passes {
        let dir = workdir.pass(pass, plan.settings, first_pass.len() as u64)?;
        let from = previous_dir.as_ref().unwrap_or(workdir);
        records = paint_pass(plan, painter, workdir, from, &dir, pass, first_pass, upstream_painted, progress, stop)?;
        set_style_ratios(&mut records);
        upstream_painted |= records.iter().any(|r| !r.resumed);
        figures.push(PassFigures::new(pass, &records));
        previous_dir = Some(dir);
    }
    let last = previous_dir.as_ref().unwrap_or(workdir);
    for index in 0..records.len() as u64 {
        send(index, load_finished(last, index, plan.passes)?.0)?;
    }
    Ok((records, figures))
}

/// The frame a pass neighbours the current one with: its painting (8-bit, as written) and its
/// input.
struct Neighbour {
    index: usize,
    output: RgbImage,
    input: RgbImage,
}

/// One pass over the clip (`pass` ≥ 2) in its direction: each frame from its painting in
/// `from` (the previous pass's directory) and its neighbour's in this pass, into `dir`.
/// `first_pass`: the first pass's records (shot cuts, timestamps, each shot's reference J_style).
#[allow(clippy::too_many_arguments)]
fn paint_pass(
    plan: &Repaint,
    painter: &Painter,
    workdir: &WorkDir,
    from: &WorkDir,
    dir: &WorkDir,
    pass: usize,
    first_pass: &[FrameRecord],
    upstream_painted: bool,
    progress: &mut dyn VideoProgress,
    stop: &AtomicBool,
) -> Result<Vec<FrameRecord>> {
    let device = painter.finest().vgg().device().clone();
    let frames = first_pass.len();
    let direction = Direction::of_pass(pass);
    let order: Box<dyn Iterator<Item = usize>> = match direction {
        Direction::Forward => Box::new(0..frames),
        Direction::Backward => Box::new((0..frames).rev()),
    };
    let mut flow = FlowEstimator::new(plan.flow)?;
    let mut records: Vec<Option<FrameRecord>> = vec![None; frames];
    let mut take_stored = !upstream_painted;
    let mut neighbour: Option<Neighbour> = None;
    let mut previous_levels = Vec::new();
    for index in order {
        if stop.load(Ordering::SeqCst) {
            return Err(Error::Interrupted(String::new()));
        }
        let input = workdir.load_input(index as u64)?;
        // The neighbour painted before this frame in the pass, unless a cut lies between them.
        let same_shot = match direction {
            Direction::Forward => !first_pass[index].cut,
            Direction::Backward => first_pass.get(index + 1).is_some_and(|next| !next.cut),
        };
        let neighbour_here = neighbour.as_ref().filter(|n| same_shot && n.index.abs_diff(index) == 1);
        // Why an earlier run's painting of this frame is not taken (none when there was none).
        let mut repaired = None;
        if take_stored {
            match dir.load(index as u64) {
                Finished::Frame(image, record) => {
                    progress.frame(&record);
                    previous_levels = record.levels.clone();
                    records[index] = Some(*record);
                    neighbour = Some(Neighbour { index, output: image.rgb8, input });
                    continue;
                }
                Finished::Damaged(why) => repaired = Some(why),
                Finished::Missing => {}
            }
            take_stored = false; // this frame and every one after it in the pass are painted anew
        }
        let started = Instant::now();
        let (before, _) = load_finished(from, index as u64, pass - 1)?;
        let before = input::to_tensor(&before.rgb8, &device)?;
        let mut temporal = Vec::new();
        let (start, motion) = match neighbour_here {
            Some(n) => {
                let flow_started = Instant::now();
                let mut motion = between(&mut flow, &flow::grey(&input), &flow::grey(&n.input))?;
                motion.seconds = flow_started.elapsed().as_secs_f64();
                let warped = motion.warp_tensor(&input::to_tensor(&n.output, &device)?)?;
                let reliability = motion.reliability_tensor(&device)?;
                let start = (&before + ((&warped - &before)?.broadcast_mul(&reliability)? * BLEND)?)?;
                temporal.push(TemporalTarget { warped_previous: warped, reliability });
                (start, Some(motion))
            }
            None => (before, None),
        };
        // The matte the first pass kept; a frame whose matte paints nothing (and no second style
        // the rest) spends no iterations.
        let matte = match plan.matte_feather {
            Some(feather) => workdir.load_matte(index as u64)?.map(|m| FrameMatte::new(m, feather)),
            None => None,
        };
        let weights = matte.as_ref().map(|m| input::matte_tensor(&m.matte, &device)).transpose()?;
        let nothing_to_paint = matte.as_ref().is_some_and(FrameMatte::paints_nothing) && !painter.finest().has_outside_style();
        let iterations = if nothing_to_paint { 0 } else { plan.iterations };
        // A later pass's frames start from a painting each: no frame is behind from the start.
        let top_up = shots::top_up(iterations, plan.max_iterations.filter(|_| iterations > 0), shot_reference_style(&first_pass[..=index]), None);
        let warm = Warm { start: &start, temporal: &temporal, previous: &previous_levels, top_up, matte: weights.as_ref() };
        let mut frame_progress = StopAware { inner: &mut *progress, stop };
        // Keyframed settings: the values the first pass painted the frame with.
        let keyed_painter = first_pass[index].keyframed.as_ref().map(|v| v.painter(painter)).transpose()?;
        let painted = keyed_painter.as_ref().unwrap_or(painter).paint_warm(&input, warm, iterations, &mut frame_progress)?;
        let image = (plan.finish)(&painted.stylized.image, &input, matte.as_ref())?;
        let error = match (&motion, temporal.first()) {
            (Some(motion), Some(target)) => warping_error(&image.rgb8, &target.warped_previous, motion)?,
            _ => None,
        };
        let first = &first_pass[index];
        let record = FrameRecord {
            warping_error: error,
            cut: first.cut,
            unreliable_share: motion.as_ref().map(|m| m.unreliable_share),
            flow_seconds: motion.as_ref().map(|m| m.seconds),
            levels: painted.levels,
            stopped: painted.stopped,
            pass: Some(pass),
            repaired,
            keyframed: first.keyframed.clone(),
            matte_share: matte.as_ref().map(FrameMatte::painted_share),
            ..FrameRecord::new(first.index, first.pts_seconds, &painted.stylized, started.elapsed().as_secs_f64())
        };
        dir.save(&image, &record)?;
        progress.frame(&record);
        previous_levels = record.levels.clone();
        records[index] = Some(record);
        neighbour = Some(Neighbour { index, output: image.rgb8, input });
    }
    Ok(records.into_iter().map(|r| r.expect("every frame painted")).collect())
}

/// Frame `index` of a pass's directory, which must be there (the pass was finished in this run).
fn load_finished(dir: &WorkDir, index: u64, pass: usize) -> Result<(FinishedFrame, FrameRecord)> {
    match dir.load(index) {
        Finished::Frame(image, record) => Ok((image, *record)),
        Finished::Damaged(why) => Err(Error::output(
            dir.path(),
            format!("frame {} of pass {pass} does not read back ({why}); run the same command again to repaint it", index + 1),
        )),
        Finished::Missing => Err(Error::output(dir.path(), format!("frame {} of pass {pass} is missing", index + 1))),
    }
}
