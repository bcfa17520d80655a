//! `--matte` on tiny clips: outside a hard matte the written frames are the source's (against
//! the pass-through path: the same run with a black matte, which paints nothing), inside they
//! are painted at least as much as an unmatted run composited by the same matte (J_style over
//! the region),
//! a matte clip follows the input frame by frame, and bad mattes are refused before any work.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use common::clips::{make_clip, ClipSpec, ClipVideo};
use image::{GrayImage, Luma, RgbImage};
use stylize_video::jobs::pipeline::{run_video, VideoJob, VideoReport};
use stylize_video::jobs::spec::{StyleSpec, StylizeOptions};
use stylize_video::jobs::still::{run_still, StillJob};
use stylize_video::media::image_io;
use stylize_video::media::matte::MatteSpec;
use stylize_video::media::video::VideoCodec;
use stylize_video::net::input::{matte_tensor, to_tensor};
use stylize_video::net::vgg::Pooling;
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::{Settings, Stylizer};

/// The processing size of the 64×48 clips at `--size 48`.
const SIZE: (u32, u32) = (48, 36);

/// White inside `x0..x1 × y0..y1`, black elsewhere, at the processing size.
fn rectangle_matte(x0: u32, x1: u32, y0: u32, y1: u32) -> GrayImage {
    GrayImage::from_fn(SIZE.0, SIZE.1, |x, y| Luma([if (x0..x1).contains(&x) && (y0..y1).contains(&y) { 255 } else { 0 }]))
}

fn clip(dir: &Path, frames: u32) -> PathBuf {
    let input = dir.join("clip.mkv");
    make_clip(&input, &ClipSpec { frames, video: ClipVideo::Ffv1, ..ClipSpec::new(64, 48) });
    input
}

