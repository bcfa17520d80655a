//! The video job: video in → frames → stylizer → frames → video out, as three threads joined
//! by bounded channels. The decoder thread reads frames ahead, the encoder thread writes (and
//! scales, and saves `--frames-dir` PNGs) behind, and the calling thread only optimises, so
//! the cores never wait on I/O and memory does not grow with the clip's length.
//!
//! The decoder thread also estimates the motion between consecutive input frames (optical flow
//! both ways and the reliability weights c, [`Motion`]), so the flow overlaps the optimiser.
//! Frame 1 starts from its content (or `--init`) with `first_iterations`; every later frame
//! starts, by default, from the previous stylized frame warped along the flow, with
//! J_temporal holding the reliable pixels to it (Ruder et al. 2016), with `iterations`; a frame
//! that starts a new shot starts afresh like frame 1. Each finished frame is kept in the work
//! directory ([`WorkDir`]) before it is sent on, so an interrupted run resumes after its last
//! finished frame — and continues the flow chain from the kept frame.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use candle_core::Tensor;
use image::RgbImage;

use crate::error::{Error, Result};
use crate::jobs::cache::StylizerCache;
use crate::jobs::passes::{self, PassFigures, Repaint};
use crate::jobs::progress::{FrameRecord, StopAware, VideoProgress};
use crate::jobs::shots::{self, shot_reference_style};
pub use crate::jobs::shots::{shot_figures, ShotFigures, STYLE_RATIO_TARGET};
use crate::jobs::pyramid::{Painted, Painter, Warm};
use crate::jobs::revealed::{paint_revealed, RevealedRecord};
use crate::jobs::spec::{
    check_before_work, check_working_size, job_reads, job_writes, load_init_image, refuse_existing, write_json, Init, OptionsReport,
    StyleSpec, StylizeOptions,
};
use crate::jobs::workdir::{Finished, WorkDir};
use crate::media::image_io::{self, FinishedFrame, SourceUnder};
use crate::jobs::keyframes::Keyframed;
use crate::media::matte::{composite, composite16, FrameMatte, MatteFrames, MatteSpec};
use crate::media::paths::{self, Named};
use crate::media::sequence::{check_output as check_sequence_output, BitDepth, Pattern, SequenceInput, SequenceWriter};
use crate::media::video::{
    check_container, DecodeNotes, Deinterlace, DecodeOptions, DecodedFrame, DecoderWarning, EncodeOptions, EncodedInfo, FrameSize, VideoCodec, VideoDecoder, VideoEncoder, VideoInfo,
};
use crate::motion::flow::FlowMethod;
use crate::motion::temporal::{warping_error, Motion, MotionEstimator, VideoInit};
use crate::net::input;
use crate::progress::Progress;
use crate::stylize::stylizer::TemporalTarget;

/// Frames decoded ahead of the stylizer, and stylized frames queued for the encoder.
const CHANNEL_FRAMES: usize = 4;

/// Size of the written video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputSize {
    /// The processing size (`--size`).
    Processing,
    /// The source's display size, the stylized frames scaled back up (Lanczos).
    Source,
}

impl std::str::FromStr for OutputSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "processing" => Ok(OutputSize::Processing),
            "source" => Ok(OutputSize::Source),
            _ => Err(format!("unknown output size '{s}' (expected processing or source)")),
        }
    }
}

/// How far back `--temporal-frames` may look (frames kept in memory).
pub const MAX_TEMPORAL_FRAME: usize = 100;

/// Default warm-frame iteration budget (frames after the first) painted in one level.
pub const DEFAULT_WARM_ITERATIONS: usize = 10;

/// The default `--max-iterations` of warm frames painted in one level, for a budget of
/// `iterations`: half as many again. A frame that keeps up with its shot stops at `iterations`
/// (every frame of the sample and the cup clip: bit for bit the run without a cap); one that falls
/// behind it gets up to half as many again, held more loosely to the previous painting
/// ([`crate::jobs::shots::BEHIND_TEMPORAL_SHARE`]). Measured on the fast pan (40 frames, 256 px,
/// 2 cores, fp32): without the cap 1.44 / 1.52 median / p95 style ratio, 2.40e-3 warping error,
/// 3.28 s a warm frame (11 evaluations); with it 1.22 / 1.27, 2.93e-3 (1.22×), 4.67 s (1.42×;
/// 16.0 evaluations, 1.46×). Frames painted
/// coarse to fine have no default cap: their top-up would run at the finest level, seconds an
/// iteration at 1080p.
pub fn default_max_iterations(iterations: usize) -> usize {
    iterations + iterations / 2
}

/// Default warm-frame iteration budget of frames painted coarse to fine: the coarsest level's
/// ([`crate::jobs::pyramid::warm_levels`]; the finest runs one). There the coarsest level only
/// carries large strokes into what the flow revealed, the finest sharpens: measured on 16
/// frames of a 1920×1080 pan and 12 of scripts/bench-hd's hand-held 1080p clip (fp32, 2 cores),
/// 5 instead of 10 took a warm frame from 15.4–16.1 s to 13.7–14.0 s, with the warping error
/// 0.79× and 0.98× and the last frame's J_style at 320 px the same on the pan (0.59× C) and
/// 6% higher on the hand-held clip (0.79× C against 0.74×).
pub const DEFAULT_WARM_ITERATIONS_COARSE_TO_FINE: usize = 5;

/// The names of the frames `--frames-dir` gets (`frame_000001.png`, … as the encoder thread
/// writes them).
const FRAMES_DIR_PATTERN: &str = "frame_%06d.png";
/// Default first-frame iteration budget.
pub const DEFAULT_FIRST_ITERATIONS: usize = 100;

#[derive(Debug, Clone)]
pub struct VideoJob {
    pub input: PathBuf,
    pub style: StyleSpec,
    pub output: PathBuf,
    /// Longest side of the processed frames.
    pub size: u32,
    pub output_size: OutputSize,
    /// Iterations of frame 1 (from its content or `init`).
    pub first_iterations: usize,
    /// Iterations of each later frame (warm-started from the previous stylized frame); with
    /// `max_iterations`, the least.
    pub iterations: usize,
    /// The most iterations of a warm frame: beyond `iterations`, it goes on while its J_style is
    /// above [`STYLE_RATIO_TARGET`] × its shot's first frame's ([`crate::jobs::pyramid::TopUp`]).
    /// None: `iterations` exactly. The CLI's default: [`default_max_iterations`] in one level.
    pub max_iterations: Option<usize>,
    /// Iterations of the crop around what a warm frame reveals, painted before the frame's own
    /// ([`crate::jobs::revealed`]). None: off.
    pub paint_revealed: Option<usize>,
    /// Passes over the clip (Ruder et al.'s multi-pass, [`crate::jobs::passes`]): 1 paints it
    /// once, forward; each further pass paints every frame again, backward and forward in turn.
    pub passes: usize,
    /// The network and the optimisation's options shared with the other jobs (`init`: the
    /// starting image of frame 1 and of each frame after a cut; with `original_colors`, what is
    /// written is also what the next frame starts from).
    pub options: StylizeOptions,
    /// Starting image of the frames after the first.
    pub init_video: VideoInit,
    /// Optical flow between input frames.
    pub flow: FlowMethod,
    /// The earlier frames J_temporal looks back to (1: the previous frame; Ruder et al.'s
    /// long-term consistency adds e.g. 10, 20, 40).
    pub temporal_frames: Vec<usize>,
    pub codec: VideoCodec,
    /// Copy (or re-encode) the source's audio and subtitle streams.
    pub keep_audio: bool,
    /// Also write every stylized frame here as `frame_000001.png`, ….
    pub frames_dir: Option<PathBuf>,
    pub start: Option<f64>,
    pub duration: Option<f64>,
    pub max_frames: Option<u64>,
    /// Frames per second of an image-sequence input (24 when `None`).
    pub sequence_rate: Option<(i32, i32)>,
    /// What is done with interlaced frames.
    pub deinterlace: Deinterlace,
    /// Paint only what this matte marks (white) in each frame; the rest stays the source's.
    pub matte: Option<MatteSpec>,
    /// With a matte: paint what it leaves out (black) with this style instead of keeping it.
    pub style_outside: Option<PathBuf>,
    /// Weights and style blend that change over the clip (none: the options' throughout).
    pub keyframes: Keyframed,
    /// Bits per channel of an image-sequence output.
    pub bit_depth: BitDepth,
    pub overwrite: bool,
    /// Discard an earlier run's finished frames instead of resuming.
    pub fresh: bool,
    /// Keep the work directory after a successful run.
    pub keep_work: bool,
    pub report: Option<PathBuf>,
}

