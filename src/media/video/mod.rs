//! Video files in and out, through FFmpeg (the `ffmpeg-next` binding over the system's libav*):
//! - [`decode`]: any file FFmpeg can demux and decode → RGB frames in display orientation with
//!   their own timestamps, optionally cut to a time range and scaled;
//! - [`encode`]: RGB frames with the source's timestamps → H.264, FFV1 or ProRes in the
//!   container the output's extension names, with the source's audio and subtitle streams
//!   copied alongside (re-encoded to AAC only where the container refuses the audio codec);
//! - [`deinterlace`]: interlaced frames rebuilt from their fields on the way in (bwdif);
//! - [`discontinuity`]: timestamps made continuous where a format lets them jump (MPEG-TS);
//! - [`linear`]: scene-linear float frames (OpenEXR): to display-referred RGB and back;
//! - `ffmpeg_log` (internal): FFmpeg's own log, captured instead of printed and counted for the
//!   decoder each message is about ([`VideoDecoder::warning_kinds`]).
//!
//! Geometry policy, shared by both halves:
//! - frames are delivered the way a player shows them: the display rotation (display matrix or
//!   `rotate` tag) is applied and non-square pixels are scaled square, so [`VideoInfo`]'s
//!   `width × height` is the display size and the encoder writes no rotation or aspect flag;
//! - odd sizes are kept by the decoder; the encoder pads an odd width or height by one pixel,
//!   replicating the last column or row, for the codecs whose chroma subsampling needs even sizes
//!   (H.264 yuv420p and ProRes yuv422p10le), and writes FFV1 at the exact size.
//!   [`EncodedInfo`] says what size was written.

pub mod colour;
pub mod decode;
pub mod deinterlace;
pub mod encode;
pub mod discontinuity;
pub mod linear;
mod ffmpeg_log;
pub mod timecode;

pub use decode::{
    DecodeNotes, DecodeOptions, DecodedFrame, DEFAULT_SEQUENCE_RATE, FrameSize, StreamInfo, StreamKind, VideoDecoder, VideoInfo,
};
pub use colour::Colour;
pub use deinterlace::Deinterlace;
pub use ffmpeg_log::DecoderWarning;
pub use encode::{check_container, EncodeOptions, EncodedInfo, EncodedStream, StreamHandling, VideoCodec, VideoEncoder};

use std::sync::Once;

use ffmpeg_next as ffmpeg;

/// Initialises FFmpeg once per process and takes over its log: nothing is printed between
/// progress lines; what FFmpeg says about a decoder's input is counted by that decoder
/// ([`VideoDecoder::warnings`], [`VideoDecoder::warning_kinds`]), the rest is dropped.
pub(crate) fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg_log::install();
    });
}

/// A rational as the `(numerator, denominator)` pair the reports use.
pub(crate) fn pair(r: ffmpeg::Rational) -> (i32, i32) {
    (r.numerator(), r.denominator())
}

/// `value` in units of `time_base`, as seconds.
pub(crate) fn seconds(value: i64, time_base: ffmpeg::Rational) -> f64 {
    value as f64 * f64::from(time_base)
}

/// `seconds` in units of `time_base`, rounded to the nearest unit.
pub(crate) fn in_time_base(seconds: f64, time_base: ffmpeg::Rational) -> i64 {
    (seconds / f64::from(time_base)).round() as i64
}

/// FFmpeg's short name of a codec ("h264", "aac", …).
pub(crate) fn codec_name(id: ffmpeg::codec::Id) -> String {
    id.name().to_string()
}

/// Seeks backwards to the keyframe at or before `seconds` (as the file's timestamps count), the
/// way ffmpeg's `-ss` does. A file that cannot seek is read from the start instead: the frames
/// before the target are dropped by time either way.
pub(crate) fn seek_before(input: &mut ffmpeg::format::context::Input, seconds: f64) {
    let target = (seconds * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
    let _ = input.seek(target, ..target);
}
