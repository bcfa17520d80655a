//! From the options to the job they ask for: which job (a still, a video, a preview, a
//! segment, an assembly or a batch), with the network and the optimisation's options built once
//! and shared by every job of the run; combinations that make no sense are refused here, before
//! any work.

use std::path::{Path, PathBuf};

use stylize_video::jobs::batch::{BatchItem, BatchPlace};
use stylize_video::jobs::pipeline::{default_max_iterations, VideoJob, DEFAULT_WARM_ITERATIONS, DEFAULT_WARM_ITERATIONS_COARSE_TO_FINE};
use stylize_video::jobs::preview::{
    short_number, PreviewFrames, PreviewInput, PreviewJob, Sweep, SweptOption, DEFAULT_PREVIEW_ITERATIONS, DEFAULT_PREVIEW_SIZE,
};
use stylize_video::jobs::keyframes::{KeyAt, Keyframed, Keyframes};
use stylize_video::jobs::segment::SegmentSpec;
use stylize_video::jobs::spec::{self, NetworkSpec, PyramidSpec, StyleSpec, StylizeOptions, DEFAULT_SIZE};
use stylize_video::jobs::still::{StillJob, DEFAULT_ITERATIONS, DEFAULT_ITERATIONS_COARSE_TO_FINE};
use stylize_video::media::matte::MatteSpec;
use stylize_video::media::sequence::{is_sequence, Pattern};
use stylize_video::media::video::{DecodeOptions, VideoDecoder};
use stylize_video::stylize::margin;
use stylize_video::stylize::stylizer::{default_style_layers, Settings};

use super::args::{BlendArg, Cli, Codec, Keyed, WorkingSize};

/// Whether an image of longest side `size` is painted in one level with `options`.
fn one_level(options: &StylizeOptions, size: u32) -> bool {
    options.pyramid.is_one_level(size, options.settings.min_image_side())
}

/// The longest side of a still image or of a video's (or sequence's) displayed frames, for
/// `--size source`; the default size where the input cannot be read here, so that the job
/// itself reports what is wrong with it (and a batch's other inputs are still done).
fn source_size(input: &Path) -> u32 {
    let size = if spec::is_still_image(input) {
        image::image_dimensions(input).ok()
    } else {
        VideoDecoder::open(input, &DecodeOptions::default()).ok().map(|d| (d.info().width, d.info().height))
    };
    size.map_or(DEFAULT_SIZE, |(w, h)| w.max(h))
}

/// The options a preview can sweep, with the values given for each.
fn sweepable(cli: &Cli) -> [(SweptOption, Vec<f64>); 4] {
    let values = |list: &[Keyed]| list.iter().map(Keyed::value).collect();
    [
        (SweptOption::StyleWeight, values(&cli.style_weight)),
        (SweptOption::StyleScale, cli.style_scale.clone()),
        (SweptOption::ContentWeight, values(&cli.content_weight)),
        (SweptOption::TvWeight, values(&cli.tv_weight)),
    ]
}

impl KeyedOptions for Keyframed {
    fn keys(&self, option: SweptOption) -> bool {
        match option {
            SweptOption::StyleWeight => self.style_weight.is_some(),
            SweptOption::ContentWeight => self.content_weight.is_some(),
            SweptOption::TvWeight => self.tv_weight.is_some(),
            _ => false,
        }
    }
}

/// Which sweepable options were given as keys.
trait KeyedOptions {
    fn keys(&self, option: SweptOption) -> bool;
}

/// A weight's keyframes (none: a number or a list to sweep), refusing keys mixed with plain numbers.
fn weight_keys(option: &str, list: &[Keyed]) -> Result<Option<Keyframes<f64>>, String> {
    let keys: Vec<(KeyAt, f64)> = list.iter().filter_map(|k| if let Keyed::At(at, v) = k { Some((*at, *v)) } else { None }).collect();
    match keys.len() {
        0 => Ok(None),
        n if n < list.len() => Err(format!("{option}: give one number, a list to sweep, or keys (4s=2e-3,…), not numbers and keys together")),
        _ => Keyframes::new(option, keys).map(Some).map_err(|e| e.to_string()),
    }
}

/// A number list's text as given: "1e-4,5e-4".
fn list_text(values: &[f64]) -> String {
    values.iter().map(|v| short_number(*v)).collect::<Vec<_>>().join(",")
}

