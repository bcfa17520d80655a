//! The video pipeline end to end on tiny synthetic clips (made here with ffmpeg-next): frame
//! count, rate, timestamps, duration, audio, pixels, the report, resume after an interruption
//! (a test hook, Ctrl-C and kill -9), and the errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::clips::{frame_image, make_audio_only, make_clip, ClipAudio, ClipSpec, ClipVideo};
use common::{assert_same_timing, decode_all, StopAfter};
use stylize_video::jobs::pipeline::{run_video, OutputSize, VideoJob, VideoReport};
use stylize_video::jobs::progress::FrameRecord;
use stylize_video::jobs::spec::StylizeOptions;
use stylize_video::jobs::workdir::WorkDir;
use stylize_video::media::video::{Deinterlace, StreamKind, VideoCodec};
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::Settings;

fn style_path() -> PathBuf {
    common::repo_path("samples/starry_night.jpg")
}

/// A job with 10 iterations on frame 1 and 1 on the others, at 64 px.
fn job(input: &Path, output: &Path) -> VideoJob {
    VideoJob {
        size: 64,
        first_iterations: 10,
        iterations: 1,
        max_iterations: None,
        options: StylizeOptions { settings: Settings { tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..VideoJob::with_defaults(input.to_path_buf(), style_path(), output.to_path_buf())
    }
}

fn run(job: &VideoJob) -> VideoReport {
    run_video(job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

fn mean_abs_difference(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let b = image::imageops::resize(b, a.width(), a.height(), image::imageops::FilterType::Triangle);
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.as_raw().len() as f64
}

#[test]
fn a_25_fps_clip_with_audio_keeps_its_frames_timing_and_audio() {
    let dir = common::scratch_dir("pipeline-25fps-audio");
    let input = dir.join("in.mp4");
    make_clip(&input, &ClipSpec { audio: Some((ClipAudio::Aac, 0.48)), ..ClipSpec::new(64, 48) });
    let output = dir.join("out.mp4");
    let report_path = dir.join("report.json");
    let frames_dir = dir.join("frames");
    let report = run(&VideoJob { report: Some(report_path.clone()), frames_dir: Some(frames_dir.clone()), ..job(&input, &output) });

    let (out_info, out_frames) = assert_same_timing(&input, &output);
    assert_eq!(out_info.frame_rate, (25, 1));
    assert_eq!((out_info.width, out_info.height), (64, 48));
    let audio: Vec<_> = out_info.other_streams.iter().filter(|s| s.kind == StreamKind::Audio).collect();
    assert_eq!(audio.len(), 1, "{:?}", out_info.other_streams);
    assert_eq!(audio[0].codec, "aac");
    assert!((audio[0].duration_seconds.unwrap() - 0.48).abs() < 0.03, "{:?}", audio[0].duration_seconds);
    // Every frame was stylized: far from its source frame.
    for f in &out_frames {
        let change = mean_abs_difference(&f.image, &frame_image(f.index as u32, 64, 48));
        assert!(change > 10.0, "frame {} barely changed ({change})", f.index);
    }
    // --frames-dir: one PNG per frame, zero-padded names.
    let mut pngs: Vec<String> = std::fs::read_dir(&frames_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    pngs.sort();
    assert_eq!(pngs.len(), 12);
    assert_eq!((pngs[0].as_str(), pngs[11].as_str()), ("frame_000001.png", "frame_000012.png"));
    // The report, as returned and as written.
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let frames = written["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 12);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["index"], i as u64);
        assert!((f["pts_seconds"].as_f64().unwrap() - i as f64 / 25.0).abs() < 1e-9);
        assert_eq!(f["iterations"], if i == 0 { 10 } else { 1 });
        assert_eq!(f["evaluations"], if i == 0 { 11 } else { 2 });
        assert_eq!(f["resumed"], false);
        for key in ["J", "J_content", "J_style", "seconds"] {
            assert!(f[key].as_f64().unwrap() > 0.0, "frame {i} {key}");
        }
    }
    assert_eq!(written["input"]["frame_rate"], serde_json::json!([25, 1]));
    assert_eq!(written["output"]["frames_written"], 12);
    assert_eq!(written["totals"]["frames"], 12);
    assert_eq!(report.totals.iterations, 10 + 11);
    assert_eq!(report.totals.evaluations, 11 + 11 * 2);
    assert_eq!(written["totals"]["evaluations"], 11 + 11 * 2);
    assert!(!WorkDir::path_for(&output).exists(), "the work directory is removed after success");
}

#[test]
fn concatenated_transport_streams_make_one_continuous_video_with_its_audio() {
    // `cat a.ts b.ts`: the second part's clock restarts in the middle of the file.
    let dir = common::scratch_dir("pipeline-ts-discontinuity");
    let (a, b, input) = (dir.join("a.ts"), dir.join("b.ts"), dir.join("ab.ts"));
    make_clip(&a, &ClipSpec { audio: Some((ClipAudio::Aac, 0.48)), ..ClipSpec::new(64, 48) });
    make_clip(&b, &ClipSpec { audio: Some((ClipAudio::Aac, 0.48)), ..ClipSpec::new(64, 48) });
    std::fs::write(&input, [std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()].concat()).unwrap();

    // The decoder delivers all 24 frames, 1/25 s apart across the join.
    let (_, frames) = decode_all(&input);
    assert_eq!(frames.len(), 24);
    for pair in frames.windows(2) {
        let step = pair[1].pts_seconds - pair[0].pts_seconds;
        assert!((step - 0.04).abs() < 1e-6, "frame {} → {}: {step} s", pair[0].index, pair[1].index);
    }

    let output = dir.join("out.mp4");
    let report = run(&VideoJob { size: 32, ..job(&input, &output) });
    assert_eq!(report.totals.decoded.timestamp_discontinuities, 1);
    let first = report.totals.decoded.first_discontinuity_seconds.unwrap();
    assert!((first - 0.48).abs() < 0.05, "the join is at 0.48 s, found at {first}");
    let (out_info, out_frames) = decode_all(&output);
    assert_eq!(out_frames.len(), 24);
    assert!((out_frames[23].pts_seconds - 23.0 / 25.0).abs() < 1e-6, "{}", out_frames[23].pts_seconds);
    let audio: Vec<_> = out_info.other_streams.iter().filter(|s| s.kind == StreamKind::Audio).collect();
    assert_eq!(audio.len(), 1, "{:?}", out_info.other_streams);
    // Both parts' audio, end to end (the second part's 0.48 s after the first's).
    assert!((audio[0].duration_seconds.unwrap() - 0.96).abs() < 0.05, "{:?}", audio[0].duration_seconds);
}

#[test]
fn interlaced_frames_and_a_change_of_shape_are_counted_and_said() {
    let dir = common::scratch_dir("pipeline-decode-notes");
    // Interlaced H.264: every frame is flagged; deinterlaced by default, or painted as it is.
    let interlaced = dir.join("interlaced.mp4");
    make_clip(&interlaced, &ClipSpec { frames: 4, interlaced: true, ..ClipSpec::new(64, 48) });
    let report = run(&VideoJob { size: 32, ..job(&interlaced, &dir.join("i-out.mp4")) });
    let decoded = &report.totals.decoded;
    assert_eq!((decoded.deinterlaced_frames, decoded.interlaced_frames, decoded.reshaped_frames), (4, 0, 0));
    assert_eq!(report.totals.frames, 4);
    let report = run(&VideoJob { size: 32, deinterlace: Deinterlace::Off, ..job(&interlaced, &dir.join("i-off.mp4")) });
    assert_eq!((report.totals.decoded.deinterlaced_frames, report.totals.decoded.interlaced_frames), (0, 4));
    // One frame per field: a 25i clip of 4 frames becomes 8 frames at 50 fps, as long.
    let fields = dir.join("i-fields.mp4");
    let report = run(&VideoJob { size: 32, deinterlace: Deinterlace::Field, ..job(&interlaced, &fields) });
    assert_eq!((report.totals.frames, report.totals.decoded.frame_per_field), (8, true));
    let ((source, _), (written, frames)) = (decode_all(&interlaced), decode_all(&fields));
    assert_eq!((written.frame_rate, frames.len()), ((50, 1), 8));
    let span = |info: &stylize_video::media::video::VideoInfo| info.duration_seconds.unwrap();
    assert!((span(&written) - span(&source)).abs() <= 0.02, "{} s written, {} s source", span(&written), span(&source));
    // A stream whose pictures change shape mid-way (4:3, then square): the square frames are
    // scaled to the first's size, and counted.
    let (a, b, joined) = (dir.join("a.ts"), dir.join("b.ts"), dir.join("joined.ts"));
    make_clip(&a, &ClipSpec { frames: 4, ..ClipSpec::new(64, 48) });
    make_clip(&b, &ClipSpec { frames: 3, ..ClipSpec::new(48, 48) });
    std::fs::write(&joined, [std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()].concat()).unwrap();
    let output = dir.join("j-out.mp4");
    let report = run(&VideoJob { size: 32, report: Some(dir.join("j.json")), ..job(&joined, &output) });
    assert_eq!(report.totals.frames, 7);
    assert_eq!((report.totals.decoded.reshaped_frames, report.totals.decoded.first_other_size), (3, Some((48, 48))));
    assert_eq!(report.totals.decoded.interlaced_frames, 0);
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("j.json")).unwrap()).unwrap();
    assert_eq!(written["totals"]["reshaped_frames"], 3);
    assert_eq!(written["totals"]["first_other_size"], serde_json::json!([48, 48]));
    // The CLI says each in a line.
    for (args, note) in [
        (&[][..], "note: 4 frames are interlaced: each was rebuilt from its two fields before painting (bwdif"),
        (&["--deinterlace", "off"][..], "note: 4 frames are interlaced: painted as progressive pictures, their fields together"),
    ] {
        let out = cli()
            .args([interlaced.to_str().unwrap(), "--style", style_path().to_str().unwrap(), "--size", "32", "--first-iterations", "1"])
            .args(["--iterations", "1", "-y", "-o", dir.join("i-cli.mp4").to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.contains(note), "{stderr}");
    }
}

#[test]
fn an_odd_sized_ntsc_rate_clip_without_audio() {
    let dir = common::scratch_dir("pipeline-odd-ntsc");
    let input = dir.join("in.mkv");
    make_clip(&input, &ClipSpec { rate: (30000, 1001), video: ClipVideo::Ffv1, ..ClipSpec::new(63, 47) });
    // H.264 needs even sizes: padded by one pixel each way.
    let output = dir.join("out.mp4");
    let report = run(&VideoJob { size: 63, ..job(&input, &output) });
    let (out_info, _) = assert_same_timing(&input, &output);
    assert_eq!((report.width, report.height), (63, 47));
    assert_eq!((out_info.width, out_info.height), (64, 48));
    assert!(out_info.other_streams.is_empty());
    // Lossless FFV1 keeps the exact size.
    let output = dir.join("out.mkv");
    run(&VideoJob { size: 63, codec: VideoCodec::Ffv1, ..job(&input, &output) });
    let (out_info, _) = assert_same_timing(&input, &output);
    assert_eq!((out_info.width, out_info.height), (63, 47));
}

#[test]
fn a_rotated_phone_clip_comes_out_upright_and_at_source_size_on_request() {
    let dir = common::scratch_dir("pipeline-rotation");
    let input = dir.join("in.mp4");
    make_clip(&input, &ClipSpec { rotation: 90, frames: 4, ..ClipSpec::new(64, 48) });
    let output = dir.join("out.mp4");
    let report = run(&VideoJob { size: 32, output_size: OutputSize::Source, ..job(&input, &output) });
    assert_eq!((report.width, report.height), (24, 32), "processed upright at --size");
    let (out_info, _) = assert_same_timing(&input, &output);
    assert_eq!((out_info.width, out_info.height, out_info.rotation), (48, 64, 0), "written upright at the source's display size");
}

#[test]
fn start_and_duration_cut_the_video_and_its_audio() {
    let dir = common::scratch_dir("pipeline-cut");
    let input = dir.join("in.mp4");
    make_clip(&input, &ClipSpec { audio: Some((ClipAudio::Aac, 0.48)), ..ClipSpec::new(64, 48) });
    let output = dir.join("out.mp4");
    let report = run(&VideoJob { start: Some(0.2), duration: Some(0.2), ..job(&input, &output) });
    let pts: Vec<f64> = report.frames.iter().map(|f| f.pts_seconds).collect();
    assert_eq!(pts.len(), 5);
    assert!(pts.iter().zip([0.20, 0.24, 0.28, 0.32, 0.36]).all(|(a, b)| (a - b).abs() < 1e-6), "{pts:?}");
    let (out_info, out_frames) = decode_all(&output);
    assert_eq!(out_frames.len(), 5);
    assert!(out_frames[0].pts_seconds.abs() < 1e-6, "the cut starts at 0");
    let audio = out_info.other_streams.iter().find(|s| s.kind == StreamKind::Audio).expect("audio kept");
    assert!((audio.duration_seconds.unwrap() - 0.2).abs() < 0.03, "{:?}", audio.duration_seconds);
    // --max-frames caps the count.
    let output = dir.join("capped.mp4");
    assert_eq!(run(&VideoJob { max_frames: Some(3), ..job(&input, &output) }).frames.len(), 3);
    assert_eq!(decode_all(&output).1.len(), 3);
}

/// Raises the stop flag, as Ctrl-C does, once `after` frames are finished.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn an_interrupted_run_resumes_without_recomputing_finished_frames() {
    let dir = common::scratch_dir("pipeline-resume");
    let input = dir.join("in.mp4");
    make_clip(&input, &ClipSpec::new(64, 48));
    let output = dir.join("out.mp4");
    let the_job = job(&input, &output);

    let stop = AtomicBool::new(false);
    let err = run_video(&the_job, &mut StopAfter { after: 3, finished: 0, stop: &stop }, &stop).unwrap_err().to_string();
    assert!(err.contains("3 finished frames") && err.contains("run the same command again"), "{err}");
    assert!(!output.exists(), "no output under its name after an interruption");
    assert_eq!(names_in(&dir), ["in.mp4", "out.mp4.partial"], "no temporary file left");
    let workdir = WorkDir::path_for(&output);
    let first_run: Vec<FrameRecord> =
        (1..=3).map(|i| serde_json::from_str(&std::fs::read_to_string(workdir.join(format!("frame_{i:06}.json"))).unwrap()).unwrap()).collect();

    // Other settings: refused, naming the difference and --fresh.
    let mut changed = the_job.clone();
    changed.options.settings.style_weight = 1e-2;
    let err = run_video(&changed, &mut NoProgress, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("different settings") && err.contains("settings") && err.contains("--fresh"), "{err}");

    // The same command again: frames 1–3 come from the work directory, 4–12 are computed.
    let report = run(&the_job);
    assert_eq!(report.totals.resumed_frames, 3);
    assert_eq!(report.totals.computed_frames, 9);
    for (i, f) in report.frames.iter().enumerate() {
        assert_eq!(f.resumed, i < 3, "frame {i}");
    }
    for (resumed, original) in report.frames[..3].iter().zip(&first_run) {
        assert_eq!((resumed.total, resumed.iterations), (original.total, original.iterations));
    }
    assert_same_timing(&input, &output);
    assert!(!workdir.exists());

    // --fresh after another interruption starts over.
    let stop = AtomicBool::new(false);
    let again = VideoJob { overwrite: true, ..the_job.clone() };
    run_video(&again, &mut StopAfter { after: 2, finished: 0, stop: &stop }, &stop).unwrap_err();
    let fresh = run(&VideoJob { fresh: true, ..again });
    assert_eq!(fresh.totals.resumed_frames, 0);
    // The first frame computed after the resume is the one an uninterrupted run computes: it
    // starts from the work directory's frame (as written) and its L-BFGS from the curvature that
    // frame's record kept.
    assert!(report.frames[2].levels[0].curvature_scale.is_some_and(|s| s > 0.0), "{:?}", report.frames[2].levels);
    assert_eq!(report.frames[3].total, fresh.frames[3].total);
    let steps = |f: &FrameRecord| f.levels.iter().map(|l| (l.iterations, l.evaluations, l.curvature_scale)).collect::<Vec<_>>();
    assert_eq!(steps(&report.frames[3]), steps(&fresh.frames[3]));
}

#[test]
fn a_damaged_work_frame_is_recomputed_with_the_rest_of_its_shot_not_fatal() {
    let dir = common::scratch_dir("pipeline-repair");
    let input = dir.join("in.mp4");
    make_clip(&input, &ClipSpec::new(64, 48));
    let output = dir.join("out.mp4");
    let the_job = job(&input, &output);
    let uninterrupted = run(&VideoJob { output: dir.join("whole.mp4"), ..the_job.clone() });

    let stop = AtomicBool::new(false);
    run_video(&the_job, &mut StopAfter { after: 5, finished: 0, stop: &stop }, &stop).unwrap_err();
    // What a power cut can leave: frame 3's image cut short.
    let workdir = WorkDir::path_for(&output);
    let damaged = workdir.join("frame_000003.png");
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();

    let report = run(&the_job);
    let what: Vec<(bool, bool)> = report.frames.iter().map(|f| (f.resumed, f.repaired.is_some())).collect();
    // Frames 1–2 resumed; 3 (damaged) and 4–5 (its shot: started from it) recomputed and said
    // so; the rest computed as new.
    let mut expected = vec![(true, false), (true, false), (false, true), (false, true), (false, true)];
    expected.resize(12, (false, false));
    assert_eq!(what, expected);
    assert!(report.frames[2].repaired.as_deref().is_some_and(|why| why.contains("frame_000003.png")), "{:?}", report.frames[2].repaired);
    assert!(report.frames[3].repaired.as_deref().is_some_and(|why| why.contains("frame 3")), "{:?}", report.frames[3].repaired);
    assert_eq!((report.totals.resumed_frames, report.totals.repaired_frames), (2, 3));
    // The repaired run is the uninterrupted one, frame for frame.
    let totals = |r: &VideoReport| r.frames.iter().map(|f| f.total).collect::<Vec<_>>();
    assert_eq!(totals(&report), totals(&uninterrupted));
    assert_same_timing(&input, &output);

    // A record that is not JSON, and an image replaced by another (the checksum): both
    // recomputed.
    let stop = AtomicBool::new(false);
    let again = VideoJob { overwrite: true, ..the_job.clone() };
    run_video(&again, &mut StopAfter { after: 4, finished: 0, stop: &stop }, &stop).unwrap_err();
    std::fs::write(workdir.join("frame_000004.json"), "{ not json").unwrap();
    std::fs::copy(workdir.join("frame_000001.png"), workdir.join("frame_000002.png")).unwrap();
    let report = run(&again);
    let repaired: Vec<usize> = report.frames.iter().filter(|f| f.repaired.is_some()).map(|f| f.index as usize + 1).collect();
    assert_eq!(repaired, [2, 3, 4]);
    assert!(report.frames[1].repaired.as_deref().is_some_and(|why| why.contains("checksum")), "{:?}", report.frames[1].repaired);
    assert_eq!(totals(&report), totals(&uninterrupted));
}

#[test]
fn a_rerun_with_a_smaller_max_frames_keeps_the_frames_it_does_not_use() {
    let dir = common::scratch_dir("pipeline-max-frames");
    let input = dir.join("in.mp4");
    make_clip(&input, &ClipSpec::new(64, 48));
    let output = dir.join("out.mp4");
    let the_job = job(&input, &output);
    let stop = AtomicBool::new(false);
    run_video(&the_job, &mut StopAfter { after: 5, finished: 0, stop: &stop }, &stop).unwrap_err();

    let report = run(&VideoJob { max_frames: Some(2), ..the_job.clone() });
    assert_eq!((report.frames.len(), report.totals.resumed_frames, report.totals.kept_beyond), (2, 2, 3));
    assert_eq!(decode_all(&output).1.len(), 2);
    let workdir = WorkDir::path_for(&output);
    assert!((1..=5).all(|i| workdir.join(format!("frame_{i:06}.png")).is_file()), "the finished frames are kept");

    // The whole clip afterwards uses all five.
    let report = run(&VideoJob { overwrite: true, ..the_job });
    assert_eq!((report.frames.len(), report.totals.resumed_frames, report.totals.kept_beyond), (12, 5, 0));
    assert!(!workdir.exists());
}

// ---- the command line ----

fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stylize-video"));
    command.stdin(Stdio::null());
    command
}

/// Starts the CLI on a clip slow enough to interrupt, waits until it has finished `frames`
/// frames, and returns the running process.
fn start_and_wait_for_frames(args: &[&str], workdir: &Path, frames: usize) -> std::process::Child {
    let mut child = cli().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let finished = std::fs::read_dir(workdir).map(|d| d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json") && !e.as_ref().unwrap().file_name().to_string_lossy().starts_with("settings")).count()).unwrap_or(0);
        if finished >= frames {
            return child;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run on a 24-frame clip slow enough to interrupt, in a scratch directory of its own.
struct SlowRun {
    dir: PathBuf,
    output: PathBuf,
    report: PathBuf,
    args: Vec<String>,
}

impl SlowRun {
    fn new(name: &str) -> Self {
        let dir = common::scratch_dir(name);
        let input = dir.join("in.mp4");
        make_clip(&input, &ClipSpec { frames: 24, ..ClipSpec::new(64, 48) });
        let (output, report) = (dir.join("out.mp4"), dir.join("report.json"));
        let args = [
            input.to_str().unwrap(), "--style", "samples/starry_night.jpg", "-o", output.to_str().unwrap(),
            "--report", report.to_str().unwrap(), "--size", "64", "--first-iterations", "2", "--iterations", "12", "--tol", "0",
        ]
        .map(String::from)
        .to_vec();
        Self { dir, output, report, args }
    }

    /// Starts it and returns the running process once it has finished two frames.
    fn start(&self) -> std::process::Child {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        start_and_wait_for_frames(&args, &WorkDir::path_for(&self.output), 2)
    }
}

fn resumed_frames(report: &Path) -> Vec<bool> {
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    r["frames"].as_array().unwrap().iter().map(|f| f["resumed"].as_bool().unwrap()).collect()
}

#[test]
fn ctrl_c_stops_cleanly_and_the_same_command_resumes() {
    let run = SlowRun::new("pipeline-sigint");
    let child = run.start();
    let SlowRun { output, report, args, .. } = run;
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again to resume"), "{stderr}");
    assert!(!output.exists());

    let out = cli().args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = resumed_frames(&report);
    assert_eq!(resumed.len(), 24);
    let k = resumed.iter().take_while(|r| **r).count();
    assert!(k >= 2 && resumed[k..].iter().all(|r| !r), "{resumed:?}");
    assert_eq!(decode_all(&output).1.len(), 24);
    // Painted in one level, a video's frames get the default margin (src/cli/build.rs).
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["settings"]["margin"], stylize_video::stylize::margin::DEFAULT_VIDEO_MARGIN);
}

#[test]
fn after_kill_9_the_same_command_resumes_and_cleans_up() {
    let run = SlowRun::new("pipeline-sigkill");
    let mut child = run.start();
    let SlowRun { dir, output, report, args } = run;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(!output.exists());

    let out = cli().args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(resumed_frames(&report).iter().take_while(|r| **r).count() >= 2);
    assert_eq!(decode_all(&output).1.len(), 24);
    assert_eq!(names_in(&dir), ["in.mp4", "out.mp4", "report.json"], "stale temporary files removed");
}

#[test]
fn a_second_run_on_the_same_output_is_refused_and_leaves_the_first_its_files() {
    let run = SlowRun::new("pipeline-second-run");
    let first = run.start();
    let SlowRun { dir, output, args, .. } = run;
    // The first run's encoder is writing its temporary file beside the output by now.
    let temporary = format!(".out.mp4.partial-{}", first.id());
    assert!(names_in(&dir).contains(&temporary), "{:?}", names_in(&dir));
    for extra in [&[][..], &["-y", "--fresh"][..]] {
        let out = cli().args(&args).args(extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("another stylize-video run"), "{stderr}");
        assert!(names_in(&dir).contains(&temporary), "the second run {extra:?} deleted the first's file: {:?}", names_in(&dir));
    }
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(decode_all(&output).1.len(), 24);
    assert_eq!(names_in(&dir), ["in.mp4", "out.mp4", "report.json"]);
}

#[test]
fn bad_inputs_are_one_line_errors_that_leave_no_output() {
    let dir = common::scratch_dir("pipeline-errors");
    let clip = dir.join("clip.mp4");
    make_clip(&clip, &ClipSpec { frames: 2, ..ClipSpec::new(32, 24) });
    let text = dir.join("notes.mp4");
    std::fs::write(&text, "not a video\n").unwrap();
    let wav = dir.join("voice.wav");
    make_audio_only(&wav, 0.2);
    let empty = dir.join("empty.avi");
    make_clip(&empty, &ClipSpec { frames: 0, video: ClipVideo::Ffv1, ..ClipSpec::new(32, 24) });
    let bad_style = dir.join("style.jpg");
    std::fs::write(&bad_style, "not a picture\n").unwrap();
    let existing = dir.join("existing.mp4");
    std::fs::write(&existing, "precious").unwrap();
    let before = names_in(&dir);
    let out = dir.join("out.mp4");
    let (clip_s, out_s) = (clip.to_str().unwrap(), out.to_str().unwrap());
    let style = "samples/starry_night.jpg";
    let missing = dir.join("missing.mp4");
    let unknown_extension = dir.join("out.avi2");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![missing.to_str().unwrap(), "--style", style, "-o", out_s], "missing.mp4", "file not found"),
        (vec![text.to_str().unwrap(), "--style", style, "-o", out_s], "notes.mp4", "not a video"),
        (vec![wav.to_str().unwrap(), "--style", style, "-o", out_s], "voice.wav", "no video stream"),
        (vec![empty.to_str().unwrap(), "--style", style, "-o", out_s], "empty.avi", "no video frames"),
        (vec![clip_s, "--style", bad_style.to_str().unwrap(), "-o", out_s], "style.jpg", "not an image"),
        (vec![clip_s, "--style", style, "-o", "/nonexistent-dir/out.mp4"], "out.mp4", "does not exist"),
        (vec![clip_s, "--style", style, "-o", existing.to_str().unwrap()], "existing.mp4", "already exists"),
        (vec![clip_s, "--style", style, "-o", unknown_extension.to_str().unwrap()], "out.avi2", "container"),
        (vec![clip_s, "--style", style, "-o", out_s, "--start", "ten"], "ten", "not a time"),
        (vec![clip_s, "--style", style, "-o", out_s, "--init-video", "warped"], "warped", "--init-video"),
        (vec![clip_s, "--style", style, "-o", out_s, "--temporal-frames", "1,0"], "--temporal-frames", "from 1"),
        (vec![clip_s, "--style", style, "-o", out_s, "--temporal-weight=-1"], "--temporal-weight", "≥ 0"),
        (vec![clip_s, "--style", style, "-o", out_s, "--flow", "farneback"], "farneback", "--flow"),
    ];
    for (mut args, names, problem) in cases {
        args.extend(["--size", "32", "--first-iterations", "1", "--iterations", "1", "--quiet"]);
        let result = cli().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} should fail");
        common::assert_one_error(&stderr, names, problem);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(names_in(&dir), before, "{args:?} left files behind");
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "precious");
}

// ---- temporal coherence ----

/// Frames 0–7: a textured square moving 3 px a frame to the right over a still textured
/// background; frames 8–11: another scene (a cut).
fn moving_square(i: u32, width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        if i >= 8 {
            let v = (40.0 + 30.0 * (0.9 * fx).sin() * (0.7 * fy).cos()) as u8;
            return image::Rgb([v / 2, v, 200 - v]);
        }
        let left = 8 + 3 * i;
        if (left..left + 20).contains(&x) && (14..34).contains(&y) {
            let (u, v) = (fx - left as f32, fy);
            let t = 128.0 + 90.0 * (0.8 * u).sin() * (0.6 * v).cos();
            image::Rgb([t as u8, (255.0 - t) as u8, 60])
        } else {
            let t = 120.0 + 50.0 * (0.35 * fx + 0.2 * fy).sin() + 30.0 * (0.5 * fy - 0.15 * fx).cos();
            image::Rgb([70, t as u8, (t * 0.8) as u8])
        }
    })
}

