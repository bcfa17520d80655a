//! Float EXR sequences in and out: a scene-linear sequence with highlights above 1 and
//! premultiplied alpha comes back, through the pass-through path, linear and half-float with the
//! same frame numbers and channels, ≥ 45 dB in linear light on its values in 0..1, the highlights
//! restored and the alpha kept; a painted run keeps the highlights too.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use stylize_video::jobs::pipeline::{run_video, VideoJob, VideoReport};
use stylize_video::media::video::linear::{encode_exr, read_exr};
use stylize_video::media::video::VideoCodec;
use stylize_video::motion::temporal::VideoInit;
use stylize_video::progress::NoProgress;

const SIZE: (u32, u32) = (48, 36);
/// The sequence's first frame number, as a comp's plates often start.
const FIRST: u64 = 101;

/// Frame `i` of the source, straight (before premultiplying): a linear ramp in 0..1 with a
/// highlight of 4.0 in a moving square, and its alpha: opaque but for a soft left edge.
fn source(i: u32, x: u32, y: u32) -> ([f32; 3], f32) {
    let highlight = (10 + 3 * i..18 + 3 * i).contains(&x) && (8..16).contains(&y);
    let v = x as f32 / (SIZE.0 - 1) as f32;
    let rgb = if highlight { [4.0, 3.0, 2.5] } else { [v * v, 0.5 * v, (y as f32 / (SIZE.1 - 1) as f32) * 0.8] };
    (rgb, (x as f32 / 6.0).clamp(0.25, 1.0))
}

/// Writes the source as `dir/plate/p.%04d.exr` from [`FIRST`]: premultiplied RGBA half floats.
fn exr_sequence(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("plate")).unwrap();
    for i in 0..3u32 {
        let mut planes = vec![Vec::new(); 4];
        for y in 0..SIZE.1 {
            for x in 0..SIZE.0 {
                let (rgb, a) = source(i, x, y);
                for c in 0..3 {
                    planes[c].push(rgb[c] * a);
                }
                planes[3].push(a);
            }
        }
        std::fs::write(dir.join(format!("plate/p.{:04}.exr", FIRST + i as u64)), encode_exr(&planes, SIZE).unwrap()).unwrap();
    }
    dir.join("plate/p.%04d.exr")
}

fn job(input: &Path, output: &Path, iterations: usize) -> VideoJob {
    VideoJob {
        size: SIZE.0,
        first_iterations: iterations,
        iterations,
        max_iterations: None,
        init_video: VideoInit::Content,
        codec: VideoCodec::Ffv1,
        keep_audio: false,
        ..VideoJob::with_defaults(input.to_path_buf(), common::repo_path("samples/starry_night.jpg"), output.to_path_buf())
    }
}

fn run(job: &VideoJob) -> VideoReport {
    run_video(job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

#[test]
fn the_pass_through_gives_back_the_linear_plate() {
    let dir = common::scratch_dir("exr-pass-through");
    let input = exr_sequence(&dir);
    let report = run(&job(&input, &dir.join("out/p.%04d.exr"), 0));
    assert_eq!(report.output.pixel_format, "half-float RGBA");
    assert_eq!(report.totals.decoded.beyond_display_frames, 3, "every frame has its highlight");
    for i in 0..3u32 {
        let number = FIRST + i as u64;
        let (written, source_planes) = (dir.join(format!("out/p.{number:04}.exr")), dir.join(format!("plate/p.{number:04}.exr")));
        let (written, stored) = (read_exr(&written).unwrap(), read_exr(&source_planes).unwrap());
        let (size, planes, stored) = (written.size, written.planes, stored.planes);
        assert_eq!((size, planes.len()), (SIZE, 4), "frame {number}: same size and channels (R, G, B, A)");
        // Linear light, values in 0..1 (the premultiplied values as stored): PSNR ≥ 45 dB.
        let (mut sum, mut n, mut worst_highlight) = (0f64, 0usize, 0f64);
        for p in 0..(SIZE.0 * SIZE.1) as usize {
            for c in 0..3 {
                let (got, want) = (planes[c][p] as f64, stored[c][p] as f64);
                if (0.0..=1.0).contains(&want) {
                    sum += (got - want).powi(2);
                    n += 1;
                } else {
                    worst_highlight = f64::max(worst_highlight, (got - want).abs() / want);
                }
            }
        }
        let psnr = 10.0 * (1.0 / (sum / n as f64)).log10();
        let alpha_error = planes[3].iter().zip(&stored[3]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("frame {number}: {psnr:.1} dB in linear light on 0..1, highlights within {:.2}%, alpha within {alpha_error:.1e}", 100.0 * worst_highlight);
        assert!(psnr >= 45.0, "frame {number}: {psnr:.1} dB");
        assert!(worst_highlight < 0.01, "frame {number}: a highlight came back {:.2}% off", 100.0 * worst_highlight);
        assert!(alpha_error < 2e-3, "frame {number}: alpha off by {alpha_error}");
    }
    assert!(!dir.join(format!("out/p.{:04}.exr", FIRST + 3)).exists() && !dir.join(format!("out/p.{:04}.exr", FIRST - 1)).exists());
}

#[test]
fn a_painted_plate_keeps_its_highlights_and_alpha() {
    let dir = common::scratch_dir("exr-painted");
    let input = exr_sequence(&dir);
    run(&job(&input, &dir.join("out/p.%04d.exr"), 3));
    let planes = read_exr(&dir.join(format!("out/p.{FIRST:04}.exr"))).unwrap().planes;
    let stored = read_exr(&dir.join(format!("plate/p.{FIRST:04}.exr"))).unwrap().planes;
    // The highlight's pixels stay above 1 (the painting's part in 0..1 plus the part kept aside).
    let p = (12 * SIZE.0 + 13) as usize;
    assert!(planes[0][p] > 1.5 && stored[0][p] > 1.5, "highlight {} (source {})", planes[0][p], stored[0][p]);
    assert!(planes[3].iter().zip(&stored[3]).all(|(a, b)| (a - b).abs() < 2e-3), "the alpha is the source's");
}
