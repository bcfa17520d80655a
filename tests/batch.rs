//! Batches: several inputs in one run, through the library and the command line. The good
//! files are done whatever happens to the others, a bad one is named, the run fails at the end;
//! VGG is loaded once and the style targets computed once per working size.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use common::clips::{make_clip, ClipSpec, ClipVideo};
use stylize_video::jobs::batch::{run_batch, BatchItem, BatchProgress, FileResult, Outcome};
use stylize_video::jobs::pipeline::VideoJob;
use stylize_video::jobs::progress::FrameRecord;
use stylize_video::jobs::progress::VideoProgress;
use stylize_video::jobs::spec::StylizeOptions;
use stylize_video::jobs::still::StillJob;
use stylize_video::media::video::{DecodeOptions, VideoDecoder};
use stylize_video::progress::Progress;
use stylize_video::stylize::stylizer::Settings;

fn style() -> PathBuf {
    common::repo_path("samples/starry_night.jpg")
}

/// Two good tiny clips (48×36: 6 frames of H.264 in mp4, 4 of FFV1 in mkv) and a text file
/// named like a video.
fn inputs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (a, b, bad) = (dir.join("a.mp4"), dir.join("b.mkv"), dir.join("bad.mp4"));
    make_clip(&a, &ClipSpec { frames: 6, ..ClipSpec::new(48, 36) });
    make_clip(&b, &ClipSpec { frames: 4, video: ClipVideo::Ffv1, ..ClipSpec::new(48, 36) });
    std::fs::write(&bad, "this is a text file, not a video\n").unwrap();
    (a, b, bad)
}

fn frame_count(path: &Path) -> usize {
    let mut decoder = VideoDecoder::open(path, &DecodeOptions::default()).unwrap();
    let mut n = 0;
    while decoder.next_frame().unwrap().is_some() {
        n += 1;
    }
    n
}

