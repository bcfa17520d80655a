//! Still images in and out: reading and checking image files, resizing to the processing size,
//! colour conversions, and writing results atomically (a temporary name in the same directory,
//! then a rename). The conversion to the network's input tensors is [`crate::net::input`]'s.

use std::path::{Path, PathBuf};

use image::{imageops::FilterType, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba};

use crate::error::{Error, Result};

/// 16-bit RGB: stylized frames for deep outputs (10-bit video, 16-bit image sequences).
pub type Rgb16Image = ImageBuffer<Rgb<u16>, Vec<u16>>;

/// An alpha channel at 16 bits (an 8-bit one widened ×257, which narrows back exactly).
pub type Alpha16 = ImageBuffer<Luma<u16>, Vec<u16>>;

/// Float RGB: scene-linear values (what an EXR frame held outside 0..1, kept aside).
pub type Rgb32FImage = image::Rgb32FImage;

/// 16-bit RGBA: a deep frame with its alpha, as written.
pub type Rgba16Image = ImageBuffer<Rgba<u16>, Vec<u16>>;

/// A finished frame as written: 8-bit RGB, and for deep outputs the same frame at 16 bits, the
/// 8-bit one then being its rounding, so that both say the same thing.
#[derive(Debug, Clone)]
pub struct FinishedFrame {
    pub rgb8: RgbImage,
    pub rgb16: Option<Rgb16Image>,
    /// The source frame's alpha (straight, not premultiplied), written where the output can
    /// carry it. Not part of the painting: the work directory keeps the painting alone.
    pub alpha: Option<Alpha16>,
    /// What the source frame (scene-linear) held outside 0..1, kept aside from the painting and
    /// added back to a linear (EXR) output.
    pub beyond: Option<Rgb32FImage>,
    /// Where the frame is scaled up to the source's size: the source there and the matte the
    /// painting goes over it by (see [`SourceUnder`]).
    pub source_under: Option<Box<SourceUnder>>,
}

/// The source frame at the size a painting is scaled up to, and the (feathered) matte at the
/// painting's size by which it is put over that source once scaled: what a matte keeps stays the
/// source's own full-size pixels.
#[derive(Debug, Clone)]
pub struct SourceUnder {
    pub source: RgbImage,
    pub matte: image::GrayImage,
}

impl FinishedFrame {
    /// A frame at 16 bits, with its 8-bit rounding.
    pub fn deep(rgb16: Rgb16Image) -> FinishedFrame {
        let rgb8 = RgbImage::from_fn(rgb16.width(), rgb16.height(), |x, y| {
            Rgb(rgb16.get_pixel(x, y).0.map(narrow))
        });
        FinishedFrame { rgb8, rgb16: Some(rgb16), alpha: None, beyond: None, source_under: None }
    }

    /// The frame at 16 bits: the deep one, or the 8-bit one widened (×257).
    pub fn to_rgb16(&self) -> Rgb16Image {
        self.rgb16.clone().unwrap_or_else(|| {
            ImageBuffer::from_fn(self.rgb8.width(), self.rgb8.height(), |x, y| Rgb(self.rgb8.get_pixel(x, y).0.map(|v| u16::from(v) * 257)))
        })
    }

    /// An 8-bit frame.
    pub fn new(rgb8: RgbImage) -> FinishedFrame {
        FinishedFrame { rgb8, rgb16: None, alpha: None, beyond: None, source_under: None }
    }

    /// The same frame with `alpha`.
    pub fn with_alpha(self, alpha: Option<Alpha16>) -> FinishedFrame {
        FinishedFrame { alpha, ..self }
    }

    /// The same frame with the source it goes over once scaled up (see [`SourceUnder`]).
    pub fn with_source_under(self, under: Option<SourceUnder>) -> FinishedFrame {
        FinishedFrame { source_under: under.map(Box::new), ..self }
    }

