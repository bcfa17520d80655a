//! A clip split into segments that separate processes (array tasks of Slurm, Kubernetes,
//! AWS Batch…) stylize at once, and the step that joins them into the video.
//!
//! - The plan ([`Plan`]): the clip's frames are counted and its shot cuts found by decoding it
//!   once at the processing size; the N segments split it evenly, each boundary moved to a
//!   shot cut when one lies within a quarter segment of it. Every node computes the same plan
//!   (the same decoder on the same file), and the first to finish writes it to the work
//!   directory (`<output>.partial/plan.json`, atomically); the others check theirs against it.
//! - A segment ([`run_segment`]) stylizes its frames into its own sub-directory
//!   (`<output>.partial/segment-I-of-N/`), resumable like a whole run. A boundary inside a shot
//!   gets an overlap of K frames (`--segment-overlap`, at most the later segment's length):
//!   the later segment starts K frames early (a warm-up, not kept) and the earlier one runs K
//!   frames on, so both have painted the K frames after the boundary. A boundary at a cut needs none: the frame starts afresh anyway.
//! - Assembly ([`assemble`]): the frames in order, each overlap cross-faded from the earlier
//!   segment's painting to the later one's (weights (k+1)/(K+1) over its K frames), encoded
//!   as a single run would (audio, timing, colour, timecode).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::jobs::cache::StylizerCache;
use crate::jobs::pipeline::{self, OutputSize, ToEncoder, VideoJob};
use crate::jobs::progress::FrameRecord;
use crate::jobs::progress::VideoProgress;
use crate::jobs::spec::{refuse_existing, write_json};
use crate::jobs::workdir::{Finished, WorkDir};
use crate::media::image_io::{FinishedFrame, Rgb16Image};
use crate::media::video::{DecodeOptions, EncodeOptions, EncodedInfo, FrameSize, VideoDecoder};
use crate::motion::temporal::{histogram_change, CUT_HISTOGRAM_CHANGE};

/// Frames of overlap at a boundary inside a shot, by default.
pub const DEFAULT_OVERLAP: u64 = 20;

/// The environment variables array engines number their tasks with, in the order looked up.
pub const INDEX_VARIABLES: [&str; 3] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// Which segment this process stylizes: `I/N`, I from 0 to N−1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SegmentSpec {
    pub index: usize,
    pub count: usize,
}

impl SegmentSpec {
    /// `I/N`, or `auto/N` with I from the engine's environment ([`INDEX_VARIABLES`]).
    pub fn parse(text: &str) -> std::result::Result<SegmentSpec, String> {
        Self::parse_with(text, |name| std::env::var(name).ok())
    }

    /// [`SegmentSpec::parse`] with the environment given (for tests).
    pub fn parse_with(text: &str, env: impl Fn(&str) -> Option<String>) -> std::result::Result<SegmentSpec, String> {
        let bad = || format!("'{text}' is not a segment (I/N with 0 ≤ I < N, or auto/N)");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        let index: usize = if index.trim() == "auto" {
            let (name, value) = INDEX_VARIABLES
                .iter()
                .find_map(|name| env(name).map(|value| (*name, value)))
                .ok_or_else(|| format!("--segment auto/{count}: none of {} is set", INDEX_VARIABLES.join(", ")))?;
            value.trim().parse().map_err(|_| format!("--segment auto/{count}: {name}={value} is not a task index"))?
        } else {
            index.trim().parse().map_err(|_| bad())?
        };
        if count == 0 || index >= count {
            return Err(format!("segment {index}/{count}: the index must be from 0 to {}", count.max(1) - 1));
        }
        Ok(SegmentSpec { index, count })
    }
}

/// Frames `start..end` of the clip (as delivered: after `--start`/`--duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRange {
    pub start: u64,
    pub end: u64,
}

impl FrameRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub fn contains(&self, frame: u64) -> bool {
        (self.start..self.end).contains(&frame)
    }
}

/// Where one segment ends and the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boundary {
    /// The first frame of the later segment.
    pub frame: u64,
    /// Whether that frame starts a new shot (no overlap needed).
    pub cut: bool,
    /// Frames both neighbours paint after it: the plan's overlap, none at a cut, and never
    /// more than the later segment keeps.
    #[serde(default)]
    pub overlap: u64,
}

/// One segment's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPlan {
    /// The frames this segment contributes (before cross-fading).
    pub keep: FrameRange,
    /// The frames it stylizes: `keep` with the warm-up before and the overlap after.
    pub run: FrameRange,
}

