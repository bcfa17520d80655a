//! The preview grid (--preview) on a tiny synthetic clip: its exact geometry, cells that are
//! the stylized frames at the labelled times, one row per style × swept value, the report, and
//! the errors (which leave no grid behind).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::clips::{make_clip, ClipSpec};
use image::RgbImage;
use stylize_video::jobs::spec::StylizeOptions;
use stylize_video::jobs::preview::{
    run_preview, GridLayout, PreviewFrames, PreviewInput, PreviewJob, Sweep, SweptOption, CELL_GAP, LABEL_PX,
};
use stylize_video::media::text::{line_height, text_width, Rect};
use stylize_video::media::video::{DecodeOptions, FrameSize, VideoDecoder};
use stylize_video::progress::NoProgress;
use stylize_video::stylize::optim::OptimizerKind;
use stylize_video::stylize::stylizer::Settings;

/// A 6-frame 48×36 clip at 25 fps: frame i's gradient is shifted by 8·i levels.
fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    make_clip(&path, &ClipSpec { frames: 6, ..ClipSpec::new(48, 36) });
    path
}

/// A busy synthetic style image, very unlike the starry night.
fn stripes(dir: &Path) -> PathBuf {
    let path = dir.join("stripes.png");
    common::synthetic_style(48, 48).save(&path).unwrap();
    path
}

fn starry() -> PathBuf {
    common::repo_path("samples/starry_night.jpg")
}

/// Settings that paint visibly in 4 iterations: Adam moves each pixel by up to 20 levels a step
/// (L-BFGS's first steps are tiny).
fn quick() -> Settings {
    Settings { optimizer: OptimizerKind::Adam, learning_rate: 20.0, ..Settings::default() }
}

/// The job at 48 px with 4 iterations a cell.
fn job(input: &Path, output: &Path) -> PreviewJob {
    PreviewJob {
        size: 48,
        iterations: 4,
        options: StylizeOptions { settings: quick(), ..StylizeOptions::default() },
        ..PreviewJob::with_defaults(PreviewInput::Video(input.to_path_buf()), starry(), output.to_path_buf())
    }
}

fn crop(image: &RgbImage, r: Rect) -> RgbImage {
    image::imageops::crop_imm(image, r.x, r.y, r.width, r.height).to_image()
}

fn mean_abs_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.as_raw().len() as f64
}

fn cells(grid: &RgbImage, layout: &GridLayout) -> Vec<RgbImage> {
    (0..layout.rows).flat_map(|r| (0..layout.columns).map(move |c| (r, c))).map(|(r, c)| crop(grid, layout.cell(r, c))).collect()
}

fn assert_all_cells_differ(cells: &[RgbImage], threshold: f64) {
    for i in 0..cells.len() {
        for j in i + 1..cells.len() {
            let d = mean_abs_difference(&cells[i], &cells[j]);
            assert!(d > threshold, "cells {i} and {j} differ by only {d}");
        }
    }
}