    /// The same frame with what its source held outside 0..1.
    pub fn with_beyond(self, beyond: Option<Rgb32FImage>) -> FinishedFrame {
        FinishedFrame { beyond, ..self }
    }

    /// Every image resized (Lanczos); a no-op when the size already matches.
    pub fn resized(self, width: u32, height: u32) -> FinishedFrame {
        if self.rgb8.dimensions() == (width, height) {
            return self;
        }
        let alpha = self.alpha.map(|a| image::imageops::resize(&a, width, height, FilterType::Lanczos3));
        let beyond = self.beyond.map(|b| image::imageops::resize(&b, width, height, FilterType::Lanczos3));
        match self.rgb16 {
            Some(deep) => FinishedFrame::deep(image::imageops::resize(&deep, width, height, FilterType::Lanczos3)),
            None => FinishedFrame::new(resize(&self.rgb8, width, height)),
        }
        .with_alpha(alpha)
        .with_beyond(beyond)
    }

    /// The frame with its alpha, 8-bit (none without alpha).
    pub fn rgba8(&self) -> Option<image::RgbaImage> {
        let alpha = self.alpha.as_ref()?;
        Some(image::RgbaImage::from_fn(self.rgb8.width(), self.rgb8.height(), |x, y| {
            let [r, g, b] = self.rgb8.get_pixel(x, y).0;
            Rgba([r, g, b, narrow(alpha.get_pixel(x, y)[0])])
        }))
    }

    /// The frame with its alpha, 16-bit (none without alpha).
    pub fn rgba16(&self) -> Option<Rgba16Image> {
        let alpha = self.alpha.as_ref()?;
        let rgb = self.to_rgb16();
        Some(Rgba16Image::from_fn(rgb.width(), rgb.height(), |x, y| {
            let [r, g, b] = rgb.get_pixel(x, y).0;
            Rgba([r, g, b, alpha.get_pixel(x, y)[0]])
        }))
    }
}

/// A 16-bit sample to 8 bits, rounded (exact for an 8-bit one widened ×257).
pub fn narrow(v: u16) -> u8 {
    ((u32::from(v) + 128) / 257) as u8
}

/// A finished frame from the bytes of its PNG (16-bit PNGs give a deep frame).
pub fn finished_from_bytes(bytes: &[u8]) -> std::result::Result<FinishedFrame, image::ImageError> {
    Ok(match image::load_from_memory(bytes)? {
        image::DynamicImage::ImageRgb16(deep) => FinishedFrame::deep(deep),
        other => FinishedFrame::new(other.to_rgb8()),
    })
}

/// A finished frame as the bytes of a lossless PNG: 16-bit when it is deep (read back by
/// [`finished_from_bytes`]).
pub fn encode_finished(frame: &FinishedFrame) -> std::result::Result<Vec<u8>, image::ImageError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    match &frame.rgb16 {
        None => frame.rgb8.write_to(&mut bytes, ImageFormat::Png)?,
        Some(deep) => deep.write_to(&mut bytes, ImageFormat::Png)?,
    }
    Ok(bytes.into_inner())
}

/// Whether an image file's pixels carry alpha (read from its header; false when it cannot be
/// read, which loading it reports).
pub fn has_alpha(path: &Path) -> bool {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .ok()
        .and_then(|r| r.into_decoder().ok())
        .is_some_and(|d| image::ImageDecoder::color_type(&d).has_alpha())
}

/// Reads an image file (format from its contents), as 8-bit RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    if !path.exists() {
        return Err(Error::input(path, "file not found"));
    }
    if path.is_dir() {
        return Err(Error::input(path, "is a directory, not an image"));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    let format = image::guess_format(&bytes)
        .map_err(|_| Error::input(path, "not an image (unrecognised contents; PNG and JPEG are supported)"))?;
    let image = image::load_from_memory_with_format(&bytes, format)
        .map_err(|e| Error::input(path, format!("not a readable image: {e}")))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::input(path, "image has zero size"));
    }
    Ok(image.to_rgb8())
}

