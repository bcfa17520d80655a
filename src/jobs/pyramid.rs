//! Coarse-to-fine painting for high resolutions (neural-style's multires; Gatys et al. 2017).
//!
//! VGG's receptive field covers a small patch of a large frame, so an optimisation at 1080p
//! started from the photograph keeps the photograph and only tints it. Instead an image is
//! painted first at a base size (about 320 px on its longest side), then at sizes growing by
//! about 2× up to the working size ([`PyramidSpec::sizes`]); each level starts from the level
//! below's result upscaled and runs a sixth of its iterations, at least two ([`level_budget`]). Each level's
//! style targets are computed at that level's size, so `--style-scale` keeps its meaning (style
//! area = the level's content area × scale).
//!
//! A warm video frame runs the coarsest and the finest of the same levels from its warped start
//! x⁰ (the previous painting carried along the flow): each starts from x⁰ at its size, the
//! finest plus the change the coarsest made, upscaled; J_temporal holds both to the warped
//! previous painting and its reliability c, downscaled. So the pixels the flow cannot vouch for
//! (newly revealed areas) are painted where VGG sees their surroundings, not only at full size,
//! and the whole frame keeps its large strokes from frame to frame; the levels between are
//! skipped ([`warm_levels`]). Each warm level's L-BFGS starts from the curvature the same level
//! ended with on the previous frame ([`LevelRecord::curvature_scale`]), so its first iteration
//! is a real step and the finest needs only one ([`level_budget`]).
//! A level the previous frame did not run (a still's, a first frame's) starts from the γ the
//! level below ended with, scaled by the ratio of their sides ([`finer_curvature_scale`]):
//! Torch's probe, its first step otherwise, moves a 1080p image by so little that the first
//! curvature pair measured rounding noise, and the finest level barely moved.
//!
//! At the default size (256) there is one level, and painting is exactly the plain
//! optimisation.

use std::sync::Arc;

use candle_core::Tensor;
use image::RgbImage;

use crate::error::Result;
use crate::jobs::cache::StylizerCache;
use crate::jobs::spec::{NetworkSpec, PyramidSpec, StyleSpec};
use crate::media::image_io;
use crate::net::input;
use crate::progress::Progress;
use crate::stylize::stylizer::{ContentTarget, EnoughStyle, Settings, Stylized, Stylizer, TemporalTarget};

/// Each level above the coarsest runs 1/this of the iterations of the level below (an
/// iteration costs about 4× more per 2× in size). Measured on a 1280×720 frame (fp32, 2 cores,
/// the two-scale judgement; C is the 320-px painting upscaled): 150/50/17 iterations took
/// 142 s, J_style 0.65× C's seen at 320 px and 0.10× at full size; 100/20/5 took 67 s, 0.65×
/// and 0.12×; 60/12/3 took 44 s, 0.70× and 0.28×. The finer levels sharpen what the coarsest
/// painted. With finer levels started from the level below's curvature
/// ([`finer_curvature_scale`]), a sixth instead of a fifth (100/17/3 instead of 100/20/4) took
/// the same frame from 61.1 s to 54.6 s at 0.87× and 0.040× C (0.87× and 0.033×); the finest
/// level's fourth iteration bought nothing at 320 px and an eighth nothing at either scale
/// (100/20/8: 0.88×, 0.032×). The coarsest level's count is what cannot fall: 80/20/4 judged
/// 1.02× C at 320 px, 60/30/4 1.45× and 50/20/4 7.9× (its painting had not formed, and the
/// finer levels only sharpened the photograph).
const ITERATIONS_FALL: usize = 6;

/// The fewest iterations a level above the coarsest runs when the previous frame did not run it
/// (a still, a first frame). Its L-BFGS starts from a γ guessed from the level below's
/// ([`finer_curvature_scale`]); before that it started from Torch's probe (min(1, 1/‖g‖₁) in
/// fp32, a 1e-5-pixel move at these sizes), which made a level of one iteration change nothing.
/// A level that starts with the curvature it measured itself on the previous frame (a warm
/// frame's) may run one iteration: measured on 4 frames of 720p footage (scripts/bench-hd's clip, fp32), the
/// warm frames' J with 10/2/2 iterations was 3.7e4, 2.8e4, 3.6e4 from the probe, 2.2e4, 1.7e4,
/// 1.5e4 with the curvature known, and 2.6e4, 2.1e4, 1.9e4 with the curvature known and 10/2/1
/// (11.2 s a frame instead of 13.8 s).
const MIN_LEVEL_ITERATIONS: usize = 2;