fn moving_square_clip(dir: &Path) -> PathBuf {
    let input = dir.join("square.mkv");
    make_clip(&input, &ClipSpec { video: ClipVideo::Ffv1, picture: moving_square, ..ClipSpec::new(64, 48) });
    input
}

fn temporal_job(input: &Path, output: &Path) -> VideoJob {
    VideoJob { first_iterations: 20, iterations: 15, codec: VideoCodec::Ffv1, ..job(input, output) }
}

fn mean_warping_error(report: &VideoReport, frames: std::ops::Range<usize>) -> f64 {
    let errors: Vec<f64> = report.frames[frames].iter().map(|f| f.warping_error.expect("a following frame has a warping error")).collect();
    errors.iter().sum::<f64>() / errors.len() as f64
}

#[test]
fn the_temporal_loss_steadies_a_moving_object_and_a_cut_starts_afresh() {
    let dir = common::scratch_dir("pipeline-temporal");
    let input = moving_square_clip(&dir);
    let with = run(&temporal_job(&input, &dir.join("with.mkv")));
    let without_job = temporal_job(&input, &dir.join("without.mkv"));
    let mut without_job = without_job;
    without_job.options.settings.temporal_weight = 0.0;
    let without = run(&without_job);

    // The cut at frame 8, and only there: started afresh with the first frame's budget.
    let cuts: Vec<u64> = with.frames.iter().filter(|f| f.cut).map(|f| f.index).collect();
    assert_eq!(cuts, [8]);
    assert_eq!(with.totals.cuts, 1);
    assert_eq!(with.frames[8].iterations, 20);
    assert_eq!(with.frames[8].warping_error, None);
    assert!(with.frames[..8].iter().chain(&with.frames[9..]).all(|f| f.index == 0 || f.iterations == 15));
    assert!(with.frames[1..8].iter().all(|f| f.flow_seconds.is_some() && f.temporal > 0.0));

    // Within the first shot the temporal loss holds the painting to the moving square.
    let (e_with, e_without) = (mean_warping_error(&with, 1..8), mean_warping_error(&without, 1..8));
    assert!(e_with < 0.6 * e_without, "warping error {e_with} with the temporal loss, {e_without} without");
    let total = with.totals.warping_error.unwrap();
    let all: Vec<f64> = with.frames.iter().filter_map(|f| f.warping_error).collect();
    assert!((total - all.iter().sum::<f64>() / all.len() as f64).abs() < 1e-12 && all.len() == 10);
}

