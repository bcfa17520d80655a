//! Reading a video: the best video stream of any file FFmpeg can demux and decode, delivered as
//! 8-bit RGB frames in display orientation (rotation applied, pixels made square), scaled to the
//! requested size, each with its own timestamp (variable frame rates stay variable).
//!
//! Time: `pts` is the frame's best-effort timestamp in the stream's time base, as decoded;
//! `pts_seconds` counts from the stream's start time (usually 0), and `start`/`duration` are
//! measured the same way, with the semantics of ffmpeg's `-ss`/`-t`: seek backwards to a keyframe
//! before `start`, decode and drop the frames before it, stop at the first frame at or after
//! `start + duration`.
//!
//! Damaged input is not fatal while frames still come out; what went wrong is counted, by kind:
//! - what FFmpeg logs at warning level or worse about this decoder (its codec context, its
//!   frame threads, and the demuxer of its input), one count per message, grouped by the text
//!   with its numbers written as `N` (see `ffmpeg_log`) — this is where most damage shows, e.g.
//!   "decode_slice_header error" for a damaged H.264 slice that FFmpeg conceals;
//! - what the API hands back rather than logs, under kinds of our own: "packet rejected by the
//!   decoder: …" and "decoding failed: …" (errors other than "need more data"/"end of stream"),
//!   "packet flagged corrupt by the demuxer", "frame decoded with errors (flagged corrupt)",
//!   "unreadable packet skipped: …" and "read error: …".
//!
//! These are separate observations, not deduplicated: one damaged slice usually gives FFmpeg's
//! message about it and may also give a rejected packet or a corrupt frame, each in its own kind.
//! [`VideoDecoder::warnings`] is the sum of all counts, [`VideoDecoder::warning_kinds`] the
//! breakdown. A clean file gives 0. Counts are complete once [`VideoDecoder::next_frame`] has
//! returned `None`; before that, frame threads may still be logging about packets already sent.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, format, media, software::scaling, util::frame, Rational};
use image::RgbImage;
use serde::Serialize;

use super::deinterlace::{Deinterlace, Deinterlacer, Pulled};
use super::colour::{self, set_conversion, Colour};
use super::ffmpeg_log::{DecoderWarning, LogTap};
use super::timecode;
use super::{codec_name, in_time_base, init_ffmpeg, pair, seconds, seek_before};
use crate::error::{Error, Result};
use crate::media::image_io::{size_for_longest_side, Alpha16, Rgb32FImage};
use crate::media::sequence::{is_sequence, SequenceInput};
use crate::media::video::discontinuity::TimestampMender;

/// The size frames are delivered at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameSize {
    /// The display size ([`VideoInfo::width`] × [`VideoInfo::height`]).
    #[default]
    Source,
    /// The longest side this many pixels, the display aspect ratio kept.
    LongestSide(u32),
    /// Exactly this width and height (the aspect ratio is the caller's business).
    Exact(u32, u32),
}

/// What part of the video to deliver, and how large.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    pub size: FrameSize,
    /// Seconds from the start of the video to the first frame delivered (`-ss`).
    pub start: Option<f64>,
    /// Seconds after `start` at which delivery stops (`-t`).
    pub duration: Option<f64>,
    /// At most this many frames.
    pub max_frames: Option<u64>,
    /// Frames of the range decoded but not delivered, from its start: a segment of the clip
    /// begins after them (delivered frames are still numbered from 0).
    pub skip_frames: u64,
    /// Frames per second of an image sequence, which carries none
    /// ([`DEFAULT_SEQUENCE_RATE`] when `None`); videos keep their own.
    pub sequence_rate: Option<(i32, i32)>,
    /// What is done with frames flagged interlaced.
    pub deinterlace: Deinterlace,
    /// Also deliver each frame at the display size ([`DecodedFrame::source_image`]), where `size`
    /// is another: for what is put back over a painting at the source's size.
    pub keep_source_size: bool,
}

/// Frame rate of an image sequence when none is given: film's 24 fps.
pub const DEFAULT_SEQUENCE_RATE: (i32, i32) = (24, 1);

