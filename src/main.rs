//! Command line: parses the options, hands the job to the library, reports errors in one line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use std::sync::atomic::{AtomicBool, Ordering};

use stylize_video::cache::StylizerCache;
use stylize_video::optim::OptimizerKind;
use stylize_video::precision::Precision;
use stylize_video::segment::{assemble, run_segment, Assembled, SegmentSpec, DEFAULT_OVERLAP};
use stylize_video::batch::{run_batch, BatchItem, BatchPlace, BatchProgress, FileResult, Outcome};
use stylize_video::pipeline::{run_video, OutputSize, VideoJob, VideoReport, DEFAULT_FIRST_ITERATIONS, DEFAULT_WARM_ITERATIONS};
use stylize_video::preview::{
    run_preview, PreviewFrames, PreviewInput, PreviewJob, Sweep, SweptOption, DEFAULT_PREVIEW_FRAMES, DEFAULT_PREVIEW_ITERATIONS,
    DEFAULT_PREVIEW_SIZE,
};
use stylize_video::progress::{CellBar, FrameBar, IterationBar, NoProgress, PreviewProgress, Progress, VideoProgress};
use stylize_video::job::{self, Init, StyleSpec, DEFAULT_SIZE};
use stylize_video::still::{run_still, StillJob, StillReport, DEFAULT_ITERATIONS};
use stylize_video::video::VideoCodec;
use stylize_video::Error;
use stylize_video::stylize::{default_style_layers, LossTerms, Settings};
use stylize_video::workdir::FrameRecord;
use stylize_video::vgg::{Compute, LayerName, Pooling};