/// 48 px, 30 iterations on frame 1 and 4 on each warm frame, lossless, with `matte`.
fn job(input: &Path, output: &Path, matte: Option<&Path>) -> VideoJob {
    VideoJob {
        size: 48,
        first_iterations: 30,
        iterations: 4,
        max_iterations: None,
        codec: VideoCodec::Ffv1,
        keep_audio: false,
        // No feathering: on a 48-px frame the default's 3 px would fade most of a small region.
        matte: matte.map(|path| MatteSpec { path: path.to_path_buf(), feather: 0.0 }),
        options: StylizeOptions { settings: Settings { tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..VideoJob::with_defaults(input.to_path_buf(), common::repo_path("samples/starry_night.jpg"), output.to_path_buf())
    }
}

fn run(job: &VideoJob) -> VideoReport {
    run_video(job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

/// The pass-through path: the clip through the tool with a black matte (nothing painted, no
/// iterations spent), read back.
fn pass_through(dir: &Path, input: &Path) -> Vec<RgbImage> {
    let black = dir.join("black.png");
    GrayImage::new(SIZE.0, SIZE.1).save(&black).unwrap();
    let output = dir.join("pass-through.mkv");
    let report = run(&job(input, &output, Some(&black)));
    assert_eq!(report.totals.iterations, 0, "a black matte paints nothing");
    assert!(report.frames.iter().all(|f| f.matte_share == Some(0.0)));
    common::frames_at(&output, SIZE)
}

/// PSNR of `a` against `b` over the pixels where `select` holds (infinite when equal).
fn psnr_where(a: &RgbImage, b: &RgbImage, matte: &GrayImage, select: impl Fn(u8) -> bool) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for ((p, q), m) in a.pixels().zip(b.pixels()).zip(matte.pixels()) {
        if select(m[0]) {
            sum += (0..3).map(|k| (p[k] as f64 - q[k] as f64).powi(2)).sum::<f64>();
            n += 3;
        }
    }
    assert!(n > 0, "no pixels selected");
    if sum == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255f64.powi(2) / (sum / n as f64)).log10()
    }
}

#[test]
fn a_hard_matte_keeps_the_source_outside_and_paints_inside() {
    let dir = common::scratch_dir("matte-hard");
    let input = clip(&dir, 3);
    let matte = rectangle_matte(12, 40, 6, 30);
    let matte_path = dir.join("matte.png");
    matte.save(&matte_path).unwrap();
    let source = pass_through(&dir, &input);

    let matted_out = dir.join("matted.mkv");
    let report = run(&job(&input, &matted_out, Some(&matte_path)));
    let share = (28 * 24) as f64 / (48 * 36) as f64;
    assert!(report.frames.iter().all(|f| (f.matte_share.unwrap() - share).abs() < 1e-9), "{:?}", report.frames);
    assert_eq!(report.frames.len(), 3);
    let plain_out = dir.join("plain.mkv");
    run(&job(&input, &plain_out, None));
    let (matted, plain) = (common::frames_at(&matted_out, SIZE), common::frames_at(&plain_out, SIZE));
    assert_eq!((matted.len(), plain.len(), source.len()), (3, 3, 3));

    // J_style over the region, judged on the written frames as --matte optimises it: the frame
    // over the source by the matte (for the unmatted run, what compositing it by hand gives).
    let device = Device::Cpu;
    let styles = StyleSpec::one(common::repo_path("samples/starry_night.jpg")).load(SIZE.0, SIZE.1, &device).unwrap();
    let judge = Stylizer::new(common::vgg(Pooling::Max), Settings::default(), &styles).unwrap();
    let weights = matte_tensor(&matte, &device).unwrap();
    for (i, ((matted, plain), source)) in matted.iter().zip(&plain).zip(&source).enumerate() {
        let outside = psnr_where(matted, source, &matte, |m| m == 0);
        assert!(outside >= 45.0, "frame {i}: outside the matte {outside:.1} dB from the pass-through");
        let inside = psnr_where(matted, source, &matte, |m| m == 255);
        assert!(inside < 25.0, "frame {i}: inside the matte {inside:.1} dB from the source: not painted");
        let target = judge.content_target(&to_tensor(source, &device).unwrap()).unwrap().with_matte(&weights).unwrap();
        let style = |image: &RgbImage| judge.evaluate(&to_tensor(image, &device).unwrap(), &target).unwrap().1.style;
        let (j_matted, j_plain) = (style(matted), style(plain));
        eprintln!("frame {i}: outside {outside:.1} dB, inside {inside:.1} dB; J_style over the region {j_matted:.3e} matted, {j_plain:.3e} unmatted");
        assert!(j_matted <= 1.2 * j_plain, "frame {i}: J_style over the region {j_matted:.3e} matted, {j_plain:.3e} unmatted");
    }
}

/// Painted at 48 px and written at the source's 64 px: what the matte keeps is the source's own
/// full-size pixels, not the small frame scaled up.
#[test]
fn at_the_source_size_the_matte_keeps_the_full_size_source() {
    use stylize_video::jobs::pipeline::OutputSize;
    let dir = common::scratch_dir("matte-source-size");
    let input = clip(&dir, 3);
    let full = GrayImage::from_fn(64, 48, |x, y| Luma([if (16..48).contains(&x) && (8..40).contains(&y) { 255 } else { 0 }]));
    let matte_path = dir.join("matte.png");
    full.save(&matte_path).unwrap();
    let output = dir.join("full.mkv");
    let report = run(&VideoJob { output_size: OutputSize::Source, ..job(&input, &output, Some(&matte_path)) });
    assert_eq!((report.output.width, report.output.height), (64, 48));
    let source = common::frames_at(&input, (64, 48));
    // Four pixels clear of the matte's edge (which the scaled-up matte softens).
    let far = GrayImage::from_fn(64, 48, |x, y| Luma([if (12..52).contains(&x) && (4..44).contains(&y) { 255 } else { 0 }]));
    for (i, (written, source)) in common::frames_at(&output, (64, 48)).iter().zip(&source).enumerate() {
        let (kept, painted) = (psnr_where(written, source, &far, |m| m == 0), psnr_where(written, source, &full, |m| m == 255));
        assert!(kept >= 45.0 && painted < 25.0, "frame {i}: {kept:.1} dB where the matte keeps, {painted:.1} dB where it paints");
    }
}

#[test]
fn a_second_style_paints_what_the_matte_leaves_out() {
    let dir = common::scratch_dir("matte-two-styles");
    let input = clip(&dir, 2);
    let matte = rectangle_matte(12, 40, 6, 30);
    let matte_path = dir.join("matte.png");
    matte.save(&matte_path).unwrap();
    // The second style: flat green strokes, far from Starry Night's blues and yellows.
    let green = dir.join("green.png");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([20, 150 + ((x * 7 + y * 3) % 60) as u8, 30])).save(&green).unwrap();
    let source = pass_through(&dir, &input);
    let output = dir.join("two.mkv");
    run(&VideoJob { style_outside: Some(green), ..job(&input, &output, Some(&matte_path)) });
    let mean_green = |image: &RgbImage, select: &dyn Fn(u8) -> bool| {
        let values: Vec<f64> =
            image.pixels().zip(matte.pixels()).filter(|(_, m)| select(m[0])).map(|(p, _)| p[1] as f64 - (p[0] as f64 + p[2] as f64) / 2.0).collect();
        values.iter().sum::<f64>() / values.len() as f64
    };
    for (i, (written, source)) in common::frames_at(&output, SIZE).iter().zip(&source).enumerate() {
        let (outside, inside) = (psnr_where(written, source, &matte, |m| m == 0), psnr_where(written, source, &matte, |m| m == 255));
        let (green_outside, green_inside) = (mean_green(written, &|m| m == 0), mean_green(written, &|m| m == 255));
        eprintln!("frame {i}: {outside:.1} dB outside, {inside:.1} dB inside; green excess {green_outside:.1} outside, {green_inside:.1} inside");
        assert!(outside < 25.0 && inside < 25.0, "frame {i}: both sides painted ({outside:.1} dB outside, {inside:.1} dB inside)");
        assert!(green_outside > green_inside + 10.0, "frame {i}: the outside takes the green style ({green_outside:.1} vs {green_inside:.1})");
    }
    // A black matte with a second style: the whole frame is the outside, and is painted.
    let all_outside = run(&VideoJob { style_outside: Some(dir.join("green.png")), ..job(&input, &dir.join("all-outside.mkv"), Some(&dir.join("black.png"))) });
    assert!(all_outside.frames.iter().all(|f| f.iterations > 0 && f.matte_share == Some(0.0)), "{:?}", all_outside.frames);
}

