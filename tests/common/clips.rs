//! Tiny synthetic video files for the video I/O tests, made here with ffmpeg-next (independently
//! of the encoder under test): a known number of frames at known timestamps, optionally a sine
//! audio track of known length, a display rotation, non-square pixels.

use std::path::Path;

use ffmpeg_next as ffmpeg;
use ffmpeg::{codec, format, software::scaling, util::frame, Rational};
use image::RgbImage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipVideo {
    /// libx264 yuv420p (even sizes only): for .mp4/.mov/.mkv.
    H264,
    /// FFV1 yuv444p (any size): for .mkv.
    Ffv1,
    /// ProRes 422 HQ (prores_ks, yuv422p10le, even widths): for .mov/.mkv.
    Prores,
}

/// Colour tags written on a clip; its Y'CbCr is made with this matrix and range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipColour {
    pub primaries: ffmpeg::color::Primaries,
    pub transfer: ffmpeg::color::TransferCharacteristic,
    pub matrix: ffmpeg::color::Space,
    pub range: ffmpeg::color::Range,
}

impl ClipColour {
    /// HD: BT.709 everything, limited range.
    pub fn bt709() -> ClipColour {
        use ffmpeg::color::*;
        ClipColour { primaries: Primaries::BT709, transfer: TransferCharacteristic::BT709, matrix: Space::BT709, range: Range::MPEG }
    }

    /// NTSC SD: SMPTE 170M (BT.601) everything, limited range.
    pub fn bt601() -> ClipColour {
        use ffmpeg::color::*;
        ClipColour {
            primaries: Primaries::SMPTE170M,
            transfer: TransferCharacteristic::SMPTE170M,
            matrix: Space::SMPTE170M,
            range: Range::MPEG,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipAudio {
    /// FFmpeg's AAC encoder, mono 48 kHz.
    Aac,
    /// 16-bit PCM, mono 48 kHz (mp4 cannot hold it; mkv, mov and wav can).
    Pcm,
}

#[derive(Debug, Clone)]
pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// Frames per second as a fraction; the video time base is its inverse.
    pub rate: (i32, i32),
    /// Explicit timestamps in milliseconds (time base 1/1000) instead of a constant rate.
    pub pts_ms: Option<Vec<i64>>,
    pub video: ClipVideo,
    /// An audio track of this codec and length in seconds.
    pub audio: Option<(ClipAudio, f64)>,
    /// Clockwise display rotation written as display-matrix side data.
    pub rotation: i32,
    /// Sample aspect ratio written on the stream and in the codec parameters.
    pub sar: Option<(i32, i32)>,
    /// Frame i's picture at a size: `picture(i, width, height)`.
    pub picture: fn(u32, u32, u32) -> RgbImage,
    /// Keyframe interval in frames (the encoder's default when `None`).
    pub gop: Option<u32>,
    /// Colour tags (none written, and BT.601 limited range used, when `None`).
    pub colour: Option<ClipColour>,
    /// A start timecode, written as the video stream's `timecode` tag (a tmcd track in mov/mp4).
    pub timecode: Option<&'static str>,
    /// Encoded as interlaced frames, top field first (H.264 only: x264's interlaced mode).
    pub interlaced: bool,
}

impl ClipSpec {
    pub fn new(width: u32, height: u32) -> ClipSpec {
        ClipSpec {
            width,
            height,
            frames: 12,
            rate: (25, 1),
            pts_ms: None,
            video: ClipVideo::H264,
            audio: None,
            rotation: 0,
            sar: None,
            picture: frame_image,
            gop: None,
            colour: None,
            timecode: None,
            interlaced: false,
        }
    }
}

pub const AUDIO_RATE: i32 = 48_000;

/// Frame `i` of a clip: a gradient that moves with `i`, with a red block in the top-left corner
/// (to see rotations) and a blue block in the bottom-right one.
pub fn frame_image(i: u32, width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        if x < width / 4 && y < height / 4 {
            image::Rgb([230, 20, 20])
        } else if x >= width - width / 4 && y >= height - height / 4 {
            image::Rgb([20, 20, 230])
        } else {
            let v = ((x * 255 / width.max(1) + 8 * i) % 256) as u8;
            image::Rgb([v, (y * 255 / height.max(1)) as u8, 128])
        }
    })
}

