//! The command line's options: one clap struct, grouped under headings, each option with a
//! one-line help (`-h`) and a longer one (`--help`). Typed options parse straight into the
//! library's types; what the options mean together is [`super::build`]'s business.

use std::path::PathBuf;

use clap::Parser;

use stylize_video::jobs::pipeline::{OutputSize, DEFAULT_FIRST_ITERATIONS};
use stylize_video::jobs::preview::DEFAULT_PREVIEW_FRAMES;
use stylize_video::jobs::segment::{SegmentSpec, DEFAULT_OVERLAP};
use stylize_video::jobs::spec::{Init, DEFAULT_BASE_SIZE};
use stylize_video::media::sequence::BitDepth;
use stylize_video::media::video::{Deinterlace, VideoCodec};
use stylize_video::motion::flow::FlowMethod;
use stylize_video::motion::temporal::VideoInit;
use stylize_video::net::precision::{Compute, Precision};
use stylize_video::net::vgg::{LayerName, Pooling};
use stylize_video::stylize::optim::OptimizerKind;
use stylize_video::stylize::stylizer::Settings;

use stylize_video::jobs::keyframes::{parse_blend, parse_key, KeyAt};
use stylize_video::media::matte::DEFAULT_FEATHER;

const INPUT_OUTPUT: &str = "Input and output";
const STYLE: &str = "Style and weights";
const OPTIMISATION: &str = "Optimisation";
const VIDEO: &str = "Video and motion";
const PERFORMANCE: &str = "Performance";
const CLUSTER: &str = "Cluster";
const PREVIEW: &str = "Preview";

