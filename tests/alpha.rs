//! Alpha kept: an input with alpha (a PNG sequence, ProRes 4444) comes back with its alpha in
//! outputs that carry it (PNG and TIFF sequences, FFV1, ProRes 4444), after one pass or several:
//! bit for bit at 8 bits,
//! within 50 dB at 10 and 16; an output that cannot carry it (H.264) says so once; a still PNG
//! with alpha keeps it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use image::{Rgba, RgbaImage};
use stylize_video::jobs::pipeline::{run_video, OutputSize, VideoJob, VideoReport};
use stylize_video::jobs::still::{run_still, StillJob};
use stylize_video::media::image_io::{narrow, Alpha16};
use stylize_video::media::video::{DecodeOptions, VideoCodec, VideoDecoder};
use stylize_video::motion::temporal::VideoInit;
use stylize_video::progress::NoProgress;

const SIZE: (u32, u32) = (48, 36);

/// Frame `i`'s alpha: a ramp across, a transparent hole and an opaque band, moving with `i`.
fn alpha_at(i: u32, x: u32, y: u32) -> u8 {
    let hole = (x as i32 - 20 - 2 * i as i32).pow(2) + (y as i32 - 18).pow(2) < 49;
    match (hole, y < 6) {
        (true, _) => 0,
        (_, true) => 255,
        _ => (x * 255 / (SIZE.0 - 1)) as u8,
    }
}

/// A 3-frame RGBA PNG sequence `dir/in/f_%04d.png`.
fn alpha_sequence(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for i in 0..3u32 {
        let frame = RgbaImage::from_fn(SIZE.0, SIZE.1, |x, y| {
            let rgb = common::clips::frame_image(i, SIZE.0, SIZE.1).get_pixel(x, y).0;
            Rgba([rgb[0], rgb[1], rgb[2], alpha_at(i, x, y)])
        });
        frame.save(dir.join(format!("in/f_{:04}.png", i + 1))).unwrap();
    }
    dir.join("in/f_%04d.png")
}

/// A quick run at the source's size (a few iterations: alpha does not depend on the painting).
fn job(input: &Path, output: &Path, codec: VideoCodec) -> VideoJob {
    VideoJob {
        size: SIZE.0,
        output_size: OutputSize::Processing,
        first_iterations: 2,
        iterations: 1,
        max_iterations: None,
        init_video: VideoInit::Content,
        codec,
        keep_audio: false,
        ..VideoJob::with_defaults(input.to_path_buf(), common::repo_path("samples/starry_night.jpg"), output.to_path_buf())
    }
}