impl VideoJob {
    /// The job with every option at its CLI default.
    pub fn with_defaults(input: PathBuf, style: PathBuf, output: PathBuf) -> Self {
        VideoJob {
            input,
            style: StyleSpec::one(style),
            output,
            size: crate::jobs::spec::DEFAULT_SIZE,
            output_size: OutputSize::Processing,
            first_iterations: DEFAULT_FIRST_ITERATIONS,
            iterations: DEFAULT_WARM_ITERATIONS,
            max_iterations: Some(default_max_iterations(DEFAULT_WARM_ITERATIONS)),
            paint_revealed: None,
            passes: 1,
            options: StylizeOptions::default(),
            init_video: VideoInit::PrevWarped,
            flow: FlowMethod::Dis,
            temporal_frames: vec![1],
            codec: VideoCodec::default(),
            keep_audio: true,
            frames_dir: None,
            start: None,
            duration: None,
            max_frames: None,
            sequence_rate: None,
            deinterlace: Deinterlace::Frame,
            matte: None,
            style_outside: None,
            keyframes: Keyframed::default(),
            bit_depth: BitDepth::Eight,
            overwrite: false,
            fresh: false,
            keep_work: false,
            report: None,
        }
    }

    /// Every file the job reads, named by its option.
    pub fn reads(&self) -> Vec<Named> {
        let mut reads = job_reads(&self.input, &self.style.paths, &self.options);
        reads.extend(self.matte.as_ref().map(|m| Named::new("--matte", m.path.clone())));
        reads.extend(self.style_outside.as_ref().map(|p| Named::new("--style-outside", p.clone())));
        reads
    }

    /// Every file the job writes, named by its option: the output, the report, the frames of
    /// `--frames-dir`, and the work directory.
    pub fn writes(&self) -> Vec<Named> {
        let mut writes = job_writes("-o", &self.output, self.report.as_deref());
        writes.push(Named::new("-o (its work directory)", WorkDir::path_for(&self.output)));
        writes.extend(self.frames_dir.as_ref().map(|d| Named::new("--frames-dir", d.join(FRAMES_DIR_PATTERN))));
        writes
    }
}

/// Totals of a run, for the report and the closing line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Totals {
    pub frames: u64,
    pub computed_frames: u64,
    pub resumed_frames: u64,
    /// Frames an earlier run had finished that were recomputed: damaged, or after a damaged
    /// one in its shot (see [`FrameRecord::repaired`]).
    pub repaired_frames: u64,
    /// Finished frames of an earlier run beyond this run's last (it stopped sooner: a smaller
    /// `--max-frames`), kept in the work directory for a later run instead of deleted.
    pub kept_beyond: u64,
    pub iterations: usize,
    /// Evaluations of J over the computed frames (see [`crate::stylize::stylizer::Stylized::evaluations`]).
    pub evaluations: usize,
    pub seconds: f64,
    /// Seconds of the first frame, when this run computed it (in the first pass, with
    /// `--passes`; each later pass's are in `passes`).
    pub first_frame_seconds: Option<f64>,
    /// Mean seconds of the warm-started frames this run computed (in the first pass).
    pub warm_frame_seconds: Option<f64>,
    /// Mean seconds of the optical flow and masks per frame pair (on the decoder's thread).
    pub flow_seconds: Option<f64>,
    /// Mean warping error over the frames that have one (see [`FrameRecord::warping_error`]).
    pub warping_error: Option<f64>,
    /// Frames detected as shot cuts (started afresh).
    pub cuts: u64,
    /// Problems the decoder met in the input (FFmpeg's messages and the errors it returned).
    pub decoder_warnings: usize,
    /// The same by kind (numbers in FFmpeg's messages written as N), most frequent first.
    pub decoder_warning_kinds: Vec<DecoderWarning>,
    /// What the frames held that the output does not keep as it was (interlacing, another
    /// shape, timestamp jumps).
    #[serde(flatten)]
    pub decoded: DecodeNotes,
    /// Per shot, how painted its warm frames stayed ([`FrameRecord::style_ratio`]).
    pub shots: Vec<ShotFigures>,
    /// With `--passes`, what each pass did. The frames, the shots and the warping error above
    /// are the last pass's, the first and warm frame seconds the first pass's; `seconds`,
    /// `iterations` and `evaluations` count all passes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passes: Vec<PassFigures>,
}

/// What `--report` writes for a video.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VideoReport {
    pub input: VideoInfo,
    pub output: EncodedInfo,
    pub styles: Vec<PathBuf>,
    pub width: u32,
    pub height: u32,
    pub first_iterations: usize,
    pub iterations: usize,
    /// `--max-iterations` (none: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<usize>,
    /// `--paint-revealed` (none: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paint_revealed: Option<usize>,
    /// `--passes`.
    pub passes: usize,
    pub init_video: VideoInit,
    pub flow: FlowMethod,
    pub temporal_frames: Vec<usize>,
    #[serde(flatten)]
    pub options: OptionsReport,
    pub totals: Totals,
    pub frames: Vec<FrameRecord>,
}

/// A message to the encoder thread.
pub(crate) enum ToEncoder {
    Frame { image: FinishedFrame, pts: i64, index: u64 },
    /// All frames sent: finish the file. (A closed channel without this aborts it.)
    Finish,
}

/// Runs the job. `stop` is polled between iterations: when it turns true the current frame is
/// abandoned, finished frames stay in the work directory, and [`Error::Interrupted`] says how
/// to resume.
pub fn run_video(job: &VideoJob, progress: &mut dyn VideoProgress, stop: &AtomicBool) -> Result<VideoReport> {
    run_video_with(job, progress, stop, &StylizerCache::new())
}