/// How a clip is split: the same on every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub frames: u64,
    /// Each frame's timestamp, in the video stream's time base.
    pub pts: Vec<i64>,
    /// The frames that start a new shot (the grey histogram moved by more than half).
    pub cuts: Vec<u64>,
    pub overlap: u64,
    pub boundaries: Vec<Boundary>,
    pub segments: Vec<SegmentPlan>,
}

/// The N−1 boundaries of `frames` frames split in `count`: the even split, each moved to the
/// nearest shot cut within a quarter segment (the earlier of two as near), kept in order and
/// leaving no segment empty.
pub fn boundaries(frames: u64, count: usize, cuts: &[u64]) -> Vec<Boundary> {
    let count = count as u64;
    let window = frames / (4 * count.max(1));
    let mut result: Vec<Boundary> = Vec::new();
    for i in 1..count {
        let even = (i * frames + count / 2) / count;
        let previous = result.last().map_or(0, |b| b.frame);
        let nearest_cut = cuts
            .iter()
            .copied()
            .filter(|&c| c.abs_diff(even) <= window && c > previous && c < frames)
            .min_by_key(|&c| (c.abs_diff(even), c));
        let boundary = match nearest_cut {
            Some(frame) => Boundary { frame, cut: true, overlap: 0 },
            None => Boundary { frame: even.max(previous + 1), cut: cuts.contains(&even), overlap: 0 },
        };
        if boundary.frame < frames {
            result.push(boundary);
        }
    }
    result
}

impl Plan {
    /// Splits a clip of `pts.len()` frames with these cuts into `count` segments with
    /// `overlap` frames at boundaries inside a shot.
    pub fn new(pts: Vec<i64>, cuts: Vec<u64>, count: usize, overlap: u64) -> Plan {
        let frames = pts.len() as u64;
        let mut boundaries = boundaries(frames, count, &cuts);
        for i in 0..boundaries.len() {
            let later_end = boundaries.get(i + 1).map_or(frames, |b| b.frame);
            let b = &mut boundaries[i];
            b.overlap = if b.cut { 0 } else { overlap.min(later_end - b.frame) };
        }
        let edge = |frame| Boundary { frame, cut: true, overlap: 0 };
        let mut starts = vec![edge(0)];
        starts.extend(boundaries.iter().copied());
        let segments = starts
            .iter()
            .enumerate()
            .map(|(i, start)| {
                let end = starts.get(i + 1).copied().unwrap_or(edge(frames));
                SegmentPlan {
                    keep: FrameRange { start: start.frame, end: end.frame },
                    run: FrameRange { start: start.frame.saturating_sub(start.overlap), end: end.frame + end.overlap },
                }
            })
            .collect();
        Plan { frames, pts, cuts, overlap, boundaries, segments }
    }

    /// Decodes the job's stretch of the clip at its processing size: frame count, timestamps
    /// and shot cuts (the same test as the pipeline's, so a boundary at a cut is one there).
    pub fn scan(job: &VideoJob, count: usize, overlap: u64) -> Result<Plan> {
        let mut decoder = VideoDecoder::open(&job.input, &decode_options(job, 0, None))?;
        // What would fail the segments (or only their assembly) fails before the plan is made.
        pipeline::input_check(job)(decoder.info())?;
        let (mut pts, mut cuts) = (Vec::new(), Vec::new());
        let mut previous: Option<image::GrayImage> = None;
        while let Some(frame) = decoder.next_frame()? {
            let grey = image::DynamicImage::ImageRgb8(frame.image).into_luma8();
            if previous.as_ref().is_some_and(|p| histogram_change(p, &grey) > CUT_HISTOGRAM_CHANGE) {
                cuts.push(frame.index);
            }
            pts.push(frame.pts);
            previous = Some(grey);
        }
        if pts.is_empty() {
            return Err(Error::input(&job.input, "contains no video frames in the requested range"));
        }
        if (pts.len() as u64) < count as u64 {
            return Err(Error::input(&job.input, format!("has {} frames: too few for {count} segments", pts.len())));
        }
        Ok(Plan::new(pts, cuts, count, overlap))
    }