/// Writes a clip as `spec` says; the container comes from `path`'s extension.
pub fn make_clip(path: &Path, spec: &ClipSpec) {
    ffmpeg::init().unwrap();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error); // no x264 banners in test output
    let mut muxer = format::output(&path).expect("create clip");
    let global_header = muxer.format().flags().contains(format::Flags::GLOBAL_HEADER);

    let (name, pixel) = match spec.video {
        ClipVideo::H264 => ("libx264", format::Pixel::YUV420P),
        ClipVideo::Ffv1 => ("ffv1", format::Pixel::YUV444P),
        ClipVideo::Prores => ("prores_ks", format::Pixel::YUV422P10LE),
    };
    let video_time_base =
        if spec.pts_ms.is_some() { Rational::new(1, 1000) } else { Rational::new(spec.rate.1, spec.rate.0) };
    let video_codec = ffmpeg::encoder::find_by_name(name).expect("encoder");
    let mut video = codec::context::Context::new_with_codec(video_codec).encoder().video().unwrap();
    video.set_width(spec.width);
    video.set_height(spec.height);
    video.set_format(pixel);
    video.set_time_base(video_time_base);
    video.set_frame_rate(Some(Rational::new(spec.rate.0, spec.rate.1)));
    if let Some((n, d)) = spec.sar {
        video.set_aspect_ratio(Rational::new(n, d));
    }
    if let Some(gop) = spec.gop {
        video.set_gop(gop);
    }
    if let Some(colour) = spec.colour {
        video.set_colorspace(colour.matrix);
        video.set_color_range(colour.range);
        video.set_color_primaries(colour.primaries);
        video.set_color_transfer_characteristic(colour.transfer);
    }
    let mut flags = codec::Flags::empty();
    if global_header {
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    if spec.interlaced {
        flags |= codec::Flags::INTERLACED_DCT;
    }
    video.set_flags(flags);
    let mut options = ffmpeg::Dictionary::new();
    if spec.video == ClipVideo::H264 {
        options.set("preset", "ultrafast");
    }
    let mut video = video.open_as_with(video_codec, options).expect("open clip video encoder");
    let video_index = {
        let mut stream = muxer.add_stream(video_codec).unwrap();
        stream.set_parameters(&video);
        stream.set_time_base(video_time_base);
        stream.set_avg_frame_rate(Rational::new(spec.rate.0, spec.rate.1));
        if let Some(timecode) = spec.timecode {
            let mut metadata = ffmpeg::Dictionary::new();
            metadata.set("timecode", timecode);
            stream.set_metadata(metadata);
        }
        // SAFETY: `stream` belongs to the output context, which outlives this block; the pointer
        // is its AVStream, and only its sample aspect ratio field is written.
        unsafe {
            let s = stream.as_mut_ptr();
            if let Some((n, d)) = spec.sar {
                (*s).sample_aspect_ratio = Rational::new(n, d).into();
            }
            if spec.rotation != 0 {
                let matrix = ffmpeg::ffi::av_stream_new_side_data(
                    s,
                    ffmpeg::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                    36,
                );
                // Set takes the clockwise angle (get answers counter-clockwise).
                ffmpeg::ffi::av_display_rotation_set(matrix as *mut i32, spec.rotation as f64);
            }
        }
        stream.index()
    };

    let mut audio = spec.audio.map(|(kind, seconds)| {
        let codec = match kind {
            ClipAudio::Aac => ffmpeg::encoder::find_by_name("aac"),
            ClipAudio::Pcm => ffmpeg::encoder::find(codec::Id::PCM_S16LE),
        }
        .expect("audio encoder");
        let mut encoder = codec::context::Context::new_with_codec(codec).encoder().audio().unwrap();
        encoder.set_rate(AUDIO_RATE);
        encoder.set_channel_layout(ffmpeg::ChannelLayout::MONO);
        encoder.set_channels(1);
        encoder.set_format(match kind {
            ClipAudio::Aac => format::Sample::F32(format::sample::Type::Planar),
            ClipAudio::Pcm => format::Sample::I16(format::sample::Type::Packed),
        });
        encoder.set_bit_rate(64_000);
        encoder.set_time_base(Rational::new(1, AUDIO_RATE));
        if global_header {
            encoder.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = encoder.open_as(codec).expect("open clip audio encoder");
        let mut stream = muxer.add_stream(codec).unwrap();
        stream.set_parameters(&encoder);
        stream.set_time_base(Rational::new(1, AUDIO_RATE));
        (kind, (seconds * AUDIO_RATE as f64).round() as usize, encoder, stream.index())
    });

    muxer.write_header().expect("clip header");

    let mut converter = scaling::Context::get(
        format::Pixel::RGB24,
        spec.width,
        spec.height,
        pixel,
        spec.width,
        spec.height,
        if spec.colour.is_some() {
            scaling::Flags::BICUBIC | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INT
        } else {
            scaling::Flags::BICUBIC
        },
    )
    .unwrap();
    if let Some(colour) = spec.colour {
        // SAFETY: sws_getCoefficients returns pointers to libswscale's static tables; the
        // converter is a live SwsContext owned by `converter` for the call.
        unsafe {
            let rgb = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_DEFAULT);
            let yuv = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::AVColorSpace::from(colour.matrix) as i32);
            let full = (colour.range == ffmpeg::color::Range::JPEG) as i32;
            ffmpeg::ffi::sws_setColorspaceDetails(converter.as_mut_ptr(), rgb, 1, yuv, full, 0, 1 << 16, 1 << 16);
        }
    }
    let video_stream_tb = muxer.stream(video_index).unwrap().time_base();
    let mut rgb = frame::Video::new(format::Pixel::RGB24, spec.width, spec.height);
    let mut yuv = frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    let mut write_video = |video: &mut codec::encoder::video::Encoder, muxer: &mut format::context::Output| {
        while video.receive_packet(&mut packet).is_ok() {
            packet.set_stream(video_index);
            packet.rescale_ts(video_time_base, video_stream_tb);
            packet.write_interleaved(muxer).unwrap();
        }
    };
    for i in 0..spec.frames {
        let image = (spec.picture)(i, spec.width, spec.height);
        let stride = rgb.stride(0);
        let row = 3 * spec.width as usize;
        for y in 0..spec.height as usize {
            rgb.data_mut(0)[y * stride..y * stride + row].copy_from_slice(&image.as_raw()[y * row..(y + 1) * row]);
        }
        converter.run(&rgb, &mut yuv).unwrap();
        let pts = spec.pts_ms.as_ref().map_or(i as i64, |p| p[i as usize]);
        yuv.set_pts(Some(pts));
        if spec.interlaced {
            // SAFETY: `yuv` owns its AVFrame; two plain int fields are set.
            unsafe {
                (*yuv.as_mut_ptr()).interlaced_frame = 1;
                (*yuv.as_mut_ptr()).top_field_first = 1;
            }
        }
        if let Some(colour) = spec.colour {
            // prores_ks writes the frame's tags, not the encoder's.
            yuv.set_color_space(colour.matrix);
            yuv.set_color_range(colour.range);
            yuv.set_color_primaries(colour.primaries);
            yuv.set_color_transfer_characteristic(colour.transfer);
        }
        video.send_frame(&yuv).unwrap();
        write_video(&mut video, &mut muxer);
    }
    video.send_eof().unwrap();
    write_video(&mut video, &mut muxer);

    if let Some((kind, total, encoder, index)) = audio.as_mut() {
        let stream_tb = muxer.stream(*index).unwrap().time_base();
        let chunk = if encoder.frame_size() > 0 { encoder.frame_size() as usize } else { 1024 };
        let mut written = 0;
        let mut packet = ffmpeg::Packet::empty();
        let mut drain = |encoder: &mut codec::encoder::audio::Encoder, muxer: &mut format::context::Output| {
            while encoder.receive_packet(&mut packet).is_ok() {
                packet.set_stream(*index);
                packet.rescale_ts(Rational::new(1, AUDIO_RATE), stream_tb);
                packet.write_interleaved(muxer).unwrap();
            }
        };
        while written < *total {
            let n = chunk.min(*total - written);
            let mut samples = frame::Audio::new(encoder.format(), n, ffmpeg::ChannelLayout::MONO);
            samples.set_rate(AUDIO_RATE as u32);
            let sine = |k: usize| (2.0 * std::f32::consts::PI * 440.0 * (written + k) as f32 / AUDIO_RATE as f32).sin() * 0.5;
            match kind {
                ClipAudio::Aac => samples.plane_mut::<f32>(0)[..n].iter_mut().enumerate().for_each(|(k, s)| *s = sine(k)),
                ClipAudio::Pcm => samples.plane_mut::<i16>(0)[..n]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, s)| *s = (sine(k) * 32767.0) as i16),
            }
            samples.set_pts(Some(written as i64));
            encoder.send_frame(&samples).unwrap();
            drain(encoder, &mut muxer);
            written += n;
        }
        encoder.send_eof().unwrap();
        drain(encoder, &mut muxer);
    }
    muxer.write_trailer().expect("clip trailer");
}