/// What the decoded frames held that the output does not keep as it was: each a note for the
/// user and a count in the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DecodeNotes {
    /// Frames flagged interlaced and painted as they were (`--deinterlace off`): as progressive
    /// pictures, their two fields together.
    pub interlaced_frames: u64,
    /// Frames flagged interlaced and rebuilt from their fields before painting (bwdif).
    pub deinterlaced_frames: u64,
    /// With `--deinterlace field` on an interlaced stream: each field made a frame of its own
    /// (twice the frames, at twice the rate).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub frame_per_field: bool,
    /// Frames whose stored shape is not the first frame's (a resolution change mid-stream):
    /// scaled to the working size, their aspect ratio not kept.
    pub reshaped_frames: u64,
    /// The first such frame's stored size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_other_size: Option<(u32, u32)>,
    /// Jumps in the timestamps (concatenated MPEG-TS…) closed so that the output's timeline is
    /// continuous (see [`super::discontinuity`]).
    pub timestamp_discontinuities: usize,
    /// Where the first jump was, in seconds from the start of the video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_discontinuity_seconds: Option<f64>,
    /// Scene-linear (float) frames with values outside 0..1 (highlights above 1): painted
    /// clipped, the rest kept aside for a linear (EXR) output.
    #[serde(skip_serializing_if = "is_zero")]
    pub beyond_display_frames: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// 0-based among the frames delivered.
    pub index: u64,
    /// Best-effort timestamp in the video stream's time base ([`VideoInfo::time_base`]).
    pub pts: i64,
    /// Seconds from the start of the video stream ([`VideoInfo::start_seconds`]).
    pub pts_seconds: f64,
    pub image: RgbImage,
    /// The frame's alpha (straight: a float frame's is divided out), for a stream that has one.
    pub alpha: Option<Alpha16>,
    /// A scene-linear (float) frame's values outside 0..1, kept aside from `image` (none when
    /// it has none).
    pub beyond: Option<Rgb32FImage>,
    /// The frame at the display size, with [`DecodeOptions::keep_source_size`] where `image` is
    /// smaller.
    pub source_image: Option<RgbImage>,
}

/// What a non-video stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Only in [`super::EncodedInfo`]: the decoder lists the streams other than its video.
    Video,
    Audio,
    Subtitle,
    /// Data and attachment streams.
    Data,
}

/// A stream other than the one video stream we decode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    pub index: usize,
    pub kind: StreamKind,
    pub codec: String,
    pub duration_seconds: Option<f64>,
}

/// What the input holds, as far as the pipeline cares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoInfo {
    pub path: PathBuf,
    /// Display size: after the rotation and the sample aspect ratio, before any scaling of ours.
    pub width: u32,
    pub height: u32,
    /// Size of the pictures as stored.
    pub coded_width: u32,
    pub coded_height: u32,
    /// Clockwise degrees the stored picture is turned to display it: 0, 90, 180 or 270.
    pub rotation: i32,
    /// Shape of a stored pixel, width:height (1:1 when the file does not say).
    pub sample_aspect_ratio: (i32, i32),
    /// Average frame rate, or the stream's base rate when no average is known (twice it when
    /// each field is delivered as a frame: `--deinterlace field`).
    pub frame_rate: (i32, i32),
    /// The stream's field order says its frames are interlaced (two fields each).
    pub interlaced: bool,
    /// Unit of the video stream's timestamps, in seconds.
    pub time_base: (i32, i32),
    /// Start time of the video stream (seconds); frame times count from here.
    pub start_seconds: f64,
    pub duration_seconds: Option<f64>,
    /// Frame count the container states, if it states one.
    pub frame_count: Option<u64>,
    /// Index of the video stream decoded.
    pub stream_index: usize,
    pub codec: String,
    pub container: String,
    /// FFmpeg's name of the decoded pixel format (`yuv420p`, `yuv422p10le`, `rgb24`…).
    pub pixel_format: String,
    /// Bits per component of the stored pixels.
    pub bit_depth: u32,
    /// Whether the pixels carry an alpha channel, which is not kept: the colours under
    /// transparent pixels are painted and the output is opaque.
    pub alpha: bool,
    /// Colour tags (an untagged RGB format counts as `matrix: rgb`).
    pub colour: Colour,
    /// Start timecode the file states (`HH:MM:SS:FF`, `;` for drop-frame).
    pub timecode: Option<String>,
    /// The frames on disk, when the input is an image sequence.
    pub sequence: Option<SequenceInput>,
    pub other_streams: Vec<StreamInfo>,
}

impl VideoInfo {
    /// The size frames are delivered at for `size`.
    pub fn output_size(&self, size: FrameSize) -> (u32, u32) {
        match size {
            FrameSize::Source => (self.width, self.height),
            FrameSize::LongestSide(n) => size_for_longest_side(self.width, self.height, n.max(1)),
            FrameSize::Exact(w, h) => (w.max(1), h.max(1)),
        }
    }

    /// Duration of one frame at the stated frame rate, in seconds (1/25 s when no rate is known).
    pub fn frame_seconds(&self) -> f64 {
        let (n, d) = self.frame_rate;
        if n > 0 && d > 0 { d as f64 / n as f64 } else { 1.0 / 25.0 }
    }
}

