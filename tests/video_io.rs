//! The video I/O layer against tiny synthetic clips: what the decoder reports and delivers
//! (counts, timestamps, geometry, ranges), what the encoder writes (round trips through each
//! codec, copied or re-encoded audio, cuts), and how both fail.

mod common;

use std::path::{Path, PathBuf};

use common::clips::{damage_first_slices, frame_image, make_audio_only, make_clip, ClipAudio, ClipSpec, ClipVideo};
use common::scratch_dir;
use stylize_video::media::video::{
    DecodeOptions, DecodedFrame, DecoderWarning, Deinterlace, EncodeOptions, EncodedInfo, FrameSize, StreamHandling, StreamKind, VideoCodec,
    VideoDecoder, VideoEncoder, VideoInfo,
};

fn decode_all(path: &Path, options: &DecodeOptions) -> (VideoInfo, Vec<DecodedFrame>) {
    let mut decoder = VideoDecoder::open(path, options).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        frames.push(frame);
    }
    assert_eq!(decoder.warnings(), 0, "{}: {:?}", path.display(), decoder.warning_kinds());
    assert!(decoder.warning_kinds().is_empty());
    (decoder.info().clone(), frames)
}

/// Decodes `source` and encodes every frame to `output`.
fn transcode(source: &Path, output: &Path, decode: &DecodeOptions, encode: &EncodeOptions) -> (Vec<DecodedFrame>, EncodedInfo) {
    let mut decoder = VideoDecoder::open(source, decode).unwrap();
    let mut encoder = VideoEncoder::create(output, decoder.info(), encode).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        encoder.write_frame(&frame.image, frame.pts).unwrap();
        frames.push(frame);
    }
    (frames, encoder.finish().unwrap())
}

fn times(frames: &[DecodedFrame]) -> Vec<f64> {
    frames.iter().map(|f| f.pts_seconds).collect()
}

fn assert_times(actual: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= tolerance, "{actual:?} vs {expected:?}");
    }
}

fn constant_rate(frames: usize, num: i32, den: i32) -> Vec<f64> {
    (0..frames).map(|i| i as f64 * den as f64 / num as f64).collect()
}

fn audio_of(info: &VideoInfo) -> Option<&stylize_video::media::video::StreamInfo> {
    info.other_streams.iter().find(|s| s.kind == StreamKind::Audio)
}

/// The file's audio stream is AAC and lasts `seconds`, give or take `tolerance`.
fn assert_aac_audio(info: &VideoInfo, seconds: f64, tolerance: f64) {
    let audio = audio_of(info).expect("an audio stream");
    assert_eq!(audio.codec, "aac");
    let duration = audio.duration_seconds.expect("audio duration");
    assert!((duration - seconds).abs() <= tolerance, "audio lasts {duration} s, expected {seconds} s");
}

fn clip_with_audio(dir: &Path) -> PathBuf {
    let path = dir.join("with_audio.mp4");
    make_clip(&path, &ClipSpec { audio: Some((ClipAudio::Aac, 0.48)), ..ClipSpec::new(64, 48) });
    path
}