/// Turn a video (or a photo) into a painting in motion: Gatys et al. neural style transfer with
/// VGG16, each frame warm-started from the previous stylized frame.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Input video (anything FFmpeg reads: mp4, mov, mkv, webm, avi…) or still image (PNG, JPEG).
    /// Several make a batch: each output beside its input (or in the directory -o names), one
    /// failure reported and the others still done.
    #[arg(required = true, num_args = 1..)]
    input: Vec<PathBuf>,

    /// Style image(s); several (repeated or comma-separated) are blended, see --style-weights
    /// (with --preview they are alternatives: one row group each).
    #[arg(short, long, required = true, num_args = 1.., value_delimiter = ',')]
    style: Vec<PathBuf>,

    /// Output file; the container or image format follows the extension [default: beside the
    /// input, <input stem>-stylized.mp4 for a video (.mkv with ffv1, .mov with prores), .png for an image].
    /// With several inputs: a directory (an existing one, or a path ending in /) for the outputs.
    #[arg(short, long)]
    output: Option<PathBuf>,

    /// Maximum optimisation iterations (each: forward, losses, backward, step) of an image, or
    /// of each video frame after the first [default: 150 for an image, 10 for video frames]
    #[arg(long)]
    iterations: Option<usize>,

    /// Video: maximum iterations of the first frame, which starts from scratch.
    #[arg(long, default_value_t = DEFAULT_FIRST_ITERATIONS)]
    first_iterations: usize,

    /// Optimiser over the pixels.
    #[arg(long, default_value = "lbfgs", value_parser = ["lbfgs", "adam"])]
    optimizer: String,

    /// Step size: L-BFGS's step scale [default: 1]; Adam's step in 0..255 pixel units [default: 10].
    #[arg(long)]
    learning_rate: Option<f64>,

    /// α, weight of the content cost J_content (with --preview: a comma-separated list to sweep).
    #[arg(long, value_delimiter = ',', default_values_t = [Settings::default().content_weight])]
    content_weight: Vec<f64>,

    /// β, weight of the style cost J_style (with --preview: a comma-separated list to sweep).
    #[arg(long, value_delimiter = ',', default_values_t = [Settings::default().style_weight])]
    style_weight: Vec<f64>,

    /// γ_tv, weight of the total-variation cost J_tv (0 disables it; with --preview: a
    /// comma-separated list to sweep).
    #[arg(long, value_delimiter = ',', default_values_t = [Settings::default().tv_weight])]
    tv_weight: Vec<f64>,

    /// Video: γ_temp, weight of the temporal cost J_temporal that holds each frame's reliable
    /// pixels to the previous stylized frame warped along the optical flow (0 disables it).
    #[arg(long, default_value_t = Settings::default().temporal_weight)]
    temporal_weight: f64,

    /// Video: starting image of each frame after the first: prev-warped (the previous stylized
    /// frame warped along the optical flow; where the flow is unreliable, the frame's content
    /// under the previous frame's warped brushwork), prev
    /// (the previous stylized frame as it is) or content (the frame itself).
    #[arg(long, default_value = "prev-warped", value_parser = ["prev-warped", "prev", "content"])]
    init_video: String,

    /// Video: the earlier frames the temporal cost holds each frame to, comma-separated: 1 is
    /// the previous frame; Ruder et al.'s long-term consistency is 1,10,20,40 (each pixel held to
    /// the nearest of them that saw it reliably).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    temporal_frames: Vec<usize>,

    /// Video: optical flow between input frames: dis (OpenCV's DIS, fast) or deepflow (OpenCV's
    /// DeepFlow, Ruder et al.'s choice: slower, better on large motions).
    #[arg(long, default_value = "dis", value_parser = ["dis", "deepflow"])]
    flow: String,

    /// Layers of the style cost, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")]
    style_layers: Vec<LayerName>,

    /// λ^[l] for each style layer, comma-separated [default: 1/(number of style layers) each].
    #[arg(long, value_delimiter = ',')]
    style_layer_weights: Option<Vec<f64>>,

    /// Layer of the content cost.
    #[arg(long, default_value = "relu4_2")]
    content_layer: LayerName,

    /// Pooling between VGG's blocks.
    #[arg(long, default_value = "max", value_parser = ["max", "avg"])]
    pooling: String,

    /// Where the network runs: cpu (this tool's kernels), cuda or cuda:N (a GPU; needs a build
    /// with --features cuda), or cpu-reference (candle's own CPU ops, for comparisons).
    #[arg(long, default_value = "cpu")]
    device: Compute,

    /// Precision of the network's convolutions: fp32, tf32 (GPUs; fp32 on a CPU) or bf16 (bf16
    /// operands, f32 sums; on a CPU needs AMX or AVX-512 BF16, else fp32). Default: bf16 on a CPU
    /// with AMX, else fp32; tf32 on CUDA; fp32 on cpu-reference. The report says which ran.
    #[arg(long)]
    precision: Option<Precision>,

    /// Starting image: content, noise, or the path of an image.
    #[arg(long, default_value = "content")]
    init: Init,

    /// Keep the content's colours and take only the style's brushwork: the stylized luminance
    /// with the content's chroma (Y'CbCr, BT.601), like neural-style's -original_colors.
    #[arg(long)]
    original_colors: bool,

    /// Seed of --init noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Longest side of the processed (and written) image, in pixels. Time per iteration grows
    /// with the pixel count: at 256 an iteration takes about 0.25 s on 2 CPU cores, at 512 four
    /// times that. [default: 256; 192 for --preview]
    #[arg(long)]
    size: Option<u32>,

    /// Style images are resized so their area is the content's area times this (with
    /// --preview: a comma-separated list to sweep).
    #[arg(long, value_delimiter = ',', default_values_t = [1.0])]
    style_scale: Vec<f64>,

    /// Blend weights of the --style images, comma-separated [default: equal].
    #[arg(long, value_delimiter = ',')]
    style_weights: Option<Vec<f64>>,

    /// Early stop when J changes by less than this fraction over 10 iterations (0: never).
    #[arg(long, default_value_t = Settings::default().tol)]
    tol: f64,

    /// Write the loss terms and run facts as JSON here (with several inputs: a directory, one
    /// <output name>.json per input).
    #[arg(long)]
    report: Option<PathBuf>,

    /// VGG16 weights (safetensors) [default: $STYLIZE_VIDEO_WEIGHTS, else weights/ in the source tree].
    #[arg(long)]
    weights: Option<PathBuf>,

    /// Video: size of the written video: the processing size, or the source's (stylized frames
    /// scaled back up with a Lanczos filter, to overlay on the original).
    #[arg(long, default_value = "processing", value_parser = ["processing", "source"])]
    output_size: String,

    /// Video codec: h264 (libx264, yuv420p; .mp4/.mov/.mkv), ffv1 (lossless; .mkv) or prores
    /// (ProRes 422 HQ for editing; .mov).
    #[arg(long, default_value = "h264", value_parser = ["h264", "ffv1", "prores"])]
    codec: String,

    /// Video: H.264 constant quality, 0 (lossless) to 51; 18 is visually transparent.
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=51))]
    crf: u8,

    /// Video: drop the source's audio and subtitle streams (by default they are copied).
    #[arg(long)]
    no_audio: bool,

    /// Video: also write every stylized frame here as frame_000001.png, … (with several inputs:
    /// in a subdirectory per input, named after its output).
    #[arg(long)]
    frames_dir: Option<PathBuf>,

    /// Video: start this far into the input (seconds, or [HH:]MM:SS[.ms]), like ffmpeg -ss.
    #[arg(long, value_parser = parse_time)]
    start: Option<f64>,

    /// Video: stylize this long a stretch (seconds, or [HH:]MM:SS[.ms]), like ffmpeg -t.
    #[arg(long, value_parser = parse_time)]
    duration: Option<f64>,

    /// Video: stylize at most this many frames.
    #[arg(long)]
    max_frames: Option<u64>,

    /// Image-sequence input: frames per second (24, 25, 23.976, 30000/1001…), since a sequence
    /// carries none.
    #[arg(long, value_parser = parse_rate)]
    frame_rate: Option<(i32, i32)>,

    /// Image-sequence output: bits per channel of the PNG/TIFF frames (8 or 16).
    #[arg(long, default_value = "8", value_parser = ["8", "16"])]
    bit_depth: String,

    /// Video: replace an existing output file.
    #[arg(short = 'y', long)]
    overwrite: bool,

    /// Video: discard the finished frames of an earlier interrupted run instead of resuming it.
    #[arg(long)]
    fresh: bool,

    /// Video: keep the work directory (<output>.partial/, every finished frame as PNG) after success.
    #[arg(long)]
    keep_work: bool,

    /// Instead of stylizing the input, write a preview grid here (PNG): a few frames spread over
    /// the clip, stylized as stills at a small size, for each --style (alternatives, not blended)
    /// and each value of one option given as a list (--style-weight, --style-scale,
    /// --content-weight or --tv-weight), labelled. [--size 192, 50 --iterations by default]
    #[arg(long, value_name = "GRID.png")]
    preview: Option<PathBuf>,

    /// Video: stylize only segment I of N (I from 0 to N−1) into the output's work directory,
    /// for array jobs on a cluster; `auto/N` takes I from SLURM_ARRAY_TASK_ID,
    /// JOB_COMPLETION_INDEX (Kubernetes) or AWS_BATCH_JOB_ARRAY_INDEX. Join with --assemble.
    #[arg(long, value_name = "I/N", value_parser = SegmentSpec::parse, conflicts_with = "assemble")]
    segment: Option<SegmentSpec>,

    /// --segment: frames both neighbours paint at a boundary inside a shot (cross-faded).
    #[arg(long, value_name = "K", default_value_t = DEFAULT_OVERLAP, requires = "segment")]
    segment_overlap: u64,

    /// Video: join the segments in the output's work directory into the output (succeeds
    /// without work when the output is already complete).
    #[arg(long)]
    assemble: bool,

    /// --preview: the one frame at this time (seconds, or [HH:]MM:SS[.ms]) instead of frames
    /// spread over the clip.
    #[arg(long, value_parser = parse_time, requires = "preview")]
    preview_at: Option<f64>,

    /// --preview: how many frames to spread over the clip (or over --start/--duration).
    #[arg(long, requires = "preview", default_value_t = DEFAULT_PREVIEW_FRAMES)]
    preview_frames: usize,

    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
}

