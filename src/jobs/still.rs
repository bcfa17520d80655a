//! The still-image job (the preview tool): one photo or frame in, one stylized image out, with
//! an optional JSON report of the loss terms. Everything that can be checked is checked before
//! the optimisation spends any time.

use std::path::PathBuf;
use std::time::Instant;

use image::RgbImage;

use crate::error::{Error, Result};
use crate::jobs::cache::StylizerCache;
use crate::jobs::spec::{
    check_before_work, check_working_size, job_reads, job_writes, load_init_image, refuse_existing, write_json, Init, OptionsReport,
    StyleSpec, StylizeOptions, DEFAULT_SIZE,
};
use crate::jobs::pyramid::{LevelRecord, Painted, Painter};
use crate::media::image_io;
use crate::media::matte::{FrameMatte, MatteFrames, MatteSpec};
use crate::media::paths::{self, Named};
use crate::net::input;
use crate::progress::Progress;
use crate::stylize::stylizer::LossTerms;

/// Default iteration budget of a still image painted in one level (the early stop may end
/// sooner).
pub const DEFAULT_ITERATIONS: usize = 150;

/// Default iteration budget of a still painted coarse to fine, at its coarsest level (a video's
/// first frame's, [`crate::jobs::pipeline::DEFAULT_FIRST_ITERATIONS`]); the finer levels run a
/// sixth each ([`crate::jobs::pyramid::schedule`]). Measured on three 1280×720 stills (fp32,
/// 2 cores, the two-scale judgement against C, the 320-px painting at 150 iterations upscaled):
/// 150/30/6 took 86–88 s; 100/17/3 took 53–55 s and judged 0.76–0.87× C at 320 px and
/// 0.04–0.12× at full size. At 100 the coarsest level has formed its painting (alone, 1.32× C),
/// which the finer levels' iterations carry below C; at 80 the result judged 1.02×.
pub const DEFAULT_ITERATIONS_COARSE_TO_FINE: usize = 100;

#[derive(Debug, Clone)]
pub struct StillJob {
    pub content: PathBuf,
    pub style: StyleSpec,
    pub output: PathBuf,
    /// Longest side of the processed image, in pixels.
    pub size: u32,
    pub iterations: usize,
    /// The network and the optimisation's options shared with the other jobs.
    pub options: StylizeOptions,
    pub report: Option<PathBuf>,
    /// Replace an existing output (`-y`).
    pub overwrite: bool,
    /// Paint only what this matte marks (white), keep the rest of the photo.
    pub matte: Option<MatteSpec>,
    /// With a matte: paint what it leaves out with this style instead of keeping it.
    pub style_outside: Option<PathBuf>,
}

impl StillJob {
    /// The job with every option at its CLI default.
    pub fn with_defaults(content: PathBuf, style: PathBuf, output: PathBuf) -> Self {
        StillJob {
            content,
            style: StyleSpec::one(style),
            output,
            size: DEFAULT_SIZE,
            iterations: DEFAULT_ITERATIONS,
            options: StylizeOptions::default(),
            report: None,
            overwrite: false,
            matte: None,
            style_outside: None,
        }
    }

    /// Every file the job reads, named by its option.
    pub fn reads(&self) -> Vec<Named> {
        let mut reads = job_reads(&self.content, &self.style.paths, &self.options);
        reads.extend(self.matte.as_ref().map(|m| Named::new("--matte", m.path.clone())));
        reads.extend(self.style_outside.as_ref().map(|p| Named::new("--style-outside", p.clone())));
        reads
    }

    /// Every file the job writes, named by its option.
    pub fn writes(&self) -> Vec<Named> {
        job_writes("-o", &self.output, self.report.as_deref())
    }
}

/// What `--report` writes: the loss terms of the returned image plus the run's facts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StillReport {
    pub input: PathBuf,
    /// Whether the input has an alpha channel. The colours under transparent pixels are
    /// painted; the alpha is written back with the result where the output holds it (PNG).
    pub input_alpha: bool,
    /// Whether the output carries the input's alpha.
    pub output_alpha: bool,
    pub styles: Vec<PathBuf>,
    pub output: PathBuf,
    pub width: u32,
    pub height: u32,
    #[serde(flatten)]
    pub terms: LossTerms,
    pub iterations: usize,
    /// Evaluations of J (see [`crate::stylize::stylizer::Stylized::evaluations`]).
    pub evaluations: usize,
    /// Wall time of the whole job (loading, optimisation, saving).
    pub seconds: f64,
    /// Wall time of the optimisation alone.
    pub optimisation_seconds: f64,
    /// Each level of the coarse-to-fine painting (one at the default size).
    pub levels: Vec<LevelRecord>,
    /// `--matte`, and the share of the image it paints (its mean, 0..1); J_style is then over
    /// that region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matte: Option<MatteSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matte_share: Option<f64>,
    #[serde(flatten)]
    pub options: OptionsReport,
}