/// Turn a video (or a photo) into a painting in motion: Gatys et al. neural style transfer with
/// VGG16, each frame warm-started from the previous stylized frame.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Input video or still image; several make a batch.
    ///
    /// Anything FFmpeg reads (mp4, mov, mkv, webm, avi…), an image sequence (`shots/f_%04d.png`
    /// or a directory of numbered frames), or a still image (PNG, JPEG). Several inputs make a
    /// batch: each output beside its input (or in the directory -o names), one failure reported
    /// and the others still done.
    #[arg(required = true, num_args = 1.., help_heading = INPUT_OUTPUT)]
    pub input: Vec<PathBuf>,

    /// Output file (the format follows the extension).
    ///
    /// Default: beside the input, <input stem>-stylized.mp4 for a video (.mkv with ffv1, .mov
    /// with prores), .png for an image. With several inputs: a directory (an existing one, or a
    /// path ending in /) for the outputs.
    #[arg(short, long, help_heading = INPUT_OUTPUT)]
    pub output: Option<PathBuf>,

    /// Write the loss terms and run facts as JSON here.
    ///
    /// With several inputs: a directory, one <output name>.json per input.
    #[arg(long, help_heading = INPUT_OUTPUT)]
    pub report: Option<PathBuf>,

    /// Video: also write every stylized frame here as PNG.
    ///
    /// Frames are named frame_000001.png, …; with several inputs, in a subdirectory per input,
    /// named after its output.
    #[arg(long, help_heading = INPUT_OUTPUT)]
    pub frames_dir: Option<PathBuf>,

    /// Video codec.
    ///
    /// h264 (libx264, yuv420p; .mp4/.mov/.mkv), ffv1 (lossless; .mkv) or prores (ProRes 422 HQ
    /// for editing; .mov).
    #[arg(long, value_enum, default_value_t = Codec::H264, help_heading = INPUT_OUTPUT)]
    pub codec: Codec,

    /// Video: H.264 constant quality, 0 (lossless) to 51.
    ///
    /// 18 is visually transparent.
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=51), help_heading = INPUT_OUTPUT)]
    pub crf: u8,

    /// Video: drop the source's audio and subtitle streams.
    ///
    /// By default they are copied (re-encoded to AAC only where the container refuses the
    /// audio codec).
    #[arg(long, help_heading = INPUT_OUTPUT)]
    pub no_audio: bool,

    /// Video: size of the written video.
    ///
    /// processing: the processing size (--size); source: the source's, the stylized frames
    /// scaled back up with a Lanczos filter (to overlay on the original).
    #[arg(long, value_enum, default_value_t = OutputSize::Processing, help_heading = INPUT_OUTPUT)]
    pub output_size: OutputSize,

    /// Image-sequence output: bits per channel of the PNG/TIFF frames.
    #[arg(long, value_enum, default_value_t = BitDepth::Eight, help_heading = INPUT_OUTPUT)]
    pub bit_depth: BitDepth,

    /// Image-sequence input: frames per second.
    ///
    /// 24, 25, 23.976, 30000/1001…, since a sequence carries none.
    #[arg(long, value_parser = parse_rate, help_heading = INPUT_OUTPUT)]
    pub frame_rate: Option<(i32, i32)>,

    /// Video: what is done with interlaced frames (1080i broadcast, DV).
    ///
    /// frame: each is rebuilt from its two fields before painting (FFmpeg's bwdif), one frame
    /// per frame, so moving edges are not painted with their combing; field: one frame per field,
    /// at twice the rate (50i → 50p, motion as smooth as the broadcast's, twice the frames to
    /// paint), for a stream flagged interlaced; off: painted as they are. Progressive frames are
    /// never touched.
    #[arg(long, value_enum, default_value_t = Deinterlace::Frame, help_heading = INPUT_OUTPUT)]
    pub deinterlace: Deinterlace,

    /// Video: start this far into the input, like ffmpeg -ss.
    ///
    /// Seconds, or [HH:]MM:SS[.ms].
    #[arg(long, value_parser = parse_time, help_heading = INPUT_OUTPUT)]
    pub start: Option<f64>,

    /// Video: stylize this long a stretch, like ffmpeg -t.
    ///
    /// Seconds, or [HH:]MM:SS[.ms].
    #[arg(long, value_parser = parse_time, help_heading = INPUT_OUTPUT)]
    pub duration: Option<f64>,

    /// Video: stylize at most this many frames.
    #[arg(long, value_parser = whole_number::<u64>, help_heading = INPUT_OUTPUT)]
    pub max_frames: Option<u64>,

    /// Video: replace an existing output file.
    #[arg(short = 'y', long, help_heading = INPUT_OUTPUT)]
    pub overwrite: bool,

    /// Video: discard an interrupted run's finished frames instead of resuming.
    #[arg(long, help_heading = INPUT_OUTPUT)]
    pub fresh: bool,

    /// Video: keep the work directory after success.
    ///
    /// The work directory (<output>.partial/) holds every finished frame as PNG.
    #[arg(long, help_heading = INPUT_OUTPUT)]
    pub keep_work: bool,

    /// No progress output.
    #[arg(short, long, help_heading = INPUT_OUTPUT)]
    pub quiet: bool,

    /// Style image(s); several are blended.
    ///
    /// Repeated or comma-separated; see --style-weights. With --preview they are alternatives:
    /// one row group each.
    #[arg(short, long, required = true, num_args = 1.., value_delimiter = ',', help_heading = STYLE)]
    pub style: Vec<PathBuf>,

    /// Blend weights of the --style images, comma-separated [default: equal].
    ///
    /// Video: keys KEY=W1:W2:… make the blend change over the clip, linear between keys (a
    /// transition from one style to another: 0s=1:0,4s=0:1). KEY is a time (4s, 0:04) or a
    /// frame number from 1.
    #[arg(long, value_delimiter = ',', value_name = "W,…|KEY=W:W,…", value_parser = parse_blend_arg, help_heading = STYLE)]
    pub style_weights: Option<Vec<BlendArg>>,

    /// Style image area = the content's area × this.
    ///
    /// With --preview: a comma-separated list to sweep.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0], help_heading = STYLE)]
    pub style_scale: Vec<f64>,

    /// β, weight of the style cost J_style.
    ///
    /// With --preview: a comma-separated list to sweep. Video: keys KEY=VALUE,… make it change
    /// over the clip, linear between keys (0s=5e-4,4s=2e-3); KEY is a time (4s, 0:04) or a frame
    /// number from 1.
    #[arg(long, value_delimiter = ',', default_values_t = [Keyed::Plain(Settings::default().style_weight)], value_parser = parse_keyed, help_heading = STYLE)]
    pub style_weight: Vec<Keyed>,

    /// α, weight of the content cost J_content.
    ///
    /// With --preview: a comma-separated list to sweep. Video: keys KEY=VALUE,… make it change
    /// over the clip, linear between keys (0s=5e-4,4s=2e-3); KEY is a time (4s, 0:04) or a frame
    /// number from 1.
    #[arg(long, value_delimiter = ',', default_values_t = [Keyed::Plain(Settings::default().content_weight)], value_parser = parse_keyed, help_heading = STYLE)]
    pub content_weight: Vec<Keyed>,

    /// γ_tv, weight of the total-variation cost J_tv (0 disables it).
    ///
    /// With --preview: a comma-separated list to sweep. Video: keys KEY=VALUE,… make it change
    /// over the clip, linear between keys (0s=5e-4,4s=2e-3); KEY is a time (4s, 0:04) or a frame
    /// number from 1.
    #[arg(long, value_delimiter = ',', default_values_t = [Keyed::Plain(Settings::default().tv_weight)], value_parser = parse_keyed, help_heading = STYLE)]
    pub tv_weight: Vec<Keyed>,

    /// Layers of the style cost, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1", help_heading = STYLE)]
    pub style_layers: Vec<LayerName>,

    /// λ^[l] for each style layer, comma-separated [default: 1/(number of style layers) each].
    #[arg(long, value_delimiter = ',', help_heading = STYLE)]
    pub style_layer_weights: Option<Vec<f64>>,

    /// Layer of the content cost.
    #[arg(long, default_value = "relu4_2", help_heading = STYLE)]
    pub content_layer: LayerName,

    /// Keep the content's colours, take only the style's brushwork.
    ///
    /// The stylized luminance with the content's chroma (Y'CbCr, BT.601), like neural-style's
    /// -original_colors.
    #[arg(long, help_heading = STYLE)]
    pub original_colors: bool,

    /// Paint only where this matte is white; keep the source where it is black (grey: partly).
    ///
    /// A still (the same for every frame), or a clip or image sequence frame-aligned with the
    /// input (read over the same --start/--duration range), of the input's shape. The style
    /// cost is computed over the white region alone (masked Gram matrices), and the painting is
    /// put over the source by the matte, so what it keeps is the source's own pixels.
    #[arg(long, value_name = "PATH", help_heading = STYLE)]
    pub matte: Option<PathBuf>,

    /// With --matte: paint what the matte leaves out (black) with this style instead of keeping it.
    ///
    /// Two styles, one on each side of the matte: the style cost is computed for each over its
    /// own region, and the whole frame is painted (nothing is put over the source).
    #[arg(long, value_name = "PATH", requires = "matte", help_heading = STYLE)]
    pub style_outside: Option<PathBuf>,

    /// With --matte: pixels over which the painting fades in inside the matte's edge.
    ///
    /// At the processing size; 0 uses the matte as it is. What the matte keeps is never touched.
    #[arg(long, value_name = "PX", default_value_t = DEFAULT_FEATHER, requires = "matte", help_heading = STYLE)]
    pub matte_feather: f32,

    /// VGG16 weights (safetensors).
    ///
    /// Default: $STYLIZE_VIDEO_WEIGHTS, else weights/ in the source tree.
    #[arg(long, help_heading = STYLE)]
    pub weights: Option<PathBuf>,

    /// Pooling between VGG's blocks.
    #[arg(long, value_enum, default_value_t = Pooling::Max, help_heading = STYLE)]
    pub pooling: Pooling,

    /// Margin in pixels that the network sees around the image, the image wrapped around [default: 8 for videos painted in one level (up to about 450 px), else 0].
    ///
    /// The costs read only the image's own positions. Without a margin the painting gets a
    /// frame of its own along the edges, which a camera pan drags inward as a seam and which
    /// leaves later frames of a pan far less painted than the first. 0 turns it off. An
    /// iteration at 256 px takes about 1.2× as long with 8 px. Frames painted coarse to fine
    /// (larger sizes) get none by default: at 1080p it makes a frame about 1.16× as long, and on
    /// pans there it halved the warping error but helped the style on one clip and hurt it on
    /// another (docs/temporal.md).
    #[arg(long, value_name = "PX", value_parser = whole_number::<usize>, help_heading = STYLE)]
    pub margin: Option<usize>,

    /// Longest side of the processed (and written) image in pixels, or `source` [default: 256; 192 for --preview].
    ///
    /// `source`: the footage's (or photo's) own size. Time per iteration grows with the pixel
    /// count: at 256 an iteration takes about 0.25 s on 2 CPU cores, at 512 four times that;
    /// above about 450 px the image is painted coarse to fine (see --scales).
    #[arg(long, help_heading = OPTIMISATION)]
    pub size: Option<WorkingSize>,

    /// Maximum iterations of an image, or of each video frame after the first.
    ///
    /// Each iteration is a forward pass, the losses, a backward pass and a step. Default: 150
    /// for an image, 10 for video frames (for those painted coarse to fine, counted at the
    /// coarsest level: 100 for an image, 5 for video frames; 50 for a preview's cells).
    #[arg(long, value_parser = whole_number::<usize>, help_heading = OPTIMISATION)]
    pub iterations: Option<usize>,

    /// Optimiser over the pixels.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Lbfgs, help_heading = OPTIMISATION)]
    pub optimizer: OptimizerKind,

    /// Step size [default: 1 for L-BFGS, 10 for Adam].
    ///
    /// L-BFGS's step scale; Adam's step in 0..255 pixel units.
    #[arg(long, help_heading = OPTIMISATION)]
    pub learning_rate: Option<f64>,

    /// Starting image: content, noise, or the path of an image.
    #[arg(long, default_value = "content", help_heading = OPTIMISATION)]
    pub init: Init,

    /// Seed of --init noise.
    ///
    /// The generator is ChaCha12, fixed by name: a seed in a report gives the same noise with
    /// later versions.
    #[arg(long, default_value_t = 0, value_parser = whole_number::<u64>, help_heading = OPTIMISATION)]
    pub seed: u64,

    /// Coarse-to-fine levels for large images (1: paint at --size only) [default: automatic].
    ///
    /// A large image (a still, a video's frames) is painted first at --base-size, then at sizes
    /// growing about 2× per level up to --size, each level starting from the one below
    /// upscaled and running a sixth of its iterations, at least two (--iterations and --first-iterations count
    /// the coarsest level's). A video's warm frames run the coarsest level and one iteration at
    /// the finest, started from the previous painting carried along the flow. Automatic: one
    /// level up to √2 × --base-size, then one more per doubling (1280: 3 levels, 1920: 4, 3840:
    /// 5). A preview's cells are painted in one.
    #[arg(long, value_parser = whole_number::<usize>, help_heading = OPTIMISATION)]
    pub scales: Option<usize>,

    /// Longest side of the coarsest level of --scales, in pixels.
    #[arg(long, default_value_t = DEFAULT_BASE_SIZE, value_parser = whole_number::<u32>, help_heading = OPTIMISATION)]
    pub base_size: u32,

    /// Stop early when J changes by less than this fraction over 10 iterations (0: never).
    #[arg(long, default_value_t = Settings::default().tol, help_heading = OPTIMISATION)]
    pub tol: f64,

    /// Video: maximum iterations of the first frame (and of each shot's first).
    ///
    /// Those start from scratch rather than from the previous painting.
    #[arg(long, default_value_t = DEFAULT_FIRST_ITERATIONS, value_parser = whole_number::<usize>, help_heading = VIDEO)]
    pub first_iterations: usize,

    /// Video: the most iterations of a warm frame (with --iterations the least).
    ///
    /// Beyond --iterations, a frame goes on while it is less painted than its shot: while its
    /// J_style is above 1.2 × that of the shot's first frame (fast motion, revealed areas), held
    /// to the previous painting by a quarter of --temporal-weight; the frame after one left
    /// behind is held so from its first iteration. The report says per frame why it stopped
    /// (`stopped`) and its `style_ratio`. Default: 1.5 × --iterations for frames painted in one
    /// level, none coarse to fine; the value of --iterations turns it off.
    #[arg(long, value_parser = whole_number::<usize>, help_heading = VIDEO)]
    pub max_iterations: Option<usize>,

    /// Video: paint what a frame reveals in a crop of its own first, with N iterations.
    ///
    /// Content entering the frame (the far side of a pan, a car driving in) or coming out from
    /// behind something has nothing to be carried from; a warm frame's --iterations leave it
    /// close to the photo. With this, the 16-px tiles where the flow vouches for less than 80%
    /// of the pixels are painted in a crop with 16 px of context before the frame's own
    /// iterations. 20–40 is a good range; costs about 1.5–2× per frame that reveals much.
    #[arg(long, value_name = "N", value_parser = whole_number::<usize>, help_heading = VIDEO)]
    pub paint_revealed: Option<usize>,

    /// Video: paint the clip N times, forward then backward in turn (Ruder et al.'s multi-pass).
    ///
    /// One pass only carries the painting forward: flicker that one frame's --iterations cannot
    /// settle stays, and what enters the frame is painted from the photo. Each further pass
    /// paints every frame again, from its last painting blended with its neighbour's (warped
    /// along the flow) and held to it by J_temporal, so consistency spreads both ways. For
    /// hand-held and fast footage; each pass costs about one more pass's time, and the video is
    /// written when the last is done.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = whole_number::<usize>, help_heading = VIDEO)]
    pub passes: usize,

    /// Video: γ_temp, weight of the temporal cost J_temporal (0 disables it).
    ///
    /// J_temporal holds each frame's reliable pixels to the previous stylized frame warped
    /// along the optical flow.
    #[arg(long, default_value_t = Settings::default().temporal_weight, help_heading = VIDEO)]
    pub temporal_weight: f64,

    /// Video: starting image of each frame after the first.
    ///
    /// prev-warped: the previous stylized frame warped along the optical flow (where the flow is
    /// unreliable, the frame's content under the previous frame's warped brushwork); prev: the
    /// previous stylized frame as it is; content: the frame itself.
    #[arg(long, value_enum, default_value_t = VideoInit::PrevWarped, help_heading = VIDEO)]
    pub init_video: VideoInit,

    /// Video: earlier frames the temporal cost holds each frame to, comma-separated.
    ///
    /// 1 is the previous frame; Ruder et al.'s long-term consistency is 1,10,20,40 (each pixel
    /// held to the nearest of them that saw it reliably).
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = whole_number::<usize>, help_heading = VIDEO)]
    pub temporal_frames: Vec<usize>,

    /// Video: optical flow between input frames.
    ///
    /// dis: OpenCV's DIS, fast; deepflow: OpenCV's DeepFlow, Ruder et al.'s choice, slower and
    /// better on large motions.
    #[arg(long, value_enum, default_value_t = FlowMethod::Dis, help_heading = VIDEO)]
    pub flow: FlowMethod,

    /// Where the network runs: cpu, cuda, cuda:N or cpu-reference.
    ///
    /// cpu: this tool's kernels; cuda or cuda:N: a GPU (needs a build with --features cuda);
    /// cpu-reference: candle's own CPU ops, for comparisons.
    #[arg(long, default_value = "cpu", help_heading = PERFORMANCE)]
    pub device: Compute,

    /// Precision of the convolutions [default: the device's; the report says which ran].
    ///
    /// fp32; tf32 (GPUs; fp32 on a CPU); bf16 (bf16 operands, f32 sums; on a CPU needs AMX or
    /// AVX-512 BF16, else fp32). Default: bf16 on a CPU with AMX, else fp32; tf32 on CUDA; fp32
    /// on cpu-reference.
    #[arg(long, value_enum, help_heading = PERFORMANCE)]
    pub precision: Option<Precision>,

    /// Video: stylize only segment I of N, for array jobs on a cluster.
    ///
    /// I runs from 0 to N−1; the frames go to the output's work directory. `auto/N` takes I from
    /// SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX (Kubernetes) or AWS_BATCH_JOB_ARRAY_INDEX.
    /// Join with --assemble.
    #[arg(long, value_name = "I/N", value_parser = SegmentSpec::parse, conflicts_with = "assemble", help_heading = CLUSTER)]
    pub segment: Option<SegmentSpec>,

    /// --segment: frames both neighbours paint at a boundary inside a shot (cross-faded).
    #[arg(long, value_name = "K", default_value_t = DEFAULT_OVERLAP, value_parser = whole_number::<u64>, requires = "segment", help_heading = CLUSTER)]
    pub segment_overlap: u64,

    /// Video: join the segments in the output's work directory into the output.
    ///
    /// Succeeds without work when the output is already complete.
    #[arg(long, help_heading = CLUSTER)]
    pub assemble: bool,

    /// Write a preview grid here (PNG) instead of stylizing the input.
    ///
    /// A few frames spread over the clip, stylized as stills at a small size, for each --style
    /// (alternatives, not blended) and each value of one option given as a list
    /// (--style-weight, --style-scale, --content-weight or --tv-weight), labelled. Defaults:
    /// --size 192, 50 --iterations.
    #[arg(long, value_name = "GRID.png", help_heading = PREVIEW)]
    pub preview: Option<PathBuf>,

    /// --preview: the one frame at this time instead of frames spread over the clip.
    ///
    /// Seconds, or [HH:]MM:SS[.ms].
    #[arg(long, value_parser = parse_time, requires = "preview", help_heading = PREVIEW)]
    pub preview_at: Option<f64>,

    /// --preview: how many frames to spread over the clip (or over --start/--duration).
    #[arg(long, requires = "preview", default_value_t = DEFAULT_PREVIEW_FRAMES, value_parser = whole_number::<usize>, help_heading = PREVIEW)]
    pub preview_frames: usize,

    /// The options given on the command line (clap's ids: the field names), so that one given
    /// where it does nothing is refused instead of ignored (see `build`).
    #[arg(skip)]
    pub given: Vec<String>,
}