/// Iterations of level `level` (0: the coarsest) from `iterations` at the coarsest: each finer
/// level a sixth of the one below, rounded up, and at least two, or one when its L-BFGS starts
/// with a known curvature (none above a coarsest level of none, one above a coarsest level of
/// one).
pub fn level_budget(iterations: usize, level: usize, knows_curvature: bool) -> usize {
    let floor = if knows_curvature { 1 } else { MIN_LEVEL_ITERATIONS };
    iterations.div_ceil(ITERATIONS_FALL.saturating_pow(level as u32)).max(floor.min(iterations))
}

/// γ for the first step of a level of `pixels` pixels whose L-BFGS has no curvature of its own,
/// from the γ = (y·s)/(y·y) the level below (`below_pixels` pixels) ended with: times the ratio
/// of their sides, √(pixels / below_pixels). J's terms are means over positions, so in theory ∇J
/// per pixel falls as 1/N and the inverse curvature grows as N, but the levels' own γ grow about
/// as √N: on a 1280×720 still (fp32) they ended at 77, 140–150 and 550–600 at 320, 640 and
/// 1280 px, and on the 1080p bench clip's first frame the finest ended at 647 from 313 at 1057
/// px (×3.3 in pixels). Started at N× (a first step 2× too long at 640 px, and no line search
/// to shorten it), a short level undid the one below: with 150/10/4 iterations that still
/// judged 1.31× C at 320 px (C: the 320-px painting upscaled), against 0.93× from √N× and from
/// 1×; with 150/30/6, N× and 1× gave 0.79× and 0.82×: a longer level recovers. Torch's
/// probe, min(1, 1/‖g‖₁)·g, moved a 1080p image by 1e-5 px and left the finest level's γ at
/// 1.2e-4.
pub fn finer_curvature_scale(below: f64, below_pixels: f64, pixels: f64) -> f64 {
    below * (pixels / below_pixels).sqrt()
}

/// The levels a warm frame runs out of `levels` (coarse to fine): the coarsest and the finest.
/// The coarsest paints large strokes into what the flow could not carry; the finest, started
/// from the warped painting plus that change, restores the detail the warp's interpolation blurs
/// (without it J_style at full size climbed from frame to frame: 1.23× the shot's first frame
/// after one frame of a 1080p pan, 2.69× after 15). The levels between cost a quarter of a warm
/// frame and bought nothing measurable: on 16 frames of a 1920×1080 pan and 12 of the bench's
/// hand-held 1080p clip (fp32, 2 cores) skipping them took a warm frame from 21.1–21.5 s to
/// 15.4–16.1 s, left the warping error (shared/metrics/warp_error.py) at 1.06× and 0.94× and the
/// last frame's two-scale judgement within 8% (0.59× and 0.74× C at 320 px, 0.12× and 0.13× at
/// full size, against 0.55×, 0.71×, 0.11×, 0.11×). docs/resolution.md has the table.
pub fn warm_levels(levels: usize) -> Vec<usize> {
    (0..levels).filter(|&level| level == 0 || level + 1 == levels).collect()
}

/// Iterations of each of `levels` levels started afresh (a still, a first frame), coarse to fine.
pub fn schedule(iterations: usize, levels: usize) -> Vec<usize> {
    (0..levels).map(|level| level_budget(iterations, level, false)).collect()
}

/// What one level did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LevelRecord {
    pub width: u32,
    pub height: u32,
    /// Optimiser steps taken (at most the level's budget; the early stop may end sooner).
    pub iterations: usize,
    /// Evaluations of J.
    pub evaluations: usize,
    pub seconds: f64,
    /// L-BFGS's γ where the level stopped ([`Stylized::curvature_scale`]): the next video frame
    /// starts the same level's L-BFGS from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curvature_scale: Option<f64>,
}

/// The result of a painting: the finest level's image and loss terms, with iterations,
/// evaluations and seconds summed over the levels, and what each level did.
#[derive(Debug, Clone)]
pub struct Painted {
    pub stylized: Stylized,
    pub levels: Vec<LevelRecord>,
    /// Why a warm frame with a [`TopUp`] stopped (none without one).
    pub stopped: Option<String>,
}