/// An audio-only file: a silent mono 16-bit PCM track (for .wav).
pub fn make_audio_only(path: &Path, seconds: f64) {
    ffmpeg::init().unwrap();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error); // no x264 banners in test output
    let mut muxer = format::output(&path).expect("create audio file");
    let codec = ffmpeg::encoder::find(codec::Id::PCM_S16LE).unwrap();
    let mut encoder = codec::context::Context::new_with_codec(codec).encoder().audio().unwrap();
    encoder.set_rate(AUDIO_RATE);
    encoder.set_channel_layout(ffmpeg::ChannelLayout::MONO);
    encoder.set_channels(1);
    encoder.set_format(format::Sample::I16(format::sample::Type::Packed));
    encoder.set_time_base(Rational::new(1, AUDIO_RATE));
    let mut encoder = encoder.open_as(codec).unwrap();
    muxer.add_stream(codec).unwrap().set_parameters(&encoder);
    muxer.write_header().unwrap();
    let mut samples = frame::Audio::new(encoder.format(), (seconds * AUDIO_RATE as f64) as usize, ffmpeg::ChannelLayout::MONO);
    samples.set_rate(AUDIO_RATE as u32);
    samples.set_pts(Some(0));
    samples.plane_mut::<i16>(0).fill(0);
    encoder.send_frame(&samples).unwrap();
    encoder.send_eof().unwrap();
    let mut packet = ffmpeg::Packet::empty();
    let tb = muxer.stream(0).unwrap().time_base();
    while encoder.receive_packet(&mut packet).is_ok() {
        packet.set_stream(0);
        packet.rescale_ts(Rational::new(1, AUDIO_RATE), tb);
        packet.write_interleaved(&mut muxer).unwrap();
    }
    muxer.write_trailer().unwrap();
}