/// Makes `source` (63×47 FFV1 at 30000/1001 fps) and transcodes it to `output` with `codec`.
fn odd_ntsc_round_trip(source: &Path, output: &Path, codec: VideoCodec) -> (Vec<DecodedFrame>, EncodedInfo) {
    make_clip(source, &ClipSpec { rate: (30000, 1001), video: ClipVideo::Ffv1, ..ClipSpec::new(63, 47) });
    let encode = EncodeOptions { codec, ..Default::default() };
    transcode(source, output, &DecodeOptions::default(), &encode)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn decodes_a_25_fps_clip_with_its_timestamps_and_size() {
    let dir = scratch_dir("video_decode_25");
    let path = dir.join("clip.mp4");
    make_clip(&path, &ClipSpec::new(64, 48));
    let (info, frames) = decode_all(&path, &DecodeOptions::default());

    assert_eq!((info.width, info.height, info.coded_width, info.coded_height), (64, 48, 64, 48));
    assert_eq!(info.frame_rate, (25, 1));
    assert_eq!(info.rotation, 0);
    assert_eq!(info.sample_aspect_ratio, (1, 1));
    assert_eq!(info.frame_count, Some(12));
    assert_eq!(info.codec, "h264");
    assert!(info.container.contains("mp4"), "{}", info.container);
    assert!((info.duration_seconds.unwrap() - 0.48).abs() < 1e-3, "{:?}", info.duration_seconds);
    assert!(info.other_streams.is_empty());

    assert_eq!(frames.iter().map(|f| f.index).collect::<Vec<_>>(), (0..12).collect::<Vec<_>>());
    assert_times(&times(&frames), &constant_rate(12, 25, 1), 1e-9);
    // pts are in the stream's time base: i / 25 s exactly.
    let (tb_num, tb_den) = info.time_base;
    for f in &frames {
        assert_eq!(f.pts * tb_num as i64 * 25, f.index as i64 * tb_den as i64);
        assert_eq!(f.image.dimensions(), (64, 48));
    }
    // The picture is the one encoded: red top-left block, blue bottom-right one.
    let top_left = frames[3].image.get_pixel(4, 4).0;
    let bottom_right = frames[3].image.get_pixel(60, 44).0;
    assert!(top_left[0] > 180 && top_left[2] < 70, "{top_left:?}");
    assert!(bottom_right[2] > 180 && bottom_right[0] < 70, "{bottom_right:?}");
}

#[test]
fn decodes_an_odd_sized_ntsc_rate_clip() {
    let dir = scratch_dir("video_decode_ntsc");
    let path = dir.join("odd.mkv");
    make_clip(&path, &ClipSpec { rate: (30000, 1001), video: ClipVideo::Ffv1, ..ClipSpec::new(63, 47) });
    let (info, frames) = decode_all(&path, &DecodeOptions::default());
    assert_eq!((info.width, info.height), (63, 47));
    assert_eq!(info.frame_rate, (30000, 1001));
    assert_eq!(info.codec, "ffv1");
    assert_eq!(frames.len(), 12);
    // Matroska keeps milliseconds.
    assert_times(&times(&frames), &constant_rate(12, 30000, 1001), 0.0006);
    assert!(frames.iter().all(|f| f.image.dimensions() == (63, 47)));
}

#[test]
fn applies_the_display_rotation() {
    let dir = scratch_dir("video_decode_rotation");
    let path = dir.join("rotated.mp4");
    make_clip(&path, &ClipSpec { rotation: 90, ..ClipSpec::new(64, 48) });
    let (info, frames) = decode_all(&path, &DecodeOptions::default());
    assert_eq!(info.rotation, 90);
    assert_eq!((info.coded_width, info.coded_height), (64, 48));
    assert_eq!((info.width, info.height), (48, 64));
    assert_eq!(frames.len(), 12);
    let image = &frames[0].image;
    assert_eq!(image.dimensions(), (48, 64));
    // Turned a quarter clockwise: the red top-left block is now top-right, blue bottom-left.
    let red = image.get_pixel(44, 4).0;
    let blue = image.get_pixel(4, 60).0;
    assert!(red[0] > 180 && red[2] < 70, "{red:?}");
    assert!(blue[2] > 180 && blue[0] < 70, "{blue:?}");

    let mut small = VideoDecoder::open(&path, &DecodeOptions { size: FrameSize::LongestSide(32), ..Default::default() }).unwrap();
    assert_eq!(small.next_frame().unwrap().unwrap().image.dimensions(), (24, 32));
}

#[test]
fn makes_non_square_pixels_square_and_scales_on_request() {
    let dir = scratch_dir("video_decode_sar");
    let path = dir.join("anamorphic.mkv");
    make_clip(&path, &ClipSpec { sar: Some((2, 1)), video: ClipVideo::Ffv1, ..ClipSpec::new(32, 48) });
    let (info, frames) = decode_all(&path, &DecodeOptions::default());
    assert_eq!(info.sample_aspect_ratio, (2, 1));
    assert_eq!((info.coded_width, info.coded_height), (32, 48));
    assert_eq!((info.width, info.height), (64, 48));
    assert_eq!(frames[0].image.dimensions(), (64, 48));

    let longest = DecodeOptions { size: FrameSize::LongestSide(32), ..Default::default() };
    let (_, frames) = decode_all(&path, &longest);
    assert_eq!(frames[0].image.dimensions(), (32, 24));
    let exact = DecodeOptions { size: FrameSize::Exact(20, 10), ..Default::default() };
    let (_, frames) = decode_all(&path, &exact);
    assert_eq!(frames.len(), 12);
    assert_eq!(frames[0].image.dimensions(), (20, 10));
}

#[test]
fn keeps_variable_frame_timestamps() {
    let dir = scratch_dir("video_decode_vfr");
    let path = dir.join("vfr.mkv");
    let pts_ms = vec![0, 40, 80, 200, 240, 400, 410, 500];
    make_clip(&path, &ClipSpec { frames: 8, pts_ms: Some(pts_ms.clone()), video: ClipVideo::Ffv1, ..ClipSpec::new(32, 24) });
    let (info, frames) = decode_all(&path, &DecodeOptions::default());
    let expected: Vec<f64> = pts_ms.iter().map(|&ms| ms as f64 / 1000.0).collect();
    assert_times(&times(&frames), &expected, 1e-9);
    assert_eq!(info.time_base, (1, 1000));
    assert_eq!(frames.iter().map(|f| f.pts).collect::<Vec<_>>(), pts_ms);
}

#[test]
fn cuts_to_start_and_duration_and_caps_the_count() {
    let dir = scratch_dir("video_decode_range");
    let path = dir.join("clip.mp4");
    make_clip(&path, &ClipSpec::new(64, 48));
    let range = DecodeOptions { start: Some(0.2), duration: Some(0.2), ..Default::default() };
    let (_, frames) = decode_all(&path, &range);
    assert_times(&times(&frames), &[0.2, 0.24, 0.28, 0.32, 0.36], 1e-9);
    assert_eq!(frames[0].index, 0);

    let capped = DecodeOptions { start: Some(0.1), max_frames: Some(3), ..Default::default() };
    let (_, frames) = decode_all(&path, &capped);
    assert_times(&times(&frames), &[0.12, 0.16, 0.2], 1e-9);
}

#[test]
fn decoder_errors_name_the_file_and_the_problem() {
    let dir = scratch_dir("video_decode_errors");
    let message = |path: &Path, options: &DecodeOptions| -> String {
        let result = VideoDecoder::open(path, options).and_then(|mut d| {
            while d.next_frame()?.is_some() {}
            Ok(())
        });
        let message = result.expect_err("should fail").to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!message.contains('\n'), "{message}");
        message
    };
    let default = DecodeOptions::default();

    assert!(message(&dir.join("missing.mp4"), &default).contains("file not found"));

    let text = dir.join("notes.mp4");
    std::fs::write(&text, "these are notes, not a video\n".repeat(20)).unwrap();
    assert!(message(&text, &default).contains("not a video FFmpeg can read"));

    let audio = dir.join("sound.wav");
    make_audio_only(&audio, 0.2);
    assert!(message(&audio, &default).contains("has no video stream"));

    // AVI keeps a video stream with no frames (MP4 drops the empty track, Matroska writes a broken file).
    let empty = dir.join("empty.avi");
    make_clip(&empty, &ClipSpec { frames: 0, video: ClipVideo::Ffv1, ..ClipSpec::new(32, 24) });
    let empty_message = message(&empty, &default);
    assert!(empty_message.contains("contains no video frames"), "{empty_message}");

    let clip = dir.join("clip.mp4");
    make_clip(&clip, &ClipSpec::new(32, 24));
    let late = DecodeOptions { start: Some(5.0), ..Default::default() };
    assert!(message(&clip, &late).contains("no video frames in the requested range"));
}