/// Width and height with the longest side equal to `longest` and the aspect ratio kept.
pub fn size_for_longest_side(width: u32, height: u32, longest: u32) -> (u32, u32) {
    let scale = longest as f64 / width.max(height) as f64;
    let w = ((width as f64 * scale).round() as u32).max(1);
    let h = ((height as f64 * scale).round() as u32).max(1);
    (w, h)
}

/// Width and height with area `area` (in pixels) and the aspect ratio of `width × height`.
pub fn size_for_area(width: u32, height: u32, area: f64) -> (u32, u32) {
    let scale = (area / (width as f64 * height as f64)).sqrt();
    (((width as f64 * scale).round() as u32).max(1), ((height as f64 * scale).round() as u32).max(1))
}

/// Resizes with a Lanczos filter; a no-op when the size already matches.
pub fn resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    image::imageops::resize(image, width, height, FilterType::Lanczos3)
}

/// RGB → Y'CbCr, BT.601 full range (as JPEG): Y' in 0..255, Cb and Cr centred on 128.
pub fn rgb_to_ycbcr([r, g, b]: [f32; 3]) -> [f32; 3] {
    [
        0.299 * r + 0.587 * g + 0.114 * b,
        128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b,
        128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b,
    ]
}

/// Y'CbCr (BT.601 full range) → RGB, the inverse of [`rgb_to_ycbcr`].
pub fn ycbcr_to_rgb([y, cb, cr]: [f32; 3]) -> [f32; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    [y + 1.402 * cr, y - 0.344_136 * cb - 0.714_136 * cr, y + 1.772 * cb]
}

/// neural-style's `-original_colors`: the stylized image's luminance (its brushwork) with the
/// content's chroma (its colours), combined in Y'CbCr (BT.601 full range), rounded and clamped
/// to 0..255. Both images have the same size.
pub fn keep_original_colors(stylized: &RgbImage, content: &RgbImage) -> RgbImage {
    with_content_chroma(stylized, content, 1.0, |v| v.round().clamp(0.0, 255.0) as u8)
}

/// [`keep_original_colors`] for a 16-bit stylized frame (the content stays 8-bit).
pub fn keep_original_colors16(stylized: &Rgb16Image, content: &RgbImage) -> Rgb16Image {
    with_content_chroma(stylized, content, 257.0, |v| v.round().clamp(0.0, 65535.0) as u16)
}

/// The luminance of `stylized` (whose values are `scale` × 8-bit ones) with the chroma of
/// `content`, written back at `scale` by `to_sample`.
fn with_content_chroma<T>(
    stylized: &ImageBuffer<Rgb<T>, Vec<T>>,
    content: &RgbImage,
    scale: f32,
    to_sample: impl Fn(f32) -> T,
) -> ImageBuffer<Rgb<T>, Vec<T>>
where
    T: image::Primitive + Into<f32>,
    Rgb<T>: image::Pixel<Subpixel = T>,
{
    assert_eq!(stylized.dimensions(), content.dimensions(), "stylized and content sizes differ");
    ImageBuffer::from_fn(stylized.width(), stylized.height(), |x, y| {
        let [luma, _, _] = rgb_to_ycbcr(stylized.get_pixel(x, y).0.map(|v| Into::<f32>::into(v) / scale));
        let [_, cb, cr] = rgb_to_ycbcr(content.get_pixel(x, y).0.map(f32::from));
        Rgb(ycbcr_to_rgb([luma, cb, cr]).map(|v| to_sample(v * scale)))
    })
}

/// The image format an output path asks for, from its extension.
pub fn output_format(path: &Path) -> Result<ImageFormat> {
    match ImageFormat::from_path(path) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => Ok(f),
        _ => Err(Error::output(path, "unsupported image extension (use .png, .jpg or .jpeg)")),
    }
}