#[test]
fn a_resumed_run_continues_the_flow_chain() {
    let dir = common::scratch_dir("pipeline-temporal-resume");
    let input = moving_square_clip(&dir);
    let output = dir.join("out.mkv");
    let the_job = temporal_job(&input, &output);
    let stop = AtomicBool::new(false);
    run_video(&the_job, &mut StopAfter { after: 4, finished: 0, stop: &stop }, &stop).unwrap_err();
    let resumed = run(&the_job);
    let uninterrupted = run(&VideoJob { output: dir.join("whole.mkv"), ..the_job.clone() });
    assert_eq!(resumed.totals.resumed_frames, 4);
    // Frame 5, the first computed after the resume, follows frame 4 through the flow: a warm
    // start with a warping error, not a fresh start.
    let (after, whole) = (&resumed.frames[4], &uninterrupted.frames[4]);
    assert!(!after.resumed && !after.cut && after.iterations == 15 && after.flow_seconds.is_some());
    let (e_after, e_whole) = (after.warping_error.unwrap(), whole.warping_error.unwrap());
    assert!((e_after - e_whole).abs() <= 0.05 * e_whole, "warping error {e_after} after resuming, {e_whole} without a break");
    assert!((after.total - whole.total).abs() <= 1e-3 * whole.total, "J {} vs {}", after.total, whole.total);
}