#[test]
fn h264_mp4_round_trip_keeps_frames_times_and_copies_the_audio() {
    let dir = scratch_dir("video_roundtrip_h264");
    let source = clip_with_audio(&dir);
    let output = dir.join("out.mp4");
    let (frames, written) = transcode(&source, &output, &DecodeOptions::default(), &EncodeOptions::default());
    assert_eq!(written.frames_written, 12);
    assert_eq!((written.width, written.height), (64, 48));
    assert_eq!(written.streams[0].codec, "h264");
    assert_eq!(written.streams[1].kind, StreamKind::Audio);
    assert_eq!(written.streams[1].codec, "aac");
    assert_eq!(written.streams[1].handling, StreamHandling::Copied);

    let source_info = VideoDecoder::open(&source, &DecodeOptions::default()).unwrap().info().clone();
    let (info, again) = decode_all(&output, &DecodeOptions::default());
    assert_eq!(again.len(), 12);
    assert_eq!(info.frame_rate, (25, 1));
    assert_times(&times(&again), &times(&frames), 1e-9);
    assert!((info.duration_seconds.unwrap() - 0.48).abs() <= 0.04, "{:?}", info.duration_seconds);
    // Copied packet for packet: the same duration as the source's audio, to the sample.
    assert_aac_audio(&info, audio_of(&source_info).unwrap().duration_seconds.unwrap(), 1e-6);
    assert!(files_in(&dir).iter().all(|n| !n.contains("partial")), "{:?}", files_in(&dir));
}

