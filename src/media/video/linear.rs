//! Scene-linear float frames (OpenEXR) in and out. The network paints display-referred RGB, so a
//! float frame is brought to it by a stated transform — clipped to 0..1, then the sRGB
//! opto-electronic transfer function (IEC 61966-2-1) — and what lies outside 0..1 (highlights
//! above 1, the rare value below 0) is kept aside per channel and added back on the way out.
//! EXR stores colour premultiplied by alpha: it is divided out for the painting and multiplied
//! back in. Frames are written as half-float EXR (ZIP, 16 lines a block) by FFmpeg's encoder,
//! one file a frame, channels R, G, B and A when there is alpha.

use ffmpeg_next as ffmpeg;
use ffmpeg::format::Pixel;
use ffmpeg::frame;
use image::{imageops::FilterType, Luma, Rgb, RgbImage};

use crate::media::image_io::{Alpha16, Rgb16Image, Rgb32FImage};

/// The sRGB encoding of a linear value in 0..1.
pub fn srgb_oetf(linear: f32) -> f32 {
    if linear <= 0.003_130_8 {
        12.92 * linear
    } else {
        1.055 * linear.powf(1.0 / 2.4) - 0.055
    }
}

/// The linear value of an sRGB-encoded one in 0..1 (the inverse of [`srgb_oetf`]).
pub fn srgb_eotf(encoded: f32) -> f32 {
    if encoded <= 0.040_45 {
        encoded / 12.92
    } else {
        ((encoded + 0.055) / 1.055).powf(2.4)
    }
}

/// Whether a pixel format holds floating-point samples (an EXR's gbrpf32le…).
pub fn is_float(format: Pixel) -> bool {
    super::colour::has_flag(format, ffmpeg::ffi::AV_PIX_FMT_FLAG_FLOAT)
}

/// A float frame brought to the painting: display-referred RGB at `size`, its straight alpha,
/// and what lay outside 0..1 (none when nothing did).
pub struct Displayed {
    pub image: RgbImage,
    pub alpha: Option<Alpha16>,
    pub beyond: Option<Rgb32FImage>,
}

/// Converts a decoded float frame (planar G, B, R and maybe A, premultiplied as EXR stores it)
/// at `size` (Lanczos on the linear values): alpha divided out, each channel split into its part
/// in 0..1, sRGB-encoded to 8 bits, and the rest kept aside.
pub fn to_display(source: &frame::Video, size: (u32, u32)) -> Result<Displayed, String> {
    let format = source.format();
    let alpha_plane = match format {
        Pixel::GBRPF32LE => None,
        Pixel::GBRAPF32LE => Some(3),
        other => return Err(format!("float frames in {other:?} are not read (gbrpf32le and gbrapf32le are)")),
    };
    let (w, h) = (source.width(), source.height());
    let plane = |index: usize| float_plane(source, index);
    // FFmpeg's planar RGB is G, B, R.
    let (g, b, r) = (plane(0), plane(1), plane(2));
    let mut linear = Rgb32FImage::from_fn(w, h, |x, y| {
        let i = (y * w + x) as usize;
        Rgb([r[i], g[i], b[i]])
    });
    let mut alpha = alpha_plane.map(|p| image::ImageBuffer::<Luma<f32>, Vec<f32>>::from_raw(w, h, plane(p)).expect("w×h samples"));
    if (w, h) != size {
        linear = image::imageops::resize(&linear, size.0, size.1, FilterType::Lanczos3);
        alpha = alpha.map(|a| image::imageops::resize(&a, size.0, size.1, FilterType::Lanczos3));
    }
    // Straight colour for the painting: divided by alpha where there is any.
    if let Some(alpha) = &alpha {
        for (p, a) in linear.pixels_mut().zip(alpha.pixels()) {
            let a = a[0];
            if a > 0.0 {
                p.0 = p.0.map(|c| c / a);
            }
        }
    }
    let mut any_beyond = false;
    let beyond = Rgb32FImage::from_fn(size.0, size.1, |x, y| {
        Rgb(linear.get_pixel(x, y).0.map(|c| {
            let outside = if c.is_finite() { c - c.clamp(0.0, 1.0) } else { 0.0 };
            any_beyond |= outside != 0.0;
            outside
        }))
    });
    let image = RgbImage::from_fn(size.0, size.1, |x, y| {
        Rgb(linear.get_pixel(x, y).0.map(|c| (srgb_oetf(if c.is_finite() { c.clamp(0.0, 1.0) } else { 0.0 }) * 255.0).round() as u8))
    });
    let alpha = alpha.map(|a| Alpha16::from_fn(size.0, size.1, |x, y| Luma([(a.get_pixel(x, y)[0].clamp(0.0, 1.0) * 65535.0).round() as u16])));
    Ok(Displayed { image, alpha, beyond: any_beyond.then_some(beyond) })
}