/// A sibling of `path` to write to before renaming it into place.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// The directory `path`'s file is in: its parent, or `.` for a bare file name.
pub fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Checks that `path`'s directory exists and is writable, before any work is spent on it.
pub fn check_writable_destination(path: &Path) -> Result<()> {
    let dir = directory_of(path);
    if !dir.is_dir() {
        return Err(Error::output(path, format!("directory {} does not exist", dir.display())));
    }
    let probe = temporary_sibling(path);
    std::fs::write(&probe, b"")
        .map_err(|e| Error::output(path, format!("directory {} is not writable: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes a file to `path` through a temporary sibling and a rename, so that `path` either
/// holds the complete file or is untouched; durably: the file is flushed to the disk (fsync)
/// before the rename and the directory after it, so that after a power cut the name never
/// points at an empty or partly written file.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> std::result::Result<(), String>) -> Result<()> {
    let tmp = temporary_sibling(path);
    let written = write(&tmp).and_then(|()| sync_file(&tmp).map_err(|e| format!("cannot flush to disk: {e}")));
    if let Err(problem) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::output(path, problem));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::output(path, format!("cannot move the finished file into place: {e}"))
    })?;
    sync_directory_of(path).map_err(|e| Error::output(path, format!("cannot flush its directory to disk: {e}")))
}

/// Flushes a written file's contents to the disk.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Flushes the directory entry of `path` (a rename or a new name) to the disk. A no-op where
/// directories cannot be opened (not Unix).
pub fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(directory_of(path))?.sync_all()?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Saves an RGB image (PNG or JPEG by extension, JPEG at quality 95) atomically.
/// Writes a still's result atomically: with `alpha` (the source's, straight) as RGBA where the
/// format holds it (PNG; 16-bit when the alpha was deeper than 8 bits), else as [`save_rgb`].
/// Returns whether the alpha was written.
pub fn save_with_alpha(image: &RgbImage, alpha: Option<(&Alpha16, bool)>, path: &Path) -> Result<bool> {
    let Some((alpha, deep)) = alpha.filter(|_| output_format(path).ok() == Some(ImageFormat::Png)) else {
        return save_rgb(image, path).map(|()| false);
    };
    let frame = FinishedFrame::new(image.clone()).with_alpha(Some(alpha.clone()));
    write_atomically(path, |tmp| {
        let result = match deep {
            true => frame.rgba16().expect("has alpha").save_with_format(tmp, ImageFormat::Png),
            false => frame.rgba8().expect("has alpha").save_with_format(tmp, ImageFormat::Png),
        };
        result.map_err(|e| format!("cannot write image: {e}"))
    })?;
    Ok(true)
}

/// An image file's alpha channel at 16 bits, and whether it is deeper than 8 bits (none when
/// the file has no alpha).
pub fn load_alpha(path: &Path) -> Result<Option<(Alpha16, bool)>> {
    if !has_alpha(path) {
        return Ok(None);
    }
    let image = image::open(path).map_err(|e| Error::input(path, format!("not a readable image: {e}")))?;
    let deep = image.color().bits_per_pixel() / u16::from(image.color().channel_count()) > 8;
    let rgba = image.to_rgba16();
    Ok(Some((Alpha16::from_fn(rgba.width(), rgba.height(), |x, y| Luma([rgba.get_pixel(x, y)[3]])), deep)))
}

pub fn save_rgb(image: &RgbImage, path: &Path) -> Result<()> {
    let format = output_format(path)?;
    write_atomically(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| format!("cannot create: {e}"))?;
        let mut out = std::io::BufWriter::new(file);
        let result = match format {
            ImageFormat::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95).encode_image(image),
            _ => image.write_to(&mut out, format),
        };
        result.map_err(|e| format!("cannot write image: {e}"))?;
        use std::io::Write;
        out.flush().map_err(|e| format!("cannot write image: {e}"))
    })
}