/// What a warm frame starts from and is held to, besides its content.
pub struct Warm<'a> {
    /// The starting image, at the working size.
    pub start: &'a Tensor,
    /// J_temporal's targets, at the working size.
    pub temporal: &'a [TemporalTarget],
    /// What the previous frame's levels did (empty when unknown): each level's L-BFGS starts
    /// with the curvature the same level ended with there, so its first iteration is a real
    /// step, not Torch's probe ([`Stylizer::optimise_with_curvature`]).
    pub previous: &'a [LevelRecord],
    /// More iterations where the frame stays less painted than its shot.
    pub top_up: Option<TopUp>,
    /// The region J_style is computed over (`(1, 1, H, W)` at the working size, 1: paint); none:
    /// the whole frame.
    pub matte: Option<&'a Tensor>,
}

/// More iterations for a warm frame less painted than its shot (fast motion, revealed areas):
/// after its budget, the finest level goes on, a budget's worth of iterations at a time, while
/// J_style exceeds `ratio` × the shot's reference (its first frame's J_style), until
/// `max_iterations` in all at that level. Those further iterations hold the frame to the warped
/// previous painting with γ_temp × `temporal_share`. A frame `behind` its shot from the start (the
/// frame before it ended above `ratio`) is held so throughout, in one run that may go on from
/// its budget to `max_iterations` while above `ratio` (no restart: one evaluation fewer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopUp {
    pub reference_style: f64,
    pub ratio: f64,
    pub max_iterations: usize,
    pub behind: bool,
    pub temporal_share: f32,
}

impl TopUp {
    /// The J_style a frame must reach to stop before the cap: `ratio` × the shot's reference.
    fn style_limit(&self) -> f64 {
        self.ratio * self.reference_style
    }
}

/// The stylizers of a pyramid's levels, coarse to fine (the last at the working size), with the
/// style targets of each level's size.
pub struct Painter {
    levels: Vec<Arc<Stylizer>>,
    /// The size of each level but the last, which is the content's.
    coarser_sizes: Vec<(u32, u32)>,
}

impl Painter {
    /// The levels `pyramid` gives for a working size of `width × height`, their stylizers taken
    /// from `cache` (built on first use).
    pub fn new(
        cache: &StylizerCache,
        network: &NetworkSpec,
        settings: &Settings,
        style: &StyleSpec,
        pyramid: &PyramidSpec,
        (width, height): (u32, u32),
    ) -> Result<Painter> {
        let mut sizes = pyramid.sizes(width, height, settings.min_image_side());
        let levels = sizes.iter().map(|&size| cache.stylizer(network, settings, style, size)).collect::<Result<Vec<_>>>()?;
        sizes.pop();
        Ok(Painter { levels, coarser_sizes: sizes })
    }

    /// The same levels with each stylizer's settings changed by `settings` and, given a
    /// `blend`, another blend of the style images ([`Stylizer::with_settings`]): a frame whose
    /// settings are keyframed.
    pub fn with_settings(&self, settings: impl Fn(&Settings) -> Settings, blend: Option<&[f64]>) -> Result<Painter> {
        let levels = self.levels.iter().map(|s| Ok(Arc::new(s.with_settings(settings(s.settings()), blend)?))).collect::<Result<Vec<_>>>()?;
        Ok(Painter { levels, coarser_sizes: self.coarser_sizes.clone() })
    }

    /// The same levels with `outside`'s style (built for the same sizes) painting what a matte
    /// leaves out ([`Stylizer::with_outside_style`]).
    pub fn with_outside_style(&self, outside: &Painter) -> Result<Painter> {
        if outside.levels.len() != self.levels.len() {
            return Err(crate::error::Error::Settings("--style-outside: the two styles' painters have different levels".into()));
        }
        let levels =
            self.levels.iter().zip(&outside.levels).map(|(s, o)| Ok(Arc::new(s.with_outside_style(o)?))).collect::<Result<Vec<_>>>()?;
        Ok(Painter { levels, coarser_sizes: self.coarser_sizes.clone() })
    }

    /// One level: the plain optimisation with `stylizer`.
    pub fn single(stylizer: Arc<Stylizer>) -> Painter {
        Painter { levels: vec![stylizer], coarser_sizes: Vec::new() }
    }