/// `--size`: a longest side in pixels, or the input's own size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkingSize {
    Pixels(u32),
    Source,
}

impl std::str::FromStr for WorkingSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "source" => Ok(WorkingSize::Source),
            pixels => pixels
                .parse()
                .map(WorkingSize::Pixels)
                .map_err(|_| format!("'{text}' is neither a number of pixels nor 'source'")),
        }
    }
}

/// The `--codec` names; [`Codec::with_crf`] makes the library's [`VideoCodec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    /// libx264, yuv420p, constant quality --crf.
    H264,
    /// FFV1, lossless.
    Ffv1,
    /// ProRes 422 HQ (prores_ks, yuv422p10le).
    Prores,
}

impl Codec {
    pub fn with_crf(self, crf: u8) -> VideoCodec {
        match self {
            Codec::H264 => VideoCodec::H264 { crf },
            Codec::Ffv1 => VideoCodec::Ffv1,
            Codec::Prores => VideoCodec::ProresKs,
        }
    }
}

/// A count or a number of pixels: digits only (Rust's own message for "-5" is "invalid digit
/// found in string").
fn whole_number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a whole number (0, 1, 2…)"));
    }
    digits.parse().map_err(|_| format!("'{text}' is too large"))
}

/// Seconds, or [HH:]MM:SS[.fraction], as ffmpeg's time durations.
pub fn parse_time(text: &str) -> Result<f64, String> {
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
    stylize_video::media::sequence::parse_rate(text)
}

