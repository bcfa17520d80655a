//! The exact round trip: with no stylization (every frame starts from its own content and is not
//! optimised) at the source's size, the pipeline must give back the source: its pixels (PSNR per
//! codec), frame count, timestamps, colour tags, bit depth and timecode. This is what proves the
//! pipeline never shifts colours (BT.601 vs BT.709, limited vs full range), sizes or time.
//!
//! Clips are made here with ffmpeg-next (tests/common/clips.rs), tagged as an editor's export
//! would be.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::clips::{frame_image, make_clip, ClipColour, ClipSpec, ClipVideo};
use common::decode_all;
use ffmpeg_next::color::{Primaries, Range, Space, TransferCharacteristic};
use image::RgbImage;
use stylize_video::jobs::pipeline::{run_video, OutputSize, VideoJob, VideoReport};
use stylize_video::media::video::{Colour, VideoCodec, VideoInfo};
use stylize_video::motion::temporal::VideoInit;
use stylize_video::progress::NoProgress;

fn db(mse: f64) -> f64 {
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// Peak signal-to-noise ratio of `b` against `a` over all RGB samples, in dB (8-bit peak).
fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "frame sizes differ");
    db(a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.as_raw().len() as f64)
}

/// PSNR the way video is usually scored (FFmpeg's psnr filter on 4:2:0): over the Y', Cb and
/// Cr planes, their squared errors weighted 4:1:1, 8-bit peak. The planes are made from the
/// decoded RGB with the source's matrix (full-range scale), so clips of different pixel
/// formats, rotations and pixel shapes compare in display geometry.
fn video_psnr(a: &RgbImage, b: &RgbImage, matrix: Space) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "frame sizes differ");
    let (kr, kb) = match matrix {
        Space::BT709 => (0.2126, 0.0722),
        Space::BT2020NCL | Space::BT2020CL => (0.2627, 0.0593),
        _ => (0.299, 0.114),
    };
    let ycbcr = |p: &image::Rgb<u8>| {
        let [r, g, b] = p.0.map(f64::from);
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        [y, (b - y) / (2.0 * (1.0 - kb)), (r - y) / (2.0 * (1.0 - kr))]
    };
    let mut mse = [0.0; 3];
    for (p, q) in a.pixels().zip(b.pixels()) {
        let (p, q) = (ycbcr(p), ycbcr(q));
        for c in 0..3 {
            mse[c] += (p[c] - q[c]).powi(2);
        }
    }
    let n = (a.width() * a.height()) as f64;
    db((4.0 * mse[0] + mse[1] + mse[2]) / (6.0 * n))
}

