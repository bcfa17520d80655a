//! What the still, video and preview jobs share: the network they run ([`NetworkSpec`]), the
//! options of the optimisation ([`StylizeOptions`], embedded in every job), where it starts
//! ([`Init`]), the style images ([`StyleSpec`]), the checks made before any work is spent, the
//! JSON reports, and what an input is and where its output goes by default.

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::media::image_io;
use crate::media::paths::Named;
use crate::net::input;
use crate::net::memory;
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

/// Longest side of a pyramid's coarsest level by default (`--base-size`): VGG's receptive field
/// then covers a good part of the frame (neural-style's multires scripts start at 256–512).
pub const DEFAULT_BASE_SIZE: u32 = 320;

/// How a large image is painted coarse to fine (`--scales`, `--base-size`; see
/// [`crate::jobs::pyramid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PyramidSpec {
    /// Number of levels; `None`: as many as take the base size to the working size in steps of
    /// about 2× (one level, the plain optimisation, up to √2 × the base size).
    pub scales: Option<usize>,
    /// Longest side of the coarsest level.
    pub base_size: u32,
}

impl Default for PyramidSpec {
    fn default() -> Self {
        PyramidSpec { scales: None, base_size: DEFAULT_BASE_SIZE }
    }
}

impl PyramidSpec {
    /// The levels' sizes, coarse to fine, for a working size of `width × height` (the last):
    /// longest sides in a geometric progression from the base size, the aspect ratio kept, the
    /// base raised where the shorter side would fall under `min_side` (what the deepest layer
    /// the cost reads needs, [`Settings::min_image_side`]).
    pub fn sizes(&self, width: u32, height: u32, min_side: u32) -> Vec<(u32, u32)> {
        let (longest, shortest) = (width.max(height), width.min(height).max(1));
        let base_for_min_side = (min_side as u64 * longest as u64).div_ceil(shortest as u64) as u32;
        let base = self.base_size.max(base_for_min_side).clamp(1, longest) as f64;
        let ratio = longest as f64 / base;
        let count = match self.scales {
            Some(n) => n.max(1),
            None if ratio < std::f64::consts::SQRT_2 => 1,
            None => ratio.log2().round() as usize + 1,
        };
        let mut sizes: Vec<(u32, u32)> = (0..count - 1)
            .map(|k| {
                let side = (base * ratio.powf(k as f64 / (count - 1) as f64)).round() as u32;
                image_io::size_for_longest_side(width, height, side)
            })
            .collect();
        sizes.push((width, height));
        sizes.dedup();
        sizes
    }

    /// Whether an image of longest side `size` is painted in one level (not coarse to fine),
    /// with [`Self::sizes`]'s `min_side`.
    pub fn is_one_level(&self, size: u32, min_side: u32) -> bool {
        self.sizes(size, size, min_side).len() == 1
    }