#[test]
fn two_styles_three_frames_make_a_labelled_two_by_three_grid() {
    let dir = common::scratch_dir("preview-grid");
    let input = clip(&dir);
    let (output, report_path) = (dir.join("grid.png"), dir.join("grid.json"));
    let report = run_preview(
        &PreviewJob { styles: vec![starry(), stripes(&dir)], report: Some(report_path.clone()), ..job(&input, &output) },
        &mut NoProgress,
    )
    .unwrap();

    // Geometry: 2 rows (one per style) × 3 columns of 48×36 cells (the working size of the
    // 48×36 clip at --size 48), a 2-px gap around each, the label bands left and on top.
    let l = report.layout;
    assert_eq!((l.rows, l.columns, l.cell_width, l.cell_height, l.gap), (2, 3, 48, 36, CELL_GAP));
    assert_eq!(l.header_height, line_height(LABEL_PX) + 10, "one line of text with 5 px above and below");
    assert!(l.label_width >= text_width("stripes.png", LABEL_PX) + 10 && l.label_width > 60, "{}", l.label_width);
    let grid = image::open(&output).unwrap().to_rgb8();
    assert_eq!(grid.dimensions(), (l.label_width + 2 + 3 * (48 + 2), l.header_height + 2 + 2 * (36 + 2)));
    assert_eq!((report.width, report.height), grid.dimensions());

    // Columns: the frames on screen at the middles of three equal stretches of the 0.24 s clip
    // (0.04, 0.12, 0.20 s: frames 1, 3, 5).
    let times: Vec<f64> = report.cells.iter().take(3).map(|c| c.t_seconds.unwrap()).collect();
    for (t, expected) in times.iter().zip([0.04, 0.12, 0.20]) {
        assert!((t - expected).abs() < 1e-6, "{times:?}");
    }
    assert_eq!(report.cells[0].label, "starry_night.jpg, t = 0.04 s");
    assert_eq!(report.cells[5].label, "stripes.png, t = 0.2 s");
    assert_eq!(report.cells.iter().map(|c| (c.row, c.column)).collect::<Vec<_>>(), [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);

    // Every cell is its own: different frames, different styles.
    assert_all_cells_differ(&cells(&grid, &l), 4.0);
    // The label bands carry text: light pixels on the dark background.
    let bright = |r: Rect| crop(&grid, r).pixels().filter(|p| p.0[0] > 150).count();
    assert!(bright(Rect { x: 0, y: l.cell(1, 0).y, width: l.label_width, height: 36 }) > 20, "row label of stripes.png");
    assert!(bright(Rect { x: l.cell(0, 2).x, y: 0, width: 48, height: l.header_height }) > 20, "column label");

    // The report as written: settings, J and seconds per cell.
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let cells_json = written["cells"].as_array().unwrap();
    assert_eq!(cells_json.len(), 6);
    for cell in cells_json {
        assert_eq!(cell["iterations"], 4);
        assert_eq!(cell["evaluations"], 5);
        assert!(cell["J"].as_f64().unwrap() > 0.0 && cell["seconds"].as_f64().unwrap() > 0.0, "{cell}");
        assert_eq!(cell["style_weight"], 5e-4);
    }
    assert!(cells_json[3]["style"].as_str().unwrap().ends_with("stripes.png"));
    assert_eq!(written["layout"]["columns"], 3);
}

#[test]
fn a_cell_is_the_still_stylization_of_the_frame_at_its_time() {
    let dir = common::scratch_dir("preview-cell");
    let input = clip(&dir);
    let output = dir.join("one.png");
    let report = run_preview(&PreviewJob { frames: PreviewFrames::At(0.1), ..job(&input, &output) }, &mut NoProgress).unwrap();
    assert_eq!((report.layout.rows, report.layout.columns), (1, 1));
    let t = report.cells[0].t_seconds.unwrap();
    assert!((t - 0.12).abs() < 1e-6, "the first frame at or after 0.1 s is frame 3 (0.12 s), got {t}");
    let cell = crop(&image::open(&output).unwrap().to_rgb8(), report.layout.cell(0, 0));

    // The same frame, decoded on its own and stylized as a still photo through the still job.
    let options = DecodeOptions { size: FrameSize::LongestSide(48), start: Some(0.1), max_frames: Some(1), ..Default::default() };
    let decoded = VideoDecoder::open(&input, &options).unwrap().next_frame().unwrap().unwrap();
    assert_eq!(decoded.index, 0);
    let frame = dir.join("frame3.png");
    decoded.image.save(&frame).unwrap();
    let still = dir.join("still.png");
    let still_job = stylize_video::jobs::still::StillJob {
        size: 48,
        iterations: 4,
        options: StylizeOptions { settings: quick(), ..StylizeOptions::default() },
        ..stylize_video::jobs::still::StillJob::with_defaults(frame, starry(), still.clone())
    };
    stylize_video::jobs::still::run_still(&still_job, &mut NoProgress).unwrap();
    let still = image::open(&still).unwrap().to_rgb8();
    let d = mean_abs_difference(&cell, &still);
    assert!(d < 0.5, "the cell differs from the still by {d}");
    // …and the cell is far from the frame itself (so the comparison could fail).
    let from_frame = mean_abs_difference(&cell, &decoded.image);
    assert!(from_frame > 10.0, "the cell is stylized: {from_frame} from its frame");
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stylize-video")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_cli_sweeps_one_option_one_row_per_value() {
    let dir = common::scratch_dir("preview-cli-sweep");
    let input = clip(&dir);
    let (output, report) = (dir.join("sweep.png"), dir.join("sweep.json"));
    let (ok, stderr) = cli(&[
        input.to_str().unwrap(), "--style", starry().to_str().unwrap(), "--preview", output.to_str().unwrap(),
        "--style-scale", "0.5,1,2", "--preview-at", "0.05", "--size", "40", "--iterations", "4",
        "--optimizer", "adam", "--learning-rate", "20", "--report", report.to_str().unwrap(), "--quiet",
        // Cells of 40 × 30: a video's default margin (8 px) would be a quarter of the cell.
        "--margin", "0",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(stderr, "");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let number = |key: &str| r["layout"][key].as_u64().unwrap();
    let layout = GridLayout {
        rows: number("rows") as usize,
        columns: number("columns") as usize,
        cell_width: number("cell_width") as u32,
        cell_height: number("cell_height") as u32,
        label_width: number("label_width") as u32,
        header_height: number("header_height") as u32,
        gap: number("gap") as u32,
    };
    // One style × three scales, one frame (the first at or after 0.05 s: frame 2, 0.08 s).
    assert_eq!((layout.rows, layout.columns, layout.cell_width, layout.cell_height), (3, 1, 40, 30));
    let grid = image::open(&output).unwrap().to_rgb8();
    assert_eq!(grid.dimensions(), (layout.label_width + 2 + 42, layout.header_height + 2 + 3 * 32));
    let cells_json = r["cells"].as_array().unwrap();
    let scales: Vec<f64> = cells_json.iter().map(|c| c["style_scale"].as_f64().unwrap()).collect();
    assert_eq!(scales, [0.5, 1.0, 2.0]);
    assert_eq!(cells_json[2]["label"], "starry_night.jpg · style-scale 2, t = 0.08 s");
    assert_eq!(r["sweep"]["option"], "style-scale");
    // The brush strokes' size changes the picture: every row differs.
    assert_all_cells_differ(&cells(&grid, &layout), 2.0);
}

#[test]
fn a_swept_weight_is_the_one_each_rows_cells_are_optimised_with() {
    let dir = common::scratch_dir("preview-weight-sweep");
    let input = clip(&dir);
    let output = dir.join("weights.png");
    let sweep = Sweep { option: SweptOption::StyleWeight, values: vec![1e-4, 1e-2] };
    let job = PreviewJob { sweep: Some(sweep), frames: PreviewFrames::Spread(2), iterations: 2, ..job(&input, &output) };
    let report = run_preview(&job, &mut NoProgress).unwrap();
    assert_eq!(report.cells.len(), 4);
    for cell in &report.cells {
        let expected = [1e-4, 1e-2][cell.row];
        assert_eq!(cell.style_weight, expected);
        // J is made with the row's weight: J = α J_content + β J_style + γ_tv J_tv.
        let t = &cell.terms;
        let j = cell.content_weight * t.content + expected * t.style + cell.tv_weight * t.tv;
        assert!((t.total - j).abs() <= 1e-9 * j, "{}: J {} vs {j}", cell.label, t.total);
        assert!(t.style > 0.0);
    }
    assert!(report.cells[0].label.contains("style-weight 1e-4") && report.cells[3].label.contains("style-weight 0.01"));
}

#[test]
fn errors_name_the_file_and_leave_no_grid() {
    let dir = common::scratch_dir("preview-errors");
    let input = clip(&dir);
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "not a picture\n").unwrap();
    let out = dir.join("grid.png");
    let (input_s, out_s, starry) = (input.to_str().unwrap(), out.to_str().unwrap(), starry());
    let starry_s = starry.to_str().unwrap();
    let two_styles = format!("{starry_s},{}", text.display());
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![input_s, "--style", starry_s, "--preview", out_s, "--preview-at", "2"], "clip.mp4", "beyond the end of the clip"),
        (vec![input_s, "--style", starry_s, "--preview", out_s, "--preview-at", "0:00:09.5"], "9.5 s", "beyond the end"),
        (vec![input_s, "--style", &two_styles, "--preview", out_s], "notes.jpg", "not an image"),
        (vec![input_s, "--style", starry_s, "--preview", out_s, "--style-weight", "1e-4,1e-3", "--style-scale", "1,2"],
            "--style-weight and --style-scale", "one option at a time"),
        (vec![input_s, "--style", starry_s, "--style-weight", "1e-4,1e-3"], "--style-weight", "only for --preview"),
        (vec![input_s, "--style", starry_s, "--preview", out_s, "--style-scale", "1,-2"], "--style-scale", "must be > 0"),
        (vec![input_s, "--style", starry_s, "--preview", out_s, "--style-weights", "1"], "--style-weights", "alternatives"),
    ];
    for (args, names, problem) in cases {
        let mut args = args.clone();
        args.extend(["--size", "32", "--iterations", "1", "--quiet"]);
        let (ok, stderr) = cli(&args);
        assert!(!ok, "{args:?} should fail");
        common::assert_one_error(&stderr, names, problem);
        let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["clip.mp4", "notes.jpg"], "no grid or temporary file left");
    }
    // The library says the same.
    let e = run_preview(&PreviewJob { frames: PreviewFrames::At(5.0), ..job(&input, &out) }, &mut NoProgress).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}: ", input.display())), "{e}");
    assert!(!out.exists());
}