/// The pass-through job: `--init-video content --iterations 0 --first-iterations 0 --size
/// <longest side> --output-size source`.
fn pass_through(input: &Path, output: &Path, codec: VideoCodec, longest_side: u32, start: Option<f64>) -> VideoReport {
    let job = VideoJob {
        size: longest_side,
        output_size: OutputSize::Source,
        first_iterations: 0,
        iterations: 0,
        max_iterations: None,
        init_video: VideoInit::Content,
        codec,
        start,
        ..VideoJob::with_defaults(input.to_path_buf(), common::repo_path("samples/starry_night.jpg"), output.to_path_buf())
    };
    run_video(&job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

/// The mean colour of a square of `side` pixels around (x, y).
fn mean_colour(image: &RgbImage, x: u32, y: u32, side: u32) -> [f64; 3] {
    let mut sum = [0.0; 3];
    for j in y - side / 2..y - side / 2 + side {
        for i in x - side / 2..x - side / 2 + side {
            for (s, v) in sum.iter_mut().zip(image.get_pixel(i, j).0) {
                *s += v as f64;
            }
        }
    }
    sum.map(|s| s / (side * side) as f64)
}

/// Asserts that the red block of `frame_image` (top-left quarter) decodes as the RGB it was
/// made from: a decoder using the wrong matrix or range shifts it by tens of levels.
fn assert_red_block(image: &RgbImage, what: &str) {
    let (w, h) = image.dimensions();
    let colour = mean_colour(image, w / 8, h / 8, (w / 8).min(h / 8).max(2));
    for (c, expected) in colour.iter().zip([230.0, 20.0, 20.0]) {
        assert!((c - expected).abs() <= 4.0, "{what}: red block decodes as {colour:?} in a {w}×{h} frame, made as [230, 20, 20]");
    }
}

struct Case {
    name: &'static str,
    spec: ClipSpec,
    extension: &'static str,
    codec: VideoCodec,
    extension_out: &'static str,
    min_psnr: f64,
}

/// Runs the pass-through on `case` and checks pixels, frames, timestamps and tags; returns the
/// worst frame's PSNR and the report.
fn round_trip(case: &Case) -> (f64, VideoInfo, VideoInfo, VideoReport) {
    let dir = common::scratch_dir(&format!("roundtrip-{}", case.name));
    let input = dir.join(format!("source.{}", case.extension));
    let output: PathBuf = dir.join(format!("out.{}", case.extension_out));
    make_clip(&input, &case.spec);
    let (in_info, in_frames) = decode_all(&input);
    let report = pass_through(&input, &output, case.codec, in_info.width.max(in_info.height), None);
    let (out_info, out_frames) = decode_all(&output);

    assert_eq!((out_info.width, out_info.height), (in_info.width, in_info.height), "{}: display size", case.name);
    assert_eq!(out_frames.len(), in_frames.len(), "{}: frame count", case.name);
    assert_eq!(out_frames.len(), case.spec.frames as usize);
    for (a, b) in in_frames.iter().zip(&out_frames) {
        assert!((a.pts_seconds - b.pts_seconds).abs() < 1e-3, "{}: frame {} at {} s, was {} s", case.name, a.index, b.pts_seconds, a.pts_seconds);
    }
    let matrix = in_info.colour.conversion_matrix(in_info.coded_width, in_info.coded_height);
    let worst = in_frames.iter().zip(&out_frames).map(|(a, b)| video_psnr(&a.image, &b.image, matrix)).fold(f64::INFINITY, f64::min);
    let worst_rgb = in_frames.iter().zip(&out_frames).map(|(a, b)| psnr(&a.image, &b.image)).fold(f64::INFINITY, f64::min);
    eprintln!(
        "{}: {} → {}: worst frame PSNR {worst:.1} dB (Y'CbCr 4:1:1), {worst_rgb:.1} dB (RGB)",
        case.name, in_info.pixel_format, out_info.pixel_format
    );
    assert!(worst >= case.min_psnr, "{}: PSNR {worst:.1} dB < {} dB", case.name, case.min_psnr);
    (worst, in_info, out_info, report)
}

fn hd709(video: ClipVideo) -> ClipSpec {
    ClipSpec { frames: 6, video, colour: Some(ClipColour::bt709()), ..ClipSpec::new(96, 64) }
}

/// A source with the output's chroma layout (H.264 4:2:0, ProRes 4:2:2 10-bit), and a 4:4:4
/// FFV1 one for FFV1 (RGB): the round trip should lose nothing the codec itself does not.
fn source_for(codec: VideoCodec) -> (ClipVideo, &'static str) {
    match codec {
        VideoCodec::H264 { .. } => (ClipVideo::H264, "mp4"),
        VideoCodec::ProresKs => (ClipVideo::Prores, "mov"),
        VideoCodec::Ffv1 => (ClipVideo::Ffv1, "mkv"),
    }
}

#[test]
fn hd_bt709_round_trips_through_h264_ffv1_and_prores() {
    for (codec, extension_out, min_psnr, name) in [
        (VideoCodec::H264 { crf: 18 }, "mp4", 38.0, "709-h264"),
        (VideoCodec::Ffv1, "mkv", 45.0, "709-ffv1"),
        (VideoCodec::ProresKs, "mov", 40.0, "709-prores"),
    ] {
        let (video, extension) = source_for(codec);
        let case = Case { name, spec: hd709(video), extension, codec, extension_out, min_psnr };
        let (_, in_info, out_info, _) = round_trip(&case);
        assert_eq!(in_info.colour.matrix, Space::BT709);
        assert_red_block(&decode_all(&PathBuf::from(&out_info.path)).1[0].image, name);
        if codec == VideoCodec::Ffv1 {
            // Lossless RGB: the source's primaries and transfer, RGB instead of a matrix.
            assert_eq!(out_info.colour, Colour { matrix: Space::RGB, range: Range::Unspecified, ..in_info.colour });
        } else {
            assert_eq!(out_info.colour, in_info.colour, "{name}: colour tags");
        }
    }
}

#[test]
fn sd_bt601_keeps_its_matrix() {
    let spec = ClipSpec { frames: 6, colour: Some(ClipColour::bt601()), ..ClipSpec::new(80, 60) };
    let case = Case { name: "601-h264", spec, extension: "mp4", codec: VideoCodec::H264 { crf: 18 }, extension_out: "mp4", min_psnr: 38.0 };
    let (_, in_info, out_info, report) = round_trip(&case);
    assert_red_block(&decode_all(&in_info.path).1[0].image, "601 source");
    assert_red_block(&decode_all(&out_info.path).1[0].image, "601 output");
    assert_eq!(out_info.colour.matrix, Space::SMPTE170M);
    assert_eq!(out_info.colour, in_info.colour);
    assert_eq!(report.output.colour, in_info.colour, "the report says what was written");
}

#[test]
fn full_range_stays_full_range() {
    let colour = ClipColour { range: Range::JPEG, ..ClipColour::bt709() };
    let spec = ClipSpec { frames: 6, colour: Some(colour), ..ClipSpec::new(96, 64) };
    let case = Case { name: "full-h264", spec, extension: "mp4", codec: VideoCodec::H264 { crf: 18 }, extension_out: "mp4", min_psnr: 38.0 };
    let (_, in_info, out_info, _) = round_trip(&case);
    assert_eq!(in_info.colour.range, Range::JPEG);
    assert_eq!(out_info.colour, in_info.colour);
    assert_red_block(&decode_all(&out_info.path).1[0].image, "full-range output");
}

#[test]
fn rotated_and_non_square_pixel_clips_round_trip_in_display_geometry() {
    let rotated = ClipSpec { frames: 6, rotation: 90, colour: Some(ClipColour::bt709()), ..ClipSpec::new(96, 64) };
    let case = Case { name: "rotated", spec: rotated, extension: "mp4", codec: VideoCodec::H264 { crf: 18 }, extension_out: "mp4", min_psnr: 38.0 };
    let (_, in_info, out_info, _) = round_trip(&case);
    assert_eq!((in_info.width, in_info.height, in_info.rotation), (64, 96, 90));
    assert_eq!((out_info.width, out_info.height, out_info.rotation), (64, 96, 0), "upright, no rotation flag left to apply");

    // 60×48 stored, pixels 4:3 wide: shown (and written) 80×48 with square pixels.
    let anamorphic = ClipSpec { frames: 6, sar: Some((4, 3)), colour: Some(ClipColour::bt601()), ..ClipSpec::new(60, 48) };
    let case = Case { name: "sar", spec: anamorphic, extension: "mkv", codec: VideoCodec::Ffv1, extension_out: "mkv", min_psnr: 45.0 };
    let (_, in_info, out_info, _) = round_trip(&case);
    assert_eq!((in_info.width, in_info.sample_aspect_ratio), (80, (4, 3)));
    assert_eq!((out_info.width, out_info.height, out_info.sample_aspect_ratio), (80, 48, (1, 1)));
}

#[test]
fn ten_bit_prores_with_timecode_stays_ten_bit_and_keeps_its_timecode() {
    let spec = ClipSpec { frames: 6, video: ClipVideo::Prores, timecode: Some("01:00:00:00"), ..hd709(ClipVideo::Prores) };
    let case = Case { name: "prores10", spec: spec.clone(), extension: "mov", codec: VideoCodec::ProresKs, extension_out: "mov", min_psnr: 40.0 };
    let (_, in_info, out_info, report) = round_trip(&case);
    assert_eq!((in_info.pixel_format.as_str(), in_info.bit_depth), ("yuv422p10le", 10));
    assert_eq!((out_info.pixel_format.as_str(), out_info.bit_depth), ("yuv422p10le", 10));
    assert_eq!(in_info.timecode.as_deref(), Some("01:00:00:00"));
    assert_eq!(out_info.timecode.as_deref(), Some("01:00:00:00"));
    assert_eq!(report.output.timecode.as_deref(), Some("01:00:00:00"));
    assert_eq!(out_info.colour, in_info.colour);

    // FFV1 from a 10-bit source is 10-bit RGB, and mp4/mkv outputs carry the timecode too.
    let dir = common::scratch_dir("roundtrip-timecode");
    let input = dir.join("source.mov");
    make_clip(&input, &spec);
    for (codec, name) in [(VideoCodec::Ffv1, "out.mkv"), (VideoCodec::H264 { crf: 18 }, "out.mp4")] {
        let output = dir.join(name);
        pass_through(&input, &output, codec, 96, None);
        let (info, _) = decode_all(&output);
        assert_eq!(info.timecode.as_deref(), Some("01:00:00:00"), "{name}");
        if codec == VideoCodec::Ffv1 {
            assert_eq!((info.pixel_format.as_str(), info.bit_depth), ("gbrp10le", 10));
        }
    }

    // --start 0.2 at 25 fps skips 5 frames: the output starts 5 frames later on the clock.
    let output = dir.join("late.mov");
    let report = pass_through(&input, &output, VideoCodec::ProresKs, 96, Some(0.2));
    assert_eq!(report.totals.frames, 1);
    assert_eq!(decode_all(&output).0.timecode.as_deref(), Some("01:00:00:05"));
}

#[test]
fn untagged_footage_is_read_as_players_read_it() {
    let untagged = Colour::default();
    assert_eq!(untagged.conversion_matrix(1920, 1080), Space::BT709);
    assert_eq!(untagged.conversion_matrix(1280, 720), Space::BT709);
    assert_eq!(untagged.conversion_matrix(720, 576), Space::SMPTE170M);
    assert_eq!(untagged.conversion_matrix(640, 480), Space::SMPTE170M);
    assert!(!untagged.full_range());
    // The output states what the decoder assumed, so players need not guess again.
    let out = untagged.for_output(1920, 1080, true);
    assert_eq!((out.matrix, out.range), (Space::BT709, Range::MPEG));
    // Images (RGB) are sRGB: BT.709 primaries and transfer.
    let rgb = Colour { matrix: Space::RGB, ..Colour::default() };
    let out = rgb.for_output(640, 360, true);
    assert_eq!((out.primaries, out.transfer, out.matrix), (Primaries::BT709, TransferCharacteristic::BT709, Space::SMPTE170M));
    // ProRes cannot say "full range": full-range footage is converted to limited.
    let full = Colour { range: Range::JPEG, ..Colour::default() };
    assert_eq!(full.for_output(96, 64, false).range, Range::MPEG);
    assert_eq!(full.for_output(96, 64, true).range, Range::JPEG);
}

#[test]
fn the_made_clips_decode_to_the_pictures_they_were_made_from() {
    // The clip maker and the decoder agree on every matrix and range, independently of the
    // encoder: the red block comes back as made.
    for (name, colour) in [
        ("709", ClipColour::bt709()),
        ("601", ClipColour::bt601()),
        ("full", ClipColour { range: Range::JPEG, ..ClipColour::bt709() }),
    ] {
        let dir = common::scratch_dir(&format!("roundtrip-made-{name}"));
        let input = dir.join("clip.mkv");
        make_clip(&input, &ClipSpec { frames: 1, video: ClipVideo::Ffv1, colour: Some(colour), ..ClipSpec::new(96, 64) });
        let (_, frames) = decode_all(&input);
        assert_red_block(&frames[0].image, name);
        assert!(psnr(&frames[0].image, &frame_image(0, 96, 64)) > 35.0, "{name}");
    }
}

#[test]
fn timecodes_move_on_by_whole_frames_with_drop_frame_counting() {
    use stylize_video::media::video::timecode::offset;
    assert_eq!(offset("01:00:00:00", (25, 1), 5).as_deref(), Some("01:00:00:05"));
    assert_eq!(offset("01:00:00:20", (25, 1), 5).as_deref(), Some("01:00:01:00"));
    assert_eq!(offset("00:59:59:23", (24, 1), 1).as_deref(), Some("01:00:00:00"));
    // NTSC drop-frame: frames 00 and 01 are skipped at each minute but every tenth.
    assert_eq!(offset("00:00:59;28", (30000, 1001), 2).as_deref(), Some("00:01:00;02"));
    assert_eq!(offset("00:09:59;29", (30000, 1001), 1).as_deref(), Some("00:10:00;00"));
    assert_eq!(offset("not a timecode", (25, 1), 0), None);
}