    /// `--scales` and `--base-size` make sense.
    pub fn validate(&self) -> Result<()> {
        if self.scales == Some(0) {
            return Err(Error::Settings("--scales: at least 1 (1 paints at the working size only)".into()));
        }
        if self.base_size == 0 {
            return Err(Error::Settings("--base-size: must be at least 1 pixel".into()));
        }
        Ok(())
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
    /// Coarse-to-fine levels for large images (stills, a video's frames; not a preview's cells).
    pub pyramid: PyramidSpec,
}

/// What a still's, a video's or a preview's report records of the options it ran with: where the
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
    /// One style image, at scale 1 (the CLI's defaults).
    pub fn one(path: PathBuf) -> Self {
        StyleSpec { paths: vec![path], blend_weights: vec![1.0], scale: 1.0 }
    }

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
pub fn check_before_work(options: &StylizeOptions, size: u32, output: &Path, report: Option<&Path>) -> Result<()> {
    options.settings.validate()?;
    options.pyramid.validate()?;
    if size == 0 {
        return Err(Error::Settings("--size: must be at least 1".into()));
    }
    if size > MAX_SIZE {
        return Err(Error::Settings(format!("--size {size}: at most {MAX_SIZE} pixels on the longest side")));
    }
    if output.is_dir() {
        return Err(Error::output(output, "is a directory; name a file to write"));
    }
    image_io::check_writable_destination(output)?;
    if let Some(report) = report {
        image_io::check_writable_destination(report)?;
    }
    Ok(())
}

/// Every file a job reads, each named by its option (for
/// [`crate::media::paths::check_writes_spare_reads`]): `input`, `styles`, an `--init` image and
/// the weights file.
pub fn job_reads(input: &Path, styles: &[PathBuf], options: &StylizeOptions) -> Vec<Named> {
    let mut reads = vec![Named::new("the input", input.to_path_buf())];
    reads.extend(styles.iter().map(|p| Named::new("--style", p.clone())));
    if let Init::Image(path) = &options.init {
        reads.push(Named::new("--init", path.clone()));
    }
    if let Some(weights) = &options.network.weights {
        reads.push(Named::new("--weights", weights.clone()));
    }
    reads
}

/// The output (named by `role`: `-o`, `--preview`) and the report a job writes, named by their
/// options.
pub fn job_writes(role: &'static str, output: &Path, report: Option<&Path>) -> Vec<Named> {
    let mut writes = vec![Named::new(role, output.to_path_buf())];
    writes.extend(report.map(|r| Named::new("--report", r.to_path_buf())));
    writes
}

/// An existing output is replaced only with `-y`.
pub fn refuse_existing(output: &Path, overwrite: bool) -> Result<()> {
    if output.exists() && !overwrite {
        return Err(Error::output(output, "already exists (use -y/--overwrite to replace it)"));
    }
    Ok(())
}

/// The largest `--size`: FFmpeg's scaler stops at 16384 pixels a side, and a 16:9 frame that
/// wide needs about 200 GiB to paint ([`memory::estimated_peak_bytes`]).
pub const MAX_SIZE: u32 = 16384;

/// The working size must leave at least one position at the deepest layer the costs read, and
/// fit in this machine's memory (with the margin the network sees around it).
pub fn check_working_size(input: &Path, size: u32, (width, height): (u32, u32), settings: &Settings) -> Result<()> {
    let margin = 2 * settings.margin as u32;
    memory::check_fits(width + margin, height + margin).map_err(|why| Error::Settings(format!("--size {size}: {why}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn longest_sides(spec: PyramidSpec, (w, h): (u32, u32)) -> Vec<u32> {
        spec.sizes(w, h, 16).into_iter().map(|(w, h)| w.max(h)).collect()
    }

    #[test]
    fn levels_grow_about_twofold_from_the_base_to_the_working_size() {
        let auto = PyramidSpec::default();
        assert_eq!(auto.sizes(1280, 960, 16), [(320, 240), (640, 480), (1280, 960)]);
        assert_eq!(longest_sides(auto, (1920, 1080)), [320, 581, 1057, 1920]);
        assert_eq!(longest_sides(auto, (3840, 2160)), [320, 596, 1109, 2063, 3840]);
        // One level (the plain optimisation) up to √2 × the base size: the default 256 too.
        assert_eq!(auto.sizes(256, 192, 16), [(256, 192)]);
        assert_eq!(longest_sides(auto, (452, 300)), [452]);
        assert_eq!(longest_sides(auto, (453, 300)), [320, 453]);
        // Explicit: --scales 3 --base-size 16 on 64 px.
        let three = PyramidSpec { scales: Some(3), base_size: 16 };
        assert_eq!(three.sizes(64, 64, 16), [(16, 16), (32, 32), (64, 64)]);
        assert_eq!(PyramidSpec { scales: Some(1), base_size: 16 }.sizes(1920, 1080, 16), [(1920, 1080)]);
        // A wide frame's base is raised so its shorter side still reaches the deepest layer.
        assert_eq!(three.sizes(64, 32, 16), [(32, 16), (45, 23), (64, 32)]);
        // Levels that would repeat a size are one.
        assert_eq!(PyramidSpec { scales: Some(4), base_size: 64 }.sizes(64, 64, 16), [(64, 64)]);
    }
}