/// The options a preview can sweep, with the values given for each.
fn sweepable(cli: &Cli) -> [(SweptOption, &Vec<f64>); 4] {
    [
        (SweptOption::StyleWeight, &cli.style_weight),
        (SweptOption::StyleScale, &cli.style_scale),
        (SweptOption::ContentWeight, &cli.content_weight),
        (SweptOption::TvWeight, &cli.tv_weight),
    ]
}

/// A number list's text as given: "1e-4,5e-4".
fn list_text(values: &[f64]) -> String {
    values.iter().map(|v| stylize_video::preview::short_number(*v)).collect::<Vec<_>>().join(",")
}

/// Seconds, or [HH:]MM:SS[.fraction], as ffmpeg's time durations.
fn parse_time(text: &str) -> Result<f64, String> {
    let bad = || format!("'{text}' is not a time (seconds, or [HH:]MM:SS[.ms])");
    let mut seconds = 0.0;
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    for part in &parts {
        let value: f64 = part.parse().map_err(|_| bad())?;
        seconds = seconds * 60.0 + value;
    }
    if !(seconds >= 0.0 && seconds.is_finite()) {
        return Err(bad());
    }
    Ok(seconds)
}

fn parse_rate(text: &str) -> Result<(i32, i32), String> {
    stylize_video::sequence::parse_rate(text)
}

