//! `--passes` (Ruder et al.'s multi-pass) on a tiny hand-held-like clip: more passes lower the
//! independent warping error of the written video against one pass, the report says what each
//! pass did, the output keeps the input's frames and timing, and an interrupted run resumes in
//! the pass and at the frame where it stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use common::clips::{make_clip, ClipSpec, ClipVideo};
use common::{assert_same_timing, frames_at, StopAfter};
use stylize_video::jobs::passes::Direction;
use stylize_video::jobs::pipeline::{run_video, VideoJob, VideoReport};
use stylize_video::jobs::spec::StylizeOptions;
use stylize_video::media::video::VideoCodec;
use stylize_video::motion::flow::FlowMethod;
use stylize_video::motion::temporal::pair_warping_errors;
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::Settings;

/// Six frames of a textured scene shaken like a hand-held camera (uneven steps right and
/// down), with a square crossing it faster: steps a single warm pass does not settle.
fn shaken_scene(i: u32, width: u32, height: u32) -> image::RgbImage {
    const SHAKE: [(f32, f32); 6] = [(0.0, 0.0), (3.0, 1.0), (4.0, 3.0), (8.0, 2.0), (9.0, 5.0), (13.0, 4.0)];
    let (dx, dy) = SHAKE[i as usize % SHAKE.len()];
    let left = 6.0 + 5.0 * i as f32;
    image::RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 + dx, y as f32 + dy);
        if (left..left + 16.0).contains(&(x as f32)) && (10.0..26.0).contains(&(y as f32)) {
            let t = 128.0 + 90.0 * (0.8 * (x as f32 - left)).sin() * (0.6 * y as f32).cos();
            return image::Rgb([t as u8, (255.0 - t) as u8, 60]);
        }
        let t = 120.0 + 50.0 * (0.35 * fx + 0.2 * fy).sin() + 30.0 * (0.5 * fy - 0.15 * fx).cos();
        image::Rgb([70, t as u8, (t * 0.8) as u8])
    })
}

fn shaken_clip(dir: &Path) -> PathBuf {
    let input = dir.join("shaken.mkv");
    make_clip(&input, &ClipSpec { frames: 6, video: ClipVideo::Ffv1, picture: shaken_scene, ..ClipSpec::new(64, 48) });
    input
}