/// Damages the slice headers of the first `packets` video packets of an H.264 clip in MP4/MOV
/// (length-prefixed NAL units), in place: the bytes right after each slice's NAL header —
/// first_mb_in_slice, slice_type, the PPS id — are zeroed, which no valid slice header starts
/// with. Start codes, lengths and NAL headers stay intact, so the file still demuxes. Returns
/// the number of slices damaged.
pub fn damage_first_slices(path: &Path, packets: usize) -> usize {
    ffmpeg::init().unwrap();
    let mut input = format::input(&path).expect("open clip to damage");
    let video = input.streams().best(ffmpeg::media::Type::Video).expect("video stream").index();
    let mut slices = Vec::new(); // file offsets of the bytes to zero
    let mut seen = 0;
    let mut packet = ffmpeg::Packet::empty();
    while seen < packets && packet.read(&mut input).is_ok() {
        if packet.stream() != video {
            continue;
        }
        seen += 1;
        let position = usize::try_from(packet.position()).expect("packet position in the file");
        let data = packet.data().expect("packet data");
        // x264 in MP4 writes 4-byte big-endian NAL lengths (avcC lengthSizeMinusOne = 3).
        let mut at = 0;
        while at < data.len() {
            let length = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let nal = &data[at + 4..at + 4 + length];
            let nal_type = nal[0] & 0x1f;
            if nal_type == 1 || nal_type == 5 {
                let start = position + at + 4 + 1;
                slices.push(start..start + 4.min(length - 1));
            }
            at += 4 + length;
        }
        assert_eq!(at, data.len(), "NAL lengths do not add up to the packet");
    }
    drop(input);
    let mut bytes = std::fs::read(path).unwrap();
    for range in &slices {
        bytes[range.clone()].fill(0);
    }
    std::fs::write(path, bytes).unwrap();
    slices.len()
}
