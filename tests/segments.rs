//! A clip split into segments for array jobs: the plan (the same on every node, every frame
//! once, boundaries moved to shot cuts), concurrent segment processes on one work directory
//! (one killed and rerun), assembly, and the joins measured pair by pair against a
//! single-process run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::clips::{make_clip, ClipSpec, ClipVideo};
use common::{assert_same_timing, decode_all, frames_at};
use stylize_video::jobs::cache::StylizerCache;
use stylize_video::jobs::pipeline::{run_video, VideoJob};
use stylize_video::jobs::segment::{assemble, boundaries, run_segment, Assembled, Boundary, Plan, SegmentSpec, DEFAULT_OVERLAP};
use stylize_video::jobs::spec::StylizeOptions;
use stylize_video::jobs::workdir::WorkDir;
use stylize_video::motion::flow::FlowMethod;
use stylize_video::motion::temporal::pair_warping_errors;
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::Settings;

#[test]
fn segment_specs_read_the_engines_task_index() {
    assert_eq!(SegmentSpec::parse("2/5"), Ok(SegmentSpec { index: 2, count: 5 }));
    let env = |name: &str| (name == "JOB_COMPLETION_INDEX").then(|| "3".to_string());
    assert_eq!(SegmentSpec::parse_with("auto/4", env), Ok(SegmentSpec { index: 3, count: 4 }));
    let slurm_first = |name: &str| match name {
        "SLURM_ARRAY_TASK_ID" => Some("1".to_string()),
        "AWS_BATCH_JOB_ARRAY_INDEX" => Some("0".to_string()),
        _ => None,
    };
    assert_eq!(SegmentSpec::parse_with("auto/2", slurm_first), Ok(SegmentSpec { index: 1, count: 2 }));
    let err = SegmentSpec::parse_with("auto/2", |_| None).unwrap_err();
    assert!(err.contains("SLURM_ARRAY_TASK_ID") && err.contains("JOB_COMPLETION_INDEX"), "{err}");
    assert!(SegmentSpec::parse("5/5").unwrap_err().contains("from 0 to 4"));
    assert!(SegmentSpec::parse("1/0").is_err() && SegmentSpec::parse("x/3").is_err() && SegmentSpec::parse("3").is_err());
}

#[test]
fn the_plan_covers_every_frame_once_and_prefers_cuts() {
    // Even split of 100 frames in 4: 25, 50, 75; a cut at 58 is within a quarter segment (6)
    // of none of them, one at 72 is (3 from 75), one at 47 too (3 from 50).
    assert_eq!(
        boundaries(100, 4, &[58]),
        [Boundary { frame: 25, cut: false, overlap: 0 }, Boundary { frame: 50, cut: false, overlap: 0 }, Boundary { frame: 75, cut: false, overlap: 0 }]
    );
    assert_eq!(
        boundaries(100, 4, &[47, 72]),
        [Boundary { frame: 25, cut: false, overlap: 0 }, Boundary { frame: 47, cut: true, overlap: 0 }, Boundary { frame: 72, cut: true, overlap: 0 }]
    );
    // Of two cuts as near, the earlier.
    assert_eq!(boundaries(100, 2, &[47, 53]), [Boundary { frame: 47, cut: true, overlap: 0 }]);

    for (frames, count, cuts) in [(100u64, 4usize, vec![47u64, 72]), (7, 3, vec![]), (54, 3, vec![20]), (10, 10, vec![])] {
        let pts: Vec<i64> = (0..frames as i64).collect();
        let plan = Plan::new(pts.clone(), cuts.clone(), count, 5);
        assert_eq!(plan, Plan::new(pts, cuts.clone(), count, 5), "deterministic");
        assert_eq!(plan.segments.len(), count);
        // Kept ranges tile the clip; runs add the overlap only at boundaries inside a shot.
        let mut next = 0;
        for (i, s) in plan.segments.iter().enumerate() {
            assert_eq!(s.keep.start, next, "{frames}/{count} segment {i}");
            assert!(!s.keep.is_empty());
            next = s.keep.end;
            // The overlap after a boundary inside a shot: 5, or all the later segment keeps.
            let starts_at_cut = i == 0 || cuts.contains(&s.keep.start);
            let ends_at_cut = i + 1 == count || cuts.contains(&s.keep.end);
            let warm_up = if starts_at_cut { 0 } else { 5.min(s.keep.len()) };
            assert_eq!(s.run.start, s.keep.start.saturating_sub(warm_up));
            let run_on = match plan.segments.get(i + 1) {
                Some(next) if !ends_at_cut => 5.min(next.keep.len()),
                _ => 0,
            };
            assert_eq!(s.run.end, s.keep.end + run_on);
            if i > 0 {
                assert_eq!(plan.boundaries[i - 1].overlap, warm_up);
            }
        }
        assert_eq!(next, frames);
    }
}