#[test]
fn ffv1_mkv_round_trip_is_lossless() {
    let dir = scratch_dir("video_roundtrip_ffv1");
    let output = dir.join("out.mkv");
    let (frames, written) = odd_ntsc_round_trip(&dir.join("source.mkv"), &output, VideoCodec::Ffv1);
    assert_eq!((written.width, written.height), (63, 47), "FFV1 keeps odd sizes");
    let (info, again) = decode_all(&output, &DecodeOptions::default());
    assert_eq!(info.frame_rate, (30000, 1001));
    assert_eq!(info.codec, "ffv1");
    assert_times(&times(&again), &times(&frames), 1e-9);
    for (a, b) in frames.iter().zip(&again) {
        assert!(a.image == b.image, "frame {} differs", a.index);
    }
}

#[test]
fn prores_mov_round_trip_pads_odd_width() {
    let dir = scratch_dir("video_roundtrip_prores");
    // In .mov the source keeps exact 1001/30000 s timestamps (Matroska would round to ms).
    let output = dir.join("out.mov");
    let (frames, written) = odd_ntsc_round_trip(&dir.join("source.mov"), &output, VideoCodec::ProresKs);
    assert_eq!((written.width, written.height), (64, 47));
    assert!(written.notes.iter().any(|n| n.contains("padded")), "{:?}", written.notes);
    let (info, again) = decode_all(&output, &DecodeOptions::default());
    assert_eq!(info.codec, "prores");
    assert_eq!((info.width, info.height), (64, 47));
    assert_eq!(info.frame_rate, (30000, 1001));
    assert_times(&times(&again), &times(&frames), 1e-6);
    let duration = info.duration_seconds.unwrap();
    assert!((duration - 12.0 * 1001.0 / 30000.0).abs() <= 1001.0 / 30000.0, "{duration}");
    // The padding column repeats the last one.
    let image = &again[5].image;
    for y in [5, 20, 40] {
        let (a, b) = (image.get_pixel(62, y).0, image.get_pixel(63, y).0);
        assert!(a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6), "{a:?} vs {b:?}");
    }
}

#[test]
fn other_streams_are_left_out_on_request() {
    let dir = scratch_dir("video_no_copy");
    let source = clip_with_audio(&dir);
    let output = dir.join("silent.mkv");
    let encode = EncodeOptions { copy_other_streams: false, ..Default::default() };
    let (_, written) = transcode(&source, &output, &DecodeOptions::default(), &encode);
    assert_eq!(written.streams.len(), 1);
    let (info, again) = decode_all(&output, &DecodeOptions::default());
    assert_eq!(again.len(), 12);
    assert!(info.other_streams.is_empty(), "{:?}", info.other_streams);
}

#[test]
fn a_cut_cuts_the_copied_audio_too() {
    let dir = scratch_dir("video_cut");
    let source = clip_with_audio(&dir);
    let output = dir.join("cut.mp4");
    let decode = DecodeOptions { start: Some(0.2), duration: Some(0.2), ..Default::default() };
    let encode = EncodeOptions { start: decode.start, duration: decode.duration, ..Default::default() };
    let (frames, _) = transcode(&source, &output, &decode, &encode);
    assert_eq!(frames.len(), 5);
    let (info, again) = decode_all(&output, &DecodeOptions::default());
    assert_times(&times(&again), &constant_rate(5, 25, 1), 1e-9);
    // Whole AAC packets (1024 samples, 21.3 ms) are kept: the cut is exact to within one.
    assert_aac_audio(&info, 0.2, 0.022);
}

