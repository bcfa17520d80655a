//! Helpers shared by the integration tests: synthetic images and the bundled weights.
#![allow(dead_code)]

pub mod clips;

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Tensor;
use image::RgbImage;
use stylize_video::jobs::progress::FrameRecord;
use stylize_video::jobs::progress::VideoProgress;
use stylize_video::media::video::{DecodeOptions, DecodedFrame, VideoDecoder, VideoInfo};
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::progress::Progress;

/// max |a − b| / max |b|: the largest difference as a share of the reference's scale.
pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "an all-zero reference would compare nothing");
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale
}

pub fn vgg(pooling: Pooling) -> Vgg16 {
    Vgg16::load(&weights_path(None), pooling).expect("bundled weights load")
}

/// A smooth synthetic "photo": gradients and a bright disc.
pub fn synthetic_content(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let disc = ((fx - 0.6).powi(2) + (fy - 0.4).powi(2)) < 0.05;
        let v = |a: f32| (a.clamp(0.0, 1.0) * 255.0) as u8;
        if disc { image::Rgb([240, 220, 90]) } else { image::Rgb([v(fx), v(0.3 + 0.5 * fy), v(1.0 - fx * fy)]) }
    })
}

/// A busy synthetic "painting": diagonal stripes in two colours with a checker overlay.
pub fn synthetic_style(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let stripe = ((x + 2 * y) / 3) % 2 == 0;
        let check = ((x / 4) + (y / 4)) % 2 == 0;
        match (stripe, check) {
            (true, true) => image::Rgb([20, 40, 160]),
            (true, false) => image::Rgb([30, 90, 200]),
            (false, true) => image::Rgb([250, 210, 40]),
            (false, false) => image::Rgb([200, 160, 20]),
        }
    })
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A fresh empty directory under the target dir, unique to the test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every frame of a video at its display size, and what the decoder says about it.
pub fn decode_all(path: &Path) -> (VideoInfo, Vec<DecodedFrame>) {
    let mut decoder = VideoDecoder::open(path, &DecodeOptions::default()).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = decoder.next_frame().unwrap() {
        frames.push(f);
    }
    (decoder.info().clone(), frames)
}

/// Every frame of a video as RGB at exactly `size` (to compare a clip with a rendering of it).
pub fn frames_at(path: &Path, size: (u32, u32)) -> Vec<RgbImage> {
    let options = DecodeOptions { size: stylize_video::media::video::FrameSize::Exact(size.0, size.1), ..Default::default() };
    let mut decoder = VideoDecoder::open(path, &options).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = decoder.next_frame().unwrap() {
        frames.push(f.image);
    }
    frames
}

/// A progress display that raises `stop` (as Ctrl-C does) once `after` frames are finished.
pub struct StopAfter<'a> {
    pub after: usize,
    pub finished: usize,
    pub stop: &'a AtomicBool,
}

impl Progress for StopAfter<'_> {
    fn iteration(&mut self, _: usize, _: usize, _: f64) {}
}

impl VideoProgress for StopAfter<'_> {
    fn begin(&mut self, _: Option<u64>) {}
    fn frame(&mut self, _: &FrameRecord) {
        self.finished += 1;
        if self.finished >= self.after {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Asserts the output has the input's frames, rate, timestamps and (within a frame) duration.
pub fn assert_same_timing(input: &Path, output: &Path) -> (VideoInfo, Vec<DecodedFrame>) {
    let (in_info, in_frames) = decode_all(input);
    let (out_info, out_frames) = decode_all(output);
    assert_eq!(out_frames.len(), in_frames.len(), "frame count");
    let rate = |(n, d): (i32, i32)| n as f64 / d as f64;
    // Within 0.1%: Matroska stores milliseconds, so an mkv source's NTSC rate comes back as
    // the average of its rounded frame durations.
    let (r_in, r_out) = (rate(in_info.frame_rate), rate(out_info.frame_rate));
    assert!((r_in - r_out).abs() <= 1e-3 * r_in, "frame rate {:?} vs {:?}", in_info.frame_rate, out_info.frame_rate);
    for (a, b) in in_frames.iter().zip(&out_frames) {
        assert!((a.pts_seconds - b.pts_seconds).abs() < 1e-3, "frame {}: {} vs {}", a.index, a.pts_seconds, b.pts_seconds);
    }
    let (d_in, d_out) = (in_info.duration_seconds.unwrap(), out_info.duration_seconds.unwrap());
    assert!((d_in - d_out).abs() <= in_info.frame_seconds() + 1e-6, "duration {d_in} vs {d_out}");
    (out_info, out_frames)
}

/// A failed command's standard error: ours is one line naming `names` and `problem`; clap's (an
/// argument it cannot parse) is clap's whole message, whose first line names both.
pub fn assert_one_error(stderr: &str, names: &str, problem: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    if stderr.starts_with("error:") {
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.contains(names) && first.contains(problem) && stderr.contains("--help"), "{stderr}");
    } else {
        assert!(stderr.contains(names) && stderr.contains(problem), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
}