    /// The plan in `output`'s work directory, or a new one written there. A plan for another
    /// segment count or overlap is an error (the work directory belongs to that split).
    pub fn load_or_make(job: &VideoJob, count: usize, overlap: u64) -> Result<Plan> {
        let path = plan_path(&job.output);
        if let Some(existing) = Plan::load(&job.output)? {
            if existing.segments.len() != count || existing.overlap != overlap {
                return Err(Error::Settings(format!(
                    "{} was planned for {} segments with {} frames of overlap, not {count} with {overlap}; \
                     run with those, or remove {} to start over",
                    path.display(),
                    existing.segments.len(),
                    existing.overlap,
                    WorkDir::path_for(&job.output).display()
                )));
            }
            return Ok(existing);
        }
        let plan = Plan::scan(job, count, overlap)?;
        let top = WorkDir::path_for(&job.output);
        std::fs::create_dir_all(&top).map_err(|e| Error::output(&top, format!("cannot create: {e}")))?;
        write_json(&path, &plan)?;
        Ok(plan)
    }

    /// The plan written for `output`, if there is one.
    pub fn load(output: &Path) -> Result<Option<Plan>> {
        let path = plan_path(output);
        let Ok(text) = std::fs::read(&path) else { return Ok(None) };
        Plan::from_json(&text).map(Some).map_err(|e| Error::input(&path, format!("not a segment plan: {e}")))
    }

    /// A plan from its JSON, accepted only if it is the plan its own timestamps, cuts, segment
    /// count and overlap make (what [`Plan::new`] gives): a damaged or hand-edited plan whose
    /// segments would miss or repeat frames is refused here, not found out while assembling.
    pub fn from_json(json: &[u8]) -> std::result::Result<Plan, String> {
        let plan: Plan = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        if plan.segments.is_empty() || plan.pts.is_empty() {
            return Err("it has no frames or no segments".into());
        }
        if plan.segments.len() as u64 > plan.frames {
            return Err("it has more segments than frames".into());
        }
        let remade = Plan::new(plan.pts.clone(), plan.cuts.clone(), plan.segments.len(), plan.overlap);
        if remade != plan {
            return Err("its segments are not the split of its own frames (damaged or edited)".into());
        }
        Ok(plan)
    }
}

fn plan_path(output: &Path) -> PathBuf {
    WorkDir::path_for(output).join("plan.json")
}

fn segment_dir(output: &Path, index: usize, count: usize) -> PathBuf {
    WorkDir::path_for(output).join(format!("segment-{index}-of-{count}"))
}

fn decode_options(job: &VideoJob, skip_frames: u64, max_frames: Option<u64>) -> DecodeOptions {
    DecodeOptions {
        size: FrameSize::LongestSide(job.size),
        start: job.start,
        duration: job.duration,
        max_frames: match (max_frames, job.max_frames) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        sequence_rate: job.sequence_rate,
        skip_frames,
        deinterlace: job.deinterlace,
        keep_source_size: false,
    }
}

/// What a segment run did.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentReport {
    pub segment: SegmentSpec,
    pub plan: SegmentPlan,
    /// Frames of the whole clip.
    pub clip_frames: u64,
    pub frames: u64,
    pub resumed_frames: u64,
    pub seconds: f64,
    /// Whether every segment's frames are now in the work directory.
    pub all_segments_done: bool,
}

/// Stylizes one segment of `job`'s clip into the shared work directory.
pub fn run_segment(
    job: &VideoJob,
    segment: SegmentSpec,
    overlap: u64,
    progress: &mut dyn VideoProgress,
    stop: &AtomicBool,
    cache: &StylizerCache,
) -> Result<SegmentReport> {
    let started = Instant::now();
    if job.output.exists() && !job.overwrite {
        return Err(Error::output(&job.output, "already exists: the segments were assembled (use -y/--overwrite to redo them)"));
    }
    pipeline::check_video_job(job)?;
    if job.passes > 1 {
        return Err(Error::Settings("--passes paints the whole clip back and forth in one run: it does not split into --segment runs".into()));
    }
    if job.keyframes.counts_frames() {
        return Err(Error::Settings("--segment: keys at frame numbers count from each segment's start; give them as times (4s=…)".into()));
    }
    let plan = Plan::load_or_make(job, segment.count, overlap)?;
    let this = plan.segments[segment.index];
    check_other_segments(job, &plan, segment.index)?;

    let options = decode_options(job, this.run.start, Some(this.run.len()));
    let (decoder, info, frames) = pipeline::spawn_decoder(job.input.clone(), options.clone(), job.flow, job.temporal_frames.clone(), pipeline::input_check(job))?;
    let (width, height) = info.output_size(FrameSize::LongestSide(job.size));
    let prepared = (|| {
        if job.matte.is_some() && job.output_size == OutputSize::Source && (width, height) != (info.width, info.height) {
            return Err(Error::Settings(format!(
                "--matte with --output-size source and --segment: the segments keep frames at the processing size ({width}×{height}), not the source's; paint at the source's size (--size source) or in one run"
            )));
        }
        let painter = pipeline::painter(job, cache, (width, height))?;
        let init_image = pipeline::coarsest_init_image(job, &painter, (width, height))?;
        let matte = pipeline::open_matte(job, &info, (width, height), &options)?;
        let workdir = WorkDir::open_dir(&segment_dir(&job.output, segment.index, segment.count), &pipeline::fingerprint(job)?, job.fresh)?;
        Ok((painter, init_image, matte, workdir))
    })();
    let (painter, init_image, matte, workdir) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return Err(pipeline::stop_decoder(e, frames, decoder)),
    };
    progress.begin(Some(this.run.len()));
    let mut records = Vec::new();
    let deep = pipeline::deep_output(job, &info);
    let result = pipeline::stylize_frames(job, &painter, &workdir, init_image, matte, deep, &frames, pipeline::FramesTo::WorkDir, progress, stop, &mut records);
    drop(frames);
    let result = pipeline::join_decoder(decoder, &job.input).and(result);
    result.map_err(|e| pipeline::with_resume_hint(e, &workdir))?;
    Ok(SegmentReport {
        segment,
        plan: this,
        clip_frames: plan.frames,
        frames: records.len() as u64,
        resumed_frames: records.iter().filter(|r| r.resumed).count() as u64,
        seconds: started.elapsed().as_secs_f64(),
        all_segments_done: missing_frames(job, &plan)?.is_empty(),
    })
}