fn video(input: &Path, output: &Path) -> BatchItem {
    BatchItem::Video(VideoJob {
        size: 48,
        first_iterations: 3,
        iterations: 1,
        max_iterations: None,
        options: StylizeOptions { settings: Settings { tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..VideoJob::with_defaults(input.to_path_buf(), style(), output.to_path_buf())
    })
}

/// Records what the batch reported, in order.
#[derive(Default)]
struct Log {
    events: Vec<String>,
    frames: usize,
}

impl Progress for Log {
    fn iteration(&mut self, _: usize, _: usize, _: f64) {}
}

impl VideoProgress for Log {
    fn begin(&mut self, _: Option<u64>) {}
    fn frame(&mut self, _: &FrameRecord) {
        self.frames += 1;
    }
}

impl BatchProgress for Log {
    fn file(&mut self, index: usize, count: usize, item: &BatchItem) {
        self.events.push(format!("start {}/{count} {}", index + 1, item.input().file_name().unwrap().to_string_lossy()));
    }
    fn file_done(&mut self, index: usize, count: usize, result: &FileResult) {
        let how = if result.result.is_ok() { "ok" } else { "failed" };
        self.events.push(format!("end {}/{count} {how}", index + 1));
    }
}

#[test]
fn the_library_does_every_good_file_names_the_bad_one_and_shares_the_network() {
    let dir = common::scratch_dir("batch-library");
    let (a, b, bad) = inputs(&dir);
    let photo = dir.join("photo.png");
    common::synthetic_content(40, 30).save(&photo).unwrap();
    let still = BatchItem::Still(StillJob { size: 40, iterations: 2, ..StillJob::with_defaults(photo, style(), dir.join("photo-out.png")) });
    let items = vec![
        video(&a, &dir.join("a-out.mp4")),
        video(&bad, &dir.join("bad-out.mp4")),
        still,
        video(&b, &dir.join("b-out.mkv")),
    ];
    let mut log = Log::default();
    let report = run_batch(&items, &[], &mut log, &AtomicBool::new(false)).unwrap();

    assert!(!report.interrupted);
    assert_eq!(report.files.len(), 4);
    let ok: Vec<bool> = report.files.iter().map(|f| f.result.is_ok()).collect();
    assert_eq!(ok, [true, false, true, true]);
    let line = report.files[1].error_line().unwrap();
    assert!(line.contains(&bad.display().to_string()) && line.contains("not a video"), "{line}");
    assert_eq!(line.lines().count(), 1);
    assert_eq!(report.failed().map(|f| f.input.clone()).collect::<Vec<_>>(), [bad]);
    // The good outputs, with their inputs' frame counts; nothing for the bad one.
    assert_eq!(frame_count(&dir.join("a-out.mp4")), 6);
    assert_eq!(frame_count(&dir.join("b-out.mkv")), 4);
    assert!(!dir.join("bad-out.mp4").exists());
    assert_eq!(image::open(dir.join("photo-out.png")).unwrap().to_rgb8().dimensions(), (40, 30));
    match &report.files[3].result {
        Ok(Outcome::Video(r)) => assert_eq!(r.totals.frames, 4),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.frames, 10, "every frame of both clips went through the one progress display");
    assert_eq!(
        log.events,
        ["start 1/4 a.mp4", "end 1/4 ok", "start 2/4 bad.mp4", "end 2/4 failed", "start 3/4 photo.png", "end 3/4 ok", "start 4/4 b.mkv", "end 4/4 ok"]
    );
    // One network for the whole batch; style targets for the two sizes seen (48×36, 40×30).
    assert_eq!((report.networks_loaded, report.stylizers_built), (1, 2));

    // The same batch again (as after an interruption): the finished files are skipped (a still
    // obeys -y as a video does), the bad file fails again.
    let written = std::fs::metadata(dir.join("a-out.mp4")).unwrap().modified().unwrap();
    let again = run_batch(&items, &[], &mut Log::default(), &AtomicBool::new(false)).unwrap();
    let kinds: Vec<&str> = again
        .files
        .iter()
        .map(|f| match &f.result {
            Ok(Outcome::AlreadyDone) => "already done",
            Ok(Outcome::Still(_)) => "still",
            Ok(Outcome::Video(_)) => "video",
            Err(_) => "failed",
        })
        .collect();
    assert_eq!(kinds, ["already done", "failed", "already done", "already done"]);
    assert_eq!(std::fs::metadata(dir.join("a-out.mp4")).unwrap().modified().unwrap(), written);
    assert_eq!((again.networks_loaded, again.stylizers_built), (0, 0), "nothing to paint: no network loaded");
}

fn cli(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stylize-video")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const QUICK: [&str; 7] = ["--size", "32", "--first-iterations", "2", "--iterations", "1", "--quiet"];

#[test]
fn the_cli_writes_each_output_beside_its_input_and_fails_at_the_end() {
    let dir = common::scratch_dir("batch-cli");
    let (a, b, bad) = inputs(&dir);
    let style = style();
    let mut args = vec![a.to_str().unwrap(), bad.to_str().unwrap(), b.to_str().unwrap(), "--style", style.to_str().unwrap()];
    args.extend(QUICK);
    let (code, stderr) = cli(&args);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "the bad file's line and the summary: {stderr}");
    assert!(lines[0].contains("bad.mp4") && lines[0].contains("not a video"), "{stderr}");
    assert_eq!(lines[1], format!("stylize-video: 1 of 3 files failed: {}", bad.display()));
    assert_eq!(frame_count(&dir.join("a-stylized.mp4")), 6);
    assert_eq!(frame_count(&dir.join("b-stylized.mp4")), 4);
    let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["a-stylized.mp4", "a.mp4", "b-stylized.mp4", "b.mkv", "bad.mp4"], "no work directory or partial file left");
}

#[test]
fn the_cli_puts_the_outputs_and_reports_in_directories_and_refuses_what_would_collide() {
    let dir = common::scratch_dir("batch-cli-dirs");
    let (a, b, _) = inputs(&dir);
    let (style, out, reports) = (style(), dir.join("out/"), dir.join("reports/"));
    let mut args = vec![a.to_str().unwrap(), b.to_str().unwrap(), "--style", style.to_str().unwrap()];
    args.extend(["-o", out.to_str().unwrap(), "--report", reports.to_str().unwrap(), "--codec", "ffv1"]);
    args.extend(QUICK);
    let (code, stderr) = cli(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "", "--quiet and all well: nothing to say");
    assert_eq!(frame_count(&out.join("a-stylized.mkv")), 6);
    assert_eq!(frame_count(&out.join("b-stylized.mkv")), 4);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(reports.join("b-stylized.mkv.json")).unwrap()).unwrap();
    assert_eq!(report["totals"]["frames"], 4);
    assert!(report["input"]["path"].as_str().unwrap().ends_with("b.mkv"));

    // Errors of the batch as a whole: one line, exit status 2 or 1, nothing written.
    let twin = dir.join("a.mov");
    std::fs::copy(&a, &twin).unwrap();
    let not_a_dir = dir.join("one.mp4");
    let cases: Vec<(Vec<&str>, Option<i32>, &str, &str)> = vec![
        (vec![a.to_str().unwrap(), b.to_str().unwrap(), "-o", not_a_dir.to_str().unwrap()], Some(2), "one.mp4", "must be a directory"),
        (vec![a.to_str().unwrap(), twin.to_str().unwrap()], Some(1), "a-stylized.mp4", "both"),
        (vec![a.to_str().unwrap(), b.to_str().unwrap(), "--preview", "grid.png"], Some(2), "--preview", "one input"),
    ];
    for (mut args, expected, names, problem) in cases {
        args.extend(["--style", style.to_str().unwrap()]);
        args.extend(QUICK);
        let (code, stderr) = cli(&args);
        assert_eq!(code, expected, "{args:?}: {stderr}");
        assert!(stderr.contains(names) && stderr.contains(problem), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!not_a_dir.exists() && !dir.join("a-stylized.mp4").exists());
    }
}