/// Decodes the best video stream of a file, frame by frame.
pub struct VideoDecoder {
    /// Counts what FFmpeg logs about this decoder and what we note. First, so that it is dropped
    /// (unregistered) before `input` frees the format context whose address it listens for.
    problems: LogTap,
    info: VideoInfo,
    input: format::context::Input,
    decoder: codec::decoder::Video,
    time_base: Rational,
    start_pts: i64,
    /// Frames at or before this timestamp are dropped (`start`).
    first_pts: Option<i64>,
    /// Frames at or after this timestamp end the delivery (`start + duration`).
    end_pts: Option<i64>,
    max_frames: Option<u64>,
    /// Size scaled to before rotating: the output size with the sides swapped for 90°/270°.
    scaled_size: (u32, u32),
    scaler: Option<Scaler>,
    /// Converts the frames' alpha, for a stream that has one.
    alpha_scaler: Option<Scaler>,
    /// The display size before rotating, where frames are also delivered at it.
    source_scaled_size: Option<(u32, u32)>,
    source_scaler: Option<Scaler>,
    decoded_frame: frame::Video,
    deinterlace: Deinterlace,
    /// Each field is delivered as a frame (`--deinterlace field` on an interlaced stream).
    per_field: bool,
    /// Made at the first interlaced frame (the first frame, per field); every frame after it
    /// goes through it.
    deinterlacer: Option<Deinterlacer>,
    last_pts: Option<i64>,
    /// What the frames held that the output does not keep (see [`DecodeNotes`]).
    notes: DecodeNotes,
    /// The stored size of the first frame decoded (to tell frames of another shape).
    first_size: Option<(u32, u32)>,
    /// Timestamps made continuous across the jumps of formats that declare them.
    mender: TimestampMender,
    /// Frames of the range passed over so far, and how many to pass over.
    skipped: u64,
    skip_frames: u64,
    delivered: u64,
    decoded_any: bool,
    sent_eof: bool,
    finished: bool,
}

/// Which of a frame's timestamps is its time: the decoder's best-effort guess for a frame
/// straight from the decoder, the `pts` a filter set for a deinterlaced one.
#[derive(Clone, Copy)]
enum TimestampFrom {
    BestEffort,
    Pts,
}

/// A swscale context with the input geometry it was made for (rebuilt when frames change size).
struct Scaler {
    from: (ffmpeg::format::Pixel, u32, u32),
    context: scaling::Context,
    /// The converted frame: RGB24, or RGBA64 for the alpha.
    rgb: frame::Video,
}

/// Consecutive decoder errors after which we stop trying: the stream is not decodable.
const MAX_CONSECUTIVE_ERRORS: usize = 1000;

impl VideoDecoder {
    pub fn open(path: &Path, options: &DecodeOptions) -> Result<VideoDecoder> {
        init_ffmpeg();
        let sequence = if is_sequence(path) { Some(SequenceInput::find(path)?) } else { None };
        if let Some(sequence) = &sequence {
            sequence.check_frames()?;
        }
        if sequence.is_none() && !path.exists() {
            return Err(Error::input(path, "file not found"));
        }
        check_range(path, options)?;
        let mut input = match &sequence {
            Some(sequence) => {
                let (num, den) = options.sequence_rate.unwrap_or(DEFAULT_SEQUENCE_RATE);
                if num <= 0 || den <= 0 {
                    return Err(Error::input(path, format!("frame rate {num}/{den} is not usable")));
                }
                let mut demuxer_options = ffmpeg::Dictionary::new();
                demuxer_options.set("framerate", &format!("{num}/{den}"));
                demuxer_options.set("start_number", &sequence.start_number.to_string());
                demuxer_options.set("pattern_type", "sequence");
                format::input_with_dictionary(&sequence.pattern.text, demuxer_options)
                    .map_err(|e| Error::input(path, format!("cannot read the image sequence: {e}")))?
            }
            None => format::input(&path).map_err(|e| Error::input(path, format!("not a video FFmpeg can read: {e}")))?,
        };
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| Error::input(path, "has no video stream"))?;
        let mut info = describe(path, &input, &stream);
        info.sequence = sequence;
        let time_base = stream.time_base();
        // A frame per field: twice the frames, each at its field's time (which the stream's time
        // base must be fine enough to hold).
        let per_field = options.deinterlace == Deinterlace::Field && info.interlaced;
        if per_field {
            if in_time_base(info.frame_seconds(), time_base) < 2 {
                return Err(Error::input(
                    path,
                    format!(
                        "--deinterlace field: the stream's time base ({}/{} s) cannot hold a field's time; use --deinterlace frame",
                        time_base.numerator(),
                        time_base.denominator()
                    ),
                ));
            }
            info.frame_rate.0 *= 2;
            info.frame_count = info.frame_count.map(|n| 2 * n);
        }
        let start_pts = stream.start_time();
        let start_pts = if start_pts == ffmpeg::ffi::AV_NOPTS_VALUE { 0 } else { start_pts };