/// Refuses, before any work, a segment run whose settings are not those the other segments of
/// the same output were painted with: the assembly could not join them, and `--fresh` (which
/// only concerns this segment) would not help.
fn check_other_segments(job: &VideoJob, plan: &Plan, this: usize) -> Result<()> {
    let count = plan.segments.len();
    let fingerprint = pipeline::fingerprint(job)?;
    for index in (0..count).filter(|&i| i != this) {
        let dir = segment_dir(&job.output, index, count);
        let differing = WorkDir::differing_settings(&dir, &fingerprint)?;
        if !differing.is_empty() {
            return Err(Error::Settings(format!(
                "segment {index}/{count} of {} was painted with other settings ({}); every segment of one output needs the same: \
                 run this one with those, or remove {} to start all of them over",
                job.output.display(),
                differing.join(", "),
                WorkDir::path_for(&job.output).display()
            )));
        }
    }
    Ok(())
}

/// Per segment that is not finished: its index and the frames it still lacks.
fn missing_frames(job: &VideoJob, plan: &Plan) -> Result<Vec<(usize, u64)>> {
    let count = plan.segments.len();
    let fingerprint = pipeline::fingerprint(job)?;
    let mut missing = Vec::new();
    for (index, segment) in plan.segments.iter().enumerate() {
        let dir = segment_dir(&job.output, index, count);
        let done = WorkDir::finished_in(&dir, &fingerprint)?;
        if done < segment.run.len() {
            missing.push((index, segment.run.len() - done));
        }
    }
    Ok(missing)
}

/// What [`assemble`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AssembleReport {
    pub output: EncodedInfo,
    pub segments: usize,
    pub boundaries: Vec<Boundary>,
    /// Frames cross-faded between two segments.
    pub blended_frames: u64,
    /// Each frame's record, numbered in the clip (a cross-faded frame: the later segment's).
    pub frames: Vec<FrameRecord>,
    pub seconds: f64,
}

/// The result of `--assemble`.
#[derive(Debug, Clone)]
pub enum Assembled {
    Written(Box<AssembleReport>),
    /// The output was already complete (assembled before, its work directory gone).
    AlreadyComplete,
}