/// What the command line asks for.
enum Job {
    Still(StillJob),
    Video(VideoJob),
    Preview(PreviewJob),
    Segment { job: VideoJob, segment: SegmentSpec, overlap: u64 },
    Assemble(VideoJob),
    /// Several inputs, and the directories to make for their outputs and reports.
    Batch { items: Vec<BatchItem>, directories: Vec<PathBuf> },
}

impl Cli {
    fn settings(&self) -> Result<Settings, String> {
        let optimizer: OptimizerKind = self.optimizer.parse()?;
        let n = self.style_layers.len();
        // Lists are swept by --preview (checked in `job`); every row starts from the first value.
        Ok(Settings {
            content_weight: self.content_weight[0],
            style_weight: self.style_weight[0],
            tv_weight: self.tv_weight[0],
            temporal_weight: self.temporal_weight,
            style_layer_weights: self.style_layer_weights.clone().unwrap_or_else(|| vec![1.0 / n.max(1) as f64; n]),
            style_layers: if n == 0 { default_style_layers() } else { self.style_layers.clone() },
            content_layer: self.content_layer,
            optimizer,
            learning_rate: self.learning_rate.unwrap_or(Settings::default_learning_rate(optimizer)),
            tol: self.tol,
            ..Settings::default()
        })
    }

    fn job(self) -> Result<Job, String> {
        let lists: Vec<(SweptOption, &Vec<f64>)> = sweepable(&self).into_iter().filter(|(_, v)| v.len() > 1).collect();
        if self.preview.is_none() {
            if let Some((option, values)) = lists.first() {
                return Err(format!(
                    "--{}: several values ({}) are only for --preview, which sweeps them; give one value",
                    option.name(),
                    list_text(values)
                ));
            }
        } else if lists.len() > 1 {
            let names: Vec<String> = lists.iter().map(|(o, _)| format!("--{}", o.name())).collect();
            return Err(format!("{} are both lists: a preview sweeps one option at a time", names.join(" and ")));
        }
        let settings = self.settings()?;
        let pooling: Pooling = self.pooling.parse()?;
        if self.preview.is_some() {
            if self.input.len() > 1 {
                return Err(format!("--preview takes one input, got {}", self.input.len()));
            }
            return self.preview_job(settings, pooling).map(Job::Preview);
        }
        if let [input] = &self.input[..] {
            let (output, report, frames_dir) = (self.output.clone(), self.report.clone(), self.frames_dir.clone());
            return Ok(match (self.item(input, output, report, frames_dir, &settings, pooling)?, self.segment) {
                (BatchItem::Still(_), _) if self.segment.is_some() || self.assemble => {
                    return Err("--segment and --assemble are for videos".into())
                }
                (BatchItem::Still(job), _) => Job::Still(job),
                (BatchItem::Video(job), Some(segment)) => Job::Segment { job, segment, overlap: self.segment_overlap },
                (BatchItem::Video(job), None) if self.assemble => Job::Assemble(job),
                (BatchItem::Video(job), None) => Job::Video(job),
            });
        }
        if self.segment.is_some() || self.assemble {
            return Err(format!("--segment and --assemble take one input, got {}", self.input.len()));
        }
        self.batch(&settings, pooling)
    }