#[test]
fn a_plan_json_that_is_not_its_own_frames_split_is_refused() {
    let plan = Plan::new((0..40).collect(), vec![17], 3, 4);
    let json = serde_json::to_vec(&plan).unwrap();
    assert_eq!(Plan::from_json(&json).unwrap(), plan);
    // Edited or damaged: a segment that misses frames, a frame count that is not the
    // timestamps', an overlap that is not the plan's, no segments at all.
    let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    value["segments"][1]["keep"]["end"] = 30.into();
    let err = Plan::from_json(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(err.contains("not the split of its own frames"), "{err}");
    for (key, bad) in [("frames", serde_json::json!(41)), ("overlap", 9.into()), ("segments", serde_json::json!([]))] {
        let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        value[key] = bad;
        assert!(Plan::from_json(&serde_json::to_vec(&value).unwrap()).is_err(), "{key}");
    }
    assert!(Plan::from_json(b"{\"frames\": 2").unwrap_err().contains("EOF"));
}

fn style() -> PathBuf {
    common::repo_path("samples/starry_night.jpg")
}

fn small_job(input: &Path, output: &Path) -> VideoJob {
    VideoJob {
        size: 48,
        first_iterations: 4,
        iterations: 2,
        max_iterations: None,
        keep_audio: false,
        options: StylizeOptions { settings: Settings { tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..VideoJob::with_defaults(input.to_path_buf(), style(), output.to_path_buf())
    }
}

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stylize-video"));
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

fn segment_args<'a>(input: &'a Path, output: &'a Path, segment: &'a str) -> Vec<&'a str> {
    let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
    vec![input, "--style", "samples/starry_night.jpg", "-o", output, "--size", "48", "--first-iterations", "30", "--iterations", "6", "-q", "--segment", segment, "--segment-overlap", "3"]
}

#[test]
fn concurrent_segments_one_killed_and_rerun_assemble_every_frame_once() {
    let dir = common::scratch_dir("segments-concurrent");
    let input = dir.join("clip.mkv");
    make_clip(&input, &ClipSpec { frames: 18, video: ClipVideo::Ffv1, ..ClipSpec::new(48, 32) });
    let output = dir.join("out.mp4");
    let root = env!("CARGO_MANIFEST_DIR");

    let assemble_cli = || {
        let mut args = segment_args(&input, &output, "0/2");
        args.truncate(args.len() - 4); // the same command without --segment
        let report = dir.join("assemble.json");
        args.extend(["--assemble", "--report", report.to_str().unwrap()]);
        let run = cli().current_dir(root).args(&args).output().unwrap();
        (run.status.success(), String::from_utf8_lossy(&run.stderr).into_owned(), report)
    };
    // Assembling before any segment ran names what is missing.
    let (ok, err, _) = assemble_cli();
    assert!(!ok && err.contains("no segments to assemble"), "{err}");

    // Segments 0 and 1 at once; segment 1 is killed once it has finished a frame.
    let mut first = cli().current_dir(root).args(segment_args(&input, &output, "0/2")).spawn().unwrap();
    let mut second = cli().current_dir(root).args(segment_args(&input, &output, "1/2")).spawn().unwrap();
    let second_dir = dir.join("out.mp4.partial/segment-1-of-2");
    let started = Instant::now();
    while !second_dir.join("frame_000001.json").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "segment 1 finished no frame");
        std::thread::sleep(Duration::from_millis(20));
    }
    second.kill().unwrap();
    let _ = second.wait();
    assert!(first.wait().unwrap().success());

    let (ok, err, _) = assemble_cli();
    assert!(!ok && err.contains("cannot assemble yet") && err.contains("segment 1/2 lacks"), "{err}");
    assert!(!output.exists());

    // The engine reruns the killed task: it resumes, and the clip assembles.
    let rerun = cli().current_dir(root).args(segment_args(&input, &output, "1/2")).output().unwrap();
    assert!(rerun.status.success(), "{}", String::from_utf8_lossy(&rerun.stderr));
    let (ok, err, report) = assemble_cli();
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let indexes: Vec<u64> = report["frames"].as_array().unwrap().iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..18).collect::<Vec<_>>(), "every frame once, in order");
    assert_eq!(report["blended_frames"], 3);
    assert_same_timing(&input, &output);
    assert!(!dir.join("out.mp4.partial").exists(), "the work directory is removed after assembly");
    // Assembling again (as a dependent job would, rerun): nothing to do, and that is a success.
    let written = std::fs::metadata(&output).unwrap().modified().unwrap();
    let (ok, err, _) = assemble_cli();
    assert!(ok, "{err}");
    assert_eq!(std::fs::metadata(&output).unwrap().modified().unwrap(), written, "the output is left as it was");
}