/// Soft mid-tone colours drifting with `i` (inside the RGB cube under all but the darkest and brightest luminances
/// the painting gives them, so chroma is kept exactly but for rounding).
fn soft_colours(i: u32, width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let r = 100 + ((x * 40 / width + 2 * i) % 40) as u8;
        image::Rgb([r, 110 + (y * 30 / height) as u8, 150 - (x * 20 / width) as u8])
    })
}

#[test]
fn original_colors_keep_each_frames_own_chroma() {
    let dir = common::scratch_dir("pipeline-original-colors");
    let input = dir.join("soft.mkv");
    make_clip(&input, &ClipSpec { frames: 4, video: ClipVideo::Ffv1, picture: soft_colours, ..ClipSpec::new(64, 48) });
    let frames_dir = dir.join("frames");
    let mut the_job = VideoJob { frames_dir: Some(frames_dir.clone()), ..job(&input, &dir.join("out.mkv")) };
    the_job.options.original_colors = true;
    let report = run(&VideoJob { codec: VideoCodec::Ffv1, ..the_job });
    assert_eq!(report.frames.len(), 4);
    let (_, inputs) = decode_all(&input);
    let chroma = |p: &image::Rgb<u8>| {
        let [_, cb, cr] = stylize_video::media::image_io::rgb_to_ycbcr(p.0.map(f32::from));
        (cb, cr)
    };
    for (i, input) in inputs.iter().enumerate() {
        let output = image::open(frames_dir.join(format!("frame_{:06}.png", i + 1))).unwrap().to_rgb8();
        let (mut chroma_difference, mut luma_difference, mut at_the_cube) = (0f32, 0f32, 0);
        for (o, c) in output.pixels().zip(input.image.pixels()) {
            let luma = |p: &image::Rgb<u8>| stylize_video::media::image_io::rgb_to_ycbcr(p.0.map(f32::from))[0];
            luma_difference += (luma(o) - luma(c)).abs() / (64.0 * 48.0);
            // Where the painting's luminance is so dark or bright that the input's chroma
            // leaves the RGB cube, a channel is clipped at 0 or 255 and the chroma with it.
            if o.0.iter().any(|&v| v == 0 || v == 255) {
                at_the_cube += 1;
                continue;
            }
            let ((ob, or), (cb, cr)) = (chroma(o), chroma(c));
            chroma_difference = chroma_difference.max((ob - cb).abs()).max((or - cr).abs());
        }
        assert!(chroma_difference <= 1.5, "frame {i}: chroma off by up to {chroma_difference}");
        assert!(at_the_cube < 64 * 48 / 20, "frame {i}: {at_the_cube} pixels clipped at the RGB cube");
        // The first frame (10 iterations here) carries the brushwork the later ones inherit.
        assert!(i > 0 || luma_difference > 2.0, "the brushwork is gone (mean luminance change {luma_difference})");
    }
}