/// [`run_video`] taking the network and style targets from `cache` (a batch shares one).
pub fn run_video_with(
    job: &VideoJob,
    progress: &mut dyn VideoProgress,
    stop: &AtomicBool,
    cache: &StylizerCache,
) -> Result<VideoReport> {
    let started = Instant::now();
    paths::check_writes_spare_reads(&job.reads(), &job.writes())?;
    refuse_existing(&job.output, job.overwrite)?;
    let mut made_directory = RemoveIfEmpty(None);
    if sequence_output(&job.output).is_some() {
        if let Some(existing) = SequenceInput::find(&job.output).ok().filter(|_| !job.overwrite) {
            return Err(Error::output(
                &job.output,
                format!("{} frames of this sequence already exist (use -y/--overwrite to replace them)", existing.frames),
            ));
        }
        check_sequence_output(&job.output, job.bit_depth)?;
        // A sequence's frames go to a directory of their own, made for them.
        if let Some(directory) = job.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !directory.exists() {
                made_directory.0 = Some(directory.to_path_buf());
            }
            std::fs::create_dir_all(directory)
                .map_err(|e| Error::output(&job.output, format!("cannot create directory {}: {e}", directory.display())))?;
        }
    }
    check_video_job(job)?;
    remove_stale_temporaries(&job.output);

    // Open the input on the decoder thread; its first message is the stream description.
    let decode_options = DecodeOptions {
        size: FrameSize::LongestSide(job.size),
        start: job.start,
        duration: job.duration,
        max_frames: job.max_frames,
        sequence_rate: job.sequence_rate,
        deinterlace: job.deinterlace,
        // A matte's composite at the source's size needs the source there.
        keep_source_size: job.matte.is_some() && job.style_outside.is_none() && job.output_size == OutputSize::Source,
        ..Default::default()
    };
    let check = input_check(job);
    let (decoder, info, frames) = spawn_decoder(job.input.clone(), decode_options.clone(), job.flow, job.temporal_frames.clone(), check)?;
    let (width, height) = info.output_size(FrameSize::LongestSide(job.size));
    let prepared = (|| {
        if job.matte.is_some() && job.passes > 1 && job.output_size == OutputSize::Source && (width, height) != (info.width, info.height) {
            return Err(Error::Settings(format!(
                "--matte with --output-size source and --passes: the later passes keep frames at the processing size ({width}×{height}), not the source's; paint at the source's size (--size source) or in one pass"
            )));
        }
        let matte = open_matte(job, &info, (width, height), &decode_options)?;
        let painter = painter(job, cache, (width, height))?;
        let init_image = coarsest_init_image(job, &painter, (width, height))?;
        if let Some(dir) = &job.frames_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::output(dir, format!("cannot create directory: {e}")))?;
        }
        Ok((matte, painter, init_image))
    })();
    let (matte, painter, init_image) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return Err(stop_decoder(e, frames, decoder)),
    };

    let encode_options = EncodeOptions {
        codec: job.codec,
        copy_other_streams: job.keep_audio,
        start: job.start,
        duration: job.duration,
    };
    let scale_to = (job.output_size == OutputSize::Source).then_some((info.width, info.height));
    let (to_encoder, encoder) =
        match spawn_encoder(job.output.clone(), info.clone(), encode_options, scale_to, job.frames_dir.clone(), job.bit_depth) {
            Ok(spawned) => spawned,
            Err(e) => return Err(stop_decoder(e, frames, decoder)),
        };
    let workdir = match fingerprint(job).and_then(|settings| WorkDir::open(&job.output, &settings, job.fresh)) {
        Ok(workdir) => workdir,
        Err(e) => {
            drop(to_encoder); // the encoder removes its temporary file
            let _ = encoder.join();
            return Err(stop_decoder(e, frames, decoder));
        }
    };

    progress.begin(expected_frames(&info, job).map(|frames| frames * job.passes as u64));
    let mut records = Vec::new();
    let deep = deep_output(job, &info);
    // With --passes, the first pass's frames wait in the work directory for the others.
    let mut pts = Vec::new();
    let to = if job.passes > 1 { FramesTo::LaterPasses(&mut pts) } else { FramesTo::Encoder(&to_encoder) };
    let result = stylize_frames(job, &painter, &workdir, init_image, matte, deep, &frames, to, progress, stop, &mut records);
    // Stop the decoder early if we stopped early; then learn how the encoder ended.
    drop(frames);
    let (result, decoded) = match join_decoder(decoder, &job.input) {
        Ok(decoded) => (result, decoded),
        // A panic on the decoder thread ended the frames early: that is the error to report.
        Err(failed) => (Err(failed), DecoderEnd::default()),
    };
    let DecoderEnd { warning_kinds: decoder_warning_kinds, notes: decoded } = decoded;
    // FFmpeg's image reader skips a frame it cannot decode: a sequence read whole must give
    // every frame, or the output would be silently short.
    let result = result.and_then(|()| match &info.sequence {
        Some(sequence) if job.start.is_none() && job.duration.is_none() && job.max_frames.is_none() && (records.len() as u64) < sequence.frames => {
            Err(Error::input(
                &job.input,
                format!(
                    "only {} of the sequence's {} frames could be decoded (a frame is damaged); replace it and run again with --fresh",
                    records.len(),
                    sequence.frames
                ),
            ))
        }
        _ => Ok(()),
    });
    let (mut pass_figures, mut first_pass) = (Vec::new(), None);
    let result = result.and_then(|()| {
        if job.passes > 1 {
            let settings = fingerprint(job)?;
            let finish = |painting: &Tensor, content: &RgbImage, matte: Option<&FrameMatte>| finished_frame(job, deep, painting, content, matte);
            let plan = Repaint {
                passes: job.passes,
                iterations: job.iterations,
                max_iterations: job.max_iterations,
                matte_feather: job.matte.as_ref().map(|m| m.feather),
                flow: job.flow,
                settings: &settings,
                finish: &finish,
            };
            let mut send = |index: u64, image: FinishedFrame| {
                to_encoder
                    .send(ToEncoder::Frame {
                        image: image.with_alpha(workdir.load_alpha(index)?).with_beyond(workdir.load_beyond(index)?),
                        pts: pts[index as usize],
                        index,
                    })
                    .map_err(|_| Error::output(&job.output, "the encoder stopped"))
            };
            let (last_pass, figures) = passes::repaint(&plan, &painter, &workdir, &records, &mut send, progress, stop)?;
            pass_figures = figures;
            first_pass = Some(std::mem::replace(&mut records, last_pass));
        }
        Ok(())
    });
    let decoder_warnings = decoder_warning_kinds.iter().map(|k| k.count).sum();
    let encoded = match result {
        Ok(()) => {
            let _ = to_encoder.send(ToEncoder::Finish);
            drop(to_encoder);
            encoder.join().unwrap_or_else(|_| Err(Error::output(&job.output, "the encoder thread failed")))
        }
        Err(e) => {
            drop(to_encoder); // no Finish: the encoder removes its temporary file
            if workdir.finished_count() == 0 {
                let _ = workdir.remove(); // nothing worth keeping
                let _ = encoder.join();
                return Err(e);
            }
            // When the encoder failed first (disk full…), its error is the one to report.
            if let (Error::Output { .. }, Ok(Err(encoder_error))) = (&e, encoder.join()) {
                if !matches!(encoder_error, Error::Interrupted(_)) {
                    return Err(encoder_error);
                }
            }
            return Err(with_resume_hint(e, &workdir));
        }
    }?;
    // Finished frames beyond this run's (a rerun with a smaller --max-frames) stay for a later
    // run: nothing the user paid for is deleted.
    let kept_beyond = workdir.finished_from(records.len() as u64);
    if !job.keep_work && kept_beyond == 0 {
        workdir.remove()?;
    }

    let computed: Vec<&FrameRecord> = records.iter().filter(|r| !r.resumed).collect();
    let first_pass_computed: Vec<&FrameRecord> = first_pass.as_ref().unwrap_or(&records).iter().filter(|r| !r.resumed).collect();
    let first_frame_seconds = first_pass_computed.iter().find(|r| r.index == 0).map(|r| r.seconds);
    let warm: Vec<f64> = first_pass_computed.iter().filter(|r| r.index > 0 && !r.cut).map(|r| r.seconds).collect();
    let mean = |values: Vec<f64>| (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
    let totals = Totals {
        frames: records.len() as u64,
        computed_frames: computed.len() as u64,
        resumed_frames: (records.len() - computed.len()) as u64,
        repaired_frames: records.iter().filter(|r| r.repaired.is_some()).count() as u64,
        kept_beyond,
        iterations: match pass_figures.is_empty() {
            true => computed.iter().map(|r| r.iterations).sum(),
            false => pass_figures.iter().map(|p| p.iterations).sum(),
        },
        evaluations: match pass_figures.is_empty() {
            true => computed.iter().map(|r| r.evaluations).sum(),
            false => pass_figures.iter().map(|p| p.evaluations).sum(),
        },
        seconds: started.elapsed().as_secs_f64(),
        first_frame_seconds,
        warm_frame_seconds: mean(warm),
        flow_seconds: mean(records.iter().filter_map(|r| r.flow_seconds).collect()),
        warping_error: mean(records.iter().filter_map(|r| r.warping_error).collect()),
        cuts: records.iter().filter(|r| r.cut).count() as u64,
        decoder_warnings,
        decoder_warning_kinds,
        decoded,
        shots: shot_figures(&records),
        passes: pass_figures,
    };
    let report = VideoReport {
        input: info,
        output: encoded,
        styles: job.style.paths.clone(),
        width,
        height,
        first_iterations: job.first_iterations,
        max_iterations: job.max_iterations,
        paint_revealed: job.paint_revealed,
        passes: job.passes,
        iterations: job.iterations,
        init_video: job.init_video,
        flow: job.flow,
        temporal_frames: job.temporal_frames.clone(),
        options: OptionsReport::new(&job.options, painter.finest().vgg().precision()),
        totals,
        frames: records,
    };
    if let Some(path) = &job.report {
        write_json(path, &report)?;
    }
    Ok(report)
}