/// A weight's value: a number, or a keyframe KEY=NUMBER.
#[derive(Debug, Clone, PartialEq)]
pub enum Keyed {
    Plain(f64),
    At(KeyAt, f64),
}

impl Keyed {
    /// The number, keyed or not.
    pub fn value(&self) -> f64 {
        match self {
            Keyed::Plain(v) | Keyed::At(_, v) => *v,
        }
    }
}

impl std::fmt::Display for Keyed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Keyed::Plain(v) => write!(f, "{v}"),
            Keyed::At(at, v) => write!(f, "{at}={v}"),
        }
    }
}

fn parse_number(text: &str) -> Result<f64, String> {
    text.trim().parse::<f64>().map_err(|_| format!("'{text}' is not a number"))
}

fn parse_keyed(text: &str) -> Result<Keyed, String> {
    if text.contains('=') {
        let (at, value) = parse_key(text, parse_number)?;
        return Ok(Keyed::At(at, value));
    }
    parse_number(text).map(Keyed::Plain)
}

/// A style blend's weight, or a keyframe KEY=W1:W2:….
#[derive(Debug, Clone, PartialEq)]
pub enum BlendArg {
    Weight(f64),
    At(KeyAt, Vec<f64>),
}

fn parse_blend_arg(text: &str) -> Result<BlendArg, String> {
    if text.contains('=') {
        let (at, blend) = parse_key(text, parse_blend)?;
        return Ok(BlendArg::At(at, blend));
    }
    parse_number(text).map(BlendArg::Weight)
}