/// Joins the segments in `job`'s work directory into its output: every frame once, in order,
/// the overlaps cross-faded; then removes the work directory (unless `keep_work`).
pub fn assemble(job: &VideoJob) -> Result<Assembled> {
    let started = Instant::now();
    let top = WorkDir::path_for(&job.output);
    if job.output.exists() && !top.exists() {
        return Ok(Assembled::AlreadyComplete);
    }
    let plan = Plan::load(&job.output)?.ok_or_else(|| {
        Error::output(&job.output, format!("no segments to assemble ({} has no plan.json; run the --segment tasks first)", top.display()))
    })?;
    let missing = missing_frames(job, &plan)?;
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|(i, n)| format!("{i}/{} lacks {n} frames", plan.segments.len())).collect();
        return Err(Error::output(&job.output, format!("cannot assemble yet: segment {}", list.join(", segment "))));
    }
    refuse_existing(&job.output, job.overwrite)?;
    let info = VideoDecoder::open(&job.input, &decode_options(job, 0, Some(1)))?.info().clone();
    let encode_options = EncodeOptions { codec: job.codec, copy_other_streams: job.keep_audio, start: job.start, duration: job.duration };
    let scale_to = (job.output_size == OutputSize::Source).then_some((info.width, info.height));
    let (to_encoder, encoder) =
        pipeline::spawn_encoder(job.output.clone(), info, encode_options, scale_to, job.frames_dir.clone(), job.bit_depth)?;

    let count = plan.segments.len();
    let fingerprint = pipeline::fingerprint(job)?;
    let dirs: Vec<WorkDir> =
        (0..count).map(|i| WorkDir::open_dir(&segment_dir(&job.output, i, count), &fingerprint, false)).collect::<Result<_>>()?;
    let load = |segment: usize, frame: u64| -> Result<(FinishedFrame, FrameRecord)> {
        let local = frame - plan.segments[segment].run.start;
        match dirs[segment].load(local) {
            Finished::Frame(image, record) => Ok((image, *record)),
            Finished::Missing => Err(Error::output(dirs[segment].path(), format!("frame {} is missing", local + 1))),
            Finished::Damaged(why) => Err(Error::output(
                dirs[segment].path(),
                format!("{why}; run --segment {segment}/{count} again to recompute it, then --assemble"),
            )),
        }
    };
    let mut records = Vec::with_capacity(plan.frames as usize);
    let mut blended_frames = 0;
    let send = |message| to_encoder.send(message).map_err(|_| Error::output(&job.output, "the encoder stopped"));
    for frame in 0..plan.frames {
        let owner = plan.segments.iter().position(|s| s.keep.contains(frame)).expect("the segments cover every frame");
        let (mut image, mut record) = load(owner, frame)?;
        // In the overlap after a boundary inside a shot: fade from the earlier segment's painting.
        if owner > 0 && plan.segments[owner - 1].run.contains(frame) {
            let boundary = plan.boundaries[owner - 1];
            let weight = (frame - boundary.frame + 1) as f32 / (boundary.overlap + 1) as f32;
            let (earlier, _) = load(owner - 1, frame)?;
            image = cross_fade(&earlier, &image, weight);
            blended_frames += 1;
        }
        // The source's alpha and out-of-range values, kept by the segment that painted the frame.
        let local = frame - plan.segments[owner].run.start;
        image = image.with_alpha(dirs[owner].load_alpha(local)?).with_beyond(dirs[owner].load_beyond(local)?);
        record.index = frame;
        records.push(record);
        send(ToEncoder::Frame { image, pts: plan.pts[frame as usize], index: frame })?;
    }
    send(ToEncoder::Finish)?;
    drop(to_encoder);
    let output = encoder.join().unwrap_or_else(|_| Err(Error::output(&job.output, "the encoder thread failed")))?;
    if !job.keep_work {
        std::fs::remove_dir_all(&top).map_err(|e| Error::output(&top, format!("cannot remove: {e}")))?;
    }
    let report = AssembleReport {
        output,
        segments: count,
        boundaries: plan.boundaries.clone(),
        blended_frames,
        frames: records,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(path) = &job.report {
        write_json(path, &report)?;
    }
    Ok(Assembled::Written(Box::new(report)))
}

/// (1 − w)·a + w·b, pixel by pixel (at 16 bits when both frames are deep).
pub fn cross_fade(a: &FinishedFrame, b: &FinishedFrame, w: f32) -> FinishedFrame {
    let mix = |x: f32, y: f32| (1.0 - w) * x + w * y;
    match (&a.rgb16, &b.rgb16) {
        (Some(x), Some(y)) => FinishedFrame::deep(Rgb16Image::from_fn(x.width(), x.height(), |i, j| {
            let (p, q) = (x.get_pixel(i, j).0, y.get_pixel(i, j).0);
            image::Rgb([0, 1, 2].map(|c| mix(p[c] as f32, q[c] as f32).round() as u16))
        })),
        _ => FinishedFrame::new(image::RgbImage::from_fn(a.rgb8.width(), a.rgb8.height(), |i, j| {
            let (p, q) = (a.rgb8.get_pixel(i, j).0, b.rgb8.get_pixel(i, j).0);
            image::Rgb([0, 1, 2].map(|c| mix(p[c] as f32, q[c] as f32).round() as u8))
        })),
    }
}