#[test]
fn audio_the_container_refuses_is_reencoded_to_aac() {
    let dir = scratch_dir("video_reencode_audio");
    let source = dir.join("pcm.mkv");
    make_clip(&source, &ClipSpec { audio: Some((ClipAudio::Pcm, 0.48)), ..ClipSpec::new(64, 48) });
    let output = dir.join("out.mp4");
    let (_, written) = transcode(&source, &output, &DecodeOptions::default(), &EncodeOptions::default());
    assert_eq!(written.streams[1].handling, StreamHandling::Reencoded { from: "pcm_s16le".into() });
    assert!(written.notes.iter().any(|n| n.contains("re-encoded to AAC")), "{:?}", written.notes);
    let (info, again) = decode_all(&output, &DecodeOptions::default());
    assert_eq!(again.len(), 12);
    assert_aac_audio(&info, 0.48, 0.022);
}

#[test]
fn encoder_errors_leave_no_file_behind() {
    let dir = scratch_dir("video_encode_errors");
    let source = dir.join("clip.mp4");
    make_clip(&source, &ClipSpec::new(32, 24));
    let info = VideoDecoder::open(&source, &DecodeOptions::default()).unwrap().info().clone();
    let before = files_in(&dir);

    let ffv1_mp4 = dir.join("lossless.mp4");
    let ffv1 = EncodeOptions { codec: VideoCodec::Ffv1, ..Default::default() };
    let message = VideoEncoder::create(&ffv1_mp4, &info, &ffv1).err().unwrap().to_string();
    assert!(message.contains(&ffv1_mp4.display().to_string()) && message.contains("cannot hold ffv1"), "{message}");

    let unknown = dir.join("out.xyz");
    let message = VideoEncoder::create(&unknown, &info, &EncodeOptions::default()).err().unwrap().to_string();
    assert!(message.contains("out.xyz") && message.contains("container"), "{message}");

    let missing_dir = dir.join("nowhere/out.mp4");
    let message = VideoEncoder::create(&missing_dir, &info, &EncodeOptions::default()).err().unwrap().to_string();
    assert!(message.contains("does not exist"), "{message}");

    // Dropped unfinished: the temporary file goes too.
    let output = dir.join("dropped.mp4");
    let mut encoder = VideoEncoder::create(&output, &info, &EncodeOptions::default()).unwrap();
    encoder.write_frame(&frame_image(0, 32, 24), 0).unwrap();
    drop(encoder);

    // Timestamps that do not increase, and a size change, are errors that close the file.
    let output = dir.join("bad.mp4");
    let mut encoder = VideoEncoder::create(&output, &info, &EncodeOptions::default()).unwrap();
    encoder.write_frame(&frame_image(0, 32, 24), 512).unwrap();
    let message = encoder.write_frame(&frame_image(1, 32, 24), 512).unwrap_err().to_string();
    assert!(message.contains("bad.mp4") && message.contains("increase"), "{message}");
    let message = encoder.write_frame(&frame_image(1, 30, 24), 1024).unwrap_err().to_string();
    assert!(message.contains("30×24"), "{message}");
    assert!(encoder.finish().is_err());

    // Nothing written at all.
    let empty = dir.join("empty.mkv");
    let encoder = VideoEncoder::create(&empty, &info, &EncodeOptions::default()).unwrap();
    assert!(encoder.finish().unwrap_err().to_string().contains("no frames"));

    assert_eq!(files_in(&dir), before);
}

/// Every frame of `path`, with the decoder's problem count and kinds at the end.
fn decode_counting(path: &Path) -> (Vec<DecodedFrame>, usize, Vec<DecoderWarning>) {
    let mut decoder = VideoDecoder::open(path, &DecodeOptions::default()).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        frames.push(frame);
    }
    (frames, decoder.warnings(), decoder.warning_kinds())
}

/// A 12-frame H.264 MP4 with a keyframe every 4 frames; with `damaged` > 0, the slice headers
/// of its first `damaged` packets zeroed. Returns the number of slices damaged.
fn gop4_clip(path: &Path, damaged: usize) -> usize {
    make_clip(path, &ClipSpec { gop: Some(4), ..ClipSpec::new(64, 48) });
    if damaged == 0 { 0 } else { damage_first_slices(path, damaged) }
}

