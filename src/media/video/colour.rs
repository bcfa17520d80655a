//! Colour description of a video and the YUV↔RGB conversions that follow it.
//!
//! A video's pixels are Y'CbCr numbers; what RGB they mean depends on four tags: the primaries
//! and transfer (which RGB), the matrix (BT.601, BT.709, BT.2020…: how Y'CbCr is made from R'G'B')
//! and the range (limited 16–235 or full 0–255). Decoding with one matrix and encoding with
//! another is the classic colour-shift bug, so both halves use [`Colour`]:
//! - the decoder reads the source's tags ([`Colour::of_stream`]) and converts each frame with the
//!   matrix and range it says; an untagged matrix is guessed the way players guess (BT.709 for
//!   HD sizes, BT.601 for SD), an untagged range is limited;
//! - the encoder converts back with the same matrix and range ([`Colour::for_output`]) and writes
//!   them as tags, with the source's primaries and transfer, so a pass-through round trip
//!   gives back the source's numbers.

use ffmpeg_next as ffmpeg;
use ffmpeg::color::{Primaries, Range, Space, TransferCharacteristic};
use ffmpeg::software::scaling;
use serde::Serialize;

/// The four colour tags of a video stream (unspecified ones as FFmpeg says: `Unspecified`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    pub primaries: Primaries,
    pub transfer: TransferCharacteristic,
    /// The Y'CbCr matrix (`RGB` for RGB pixel formats).
    pub matrix: Space,
    pub range: Range,
}

/// FFmpeg's names of the tag values, declared with the plain `int` the C enums are: asking a
/// value's name is how to learn whether this FFmpeg knows it, without first making it a Rust
/// enum (the bindings' own declarations take the enum types).
mod known {
    use std::ffi::{c_char, c_int};
    extern "C" {
        pub fn av_color_primaries_name(value: c_int) -> *const c_char;
        pub fn av_color_transfer_name(value: c_int) -> *const c_char;
        pub fn av_color_space_name(value: c_int) -> *const c_char;
        pub fn av_color_range_name(value: c_int) -> *const c_char;
    }
}

/// One tag as the integer FFmpeg stored, as its enum only if FFmpeg knows that value (`None`
/// otherwise). MPEG-2's decoder copies the bitstream's byte into the tags unchecked, so a
/// damaged or hostile file can put any number there, and a C enum field holding a value outside
/// its enum must never be read as the Rust enum (undefined behaviour: a `match` on it jumped to
/// garbage, found by fuzzing).
///
/// # Safety
/// `field` points to a readable C enum field (an `int`) whose Rust type `E` is the bindings'
/// enum for it, generated from the same FFmpeg headers as `name`'s library.
unsafe fn tag<E: Copy>(field: *const E, name: unsafe extern "C" fn(std::ffi::c_int) -> *const std::ffi::c_char) -> Option<E> {
    assert_eq!(std::mem::size_of::<E>(), std::mem::size_of::<std::ffi::c_int>(), "C enums are ints");
    // SAFETY: by the contract, `field` is a readable int-sized C enum field; read as an int.
    let value = unsafe { field.cast::<std::ffi::c_int>().read() };
    // SAFETY: the name functions take any int and return null for values they do not know;
    // a named value is one of the enum's (same headers), so it is a valid `E`.
    unsafe { (!name(value).is_null()).then(|| std::mem::transmute_copy::<std::ffi::c_int, E>(&value)) }
}