    /// The stylizer of level `k` (0: the coarsest).
    pub fn level(&self, k: usize) -> &Arc<Stylizer> {
        &self.levels[k]
    }

    /// The size of each level, coarse to fine, for content of `width × height`.
    pub fn sizes(&self, content: (u32, u32)) -> Vec<(u32, u32)> {
        self.coarser_sizes.iter().copied().chain([content]).collect()
    }

    /// The stylizer of the working size.
    pub fn finest(&self) -> &Stylizer {
        self.levels.last().expect("a painter has at least one level")
    }

    /// The size of the coarsest level, where a cold start begins, for content of `width × height`.
    pub fn coarsest_size(&self, (width, height): (u32, u32)) -> (u32, u32) {
        self.coarser_sizes.first().copied().unwrap_or((width, height))
    }

    /// Paints `content` (at the working size) from `start`, an image at the coarsest level's
    /// size, with `iterations` at the coarsest level and fewer above ([`schedule`]); with a
    /// `matte` (`(1, 1, H, W)` at the working size), J_style over the region it marks.
    pub fn paint(&self, content: &RgbImage, matte: Option<&Tensor>, start: &Tensor, iterations: usize, progress: &mut dyn Progress) -> Result<Painted> {
        let cold = Climb { start: Start::Cold(start), temporal: &[], previous: &[], top_up: None, matte };
        self.climb(content, cold, iterations, progress)
    }

    /// Paints a warm frame (see [`Warm`]); each level starts from `warm.start` at its size plus
    /// the coarser levels' change, upscaled.
    pub fn paint_warm(&self, content: &RgbImage, warm: Warm, iterations: usize, progress: &mut dyn Progress) -> Result<Painted> {
        let Warm { start, temporal, previous, top_up, matte } = warm;
        self.climb(content, Climb { start: Start::Warm(start), temporal, previous, top_up, matte }, iterations, progress)
    }