#[test]
fn damaged_first_slices_are_counted_by_what_ffmpeg_says() {
    let dir = scratch_dir("video_decode_damaged");
    let path = dir.join("damaged.mp4");
    assert_eq!(gop4_clip(&path, 3), 3);
    let (frames, warnings, kinds) = decode_counting(&path);

    // The first group of pictures is lost; the decoder resumes at the next keyframe (frame 4).
    assert_times(&times(&frames), &[0.16, 0.2, 0.24, 0.28, 0.32, 0.36, 0.4, 0.44], 1e-9);
    assert!(warnings > 0, "{kinds:?}");
    assert_eq!(warnings, kinds.iter().map(|k| k.count).sum::<usize>(), "{kinds:?}");
    // What FFmpeg's h264 decoder logs (from its frame threads) for each bad slice header.
    let header = kinds.iter().find(|k| k.message == "decode_slice_header error").unwrap_or_else(|| panic!("{kinds:?}"));
    assert_eq!(header.count, 3, "{kinds:?}");
    assert!(kinds.iter().any(|k| k.message == "no frame!"), "{kinds:?}");
    // And what the API returned, under its own kind.
    assert!(kinds.iter().any(|k| k.message.starts_with("packet rejected by the decoder: ")), "{kinds:?}");
    // Most frequent first; numbers written as N ("deblocking_filter_idc N out of range").
    assert!(kinds.windows(2).all(|w| w[0].count >= w[1].count), "{kinds:?}");
    assert!(kinds.iter().all(|k| !k.message.split(' ').any(|w| w.parse::<i64>().is_ok())), "{kinds:?}");

    let clean = dir.join("clean.mp4");
    gop4_clip(&clean, 0);
    let (frames, warnings, kinds) = decode_counting(&clean);
    assert_eq!(frames.len(), 12);
    assert_eq!(warnings, 0, "{kinds:?}");
    assert!(kinds.is_empty(), "{kinds:?}");
}

#[test]
fn ffmpeg_messages_reach_only_the_decoder_they_are_about() {
    let dir = scratch_dir("video_decode_damaged_routing");
    let damaged = dir.join("damaged.mp4");
    gop4_clip(&damaged, 3);
    let clean = dir.join("clean.mp4");
    gop4_clip(&clean, 0);
    let (_, alone, alone_kinds) = decode_counting(&damaged);

    // Two decoders open at once on one thread, frames taken in turn.
    let mut bad = VideoDecoder::open(&damaged, &DecodeOptions::default()).unwrap();
    let mut good = VideoDecoder::open(&clean, &DecodeOptions::default()).unwrap();
    let (mut bad_done, mut good_done) = (false, false);
    while !(bad_done && good_done) {
        bad_done = bad_done || bad.next_frame().unwrap().is_none();
        good_done = good_done || good.next_frame().unwrap().is_none();
    }
    assert_eq!(good.warnings(), 0, "{:?}", good.warning_kinds());
    assert_eq!(bad.warnings(), alone);
    assert_eq!(bad.warning_kinds(), alone_kinds);
    drop((bad, good));

    // Several decoders on their own threads, each with FFmpeg's frame threads under it.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let path = if i % 2 == 0 { damaged.clone() } else { clean.clone() };
            std::thread::spawn(move || decode_counting(&path))
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let (_, warnings, kinds) = handle.join().unwrap();
        if i % 2 == 0 {
            assert_eq!((warnings, &kinds), (alone, &alone_kinds));
        } else {
            assert_eq!(warnings, 0, "{kinds:?}");
        }
    }
}

/// An interlaced clip whose two fields were taken half a frame apart: a bright bar moving 6 px
/// a frame, 3 px further right on the odd rows (the later field).
fn combed(i: u32, width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let left = 8 + 6 * i + 3 * (y % 2);
        let v = if (left..left + 10).contains(&x) { 220 } else { 40 };
        image::Rgb([v, v, v])
    })
}

/// Mean |row y − mean of rows y−1 and y+1| over a frame's green channel: the combing of its
/// moving edges (0 for a picture smooth from row to row).
fn combing(image: &image::RgbImage) -> f64 {
    let (w, h) = image.dimensions();
    let g = |x: u32, y: u32| image.get_pixel(x, y)[1] as f64;
    let terms: Vec<f64> = (1..h - 1).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| (g(x, y) - (g(x, y - 1) + g(x, y + 1)) / 2.0).abs()).collect();
    terms.iter().sum::<f64>() / terms.len() as f64
}

