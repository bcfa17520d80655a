//! Writing a video: RGB frames with the source's timestamps → H.264 (libx264, yuv420p), FFV1
//! (lossless RGB) or ProRes (prores_ks, yuv422p10le), in the container the output's extension
//! names, written under a temporary sibling name and renamed into place by [`VideoEncoder::finish`]
//! (dropping the encoder unfinished removes the temporary file: no partial file ever carries the
//! output's name).
//!
//! Time: the video stream takes the source's time base and each frame the timestamp it is given,
//! shifted so the first frame is at 0; the frame count and the gaps between frames are the
//! source's (variable frame rates stay variable).
//!
//! The source's other streams go along. Audio and subtitles are copied packet for packet, through
//! a second demuxer on the source, cut to the range the decoder used and shifted by the same
//! amount as the video. Audio the container cannot hold is re-encoded to AAC; subtitles it cannot
//! hold, and data streams, are dropped with a note. Copied packets are interleaved as we go: before
//! each video frame is written, the other streams are read up to that frame's time, so memory does
//! not grow with the clip's length.
//!
//! Odd sizes: H.264 (4:2:0) and ProRes (4:2:2) need even sizes, so an odd width or height is
//! padded by one pixel replicating the last column or row; FFV1 keeps the exact size.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, format, software::scaling, util::frame, Rational, Rescale};
use image::RgbImage;
use serde::Serialize;

use super::decode::{StreamKind, VideoInfo};
use super::discontinuity::TimestampMender;
use super::colour::{set_conversion, Colour};
use super::timecode;
use super::{codec_name, init_ffmpeg, seconds, seek_before};
use crate::error::{Error, Result};
use crate::media::image_io::{check_writable_destination, temporary_sibling, Rgb16Image, Rgba16Image};

/// The video codec written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VideoCodec {
    /// libx264, yuv420p, constant quality `crf` (0 lossless … 51; 18 looks transparent).
    H264 { crf: u8 },
    /// FFV1, lossless, RGB (8-bit; 10- or 16-bit for deeper sources): for .mkv.
    Ffv1,
    /// ProRes 422 HQ via prores_ks, yuv422p10le: for .mov.
    ProresKs,
}

impl Default for VideoCodec {
    fn default() -> Self {
        VideoCodec::H264 { crf: 18 }
    }
}

impl VideoCodec {
    /// The container extension an output gets by default: .mp4 for H.264, .mkv for FFV1, .mov
    /// for ProRes.
    pub fn default_extension(self) -> &'static str {
        match self {
            VideoCodec::H264 { .. } => "mp4",
            VideoCodec::Ffv1 => "mkv",
            VideoCodec::ProresKs => "mov",
        }
    }

    fn encoder_name(self) -> &'static str {
        match self {
            VideoCodec::H264 { .. } => "libx264",
            VideoCodec::Ffv1 => "ffv1",
            VideoCodec::ProresKs => "prores_ks",
        }
    }

    fn codec_id(self) -> codec::Id {
        match self {
            VideoCodec::H264 { .. } => codec::Id::H264,
            VideoCodec::Ffv1 => codec::Id::FFV1,
            VideoCodec::ProresKs => codec::Id::PRORES,
        }
    }

    /// The pixel format written for a source of `source_bit_depth` bits per component, with an
    /// alpha channel when `alpha` (and the codec can carry one).
    fn pixel_format(self, source_bit_depth: u32, alpha: bool) -> format::Pixel {
        let alpha = alpha && self.carries_alpha();
        match self {
            VideoCodec::H264 { .. } => format::Pixel::YUV420P,
            VideoCodec::Ffv1 if source_bit_depth <= 8 && alpha => format::Pixel::BGRA,
            VideoCodec::Ffv1 if source_bit_depth <= 8 => format::Pixel::BGRZ,
            VideoCodec::Ffv1 if source_bit_depth <= 10 && alpha => format::Pixel::GBRAP10LE,
            VideoCodec::Ffv1 if source_bit_depth <= 10 => format::Pixel::GBRP10LE,
            VideoCodec::Ffv1 if alpha => format::Pixel::GBRAP16LE,
            VideoCodec::Ffv1 => format::Pixel::GBRP16LE,
            VideoCodec::ProresKs if alpha => format::Pixel::YUVA444P10LE,
            VideoCodec::ProresKs => format::Pixel::YUV422P10LE,
        }
    }

    /// Bits per component written for a source of `source_bit_depth` bits.
    pub fn bit_depth(self, source_bit_depth: u32) -> u32 {
        super::colour::bit_depth(self.pixel_format(source_bit_depth, false))
    }

    /// Whether the codec can carry an alpha channel (FFV1 as RGBA, ProRes as 4444).
    pub fn carries_alpha(self) -> bool {
        !matches!(self, VideoCodec::H264 { .. })
    }

    /// Whether the codec can signal full-range Y'CbCr (ProRes is limited range by definition).
    fn carries_full_range(self) -> bool {
        !matches!(self, VideoCodec::ProresKs)
    }

    /// Whether width and height must be even (chroma subsampled horizontally / vertically).
    fn needs_even(self) -> (bool, bool) {
        match self {
            VideoCodec::H264 { .. } => (true, true),
            VideoCodec::Ffv1 => (false, false),
            VideoCodec::ProresKs => (true, false),
        }
    }

    fn options(self, alpha: bool) -> ffmpeg::Dictionary<'static> {
        let mut options = ffmpeg::Dictionary::new();
        match self {
            VideoCodec::H264 { crf } => {
                options.set("crf", &crf.min(51).to_string());
                options.set("preset", "medium");
            }
            VideoCodec::Ffv1 => {
                options.set("level", "3");
                options.set("slicecrc", "1");
            }
            // 4444 carries the alpha (16-bit in prores_ks); 422 HQ otherwise.
            VideoCodec::ProresKs => options.set("profile", if alpha { "4444" } else { "hq" }),
        }
        options
    }
}