/// The optimiser's loop over the decoded frames.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stylize_frames(
    job: &VideoJob,
    painter: &Painter,
    workdir: &WorkDir,
    init_image: Option<Tensor>,
    mut matte: Option<MatteFrames>,
    deep: bool,
    frames: &Receiver<DecoderMessage>,
    mut to: FramesTo,
    progress: &mut dyn VideoProgress,
    stop: &AtomicBool,
    records: &mut Vec<FrameRecord>,
) -> Result<()> {
    let device = painter.finest().vgg().device().clone();
    // The frames of this shot before the current one, newest first, as far back as
    // J_temporal looks: stylized as written (8-bit), so a resumed run continues exactly as an
    // uninterrupted one would.
    let mut earlier: VecDeque<Previous> = VecDeque::new();
    let keep = job.temporal_frames.iter().copied().max().unwrap_or(1).max(1);
    let remember = |earlier: &mut VecDeque<Previous>, frame: Previous| {
        earlier.push_front(frame);
        earlier.truncate(keep);
    };
    let encoder_gone = || Error::output(&job.output, "the encoder stopped");
    let mut ended = false;
    // Set after a damaged frame of the work directory was recomputed: what happened, for the
    // frames after it in its shot.
    let mut repairing: Option<String> = None;
    for message in frames.iter() {
        let Some(FrameWithMotion { frame, motion }) = message? else {
            ended = true;
            break;
        };
        if stop.load(Ordering::SeqCst) {
            return Err(Error::Interrupted(String::new()));
        }
        // The matte is read for every frame, resumed ones too, to stay aligned with the input.
        let frame_matte = matte.as_mut().map(MatteFrames::next_frame).transpose()?;
        let values = job.keyframes.at(frame.index + 1, frame.pts_seconds);
        // An earlier run's frame is taken as it is, unless an earlier frame of its shot was
        // recomputed (it was started from that one).
        let (repaired, cause) = match (workdir.load(frame.index), repairing.take()) {
            (Finished::Frame(_, record), Some(cause)) if !record.cut => (Some(format!("recomputed: {cause}")), Some(cause)),
            (Finished::Frame(image, record), _) => {
                if record.cut {
                    earlier.clear();
                }
                to.keep_input(workdir, &frame, frame_matte.as_ref())?;
                remember(&mut earlier, Previous { output: image.rgb8.clone(), input: frame.image });
                progress.frame(&record);
                records.push(*record);
                if let FramesTo::Encoder(to_encoder) = &to {
                    let image = image.with_alpha(frame.alpha).with_beyond(frame.beyond).with_source_under(source_under(&frame.source_image, frame_matte.as_ref(), job));
                    to_encoder.send(ToEncoder::Frame { image, pts: frame.pts, index: frame.index }).map_err(|_| encoder_gone())?;
                }
                continue;
            }
            (Finished::Damaged(why), _) => (Some(why), Some(format!("frame {} of its shot was damaged", frame.index + 1))),
            (Finished::Missing, _) => (None, None),
        };
        let frame_started = Instant::now();
        // A frame whose settings are keyframed is painted with its own.
        let keyed_painter = values.as_ref().map(|v| v.painter(painter)).transpose()?;
        let painter = keyed_painter.as_ref().unwrap_or(painter);
        let content = input::to_tensor(&frame.image, &device)?;
        // What the previous frame offers this one: nothing for the first frame or after a cut.
        let cut = motion.as_ref().is_some_and(Motion::is_cut);
        if cut {
            earlier.clear();
        }
        let follows = match (earlier.front(), &motion) {
            (Some(previous), Some(motion)) => Some((previous, motion)),
            _ => None,
        };
        let mut frame_progress = StopAware { inner: progress, stop };
        let (mut warped_previous, mut revealed) = (None, None);
        let matte_weights = frame_matte.as_ref().map(|m| input::matte_tensor(&m.matte, &device)).transpose()?;
        // A frame whose matte paints nothing is the source: no iterations are spent on it
        // (unless a second style paints the rest).
        let nothing_to_paint = frame_matte.as_ref().is_some_and(FrameMatte::paints_nothing) && !painter.finest().has_outside_style();
        let (first_iterations, iterations) = if nothing_to_paint { (0, 0) } else { (job.first_iterations, job.iterations) };
        // A warm frame's reference: the J_style of its shot's first frame.
        let reference = follows.and(shot_reference_style(records));
        let painted = match follows {
            None => {
                let (width, height) = painter.coarsest_size(frame.image.dimensions());
                let start = match &job.options.init {
                    Init::Content if (width, height) == frame.image.dimensions() => content.clone(),
                    Init::Content => input::to_tensor(&image_io::resize(&frame.image, width, height), &device)?,
                    Init::Noise => input::noise_tensor(width, height, job.options.seed, &device)?,
                    Init::Image(_) => init_image.clone().expect("loaded before the loop"),
                };
                painter.paint(&frame.image, matte_weights.as_ref(), &start, first_iterations, &mut frame_progress)?
            }
            Some((_, motion)) => {
                let (painted, warped, painted_revealed) = stylize_following(
                    job,
                    painter,
                    &frame.image,
                    &content,
                    &earlier,
                    motion,
                    records.last(),
                    reference,
                    Matted { matte: matte_weights.as_ref(), iterations },
                    &mut frame_progress,
                )?;
                warped_previous = Some(warped);
                revealed = painted_revealed;
                painted
            }
        };
        let (stylized, stopped) = (painted.stylized, painted.stopped);
        let image = finished_frame(job, deep, &stylized.image, &frame.image, frame_matte.as_ref())?;
        let error = match (&warped_previous, &motion) {
            (Some(warped), Some(motion)) => warping_error(&image.rgb8, warped, motion)?,
            _ => None,
        };
        let record = FrameRecord {
            warping_error: error,
            cut,
            unreliable_share: motion.as_ref().map(|m| m.unreliable_share),
            flow_seconds: motion.as_ref().map(|m| m.seconds),
            levels: painted.levels,
            repaired,
            style_ratio: match follows {
                None => Some(1.0),
                Some(_) => reference.map(|r| stylized.terms.style / r),
            },
            stopped,
            revealed,
            matte_share: frame_matte.as_ref().map(FrameMatte::painted_share),
            keyframed: values,
            ..FrameRecord::new(frame.index, frame.pts_seconds, &stylized, frame_started.elapsed().as_secs_f64())
        };
        // The frames after a repaired one in its shot were started from the damaged copy.
        repairing = cause;
        workdir.save(&image, &record)?;
        to.keep_input(workdir, &frame, frame_matte.as_ref())?;
        remember(&mut earlier, Previous { output: image.rgb8.clone(), input: frame.image });
        progress.frame(&record);
        records.push(record);
        if let FramesTo::Encoder(to_encoder) = &to {
            let image = image.with_alpha(frame.alpha).with_beyond(frame.beyond).with_source_under(source_under(&frame.source_image, frame_matte.as_ref(), job));
                    to_encoder.send(ToEncoder::Frame { image, pts: frame.pts, index: frame.index }).map_err(|_| encoder_gone())?;
        }
    }
    if !ended {
        return Err(Error::input(&job.input, "decoding stopped before the end of the video (the decoder thread failed)"));
    }
    if records.is_empty() {
        return Err(Error::input(&job.input, "contains no video frames in the requested range"));
    }
    Ok(())
}