/// Options that only a video (or an image sequence) uses.
const VIDEO_ONLY: &[&str] = &[
    "frames_dir", "codec", "crf", "no_audio", "output_size", "bit_depth", "frame_rate", "deinterlace", "start", "duration", "max_frames",
    "fresh", "keep_work", "first_iterations", "max_iterations", "paint_revealed", "passes", "temporal_weight", "init_video", "temporal_frames", "flow", "segment",
    "segment_overlap", "assemble",
];

/// Options a preview grid has no use for (it stylizes a few frames, each on its own, into one image).
const NOT_FOR_PREVIEW: &[&str] = &[
    "frames_dir", "codec", "crf", "no_audio", "output_size", "bit_depth", "deinterlace", "max_frames", "fresh", "keep_work",
    "first_iterations", "max_iterations", "paint_revealed", "passes", "temporal_weight", "init_video", "temporal_frames", "flow", "segment",
    "segment_overlap", "assemble", "matte", "matte_feather", "style_outside",
];

/// What the command line asks for.
pub enum Job {
    Still(StillJob),
    Video(VideoJob),
    Preview(PreviewJob),
    Segment { job: VideoJob, segment: SegmentSpec, overlap: u64 },
    Assemble(VideoJob),
    /// Several inputs, and the directories to make for their outputs and reports.
    Batch { items: Vec<BatchItem>, directories: Vec<PathBuf> },
}

impl Cli {
    /// The network and the optimisation's options, built once and shared by every job of the run.
    fn options(&self) -> StylizeOptions {
        StylizeOptions {
            network: NetworkSpec {
                weights: self.weights.clone(),
                pooling: self.pooling,
                compute: self.device,
                precision: self.precision,
            },
            settings: self.settings(),
            init: self.init.clone(),
            seed: self.seed,
            original_colors: self.original_colors,
            pyramid: PyramidSpec { scales: self.scales, base_size: self.base_size },
        }
    }

    fn settings(&self) -> Settings {
        let optimizer = self.optimizer;
        let n = self.style_layers.len();
        // Lists are swept by --preview (checked in `job`); every row starts from the first value.
        Settings {
            content_weight: self.content_weight[0].value(),
            style_weight: self.style_weight[0].value(),
            tv_weight: self.tv_weight[0].value(),
            temporal_weight: self.temporal_weight,
            style_layer_weights: self.style_layer_weights.clone().unwrap_or_else(|| vec![1.0 / n.max(1) as f64; n]),
            style_layers: if n == 0 { default_style_layers() } else { self.style_layers.clone() },
            content_layer: self.content_layer,
            optimizer,
            learning_rate: self.learning_rate.unwrap_or(Settings::default_learning_rate(optimizer)),
            tol: self.tol,
            ..Settings::default()
        }
    }