#[test]
fn later_passes_and_revealed_crops_keep_the_matte() {
    let dir = common::scratch_dir("matte-passes");
    let input = clip(&dir, 3);
    let matte = rectangle_matte(12, 40, 6, 30);
    let matte_path = dir.join("matte.png");
    matte.save(&matte_path).unwrap();
    let source = pass_through(&dir, &input);
    let output = dir.join("passes.mkv");
    let report = run(&VideoJob { passes: 2, ..job(&input, &output, Some(&matte_path)) });
    assert_eq!(report.totals.passes.len(), 2);
    assert!(report.frames.iter().all(|f| f.pass == Some(2) && f.matte_share.is_some_and(|s| s > 0.3)), "{:?}", report.frames);
    for (i, (written, source)) in common::frames_at(&output, SIZE).iter().zip(&source).enumerate() {
        let (outside, inside) = (psnr_where(written, source, &matte, |m| m == 0), psnr_where(written, source, &matte, |m| m == 255));
        assert!(outside >= 45.0 && inside < 25.0, "frame {i} after two passes: {outside:.1} dB outside the matte, {inside:.1} dB inside");
    }
    // And with --paint-revealed, whose crops are painted under their part of the matte.
    let revealed = dir.join("revealed.mkv");
    run(&VideoJob { paint_revealed: Some(5), ..job(&input, &revealed, Some(&matte_path)) });
    for (i, (written, source)) in common::frames_at(&revealed, SIZE).iter().zip(&source).enumerate() {
        let outside = psnr_where(written, source, &matte, |m| m == 0);
        assert!(outside >= 45.0, "frame {i} with --paint-revealed: {outside:.1} dB outside the matte");
    }
}