/// Where the frame loop sends each finished frame.
pub(crate) enum FramesTo<'a> {
    /// The encoder thread, in order.
    Encoder(&'a SyncSender<ToEncoder>),
    /// The passes after the first (`--passes`), which paint every frame again: nothing is
    /// encoded yet; each frame's input is kept in the work directory and its timestamp here.
    LaterPasses(&'a mut Vec<i64>),
    /// Nowhere: a segment's frames stay in its work directory for the assembly.
    WorkDir,
}

impl FramesTo<'_> {
    /// Keeps what the later passes need of `frame` (nothing unless they follow).
    fn keep_input(&mut self, workdir: &WorkDir, frame: &DecodedFrame, matte: Option<&FrameMatte>) -> Result<()> {
        if let FramesTo::LaterPasses(pts) = self {
            workdir.save_input(frame.index, &frame.image)?;
            if let Some(matte) = matte {
                workdir.save_matte(frame.index, &matte.matte)?;
            }
            pts.push(frame.pts);
        }
        // What writes the video later gets the source's alpha, and what its scene-linear values
        // held outside 0..1, from the work directory.
        if matches!(self, FramesTo::LaterPasses(_) | FramesTo::WorkDir) {
            if let Some(alpha) = &frame.alpha {
                workdir.save_alpha(frame.index, alpha)?;
            }
            if let Some(beyond) = &frame.beyond {
                workdir.save_beyond(frame.index, beyond)?;
            }
        }
        Ok(())
    }
}

/// A stylized image (a `(1, 3, H, W)` tensor, mean-subtracted) as it is written: at 16 bits for
/// deep outputs (the 8-bit frame, which the next frame starts from, is then its rounding, as a
/// resumed run reads it back), with `--original-colors` the colours of its `content`, with a
/// matte put over `content` by it (unless `--style-outside` paints the other side too).
fn finished_frame(job: &VideoJob, deep: bool, stylized: &Tensor, content: &RgbImage, matte: Option<&FrameMatte>) -> Result<FinishedFrame> {
    let matte = matte.filter(|_| job.style_outside.is_none());
    Ok(if deep {
        let mut deep = input::from_tensor16(stylized)?;
        if job.options.original_colors {
            deep = image_io::keep_original_colors16(&deep, content);
        }
        if let Some(matte) = matte {
            deep = matte.composite16(&deep, content);
        }
        FinishedFrame::deep(deep)
    } else {
        let mut image = input::from_tensor(stylized)?;
        if job.options.original_colors {
            image = image_io::keep_original_colors(&image, content);
        }
        if let Some(matte) = matte {
            image = matte.composite(&image, content);
        }
        FinishedFrame::new(image)
    })
}

/// What a frame scaled up to the source's size is put over (the source there, by the matte),
/// where the decoder delivered the frame at that size too.
fn source_under(source: &Option<RgbImage>, matte: Option<&FrameMatte>, job: &VideoJob) -> Option<SourceUnder> {
    let (source, matte) = (source.as_ref()?, matte.filter(|_| job.style_outside.is_none())?);
    Some(SourceUnder { source: source.clone(), matte: matte.feathered.clone() })
}

/// The job's matte frames over the decoded range (none without `--matte`).
/// `range` is what the decoder delivers: the job's range, or a segment's frames of it.
pub(crate) fn open_matte(job: &VideoJob, info: &VideoInfo, size: (u32, u32), range: &DecodeOptions) -> Result<Option<MatteFrames>> {
    // The frames delivered: the job's, or as many of them as a segment takes.
    let delivered = expected_frames(info, job).map(|frames| range.max_frames.map_or(frames, |m| m.min(frames)));
    job.matte.as_ref().map(|spec| MatteFrames::open(spec, (info.width, info.height), size, range, delivered)).transpose()
}

/// A directory this run made (for a sequence's frames), removed when the run ends if it is
/// still empty: a run that fails its checks leaves no empty directory behind. One that holds
/// frames, or the work directory of an interrupted run, is kept (`remove_dir` removes only
/// empty directories).
struct RemoveIfEmpty(Option<PathBuf>);

impl Drop for RemoveIfEmpty {
    fn drop(&mut self) {
        if let Some(directory) = &self.0 {
            let _ = std::fs::remove_dir(directory);
        }
    }
}

/// A frame before the one being stylized: its stylized output (as written) and its input.
struct Previous {
    output: RgbImage,
    input: RgbImage,
}

/// A warm frame's matte (none: the whole frame) and its iterations (`--iterations`, or 0 where the
/// matte paints nothing).
struct Matted<'a> {
    matte: Option<&'a Tensor>,
    iterations: usize,
}