/// A smooth textured scene, still for frames 0–2, then panned by an eighth of the width
/// (revealing a band of new texture on the right).
fn pan_reveals_a_band(i: u32, width: u32, height: u32) -> image::RgbImage {
    let offset = if i >= 3 { width / 8 } else { 0 };
    image::RgbImage::from_fn(width, height, |x, y| {
        let (x, y) = ((x + offset) as f32, y as f32);
        let wave = |v: f32| (128.0 + 100.0 * v) as u8;
        image::Rgb([wave((x * 0.21).sin() * (y * 0.17).cos()), wave(((x + y) * 0.13).sin()), wave((x * 0.09 - y * 0.23).cos())])
    })
}

#[test]
fn the_adaptive_budget_repaints_a_revealed_band_and_style_ratio_is_j_style_over_the_shots_first() {
    let dir = common::scratch_dir("pipeline-adaptive-budget");
    let input = dir.join("pan.mkv");
    make_clip(&input, &ClipSpec { frames: 5, video: ClipVideo::Ffv1, picture: pan_reveals_a_band, ..ClipSpec::new(64, 48) });
    let base = VideoJob { size: 48, first_iterations: 30, iterations: 2, ..job(&input, &dir.join("fixed.mkv")) };
    let fixed = run(&VideoJob { codec: VideoCodec::Ffv1, ..base.clone() });
    let adaptive = run(&VideoJob { codec: VideoCodec::Ffv1, max_iterations: Some(20), output: dir.join("adaptive.mkv"), ..base });

    for report in [&fixed, &adaptive] {
        let reference = report.frames[0].style;
        for f in &report.frames {
            let ratio = f.style_ratio.unwrap();
            assert!((ratio - f.style / reference).abs() <= 1e-12 * ratio, "frame {}: {ratio} vs {}", f.index, f.style / reference);
        }
        assert_eq!(report.totals.shots.len(), 1);
        let mut warm: Vec<f64> = report.frames[1..].iter().map(|f| f.style_ratio.unwrap()).collect();
        warm.sort_by(f64::total_cmp);
        assert_eq!(report.totals.shots[0].median_style_ratio, Some(warm[1]), "nearest-rank median of 4");
        assert_eq!(report.totals.shots[0].p95_style_ratio, Some(warm[3]));
    }
    // Fixed: every warm frame 2 iterations, no reason to give.
    assert!(fixed.frames[1..].iter().all(|f| f.iterations == 2 && f.stopped.is_none()));
    // The pan is less painted than the shot with the minimum: adaptive, that frame gets more
    // iterations than the still frame before it, and ends painted or at the cap.
    let (still, pan) = (&adaptive.frames[2], &adaptive.frames[3]);
    assert!(fixed.frames[3].style_ratio.unwrap() > 1.2, "the revealed band is under-painted: {:?}", fixed.frames[3].style_ratio);
    assert!(pan.iterations > still.iterations, "pan {} vs still {} iterations", pan.iterations, still.iterations);
    let why = pan.stopped.as_deref().unwrap();
    assert!(pan.style_ratio.unwrap() <= 1.2 || (pan.iterations == 20 && why.starts_with("--max-iterations 20")), "{why}");
    assert!(pan.style_ratio.unwrap() < fixed.frames[3].style_ratio.unwrap());
    assert!(adaptive.frames[1..].iter().all(|f| (2..=20).contains(&f.iterations)));
}

