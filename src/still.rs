//! The still-image job (the preview tool): one photo or frame in, one stylized image out, with
//! an optional JSON report of the loss terms. Everything that can be checked is checked before
//! the optimisation spends any time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::image_io;
use crate::progress::Progress;
use crate::stylize::{LossTerms, Settings, Stylizer};
use crate::vgg::{self, Compute, Pooling, Vgg16};

/// Where the optimisation starts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// The content image itself.
    Content,
    /// Uniform noise from `--seed`.
    Noise,
    /// A given image, resized to the working size.
    Image(PathBuf),
}

impl std::str::FromStr for Init {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "content" => Init::Content,
            "noise" => Init::Noise,
            path => Init::Image(PathBuf::from(path)),
        })
    }
}

/// The style images and how they are used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StyleSpec {
    pub paths: Vec<PathBuf>,
    /// Blend weights, one per style image (normalised to sum 1).
    pub blend_weights: Vec<f64>,
    /// A style image is resized so its area is the content's area times this.
    pub scale: f64,
}

impl StyleSpec {
    /// Loads and resizes the style images for a content image of `width × height`, as network
    /// inputs paired with their blend weights.
    pub fn load(&self, width: u32, height: u32, device: &candle_core::Device) -> Result<Vec<(Tensor, f64)>> {
        if self.blend_weights.len() != self.paths.len() {
            return Err(Error::Settings(format!(
                "--style-weights: {} weights given for {} style images",
                self.blend_weights.len(),
                self.paths.len()
            )));
        }
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            return Err(Error::Settings(format!("--style-scale: must be > 0, got {}", self.scale)));
        }
        let area = width as f64 * height as f64 * self.scale;
        self.paths
            .iter()
            .zip(&self.blend_weights)
            .map(|(path, &w)| {
                if !(w > 0.0 && w.is_finite()) {
                    return Err(Error::Settings(format!("--style-weights: must be > 0, got {w}")));
                }
                let style = image_io::load_rgb(path)?;
                let (sw, sh) = image_io::size_for_area(style.width(), style.height(), area);
                Ok((image_io::to_tensor(&image_io::resize(&style, sw, sh), device)?, w))
            })
            .collect()
    }
}

/// Default longest side of the processed image: about 0.3 s per iteration on 2 CPU cores.
pub const DEFAULT_SIZE: u32 = 256;
/// Default iteration budget of a still image (the early stop may end sooner).
pub const DEFAULT_ITERATIONS: usize = 150;

#[derive(Debug, Clone)]
pub struct StillJob {
    pub content: PathBuf,
    pub style: StyleSpec,
    pub output: PathBuf,
    /// Longest side of the processed image, in pixels.
    pub size: u32,
    pub init: Init,
    pub seed: u64,
    pub iterations: usize,
    pub pooling: Pooling,
    /// Where the network runs.
    pub compute: Compute,
    pub settings: Settings,
    /// Weights file; `None` finds it as [`vgg::weights_path`] says.
    pub weights: Option<PathBuf>,
    pub report: Option<PathBuf>,
}

impl StillJob {
    /// The job with every option at its CLI default.
    pub fn with_defaults(content: PathBuf, style: PathBuf, output: PathBuf) -> Self {
        StillJob {
            content,
            style: StyleSpec { paths: vec![style], blend_weights: vec![1.0], scale: 1.0 },
            output,
            size: DEFAULT_SIZE,
            init: Init::Content,
            seed: 0,
            iterations: DEFAULT_ITERATIONS,
            pooling: Pooling::Max,
            compute: Compute::Cpu,
            settings: Settings::default(),
            weights: None,
            report: None,
        }
    }
}

/// What `--report` writes: the loss terms of the returned image plus the run's facts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StillReport {
    pub input: PathBuf,
    pub styles: Vec<PathBuf>,
    pub output: PathBuf,
    pub width: u32,
    pub height: u32,
    #[serde(flatten)]
    pub terms: LossTerms,
    pub iterations: usize,
    /// Wall time of the whole job (loading, optimisation, saving).
    pub seconds: f64,
    /// Wall time of the optimisation alone.
    pub optimisation_seconds: f64,
    pub init: Init,
    pub seed: u64,
    pub pooling: Pooling,
    pub device: Compute,
    pub settings: Settings,
}

/// Runs the job: returns the report (also written to `job.report` when set).
pub fn run_still(job: &StillJob, progress: &mut dyn Progress) -> Result<StillReport> {
    let started = Instant::now();
    image_io::output_format(&job.output)?;
    check_before_work(&job.settings, job.size, &job.output, job.report.as_deref())?;
    let content = image_io::load_rgb(&job.content)?;
    let (width, height) = image_io::size_for_longest_side(content.width(), content.height(), job.size);
    check_working_size(&job.content, job.size, (width, height), &job.settings)?;
    let vgg = Vgg16::load_for(&vgg::weights_path(job.weights.as_deref()), job.pooling, job.compute)?;
    let device = vgg.device().clone();
    let styles = job.style.load(width, height, &device)?;
    let content = image_io::to_tensor(&image_io::resize(&content, width, height), &device)?;
    let start = match &job.init {
        Init::Content => content.clone(),
        Init::Noise => image_io::noise_tensor(width, height, job.seed, &device)?,
        Init::Image(path) => load_init_image(path, width, height, &device)?,
    };

    let stylizer = Stylizer::new(vgg, job.settings.clone(), &styles)?;
    let target = stylizer.content_target(&content)?;
    let result = stylizer.optimise(&target, &start, job.iterations, progress)?;
    image_io::save_rgb(&image_io::from_tensor(&result.image)?, &job.output)?;

    let report = StillReport {
        input: job.content.clone(),
        styles: job.style.paths.clone(),
        output: job.output.clone(),
        width,
        height,
        terms: result.terms,
        iterations: result.iterations,
        seconds: started.elapsed().as_secs_f64(),
        optimisation_seconds: result.seconds,
        init: job.init.clone(),
        seed: job.seed,
        pooling: job.pooling,
        device: job.compute,
        settings: job.settings.clone(),
    };
    if let Some(path) = &job.report {
        write_json(path, &report)?;
    }
    Ok(report)
}

/// Checks shared by the still and video jobs, made before any work is spent on them.
pub(crate) fn check_before_work(settings: &Settings, size: u32, output: &Path, report: Option<&Path>) -> Result<()> {
    settings.validate()?;
    if size == 0 {
        return Err(Error::Settings("--size: must be at least 1".into()));
    }
    image_io::check_writable_destination(output)?;
    if let Some(report) = report {
        image_io::check_writable_destination(report)?;
    }
    Ok(())
}

/// The working size must leave at least one position at the deepest layer the costs read.
pub(crate) fn check_working_size(input: &Path, size: u32, (width, height): (u32, u32), settings: &Settings) -> Result<()> {
    let min_side = settings.min_image_side();
    if width.min(height) < min_side {
        return Err(Error::input(
            input,
            format!("at --size {size} it is {width}×{height}; the chosen layers need at least {min_side} pixels per side"),
        ));
    }
    Ok(())
}

/// An `--init PATH` image at the working size, as a network input.
pub(crate) fn load_init_image(path: &Path, width: u32, height: u32, device: &candle_core::Device) -> Result<Tensor> {
    image_io::to_tensor(&image_io::resize(&image_io::load_rgb(path)?, width, height), device)
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::output(path, e))?;
    image_io::write_atomically(path, |tmp| std::fs::write(tmp, text + "\n").map_err(|e| format!("cannot write: {e}")))
}
