//! Keyframed settings on tiny clips: each frame is painted with its own interpolated values (in
//! the report, and in its J), a two-key transition from one style to another shows no jump in
//! the independent warping error, and bad keys are refused before any work.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use common::clips::{make_clip, ClipSpec, ClipVideo};
use stylize_video::jobs::keyframes::{KeyAt, Keyframed, Keyframes};
use stylize_video::jobs::pipeline::{run_video, VideoJob, VideoReport};
use stylize_video::jobs::spec::{StyleSpec, StylizeOptions};
use stylize_video::media::video::VideoCodec;
use stylize_video::motion::flow::FlowMethod;
use stylize_video::motion::temporal::pair_warping_errors;
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::Settings;

fn clip(dir: &Path, frames: u32) -> PathBuf {
    let input = dir.join("clip.mkv");
    make_clip(&input, &ClipSpec { frames, video: ClipVideo::Ffv1, ..ClipSpec::new(64, 48) });
    input
}

/// Two styles: the sample painting and a synthetic one of other colours and strokes.
fn styles(dir: &Path) -> Vec<PathBuf> {
    let other = dir.join("other-style.png");
    common::synthetic_style(96, 72).save(&other).unwrap();
    vec![common::repo_path("samples/starry_night.jpg"), other]
}

/// 48 px, 30 iterations on frame 1 and 6 on each warm frame, lossless.
fn job(input: &Path, output: &Path, styles: &[PathBuf], blend: &[f64]) -> VideoJob {
    VideoJob {
        size: 48,
        first_iterations: 30,
        iterations: 6,
        codec: VideoCodec::Ffv1,
        keep_audio: false,
        style: StyleSpec { paths: styles.to_vec(), blend_weights: blend.to_vec(), scale: 1.0 },
        options: StylizeOptions { settings: Settings { tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..VideoJob::with_defaults(input.to_path_buf(), styles[0].clone(), output.to_path_buf())
    }
}

fn run(job: &VideoJob) -> VideoReport {
    run_video(job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

/// Mean independent warping error of a written video against its input (Lai et al. 2018).
fn warping_error(input: &Path, output: &Path) -> f64 {
    let size = (48, 36);
    let errors = pair_warping_errors(&common::frames_at(input, size), &common::frames_at(output, size), FlowMethod::Dis).unwrap();
    let errors: Vec<f64> = errors.into_iter().flatten().collect();
    errors.iter().sum::<f64>() / errors.len() as f64
}

#[test]
fn each_frame_is_painted_with_its_interpolated_style_weight() {
    let dir = common::scratch_dir("keyframes-weight");
    let input = clip(&dir, 4);
    let styles = styles(&dir);
    // 25 fps: frames at 0, 0.04, 0.08, 0.12 s; β from 1e-4 at 0.04 s to 1e-3 at 0.12 s.
    let keys = Keyframes::new("--style-weight", vec![(KeyAt::Seconds(0.04), 1e-4), (KeyAt::Seconds(0.12), 1e-3)]).unwrap();
    let keyed = VideoJob { keyframes: Keyframed { style_weight: Some(keys), ..Keyframed::default() }, ..job(&input, &dir.join("out.mkv"), &styles[..1], &[1.0]) };
    let report = run(&keyed);
    let betas: Vec<f64> = report.frames.iter().map(|f| f.keyframed.as_ref().unwrap().style_weight.unwrap()).collect();
    for (beta, expected) in betas.iter().zip([1e-4, 1e-4, 5.5e-4, 1e-3]) {
        assert!((beta - expected).abs() < 1e-12, "β per frame {betas:?}");
    }
    // Each frame's J is made with its own β: J = α J_content + β_t J_style + γ_tv J_tv + γ_temp J_temporal.
    let s = Settings::default();
    for (f, beta) in report.frames.iter().zip(&betas) {
        let j = s.content_weight * f.content + beta * f.style + s.tv_weight * f.tv + s.temporal_weight * f.temporal;
        assert!((j - f.total).abs() <= 1e-9 * f.total, "frame {}: J {} but α J_c + β_t J_s + … = {j}", f.index, f.total);
    }
    // And a larger β paints more: the last frame's J_style is below that of a run held at 1e-4.
    let held = run(&VideoJob {
        options: StylizeOptions { settings: Settings { style_weight: 1e-4, tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..job(&input, &dir.join("held.mkv"), &styles[..1], &[1.0])
    });
    let (last, held_last) = (report.frames[3].style, held.frames[3].style);
    assert!(last < 0.9 * held_last, "J_style of the last frame {last:.3e} with β rising, {held_last:.3e} held at 1e-4");
}

#[test]
fn a_two_key_style_transition_shows_no_jump() {
    let dir = common::scratch_dir("keyframes-transition");
    let input = clip(&dir, 6);
    let styles = styles(&dir);
    let blend = Keyframes::new("--style-weights", vec![(KeyAt::Frame(1), vec![1.0, 0.0]), (KeyAt::Frame(6), vec![0.0, 1.0])]).unwrap();
    let transition = dir.join("transition.mkv");
    let report = run(&VideoJob {
        keyframes: Keyframed { style_blend: Some(blend), ..Keyframed::default() },
        ..job(&input, &transition, &styles, &[1.0, 1.0])
    });
    let blends: Vec<Vec<f64>> = report.frames.iter().map(|f| f.keyframed.as_ref().unwrap().style_blend.clone().unwrap()).collect();
    for (i, b) in blends.iter().enumerate() {
        let t = i as f64 / 5.0;
        assert!((b[0] - (1.0 - t)).abs() < 1e-12 && (b[1] - t).abs() < 1e-12, "blend per frame {blends:?}");
    }
    let held = dir.join("held.mkv");
    run(&job(&input, &held, &styles[..1], &[1.0]));
    let (with, without) = (warping_error(&input, &transition), warping_error(&input, &held));
    eprintln!("warping error {with:.3e} across the transition, {without:.3e} without it: {:.2}×", with / without);
    assert!(with <= 1.5 * without, "warping error {with:.3e} across the transition, {without:.3e} without it");
    // The end is the second style: the last frame is far from the first style's painting.
    let (a, b) = (common::frames_at(&transition, (48, 36)), common::frames_at(&held, (48, 36)));
    let distance: f64 = a[5].pixels().zip(b[5].pixels()).map(|(p, q)| (0..3).map(|k| (p[k] as f64 - q[k] as f64).abs()).sum::<f64>()).sum::<f64>()
        / (3.0 * 48.0 * 36.0);
    assert!(distance > 10.0, "the last frame is {distance:.1} levels from the first style's painting: the blend did not reach the second style");
}

#[test]
fn bad_keys_are_refused_before_any_work() {
    let dir = common::scratch_dir("keyframes-refused");
    let input = clip(&dir, 2);
    let photo = dir.join("photo.png");
    common::synthetic_content(48, 36).save(&photo).unwrap();
    let styles = styles(&dir);
    let (a, b) = (styles[0].to_str().unwrap(), styles[1].to_str().unwrap());
    let output = dir.join("out.mkv");
    let input_text = input.to_str().unwrap();
    let photo_text = photo.to_str().unwrap();
    for (args, code, names, problem) in [
        (vec![input_text, "--style", a, "--style-weight", "0s=1e-4,1e-3"], 2, "--style-weight", "not numbers and keys together"),
        (vec![input_text, "--style", a, "--style-weight", "2s=1e-4,1s=1e-3"], 2, "--style-weight", "keys must increase (2s comes before 1s)"),
        (vec![input_text, "--style", a, "--style-weight", "0s=1e-4,5=1e-3"], 2, "--style-weight", "keys mix times and frame numbers"),
        (vec![input_text, "--style", a, "--style-weight", "0=1e-4"], 2, "--style-weight", "not a key"),
        (vec![input_text, "--style", &format!("{a},{b}"), "--style-weights", "0s=1,2s=0:1"], 1, "--style-weights", "the blend at 0s has 1 weights for 2 style images"),
        (vec![photo_text, "--style", a, "--style-weight", "0s=1e-4,1s=1e-3"], 2, "--style-weight", "are for videos"),
        (vec![input_text, "--style", a, "--tv-weight", "1s=0", "--preview", "grid.png"], 2, "--tv-weight", "--preview paints cells apart"),
        (vec![input_text, "--style", a, "--style-weight", "1=1e-4,2=1e-3", "--segment", "1/2"], 1, "--segment", "give them as times"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_stylize-video")).args(&args).args(["-o", output.to_str().unwrap(), "--size", "48"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {stderr}");
        common::assert_one_error(&stderr, names, problem);
        assert!(!output.exists() && !dir.join("out.mkv.partial").exists(), "{args:?}");
    }
}