/// Stylizes a frame that follows the `earlier` frames (newest first) with `motion` from them:
/// the start image as `--init-video` says, J_temporal against the warped earlier outputs.
/// `previous` is the record of the frame before: what its levels did (their L-BFGS curvature),
/// and its style ratio (one above the target makes this frame [`crate::jobs::pyramid::TopUp::behind`] its shot).
/// Returns the result, ω(x_{t−1}) (the previous output warped to this frame) and what
/// `--paint-revealed` painted.
#[allow(clippy::too_many_arguments)]
fn stylize_following(
    job: &VideoJob,
    painter: &Painter,
    frame: &RgbImage,
    content: &Tensor,
    earlier: &VecDeque<Previous>,
    motion: &Motion,
    previous: Option<&FrameRecord>,
    shot_reference_style: Option<f64>,
    Matted { matte, iterations }: Matted,
    progress: &mut dyn Progress,
) -> Result<(Painted, Tensor, Option<RevealedRecord>)> {
    let device = content.device();
    let previous_levels = previous.map_or(&[][..], |r| &r.levels);
    let previous_ratio = previous.and_then(|r| r.style_ratio);
    let previous = &earlier[0];
    let previous_output = input::to_tensor(&previous.output, device)?;
    let warped_previous = motion.warp_tensor(&previous_output)?;
    let start = match job.init_video {
        // c·ω(x_{t−1}) + (1 − c)·(I_t + ω(x_{t−1} − I_{t−1})): where the flow is not to be
        // trusted, the frame's own content I_t under the previous frame's brushwork (its
        // difference from its own content, warped). Starting such pixels from the bare content
        // instead leaves unpainted patches around moving things that 10–20 iterations do not
        // fill (see the temporal-coherence table in docs/temporal.md).
        VideoInit::PrevWarped => {
            let reliability = motion.reliability_tensor(device)?;
            let previous_input = input::to_tensor(&previous.input, device)?;
            let brushwork = motion.warp_tensor(&(&previous_output - previous_input)?)?;
            (warped_previous.broadcast_mul(&reliability)? + (content + brushwork)?.broadcast_mul(&(1.0 - &reliability)?)?)?
        }
        VideoInit::Prev => previous_output.clone(),
        VideoInit::Content => content.clone(),
    };
    // With --paint-revealed, what the flow could not vouch for is painted in a crop first.
    let (start, revealed) = match job.paint_revealed {
        Some(iterations) => {
            let stylizer = painter.finest();
            paint_revealed(stylizer, content, &start, &warped_previous, &motion.reliability, matte, iterations, progress)?
        }
        None => (start, None),
    };
    // J_temporal against the previous frame and, with --temporal-frames, frames further back.
    let mut temporal = Vec::new();
    for (j, weights) in motion.long_term_weights() {
        let warped = match j {
            1 => warped_previous.clone(),
            j => match (motion.earlier.iter().find(|(k, _)| *k == j), earlier.get(j - 1)) {
                (Some((_, motion_j)), Some(frame_j)) => motion_j.warp_tensor(&input::to_tensor(&frame_j.output, device)?)?,
                _ => continue,
            },
        };
        temporal.push(TemporalTarget { warped_previous: warped, reliability: motion.weights_tensor(&weights, device)? });
    }
    let top_up = shots::top_up(iterations, job.max_iterations.filter(|_| iterations > 0), shot_reference_style, previous_ratio);
    let warm = Warm { start: &start, temporal: &temporal, previous: previous_levels, top_up, matte };
    Ok((painter.paint_warm(frame, warm, iterations, progress)?, warped_previous, revealed))
}

/// A finished frame scaled to `width × height`; where it carries the source at that size and a
/// matte, put over that source by the matte scaled alike, so what the matte keeps is the source's
/// own full-size pixels.
fn put_over_source(mut image: FinishedFrame, width: u32, height: u32) -> FinishedFrame {
    let under = image.source_under.take();
    let image = image.resized(width, height);
    let Some(under) = under.filter(|u| u.source.dimensions() == (width, height)) else { return image };
    let matte = image::imageops::resize(&under.matte, width, height, image::imageops::FilterType::Triangle);
    let FinishedFrame { rgb8, rgb16, alpha, beyond, .. } = image;
    match rgb16 {
        Some(deep) => FinishedFrame::deep(composite16(&deep, &under.source, &matte)),
        None => FinishedFrame::new(composite(&rgb8, &under.source, &matte)),
    }
    .with_alpha(alpha)
    .with_beyond(beyond)
}

/// The decoder thread (it returns what the decoder met: [`DecoderEnd`]), the input's facts, and
/// the channel of its frames.
pub(crate) type DecoderThread = (JoinHandle<DecoderEnd>, VideoInfo, Receiver<DecoderMessage>);

/// What the decoder met in the input, told when its thread ends.
#[derive(Debug, Default)]
pub(crate) struct DecoderEnd {
    /// The decoder's warnings by kind ([`VideoDecoder::warning_kinds`]).
    pub warning_kinds: Vec<DecoderWarning>,
    /// What the frames held that the output does not keep as it was ([`VideoDecoder::notes`]).
    pub notes: DecodeNotes,
}

/// What the decoder thread sends: a frame, an error, or `Ok(None)` at the end of the stream. A
/// channel that closes without `Ok(None)` means the thread died (a panic): the video is not
/// finished, whatever was decoded so far.
pub(crate) type DecoderMessage = Result<Option<FrameWithMotion>>;

/// Ends the decoder thread before a run that fails to start returns `error`: its channel closed,
/// it stops at its next frame, and no thread is left working (in FFmpeg or OpenCV) while the
/// process exits.
pub(crate) fn stop_decoder(error: Error, frames: Receiver<DecoderMessage>, decoder: JoinHandle<DecoderEnd>) -> Error {
    drop(frames);
    let _ = decoder.join();
    error
}

/// Joins the decoder thread: what the decoder met, or an error naming `input` if the thread
/// panicked.
pub(crate) fn join_decoder(decoder: JoinHandle<DecoderEnd>, input: &Path) -> Result<DecoderEnd> {
    decoder.join().map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Error::input(input, format!("decoding failed (the decoder thread panicked: {why})"))
    })
}

/// A decoded frame with the motion from the frame before it (`None` for the first).
pub(crate) struct FrameWithMotion {
    frame: DecodedFrame,
    motion: Option<Motion>,
}

/// What the opened input must allow, checked on the decoder thread before it decodes a frame
/// (at --size, which may be large): --start within it, the working size within memory, and an
/// output container that takes the codec at the input's rate.
pub(crate) fn input_check(job: &VideoJob) -> impl FnOnce(&VideoInfo) -> Result<()> + Send + 'static {
    let (input, output, start, size, codec) = (job.input.clone(), job.output.clone(), job.start, job.size, job.codec);
    let settings = job.options.settings.clone();
    move |info: &VideoInfo| -> Result<()> {
        if let (Some(start), Some(length)) = (start, info.duration_seconds) {
            if start >= length {
                return Err(Error::Settings(format!("--start {start} s is past the end of {} ({length:.3} s long)", input.display())));
            }
        }
        if sequence_output(&output).is_none() {
            check_container(&output, codec, info)?;
        }
        check_working_size(&input, size, info.output_size(FrameSize::LongestSide(size)), &settings)
    }
}