/// A warm frame whose predecessor in the shot ended above the line is behind from the start: it
/// is held to the previous painting by a quarter of γ_temp throughout, in one run up to the cap,
/// and the report says so; a frame after one that kept up is not.
#[test]
fn a_frame_after_one_left_behind_is_held_loosely_from_the_start() {
    let dir = common::scratch_dir("pipeline-behind");
    let input = dir.join("pan.mkv");
    make_clip(&input, &ClipSpec { frames: 6, video: ClipVideo::Ffv1, picture: pan_reveals_a_band, ..ClipSpec::new(64, 48) });
    let job = VideoJob {
        size: 48,
        first_iterations: 30,
        iterations: 2,
        max_iterations: Some(3),
        codec: VideoCodec::Ffv1,
        ..job(&input, &dir.join("behind.mkv"))
    };
    let report = run(&job);
    let mut behind = 0;
    for pair in report.frames[1..].windows(2) {
        let (before, frame) = (&pair[0], &pair[1]);
        let why = frame.stopped.as_deref().unwrap();
        let was_behind = before.style_ratio.unwrap() > 1.2;
        assert_eq!(why.contains("behind its shot from the start: γ_temp × 0.25 throughout"), was_behind, "frame {}: {why}", frame.index);
        behind += was_behind as usize;
        if was_behind {
            // One run from the budget to the cap: no restart, so one evaluation per step and one
            // of the last image; it ends at the cap or as soon as it is painted.
            assert_eq!(frame.evaluations, frame.iterations + 1, "frame {}: {why}", frame.index);
            assert!(frame.iterations == 3 || (frame.iterations == 2 && frame.style_ratio.unwrap() <= 1.2), "frame {}: {why}", frame.index);
        }
    }
    // Frame 1 follows the shot's first frame (ratio 1): never behind from the start.
    assert!(!report.frames[1].stopped.as_deref().unwrap().contains("behind its shot"));
    assert!(behind > 0, "no frame followed one left behind: {:?}", report.frames.iter().map(|f| f.style_ratio).collect::<Vec<_>>());
}

