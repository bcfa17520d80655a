//! What the still, video and preview jobs share: the network they run ([`NetworkSpec`]), the
//! options of the optimisation ([`StylizeOptions`], embedded in every job), where it starts
//! ([`Init`]), the style images ([`StyleSpec`]), the checks made before any work is spent, the
//! JSON reports, and what an input is and where its output goes by default.

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::media::image_io;
use crate::net::input;
use crate::net::precision::{Compute, Precision};
use crate::net::vgg::{self, Pooling};
use crate::stylize::stylizer::Settings;

/// The network a job runs: built once from the command line and shared by every job of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// Weights file; `None` finds it as [`vgg::weights_path`] says.
    pub weights: Option<PathBuf>,
    pub pooling: Pooling,
    /// Where the network runs.
    pub compute: Compute,
    /// Precision of the convolutions (`None`: the device's default, see [`Precision`]).
    pub precision: Option<Precision>,
}

impl Default for NetworkSpec {
    /// The bundled weights, max pooling, this crate's CPU kernels, the device's precision.
    fn default() -> Self {
        NetworkSpec { weights: None, pooling: Pooling::Max, compute: Compute::Cpu, precision: None }
    }
}

impl NetworkSpec {
    /// The weights file this spec names, resolved as [`vgg::weights_path`] says.
    pub fn weights_path(&self) -> PathBuf {
        vgg::weights_path(self.weights.as_deref())
    }
}

/// The options of the optimisation that the still, video and preview jobs share.
#[derive(Debug, Clone, Default)]
pub struct StylizeOptions {
    pub network: NetworkSpec,
    /// The cost's weights and layers, the optimiser and its stopping rule.
    pub settings: Settings,
    /// Where the optimisation of an image (a video's first frame and shot cuts) starts.
    pub init: Init,
    /// Seed of `--init noise`.
    pub seed: u64,
    /// Keep the content's colours: the stylized luminance with the content's chroma.
    pub original_colors: bool,
}

/// What a still's or a preview's report records of the options it ran with: where the
/// optimisation started, the network as it ran (the precision after the device's fallbacks),
/// and the settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OptionsReport {
    pub init: Init,
    pub seed: u64,
    pub original_colors: bool,
    pub pooling: Pooling,
    pub device: Compute,
    /// The precision the convolutions ran in (after the device's fallbacks).
    pub precision: Precision,
    pub settings: Settings,
}

impl OptionsReport {
    /// The report of `options`, whose network ran at `precision`.
    pub fn new(options: &StylizeOptions, precision: Precision) -> Self {
        OptionsReport {
            init: options.init.clone(),
            seed: options.seed,
            original_colors: options.original_colors,
            pooling: options.network.pooling,
            device: options.network.compute,
            precision,
            settings: options.settings.clone(),
        }
    }
}

/// Where the optimisation starts.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// The content image itself.
    #[default]
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
                Ok((input::to_tensor(&image_io::resize(&style, sw, sh), device)?, w))
            })
            .collect()
    }
}

/// Default longest side of the processed image: about 0.3 s per iteration on 2 CPU cores.
pub const DEFAULT_SIZE: u32 = 256;
/// Checks shared by the still and video jobs, made before any work is spent on them.
pub fn check_before_work(settings: &Settings, size: u32, output: &Path, report: Option<&Path>) -> Result<()> {
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
pub fn check_working_size(input: &Path, size: u32, (width, height): (u32, u32), settings: &Settings) -> Result<()> {
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
pub fn load_init_image(path: &Path, width: u32, height: u32, device: &candle_core::Device) -> Result<Tensor> {
    input::to_tensor(&image_io::resize(&image_io::load_rgb(path)?, width, height), device)
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::output(path, e))?;
    image_io::write_atomically(path, |tmp| std::fs::write(tmp, text + "\n").map_err(|e| format!("cannot write: {e}")))
}

/// Whether the input is meant as a still image: not an image sequence (a pattern such as
/// `f_%04d.png`, or a directory), and its first bytes are PNG or JPEG, or (for a file that is
/// neither, so that the error speaks of images) its extension says so.
pub fn is_still_image(path: &Path) -> bool {
    use std::io::Read;
    if crate::media::sequence::is_sequence(path) {
        return false;
    }
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    match image::guess_format(&head[..n]) {
        Ok(image::ImageFormat::Png | image::ImageFormat::Jpeg) => true,
        _ => matches!(image::ImageFormat::from_path(path), Ok(image::ImageFormat::Png | image::ImageFormat::Jpeg)),
    }
}

/// Beside the input: `<stem>-stylized.<extension>`; for an image sequence, the same frame names
/// in a sibling directory (`shots/f_%04d.png` → `shots-stylized/f_%04d.png`).
pub fn default_output(input: &Path, extension: &str) -> PathBuf {
    if let Some(sequence) = crate::media::sequence::default_output(input) {
        return sequence;
    }
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    input.with_file_name(format!("{stem}-stylized.{extension}"))
}