/// Runs the job: returns the report (also written to `job.report` when set).
pub fn run_still(job: &StillJob, progress: &mut dyn Progress) -> Result<StillReport> {
    run_still_with(job, progress, &StylizerCache::new())
}

/// [`run_still`] taking the network and style targets from `cache` (a batch shares one).
pub fn run_still_with(job: &StillJob, progress: &mut dyn Progress, cache: &StylizerCache) -> Result<StillReport> {
    let started = Instant::now();
    paths::check_writes_spare_reads(&job.reads(), &job.writes())?;
    refuse_existing(&job.output, job.overwrite)?;
    image_io::output_format(&job.output)?;
    check_before_work(&job.options, job.size, &job.output, job.report.as_deref())?;
    let content = image_io::load_rgb(&job.content)?;
    let (width, height) = image_io::size_for_longest_side(content.width(), content.height(), job.size);
    check_working_size(&job.content, job.size, (width, height), &job.options.settings)?;
    let options = &job.options;
    if job.style_outside.is_some() && job.matte.is_none() {
        return Err(Error::Settings("--style-outside paints what a --matte leaves out: give a --matte".into()));
    }
    let mut painter = Painter::new(cache, &options.network, &options.settings, &job.style, &options.pyramid, (width, height))?;
    if let Some(path) = &job.style_outside {
        let outside = StyleSpec { paths: vec![path.clone()], blend_weights: vec![1.0], scale: job.style.scale };
        painter = painter.with_outside_style(&Painter::new(cache, &options.network, &options.settings, &outside, &options.pyramid, (width, height))?)?;
    }
    let matte = job.matte.as_ref().map(|spec| MatteFrames::still(spec, content.dimensions(), (width, height))?.next_frame()).transpose()?;
    let content_image = image_io::resize(&content, width, height);
    let (image, painted) =
        stylize_image(&painter, &content_image, matte.as_ref(), &options.init, options.seed, job.iterations, options.original_colors, progress)?;
    let result = painted.stylized;
    // The photo's alpha, at the working size, goes back with the painting.
    let alpha = image_io::load_alpha(&job.content)?
        .map(|(alpha, deep)| match alpha.dimensions() == (width, height) {
            true => (alpha, deep),
            false => (image::imageops::resize(&alpha, width, height, image::imageops::FilterType::Lanczos3), deep),
        });
    let output_alpha = image_io::save_with_alpha(&image, alpha.as_ref().map(|(a, deep)| (a, *deep)), &job.output)?;

    let report = StillReport {
        input: job.content.clone(),
        input_alpha: alpha.is_some(),
        output_alpha,
        styles: job.style.paths.clone(),
        output: job.output.clone(),
        width,
        height,
        terms: result.terms,
        iterations: result.iterations,
        evaluations: result.evaluations,
        seconds: started.elapsed().as_secs_f64(),
        optimisation_seconds: result.seconds,
        levels: painted.levels,
        matte: job.matte.clone(),
        matte_share: matte.as_ref().map(FrameMatte::painted_share),
        options: OptionsReport::new(&job.options, painter.finest().vgg().precision()),
    };
    if let Some(path) = &job.report {
        write_json(path, &report)?;
    }
    Ok(report)
}

/// One still painting with built stylizers: `content` (already at its working size) is the
/// content image, the start is as `init` says at the painter's coarsest level, at most
/// `iterations` steps there (fewer at finer levels). Returns the 8-bit result (with the
/// content's colours when `original_colors`) and the optimisation's facts. With a `matte`,
/// J_style is over the region it marks and the result is put over `content` by it. The still
/// job and the preview grid's cells are made by this.
#[allow(clippy::too_many_arguments)]
pub fn stylize_image(
    painter: &Painter,
    content: &RgbImage,
    matte: Option<&FrameMatte>,
    init: &Init,
    seed: u64,
    iterations: usize,
    original_colors: bool,
    progress: &mut dyn Progress,
) -> Result<(RgbImage, Painted)> {
    let device = painter.finest().vgg().device();
    let (width, height) = painter.coarsest_size(content.dimensions());
    let start = match init {
        Init::Content => input::to_tensor(&image_io::resize(content, width, height), device)?,
        Init::Noise => input::noise_tensor(width, height, seed, device)?,
        Init::Image(path) => load_init_image(path, width, height, device)?,
    };
    let weights = matte.map(|m| input::matte_tensor(&m.matte, device)).transpose()?;
    let result = painter.paint(content, weights.as_ref(), &start, iterations, progress)?;
    let mut image = input::from_tensor(&result.stylized.image)?;
    if original_colors {
        image = image_io::keep_original_colors(&image, content);
    }
    // With a second style both sides are painted: nothing is put over the content.
    if let Some(matte) = matte.filter(|_| !painter.finest().has_outside_style()) {
        image = matte.composite(&image, content);
    }
    Ok((image, result))
}
