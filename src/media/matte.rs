//! Mattes: which part of each frame is painted (white), kept as it is (black) or partly painted
//! (grey). A matte is a still (the same for every frame), or a clip or an image sequence read
//! frame by frame beside the input, over the same range; each comes at the processing size as
//! its luma. And the composite that puts the painting over the source by a feathered matte, so
//! what the matte keeps is the source's own pixels.

use std::path::{Path, PathBuf};

use image::{imageops::FilterType, GrayImage, Luma, RgbImage};

use crate::error::{Error, Result};
use crate::media::image_io::{self, Rgb16Image};
#[cfg(feature = "media")]
use crate::media::video::{DecodeOptions, Deinterlace, FrameSize, VideoDecoder};

/// How far two aspect ratios may differ (relative) for a matte to be taken as the input's shape:
/// rounding an odd size by one pixel, not a 4:3 matte over 16:9 footage.
const ASPECT_TOLERANCE: f64 = 0.02;

/// `--matte`: the file and how far in from its edge the painting fades in.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MatteSpec {
    pub path: PathBuf,
    /// Pixels (at the processing size) over which the painting fades in inside the matte's
    /// edge ([`feathered`]); 0: the matte as it is.
    pub feather: f32,
}

/// Default `--matte-feather`.
pub const DEFAULT_FEATHER: f32 = 3.0;

/// One frame's matte at the processing size: what J_style covers, and its feathered copy, by
/// which the painting is put over the source.
#[derive(Debug, Clone)]
pub struct FrameMatte {
    pub matte: GrayImage,
    pub feathered: GrayImage,
}

impl FrameMatte {
    pub fn new(matte: GrayImage, feather: f32) -> Self {
        let feathered = feathered(&matte, feather);
        Self { matte, feathered }
    }

    /// The painting over the source by the feathered matte.
    pub fn composite(&self, painted: &RgbImage, source: &RgbImage) -> RgbImage {
        composite(painted, source, &self.feathered)
    }

    /// [`Self::composite`] at 16 bits.
    pub fn composite16(&self, painted: &Rgb16Image, source: &RgbImage) -> Rgb16Image {
        composite16(painted, source, &self.feathered)
    }

    /// Share of the frame the matte paints: its mean, 0..1.
    pub fn painted_share(&self) -> f64 {
        painted_share(&self.matte)
    }

    /// Whether the matte is black throughout (the frame is the source; nothing to optimise).
    pub fn paints_nothing(&self) -> bool {
        self.matte.pixels().all(|p| p[0] == 0)
    }
}

/// The frames of a matte, one per input frame, at the processing size.
pub struct MatteFrames {
    feather: f32,
    source: Source,
    delivered: u64,
}

enum Source {
    Still(GrayImage),
    /// A clip or image sequence, with its path for the error of a matte that ends early.
    #[cfg(feature = "media")]
    Clip(Box<VideoDecoder>, PathBuf),
}

impl MatteFrames {
    /// A still matte for input frames of `input` (display width × height), resized to `size`.
    pub fn still(spec: &MatteSpec, input: (u32, u32), size: (u32, u32)) -> Result<Self> {
        let path = &spec.path;
        let image = load_luma(path)?;
        check_shape(path, image.dimensions(), input)?;
        let matte = if image.dimensions() == size { image } else { image::imageops::resize(&image, size.0, size.1, FilterType::Triangle) };
        Ok(Self { feather: spec.feather, source: Source::Still(matte), delivered: 0 })
    }

    /// The matte at `path`, a still or (with FFmpeg) a clip or image sequence read over the
    /// input's `range` (its start, duration, frame limits and skipped frames): frame n of the
    /// range is the matte of the input's frame n. `input` is the input's display size, `size` the
    /// processing size. A clip known to hold fewer frames than the `frames` delivered after the
    /// range's skipped ones is refused here.
    #[cfg(feature = "media")]
    pub fn open(spec: &MatteSpec, input: (u32, u32), size: (u32, u32), range: &DecodeOptions, frames: Option<u64>) -> Result<Self> {
        let path = &spec.path;
        if is_still(path) {
            return Self::still(spec, input, size);
        }
        if !path.exists() && !crate::media::sequence::is_sequence(path) {
            return Err(Error::input(path, "--matte: file not found"));
        }
        let options = DecodeOptions { size: FrameSize::Exact(size.0, size.1), deinterlace: Deinterlace::Off, ..range.clone() };
        let decoder = VideoDecoder::open(path, &options).map_err(named_as_matte)?;
        let info = decoder.info();
        check_shape(path, (info.width, info.height), input)?;
        let skipped = range.skip_frames;
        let have = info.sequence.as_ref().map(|sequence| sequence.frames).or(info.frame_count);
        if let (Some(have), Some(need)) = (have, frames) {
            if have < need + skipped && range.start.is_none() && range.duration.is_none() {
                return Err(Error::input(
                    path,
                    format!("--matte has {have} frames, the input {}: a matte clip needs one frame per input frame", need + skipped),
                ));
            }
        }
        Ok(Self { feather: spec.feather, source: Source::Clip(Box::new(decoder), path.to_path_buf()), delivered: 0 })
    }

