//! Image sequences in and out: FFmpeg image2 patterns and directories of numbered frames as
//! input (at a stated frame rate), numbered PNG/TIFF frames as output (numbered as the input's
//! were, 8- or 16-bit), resume, and the errors.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use common::clips::{frame_image, make_clip, ClipSpec, ClipVideo};
use common::StopAfter;
use stylize_video::jobs::pipeline::{run_video, VideoJob, VideoReport};
use stylize_video::jobs::spec::StylizeOptions;
use stylize_video::media::sequence::{parse_rate, BitDepth, Pattern, SequenceInput};
use stylize_video::media::video::{DecodeOptions, VideoDecoder};
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::Settings;

/// Writes frames `first..first + count` of `frame_image` as `dir/<name_0001>.png`.
fn write_frames(dir: &Path, prefix: &str, digits: usize, first: u64, count: u32, extension: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let path = dir.join(format!("{prefix}{:0digits$}.{extension}", first + i as u64));
        frame_image(i, 48, 32).save(&path).unwrap();
    }
}

fn job(input: &Path, output: &Path) -> VideoJob {
    VideoJob {
        size: 48,
        first_iterations: 3,
        iterations: 1,
        max_iterations: None,
        options: StylizeOptions { settings: Settings { tol: 0.0, ..Settings::default() }, ..StylizeOptions::default() },
        ..VideoJob::with_defaults(input.to_path_buf(), common::repo_path("samples/starry_night.jpg"), output.to_path_buf())
    }
}