    fn climb(&self, content: &RgbImage, climb: Climb, iterations: usize, progress: &mut dyn Progress) -> Result<Painted> {
        let Climb { start, temporal, previous, top_up, matte } = climb;
        // Each level's L-BFGS starts from the previous frame's curvature at that level, where
        // there is one.
        let sizes = self.sizes(content.dimensions());
        let curvature: Vec<Option<f64>> = sizes
            .iter()
            .map(|&size| previous.iter().find(|p| (p.width, p.height) == size).and_then(|p| p.curvature_scale))
            .collect();
        let runs: Vec<usize> = match start {
            Start::Cold(_) => (0..self.levels.len()).collect(),
            Start::Warm(_) => warm_levels(self.levels.len()),
        };
        let budgets: Vec<usize> =
            curvature.iter().enumerate().map(|(level, known)| level_budget(iterations, level, known.is_some())).collect();
        let total: usize = runs.iter().map(|&level| budgets[level]).sum();
        let mut records: Vec<LevelRecord> = Vec::with_capacity(self.levels.len());
        // The level below's result, and the start its change is measured from (warm: the warped
        // start at that level's size).
        let mut below: Option<(Tensor, Tensor)> = None;
        let mut last = None;
        let mut stopped = None;
        for &level in &runs {
            let (stylizer, budget, (width, height)) = (&self.levels[level], budgets[level], sizes[level]);
            let device = stylizer.vgg().device();
            let content_here = if content.dimensions() == (width, height) {
                input::to_tensor(content, device)?
            } else {
                input::to_tensor(&image_io::resize(content, width, height), device)?
            };
            let mut target = stylizer.content_target(&content_here)?;
            if !temporal.is_empty() {
                let here = temporal
                    .iter()
                    .map(|t| {
                        Ok(TemporalTarget {
                            warped_previous: input::resize_planar(&t.warped_previous, width, height)?,
                            reliability: weights_at(&t.reliability, width, height)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                target = target.with_temporal(here)?;
            }
            if let Some(matte) = matte {
                target = target.with_matte(&weights_at(matte, width, height)?)?;
            }
            let (level_start, change_from) = match (&start, &below) {
                (Start::Cold(start) | Start::Warm(start), None) => {
                    let here = input::resize_planar(start, width, height)?;
                    (here.clone(), here)
                }
                (Start::Cold(_), Some((result, _))) => {
                    let here = input::resize_planar(result, width, height)?;
                    (here.clone(), here)
                }
                (Start::Warm(start), Some((result, started_from))) => {
                    let here = input::resize_planar(start, width, height)?;
                    // The change goes everywhere, not only where the flow could not vouch:
                    // measured on 4 frames of 720p footage (scripts/bench-hd's clip), the
                    // last frame's J_style seen at 320 px was 0.77× that of the 320-px run's
                    // upscaled, warping error 1.34e-3 (the 256-px run's: 1.53e-3); with the
                    // change kept to the unreliable pixels (1 − c), 1.53× and 6.8e-4: the
                    // carried painting, refined only at full size, lost its large strokes
                    // within three frames.
                    let change = input::resize_planar(&(result - started_from)?, width, height)?;
                    ((&here + change)?, here)
                }
            };
            let done_before: usize = runs.iter().take_while(|&&l| l < level).map(|&l| budgets[l]).sum();
            let mut level_progress = LevelProgress { inner: progress, done_before, total };
            let pixels = (width as f64) * (height as f64);
            let scale = curvature[level].or_else(|| {
                let below = records.last()?;
                Some(finer_curvature_scale(below.curvature_scale?, below.width as f64 * below.height as f64, pixels))
            });
            let finest_top_up = top_up.filter(|_| level + 1 == self.levels.len());
            let mut stylized = match finest_top_up {
                // Behind from the start: one run, held loosely throughout, that may go on to the
                // cap once it has had its budget.
                Some(top) if top.behind => {
                    level_progress.total += top.max_iterations.saturating_sub(budget);
                    let enough = EnoughStyle { min_iterations: budget, style_limit: top.style_limit() };
                    let relaxed = target.with_temporal_share(top.temporal_share)?;
                    stylizer.optimise_until(&relaxed, &level_start, top.max_iterations.max(budget), scale, Some(enough), &mut level_progress)?
                }
                _ => stylizer.optimise_with_curvature(&target, &level_start, budget, scale, &mut level_progress)?,
            };
            if let Some(top) = finest_top_up {
                let (more, why) = top_up_level(stylizer, &target, stylized, budget, top, &mut level_progress)?;
                stylized = more;
                stopped = Some(why);
            }
            records.push(LevelRecord {
                width,
                height,
                iterations: stylized.iterations,
                evaluations: stylized.evaluations,
                seconds: stylized.seconds,
                curvature_scale: stylized.curvature_scale,
            });
            below = Some((stylized.image.clone(), change_from));
            last = Some(stylized);
        }
        let mut stylized = last.expect("a painter has at least one level");
        stylized.iterations = records.iter().map(|r| r.iterations).sum();
        stylized.evaluations = records.iter().map(|r| r.evaluations).sum();
        stylized.seconds = records.iter().map(|r| r.seconds).sum();
        Ok(Painted { stylized, levels: records, stopped })
    }
}

/// Runs [`TopUp`]'s further iterations on a level's result: chunks of `chunk` iterations (at
/// least 1), each L-BFGS started with the curvature the previous one ended with, against the
/// level's `target` with J_temporal's share at [`TopUp::temporal_share`]. Returns the result, with
/// the iterations, evaluations and seconds of all its chunks, and why it stopped.
fn top_up_level(
    stylizer: &Stylizer,
    target: &ContentTarget,
    first: Stylized,
    chunk: usize,
    top: TopUp,
    progress: &mut LevelProgress,
) -> Result<(Stylized, String)> {
    let limit = top.style_limit();
    let ratio = |s: &Stylized| s.terms.style / top.reference_style;
    let mut current = first;
    if current.terms.style <= limit {
        let after = match current.iterations <= chunk {
            true => "the minimum".to_string(),
            false => format!("{} iterations", current.iterations),
        };
        let why = format!("painted: style ratio {:.2} ≤ {} after {after}", ratio(&current), top.ratio);
        return Ok((current, with_behind(why, top)));
    }
    let target = &target.with_temporal_share(top.temporal_share)?;
    let level_started_at = progress.done_before;
    while current.terms.style > limit && current.iterations < top.max_iterations && !progress.should_stop() {
        let steps = chunk.max(1).min(top.max_iterations - current.iterations);
        // The progress display's count grows by the chunk; its steps follow the level's.
        progress.total += steps;
        progress.done_before = level_started_at + current.iterations;
        let more = stylizer.optimise_with_curvature(target, &current.image, steps, current.curvature_scale, progress)?;
        if more.iterations == 0 {
            break;
        }
        current = Stylized {
            iterations: current.iterations + more.iterations,
            evaluations: current.evaluations + more.evaluations,
            seconds: current.seconds + more.seconds,
            ..more
        };
    }
    let why = if current.terms.style <= limit {
        format!("painted: style ratio {:.2} ≤ {} after {} iterations", ratio(&current), top.ratio, current.iterations)
    } else {
        format!("--max-iterations {} reached at style ratio {:.2}", top.max_iterations, ratio(&current))
    };
    Ok((current, with_behind(why, top)))
}

/// `why`, and for a frame [`TopUp::behind`] its shot from the start, that it was held more loosely.
fn with_behind(why: String, top: TopUp) -> String {
    match top.behind {
        true => format!("{why} (behind its shot from the start: γ_temp × {} throughout)", top.temporal_share),
        false => why,
    }
}

/// Per-pixel weights (reliability c) at `width × height`: resized, they stay within 0..1.
fn weights_at(weights: &Tensor, width: u32, height: u32) -> Result<Tensor> {
    let (_, _, h, w) = weights.dims4()?;
    if (w as u32, h as u32) == (width, height) {
        return Ok(weights.clone());
    }
    Ok(input::resize_planar(weights, width, height)?.clamp(0f32, 1f32)?)
}

/// What a climb up the levels starts from and is held to (a cold start: its start only).
struct Climb<'a> {
    start: Start<'a>,
    temporal: &'a [TemporalTarget],
    previous: &'a [LevelRecord],
    top_up: Option<TopUp>,
    matte: Option<&'a Tensor>,
}

/// Where a painting starts: a cold start at the coarsest size, or a warm frame's start at the
/// working size.
enum Start<'a> {
    Cold(&'a Tensor),
    Warm(&'a Tensor),
}

/// Passes a level's iterations on as steps of the whole pyramid.
struct LevelProgress<'a> {
    inner: &'a mut dyn Progress,
    done_before: usize,
    total: usize,
}

impl Progress for LevelProgress<'_> {
    fn iteration(&mut self, done: usize, _: usize, cost: f64) {
        self.inner.iteration(self.done_before + done, self.total, cost);
    }

    fn should_stop(&self) -> bool {
        self.inner.should_stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_runs_a_sixth_of_the_one_below_and_at_least_two() {
        assert_eq!(schedule(100, 3), [100, 17, 3]);
        assert_eq!(schedule(100, 4), [100, 17, 3, 2]);
        assert_eq!(schedule(150, 5), [150, 25, 5, 2, 2]);
        assert_eq!(schedule(10, 4), [10, 2, 2, 2]);
        assert_eq!(schedule(0, 3), [0, 0, 0]);
        assert_eq!(schedule(1, 3), [1, 1, 1]);
        assert_eq!(schedule(7, 1), [7]);
    }

    #[test]
    fn a_warm_frame_runs_the_coarsest_and_the_finest_level() {
        assert_eq!(warm_levels(4), [0, 3]);
        assert_eq!(warm_levels(3), [0, 2]);
        assert_eq!(warm_levels(2), [0, 1]);
        assert_eq!(warm_levels(1), [0]);
        assert!(warm_levels(0).is_empty());
    }

    #[test]
    fn a_level_that_knows_its_curvature_may_run_one_iteration() {
        let warm: Vec<usize> = (0..4).map(|level| level_budget(10, level, level > 0)).collect();
        assert_eq!(warm, [10, 2, 1, 1]);
        assert_eq!(level_budget(100, 2, true), 3);
        assert_eq!(level_budget(0, 3, true), 0);
    }

    #[test]
    fn a_finer_level_starts_from_the_gamma_below_times_the_ratio_of_the_sides() {
        // 2× the side, 4× the pixels: γ doubles.
        assert_eq!(finer_curvature_scale(75.0, 320.0 * 180.0, 640.0 * 360.0), 150.0);
        assert_eq!(finer_curvature_scale(75.0, 100.0, 100.0), 75.0);
    }
}