    /// The matte of the next input frame.
    pub fn next_frame(&mut self) -> Result<FrameMatte> {
        let matte = match &mut self.source {
            Source::Still(matte) => matte.clone(),
            #[cfg(feature = "media")]
            Source::Clip(decoder, path) => match decoder.next_frame().map_err(named_as_matte)? {
                Some(frame) => luma(&frame.image),
                None => {
                    return Err(Error::input(
                        &*path,
                        format!("--matte ends after {} frames, before the input: a matte clip needs one frame per input frame", self.delivered),
                    ))
                }
            },
        };
        self.delivered += 1;
        Ok(FrameMatte::new(matte, self.feather))
    }
}

/// An error about the matte's file, saying it is the matte.
#[cfg(feature = "media")]
fn named_as_matte(error: Error) -> Error {
    match error {
        Error::Input { path, problem } => Error::Input { path, problem: format!("--matte: {problem}") },
        other => other,
    }
}

/// Whether a matte path is one image (not a sequence pattern or a directory; PNG, JPEG or TIFF).
#[cfg(feature = "media")]
fn is_still(path: &Path) -> bool {
    !crate::media::sequence::is_sequence(path)
        && matches!(image::ImageFormat::from_path(path), Ok(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::Tiff))
}

/// A matte image's luma (8 bits; a 16-bit matte is rounded).
fn load_luma(path: &Path) -> Result<GrayImage> {
    if !path.exists() {
        return Err(Error::input(path, "--matte: file not found"));
    }
    let image = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::input(path, format!("--matte: cannot read: {e}")))?
        .decode()
        .map_err(|e| Error::input(path, format!("--matte: not a readable image: {e}")))?;
    Ok(image.to_luma8())
}

/// A frame's luma, Y' = 0.299 R + 0.587 G + 0.114 B (a grey matte's grey).
pub fn luma(frame: &RgbImage) -> GrayImage {
    GrayImage::from_fn(frame.width(), frame.height(), |x, y| {
        let y = image_io::rgb_to_ycbcr(frame.get_pixel(x, y).0.map(f32::from))[0];
        Luma([y.round().clamp(0.0, 255.0) as u8])
    })
}

/// Refuses a matte whose shape is not the input's.
fn check_shape(path: &Path, (width, height): (u32, u32), (input_width, input_height): (u32, u32)) -> Result<()> {
    let aspect = |w: u32, h: u32| w as f64 / h.max(1) as f64;
    let (matte, input) = (aspect(width, height), aspect(input_width, input_height));
    if (matte - input).abs() > ASPECT_TOLERANCE * input {
        return Err(Error::input(
            path,
            format!("--matte is {width}×{height}, the input {input_width}×{input_height}: a matte must have the input's shape"),
        ));
    }
    Ok(())
}

/// The matte with its edge softened inward over about `feather` pixels: min(m, blur(m)), so
/// the painting fades in inside the matte's edge and what the matte keeps stays untouched.
pub fn feathered(matte: &GrayImage, feather: f32) -> GrayImage {
    if feather <= 0.0 {
        return matte.clone();
    }
    let blurred = image::imageops::blur(matte, feather / 2.0);
    GrayImage::from_fn(matte.width(), matte.height(), |x, y| Luma([matte.get_pixel(x, y)[0].min(blurred.get_pixel(x, y)[0])]))
}

/// m·painted + (1 − m)·source per pixel, m the (feathered) matte in 0..1.
pub fn composite(painted: &RgbImage, source: &RgbImage, matte: &GrayImage) -> RgbImage {
    RgbImage::from_fn(painted.width(), painted.height(), |x, y| {
        let m = matte.get_pixel(x, y)[0] as f32 / 255.0;
        let (p, s) = (painted.get_pixel(x, y).0, source.get_pixel(x, y).0);
        image::Rgb(std::array::from_fn(|c| (m * p[c] as f32 + (1.0 - m) * s[c] as f32).round() as u8))
    })
}

/// [`composite`] at 16 bits (a deep output's painting over the 8-bit source, widened).
pub fn composite16(painted: &Rgb16Image, source: &RgbImage, matte: &GrayImage) -> Rgb16Image {
    Rgb16Image::from_fn(painted.width(), painted.height(), |x, y| {
        let m = matte.get_pixel(x, y)[0] as f32 / 255.0;
        let (p, s) = (painted.get_pixel(x, y).0, source.get_pixel(x, y).0);
        image::Rgb(std::array::from_fn(|c| (m * p[c] as f32 + (1.0 - m) * (s[c] as f32 * 257.0)).round() as u16))
    })
}

/// Share of the frame the matte paints: its mean, 0..1.
pub fn painted_share(matte: &GrayImage) -> f64 {
    matte.pixels().map(|p| p[0] as f64).sum::<f64>() / (255.0 * matte.len().max(1) as f64)
}