/// How to write the output.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    pub codec: VideoCodec,
    /// Copy the source's audio and subtitle streams (re-encoding audio only where needed).
    pub copy_other_streams: bool,
    /// The range the decoder was given (seconds from the start of the video), to cut the copied
    /// streams to the same span.
    pub start: Option<f64>,
    pub duration: Option<f64>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { codec: VideoCodec::default(), copy_other_streams: true, start: None, duration: None }
    }
}

/// What became of a stream of the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamHandling {
    /// The stylised video, encoded by us.
    Encoded,
    /// Packets copied from the source unchanged.
    Copied,
    /// Decoded and encoded again, from the source's codec (named here).
    Reencoded { from: String },
}

/// One stream of the output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncodedStream {
    pub kind: StreamKind,
    /// Codec in the output.
    pub codec: String,
    pub handling: StreamHandling,
}

/// What [`VideoEncoder::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncodedInfo {
    pub path: PathBuf,
    /// Size of the encoded pictures (the frames' size, padded to even where the codec needs it).
    pub width: u32,
    pub height: u32,
    pub frames_written: u64,
    /// FFmpeg's name of the pixel format written.
    pub pixel_format: String,
    /// Colour tags written (and the matrix and range the RGB frames were converted with).
    pub colour: Colour,
    /// Timecode of the first frame written, where the source had one.
    pub timecode: Option<String>,
    pub streams: Vec<EncodedStream>,
    /// Things a user should know: streams re-encoded or dropped, padding.
    pub notes: Vec<String>,
}

/// Encodes RGB frames into a video file, copying the source's other streams alongside.
pub struct VideoEncoder {
    output: PathBuf,
    temporary: PathBuf,
    /// `None` once closed (finished or failed).
    muxer: Option<format::context::Output>,
    container: String,
    source: VideoInfo,
    options: EncodeOptions,
    source_time_base: Rational,
    /// Set up on the first frame, when the size is known.
    video: Option<VideoStream>,
    others: Option<OtherStreams>,
    streams: Vec<EncodedStream>,
    notes: Vec<String>,
    first_pts: Option<i64>,
    last_pts: Option<i64>,
    frames_written: u64,
    /// Timecode written on the video stream.
    timecode: Option<String>,
}

impl VideoEncoder {
    /// Checks that the codec fits the output's container and that the output can be written,
    /// then opens the temporary file. Nothing is encoded until the first frame.
    pub fn create(output: &Path, source: &VideoInfo, options: &EncodeOptions) -> Result<VideoEncoder> {
        let container = container_for(output, options.codec, source)?;
        check_writable_destination(output)?;
        let temporary = temporary_sibling(output);
        let muxer = format::output_as(&temporary, &container.name)
            .map_err(|e| Error::output(output, format!("cannot create: {e}")))?;
        let (tb_num, tb_den) = source.time_base;
        Ok(VideoEncoder {
            output: output.to_path_buf(),
            temporary,
            muxer: Some(muxer),
            container: container.name,
            source: source.clone(),
            options: options.clone(),
            source_time_base: Rational::new(tb_num, tb_den),
            video: None,
            others: None,
            streams: Vec::new(),
            notes: Vec::new(),
            first_pts: None,
            last_pts: None,
            frames_written: 0,
            timecode: None,
        })
    }

    /// Encodes one frame; `pts` is in the source video stream's time base and must increase.
    pub fn write_frame(&mut self, image: &RgbImage, pts: i64) -> Result<()> {
        self.write_picture(Picture::Rgb8(image), pts)
    }

    /// [`VideoEncoder::write_frame`] for a 16-bit frame: 10-bit and deeper outputs keep its
    /// precision. All frames of a file must have the same depth.
    pub fn write_frame16(&mut self, image: &Rgb16Image, pts: i64) -> Result<()> {
        self.write_picture(Picture::Rgb16(image), pts)
    }

    /// Adds a note for the user to what [`VideoEncoder::finish`] reports.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Whether the frames' alpha is written ([`VideoCodec::carries_alpha`]).
    pub fn carries_alpha(&self) -> bool {
        self.options.codec.carries_alpha()
    }

    /// [`VideoEncoder::write_frame`] for a frame with straight alpha, written where the codec
    /// carries it ([`VideoCodec::carries_alpha`]). All frames of a file must be alike.
    pub fn write_frame_rgba(&mut self, image: &image::RgbaImage, pts: i64) -> Result<()> {
        self.write_picture(Picture::Rgba8(image), pts)
    }

    /// [`VideoEncoder::write_frame_rgba`] at 16 bits.
    pub fn write_frame_rgba16(&mut self, image: &Rgba16Image, pts: i64) -> Result<()> {
        self.write_picture(Picture::Rgba16(image), pts)
    }

    fn write_picture(&mut self, image: Picture, pts: i64) -> Result<()> {
        if self.muxer.is_none() {
            return Err(Error::output(&self.output, "the encoder was already closed after an error"));
        }
        if self.last_pts.is_some_and(|last| pts <= last) {
            return Err(Error::output(
                &self.output,
                format!("frame timestamps must increase (got {pts} after {})", self.last_pts.unwrap_or_default()),
            ));
        }
        let result = self.write_frame_inner(image, pts);
        self.close_on_error(result)
    }

    fn write_frame_inner(&mut self, image: Picture, pts: i64) -> Result<()> {
        if self.video.is_none() {
            self.start(image.dimensions(), image.input_format(), pts)?;
        }
        let first_pts = *self.first_pts.get_or_insert(pts);
        self.last_pts = Some(pts);
        // Other streams first, up to this frame's time: the muxer interleaves what is pending.
        let now = seconds(pts - first_pts, self.source_time_base);
        let output = self.output.clone();
        let muxer = self.muxer.as_mut().expect("checked open");
        if let Some(others) = self.others.as_mut() {
            others.copy_until(muxer, now).map_err(|e| Error::output(&output, e))?;
        }
        let video = self.video.as_mut().expect("started");
        video.send(image, pts - first_pts, self.frames_written).map_err(|e| Error::output(&output, e))?;
        video.drain(muxer).map_err(|e| Error::output(&output, e))?;
        self.frames_written += 1;
        Ok(())
    }