/// `--paint-revealed`: the band the pan reveals is painted in a crop of its own before the
/// frame's iterations, the report says which crop, and the band ends further from the photo
/// than with the frame's 2 iterations alone; frames that reveal nothing are left alone.
#[test]
fn paint_revealed_paints_the_band_a_pan_reveals_in_a_crop_of_its_own() {
    let dir = common::scratch_dir("pipeline-paint-revealed");
    let input = dir.join("pan.mkv");
    make_clip(&input, &ClipSpec { frames: 5, video: ClipVideo::Ffv1, picture: pan_reveals_a_band, ..ClipSpec::new(64, 48) });
    let base = VideoJob { size: 64, first_iterations: 30, iterations: 2, codec: VideoCodec::Ffv1, ..job(&input, &dir.join("plain.mkv")) };
    let plain = run(&VideoJob { frames_dir: Some(dir.join("plain")), ..base.clone() });
    let revealed = run(&VideoJob {
        paint_revealed: Some(20),
        frames_dir: Some(dir.join("revealed")),
        output: dir.join("revealed.mkv"),
        ..base
    });
    assert_eq!((plain.paint_revealed, revealed.paint_revealed), (None, Some(20)), "the report gives the setting");
    assert!(plain.frames.iter().all(|f| f.revealed.is_none()));
    // Frames 1 and 2 are still; frame 3 reveals the right 8 columns (the last 16-px tile).
    assert!(revealed.frames[..3].iter().all(|f| f.revealed.is_none()), "{:?}", revealed.frames[1].revealed);
    let crop = revealed.frames[3].revealed.as_ref().expect("frame 3 reveals a band");
    assert_eq!((crop.x, crop.y, crop.width, crop.height), (32, 0, 32, 48), "the last tile column and 16 px of context");
    assert!(crop.pixels >= 8 * 48 && crop.pixels < 32 * 48, "{} revealed pixels", crop.pixels);
    assert!(crop.iterations > 0 && crop.iterations <= 20);

    let (_, inputs) = decode_all(&input);
    let band_distance = |frames: &str| {
        let output = image::open(dir.join(frames).join("frame_000004.png")).unwrap().to_rgb8();
        let content = &inputs[3].image;
        let band: Vec<f64> = (0..48)
            .flat_map(|y| (56..64).map(move |x| (x, y)))
            .flat_map(|(x, y)| (0..3).map(move |c| (x, y, c)))
            .map(|(x, y, c)| output.get_pixel(x, y)[c].abs_diff(content.get_pixel(x, y)[c]) as f64)
            .collect();
        band.iter().sum::<f64>() / band.len() as f64
    };
    let (plain_band, revealed_band) = (band_distance("plain"), band_distance("revealed"));
    eprintln!("revealed band's mean distance from the photo: {plain_band:.1} plain, {revealed_band:.1} painted apart");
    assert!(revealed_band > 1.3 * plain_band, "band {revealed_band:.1} from the photo, {plain_band:.1} without --paint-revealed");
}