fn run(job: &VideoJob) -> VideoReport {
    run_video(job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

/// Every frame's alpha as the decoder gives it (16-bit), and the stream's pixel format.
fn alphas(path: &Path) -> (String, Vec<Alpha16>) {
    let mut decoder = VideoDecoder::open(path, &DecodeOptions::default()).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        frames.push(frame.alpha.expect("the output has alpha"));
    }
    (decoder.info().pixel_format.clone(), frames)
}

/// PSNR of a 16-bit alpha against frame `i`'s source alpha (8-bit, widened ×257).
fn alpha_psnr(alpha: &Alpha16, i: u32) -> f64 {
    let mse = alpha.enumerate_pixels().map(|(x, y, a)| (a[0] as f64 - 257.0 * alpha_at(i, x, y) as f64).powi(2)).sum::<f64>()
        / (SIZE.0 * SIZE.1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (65535f64.powi(2) / mse).log10()
    }
}

#[test]
fn a_png_sequence_keeps_its_alpha_bit_for_bit_in_ffv1_and_png() {
    let dir = common::scratch_dir("alpha-png");
    let input = alpha_sequence(&dir);
    // A PNG sequence out: each frame's alpha exactly the input's.
    let report = run(&job(&input, &dir.join("out/f_%04d.png"), VideoCodec::Ffv1));
    assert_eq!(report.output.pixel_format, "rgba");
    assert!(report.input.alpha);
    for i in 0..3u32 {
        let written = image::open(dir.join(format!("out/f_{:04}.png", i + 1))).unwrap().into_rgba8();
        for (x, y, p) in written.enumerate_pixels() {
            assert_eq!(p[3], alpha_at(i, x, y), "frame {i} at ({x}, {y})");
        }
    }
    // With --passes the video is written after the last pass, the alpha kept meanwhile.
    let report = run(&VideoJob { passes: 2, ..job(&input, &dir.join("passes/f_%04d.png"), VideoCodec::Ffv1) });
    assert_eq!((report.output.pixel_format.as_str(), report.totals.passes.len()), ("rgba", 2));
    for i in 0..3u32 {
        let written = image::open(dir.join(format!("passes/f_{:04}.png", i + 1))).unwrap().into_rgba8();
        assert!(written.enumerate_pixels().all(|(x, y, p)| p[3] == alpha_at(i, x, y)), "frame {i} after two passes");
    }
    // FFV1: BGRA, the alpha exactly the input's.
    let mkv = dir.join("out.mkv");
    run(&job(&input, &mkv, VideoCodec::Ffv1));
    let (format, frames) = alphas(&mkv);
    assert_eq!((format.as_str(), frames.len()), ("bgra", 3));
    for (i, alpha) in frames.iter().enumerate() {
        for (x, y, a) in alpha.enumerate_pixels() {
            assert_eq!(narrow(a[0]), alpha_at(i as u32, x, y), "frame {i} at ({x}, {y})");
        }
    }
}

#[test]
fn prores_4444_carries_alpha_there_and_back() {
    let dir = common::scratch_dir("alpha-prores");
    let input = alpha_sequence(&dir);
    let mov = dir.join("4444.mov");
    let report = run(&job(&input, &mov, VideoCodec::ProresKs));
    assert_eq!(report.output.pixel_format, "yuva444p10le");
    // FFmpeg's ProRes decoder gives 4444 as 12-bit.
    let (format, frames) = alphas(&mov);
    assert_eq!((format.as_str(), frames.len()), ("yuva444p12le", 3));
    for (i, alpha) in frames.iter().enumerate() {
        let psnr = alpha_psnr(alpha, i as u32);
        eprintln!("ProRes 4444 frame {i}: alpha {psnr:.1} dB");
        assert!(psnr >= 50.0, "frame {i}: alpha {psnr:.1} dB");
    }
    // The ProRes 4444 file as a source: to FFV1 (16-bit with alpha) and a 16-bit PNG sequence.
    let mkv = dir.join("from-4444.mkv");
    run(&job(&mov, &mkv, VideoCodec::Ffv1));
    let (format, frames) = alphas(&mkv);
    assert_eq!((format.as_str(), frames.len()), ("gbrap16le", 3)); // 12-bit source: 16-bit FFV1
    let pngs = dir.join("from-4444/f_%04d.png");
    let report = run(&VideoJob { bit_depth: stylize_video::media::sequence::BitDepth::Sixteen, ..job(&mov, &pngs, VideoCodec::Ffv1) });
    assert_eq!(report.output.pixel_format, "rgba64");
    for (i, alpha) in frames.iter().enumerate() {
        let psnr = alpha_psnr(alpha, i as u32);
        let png = image::open(dir.join(format!("from-4444/f_{:04}.png", i + 1))).unwrap().into_rgba16();
        let png_alpha = Alpha16::from_fn(SIZE.0, SIZE.1, |x, y| image::Luma([png.get_pixel(x, y)[3]]));
        let png_psnr = alpha_psnr(&png_alpha, i as u32);
        eprintln!("from ProRes 4444, frame {i}: FFV1 alpha {psnr:.1} dB, 16-bit PNG {png_psnr:.1} dB");
        assert!(psnr >= 50.0 && png_psnr >= 50.0, "frame {i}: alpha {psnr:.1} dB in FFV1, {png_psnr:.1} dB in PNG");
    }
}

#[test]
fn h264_says_once_that_it_drops_the_alpha() {
    let dir = common::scratch_dir("alpha-h264");
    let input = alpha_sequence(&dir);
    let report = run(&job(&input, &dir.join("out.mp4"), VideoCodec::H264 { crf: 18 }));
    let notes: Vec<&String> = report.output.notes.iter().filter(|n| n.contains("alpha")).collect();
    assert_eq!(notes.len(), 1, "{:?}", report.output.notes);
    assert!(notes[0].contains("not written: H.264 has none"), "{}", notes[0]);
    assert_eq!(report.output.pixel_format, "yuv420p");
}

#[test]
fn a_still_png_keeps_its_alpha() {
    let dir = common::scratch_dir("alpha-still");
    let input = alpha_sequence(&dir);
    let photo = PathBuf::from(input.to_str().unwrap().replace("%04d", "0002"));
    let output = dir.join("painted.png");
    let job = StillJob { size: SIZE.0, iterations: 3, ..StillJob::with_defaults(photo, common::repo_path("samples/starry_night.jpg"), output.clone()) };
    let report = run_still(&job, &mut NoProgress).unwrap();
    assert!(report.input_alpha && report.output_alpha);
    let written = image::open(&output).unwrap().into_rgba8();
    assert_eq!(written.dimensions(), SIZE);
    for (x, y, p) in written.enumerate_pixels() {
        assert_eq!(p[3], alpha_at(1, x, y), "({x}, {y})");
    }
}