    /// Flushes the encoders and the copied streams, writes the trailer and moves the file into
    /// place.
    pub fn finish(mut self) -> Result<EncodedInfo> {
        if self.muxer.is_none() {
            return Err(Error::output(&self.output, "the encoder was already closed after an error"));
        }
        if self.frames_written == 0 {
            return Err(Error::output(&self.output, "no frames were given to write"));
        }
        let result = self.finish_inner();
        let result = self.close_on_error(result);
        result?;
        std::fs::rename(&self.temporary, &self.output).map_err(|e| {
            let _ = std::fs::remove_file(&self.temporary);
            Error::output(&self.output, format!("cannot move the finished file into place: {e}"))
        })?;
        let video = self.video.as_ref().expect("started");
        Ok(EncodedInfo {
            path: self.output.clone(),
            width: video.size.0,
            height: video.size.1,
            frames_written: self.frames_written,
            pixel_format: video.pixel_format.descriptor().map(|d| d.name().to_string()).unwrap_or_default(),
            colour: video.colour,
            timecode: self.timecode.clone(),
            streams: std::mem::take(&mut self.streams),
            notes: std::mem::take(&mut self.notes),
        })
    }

    fn finish_inner(&mut self) -> Result<()> {
        let output = self.output.clone();
        let mut muxer = self.muxer.take().expect("checked open");
        let video = self.video.as_mut().expect("started");
        video.flush(&mut muxer).map_err(|e| Error::output(&output, e))?;
        if let Some(others) = self.others.as_mut() {
            // The other streams end with the video: at its last frame's end, or the cut's end.
            let last = self.last_pts.unwrap_or_default() - self.first_pts.unwrap_or_default();
            let end = seconds(last, self.source_time_base) + self.source.frame_seconds();
            others.copy_until(&mut muxer, end).map_err(|e| Error::output(&output, e))?;
            others.flush(&mut muxer).map_err(|e| Error::output(&output, e))?;
        }
        muxer.write_trailer().map_err(|e| Error::output(&output, format!("cannot finish the file: {e}")))?;
        drop(muxer); // closes the file
        Ok(())
    }

    /// On an error: closes the file and removes it, so nothing partial is left behind.
    fn close_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.muxer = None;
            let _ = std::fs::remove_file(&self.temporary);
        }
        result
    }

    /// Sets up the streams for frames of `size` and writes the header.
    fn start(&mut self, size: (u32, u32), input_format: format::Pixel, first_pts: i64) -> Result<()> {
        let output = self.output.clone();
        let muxer = self.muxer.as_mut().expect("checked open");
        let global_header = muxer.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let video = VideoStream::new(muxer, self.options.codec, size, input_format, &self.source, global_header)
            .map_err(|e| Error::output(&output, e))?;
        // The source's timecode, moved on by the frames before the first one written.
        if let Some(start) = &self.source.timecode {
            let skipped = seconds(first_pts, self.source_time_base) - self.source.start_seconds;
            let frames = (skipped / self.source.frame_seconds()).round() as i64;
            self.timecode = timecode::offset(start, self.source.frame_rate, frames);
            match &self.timecode {
                Some(tc) => video.set_timecode(muxer, tc),
                None => self.notes.push(format!("the source's timecode {start} does not fit its frame rate; none written")),
            }
        }
        self.streams.push(EncodedStream {
            kind: StreamKind::Video,
            codec: codec_name(self.options.codec.codec_id()),
            handling: StreamHandling::Encoded,
        });
        if video.size != size {
            self.notes.push(format!(
                "{}×{} frames padded to {}×{} (the codec needs even sizes) by repeating the edge pixels",
                size.0, size.1, video.size.0, video.size.1
            ));
        }
        self.video = Some(video);

        if self.options.copy_other_streams && !self.source.other_streams.is_empty() {
            let origin = seconds(first_pts, self.source_time_base);
            let others = OtherStreams::new(muxer, &self.container, &self.source, &self.options, origin, global_header)
                .map_err(|e| Error::output(&output, e))?;
            self.streams.extend(others.described());
            self.notes.extend(others.notes.iter().cloned());
            self.others = Some(others);
        }

        muxer.write_header().map_err(|e| Error::output(&output, format!("cannot write the header: {e}")))?;
        let video = self.video.as_mut().expect("just set");
        video.stream_time_base = muxer.stream(video.index).expect("added").time_base();
        if let Some(others) = self.others.as_mut() {
            others.header_written(muxer);
        }
        Ok(())
    }
}