#[test]
fn interlaced_frames_are_rebuilt_from_their_fields_one_frame_per_frame() {
    let dir = scratch_dir("video-io-deinterlace");
    let path = dir.join("combed.mp4");
    make_clip(&path, &ClipSpec { frames: 8, interlaced: true, picture: combed, ..ClipSpec::new(64, 48) });
    let read = |deinterlace: Deinterlace| {
        let options = DecodeOptions { size: FrameSize::Exact(64, 48), deinterlace, ..Default::default() };
        let mut decoder = VideoDecoder::open(&path, &options).unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
        (frames, decoder.notes(), decoder.info().clone())
    };
    let (raw, raw_notes, info) = read(Deinterlace::Off);
    let (rebuilt, notes, _) = read(Deinterlace::Frame);
    assert!(info.interlaced, "the stream's field order says so");
    assert!(!notes.frame_per_field);
    assert_eq!((raw_notes.interlaced_frames, raw_notes.deinterlaced_frames), (8, 0));
    assert_eq!((notes.interlaced_frames, notes.deinterlaced_frames), (0, 8));
    // One frame out per frame in, each at its own time (the filter's look-ahead is flushed).
    let times = |frames: &[DecodedFrame]| frames.iter().map(|f| (f.index, f.pts)).collect::<Vec<_>>();
    assert_eq!(times(&rebuilt), times(&raw));
    assert_eq!(rebuilt.len(), 8);
    // The combs are gone from the moving bar's edges.
    let mean = |frames: &[DecodedFrame]| frames.iter().map(|f| combing(&f.image)).sum::<f64>() / frames.len() as f64;
    let (before, after) = (mean(&raw), mean(&rebuilt));
    eprintln!("combing: {before:.2} as decoded, {after:.2} deinterlaced");
    assert!(before > 5.0 && after < 0.4 * before, "combing {before:.2} as decoded, {after:.2} deinterlaced");
    // One frame per field: twice the frames at twice the rate, each pair at its frame's time
    // and half a frame (256 of 1/12800 s at 25 fps) later.
    let (fields, field_notes, field_info) = read(Deinterlace::Field);
    assert_eq!((field_info.frame_rate, field_info.frame_count), ((50, 1), Some(16)));
    assert_eq!((field_notes.deinterlaced_frames, field_notes.frame_per_field), (8, true));
    let expected: Vec<(u64, i64)> = raw.iter().flat_map(|f| [(2 * f.index, f.pts), (2 * f.index + 1, f.pts + 256)]).collect();
    assert_eq!(times(&fields), expected);
    assert!(mean(&fields) < 0.4 * before, "combing {:.2} per field", mean(&fields));
    // …and the bar is still there: 10 of 64 columns bright in every frame.
    for frame in rebuilt.iter().chain(&fields) {
        let bright = frame.image.pixels().filter(|p| p[1] > 130).count() as f64 / (64.0 * 48.0);
        assert!((0.12..0.22).contains(&bright), "frame {}: {bright:.3} of the pixels bright", frame.index);
    }
}

/// Interlaced pictures that change shape mid-stream (two TS clips joined): the frames the first
/// shape's filter still holds come out before the second shape's, every frame once, in order.
#[test]
fn interlaced_frames_that_change_shape_all_come_out_in_order() {
    let dir = scratch_dir("video-io-deinterlace-reshape");
    let (a, b, joined) = (dir.join("a.ts"), dir.join("b.ts"), dir.join("joined.ts"));
    make_clip(&a, &ClipSpec { frames: 4, interlaced: true, picture: combed, ..ClipSpec::new(64, 48) });
    make_clip(&b, &ClipSpec { frames: 3, interlaced: true, picture: combed, ..ClipSpec::new(48, 48) });
    std::fs::write(&joined, [std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()].concat()).unwrap();
    let mut decoder = VideoDecoder::open(&joined, &DecodeOptions { size: FrameSize::Exact(64, 48), ..Default::default() }).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        frames.push(frame);
    }
    let notes = decoder.notes();
    assert_eq!((frames.len(), notes.deinterlaced_frames, notes.reshaped_frames), (7, 7, 3));
    assert!(frames.windows(2).all(|w| w[1].pts > w[0].pts), "{:?}", frames.iter().map(|f| f.pts).collect::<Vec<_>>());
    assert!(frames.iter().all(|f| combing(&f.image) < 5.0), "every frame deinterlaced");
}