#[test]
fn more_columns_than_frames_show_each_frame_once_including_the_last() {
    // 6 frames at 25 fps (0.24 s). 5 columns: the frames on screen at the middles of 5
    // stretches (0.024, 0.072, 0.12, 0.168, 0.216 s): frames 0, 1, 3, 4, 5. 6 columns: every
    // frame, the last included (the middle of the last stretch, 0.22 s, is after the last frame
    // starts: that found no frame "at or after" it before). 1000: the same 6, capped before the
    // seeks (it made 1000, for minutes).
    let dir = common::scratch_dir("preview-many-columns");
    let input = clip(&dir);
    let out = dir.join("grid.png");
    for (asked, columns) in [(5, 5), (6, 6), (1000, 6)] {
        let job = PreviewJob { frames: PreviewFrames::Spread(asked), size: 32, iterations: 1, ..job(&input, &out) };
        let report = run_preview(&job, &mut NoProgress).unwrap();
        assert_eq!(report.layout.columns, columns, "--preview-frames {asked}");
    }
    let (ok, stderr) = cli(&[input.to_str().unwrap(), "--style", starry().to_str().unwrap(), "--preview", out.to_str().unwrap(),
        "--preview-frames", "40", "--size", "32", "--iterations", "1", "-y"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("note: --preview-frames 40: the columns' times fall on 6 different frames, each shown once"), "{stderr}");
}