    /// Several inputs: each output beside its input or in the -o directory, a report per input
    /// in the --report directory, --frames-dir split per input.
    fn batch(&self, settings: &Settings, pooling: Pooling) -> Result<Job, String> {
        let n = self.input.len();
        let directory = |flag: &str, path: &Option<PathBuf>| -> Result<Option<PathBuf>, String> {
            match path {
                None => Ok(None),
                Some(p) if p.is_dir() || p.to_string_lossy().ends_with('/') => Ok(Some(p.clone())),
                Some(p) => Err(format!(
                    "{flag} {}: with {n} inputs this must be a directory (an existing one, or a path ending in /)",
                    p.display()
                )),
            }
        };
        let output_dir = directory("-o", &self.output)?;
        let report_dir = directory("--report", &self.report)?;
        let mut items = Vec::with_capacity(n);
        for input in &self.input {
            let beside_input = self.item(input, None, None, None, settings, pooling)?.output().to_path_buf();
            let place = BatchPlace::new(input, &beside_input, output_dir.as_deref(), report_dir.as_deref(), self.frames_dir.as_deref());
            items.push(self.item(input, Some(place.output), place.report, place.frames_dir, settings, pooling)?);
        }
        let directories = [output_dir, report_dir].into_iter().flatten().collect();
        Ok(Job::Batch { items, directories })
    }

    /// The still or video job of one input.
    fn item(
        &self,
        input: &Path,
        output: Option<PathBuf>,
        report: Option<PathBuf>,
        frames_dir: Option<PathBuf>,
        settings: &Settings,
        pooling: Pooling,
    ) -> Result<BatchItem, String> {
        let settings = settings.clone();
        let blend_weights = self.style_weights.clone().unwrap_or_else(|| vec![1.0; self.style.len()]);
        let style = StyleSpec { paths: self.style.clone(), blend_weights, scale: self.style_scale[0] };
        let size = self.size.unwrap_or(DEFAULT_SIZE);
        if job::is_still_image(input) {
            return Ok(BatchItem::Still(StillJob {
                output: output.unwrap_or_else(|| job::default_output(input, "png")),
                content: input.to_path_buf(),
                style,
                size,
                init: self.init.clone(),
                seed: self.seed,
                iterations: self.iterations.unwrap_or(DEFAULT_ITERATIONS),
                original_colors: self.original_colors,
                pooling,
                compute: self.device,
                precision: self.precision,
                settings,
                weights: self.weights.clone(),
                report,
            }));
        }
        let (codec, extension) = match self.codec.as_str() {
            "ffv1" => (VideoCodec::Ffv1, "mkv"),
            "prores" => (VideoCodec::ProresKs, "mov"),
            _ => (VideoCodec::H264 { crf: self.crf }, "mp4"),
        };
        Ok(BatchItem::Video(VideoJob {
            output: output.unwrap_or_else(|| job::default_output(input, extension)),
            input: input.to_path_buf(),
            style,
            size,
            output_size: self.output_size.parse::<OutputSize>()?,
            first_iterations: self.first_iterations,
            iterations: self.iterations.unwrap_or(DEFAULT_WARM_ITERATIONS),
            init: self.init.clone(),
            init_video: self.init_video.parse()?,
            flow: self.flow.parse()?,
            temporal_frames: self.temporal_frames.clone(),
            original_colors: self.original_colors,
            seed: self.seed,
            pooling,
            compute: self.device,
            precision: self.precision,
            settings,
            weights: self.weights.clone(),
            codec,
            keep_audio: !self.no_audio,
            frames_dir,
            start: self.start,
            duration: self.duration,
            max_frames: self.max_frames,
            sequence_rate: self.frame_rate,
            bit_depth: self.bit_depth.parse()?,
            overwrite: self.overwrite,
            fresh: self.fresh,
            keep_work: self.keep_work,
            report,
        }))
    }