fn run(job: &VideoJob) -> VideoReport {
    run_video(job, &mut NoProgress, &AtomicBool::new(false)).unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn patterns_are_parsed_as_ffmpeg_writes_them() {
    let p = Pattern::parse(Path::new("shots/f_%04d.png")).unwrap();
    assert_eq!(p.path(7), PathBuf::from("shots/f_0007.png"));
    assert_eq!(p.path(12345), PathBuf::from("shots/f_12345.png"));
    assert_eq!(p.extension(), "png");
    let p = Pattern::parse(Path::new("out/%d.tif")).unwrap();
    assert_eq!(p.path(7), PathBuf::from("out/7.tif"));
    let p = Pattern::parse(Path::new("a/100%%_%03d.png")).unwrap();
    assert_eq!(p.path(5), PathBuf::from("a/100%_005.png"));
    assert!(Pattern::parse(Path::new("a/%d_%d.png")).is_none(), "two number fields");
    assert!(Pattern::parse(Path::new("a/%s.png")).is_none(), "not a number field");
    assert!(Pattern::parse(Path::new("%d/f.png")).is_none(), "the field must be in the file name");
    assert!(Pattern::parse(Path::new("clip.mp4")).is_none());
    // A frame number has at most 20 digits: a wider field (a 1 GB file name) is no pattern.
    assert_eq!(Pattern::parse(Path::new("f_%020d.png")).unwrap().path(1).to_str().unwrap().len(), 26);
    assert!(Pattern::parse(Path::new("f_%021d.png")).is_none());
    assert!(Pattern::parse(Path::new("f_%0999999999d.png")).is_none());
    assert!(Pattern::parse(Path::new("f_%99999999999999999999999d.png")).is_none());

    assert_eq!(parse_rate("25"), Ok((25, 1)));
    assert_eq!(parse_rate("23.976"), Ok((24000, 1001)));
    assert_eq!(parse_rate("29.97"), Ok((30000, 1001)));
    assert_eq!(parse_rate("30000/1001"), Ok((30000, 1001)));
    assert_eq!(parse_rate("12.5"), Ok((12500, 1000)));
    assert!(parse_rate("0").is_err() && parse_rate("fast").is_err() && parse_rate("-24").is_err());
}

#[test]
fn a_sequence_is_found_from_its_pattern_or_its_directory_and_gaps_are_refused() {
    let dir = common::scratch_dir("seq-find");
    write_frames(&dir.join("shots"), "f_", 4, 1001, 4, "png");
    std::fs::write(dir.join("shots/notes.txt"), "not a frame").unwrap();
    let by_pattern = SequenceInput::find(&dir.join("shots/f_%04d.png")).unwrap();
    assert_eq!((by_pattern.start_number, by_pattern.frames), (1001, 4));
    let by_directory = SequenceInput::find(&dir.join("shots")).unwrap();
    assert_eq!(by_directory, by_pattern);

    let err = SequenceInput::find(&dir.join("shots/g_%04d.png")).unwrap_err().to_string();
    assert!(err.contains("g_%04d.png") && err.contains("no frames match"), "{err}");

    write_frames(&dir.join("gappy"), "f_", 3, 1, 2, "png");
    write_frames(&dir.join("gappy"), "f_", 3, 4, 1, "png");
    let err = SequenceInput::find(&dir.join("gappy/f_%03d.png")).unwrap_err().to_string();
    assert!(err.contains("frame 3") && err.contains("f_003.png") && err.contains("missing"), "{err}");

    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let err = SequenceInput::find(&dir.join("empty")).unwrap_err().to_string();
    assert!(err.contains("empty") && err.contains("no numbered image frames"), "{err}");
}

#[test]
fn a_png_sequence_becomes_a_video_at_the_given_rate() {
    let dir = common::scratch_dir("seq-in");
    write_frames(&dir.join("shots"), "f_", 4, 1001, 6, "png");
    let output = dir.join("out.mp4");
    let report = run(&VideoJob { sequence_rate: Some((25, 1)), ..job(&dir.join("shots/f_%04d.png"), &output) });
    assert_eq!(report.input.sequence.as_ref().map(|s| (s.start_number, s.frames)), Some((1001, 6)));
    assert_eq!(report.input.frame_rate, (25, 1));

    let mut decoder = VideoDecoder::open(&output, &DecodeOptions::default()).unwrap();
    assert_eq!(decoder.info().frame_rate, (25, 1));
    let mut times = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        times.push(frame.pts_seconds);
    }
    assert_eq!(times.len(), 6);
    for (i, t) in times.iter().enumerate() {
        assert!((t - i as f64 / 25.0).abs() < 1e-3, "frame {i} at {t} s");
    }

    // A directory works the same; without --frame-rate a sequence runs at 24 fps.
    let report = run(&job(&dir.join("shots"), &dir.join("dir.mp4")));
    assert_eq!((report.totals.frames, report.input.frame_rate), (6, (24, 1)));
}

#[test]
fn a_video_becomes_a_sequence_numbered_from_the_source_frame() {
    let dir = common::scratch_dir("seq-out");
    let input = dir.join("clip.mkv");
    make_clip(&input, &ClipSpec { frames: 6, video: ClipVideo::Ffv1, ..ClipSpec::new(48, 32) });
    // --start 0.08 at 25 fps skips frames 1 and 2: the sequence starts at 3, as in the source.
    let output = dir.join("frames/out_%06d.png");
    let report = run(&VideoJob { start: Some(0.08), ..job(&input, &output) });
    assert_eq!(report.totals.frames, 4);
    assert_eq!(names_in(&dir.join("frames")), ["out_000003.png", "out_000004.png", "out_000005.png", "out_000006.png"]);
    let frame = image::open(dir.join("frames/out_000003.png")).unwrap();
    assert_eq!((frame.width(), frame.height(), frame.color()), (48, 32, image::ColorType::Rgb8));
    assert!(names_in(&dir).iter().all(|n| !n.contains("partial")), "no work or temporary files left: {:?}", names_in(&dir));

    // Writing over it needs -y.
    let err = run_video(&job(&input, &output), &mut NoProgress, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("out_%06d.png") && err.contains("already exist") && err.contains("--overwrite"), "{err}");
    // With -y, a shorter sequence replaces it whole: no stale frames after the new ones, and
    // the report says how many went. A file the pattern does not name stays.
    std::fs::write(dir.join("frames/notes.txt"), "mine").unwrap();
    let report = run(&VideoJob { start: Some(0.08), max_frames: Some(2), overwrite: true, ..job(&input, &output) });
    assert_eq!(report.totals.frames, 2);
    assert_eq!(names_in(&dir.join("frames")), ["notes.txt", "out_000003.png", "out_000004.png"]);
    assert!(report.output.notes.iter().any(|n| n.starts_with("2 frames of the earlier sequence")), "{:?}", report.output.notes);
}