    /// The settings that change over the clip, from the options' keys.
    fn keyframes(&self) -> Result<Keyframed, String> {
        let style_blend = match &self.style_weights {
            Some(list) if list.iter().any(|b| matches!(b, BlendArg::At(..))) => {
                let keys: Vec<(KeyAt, Vec<f64>)> =
                    list.iter().filter_map(|b| if let BlendArg::At(at, w) = b { Some((*at, w.clone())) } else { None }).collect();
                if keys.len() < list.len() {
                    return Err("--style-weights: give the blend's weights (3,1) or keys (0s=1:0,4s=0:1), not both".into());
                }
                Some(Keyframes::new("--style-weights", keys).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        Ok(Keyframed {
            content_weight: weight_keys("--content-weight", &self.content_weight)?,
            style_weight: weight_keys("--style-weight", &self.style_weight)?,
            tv_weight: weight_keys("--tv-weight", &self.tv_weight)?,
            style_blend,
        })
    }

    pub fn job(self) -> Result<Job, String> {
        let keyframes = self.keyframes()?;
        if keyframes.any() {
            let option = [
                (keyframes.style_weight.is_some(), "--style-weight"),
                (keyframes.content_weight.is_some(), "--content-weight"),
                (keyframes.tv_weight.is_some(), "--tv-weight"),
                (keyframes.style_blend.is_some(), "--style-weights"),
            ]
            .into_iter()
            .find_map(|(keyed, option)| keyed.then_some(option))
            .unwrap_or_default();
            if self.preview.is_some() {
                return Err(format!("{option}: keys (4s=…) change a video's frames over time; --preview paints cells apart (give numbers to sweep)"));
            }
            if let Some(still) = self.input.iter().find(|i| spec::is_still_image(i)) {
                return Err(format!("{option}: keys (4s=…) are for videos, and {} is a still image", still.display()));
            }
        }
        let lists: Vec<(SweptOption, Vec<f64>)> =
            sweepable(&self).into_iter().filter(|(option, v)| v.len() > 1 && !keyframes.keys(*option)).collect();
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
        let options = self.options();
        if self.preview.is_some() {
            if self.input.len() > 1 {
                return Err(format!("--preview takes one input, got {}", self.input.len()));
            }
            self.check_given_options_apply()?;
            return self.preview_job(options).map(Job::Preview);
        }
        self.check_given_options_apply()?;
        if let [input] = &self.input[..] {
            let (output, report, frames_dir) = (self.output.clone(), self.report.clone(), self.frames_dir.clone());
            return Ok(match (self.item(input, output, report, frames_dir, &options, &keyframes), self.segment) {
                (BatchItem::Still(_), _) if self.segment.is_some() || self.assemble => {
                    return Err("--segment and --assemble are for videos".into())
                }
                (BatchItem::Still(job), _) => Job::Still(job),
                (BatchItem::Video(job), _) if job.passes > 1 && (self.segment.is_some() || self.assemble) => {
                    return Err("--passes paints the whole clip back and forth in one run: it does not split into --segment runs".into())
                }
                (BatchItem::Video(job), Some(segment)) => Job::Segment { job, segment, overlap: self.segment_overlap },
                (BatchItem::Video(job), None) if self.assemble => Job::Assemble(job),
                (BatchItem::Video(job), None) => Job::Video(job),
            });
        }
        if self.segment.is_some() || self.assemble {
            return Err(format!("--segment and --assemble take one input, got {}", self.input.len()));
        }
        if self.matte.is_some() {
            return Err(format!("--matte belongs to one input's frames, and {} inputs were given: run them one by one", self.input.len()));
        }
        self.batch(&options, &keyframes)
    }

    /// Refuses an option given on the command line that would do nothing for these inputs and
    /// outputs (a batch: for any of them), naming it and saying what it is for.
    fn check_given_options_apply(&self) -> Result<(), String> {
        let flag = |id: &str| format!("--{}", id.replace('_', "-"));
        let first = self.input[0].display();
        let stills = self.input.iter().filter(|i| spec::is_still_image(i)).count();
        let any_sequence_in = self.input.iter().any(|i| is_sequence(i));
        let any_sequence_out = match (&self.output, &self.input[..]) {
            (Some(output), [_]) => Pattern::parse(output).is_some(),
            _ => any_sequence_in,
        };
        for id in &self.given {
            let id = id.as_str();
            let why = if self.preview.is_some() && NOT_FOR_PREVIEW.contains(&id) {
                "does not apply to --preview, which writes one grid image".to_string()
            } else if stills == self.input.len() && VIDEO_ONLY.contains(&id) {
                format!("is for videos, and {first} is a still image")
            } else if id == "frame_rate" && !any_sequence_in && stills < self.input.len() {
                format!("is an image sequence's frame rate, and {first} is a video, which keeps its own")
            } else if id == "bit_depth" && !any_sequence_out && self.preview.is_none() {
                "is for image-sequence outputs (frames_%04d.png or .tif); a video's depth follows --codec (ffv1 and prores keep 10 bits and more)".to_string()
            } else if id == "crf" && self.codec != Codec::H264 {
                "sets H.264's quality; --codec ffv1 is lossless and prores has a fixed quality".to_string()
            } else {
                continue;
            };
            return Err(format!("{} {why}", flag(id)));
        }
        Ok(())
    }

    /// Several inputs: each output beside its input or in the -o directory, a report per input
    /// in the --report directory, --frames-dir split per input.
    fn batch(&self, options: &StylizeOptions, keyframes: &Keyframed) -> Result<Job, String> {
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
            let beside_input = self.item(input, None, None, None, options, keyframes).output().to_path_buf();
            let place = BatchPlace::new(input, &beside_input, output_dir.as_deref(), report_dir.as_deref(), self.frames_dir.as_deref());
            items.push(self.item(input, Some(place.output), place.report, place.frames_dir, options, keyframes));
        }
        let directories = [output_dir, report_dir].into_iter().flatten().collect();
        Ok(Job::Batch { items, directories })
    }

    /// The longest side `input` is painted at: `--size`, the input's own, or `default`.
    fn working_size(&self, input: &Path, default: u32) -> u32 {
        match self.size {
            None => default,
            Some(WorkingSize::Pixels(pixels)) => pixels,
            Some(WorkingSize::Source) => source_size(input),
        }
    }

    /// `options` with the margin the network sees for an image (`still`) or a video painted at
    /// `size` px: `--margin`, else the default — a video's frames painted in one level get
    /// [`margin::DEFAULT_VIDEO_MARGIN`]; images and frames painted coarse to fine get none (at
    /// 1080p it makes a frame 1.16× as long, most of it at the coarse levels; docs/temporal.md).
    fn with_margin(&self, options: &StylizeOptions, still: bool, size: u32) -> StylizeOptions {
        let mut options = options.clone();
        options.settings.margin = self.margin.unwrap_or(if still || !one_level(&options, size) { 0 } else { margin::DEFAULT_VIDEO_MARGIN });
        options
    }

    /// The still or video job of one input.
    fn item(
        &self,
        input: &Path,
        output: Option<PathBuf>,
        report: Option<PathBuf>,
        frames_dir: Option<PathBuf>,
        options: &StylizeOptions,
        keyframes: &Keyframed,
    ) -> BatchItem {
        // Keyed blends start from equal weights; each frame gets its own blend.
        let blend_weights = match &self.style_weights {
            Some(list) if list.iter().all(|b| matches!(b, BlendArg::Weight(_))) => {
                list.iter().map(|b| if let BlendArg::Weight(w) = b { *w } else { 1.0 }).collect()
            }
            _ => vec![1.0; self.style.len()],
        };
        let style = StyleSpec { paths: self.style.clone(), blend_weights, scale: self.style_scale[0] };
        let size = self.working_size(input, DEFAULT_SIZE);
        let still = spec::is_still_image(input);
        let options = &self.with_margin(options, still, size);
        if still {
            return BatchItem::Still(StillJob {
                output: output.unwrap_or_else(|| spec::default_output(input, "png")),
                content: input.to_path_buf(),
                style,
                size,
                iterations: self.iterations.unwrap_or(if one_level(options, size) { DEFAULT_ITERATIONS } else { DEFAULT_ITERATIONS_COARSE_TO_FINE }),
                options: options.clone(),
                report,
                overwrite: self.overwrite,
                matte: self.matte_spec(),
                style_outside: self.style_outside.clone(),
            });
        }
        let codec = self.codec.with_crf(self.crf);
        let iterations =
            self.iterations.unwrap_or(if one_level(options, size) { DEFAULT_WARM_ITERATIONS } else { DEFAULT_WARM_ITERATIONS_COARSE_TO_FINE });
        BatchItem::Video(VideoJob {
            output: output.unwrap_or_else(|| spec::default_output(input, codec.default_extension())),
            input: input.to_path_buf(),
            style,
            size,
            output_size: self.output_size,
            first_iterations: self.first_iterations,
            iterations,
            max_iterations: self.max_iterations.or_else(|| one_level(options, size).then(|| default_max_iterations(iterations))),
            paint_revealed: self.paint_revealed.filter(|&n| n > 0),
            passes: self.passes,
            options: options.clone(),
            init_video: self.init_video,
            flow: self.flow,
            temporal_frames: self.temporal_frames.clone(),
            codec,
            keep_audio: !self.no_audio,
            frames_dir,
            start: self.start,
            duration: self.duration,
            max_frames: self.max_frames,
            sequence_rate: self.frame_rate,
            deinterlace: self.deinterlace,
            matte: self.matte_spec(),
            style_outside: self.style_outside.clone(),
            keyframes: keyframes.clone(),
            bit_depth: self.bit_depth,
            overwrite: self.overwrite,
            fresh: self.fresh,
            keep_work: self.keep_work,
            report,
        })
    }

    /// `--matte` with its feather.
    fn matte_spec(&self) -> Option<MatteSpec> {
        self.matte.clone().map(|path| MatteSpec { path, feather: self.matte_feather })
    }

    fn preview_job(self, options: StylizeOptions) -> Result<PreviewJob, String> {
        if self.style_weights.is_some() {
            return Err("--style-weights blends styles, but with --preview several styles are alternatives (one row group each)".into());
        }
        if self.output.is_some() {
            return Err("-o/--output: --preview writes only the grid, to the file it names".into());
        }
        let sweep = sweepable(&self)
            .into_iter()
            .find(|(_, values)| values.len() > 1)
            .map(|(option, values)| Sweep { option, values });
        let input = self.input[0].clone();
        let still = spec::is_still_image(&input);
        let size = self.working_size(&self.input[0], DEFAULT_PREVIEW_SIZE);
        let options = self.with_margin(&options, still, size);
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
            size,
            iterations: self.iterations.unwrap_or(DEFAULT_PREVIEW_ITERATIONS),
            options,
            output: self.preview.expect("preview mode"),
            report: self.report,
        })
    }
}