/// The CLI's default `--max-iterations`: 1.5 × `--iterations` for frames painted in one level,
/// none coarse to fine (the top-up would run at the finest level); given, it is kept.
#[test]
fn the_cli_caps_warm_frames_at_half_as_many_again_in_one_level_only() {
    let dir = common::scratch_dir("pipeline-cli-default-cap");
    let input = dir.join("pan.mkv");
    make_clip(&input, &ClipSpec { frames: 2, video: ClipVideo::Ffv1, picture: pan_reveals_a_band, ..ClipSpec::new(64, 48) });
    let style = style_path();
    let report = |name: &str, extra: &[&str]| -> serde_json::Value {
        let (output, report) = (dir.join(format!("{name}.mkv")), dir.join(format!("{name}.json")));
        let mut args: Vec<&std::ffi::OsStr> = vec![input.as_os_str(), "-s".as_ref(), style.as_os_str()];
        args.extend(["--size", "48", "--first-iterations", "2", "--iterations", "4", "--codec", "ffv1", "-q"].map(std::ffi::OsStr::new));
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        args.extend(["-o".as_ref(), output.as_os_str(), "--report".as_ref(), report.as_os_str()]);
        let run = cli().args(&args).output().unwrap();
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
    };
    // With a cap the warm frame says why it stopped; without one it has no reason to give.
    let capped = |r: &serde_json::Value| (r["max_iterations"].as_u64(), r["frames"][1]["stopped"].is_string());
    assert_eq!(capped(&report("one-level", &[])), (Some(6), true));
    assert_eq!(capped(&report("given", &["--max-iterations", "9"])), (Some(9), true));
    assert_eq!(capped(&report("off", &["--max-iterations", "4"])), (Some(4), false), "equal to --iterations: no top-up");
    assert_eq!(capped(&report("coarse-to-fine", &["--scales", "2", "--base-size", "24"])), (None, false));
}