/// Segments read their own frames of a matte clip (a segment skips the frames before it), and
/// the assembly keeps what the matte keeps.
#[test]
fn segments_read_their_frames_of_the_matte() {
    use stylize_video::jobs::segment::{assemble, run_segment, SegmentSpec};
    let dir = common::scratch_dir("matte-segments");
    let input = clip(&dir, 6);
    // Frames 1–3 paint the left half, 4–6 the right half: a segment reading the wrong frames
    // would paint the wrong half.
    std::fs::create_dir_all(dir.join("mattes")).unwrap();
    let halves = [rectangle_matte(0, 24, 0, 36), rectangle_matte(24, 48, 0, 36)];
    for i in 0..6 {
        halves[i / 3].save(dir.join(format!("mattes/m_{:02}.png", i + 1))).unwrap();
    }
    let source = pass_through(&dir, &input);
    let output = dir.join("segmented.mkv");
    let the_job = job(&input, &output, Some(&dir.join("mattes/m_%02d.png")));
    let cache = stylize_video::jobs::cache::StylizerCache::new();
    for index in 0..2 {
        run_segment(&the_job, SegmentSpec { index, count: 2 }, 1, &mut NoProgress, &AtomicBool::new(false), &cache).unwrap();
    }
    assemble(&the_job).unwrap();
    for (i, (written, source)) in common::frames_at(&output, SIZE).iter().zip(&source).enumerate() {
        let matte = &halves[i / 3];
        let (kept, painted) = (psnr_where(written, source, matte, |m| m == 0), psnr_where(written, source, matte, |m| m == 255));
        assert!(kept >= 45.0 && painted < 25.0, "frame {i}: {kept:.1} dB where its matte keeps, {painted:.1} dB where it paints");
    }
}

#[test]
fn a_matte_sequence_follows_the_input_frame_by_frame() {
    let dir = common::scratch_dir("matte-sequence");
    let input = clip(&dir, 2);
    // Frame 1: the left half painted; frame 2: the right half.
    let mattes = [rectangle_matte(0, 24, 0, 36), rectangle_matte(24, 48, 0, 36)];
    std::fs::create_dir_all(dir.join("mattes")).unwrap();
    for (i, m) in mattes.iter().enumerate() {
        m.save(dir.join(format!("mattes/m_{:02}.png", i + 1))).unwrap();
    }
    let source = pass_through(&dir, &input);
    let output = dir.join("out.mkv");
    let report = run(&job(&input, &output, Some(&dir.join("mattes/m_%02d.png"))));
    assert_eq!(report.frames.iter().map(|f| f.matte_share).collect::<Vec<_>>(), [Some(0.5), Some(0.5)]);
    let out = common::frames_at(&output, SIZE);
    for (i, matte) in mattes.iter().enumerate() {
        assert!(psnr_where(&out[i], &source[i], matte, |m| m == 0) >= 45.0, "frame {i}: its kept half changed");
        assert!(psnr_where(&out[i], &source[i], matte, |m| m == 255) < 25.0, "frame {i}: its painted half was not painted");
    }

    // A matte clip shorter than the input is refused before any work.
    std::fs::create_dir_all(dir.join("three")).unwrap();
    let three = clip(&dir.join("three"), 3);
    let refused = dir.join("refused.mkv");
    let error = run_video(&job(&three, &refused, Some(&dir.join("mattes/m_%02d.png"))), &mut NoProgress, &AtomicBool::new(false)).unwrap_err();
    assert!(error.to_string().contains("--matte has 2 frames, the input 3"), "{error}");
    assert!(!refused.exists() && !stylize_video::jobs::workdir::WorkDir::path_for(&refused).exists());

    // With a duration the count is not checked ahead (the range may end first): the matte
    // running out is an error that names it, and no output is written.
    let ran_out = dir.join("ran-out.mkv");
    let with_duration = VideoJob { duration: Some(60.0), ..job(&three, &ran_out, Some(&dir.join("mattes/m_%02d.png"))) };
    let error = run_video(&with_duration, &mut NoProgress, &AtomicBool::new(false)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("m_%02d.png") && message.contains("--matte ends after 2 frames"), "{message}");
    assert!(!ran_out.exists());
}