#[test]
fn sequence_to_sequence_keeps_the_numbers_and_16_bit_tiff_is_deep() {
    let dir = common::scratch_dir("seq-seq");
    write_frames(&dir.join("comp"), "plate.", 4, 1001, 3, "png");
    let output = dir.join("graded/plate.%04d.tif");
    let report = run(&VideoJob { bit_depth: BitDepth::Sixteen, ..job(&dir.join("comp"), &output) });
    assert_eq!(report.output.frames_written, 3);
    assert_eq!(names_in(&dir.join("graded")), ["plate.1001.tif", "plate.1002.tif", "plate.1003.tif"]);
    let frame = image::open(dir.join("graded/plate.1001.tif")).unwrap().into_rgb16();
    // Real 16-bit samples from the optimiser's floating-point pixels, not 8-bit ones widened
    // (which would all be multiples of 257).
    let deep = frame.as_raw().iter().filter(|v| *v % 257 != 0).count();
    assert!(deep > frame.as_raw().len() / 2, "only {deep} of {} samples use the 16 bits", frame.as_raw().len());

    // And 16-bit TIFF frames read back in as a sequence.
    let again = run(&job(&output, &dir.join("again.mkv")));
    assert_eq!(again.totals.frames, 3);
}

#[test]
fn an_interrupted_sequence_leaves_no_frames_under_its_names_and_resumes() {
    let dir = common::scratch_dir("seq-resume");
    write_frames(&dir.join("in"), "f_", 4, 1, 5, "png");
    // 16-bit: the work directory keeps 16-bit frames, and resumed ones come back deep.
    let output = dir.join("out/f_%04d.png");
    let the_job = VideoJob { bit_depth: BitDepth::Sixteen, ..job(&dir.join("in/f_%04d.png"), &output) };
    let stop = AtomicBool::new(false);
    let err = run_video(&the_job, &mut StopAfter { after: 2, finished: 0, stop: &stop }, &stop).unwrap_err().to_string();
    assert!(err.contains("2 finished frames"), "{err}");
    assert_eq!(names_in(&dir.join("out")), ["f_%04d.png.partial"], "only the work directory");

    let report = run(&the_job);
    assert_eq!((report.totals.resumed_frames, report.totals.computed_frames), (2, 3));
    assert_eq!(names_in(&dir.join("out")), ["f_0001.png", "f_0002.png", "f_0003.png", "f_0004.png", "f_0005.png"]);
    let resumed = image::open(dir.join("out/f_0001.png")).unwrap().into_rgb16();
    assert!(resumed.as_raw().iter().any(|v| v % 257 != 0), "a resumed frame keeps its 16 bits");
}