        let id = stream.parameters().id();
        if ffmpeg::decoder::find(id).is_none() {
            return Err(Error::input(path, format!("no decoder for codec {}", codec_name(id))));
        }
        let mut context = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| Error::input(path, format!("cannot set up the {} decoder: {e}", info.codec)))?;
        context.set_threading(codec::threading::Config { kind: codec::threading::Type::Frame, count: 0, ..Default::default() });
        // Tap the log before opening, so what the decoder says while opening counts too.
        // SAFETY: only the pointer is taken; the tap compares addresses and never dereferences it.
        let problems = LogTap::new(unsafe { input.as_ptr() });
        // SAFETY: the context is valid and not yet opened; `opaque` is the user's field, unused
        // by ffmpeg-next and by FFmpeg's default callbacks, and frame threads copy it.
        unsafe { (*context.as_mut_ptr()).opaque = problems.key() };
        let mut decoder = context.decoder();
        decoder.set_packet_time_base(time_base);
        let decoder = decoder
            .video()
            .map_err(|e| Error::input(path, format!("cannot open the {} decoder: {e}", info.codec)))?;
        let pixel = decoder.format();
        info.pixel_format = pixel.descriptor().map(|d| d.name().to_string()).unwrap_or_default();
        info.bit_depth = colour::bit_depth(pixel);
        info.alpha = colour::has_alpha(pixel);
        if colour::is_rgb(pixel) && info.colour.matrix == ffmpeg::color::Space::Unspecified {
            info.colour.matrix = ffmpeg::color::Space::RGB;
        }

        let first_pts = options.start.filter(|s| *s > 0.0).map(|s| start_pts + in_time_base(s, time_base));
        let end_pts = options
            .duration
            .map(|d| start_pts + in_time_base(options.start.unwrap_or(0.0).max(0.0) + d, time_base));
        if let Some(start) = options.start.filter(|s| *s > 0.0) {
            seek_before(&mut input, info.start_seconds + start);
        }

        let mender = TimestampMender::new(&input, info.stream_index);
        let (w, h) = info.output_size(options.size);
        let scaled_size = if info.rotation % 180 == 0 { (w, h) } else { (h, w) };
        let (info_display, rotation) = ((info.width, info.height), info.rotation);
        Ok(VideoDecoder {
            problems,
            info,
            input,
            decoder,
            time_base,
            start_pts,
            first_pts,
            end_pts,
            max_frames: options.max_frames,
            scaled_size,
            source_scaled_size: options.keep_source_size.then(|| {
                let (w, h) = info_display;
                if rotation % 180 == 0 { (w, h) } else { (h, w) }
            }).filter(|&size| size != scaled_size),
            scaler: None,
            alpha_scaler: None,
            source_scaler: None,
            decoded_frame: frame::Video::empty(),
            deinterlace: options.deinterlace,
            per_field,
            deinterlacer: None,
            last_pts: None,
            notes: DecodeNotes::default(),
            first_size: None,
            mender,
            skipped: 0,
            skip_frames: options.skip_frames,
            delivered: 0,
            decoded_any: false,
            sent_eof: false,
            finished: false,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Problems met so far: FFmpeg's warnings and errors about this input plus the errors and
    /// corrupt flags the API returned (see the module doc); 0 for a clean file.
    pub fn warnings(&self) -> usize {
        self.problems.total()
    }

    /// The problems of [`VideoDecoder::warnings`] by kind, most frequent first (ties in the
    /// order first met); empty for a clean file. At most 64 kinds, the rest counted together.
    pub fn warning_kinds(&self) -> Vec<DecoderWarning> {
        self.problems.kinds()
    }

    /// What the frames delivered so far held that the output does not keep as it was.
    pub fn notes(&self) -> DecodeNotes {
        let video = self.info.stream_index;
        DecodeNotes {
            timestamp_discontinuities: self.mender.discontinuities(video),
            first_discontinuity_seconds: self.mender.first_jump_seconds(video).map(|at| at - self.info.start_seconds),
            ..self.notes.clone()
        }
    }

    /// The next frame in the requested range, `None` after the last one. A file (or a range) in
    /// which no frame at all comes out is an error, distinct from a clean end.
    pub fn next_frame(&mut self) -> Result<Option<DecodedFrame>> {
        let mut consecutive_errors = 0;
        loop {
            if self.finished || self.max_frames.is_some_and(|m| self.delivered >= m) {
                self.finished = true;
                return Ok(None);
            }
            // What the deinterlacer has ready comes first.
            if let Some(deinterlacer) = &mut self.deinterlacer {
                match deinterlacer.pull(&mut self.decoded_frame).map_err(|e| self.deinterlace_failed(e))? {
                    Pulled::Frame => {
                        if let Some(frame) = self.take_decoded_with(TimestampFrom::Pts)? {
                            return Ok(Some(frame));
                        }
                        continue;
                    }
                    Pulled::Ended => return self.end_of_stream(),
                    Pulled::NeedsInput => {}
                }
            }
            match self.decoder.receive_frame(&mut self.decoded_frame) {
                Ok(()) => {
                    consecutive_errors = 0;
                    self.decoded_any = true;
                    if self.decoded_frame.is_corrupt() {
                        self.problems.note("frame decoded with errors (flagged corrupt)");
                    }
                    if self.deinterlace_decoded()? {
                        continue;
                    }
                    if let Some(frame) = self.take_decoded_with(TimestampFrom::BestEffort)? {
                        return Ok(Some(frame));
                    }
                }
                Err(ffmpeg::Error::Eof) => match &mut self.deinterlacer {
                    // The filter holds the last frame back until it hears the input ended.
                    Some(deinterlacer) => deinterlacer.flush().map_err(|e| self.deinterlace_failed(e))?,
                    None => return self.end_of_stream(),
                },
                Err(ffmpeg::Error::Other { errno }) if errno == libc_eagain() => self.feed()?,
                Err(e) => {
                    self.problems.note(&format!("decoding failed: {e}"));
                    consecutive_errors += 1;
                    if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                        return Err(Error::input(&self.info.path, format!("the video stream does not decode: {e}")));
                    }
                    if self.sent_eof {
                        return self.end_of_stream();
                    }
                }
            }
        }
    }

    /// Sends the next packet of our stream (or the end of the stream) to the decoder.
    fn feed(&mut self) -> Result<()> {
        if self.sent_eof {
            // The decoder asked for more after the end: nothing more will come.
            self.finished = true;
            return Ok(());
        }
        let index = self.info.stream_index;
        loop {
            // A fresh packet per read: av_read_frame does not release what a packet holds, so
            // reading into a used one (the other streams' packets, skipped) leaked each one.
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    // Every stream's packets pass the mender, in file order, as in the copier.
                    self.mender.mend(&mut packet);
                    if packet.stream() != index {
                        continue;
                    }
                    if packet.is_corrupt() {
                        self.problems.note("packet flagged corrupt by the demuxer");
                    }
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(ffmpeg::Error::Other { errno }) if errno == libc_eagain() => {}
                        Err(e) => self.problems.note(&format!("packet rejected by the decoder: {e}")),
                    }
                    return Ok(());
                }
                Err(ffmpeg::Error::Eof) => break,
                Err(e @ ffmpeg::Error::InvalidData) => self.problems.note(&format!("unreadable packet skipped: {e}")),
                Err(e) => {
                    // A read error mid-file: decode what we have, and say so through warnings.
                    self.problems.note(&format!("read error: {e}"));
                    if self.delivered == 0 && !self.decoded_any {
                        return Err(Error::input(&self.info.path, format!("cannot read: {e}")));
                    }
                    break;
                }
            }
        }
        self.sent_eof = true;
        let _ = self.decoder.send_eof();
        Ok(())
    }

    /// With `--deinterlace frame`, puts the frame just decoded through the deinterlacer (made at
    /// the first interlaced frame); true when it went in (it comes out of [`Deinterlacer::pull`]).
    fn deinterlace_decoded(&mut self) -> Result<bool> {
        if self.deinterlace == Deinterlace::Off {
            return Ok(false);
        }
        let interlaced = self.decoded_frame.is_interlaced();
        if self.deinterlacer.is_none() && !interlaced && !self.per_field {
            return Ok(false);
        }
        if interlaced || self.per_field {
            self.notes.deinterlaced_frames += 1;
            self.notes.frame_per_field = self.per_field;
        }
        // A frame of another shape (a resolution change): the frames the old graph holds come
        // out first, then a graph for the new shape takes over.
        if self.deinterlacer.as_ref().is_none_or(|d| !d.takes(&self.decoded_frame)) {
            let (first, time_base, per_field) = (&self.decoded_frame, self.time_base, self.per_field);
            let next = match self.deinterlacer.take() {
                Some(previous) => Deinterlacer::succeeding(previous, first, time_base, per_field),
                None => Deinterlacer::new(first, time_base, per_field),
            };
            self.deinterlacer = Some(next.map_err(|e| self.deinterlace_failed(e))?);
        }
        let deinterlacer = self.deinterlacer.as_mut().expect("made above");
        deinterlacer.push(&mut self.decoded_frame).map_err(|e| self.deinterlace_failed(e))?;
        Ok(true)
    }

    fn deinterlace_failed(&self, e: ffmpeg::Error) -> Error {
        Error::input(&self.info.path, format!("cannot deinterlace (FFmpeg's bwdif: {e}); try --deinterlace off"))
    }

    fn end_of_stream(&mut self) -> Result<Option<DecodedFrame>> {
        self.finished = true;
        if self.delivered > 0 {
            return Ok(None);
        }
        if !self.decoded_any {
            return Err(Error::input(&self.info.path, "contains no video frames"));
        }
        Err(Error::input(
            &self.info.path,
            format!(
                "no video frames in the requested range (the video lasts {:.3} s)",
                self.info.duration_seconds.unwrap_or(0.0)
            ),
        ))
    }

    /// The frame just decoded (or deinterlaced), converted, if it falls in the requested range.
    fn take_decoded_with(&mut self, from: TimestampFrom) -> Result<Option<DecodedFrame>> {
        let (pts, best_effort) = (self.decoded_frame.pts(), self.decoded_frame.timestamp());
        let pts = match match from {
            TimestampFrom::BestEffort => best_effort.or(pts),
            TimestampFrom::Pts => pts.or(best_effort),
        } {
            Some(pts) => pts,
            // No timestamp at all: one nominal frame after the previous one.
            None => match self.last_pts {
                Some(last) => last + in_time_base(self.info.frame_seconds(), self.time_base).max(1),
                None => self.start_pts,
            },
        };
        self.last_pts = Some(pts);
        if self.first_pts.is_some_and(|first| pts < first) {
            return Ok(None);
        }
        if self.end_pts.is_some_and(|end| pts >= end) {
            self.finished = true;
            return Ok(None);
        }
        if self.skipped < self.skip_frames {
            self.skipped += 1;
            return Ok(None);
        }
        let float = super::linear::is_float(self.decoded_frame.format());
        let (image, alpha, beyond) = if float {
            // Scene-linear: brought to display-referred RGB by the sRGB transfer function.
            let displayed = super::linear::to_display(&self.decoded_frame, self.scaled_size)
                .map_err(|e| Error::input(&self.info.path, format!("cannot convert a frame: {e}")))?;
            self.notes.beyond_display_frames += displayed.beyond.is_some() as u64;
            (displayed.image, displayed.alpha, displayed.beyond)
        } else {
            let image = self.convert()?;
            let alpha = if self.info.alpha { Some(self.convert_alpha()?) } else { None };
            (image, alpha, None)
        };
        let source_image = match self.source_scaled_size {
            None => None,
            Some(size) if float => Some(
                super::linear::to_display(&self.decoded_frame, size)
                    .map_err(|e| Error::input(&self.info.path, format!("cannot convert a frame: {e}")))?
                    .image,
            ),
            Some(size) => {
                let converted = Scaler::run(&mut self.source_scaler, &self.decoded_frame, &self.info, size, ffmpeg::format::Pixel::RGB24, "")?;
                Some(rotated(rgb_image(converted), self.info.rotation))
            }
        };
        let frame = DecodedFrame {
            index: self.delivered,
            pts,
            pts_seconds: seconds(pts - self.start_pts, self.time_base),
            image,
            alpha,
            beyond,
            source_image,
        };
        self.delivered += 1;
        Ok(Some(frame))
    }

    /// Scales the decoded frame straight to RGB24 at the pre-rotation size, then rotates it.
    fn convert(&mut self) -> Result<RgbImage> {
        let source = &self.decoded_frame;
        let from = (source.format(), source.width(), source.height());
        if source.is_interlaced() {
            self.notes.interlaced_frames += 1;
        }
        let (first_width, first_height) = *self.first_size.get_or_insert((from.1, from.2));
        // Another shape (a resolution change mid-stream): scaled to the size of the first, so
        // its aspect ratio is not kept.
        if u64::from(from.1) * u64::from(first_height) != u64::from(from.2) * u64::from(first_width) {
            self.notes.reshaped_frames += 1;
            self.notes.first_other_size.get_or_insert((from.1, from.2));
        }
        let converted = Scaler::run(&mut self.scaler, source, &self.info, self.scaled_size, ffmpeg::format::Pixel::RGB24, "")?;
        Ok(rotated(rgb_image(converted), self.info.rotation))
    }

    /// The decoded frame's alpha at the delivered size: scaled with the colours (Lanczos), at 16
    /// bits (FFmpeg widens 8- and 10-bit alpha by repeating its bits, which narrows back exactly).
    fn convert_alpha(&mut self) -> Result<Alpha16> {
        let rgba = if cfg!(target_endian = "little") { ffmpeg::format::Pixel::RGBA64LE } else { ffmpeg::format::Pixel::RGBA64BE };
        let frame = Scaler::run(&mut self.alpha_scaler, &self.decoded_frame, &self.info, self.scaled_size, rgba, "' alpha")?;
        let (w, h, stride) = (frame.width(), frame.height(), frame.stride(0));
        let data = frame.data(0);
        let alpha = Alpha16::from_fn(w, h, |x, y| {
            let at = y as usize * stride + 8 * x as usize + 6;
            image::Luma([u16::from_ne_bytes([data[at], data[at + 1]])])
        });
        Ok(rotated(alpha, self.info.rotation))
    }
}