#[test]
fn a_still_keeps_its_photo_outside_the_matte() {
    let dir = common::scratch_dir("matte-still");
    let content = dir.join("photo.png");
    common::synthetic_content(64, 48).save(&content).unwrap();
    // The matte at the photo's own size: resized to the working size with the photo.
    let matte = GrayImage::from_fn(64, 48, |x, _| Luma([if x >= 32 { 255 } else { 0 }]));
    let matte_path = dir.join("matte.png");
    matte.save(&matte_path).unwrap();
    let output = dir.join("out.png");
    let job = StillJob {
        size: 48,
        iterations: 30,
        matte: Some(MatteSpec { path: matte_path, feather: 2.0 }),
        ..StillJob::with_defaults(content.clone(), common::repo_path("samples/starry_night.jpg"), output.clone())
    };
    let report = run_still(&job, &mut NoProgress).unwrap();
    assert_eq!(report.matte_share, Some(0.5));
    let written = image_io::load_rgb(&output).unwrap();
    let photo = image_io::resize(&image_io::load_rgb(&content).unwrap(), 48, 36);
    let matte_here = image::imageops::resize(&matte, 48, 36, image::imageops::FilterType::Triangle);
    assert_eq!(psnr_where(&written, &photo, &matte_here, |m| m == 0), f64::INFINITY, "the kept half is the photo's own pixels");
    assert!(psnr_where(&written, &photo, &matte_here, |m| m == 255) < 25.0, "the painted half was painted");
}

#[test]
fn bad_mattes_are_refused_before_any_work() {
    let dir = common::scratch_dir("matte-refused");
    let input = clip(&dir, 2);
    let square = dir.join("square.png");
    GrayImage::new(40, 40).save(&square).unwrap();
    let good = dir.join("good.png");
    rectangle_matte(0, 10, 0, 10).save(&good).unwrap();
    let style = common::repo_path("samples/starry_night.jpg");
    let output = dir.join("out.mkv");
    let (square, good, missing) = (square.to_str().unwrap(), good.to_str().unwrap(), dir.join("none.png"));
    let missing = missing.to_str().unwrap();
    for (args, code, names, problem) in [
        (vec!["--matte", square], 1, square, "--matte is 40×40, the input 64×48: a matte must have the input's shape"),
        (vec!["--matte", missing], 1, missing, "--matte: file not found"),
        (vec!["--matte", good, "--matte-feather=-1"], 1, "--matte-feather", "must be a finite number ≥ 0"),
        (vec!["--matte-feather", "2"], 2, "required arguments", "not provided"),
        (vec!["--style-outside", good], 2, "required arguments", "not provided"),
        (vec!["--matte", good, "--preview", "grid.png"], 2, "--matte", "does not apply to --preview"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_stylize-video"))
            .arg(&input)
            .args(["--style", style.to_str().unwrap(), "-o", output.to_str().unwrap(), "--size", "48"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {stderr}");
        common::assert_one_error(&stderr, names, problem);
        assert!(!output.exists() && !dir.join("out.mkv.partial").exists(), "{args:?}");
        assert!(!dir.join("grid.png").exists());
    }
}

/// The bundled matte (an FFV1 greyscale clip at 256×192) over the bundled clip at another size:
/// read frame for frame, resized with the frames.
#[test]
fn the_bundled_matte_follows_the_bundled_clip() {
    let dir = common::scratch_dir("matte-bundled");
    let output = dir.join("out.mkv");
    let job = VideoJob {
        size: 64,
        max_frames: Some(3),
        first_iterations: 5,
        iterations: 2,
        max_iterations: None,
        codec: VideoCodec::Ffv1,
        keep_audio: false,
        matte: Some(MatteSpec { path: common::repo_path("samples/cup-matte.mkv"), feather: 3.0 }),
        ..VideoJob::with_defaults(common::repo_path("samples/cup.mp4"), common::repo_path("samples/starry_night.jpg"), output.clone())
    };
    let report = run(&job);
    let shares: Vec<f64> = report.frames.iter().map(|f| f.matte_share.unwrap()).collect();
    assert_eq!(shares.len(), 3);
    // The hand and the cup cover 15% of the first frames (scripts/make-cup-matte).
    assert!(shares.iter().all(|s| (0.12..0.19).contains(s)), "{shares:?}");
    assert_eq!(common::frames_at(&output, (64, 48)).len(), 3);
}