    fn preview_job(self, settings: Settings, pooling: Pooling) -> Result<PreviewJob, String> {
        if self.style_weights.is_some() {
            return Err("--style-weights blends styles, but with --preview several styles are alternatives (one row group each)".into());
        }
        if self.output.is_some() {
            return Err("-o/--output: --preview writes only the grid, to the file it names".into());
        }
        let sweep = sweepable(&self)
            .into_iter()
            .find(|(_, values)| values.len() > 1)
            .map(|(option, values)| Sweep { option, values: values.clone() });
        let input = self.input[0].clone();
        let still = job::is_still_image(&input);
        let input = if still { PreviewInput::Still(input) } else { PreviewInput::Video(input) };
        Ok(PreviewJob {
            input,
            styles: self.style,
            style_scale: self.style_scale[0],
            sweep,
            frames: match self.preview_at {
                Some(t) => PreviewFrames::At(t),
                None => PreviewFrames::Spread(self.preview_frames),
            },
            start: self.start,
            duration: self.duration,
            sequence_rate: self.frame_rate,
            size: self.size.unwrap_or(DEFAULT_PREVIEW_SIZE),
            iterations: self.iterations.unwrap_or(DEFAULT_PREVIEW_ITERATIONS),
            init: self.init,
            seed: self.seed,
            original_colors: self.original_colors,
            pooling,
            compute: self.device,
            precision: self.precision,
            settings,
            weights: self.weights,
            output: self.preview.expect("preview mode"),
            report: self.report,
        })
    }
}

fn main() -> ExitCode {
    stylize_video::memory::reuse_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // clap's first line says what is wrong; the rest points at --help.
            let message = e.render().to_string();
            eprintln!("stylize-video: {}", message.lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    let quiet = cli.quiet;
    let job = match cli.job() {
        Ok(job) => job,
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match job {
        Job::Still(job) => run_still_job(&job, quiet),
        Job::Video(job) => run_video_job(&job, quiet),
        Job::Preview(job) => run_preview_job(&job, quiet),
        Job::Segment { job, segment, overlap } => run_segment_job(&job, segment, overlap, quiet),
        Job::Assemble(job) => run_assemble_job(&job, quiet),
        Job::Batch { items, directories } => return run_batch_job(&items, &directories, quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ Error::Interrupted(_)) => {
            eprintln!("stylize-video: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_still_job(job: &StillJob, quiet: bool) -> Result<(), Error> {
    let mut bar = (!quiet).then(|| IterationBar::new(job.iterations));
    let progress: &mut dyn Progress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_still(job, progress);
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        print_still_summary(&report);
    }
    Ok(())
}

fn print_still_summary(report: &StillReport) {
    eprintln!(
        "wrote {} ({}×{}, {} iterations, {} evaluation{} of J, {}, {:.1} s, J {:.4e} = α·{:.4e} + β·{:.4e} + γ·{:.4e})",
        report.output.display(),
        report.width,
        report.height,
        report.iterations,
        report.evaluations,
        if report.evaluations == 1 { "" } else { "s" },
        report.precision,
        report.seconds,
        report.terms.total,
        report.terms.content,
        report.terms.style,
        report.terms.tv
    );
}

/// Set by the first Ctrl-C.
static STOP: AtomicBool = AtomicBool::new(false);

/// First Ctrl-C: finish the current write and stop cleanly; a second one: leave at once.
fn stop_on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstylize-video: stopping after the current step (Ctrl-C again to quit at once)");
    });
}

fn run_video_job(job: &VideoJob, quiet: bool) -> Result<(), Error> {
    stop_on_ctrl_c();
    let mut bar = (!quiet).then(FrameBar::new);
    let progress: &mut dyn VideoProgress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_video(job, progress, &STOP);
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        print_video_summary(&report);
    }
    Ok(())
}