/// Starts the decoder thread, which also estimates the motion between consecutive frames.
/// `check` judges the opened input's description before any frame is decoded (at the working
/// size, which may be large); its error is the thread's. Returns its handle (yielding the
/// decoder's warnings by kind), the input's description and the frames' channel.
pub(crate) fn spawn_decoder(
    input: PathBuf,
    options: DecodeOptions,
    flow: FlowMethod,
    temporal_frames: Vec<usize>,
    check: impl FnOnce(&VideoInfo) -> Result<()> + Send + 'static,
) -> Result<DecoderThread> {
    let (info_tx, info_rx) = sync_channel::<Result<VideoInfo>>(1);
    let (frames_tx, frames_rx) = sync_channel::<DecoderMessage>(CHANNEL_FRAMES);
    let handle = std::thread::Builder::new()
        .name("decoder".into())
        .spawn(move || {
            let opened = VideoDecoder::open(&input, &options)
                .and_then(|decoder| check(decoder.info()).map(|()| decoder))
                .and_then(|decoder| Ok((decoder, MotionEstimator::new(flow, &temporal_frames)?)));
            let (mut decoder, mut motion) = match opened {
                Ok(opened) => opened,
                Err(e) => {
                    let _ = info_tx.send(Err(e));
                    return DecoderEnd::default();
                }
            };
            let _ = info_tx.send(Ok(decoder.info().clone()));
            loop {
                let message = match decoder.next_frame() {
                    Ok(Some(frame)) => motion.next(&frame.image).map(|motion| Some(FrameWithMotion { frame, motion })),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                let last = !matches!(message, Ok(Some(_)));
                if frames_tx.send(message).is_err() || last {
                    break;
                }
            }
            DecoderEnd { warning_kinds: decoder.warning_kinds(), notes: decoder.notes() }
        })
        .map_err(|e| Error::Settings(format!("cannot start the decoder thread: {e}")))?;
    let info = info_rx.recv().map_err(|_| Error::Settings("the decoder thread failed".into()))??;
    Ok((handle, info, frames_rx))
}

/// Starts the encoder thread; it finishes the file on [`ToEncoder::Finish`] and abandons it
/// (removing the temporary file) when the channel closes without one.
pub(crate) fn spawn_encoder(
    output: PathBuf,
    source: VideoInfo,
    options: EncodeOptions,
    scale_to: Option<(u32, u32)>,
    frames_dir: Option<PathBuf>,
    bit_depth: BitDepth,
) -> Result<(SyncSender<ToEncoder>, JoinHandle<Result<EncodedInfo>>)> {
    // FFmpeg's contexts stay on the thread that made them: create the encoder there and hear
    // back whether that worked.
    let (created_tx, created_rx) = sync_channel::<Result<()>>(1);
    let (tx, rx) = sync_channel::<ToEncoder>(CHANNEL_FRAMES);
    let handle = std::thread::Builder::new()
        .name("encoder".into())
        .spawn(move || {
            let mut sink = match FrameSink::create(&output, &source, &options, bit_depth) {
                Ok(sink) => {
                    let _ = created_tx.send(Ok(()));
                    sink
                }
                Err(e) => {
                    let _ = created_tx.send(Err(e));
                    return Err(Error::Interrupted(String::new()));
                }
            };
            for message in rx.iter() {
                match message {
                    ToEncoder::Frame { image, pts, index } => {
                        if let Some(dir) = &frames_dir {
                            image_io::save_rgb(&image.rgb8, &dir.join(format!("frame_{:06}.png", index + 1)))?;
                        }
                        let image = match scale_to {
                            Some((w, h)) => put_over_source(image, w, h),
                            None => image,
                        };
                        sink.write_frame(&image, pts)?;
                    }
                    ToEncoder::Finish => return sink.finish(),
                }
            }
            Err(Error::Interrupted(String::new()))
        })
        .map_err(|e| Error::Settings(format!("cannot start the encoder thread: {e}")))?;
    created_rx.recv().map_err(|_| Error::Settings("the encoder thread failed".into()))??;
    Ok((tx, handle))
}

/// An interruption says where the finished frames are kept and how to resume; other errors
/// stay as they are.
pub(crate) fn with_resume_hint(error: Error, workdir: &WorkDir) -> Error {
    match error {
        Error::Interrupted(_) => Error::Interrupted(format!(
            ": {} finished frames are kept in {}; run the same command again to resume",
            workdir.finished_count(),
            workdir.path().display()
        )),
        e => e,
    }
}

/// The checks of a video job's settings and output before any work is spent.
/// The stylizers of the job's pyramid levels for frames of `size`.
pub(crate) fn painter(job: &VideoJob, cache: &StylizerCache, size: (u32, u32)) -> Result<Painter> {
    let options = &job.options;
    let painter = Painter::new(cache, &options.network, &options.settings, &job.style, &options.pyramid, size)?;
    match &job.style_outside {
        None => Ok(painter),
        Some(path) => {
            let outside = StyleSpec { paths: vec![path.clone()], blend_weights: vec![1.0], scale: job.style.scale };
            painter.with_outside_style(&Painter::new(cache, &options.network, &options.settings, &outside, &options.pyramid, size)?)
        }
    }
}

/// An `--init PATH` image at the coarsest level's size, where a cold start begins.
pub(crate) fn coarsest_init_image(job: &VideoJob, painter: &Painter, size: (u32, u32)) -> Result<Option<Tensor>> {
    let Init::Image(path) = &job.options.init else { return Ok(None) };
    let (width, height) = painter.coarsest_size(size);
    Ok(Some(load_init_image(path, width, height, painter.finest().vgg().device())?))
}

pub(crate) fn check_video_job(job: &VideoJob) -> Result<()> {
    check_before_work(&job.options, job.size, &job.output, job.report.as_deref())?;
    if job.max_frames == Some(0) {
        return Err(Error::Settings("--max-frames: must be at least 1 (got 0)".into()));
    }
    if job.passes == 0 {
        return Err(Error::Settings("--passes: must be at least 1 (got 0)".into()));
    }
    job.keyframes.validate(job.style.paths.len())?;
    if let Some(max) = job.max_iterations.filter(|&m| m < job.iterations) {
        return Err(Error::Settings(format!(
            "--max-iterations {max} is below --iterations {}, the least a warm frame gets",
            job.iterations
        )));
    }
    if job.style_outside.is_some() && job.matte.is_none() {
        return Err(Error::Settings("--style-outside paints what a --matte leaves out: give a --matte".into()));
    }
    if let Some(matte) = &job.matte {
        if !(matte.feather >= 0.0 && matte.feather.is_finite()) {
            return Err(Error::Settings(format!("--matte-feather: must be a finite number ≥ 0, got {}", matte.feather)));
        }
    }
    if job.temporal_frames.is_empty() || job.temporal_frames.iter().any(|&j| !(1..=MAX_TEMPORAL_FRAME).contains(&j)) {
        return Err(Error::Settings(format!(
            "--temporal-frames: each must be from 1 (the previous frame) to {MAX_TEMPORAL_FRAME}, got {:?}",
            job.temporal_frames
        )));
    }
    Ok(())
}

/// Whether the output takes more than 8 bits per channel, so the stylized frames are kept at 16.
pub(crate) fn deep_output(job: &VideoJob, source: &VideoInfo) -> bool {
    match sequence_output(&job.output) {
        // EXR frames are half floats, made from the painting at 16 bits.
        Some(pattern) if pattern.extension() == "exr" => true,
        Some(_) => job.bit_depth == BitDepth::Sixteen,
        None => job.codec.bit_depth(source.bit_depth) > 8,
    }
}

/// Where the stylized frames go: a video file, or a numbered image sequence.
// One sink per run: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
enum FrameSink {
    Video(VideoEncoder),
    Sequence {
        writer: SequenceWriter,
        source: VideoInfo,
        /// Number of the source's first frame: the input sequence's, 1 for a video (as FFmpeg).
        first_number: u64,
        last_number: Option<u64>,
        notes: Vec<String>,
    },
}

impl FrameSink {
    fn create(output: &Path, source: &VideoInfo, options: &EncodeOptions, bit_depth: BitDepth) -> Result<FrameSink> {
        if sequence_output(output).is_none() {
            let mut encoder = VideoEncoder::create(output, source, options)?;
            if source.alpha && !options.codec.carries_alpha() {
                encoder.note(format!(
                    "the input's alpha channel ({}) is not written: H.264 has none (--codec ffv1 or prores keeps it); the output is opaque",
                    source.pixel_format
                ));
            }
            return Ok(FrameSink::Video(encoder));
        }
        let mut notes = Vec::new();
        if source.alpha && matches!(Pattern::parse(output).map(|p| p.extension()).as_deref(), Some("jpg" | "jpeg")) {
            notes.push(format!("the input's alpha channel ({}) is not written: JPEG has none (PNG and TIFF frames keep it)", source.pixel_format));
        }
        if options.copy_other_streams && !source.other_streams.is_empty() {
            notes.push(format!("an image sequence holds no audio: the source's {} other stream(s) are not written", source.other_streams.len()));
        }
        Ok(FrameSink::Sequence {
            writer: SequenceWriter::create(output, bit_depth)?,
            source: source.clone(),
            first_number: source.sequence.as_ref().map_or(1, |s| s.start_number),
            last_number: None,
            notes,
        })
    }

    /// Writes one frame; `pts` in the source's time base. A sequence numbers each frame as the
    /// source frame it came from (frames skipped by `--start` count), so it lines up in a comp.
    fn write_frame(&mut self, image: &FinishedFrame, pts: i64) -> Result<()> {
        match self {
            FrameSink::Video(encoder) => match (&image.rgb16, image.alpha.is_some() && encoder.carries_alpha()) {
                (Some(_), true) => encoder.write_frame_rgba16(&image.rgba16().expect("has alpha"), pts),
                (None, true) => encoder.write_frame_rgba(&image.rgba8().expect("has alpha"), pts),
                (Some(deep), false) => encoder.write_frame16(deep, pts),
                (None, false) => encoder.write_frame(&image.rgb8, pts),
            },
            FrameSink::Sequence { writer, source, first_number, last_number, .. } => {
                let (num, den) = source.time_base;
                let seconds = pts as f64 * num as f64 / den as f64 - source.start_seconds;
                let position = (seconds / source.frame_seconds()).round().max(0.0) as u64;
                let number = (*first_number + position).max(last_number.map_or(0, |n| n + 1));
                *last_number = Some(number);
                writer.write_frame(image, number)
            }
        }
    }

    fn finish(self) -> Result<EncodedInfo> {
        match self {
            FrameSink::Video(encoder) => encoder.finish(),
            FrameSink::Sequence { writer, source, mut notes, .. } => {
                let written = writer.finish()?;
                notes.push(format!("{}-bit frames numbered from {}", written.bits, written.first_number));
                if written.stale_removed > 0 {
                    notes.push(format!(
                        "{} frames of the earlier sequence under these names, which this run's does not have, removed (-y replaces the whole sequence)",
                        written.stale_removed
                    ));
                }
                Ok(EncodedInfo {
                    path: PathBuf::from(&written.pattern),
                    width: written.width,
                    height: written.height,
                    frames_written: written.frames,
                    pixel_format: match (written.bits, written.alpha) {
                        _ if written.pattern.ends_with(".exr") && written.alpha => "half-float RGBA".into(),
                        _ if written.pattern.ends_with(".exr") => "half-float RGB".into(),
                        (16, true) => "rgba64".into(),
                        (16, false) => "rgb48".into(),
                        (_, true) => "rgba".into(),
                        (_, false) => "rgb24".into(),
                    },
                    colour: source.colour.for_rgb_output(),
                    timecode: None,
                    streams: Vec::new(),
                    notes,
                })
            }
        }
    }
}

/// The pattern, when `output` names an image sequence (`out/frame_%06d.png`).
fn sequence_output(output: &Path) -> Option<Pattern> {
    Pattern::parse(output)
}

/// The frame count to expect: the container's count, or duration × rate, cut by the options.
fn expected_frames(info: &VideoInfo, job: &VideoJob) -> Option<u64> {
    let rate = 1.0 / info.frame_seconds();
    let total_seconds = info.duration_seconds?;
    let start = job.start.unwrap_or(0.0).max(0.0);
    let span = (total_seconds - start).max(0.0).min(job.duration.unwrap_or(f64::INFINITY));
    let mut frames = match (info.frame_count, job.start, job.duration) {
        (Some(n), None, None) => n,
        _ => (span * rate).round() as u64,
    };
    if let Some(max) = job.max_frames {
        frames = frames.min(max);
    }
    Some(frames)
}

/// Everything that determines the stylized frames (not how they are encoded): an earlier run's
/// frames are reused only when all of it matches.
pub(crate) fn fingerprint(job: &VideoJob) -> Result<serde_json::Value> {
    let file = |path: &Path| -> serde_json::Value {
        let meta = std::fs::metadata(path).ok();
        let modified = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64);
        serde_json::json!({
            "path": std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            "bytes": meta.map(|m| m.len()),
            "modified": modified,
        })
    };
    let weights = job.options.network.weights_path();
    let mut fingerprint = serde_json::json!({
        "input": file(&job.input),
        "styles": job.style.paths.iter().map(|p| file(p)).collect::<Vec<_>>(),
        "style_blend_weights": job.style.blend_weights,
        "style_scale": job.style.scale,
        "size": job.size,
        "first_iterations": job.first_iterations,
        "iterations": job.iterations,
        "init": match &job.options.init { Init::Image(p) => file(p), other => serde_json::to_value(other).unwrap_or_default() },
        "init_video": job.init_video,
        "flow": job.flow,
        "temporal_frames": job.temporal_frames,
        "original_colors": job.options.original_colors,
        "seed": job.options.seed,
        "pooling": job.options.network.pooling,
        "settings": job.options.settings,
        "weights": file(&weights),
        "start": job.start,
        "duration": job.duration,
    });
    // Frames not rebuilt one per frame: without the key, a run from before deinterlacing
    // existed resumes as it did (only interlaced input differs).
    if job.deinterlace != Deinterlace::Frame {
        fingerprint["deinterlace"] = serde_json::to_value(job.deinterlace).unwrap_or_default();
    }
    // The levels, where there are several: a run painted in one level (every run at sizes up
    // to √2 × the base size, as before there were levels) resumes as it did.
    let pyramid = &job.options.pyramid;
    if !pyramid.is_one_level(job.size, 1) {
        fingerprint["pyramid"] = serde_json::to_value(pyramid).unwrap_or_default();
    }
    // Likewise the adaptive budget, only when it is on.
    if let Some(max) = job.max_iterations.filter(|&m| m > job.iterations) {
        fingerprint["max_iterations"] = max.into();
        fingerprint["style_ratio_target"] = STYLE_RATIO_TARGET.into();
    }
    if let Some(iterations) = job.paint_revealed {
        fingerprint["paint_revealed"] = iterations.into();
    }
    if job.keyframes.any() {
        fingerprint["keyframes"] = serde_json::to_value(&job.keyframes).unwrap_or_default();
    }
    if let Some(matte) = &job.matte {
        fingerprint["matte"] = serde_json::json!({ "file": file(&matte.path), "feather": matte.feather });
    }
    if let Some(outside) = &job.style_outside {
        fingerprint["style_outside"] = file(outside);
    }
    Ok(fingerprint)
}