#[test]
fn an_empty_damaged_or_odd_sized_frame_in_a_sequence_is_an_error_before_any_work() {
    let dir = common::scratch_dir("sequence-damaged");
    let frames = dir.join("shots");
    write_frames(&frames, "f_", 4, 1, 6, "png");
    let pattern = frames.join("f_%04d.png");
    let out = dir.join("out.mp4");
    let fails = |what: &str| {
        let err = run_video(&job(&pattern, &out), &mut NoProgress, &AtomicBool::new(false)).unwrap_err().to_string();
        assert!(!out.exists() && !dir.join("out.mp4.partial").exists(), "{what}: nothing written");
        err
    };
    // An empty frame (FFmpeg's reader skipped it: 5 of 6 frames and exit 0, before).
    let third = frames.join("f_0003.png");
    let original = std::fs::read(&third).unwrap();
    std::fs::write(&third, b"").unwrap();
    let err = fails("empty");
    assert!(err.contains("f_0003.png") && err.contains("frame 3") && err.contains("empty"), "{err}");
    // Its header cut off.
    std::fs::write(&third, &original[..10]).unwrap();
    let err = fails("cut");
    assert!(err.contains("f_0003.png") && err.contains("not a readable image"), "{err}");
    // Another size (FFmpeg squashes it).
    frame_image(2, 40, 32).save(&third).unwrap();
    let err = fails("size");
    assert!(err.contains("f_0003.png") && err.contains("40×32") && err.contains("frame 1 is 48×32"), "{err}");
    // Its header whole, the rest cut off: FFmpeg skips it, which the frame count catches.
    std::fs::write(&third, &original[..original.len() / 2]).unwrap();
    let err = run_video(&job(&pattern, &out), &mut NoProgress, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("only 5 of the sequence's 6 frames") && err.contains("--fresh"), "{err}");
    assert!(!out.exists(), "no short output");
    // Whole again: all six frames.
    std::fs::write(&third, &original).unwrap();
    assert_eq!(run(&VideoJob { fresh: true, ..job(&pattern, &out) }).frames.len(), 6);
}

#[test]
fn a_sequence_output_that_fails_its_checks_leaves_no_empty_directory() {
    let dir = common::scratch_dir("sequence-no-empty-dir");
    let input = dir.join("in.mkv");
    make_clip(&input, &ClipSpec::new(48, 32));
    let bad_style = dir.join("style.jpg");
    std::fs::write(&bad_style, "not a picture\n").unwrap();
    let out_dir = dir.join("comp");
    let job = VideoJob { style: stylize_video::jobs::spec::StyleSpec::one(bad_style), ..job(&input, &out_dir.join("plate.%04d.png")) };
    let err = run_video(&job, &mut NoProgress, &AtomicBool::new(false)).unwrap_err().to_string();
    assert!(err.contains("style.jpg"), "{err}");
    assert!(!out_dir.exists(), "the directory made for the frames is gone again");
}

#[test]
fn an_alpha_channel_h264_cannot_carry_is_said_to_be_dropped() {
    let dir = common::scratch_dir("seq-alpha");
    let shots = dir.join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    for i in 0..3u32 {
        let rgb = frame_image(i, 48, 32);
        // Half the picture transparent.
        let rgba = image::RgbaImage::from_fn(48, 32, |x, y| {
            let p = rgb.get_pixel(x, y);
            image::Rgba([p[0], p[1], p[2], if x < 24 { 0 } else { 255 }])
        });
        rgba.save(shots.join(format!("f_{:04}.png", i + 1))).unwrap();
    }
    let input = shots.join("f_%04d.png");
    let output = dir.join("out.mp4");
    let report = run(&VideoJob { size: 32, ..job(&input, &output) });
    assert!(report.input.alpha, "{}", report.input.pixel_format);
    assert_eq!(report.totals.frames, 3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stylize-video"))
        .args([input.to_str().unwrap(), "--style", common::repo_path("samples/starry_night.jpg").to_str().unwrap()])
        .args(["--size", "32", "--first-iterations", "1", "--iterations", "1", "-y", "-o", output.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("note: the input's alpha channel (rgba) is not written: H.264 has none"), "{stderr}");
    // An opaque sequence says nothing of the kind.
    let report = run(&VideoJob { size: 32, max_frames: Some(2), overwrite: true, ..job(&common::repo_path("samples/pedestrians.mp4"), &output) });
    assert!(!report.input.alpha);
}