fn print_video_summary(report: &VideoReport) {
    let t = &report.totals;
    let speed = match (t.first_frame_seconds, t.warm_frame_seconds) {
        (Some(first), Some(warm)) => format!("; first frame {first:.1} s, then {warm:.1} s per frame"),
        (None, Some(warm)) => format!("; {warm:.1} s per frame"),
        (Some(first), None) => format!("; {first:.1} s"),
        (None, None) => String::new(),
    };
    let resumed = if t.resumed_frames > 0 { format!(", {} resumed", t.resumed_frames) } else { String::new() };
    eprintln!(
        "wrote {} ({} frames{resumed}, {}×{}, {}, {:.1} s{speed})",
        report.output.path.display(),
        t.frames,
        report.output.width,
        report.output.height,
        report.precision,
        t.seconds
    );
    for note in &report.output.notes {
        eprintln!("note: {note}");
    }
    if t.decoder_warnings > 0 {
        let kinds: Vec<String> = t.decoder_warning_kinds.iter().take(3).map(|k| format!("{}× \"{}\"", k.count, k.message)).collect();
        let more = if t.decoder_warning_kinds.len() > 3 { ", … (see --report)" } else { "" };
        eprintln!("note: the input is damaged: the decoder reported {} problems ({}{more})", t.decoder_warnings, kinds.join(", "));
    }
}

fn run_segment_job(job: &VideoJob, segment: SegmentSpec, overlap: u64, quiet: bool) -> Result<(), Error> {
    stop_on_ctrl_c();
    let mut bar = (!quiet).then(|| FrameBar::new().with_prefix(format!("segment {}/{}  ", segment.index, segment.count)));
    let progress: &mut dyn VideoProgress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_segment(job, segment, overlap, progress, &STOP, &StylizerCache::default());
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        let (run, keep) = (report.plan.run, report.plan.keep);
        eprintln!(
            "segment {}/{}: frames {}–{} of {} stylized ({} kept: {}–{}{}) in {:.1} s; {}",
            segment.index,
            segment.count,
            run.start + 1,
            run.end,
            report.clip_frames,
            keep.len(),
            keep.start + 1,
            keep.end,
            if report.resumed_frames > 0 { format!(", {} resumed", report.resumed_frames) } else { String::new() },
            report.seconds,
            if report.all_segments_done { "all segments are done: run --assemble" } else { "other segments are still to do" }
        );
    }
    Ok(())
}

fn run_assemble_job(job: &VideoJob, quiet: bool) -> Result<(), Error> {
    match assemble(job)? {
        Assembled::AlreadyComplete if !quiet => eprintln!("{} is already complete", job.output.display()),
        Assembled::Written(report) if !quiet => eprintln!(
            "wrote {} ({} frames from {} segments, {} cross-faded, {}×{}, {:.1} s)",
            report.output.path.display(),
            report.frames.len(),
            report.segments,
            report.blended_frames,
            report.output.width,
            report.output.height,
            report.seconds
        ),
        _ => {}
    }
    Ok(())
}

fn run_preview_job(job: &PreviewJob, quiet: bool) -> Result<(), Error> {
    let mut bar = (!quiet).then(CellBar::new);
    let progress: &mut dyn PreviewProgress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_preview(job, progress);
    if let Some(bar) = &bar {
        bar.finish();
    }
    let report = result?;
    if !quiet {
        let l = &report.layout;
        eprintln!(
            "wrote {} ({} rows × {} columns of {}×{} cells, {} iterations each, {:.1} s)",
            report.output.display(),
            l.rows,
            l.columns,
            l.cell_width,
            l.cell_height,
            report.iterations,
            report.seconds
        );
    }
    Ok(())
}