/// Removes temporary files an earlier, killed run left beside the output: those whose process
/// (the number after `.partial-`) is gone. A live run's are its work in progress: a second run
/// on the same output, which the work directory's lock then refuses, must not delete them.
fn remove_stale_temporaries(output: &Path) {
    let Some(name) = output.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!(".{name}.partial-");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(suffix) = name.strip_prefix(&prefix) else { continue };
            let pid = suffix.split(|c: char| !c.is_ascii_digit()).next().unwrap_or_default();
            if pid.parse().is_ok_and(process_is_running) {
                continue;
            }
            // A temporary video file, or a sequence's temporary directory.
            let _ = std::fs::remove_file(entry.path()).or_else(|_| std::fs::remove_dir_all(entry.path()));
        }
    }
}

/// Whether a process numbered `pid` exists (signal 0 checks without sending anything; EPERM:
/// it exists but belongs to another user).
fn process_is_running(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only reports whether `pid` could be signalled.
    unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_is_told_from_a_finished_one() {
        assert!(process_is_running(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!process_is_running(pid));
        assert!(!process_is_running(0) && !process_is_running(-1));
    }

    #[test]
    fn a_panicking_decoder_thread_is_an_error_naming_the_input_not_a_short_video() {
        let decoder = std::thread::spawn(|| -> DecoderEnd { panic!("flow: frames of different sizes") });
        let err = join_decoder(decoder, Path::new("clip.mp4")).unwrap_err().to_string();
        assert!(err.contains("clip.mp4") && err.contains("flow: frames of different sizes"), "{err}");
        assert_eq!(err.lines().count(), 1);
        let decoder = std::thread::spawn(DecoderEnd::default);
        assert!(join_decoder(decoder, Path::new("clip.mp4")).unwrap().warning_kinds.is_empty());
    }
}