impl Drop for VideoEncoder {
    fn drop(&mut self) {
        if self.muxer.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// The output format an extension names.
struct Container {
    name: String,
    format: *const ffmpeg::ffi::AVOutputFormat,
}

/// Checks, before any work, that `output`'s container (from its extension) can hold `codec`
/// video at `source`'s rate, and that this FFmpeg has the encoder: the first thing
/// [`VideoEncoder::create`] checks, for the jobs that create their encoder only at the end (a
/// segmented run's assembly).
pub fn check_container(output: &Path, codec: VideoCodec, source: &VideoInfo) -> Result<()> {
    container_for(output, codec, source).map(|_| ())
}

/// The container `output` names, if it can hold `codec` video at `source`'s rate.
fn container_for(output: &Path, codec: VideoCodec, source: &VideoInfo) -> Result<Container> {
    init_ffmpeg();
    let container = guess_container(output)?;
    if ffmpeg::encoder::find_by_name(codec.encoder_name()).is_none() {
        return Err(Error::output(output, format!("this FFmpeg has no {} encoder", codec.encoder_name())));
    }
    if container.name == "image2" {
        return Err(Error::output(
            output,
            "names one image: a video's frames go to a video file (.mp4, .mov, .mkv) or a numbered image sequence (frames_%04d.png)",
        ));
    }
    if !accepts(&container, codec.codec_id()).unwrap_or_else(|| muxer_takes(&container, codec, source)) {
        let instead = match codec {
            VideoCodec::H264 { .. } => ".mp4, .mov or .mkv",
            VideoCodec::Ffv1 => ".mkv",
            VideoCodec::ProresKs => ".mov or .mkv",
        };
        return Err(Error::output(
            output,
            format!("a {} file cannot hold {} video (use {instead})", container.name, codec_name(codec.codec_id())),
        ));
    }
    Ok(container)
}

fn guess_container(output: &Path) -> Result<Container> {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let c_name = std::ffi::CString::new(name)
        .map_err(|_| Error::output(output, "the file name contains a NUL character"))?;
    // SAFETY: the short name and MIME type may be null, and `c_name` is NUL-terminated and
    // outlives the call. The result is null (checked below) or one of libavformat's muxers,
    // which are statics valid for the whole process.
    let format = unsafe { ffmpeg::ffi::av_guess_format(std::ptr::null(), c_name.as_ptr(), std::ptr::null()) };
    if format.is_null() || output.extension().is_none() {
        return Err(Error::output(output, "unknown video container extension (use .mp4, .mov, .mkv or .webm)"));
    }
    // SAFETY: `format` is a non-null static muxer (checked above), and every muxer's `name` is
    // a static NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr((*format).name) }.to_string_lossy().into_owned();
    Ok(Container { name, format })
}

/// Whether `container` can hold `codec`: `None` when the container does not say.
fn accepts(container: &Container, codec: codec::Id) -> Option<bool> {
    // SAFETY: `container.format` is a static muxer, valid for the process: from av_guess_format
    // (non-null, checked in `guess_container`) or an open output context's `oformat`.
    // avformat_query_codec only reads it.
    let answer = unsafe {
        ffmpeg::ffi::avformat_query_codec(container.format, codec.into(), ffmpeg::ffi::FF_COMPLIANCE_NORMAL)
    };
    match answer {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    }
}

/// Whether the `container` muxer takes one video stream of `codec` at `source`'s rate, by
/// FFmpeg's own check: a muxer set up with such a stream writes its header to memory. For the
/// containers that [`accepts`] cannot answer (gif, mpegts, mxf, ogg…); `true` when the check
/// itself cannot be set up, so that the run says what fails.
fn muxer_takes(container: &Container, codec: VideoCodec, source: &VideoInfo) -> bool {
    use ffmpeg::ffi;
    let mut context: *mut ffi::AVFormatContext = std::ptr::null_mut();
    // SAFETY: `container.format` is a static muxer (see `accepts`); the context allocated here is
    // this function's alone, freed at the end on every path; its one stream's parameters and
    // its memory buffer are FFmpeg's own allocations, released with it.
    unsafe {
        if ffi::avformat_alloc_output_context2(&mut context, container.format, std::ptr::null(), std::ptr::null()) < 0
            || context.is_null()
        {
            return true;
        }
        let mut answer = true;
        let stream = ffi::avformat_new_stream(context, std::ptr::null());
        if !stream.is_null() {
            let parameters = (*stream).codecpar;
            (*parameters).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
            (*parameters).codec_id = codec.codec_id().into();
            (*parameters).width = 64;
            (*parameters).height = 64;
            (*parameters).format = ffi::AVPixelFormat::from(codec.pixel_format(8, false)) as i32;
            // The source's clock and rate, as the real stream has them (MXF takes only some rates).
            (*stream).time_base = ffi::AVRational { num: source.time_base.0, den: source.time_base.1 };
            (*stream).avg_frame_rate = ffi::AVRational { num: source.frame_rate.0, den: source.frame_rate.1 };
            let needs_file = (*(*context).oformat).flags & ffi::AVFMT_NOFILE == 0;
            if !needs_file || ffi::avio_open_dyn_buf(&mut (*context).pb) >= 0 {
                answer = ffi::avformat_write_header(context, std::ptr::null_mut()) >= 0;
            }
        }
        if !(*context).pb.is_null() {
            let mut buffer = std::ptr::null_mut();
            ffi::avio_close_dyn_buf((*context).pb, &mut buffer);
            ffi::av_free(buffer.cast());
            (*context).pb = std::ptr::null_mut();
        }
        ffi::avformat_free_context(context);
        answer
    }
}

/// Our encoded video stream.
struct VideoStream {
    index: usize,
    encoder: codec::encoder::Video,
    codec: VideoCodec,
    /// Encoded size (frames padded to it when the codec needs even sizes).
    size: (u32, u32),
    /// Size of the frames given, which must not change.
    frame_size: (u32, u32),
    converter: scaling::Context,
    rgb: frame::Video,
    converted: frame::Video,
    pixel_format: format::Pixel,
    /// Tags written, and for Y'CbCr the matrix and range converted to.
    colour: Colour,
    /// The encoder's time base: the source's.
    time_base: Rational,
    stream_time_base: Rational,
}

impl VideoStream {
    fn new(
        muxer: &mut format::context::Output,
        codec_choice: VideoCodec,
        frame_size: (u32, u32),
        input_format: format::Pixel,
        source: &VideoInfo,
        global_header: bool,
    ) -> std::result::Result<VideoStream, String> {
        let (even_w, even_h) = codec_choice.needs_even();
        let size = (frame_size.0 + (even_w && frame_size.0 % 2 == 1) as u32, frame_size.1 + (even_h && frame_size.1 % 2 == 1) as u32);
        let time_base = Rational::new(source.time_base.0, source.time_base.1);
        let frame_rate = Rational::new(source.frame_rate.0, source.frame_rate.1);
        let codec = ffmpeg::encoder::find_by_name(codec_choice.encoder_name())
            .ok_or_else(|| format!("this FFmpeg has no {} encoder", codec_choice.encoder_name()))?;
        let mut encoder = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| format!("cannot set up the {} encoder: {e}", codec_choice.encoder_name()))?;
        encoder.set_width(size.0);
        encoder.set_height(size.1);
        let alpha = super::colour::has_alpha(input_format);
        let pixel_format = codec_choice.pixel_format(source.bit_depth, alpha);
        encoder.set_format(pixel_format);
        encoder.set_time_base(time_base);
        if frame_rate.numerator() > 0 && frame_rate.denominator() > 0 {
            encoder.set_frame_rate(Some(frame_rate));
        }
        encoder.set_aspect_ratio(Rational::new(1, 1));
        let yuv = !super::colour::is_rgb(pixel_format);
        // Y'CbCr with the source's matrix and range (or the decoder's guess for them), so that
        // what was decoded with them converts back to the same numbers; RGB needs no matrix.
        let colour = if yuv {
            source.colour.for_output(size.0, size.1, codec_choice.carries_full_range())
        } else {
            source.colour.for_rgb_output()
        };
        encoder.set_colorspace(colour.matrix);
        encoder.set_color_range(colour.range);
        encoder.set_color_primaries(colour.primaries);
        encoder.set_color_transfer_characteristic(colour.transfer);
        if global_header {
            encoder.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = encoder
            .open_as_with(codec, codec_choice.options(alpha))
            .map_err(|e| format!("cannot open the {} encoder at {}×{}: {e}", codec_choice.encoder_name(), size.0, size.1))?;

        let mut stream = muxer.add_stream(codec).map_err(|e| format!("cannot add the video stream: {e}"))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        if frame_rate.numerator() > 0 && frame_rate.denominator() > 0 {
            stream.set_avg_frame_rate(frame_rate);
        }
        let index = stream.index();

        let mut converter = scaling::Context::get(
            input_format,
            size.0,
            size.1,
            pixel_format,
            size.0,
            size.1,
            scaling::Flags::BICUBIC | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INT,
        )
        .map_err(|e| format!("cannot convert RGB to {pixel_format:?}: {e}"))?;
        if yuv {
            set_conversion(&mut converter, colour.matrix, colour.full_range(), false);
        }
        Ok(VideoStream {
            index,
            encoder,
            codec: codec_choice,
            size,
            frame_size,
            converter,
            rgb: frame::Video::new(input_format, size.0, size.1),
            converted: frame::Video::new(pixel_format, size.0, size.1),
            pixel_format,
            colour,
            time_base,
            stream_time_base: time_base,
        })
    }

    /// Tags the video stream with a start timecode (mov/mp4 write it as a tmcd track, Matroska
    /// as a TIMECODE tag); before the header is written.
    fn set_timecode(&self, muxer: &mut format::context::Output, timecode: &str) {
        if let Some(mut stream) = muxer.stream_mut(self.index) {
            let mut metadata = stream.metadata().to_owned();
            metadata.set("timecode", timecode);
            stream.set_metadata(metadata);
        }
    }

    /// Converts `image` (padding it to the encoded size) and sends it to the encoder.
    fn send(&mut self, image: Picture, pts: i64, number: u64) -> std::result::Result<(), String> {
        if image.input_format() != self.rgb.format() {
            return Err(format!("frame {number} has another bit depth or alpha than the first frame"));
        }
        if image.dimensions() != self.frame_size {
            return Err(format!(
                "frame {number} is {}×{}, the first frame was {}×{}",
                image.dimensions().0,
                image.dimensions().1,
                self.frame_size.0,
                self.frame_size.1
            ));
        }
        let wide = |v: &u16, out: &mut [u8]| out.copy_from_slice(&v.to_ne_bytes());
        match image {
            Picture::Rgb8(image) => fill_padded(&mut self.rgb, image.as_raw(), image.dimensions(), 3, |v, out| out[0] = *v),
            Picture::Rgb16(image) => fill_padded(&mut self.rgb, image.as_raw(), image.dimensions(), 3, wide),
            Picture::Rgba8(image) => fill_padded(&mut self.rgb, image.as_raw(), image.dimensions(), 4, |v, out| out[0] = *v),
            Picture::Rgba16(image) => fill_padded(&mut self.rgb, image.as_raw(), image.dimensions(), 4, wide),
        }
        self.converter
            .run(&self.rgb, &mut self.converted)
            .map_err(|e| format!("cannot convert frame {number}: {e}"))?;
        self.converted.set_pts(Some(pts));
        // Tag the frame too: some encoders (prores_ks) write the frame's tags, not the context's.
        self.converted.set_color_space(self.colour.matrix);
        self.converted.set_color_range(self.colour.range);
        self.converted.set_color_primaries(self.colour.primaries);
        self.converted.set_color_transfer_characteristic(self.colour.transfer);
        self.encoder
            .send_frame(&self.converted)
            .map_err(|e| format!("{} cannot encode frame {number}: {e}", self.codec.encoder_name()))
    }

    fn drain(&mut self, muxer: &mut format::context::Output) -> std::result::Result<(), String> {
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(self.index);
            packet.rescale_ts(self.time_base, self.stream_time_base);
            packet.write_interleaved(muxer).map_err(|e| format!("cannot write: {e}"))?;
        }
        Ok(())
    }

    fn flush(&mut self, muxer: &mut format::context::Output) -> std::result::Result<(), String> {
        self.encoder.send_eof().map_err(|e| format!("cannot flush the video encoder: {e}"))?;
        self.drain(muxer)
    }
}

/// Copies `image` (`channels` samples a pixel) into the packed frame, repeating the last column
/// and row into any padding.
fn fill_padded<T>(frame: &mut frame::Video, samples: &[T], (w, h): (u32, u32), channels: usize, put: impl Fn(&T, &mut [u8])) {
    let bytes = std::mem::size_of::<T>();
    let (fw, fh) = (frame.width() as usize, frame.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let stride = frame.stride(0);
    let data = frame.data_mut(0);
    for y in 0..fh {
        let src_y = y.min(h - 1);
        let row = &samples[src_y * channels * w..(src_y + 1) * channels * w];
        let dst = &mut data[y * stride..y * stride + channels * fw * bytes];
        for x in 0..fw {
            let src_x = x.min(w - 1);
            for c in 0..channels {
                let at = (channels * x + c) * bytes;
                put(&row[channels * src_x + c], &mut dst[at..at + bytes]);
            }
        }
    }
}

/// A frame as given: 8- or 16-bit RGB, or RGBA with straight alpha.
#[derive(Clone, Copy)]
enum Picture<'a> {
    Rgb8(&'a RgbImage),
    Rgb16(&'a Rgb16Image),
    Rgba8(&'a image::RgbaImage),
    Rgba16(&'a Rgba16Image),
}

impl Picture<'_> {
    fn dimensions(&self) -> (u32, u32) {
        match self {
            Picture::Rgb8(image) => image.dimensions(),
            Picture::Rgb16(image) => image.dimensions(),
            Picture::Rgba8(image) => image.dimensions(),
            Picture::Rgba16(image) => image.dimensions(),
        }
    }

    /// The swscale input format these samples are (16-bit ones in native byte order).
    fn input_format(&self) -> format::Pixel {
        match self {
            Picture::Rgb8(_) => format::Pixel::RGB24,
            Picture::Rgb16(_) if cfg!(target_endian = "little") => format::Pixel::RGB48LE,
            Picture::Rgb16(_) => format::Pixel::RGB48BE,
            Picture::Rgba8(_) => format::Pixel::RGBA,
            Picture::Rgba16(_) if cfg!(target_endian = "little") => format::Pixel::RGBA64LE,
            Picture::Rgba16(_) => format::Pixel::RGBA64BE,
        }
    }
}

/// The source's audio and subtitle streams, read through a second demuxer and written alongside.
struct OtherStreams {
    demuxer: format::context::Input,
    /// The decoder's timestamp mending, repeated on this demuxer's packets (the same jumps).
    mender: TimestampMender,
    /// Per input stream index: what to do with its packets.
    routes: Vec<Option<Route>>,
    /// A packet read ahead of the video, written on a later call.
    pending: Option<ffmpeg::Packet>,
    /// The end of the cut, in output seconds.
    end: Option<f64>,
    exhausted: bool,
    notes: Vec<String>,
    described: Vec<EncodedStream>,
}

struct Route {
    output_index: usize,
    input_time_base: Rational,
    output_time_base: Rational,
    /// `origin` in the input stream's time base.
    origin: i64,
    audio: Option<AudioReencoder>,
    /// The decoding timestamp written last (output time base).
    last_dts: Option<i64>,
}

impl OtherStreams {
    fn new(
        muxer: &mut format::context::Output,
        container: &str,
        source: &VideoInfo,
        options: &EncodeOptions,
        origin: f64,
        global_header: bool,
    ) -> std::result::Result<OtherStreams, String> {
        let demuxer = format::input(&source.path)
            .map_err(|e| format!("cannot reopen {} to copy its streams: {e}", source.path.display()))?;
        // SAFETY: `as_ptr` only exposes the raw pointer: the muxer's `oformat`, a static
        // AVOutputFormat of libavformat (non-null once the output is open), so `target` may keep
        // it; it is only read, by `accepts`.
        let format_ptr = unsafe { muxer.format().as_ptr() };
        let target = Container { name: container.to_string(), format: format_ptr };
        let mut routes: Vec<Option<Route>> = (0..demuxer.nb_streams()).map(|_| None).collect();
        let mut notes = Vec::new();
        let mut described = Vec::new();
        for info in &source.other_streams {
            let Some(stream) = demuxer.stream(info.index) else { continue };
            let parameters = stream.parameters();
            let id = parameters.id();
            let input_time_base = stream.time_base();
            let origin_ts = (origin / f64::from(input_time_base)).round() as i64;
            let copy = match info.kind {
                StreamKind::Audio | StreamKind::Subtitle => accepts(&target, id) != Some(false),
                _ => false,
            };
            if copy {
                let mut out = muxer
                    .add_stream(ffmpeg::encoder::find(codec::Id::None))
                    .map_err(|e| format!("cannot add a stream: {e}"))?;
                out.set_parameters(parameters);
                // SAFETY: `out` borrows the muxer, so its stream's `codecpar` (what `parameters`
                // wraps) is a valid AVCodecParameters, not shared with another thread; a plain
                // u32 field is set (0: the muxer picks its own tag for the codec, as the
                // source container's may not be valid in this one).
                unsafe { (*out.parameters().as_mut_ptr()).codec_tag = 0 };
                out.set_time_base(input_time_base);
                routes[info.index] = Some(Route {
                    output_index: out.index(),
                    input_time_base,
                    output_time_base: input_time_base,
                    origin: origin_ts,
                    audio: None,
                    last_dts: None,
                });
                described.push(EncodedStream { kind: info.kind, codec: info.codec.clone(), handling: StreamHandling::Copied });
            } else if info.kind == StreamKind::Audio && accepts(&target, codec::Id::AAC) != Some(false) {
                let audio = AudioReencoder::new(&stream, origin_ts, global_header)?;
                let mut out = muxer.add_stream(audio.codec).map_err(|e| format!("cannot add a stream: {e}"))?;
                out.set_parameters(&audio.encoder);
                out.set_time_base(audio.encoder.time_base());
                routes[info.index] = Some(Route {
                    output_index: out.index(),
                    input_time_base,
                    output_time_base: audio.encoder.time_base(),
                    origin: origin_ts,
                    audio: Some(audio),
                    last_dts: None,
                });
                notes.push(format!(
                    "audio stream {} ({}) re-encoded to AAC: a {container} file cannot hold it as it is",
                    info.index, info.codec
                ));
                described.push(EncodedStream {
                    kind: StreamKind::Audio,
                    codec: "aac".into(),
                    handling: StreamHandling::Reencoded { from: info.codec.clone() },
                });
            } else {
                let kind = match info.kind {
                    StreamKind::Audio => "audio",
                    StreamKind::Subtitle => "subtitle",
                    _ => "data",
                };
                notes.push(format!(
                    "{kind} stream {} ({}) dropped: a {container} file cannot hold it",
                    info.index, info.codec
                ));
            }
        }
        let start = options.start.filter(|s| *s > 0.0);
        let mut others = OtherStreams {
            mender: TimestampMender::new(&demuxer, source.stream_index),
            demuxer,
            routes,
            pending: None,
            end: options.duration.map(|d| start.unwrap_or(0.0) + d + source.start_seconds - origin),
            exhausted: false,
            notes,
            described,
        };
        if let Some(start) = start {
            seek_before(&mut others.demuxer, source.start_seconds + start);
        }
        if others.routes.iter().all(Option::is_none) {
            others.exhausted = true;
        }
        Ok(others)
    }

    fn described(&self) -> Vec<EncodedStream> {
        self.described.clone()
    }

    /// The output streams' time bases are final once the header is written.
    fn header_written(&mut self, muxer: &format::context::Output) {
        for route in self.routes.iter_mut().flatten() {
            route.output_time_base = muxer.stream(route.output_index).expect("added").time_base();
        }
    }

    /// Writes the copied streams' packets up to `until` (output seconds).
    fn copy_until(&mut self, muxer: &mut format::context::Output, until: f64) -> std::result::Result<(), String> {
        let until = self.end.map_or(until, |end| end.min(until));
        while !self.exhausted {
            let packet = match self.pending.take() {
                Some(packet) => packet,
                None => {
                    let mut packet = ffmpeg::Packet::empty();
                    match packet.read(&mut self.demuxer) {
                        Ok(()) => self.mender.mend(&mut packet),
                        Err(ffmpeg::Error::Eof) => {
                            self.exhausted = true;
                            break;
                        }
                        Err(ffmpeg::Error::InvalidData) => continue,
                        Err(e) => return Err(format!("cannot read the source's other streams: {e}")),
                    }
                    packet
                }
            };
            let Some(route) = self.routes.get_mut(packet.stream()).and_then(Option::as_mut) else { continue };
            let Some(ts) = packet.dts().or(packet.pts()) else { continue };
            let at = seconds(ts - route.origin, route.input_time_base);
            if at >= until {
                if self.end.is_some_and(|end| at >= end) {
                    // Past the cut: this stream is done; others may still have packets before it.
                    continue;
                }
                self.pending = Some(packet);
                break;
            }
            route.write(muxer, packet)?;
        }
        Ok(())
    }

    fn flush(&mut self, muxer: &mut format::context::Output) -> std::result::Result<(), String> {
        for route in self.routes.iter_mut().flatten() {
            if let Some(audio) = route.audio.as_mut() {
                audio.flush(muxer, route.output_index, route.output_time_base)?;
            }
        }
        Ok(())
    }
}

impl Route {
    /// Shifts a packet by the origin and writes it (or re-encodes it), dropping packets that end
    /// before the origin, except encoder priming packets (flagged "discard", e.g. AAC's first
    /// 1024 samples in MP4): the decoder needs them, and the muxer hides them again.
    fn write(&mut self, muxer: &mut format::context::Output, mut packet: ffmpeg::Packet) -> std::result::Result<(), String> {
        let pts = packet.pts().or(packet.dts()).unwrap_or(self.origin);
        // (Read raw: ffmpeg-next's packet flags know only KEY and CORRUPT.)
        // SAFETY: `packet` owns a valid AVPacket for this borrow; its plain int `flags` is read.
        let priming = unsafe { (*ffmpeg::packet::Ref::as_ptr(&packet)).flags } & ffmpeg::ffi::AV_PKT_FLAG_DISCARD != 0;
        if pts + packet.duration().max(1) <= self.origin && !priming {
            return Ok(());
        }
        if let Some(audio) = self.audio.as_mut() {
            return audio.push(muxer, &packet, self.output_index, self.output_time_base);
        }
        packet.set_pts(packet.pts().map(|t| t - self.origin));
        packet.set_dts(packet.dts().map(|t| t - self.origin));
        packet.rescale_ts(self.input_time_base, self.output_time_base);
        // Decoding timestamps must increase: where a closed discontinuity (or a damaged source)
        // leaves a packet at or before the one written last, it goes one tick after it, as
        // FFmpeg's muxing does for copied streams.
        if let (Some(dts), Some(last)) = (packet.dts(), self.last_dts) {
            if dts <= last {
                packet.set_dts(Some(last + 1));
                packet.set_pts(packet.pts().map(|pts| pts.max(last + 1)));
            }
        }
        self.last_dts = packet.dts().or(self.last_dts);
        packet.set_position(-1);
        packet.set_stream(self.output_index);
        packet.write_interleaved(muxer).map_err(|e| format!("cannot write: {e}"))
    }
}

/// Decodes an audio stream and encodes it to AAC (FFmpeg's own encoder), converting the sample
/// format with swresample and cutting the samples into the encoder's frame size.
struct AudioReencoder {
    codec: ffmpeg::Codec,
    decoder: codec::decoder::Audio,
    resampler: Option<ffmpeg::software::resampling::Context>,
    encoder: codec::encoder::Audio,
    /// Planar f32 samples per channel waiting for a full encoder frame.
    fifo: Vec<Vec<f32>>,
    /// Output timestamp (in samples) of the first sample in `fifo`.
    next_pts: Option<i64>,
    /// The video's first frame time, in the input stream's time base: time 0 out.
    origin: i64,
    input_time_base: Rational,
}

impl AudioReencoder {
    fn new(stream: &format::stream::Stream, origin: i64, global_header: bool) -> std::result::Result<AudioReencoder, String> {
        let name = codec_name(stream.parameters().id());
        let mut context = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| format!("cannot set up the {name} audio decoder: {e}"))?;
        // SAFETY: `context` owns a valid, not yet opened AVCodecContext, borrowed mutably here;
        // `pkt_timebase` is a plain AVRational the user sets before opening the decoder.
        unsafe { (*context.as_mut_ptr()).pkt_timebase = stream.time_base().into() };
        let decoder = context.decoder().audio().map_err(|e| format!("cannot open the {name} audio decoder: {e}"))?;
        let codec = ffmpeg::encoder::find_by_name("aac").ok_or("this FFmpeg has no aac encoder")?;
        let mut encoder = codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(|e| format!("cannot set up the aac encoder: {e}"))?;
        let layout = if decoder.channel_layout().is_empty() {
            ffmpeg::ChannelLayout::default(decoder.channels() as i32)
        } else {
            decoder.channel_layout()
        };
        encoder.set_rate(decoder.rate() as i32);
        encoder.set_channel_layout(layout);
        encoder.set_channels(layout.channels());
        encoder.set_format(format::Sample::F32(format::sample::Type::Planar));
        encoder.set_bit_rate(64_000 * layout.channels().max(1) as usize);
        encoder.set_time_base(Rational::new(1, decoder.rate() as i32));
        if global_header {
            encoder.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = encoder.open_as(codec).map_err(|e| format!("cannot open the aac encoder: {e}"))?;
        let channels = layout.channels().max(1) as usize;
        Ok(AudioReencoder { codec, decoder, resampler: None, encoder, fifo: vec![Vec::new(); channels],
            next_pts: None,
            origin,
            input_time_base: stream.time_base(),
        })
    }

    fn push(
        &mut self,
        muxer: &mut format::context::Output,
        packet: &ffmpeg::Packet,
        index: usize,
        out_time_base: Rational,
    ) -> std::result::Result<(), String> {
        // A damaged packet is skipped: the audio has a gap, the video goes on.
        let _ = self.decoder.send_packet(packet);
        self.receive(muxer, index, out_time_base)
    }

    fn receive(&mut self, muxer: &mut format::context::Output, index: usize, out_time_base: Rational) -> std::result::Result<(), String> {
        let mut decoded = frame::Audio::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            if self.next_pts.is_none() {
                let pts = decoded.timestamp().or(decoded.pts()).unwrap_or(self.origin);
                self.next_pts = Some((pts - self.origin).rescale(self.input_time_base, self.encoder.time_base()));
            }
            let planar = self.resample_planar_f32(&mut decoded)?;
            for (channel, samples) in self.fifo.iter_mut().zip(planar) {
                channel.extend(samples);
            }
            self.encode_full_frames(muxer, index, out_time_base, false)?;
        }
        Ok(())
    }

    fn resample_planar_f32(&mut self, decoded: &mut frame::Audio) -> std::result::Result<Vec<Vec<f32>>, String> {
        let target = format::Sample::F32(format::sample::Type::Planar);
        let layout = self.encoder.channel_layout();
        if decoded.channel_layout().is_empty() {
            // Some demuxers (PCM in Matroska) leave the layout unset; swresample wants one.
            decoded.set_channel_layout(ffmpeg::ChannelLayout::default(decoded.channels() as i32));
        }
        let source_layout = decoded.channel_layout();
        let resampler = match self.resampler.as_mut() {
            Some(r) if r.input().format == decoded.format() && r.input().channel_layout == source_layout => r,
            _ => self.resampler.insert(
                ffmpeg::software::resampling::Context::get(
                    decoded.format(),
                    source_layout,
                    decoded.rate(),
                    target,
                    layout,
                    self.encoder.rate(),
                )
                .map_err(|e| format!("cannot convert the audio: {e}"))?,
            ),
        };
        let mut converted = frame::Audio::empty();
        resampler.run(decoded, &mut converted).map_err(|e| format!("cannot convert the audio: {e}"))?;
        let n = converted.samples();
        Ok((0..self.fifo.len()).map(|c| converted.plane::<f32>(c)[..n].to_vec()).collect())
    }

    /// Encodes whole encoder frames from the FIFO (and, at the end, the short rest).
    fn encode_full_frames(
        &mut self,
        muxer: &mut format::context::Output,
        index: usize,
        out_time_base: Rational,
        last: bool,
    ) -> std::result::Result<(), String> {
        let frame_size = (self.encoder.frame_size() as usize).max(1);
        while self.fifo[0].len() >= frame_size || (last && !self.fifo[0].is_empty()) {
            let n = self.fifo[0].len().min(frame_size);
            let mut frame = frame::Audio::new(self.encoder.format(), n, self.encoder.channel_layout());
            frame.set_rate(self.encoder.rate());
            for (c, channel) in self.fifo.iter_mut().enumerate() {
                frame.plane_mut::<f32>(c)[..n].copy_from_slice(&channel[..n]);
                channel.drain(..n);
            }
            let pts = self.next_pts.unwrap_or(0);
            frame.set_pts(Some(pts));
            self.next_pts = Some(pts + n as i64);
            self.encoder.send_frame(&frame).map_err(|e| format!("aac cannot encode: {e}"))?;
            self.drain(muxer, index, out_time_base)?;
        }
        Ok(())
    }

    fn drain(&mut self, muxer: &mut format::context::Output, index: usize, out_time_base: Rational) -> std::result::Result<(), String> {
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(index);
            packet.rescale_ts(self.encoder.time_base(), out_time_base);
            packet.write_interleaved(muxer).map_err(|e| format!("cannot write: {e}"))?;
        }
        Ok(())
    }

    fn flush(&mut self, muxer: &mut format::context::Output, index: usize, out_time_base: Rational) -> std::result::Result<(), String> {
        let _ = self.decoder.send_eof();
        self.receive(muxer, index, out_time_base)?;
        self.encode_full_frames(muxer, index, out_time_base, true)?;
        self.encoder.send_eof().map_err(|e| format!("cannot flush the aac encoder: {e}"))?;
        self.drain(muxer, index, out_time_base)
    }
}