/// The four tags from their C fields, unknown values as unspecified.
///
/// # Safety
/// Each pointer is to the named C enum field of a live AVCodecParameters, AVCodecContext or
/// AVFrame.
unsafe fn tags(
    primaries: *const ffmpeg::ffi::AVColorPrimaries,
    transfer: *const ffmpeg::ffi::AVColorTransferCharacteristic,
    matrix: *const ffmpeg::ffi::AVColorSpace,
    range: *const ffmpeg::ffi::AVColorRange,
) -> Colour {
    // SAFETY: the caller's contract is `tag`'s, for each field with its own name function.
    unsafe {
        Colour {
            primaries: tag(primaries, known::av_color_primaries_name).map_or(Primaries::Unspecified, Into::into),
            transfer: tag(transfer, known::av_color_transfer_name).map_or(TransferCharacteristic::Unspecified, Into::into),
            matrix: tag(matrix, known::av_color_space_name).map_or(Space::Unspecified, Into::into),
            range: tag(range, known::av_color_range_name).map_or(Range::Unspecified, Into::into),
        }
    }
}

impl Default for Colour {
    fn default() -> Self {
        Colour {
            primaries: Primaries::Unspecified,
            transfer: TransferCharacteristic::Unspecified,
            matrix: Space::Unspecified,
            range: Range::Unspecified,
        }
    }
}

impl Serialize for Colour {
    /// As FFmpeg names the tags (`bt709`, `smpte170m`, `tv`, `pc`, `unknown`…).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Colour", 4)?;
        s.serialize_field("primaries", self.primaries.name().unwrap_or("unknown"))?;
        s.serialize_field("transfer", self.transfer.name().unwrap_or("unknown"))?;
        s.serialize_field("matrix", self.matrix.name().unwrap_or("unknown"))?;
        s.serialize_field("range", self.range.name().unwrap_or("unknown"))?;
        s.end()
    }
}

impl Colour {
    /// The tags of a video stream, from its codec parameters.
    pub fn of_stream(stream: &ffmpeg::format::stream::Stream) -> Colour {
        // SAFETY: a Stream borrows its open input, so its `codecpar` (`as_ptr`) is a valid
        // AVCodecParameters for this call; the four fields are read through `tags`.
        unsafe {
            let p = stream.parameters().as_ptr();
            tags(&(*p).color_primaries, &(*p).color_trc, &(*p).color_space, &(*p).color_range)
        }
    }

    /// The tags a decoded frame carries, where it carries them; the stream's otherwise.
    pub(crate) fn of_frame(frame: &ffmpeg::util::frame::Video, stream: &Colour) -> Colour {
        fn pick<T: PartialEq>(frame_value: T, stream_value: T, unspecified: T) -> T {
            if frame_value == unspecified { stream_value } else { frame_value }
        }
        // SAFETY: the frame owns a valid AVFrame for this borrow; its four fields are read
        // through `tags` (not ffmpeg-next's getters, which read them as Rust enums).
        let tagged = unsafe {
            let f = frame.as_ptr();
            tags(&(*f).color_primaries, &(*f).color_trc, &(*f).colorspace, &(*f).color_range)
        };
        Colour {
            primaries: pick(tagged.primaries, stream.primaries, Primaries::Unspecified),
            transfer: pick(tagged.transfer, stream.transfer, TransferCharacteristic::Unspecified),
            matrix: pick(tagged.matrix, stream.matrix, Space::Unspecified),
            range: pick(tagged.range, stream.range, Range::Unspecified),
        }
    }

    /// The matrix the Y'CbCr numbers were made with: the tag, or for an untagged (or RGB) source
    /// what players assume: BT.709 above standard definition (wider than 1024 or taller than 576
    /// pixels), BT.601 (SMPTE 170M) up to it.
    pub fn conversion_matrix(&self, width: u32, height: u32) -> Space {
        match self.matrix {
            Space::Unspecified | Space::Reserved | Space::RGB => {
                if width > 1024 || height > 576 { Space::BT709 } else { Space::SMPTE170M }
            }
            tagged => tagged,
        }
    }

    /// Whether the Y'CbCr numbers use the full 0–255 range (untagged: limited, 16–235).
    pub fn full_range(&self) -> bool {
        self.range == Range::JPEG
    }