/// An image turned by a stream's rotation (0, 90, 180 or 270 degrees clockwise).
fn rotated<P: image::Pixel + 'static>(image: image::ImageBuffer<P, Vec<P::Subpixel>>, rotation: i32) -> image::ImageBuffer<P, Vec<P::Subpixel>> {
    match rotation {
        90 => image::imageops::rotate90(&image),
        180 => image::imageops::rotate180(&image),
        270 => image::imageops::rotate270(&image),
        _ => image,
    }
}

impl Scaler {
    /// Converts `source` to `to` at `size` with the scaler in `slot`, made (again) when the
    /// frames' format or size changes; `what` completes "frames" in errors ("' alpha").
    fn run<'a>(
        slot: &'a mut Option<Scaler>,
        source: &frame::Video,
        info: &VideoInfo,
        size: (u32, u32),
        to: ffmpeg::format::Pixel,
        what: &str,
    ) -> Result<&'a frame::Video> {
        let from = (source.format(), source.width(), source.height());
        if slot.as_ref().is_none_or(|s| s.from != from) {
            *slot = Some(Scaler::new(source, &info.colour, size, to).map_err(|e| {
                Error::input(&info.path, format!("cannot convert {:?} {}×{} frames{what}: {e}", from.0, from.1, from.2))
            })?);
        }
        let scaler = slot.as_mut().expect("scaler was just set");
        scaler.context.run(source, &mut scaler.rgb).map_err(|e| Error::input(&info.path, format!("cannot convert a frame{what}: {e}")))?;
        Ok(&scaler.rgb)
    }

    fn new(
        source: &frame::Video,
        stream_colour: &Colour,
        (width, height): (u32, u32),
        to: ffmpeg::format::Pixel,
    ) -> std::result::Result<Scaler, ffmpeg::Error> {
        let flags = scaling::Flags::LANCZOS | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INT;
        let mut context = scaling::Context::get(source.format(), source.width(), source.height(), to, width, height, flags)?;
        // The matrix and range the frame (or else the stream) says it was made with; untagged:
        // the guess the encoder will make too (see `colour`).
        let tags = Colour::of_frame(source, stream_colour);
        let matrix = tags.conversion_matrix(source.width(), source.height());
        set_conversion(&mut context, matrix, tags.full_range(), true);
        Ok(Scaler {
            from: (source.format(), source.width(), source.height()),
            context,
            rgb: frame::Video::new(to, width, height),
        })
    }
}