/// Plane `index` of a planar float frame (little-endian f32), row by row without the padding.
fn float_plane(frame: &frame::Video, index: usize) -> Vec<f32> {
    let (w, h, stride, data) = (frame.width() as usize, frame.height() as usize, frame.stride(index), frame.data(index));
    (0..h).flat_map(|y| data[y * stride..y * stride + 4 * w].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
}

/// A painted frame back to scene-linear light: sRGB-decoded, the kept-aside part added back,
/// multiplied by alpha (EXR's convention). Returns the planes R, G, B and A.
pub fn to_linear(painting: &Rgb16Image, beyond: Option<&Rgb32FImage>, alpha: Option<&Alpha16>) -> Vec<Vec<f32>> {
    let n = (painting.width() * painting.height()) as usize;
    let mut planes = vec![Vec::with_capacity(n); 3 + alpha.is_some() as usize];
    for (x, y, p) in painting.enumerate_pixels() {
        let extra = beyond.map_or([0.0; 3], |b| b.get_pixel(x, y).0);
        let a = alpha.map_or(1.0, |a| a.get_pixel(x, y)[0] as f32 / 65535.0);
        for c in 0..3 {
            planes[c].push(a * (srgb_eotf(p[c] as f32 / 65535.0) + extra[c]));
        }
        if alpha.is_some() {
            planes[3].push(a);
        }
    }
    planes
}

/// Encodes one frame as a half-float EXR file's bytes: `planes` R, G, B (and A) of `width ×
/// height` linear values.
pub fn encode_exr(planes: &[Vec<f32>], (width, height): (u32, u32)) -> Result<Vec<u8>, String> {
    super::init_ffmpeg();
    let format = if planes.len() == 4 { Pixel::GBRAPF32LE } else { Pixel::GBRPF32LE };
    let codec = ffmpeg::encoder::find_by_name("exr").ok_or("this FFmpeg has no EXR encoder")?;
    let mut context = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| format!("cannot set up the EXR encoder: {e}"))?;
    context.set_width(width);
    context.set_height(height);
    context.set_format(format);
    context.set_time_base(ffmpeg::Rational::new(1, 25));
    let mut options = ffmpeg::Dictionary::new();
    options.set("format", "half");
    options.set("compression", "zip16");
    let mut encoder = context.open_as_with(codec, options).map_err(|e| format!("cannot open the EXR encoder: {e}"))?;
    let mut picture = frame::Video::new(format, width, height);
    // FFmpeg's planar order: G, B, R, A.
    for (index, source) in [1, 2, 0, 3].into_iter().take(planes.len()).enumerate() {
        let stride = picture.stride(index);
        let data = picture.data_mut(index);
        for (y, row) in planes[source].chunks_exact(width as usize).enumerate() {
            for (x, v) in row.iter().enumerate() {
                data[y * stride + 4 * x..y * stride + 4 * x + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    picture.set_pts(Some(0));
    encoder.send_frame(&picture).map_err(|e| format!("the EXR encoder refused the frame: {e}"))?;
    encoder.send_eof().map_err(|e| format!("cannot finish the EXR frame: {e}"))?;
    let mut packet = ffmpeg::Packet::empty();
    encoder.receive_packet(&mut packet).map_err(|e| format!("the EXR encoder gave no frame: {e}"))?;
    Ok(packet.data().ok_or("the EXR encoder gave an empty frame")?.to_vec())
}

/// An EXR frame as stored: linear, premultiplied where it has alpha.
pub struct LinearFrame {
    pub size: (u32, u32),
    /// R, G, B (and A), row by row.
    pub planes: Vec<Vec<f32>>,
}

/// An EXR file's frame as stored. For checking what was written.
pub fn read_exr(path: &std::path::Path) -> Result<LinearFrame, String> {
    super::init_ffmpeg();
    let mut input = ffmpeg::format::input(path).map_err(|e| format!("cannot open: {e}"))?;
    let stream = input.streams().best(ffmpeg::media::Type::Video).ok_or("holds no image")?;
    let index = stream.index();
    let context = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).map_err(|e| e.to_string())?;
    let mut decoder = context.decoder().video().map_err(|e| e.to_string())?;
    let mut decoded = frame::Video::empty();
    for (stream, packet) in input.packets() {
        if stream.index() == index {
            decoder.send_packet(&packet).map_err(|e| e.to_string())?;
        }
    }
    decoder.send_eof().map_err(|e| e.to_string())?;
    decoder.receive_frame(&mut decoded).map_err(|e| format!("no frame: {e}"))?;
    let (w, h) = (decoded.width(), decoded.height());
    let planes = match decoded.format() {
        Pixel::GBRPF32LE => 3,
        Pixel::GBRAPF32LE => 4,
        other => return Err(format!("decoded as {other:?}")),
    };
    let plane = |index: usize| float_plane(&decoded, index);
    // G, B, R, A → R, G, B, A.
    Ok(LinearFrame { size: (w, h), planes: [2, 0, 1, 3].into_iter().take(planes).map(plane).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transfer_functions_invert_each_other() {
        for i in 0..=1000 {
            let v = i as f32 / 1000.0;
            assert!((srgb_eotf(srgb_oetf(v)) - v).abs() < 1e-5, "{v}");
        }
        assert!((srgb_oetf(0.18) - 0.4613).abs() < 1e-3, "18% grey encodes to about 118/255");
    }
}