/// 48 px, 20 iterations on frame 1 and 4 on each warm frame (and in each later pass), lossless.
fn job(input: &Path, output: &Path, passes: usize) -> VideoJob {
    VideoJob {
        size: 48,
        first_iterations: 20,
        iterations: 4,
        max_iterations: None,
        passes,
        codec: VideoCodec::Ffv1,
        options: StylizeOptions { settings: Settings { tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..VideoJob::with_defaults(input.to_path_buf(), common::repo_path("samples/starry_night.jpg"), output.to_path_buf())
    }
}

fn run(job: &VideoJob) -> VideoReport {
    run_video(job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

/// The mean warping error of the written video's consecutive frames, measured with the flow of
/// the input's (not the report's own figure).
fn independent_warping_error(input: &Path, output: &Path) -> f64 {
    let outputs = frames_at(output, (48, 36));
    let errors = pair_warping_errors(&frames_at(input, (48, 36)), &outputs, FlowMethod::Dis).unwrap();
    let errors: Vec<f64> = errors.into_iter().flatten().collect();
    assert_eq!(errors.len(), 5, "every pair of the shot has reliable pixels");
    errors.iter().sum::<f64>() / errors.len() as f64
}

#[test]
fn more_passes_lower_the_warping_error_and_the_report_says_what_each_pass_did() {
    let dir = common::scratch_dir("passes-warping-error");
    let input = shaken_clip(&dir);
    let one = run(&job(&input, &dir.join("one.mkv"), 1));
    let three = run(&job(&input, &dir.join("three.mkv"), 3));

    let (e1, e3) = (independent_warping_error(&input, &dir.join("one.mkv")), independent_warping_error(&input, &dir.join("three.mkv")));
    eprintln!("independent warping error: one pass {e1:.3e}, three passes {e3:.3e} ({:.2}×)", e3 / e1);
    assert!(e3 < 0.9 * e1, "three passes {e3:.3e} vs one {e1:.3e}");

    // One pass reports no passes; three report each, alternating in direction.
    assert!(one.totals.passes.is_empty() && one.frames.iter().all(|f| f.pass.is_none()));
    assert_eq!(three.passes, 3);
    let directions: Vec<(usize, Direction)> = three.totals.passes.iter().map(|p| (p.pass, p.direction)).collect();
    assert_eq!(directions, [(1, Direction::Forward), (2, Direction::Backward), (3, Direction::Forward)]);
    assert!(three.totals.passes.iter().all(|p| p.computed_frames == 6));
    // The first pass is the one-pass run (frame 1 with 20 iterations, the others 4); each later
    // pass paints every frame with 4, and the totals count them all.
    assert_eq!(three.totals.passes[0].iterations, one.totals.iterations);
    assert_eq!(one.totals.iterations, 20 + 5 * 4);
    assert!(three.totals.passes[1..].iter().all(|p| p.iterations == 6 * 4));
    assert_eq!(three.totals.iterations, 40 + 2 * 24);
    // The frames are the last pass's: in order, each with its pass and the same timestamps.
    assert!(three.frames.iter().enumerate().all(|(i, f)| f.index == i as u64 && f.pass == Some(3)));
    let times = |r: &VideoReport| r.frames.iter().map(|f| f.pts_seconds).collect::<Vec<_>>();
    assert_eq!(times(&three), times(&one));
    // Later passes start painted and go on painting: the clip's J_style falls pass by pass.
    let styles: Vec<f64> = three.totals.passes.iter().map(|p| p.mean_style).collect();
    assert!(styles[2] < styles[0], "mean J_style per pass {styles:?}");
    // Each forward frame's warping error is against the frame before it; going backward,
    // against the one after it (the last frame there has none).
    assert!(three.frames[0].warping_error.is_none() && three.frames[1..].iter().all(|f| f.warping_error.is_some()));
    assert!(three.frames[1..].iter().all(|f| f.flow_seconds.is_some_and(|s| s > 0.0)), "the later passes' flow is timed");
    assert_same_timing(&input, &dir.join("three.mkv"));
    assert!(!dir.join("three.mkv.partial").exists(), "the work directory (with the passes' frames) is removed");
}

/// A three-pass job on the shaken clip in `dir`, stopped after the first pass and two frames of
/// the second (the last two, going backward); returns the job.
fn stopped_in_pass_two(dir: &Path) -> VideoJob {
    let input = shaken_clip(dir);
    let the_job = job(&input, &dir.join("out.mkv"), 3);
    let stop = AtomicBool::new(false);
    run_video(&the_job, &mut StopAfter { after: 8, finished: 0, stop: &stop }, &stop).unwrap_err();
    assert!(!the_job.output.exists());
    let workdir = dir.join("out.mkv.partial");
    assert!(workdir.join("input_000006.png").is_file() && workdir.join("pass-2/frame_000005.json").is_file());
    assert!(!workdir.join("pass-2/frame_000004.json").exists());
    the_job
}

#[test]
fn an_interrupted_multi_pass_run_resumes_in_the_pass_where_it_stopped() {
    let dir = common::scratch_dir("passes-resume");
    let the_job = stopped_in_pass_two(&dir);

    let resumed = run(&the_job);
    let computed: Vec<u64> = resumed.totals.passes.iter().map(|p| p.computed_frames).collect();
    assert_eq!(computed, [0, 4, 6], "only what was not finished is painted");
    let whole = run(&VideoJob { output: dir.join("whole.mkv"), ..the_job.clone() });
    for (after, uninterrupted) in resumed.frames.iter().zip(&whole.frames) {
        assert!((after.total - uninterrupted.total).abs() <= 1e-3 * uninterrupted.total, "J {} vs {}", after.total, uninterrupted.total);
    }
    assert_same_timing(&the_job.input, &the_job.output);
}

/// A backward pass starts from the clip's last frame: its paintings kept for a longer clip are
/// not those of a shorter one (a rerun with a smaller --max-frames), and are painted again.
#[test]
fn a_pass_kept_for_another_clip_length_is_painted_again() {
    let dir = common::scratch_dir("passes-other-length");
    let the_job = stopped_in_pass_two(&dir);

    let shorter = run(&VideoJob { max_frames: Some(5), ..the_job.clone() });
    let computed: Vec<u64> = shorter.totals.passes.iter().map(|p| p.computed_frames).collect();
    assert_eq!(computed, [0, 5, 5], "the first pass's frames are taken; pass 2's frame 5 was painted after frame 6");
    assert_eq!(shorter.frames.len(), 5);
}

#[test]
fn passes_refuse_zero_and_segments_before_any_work() {
    let dir = common::scratch_dir("passes-refused");
    let input = dir.join("tiny.mkv");
    make_clip(&input, &ClipSpec { frames: 2, video: ClipVideo::Ffv1, ..ClipSpec::new(32, 24) });
    let style = common::repo_path("samples/starry_night.jpg");
    let output = dir.join("out.mkv");
    // The library's check (exit 1) and the command line's (exit 2, as clap's).
    for (args, code, problem) in [
        (vec!["--passes", "0"], 1, "--passes: must be at least 1 (got 0)"),
        (vec!["--passes", "2", "--segment", "1/2"], 2, "--passes paints the whole clip back and forth in one run: it does not split into --segment runs"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_stylize-video"))
            .arg(&input)
            .args(["--style", style.to_str().unwrap(), "-o", output.to_str().unwrap()])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
        assert!(!output.exists() && !dir.join("out.mkv.partial").exists());
    }
}