/// Copies an RGB24 frame (rows padded to its stride) into an image.
fn rgb_image(frame: &frame::Video) -> RgbImage {
    let (w, h) = (frame.width(), frame.height());
    let stride = frame.stride(0);
    let data = frame.data(0);
    let row = 3 * w as usize;
    let mut pixels = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    RgbImage::from_raw(w, h, pixels).expect("buffer has exactly w×h×3 bytes")
}

fn libc_eagain() -> i32 {
    ffmpeg::util::error::EAGAIN
}

fn check_range(path: &Path, options: &DecodeOptions) -> Result<()> {
    let bad = |what: &str, v: f64| Error::input(path, format!("{what} {v} s is not a usable time"));
    if let Some(s) = options.start {
        if !s.is_finite() || s < 0.0 {
            return Err(bad("--start", s));
        }
    }
    if let Some(d) = options.duration {
        if !d.is_finite() || d <= 0.0 {
            return Err(bad("--duration", d));
        }
    }
    Ok(())
}

/// Reads the geometry and timing of the video stream and lists the other streams.
fn describe(path: &Path, input: &format::context::Input, stream: &format::stream::Stream) -> VideoInfo {
    let parameters = stream.parameters();
    // SAFETY: `parameters` borrows the stream's `codecpar`, a valid AVCodecParameters while the
    // input is open (it is, borrowed by `input`); two plain ints and an enum are read.
    let (coded_width, coded_height, field_order) = unsafe {
        let p = parameters.as_ptr();
        ((*p).width.max(0) as u32, (*p).height.max(0) as u32, (*p).field_order)
    };
    use ffmpeg::ffi::AVFieldOrder::{AV_FIELD_PROGRESSIVE, AV_FIELD_UNKNOWN};
    let interlaced = !matches!(field_order, AV_FIELD_UNKNOWN | AV_FIELD_PROGRESSIVE);
    // SAFETY: both pointers come from live borrows (the open input and one of its streams);
    // av_guess_sample_aspect_ratio only reads them (the `*mut` is the C signature's lack of
    // const), and the frame may be null.
    let sar = unsafe {
        ffmpeg::ffi::av_guess_sample_aspect_ratio(input.as_ptr() as *mut _, stream.as_ptr() as *mut _, std::ptr::null_mut())
    };
    let sample_aspect_ratio = if sar.num > 0 && sar.den > 0 { (sar.num, sar.den) } else { (1, 1) };
    let rotation = rotation(stream);
    let square_width =
        ((coded_width as f64 * sample_aspect_ratio.0 as f64 / sample_aspect_ratio.1 as f64).round() as u32).max(1);
    let (width, height) =
        if rotation % 180 == 0 { (square_width, coded_height) } else { (coded_height, square_width) };

    let avg = stream.avg_frame_rate();
    let frame_rate = if avg.numerator() > 0 && avg.denominator() > 0 { avg } else { stream.rate() };
    let time_base = stream.time_base();
    let start = stream.start_time();
    let start_seconds = if start == ffmpeg::ffi::AV_NOPTS_VALUE { 0.0 } else { seconds(start, time_base) };
    let duration_seconds = stream_duration(stream).or_else(|| {
        let d = input.duration();
        (d > 0).then(|| d as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
    });
    let frames = stream.frames();

    let other_streams = input
        .streams()
        .filter(|s| s.index() != stream.index())
        .filter_map(|s| {
            let kind = match s.parameters().medium() {
                media::Type::Audio => StreamKind::Audio,
                media::Type::Subtitle => StreamKind::Subtitle,
                media::Type::Data | media::Type::Attachment => StreamKind::Data,
                _ => return None,
            };
            Some(StreamInfo {
                index: s.index(),
                kind,
                codec: codec_name(s.parameters().id()),
                duration_seconds: stream_duration(&s),
            })
        })
        .collect();

    VideoInfo {
        path: path.to_path_buf(),
        width,
        height,
        coded_width,
        coded_height,
        rotation,
        sample_aspect_ratio,
        frame_rate: pair(frame_rate),
        interlaced,
        time_base: pair(time_base),
        start_seconds,
        duration_seconds,
        frame_count: (frames > 0).then_some(frames as u64),
        stream_index: stream.index(),
        codec: codec_name(parameters.id()),
        container: input.format().name().to_string(),
        pixel_format: String::new(), // set once the decoder is open
        bit_depth: 8,
        alpha: false,
        colour: Colour::of_stream(stream),
        timecode: timecode::of_input(input, stream.index()),
        sequence: None,
        other_streams,
    }
}

pub(crate) fn stream_duration(stream: &format::stream::Stream) -> Option<f64> {
    let d = stream.duration();
    (d != ffmpeg::ffi::AV_NOPTS_VALUE && d > 0).then(|| seconds(d, stream.time_base()))
}

/// Clockwise display rotation in degrees, normalised to 0/90/180/270, from the display matrix
/// side data or, failing that, the `rotate` tag.
fn rotation(stream: &format::stream::Stream) -> i32 {
    let from_matrix = stream.side_data().find_map(|side| {
        let data = side.data();
        (side.kind() == codec::packet::side_data::Type::DisplayMatrix && data.len() >= 36).then(|| {
            let mut matrix = [0i32; 9];
            for (m, bytes) in matrix.iter_mut().zip(data.chunks_exact(4)) {
                *m = i32::from_ne_bytes(bytes.try_into().expect("chunks of 4"));
            }
            // The matrix gives the counter-clockwise angle; NaN for a degenerate matrix.
            // SAFETY: av_display_rotation_get reads exactly the nine int32 of a display matrix,
            // which is what `matrix` is; it keeps no pointer to it.
            -unsafe { ffmpeg::ffi::av_display_rotation_get(matrix.as_ptr()) }
        })
    });
    let degrees = from_matrix
        .filter(|d| d.is_finite())
        .or_else(|| stream.metadata().get("rotate").and_then(|r| r.trim().parse::<f64>().ok()))
        .unwrap_or(0.0);
    let quarter_turns = (degrees / 90.0).round() as i64;
    (quarter_turns.rem_euclid(4) * 90) as i32
}