/// Runs a batch: one progress display with "file i/n" in it, a line per finished or failed
/// file, and a closing summary; exits non-zero when any file failed (130 after Ctrl-C).
fn run_batch_job(items: &[BatchItem], directories: &[PathBuf], quiet: bool) -> ExitCode {
    stop_on_ctrl_c();
    let mut display = BatchDisplay { quiet, bar: None };
    let report = match run_batch(items, directories, &mut display, &STOP) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed: Vec<&FileResult> = report.failed().collect();
    let done = report.succeeded().count();
    let not_started = items.len() - report.files.len();
    if report.interrupted {
        eprintln!("stylize-video: batch interrupted: {done} of {} files done, {not_started} not started", items.len());
        return ExitCode::from(130);
    }
    if failed.is_empty() {
        if !quiet {
            let skipped = report.files.iter().filter(|f| matches!(f.result, Ok(Outcome::AlreadyDone))).count();
            let before = if skipped > 0 { format!(" ({skipped} by an earlier run)") } else { String::new() };
            eprintln!("stylize-video: all {} files done{before}", items.len());
        }
        return ExitCode::SUCCESS;
    }
    let names: Vec<String> = failed.iter().map(|f| f.input.display().to_string()).collect();
    eprintln!("stylize-video: {} of {} files failed: {}", failed.len(), items.len(), names.join(", "));
    ExitCode::FAILURE
}

/// A batch's progress: the file at hand's frame (or iteration) display, prefixed "file i/n
/// name · ", replaced when the next file starts; a line when each file ends.
struct BatchDisplay {
    quiet: bool,
    bar: Option<FileBar>,
}

enum FileBar {
    Video(FrameBar),
    Still(IterationBar),
}

impl BatchDisplay {
    fn finish_bar(&mut self) {
        match self.bar.take() {
            Some(FileBar::Video(bar)) => bar.finish(),
            Some(FileBar::Still(bar)) => bar.finish(),
            None => {}
        }
    }
}

impl Progress for BatchDisplay {
    fn iteration(&mut self, done: usize, total: usize, terms: &LossTerms) {
        match &mut self.bar {
            Some(FileBar::Video(bar)) => bar.iteration(done, total, terms),
            Some(FileBar::Still(bar)) => bar.iteration(done, total, terms),
            None => {}
        }
    }

    fn should_stop(&self) -> bool {
        STOP.load(Ordering::SeqCst)
    }
}

impl VideoProgress for BatchDisplay {
    fn begin(&mut self, total: Option<u64>) {
        if let Some(FileBar::Video(bar)) = &mut self.bar {
            bar.begin(total);
        }
    }

    fn frame(&mut self, record: &FrameRecord) {
        if let Some(FileBar::Video(bar)) = &mut self.bar {
            bar.frame(record);
        }
    }
}

impl BatchProgress for BatchDisplay {
    fn file(&mut self, index: usize, count: usize, item: &BatchItem) {
        self.finish_bar();
        if self.quiet {
            return;
        }
        let name = item.input().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!("file {}/{count} {name} · ", index + 1);
        self.bar = Some(match item {
            BatchItem::Video(_) => FileBar::Video(FrameBar::new().with_prefix(prefix)),
            BatchItem::Still(job) => FileBar::Still(IterationBar::new(job.iterations).with_prefix(prefix)),
        });
    }

    fn file_done(&mut self, index: usize, count: usize, result: &FileResult) {
        self.finish_bar();
        match &result.result {
            Ok(outcome) if !self.quiet => {
                eprint!("file {}/{count}: ", index + 1);
                match outcome {
                    Outcome::Still(report) => print_still_summary(report),
                    Outcome::Video(report) => print_video_summary(report),
                    Outcome::AlreadyDone => {
                        eprintln!("{} already exists: skipped (-y to stylize it again)", result.output.display())
                    }
                }
            }
            Ok(_) => {}
            Err(e @ Error::Interrupted(_)) => eprintln!("stylize-video: {}: {e}", result.input.display()),
            Err(_) => eprintln!("stylize-video: error: {}", result.error_line().unwrap_or_default()),
        }
    }
}