    /// The tags an output of `width × height` in Y'CbCr carries, made from RGB that came from a
    /// source tagged `self`: the source's matrix (or the guess the decoder used), its range where
    /// the codec can carry it (`full_range_allowed`), its primaries and transfer. An RGB source
    /// (images) is taken as sRGB: BT.709 primaries and transfer.
    pub fn for_output(&self, width: u32, height: u32, full_range_allowed: bool) -> Colour {
        let rgb_source = self.matrix == Space::RGB;
        let matrix = self.conversion_matrix(width, height);
        Colour {
            primaries: if rgb_source && self.primaries == Primaries::Unspecified { Primaries::BT709 } else { self.primaries },
            transfer: if rgb_source && self.transfer == TransferCharacteristic::Unspecified {
                TransferCharacteristic::BT709
            } else {
                self.transfer
            },
            matrix,
            range: if full_range_allowed && self.full_range() && !rgb_source { Range::JPEG } else { Range::MPEG },
        }
    }

    /// The tags of an RGB output (FFV1): the source's primaries and transfer, no matrix.
    pub fn for_rgb_output(&self) -> Colour {
        Colour { matrix: Space::RGB, range: Range::Unspecified, ..*self }
    }
}

/// Sets a swscale context to convert between RGB (full range) and Y'CbCr made with `matrix` in
/// `full_range` or limited range: `to_rgb` for decoding, otherwise for encoding.
pub(crate) fn set_conversion(context: &mut scaling::Context, matrix: Space, full_range: bool, to_rgb: bool) {
    // sws_getCoefficients takes AVColorSpace numbers (and falls back to BT.601 for others).
    // SAFETY: sws_getCoefficients takes any integer and returns a pointer into swscale's static
    // coefficient table (never null, as it falls back to BT.601); sws_setColorspaceDetails
    // takes the context, a valid SwsContext that `context` owns and we borrow mutably, and only
    // reads the four coefficients of each table.
    unsafe {
        let yuv = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::AVColorSpace::from(matrix) as i32);
        let rgb = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_DEFAULT);
        let (source, source_full, destination, destination_full) =
            if to_rgb { (yuv, full_range, rgb, true) } else { (rgb, true, yuv, full_range) };
        ffmpeg::ffi::sws_setColorspaceDetails(
            context.as_mut_ptr(),
            source,
            source_full as i32,
            destination,
            destination_full as i32,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

/// Bits per component of a pixel format (8 for yuv420p, 10 for yuv422p10le…).
pub fn bit_depth(format: ffmpeg::format::Pixel) -> u32 {
    // SAFETY: av_pix_fmt_desc_get takes any format number and returns null (checked) or a
    // pointer to libavutil's static descriptor table, valid for the process; comp[0] always
    // exists (the array has four entries).
    unsafe {
        let descriptor = ffmpeg::ffi::av_pix_fmt_desc_get(format.into());
        if descriptor.is_null() { 8 } else { (*descriptor).comp[0].depth as u32 }
    }
}

/// Whether a pixel format carries an alpha channel (rgba, yuva420p, argb, ya8…).
pub fn has_alpha(format: ffmpeg::format::Pixel) -> bool {
    has_flag(format, ffmpeg::ffi::AV_PIX_FMT_FLAG_ALPHA)
}

/// Whether a pixel format stores RGB (rgb24, gbrp10le…) rather than Y'CbCr.
pub fn is_rgb(format: ffmpeg::format::Pixel) -> bool {
    has_flag(format, ffmpeg::ffi::AV_PIX_FMT_FLAG_RGB)
}

/// Whether a pixel format's descriptor has `flag` (one of FFmpeg's `AV_PIX_FMT_FLAG_*`).
pub(crate) fn has_flag(format: ffmpeg::format::Pixel, flag: i32) -> bool {
    // SAFETY: as in `bit_depth`: null (checked) or a static descriptor, of which only `flags`
    // is read.
    unsafe {
        let descriptor = ffmpeg::ffi::av_pix_fmt_desc_get(format.into());
        !descriptor.is_null() && (*descriptor).flags & flag as u64 != 0
    }
}