/// Warping error of every frame pair of `output` (decoded at its size) against the input's flow.
fn pair_errors(input: &Path, output: &Path) -> Vec<Option<f64>> {
    let (_, outputs) = decode_all(output);
    let size = outputs[0].image.dimensions();
    let outputs: Vec<_> = outputs.into_iter().map(|f| f.image).collect();
    pair_warping_errors(&frames_at(input, size), &outputs, FlowMethod::Dis).unwrap()
}

/// The join pair's warping error over the single run's, and the clip's mean warping error over
/// the single run's.
fn join_figures(single: &[Option<f64>], segmented: &[Option<f64>], join: usize) -> (f64, f64) {
    let mean = |errors: &[Option<f64>]| errors.iter().flatten().sum::<f64>() / errors.iter().flatten().count() as f64;
    (segmented[join].unwrap() / single[join].unwrap(), mean(segmented) / mean(single))
}

#[test]
fn joins_inside_a_shot_are_seamless_against_a_single_run() {
    // The bundled hand-held clip (54 frames, real motion), small and few iterations.
    let dir = common::scratch_dir("segments-joins");
    let input = common::repo_path("samples/cup.mp4");
    let job = |output: &Path| VideoJob { size: 64, first_iterations: 40, iterations: 8, ..small_job(&input, output) };
    let single = dir.join("single.mp4");
    run_video(&job(&single), &mut NoProgress, &AtomicBool::new(false)).unwrap();
    let single_errors = pair_errors(&input, &single);

    let cache = StylizerCache::default();
    let segmented = |name: &str, overlap: u64| -> (PathBuf, Vec<Option<f64>>, u64) {
        let output = dir.join(name);
        for index in 0..2 {
            run_segment(&job(&output), SegmentSpec { index, count: 2 }, overlap, &mut NoProgress, &AtomicBool::new(false), &cache).unwrap();
        }
        let Assembled::Written(report) = assemble(&job(&output)).unwrap() else { panic!("nothing assembled") };
        let join = report.boundaries[0].frame;
        let errors = pair_errors(&input, &output);
        (output, errors, join)
    };

    // With the default overlap: the join pair within 1.5× the single run's, the mean within 1.1×.
    // (Two halves that each start cold, --segment-overlap 0, gave 140× at the join pair.)
    let (_, warm, join) = segmented("overlap.mp4", DEFAULT_OVERLAP);
    let (warm_join, warm_mean) = join_figures(&single_errors, &warm, join as usize);
    eprintln!("join at frame {join}, overlap {DEFAULT_OVERLAP}: join pair {warm_join:.2}×, mean {warm_mean:.3}× the single run's");
    assert!(warm_join <= 1.5, "join pair {warm_join:.2}× the single run's");
    assert!(warm_mean <= 1.1, "mean warping error {warm_mean:.3}× the single run's");
}

#[test]
fn a_segment_run_with_other_settings_than_its_siblings_is_refused_before_any_work() {
    let dir = common::scratch_dir("segments-other-settings");
    let input = dir.join("clip.mkv");
    make_clip(&input, &ClipSpec { frames: 6, video: ClipVideo::Ffv1, ..ClipSpec::new(32, 24) });
    let output = dir.join("out.mp4");
    let cache = StylizerCache::new();
    let job = VideoJob { size: 32, first_iterations: 1, iterations: 1, ..small_job(&input, &output) };
    let run = |job: &VideoJob, index: usize| run_segment(job, SegmentSpec { index, count: 2 }, 1, &mut NoProgress, &AtomicBool::new(false), &cache);
    run(&job, 0).unwrap();
    // The second segment with another style: it used to paint, then say a segment differs and
    // to rerun with --fresh, which changed nothing.
    let other_style = dir.join("other.png");
    common::synthetic_style(32, 32).save(&other_style).unwrap();
    let mut other = job.clone();
    other.style.paths = vec![other_style];
    for fresh in [false, true] {
        let err = run(&VideoJob { fresh, ..other.clone() }, 1).expect_err("refused").to_string();
        assert!(err.contains("segment 0/2") && err.contains("other settings (styles)") && err.contains("remove"), "{err}");
    }
    let second = WorkDir::path_for(&output).join("segment-1-of-2");
    assert!(!second.exists(), "no work was started for segment 1");
    // With the siblings' settings it goes through, and the segments assemble.
    assert!(run(&job, 1).unwrap().all_segments_done);
    assert!(matches!(assemble(&job).unwrap(), Assembled::Written(_)));
}
