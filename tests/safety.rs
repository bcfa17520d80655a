//! The tool never writes over a file it reads, not even with -y: each case of the hostile-user
//! battery (issue: reliability, round two) is refused before any work, with a line that names
//! both files, and the file is left byte for byte as it was.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::clips::{make_clip, ClipSpec};
use stylize_video::jobs::batch::{run_batch, BatchItem};
use stylize_video::jobs::pipeline::{run_video, VideoJob};
use stylize_video::jobs::still::{run_still, StillJob};
use stylize_video::progress::NoProgress;

fn style_copy(dir: &Path) -> PathBuf {
    let style = dir.join("st.jpg");
    std::fs::copy(common::repo_path("samples/starry_night.jpg"), &style).unwrap();
    style
}

fn photo(dir: &Path) -> PathBuf {
    let photo = dir.join("photo.png");
    common::synthetic_content(48, 40).save(&photo).unwrap();
    photo
}

/// Runs `attempt` and checks it fails naming `expected` parts, and that `kept` is unchanged.
fn refused(kept: &[&Path], attempt: impl FnOnce() -> String, expected: &[&str]) {
    let before: Vec<Vec<u8>> = kept.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let err = attempt();
    for part in expected.iter().chain(&["never writes over a file it reads"]) {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
    assert_eq!(err.lines().count(), 1, "{err}");
    for (path, bytes) in kept.iter().zip(before) {
        assert_eq!(std::fs::read(path).unwrap(), bytes, "{} changed", path.display());
    }
}

fn still(content: &Path, style: &Path, output: &Path) -> StillJob {
    StillJob { size: 32, iterations: 1, overwrite: true, ..StillJob::with_defaults(content.into(), style.into(), output.into()) }
}

#[test]
fn a_still_never_writes_over_its_input_style_or_init_even_with_y() {
    let dir = common::scratch_dir("safety-still");
    let (photo, style) = (photo(&dir), style_copy(&dir));
    let run = |job: StillJob| run_still(&job, &mut NoProgress).unwrap_err().to_string();
    refused(&[&photo], || run(still(&photo, &style, &photo)), &["-o would write over the input", "photo.png"]);
    refused(&[&style], || run(still(&photo, &style, &style)), &["-o would write over --style", "st.jpg"]);
    refused(&[&photo], || run(StillJob { report: Some(photo.clone()), ..still(&photo, &style, &dir.join("out.png")) }), &["--report"]);
    // The same file under another spelling.
    let spelled = dir.join(".").join("photo.png");
    refused(&[&photo], || run(still(&photo, &style, &spelled)), &["the input"]);
    assert!(!dir.join("out.png").exists(), "nothing written before the refusal");

    // Stills obey -y like videos: an existing output is replaced only with it.
    let out = dir.join("out.png");
    run_still(&still(&photo, &style, &out), &mut NoProgress).unwrap();
    let err = run_still(&StillJob { overwrite: false, ..still(&photo, &style, &out) }, &mut NoProgress).unwrap_err().to_string();
    assert!(err.contains("already exists") && err.contains("-y"), "{err}");
    run_still(&still(&photo, &style, &out), &mut NoProgress).unwrap();
}

/// A 12-frame 64×48 clip (0.48 s at 25 fps) and a copy of the style in `dir`, and a job that
/// paints it at 32 px, one iteration a frame, into `dir/out.mp4`.
fn quick_video_job(dir: &Path) -> VideoJob {
    let input = dir.join("in.mp4");
    make_clip(&input, &ClipSpec::new(64, 48));
    VideoJob { size: 32, first_iterations: 1, iterations: 1, max_iterations: None, ..VideoJob::with_defaults(input, style_copy(dir), dir.join("out.mp4")) }
}

/// The error a video job stops with.
fn video_error(job: VideoJob) -> String {
    run_video(&job, &mut NoProgress, &AtomicBool::new(false)).unwrap_err().to_string()
}

#[test]
fn a_video_never_writes_over_its_input_even_with_y() {
    let dir = common::scratch_dir("safety-video");
    let base = VideoJob { overwrite: true, ..quick_video_job(&dir) };
    let (input, style) = (base.input.clone(), base.style.paths[0].clone());
    let job = |output: &Path| VideoJob { output: output.into(), ..base.clone() };
    refused(&[&input], || video_error(job(&input)), &["-o would write over the input", "in.mp4"]);
    refused(&[&input], || video_error(VideoJob { report: Some(input.clone()), ..job(&dir.join("out.mp4")) }), &["--report would write over the input"]);
    refused(&[&style], || video_error(VideoJob { report: Some(style.clone()), ..job(&dir.join("out.mp4")) }), &["--report would write over --style"]);
    assert!(!dir.join("out.mp4").exists() && !dir.join("out.mp4.partial").exists());
}

#[test]
fn a_sequence_output_never_names_the_input_frames_even_with_y() {
    let dir = common::scratch_dir("safety-sequence");
    let frames = dir.join("shots");
    std::fs::create_dir_all(&frames).unwrap();
    for i in 1..=3 {
        common::clips::frame_image(i, 48, 32).save(frames.join(format!("f_{i:04}.png"))).unwrap();
    }
    let pattern = frames.join("f_%04d.png");
    let first = frames.join("f_0001.png");
    let style = style_copy(&dir);
    let job = |input: &Path, output: &Path| VideoJob {
        size: 32,
        first_iterations: 1,
        iterations: 1,
        max_iterations: None,
        overwrite: true,
        ..VideoJob::with_defaults(input.into(), style.clone(), output.into())
    };
    refused(&[&first], || video_error(job(&pattern, &pattern)), &["-o would write over", "f_0001.png"]);
    refused(&[&first], || video_error(job(&frames, &frames.join("g_%04d.png"))), &["-o would write over the input"]);
    refused(&[&first], || video_error(VideoJob { frames_dir: Some(frames.clone()), ..job(&frames, &dir.join("out.mp4")) }), &["--frames-dir"]);
}

#[test]
fn a_batch_never_writes_one_files_output_over_anothers_input() {
    let dir = common::scratch_dir("safety-batch");
    let (a, style) = (photo(&dir), style_copy(&dir));
    // `stylize-video photo.png photo-stylized.png`: the first output is the second input.
    let b = dir.join("photo-stylized.png");
    common::synthetic_content(40, 40).save(&b).unwrap();
    let items = vec![
        BatchItem::Still(still(&a, &style, &b)),
        BatchItem::Still(still(&b, &style, &dir.join("photo-stylized-stylized.png"))),
    ];
    refused(
        &[&a, &b],
        || run_batch(&items, &[], &mut NoProgress, &AtomicBool::new(false)).unwrap_err().to_string(),
        &["-o would write over the input", "photo-stylized.png"],
    );
    assert!(!dir.join("photo-stylized-stylized.png").exists(), "no file was started");
}

#[test]
fn bad_values_are_refused_before_any_work_naming_the_option_and_value() {
    let dir = common::scratch_dir("safety-values");
    let job = quick_video_job(&dir); // 0.48 s
    let style = job.style.paths[0].clone();
    let err = video_error(VideoJob { max_frames: Some(0), ..job.clone() });
    assert!(err.contains("--max-frames") && err.contains("got 0"), "{err}");
    let err = video_error(VideoJob { start: Some(159.0), ..job.clone() });
    assert!(err.contains("--start 159") && err.contains("past the end") && err.contains("in.mp4"), "{err}");
    let err = video_error(VideoJob { duration: Some(0.0), ..job.clone() });
    assert!(err.contains("--duration 0 s is not a usable time"), "{err}");
    let err = video_error(VideoJob { iterations: 5, max_iterations: Some(4), ..job.clone() });
    assert!(err.contains("--max-iterations 4 is below --iterations 5"), "{err}");
    for rate in [-1.0, 0.0] {
        let mut bad = job.clone();
        bad.options.settings.learning_rate = rate;
        let err = video_error(bad);
        assert!(err.contains("--learning-rate: must be a finite number > 0") && err.contains(&format!("got {rate}")), "{err}");
    }
    // Sizes beyond FFmpeg's scaler (it panicked on the decoder thread), and beyond memory.
    let err = video_error(VideoJob { size: 100_000, ..job.clone() });
    assert!(err.contains("--size 100000") && err.contains("at most 16384"), "{err}");
    let err = video_error(VideoJob { size: 16_000, ..job.clone() });
    assert!(err.contains("--size 16000") && err.contains("16000×12000") && err.contains("GiB"), "{err}");
    let photo = photo(&dir);
    let err = run_still(&StillJob { size: 16_000, ..still(&photo, &style, &dir.join("big.png")) }, &mut NoProgress).unwrap_err().to_string();
    assert!(err.contains("--size 16000") && err.contains("needs about"), "{err}");
    // An output that is a directory: refused at once, not after the work.
    let taken = dir.join("taken.mp4");
    std::fs::create_dir_all(&taken).unwrap();
    let err = video_error(VideoJob { output: taken.clone(), overwrite: true, ..job.clone() });
    assert!(err.contains("taken.mp4") && err.contains("is a directory"), "{err}");
    assert!(!dir.join("out.mp4").exists() && !dir.join("out.mp4.partial").exists(), "nothing written");
}

#[test]
fn an_output_container_that_cannot_hold_the_video_is_refused_before_any_work() {
    let dir = common::scratch_dir("safety-containers");
    let job = quick_video_job(&dir);
    // Containers that avformat_query_codec cannot answer for (FFmpeg's muxer refused them only
    // at the header, after the first frame was painted), and a single image.
    for (name, expected) in [
        ("o.gif", "a gif file cannot hold h264 video (use .mp4, .mov or .mkv)"),
        ("o.apng", "a apng file cannot hold h264 video"),
        ("o.y4m", "a yuv4mpegpipe file cannot hold h264 video"),
        ("o.mxf", "a mxf file cannot hold h264 video"),
        ("one.png", "names one image: a video's frames go to a video file"),
    ] {
        let output = dir.join(name);
        let err = video_error(VideoJob { output: output.clone(), ..job.clone() });
        assert!(err.contains(name) && err.contains(expected), "{err}");
        assert!(!output.exists(), "{name} written");
        let work = stylize_video::jobs::workdir::WorkDir::path_for(&output);
        assert!(!work.exists(), "{} made: work was started", work.display());
    }
    // A segment of a clip whose assembly could not be written: refused before the plan.
    let output = dir.join("seg.gif");
    let segment = stylize_video::jobs::segment::SegmentSpec { index: 0, count: 2 };
    let cache = stylize_video::jobs::cache::StylizerCache::default();
    let job_gif = VideoJob { output: output.clone(), ..job.clone() };
    let err = stylize_video::jobs::segment::run_segment(&job_gif, segment, 2, &mut NoProgress, &AtomicBool::new(false), &cache);
    let err = err.expect_err("refused").to_string();
    assert!(err.contains("a gif file cannot hold h264 video"), "{err}");
    assert!(!stylize_video::jobs::workdir::WorkDir::path_for(&output).exists(), "no plan, no frames");
    // A transport stream takes H.264: the check is FFmpeg's muxer, not a list of ours.
    let report = run_video(&VideoJob { output: dir.join("o.ts"), ..job.clone() }, &mut NoProgress, &AtomicBool::new(false)).unwrap();
    assert_eq!(report.totals.frames, 12);
}
