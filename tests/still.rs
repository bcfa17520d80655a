//! Still-image stylization end to end: the library's optimise call on tiny images, and the CLI
//! with its report and its errors.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use stylize_video::net::input::{from_tensor, to_tensor};
use stylize_video::net::vgg::Pooling;
use stylize_video::progress::NoProgress;
use stylize_video::stylize::optim::OptimizerKind;
use stylize_video::stylize::stylizer::{Settings, Stylizer};

fn tiny_stylizer(settings: Settings) -> (Stylizer, candle_core::Tensor) {
    let dev = Device::Cpu;
    let content = to_tensor(&common::synthetic_content(32, 32), &dev).unwrap();
    let style = to_tensor(&common::synthetic_style(32, 32), &dev).unwrap();
    (Stylizer::new(common::vgg(Pooling::Max), settings, &[(style, 1.0)]).unwrap(), content)
}

fn max_pixel_change(a: &image::RgbImage, b: &image::RgbImage) -> u8 {
    a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
}

#[test]
fn optimisation_lowers_j_substantially_and_changes_the_image() {
    for (optimizer, lr) in [(OptimizerKind::Lbfgs, 1.0), (OptimizerKind::Adam, 10.0)] {
        let settings = Settings { optimizer, learning_rate: lr, tol: 0.0, ..Settings::default() };
        let (stylizer, content) = tiny_stylizer(settings);
        let target = stylizer.content_target(&content).unwrap();
        let result = stylizer.optimise(&target, &content, 12, &mut NoProgress).unwrap();
        assert_eq!(result.iterations, 12);
        // J and ∇J once per iteration (a fixed step: no line search), plus J of the last image.
        assert_eq!(result.evaluations, 13, "{optimizer}");
        assert_eq!(result.history.len(), 13);
        let (first, last) = (result.history[0], result.terms.total);
        assert!(last < 0.5 * first, "{optimizer}: J went from {first} to {last}");
        // The returned terms are those of the returned image.
        let recomputed = stylizer.cost(&result.image, &target).unwrap().1;
        assert!((recomputed.total - last).abs() <= 1e-9 * last, "{} vs {last}", recomputed.total);
        let change = max_pixel_change(&from_tensor(&result.image).unwrap(), &from_tensor(&content).unwrap());
        assert!(change > 20, "{optimizer}: output hardly differs from the content (max change {change})");
    }
}

#[test]
fn zero_iterations_return_the_start_with_its_losses() {
    let (stylizer, content) = tiny_stylizer(Settings::default());
    let target = stylizer.content_target(&content).unwrap();
    let result = stylizer.optimise(&target, &content, 0, &mut NoProgress).unwrap();
    assert_eq!(result.iterations, 0);
    assert_eq!(result.evaluations, 1, "J of the start");
    assert_eq!(result.terms.content, 0.0, "the content image has no content cost");
    let s = stylizer.settings();
    let style: f64 = result.terms.style_layers.iter().zip(&s.style_layer_weights).map(|((_, j), l)| l * j).sum();
    assert!((result.terms.style - style).abs() <= 1e-12 * style);
    let total = s.content_weight * result.terms.content + s.style_weight * result.terms.style + s.tv_weight * result.terms.tv;
    assert!((result.terms.total - total).abs() <= 1e-9 * total);
    assert_eq!(from_tensor(&result.image).unwrap(), from_tensor(&content).unwrap());
}

#[test]
fn early_stop_ends_when_j_levels_off() {
    // A tolerance of 100% over a 1-iteration window stops at the first comparison.
    let settings = Settings { tol: 1.0, tol_window: 1, ..Settings::default() };
    let (stylizer, content) = tiny_stylizer(settings);
    let target = stylizer.content_target(&content).unwrap();
    let result = stylizer.optimise(&target, &content, 50, &mut NoProgress).unwrap();
    assert_eq!(result.iterations, 1);
    assert_eq!(result.evaluations, 2);
}

// ---- the command line ----

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stylize-video")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn write_content(dir: &Path) -> String {
    let path = dir.join("photo.png");
    common::synthetic_content(64, 48).save(&path).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn cli_writes_the_image_and_a_report_of_its_losses() {
    let dir = common::scratch_dir("cli-report");
    let input = write_content(&dir);
    let style = common::repo_path("samples/starry_night.jpg");
    let (out, report) = (dir.join("out.png"), dir.join("r.json"));
    let (ok, stderr) = cli(&[
        &input, "--style", style.to_str().unwrap(), "-o", out.to_str().unwrap(), "--report", report.to_str().unwrap(),
        "--size", "40", "--iterations", "3", "--quiet",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(stderr, "", "--quiet prints nothing");
    let image = image::open(&out).unwrap();
    assert_eq!((image.width(), image.height()), (40, 30));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["iterations"], 3);
    assert_eq!(r["evaluations"], 4);
    assert!(r["seconds"].as_f64().unwrap() > 0.0);
    let layers = r["J_style_layers"].as_object().unwrap();
    assert_eq!(layers.keys().collect::<Vec<_>>(), ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]);
    let j_style: f64 = layers.values().map(|v| v.as_f64().unwrap() / 5.0).sum();
    assert!((r["J_style"].as_f64().unwrap() - j_style).abs() <= 1e-9 * j_style);
    let s = &r["settings"];
    assert_eq!(s["margin"], 0, "an image gets no margin by default");
    let total = s["content_weight"].as_f64().unwrap() * r["J_content"].as_f64().unwrap()
        + s["style_weight"].as_f64().unwrap() * j_style
        + s["tv_weight"].as_f64().unwrap() * r["J_tv"].as_f64().unwrap();
    assert!((r["J"].as_f64().unwrap() - total).abs() <= 1e-9 * total);
    assert!(r["J_content"].as_f64().unwrap() > 0.0, "three iterations moved away from the content");
}

#[test]
fn cli_with_zero_iterations_writes_the_initial_image() {
    let dir = common::scratch_dir("cli-zero");
    let input = write_content(&dir);
    let (out, report) = (dir.join("same.png"), dir.join("r.json"));
    let (ok, stderr) = cli(&[
        &input, "--style", &input, "-o", out.to_str().unwrap(), "--report", report.to_str().unwrap(),
        "--size", "64", "--iterations", "0", "--quiet",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(image::open(&out).unwrap().to_rgb8(), image::open(&input).unwrap().to_rgb8());
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // Content = style = output: both costs vanish.
    assert_eq!((r["J_content"].as_f64(), r["J_style"].as_f64(), r["iterations"].as_u64()), (Some(0.0), Some(0.0), Some(0)));
}

#[test]
fn cli_errors_are_one_line_name_the_file_and_leave_no_output() {
    let dir = common::scratch_dir("cli-errors");
    let input = write_content(&dir);
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "this is text, not a picture\n").unwrap();
    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let out = dir.join("out.png");
    let out_s = out.to_str().unwrap();
    let missing = dir.join("missing.png");
    let gif = dir.join("out.gif");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![missing.to_str().unwrap(), "--style", &input, "-o", out_s], "missing.png", "not found"),
        (vec![&input, "--style", text.to_str().unwrap(), "-o", out_s], "notes.jpg", "not an image"),
        (vec![empty.to_str().unwrap(), "--style", &input, "-o", out_s], "empty.png", "not an image"),
        (vec![&input, "--style", &input, "-o", "/nonexistent-dir/out.png"], "out.png", "does not exist"),
        (vec![&input, "--style", &input, "-o", gif.to_str().unwrap()], "out.gif", "extension"),
        (vec![&input, "--style", &input, "-o", out_s, "--style-layers", "relu9_1"], "relu9_1", "unknown VGG16 layer"),
        (vec![&input, "--style", &input, "-o", out_s, "--style-layer-weights", "1,2"], "--style-layer-weights", "2 weights"),
        (vec![&input, "--style", &input, "-o", out_s, "--size", "8"], "photo.png", "at least 16 pixels"),
        (vec![&input, "--style", &input, "-o", out_s, "--device", "gpu"], "'gpu'", "unknown device"),
    ];
    #[cfg(not(feature = "cuda"))]
    let cases = [cases, vec![(vec![&input, "--style", &input, "-o", out_s, "--device", "cuda"], "cuda:0", "no CUDA support")]].concat();
    for (args, names, problem) in cases {
        let mut args = args.clone();
        args.extend(["--iterations", "1", "--quiet"]);
        let (ok, stderr) = cli(&args);
        assert!(!ok, "{args:?} should fail");
        common::assert_one_error(&stderr, names, problem);
        assert!(!stderr.contains("panicked"), "{stderr}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 3, "no output or temporary file left: {leftovers:?}");
    }
}

// ---- --original-colors ----

/// Per-pixel (Y', Cb, Cr) of an image.
fn ycbcr(image: &image::RgbImage) -> Vec<[f32; 3]> {
    image.pixels().map(|p| stylize_video::media::image_io::rgb_to_ycbcr(p.0.map(f32::from))).collect()
}

/// Mean absolute difference of one Y'CbCr channel between two images.
fn mean_channel_difference(a: &[[f32; 3]], b: &[[f32; 3]], channel: usize) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x[channel] - y[channel]).abs()).sum::<f32>() / a.len() as f32
}

#[test]
fn original_colors_take_the_luminance_of_one_image_and_the_chroma_of_the_other() {
    // Mid tones, so that the recombined colours stay inside the RGB cube (outside it they are
    // clamped, as they must be): a grey brush texture, and a softened colour photo.
    let painted = image::RgbImage::from_fn(40, 30, |x, y| {
        let v = (60 + (x * 7 + y * 13) % 130) as u8;
        image::Rgb([v, v.saturating_add(6), v.saturating_sub(6)])
    });
    let photo = image::RgbImage::from_fn(40, 30, |x, y| {
        let p = common::synthetic_content(40, 30).get_pixel(x, y).0;
        image::Rgb(p.map(|c| 64 + c / 2))
    });
    let kept = stylize_video::media::image_io::keep_original_colors(&painted, &photo);
    let (kept, painted, photo) = (ycbcr(&kept), ycbcr(&painted), ycbcr(&photo));
    // Within 8-bit rounding.
    assert!(mean_channel_difference(&kept, &painted, 0) < 0.8, "luminance {}", mean_channel_difference(&kept, &painted, 0));
    for channel in [1, 2] {
        let d = mean_channel_difference(&kept, &photo, channel);
        assert!(d < 0.8, "chroma channel {channel} differs by {d} on average");
    }
    // The two inputs really differ in both, so the test could fail.
    assert!(mean_channel_difference(&painted, &photo, 0) > 10.0, "{}", mean_channel_difference(&painted, &photo, 0));
    let chroma_apart = mean_channel_difference(&painted, &photo, 1) + mean_channel_difference(&painted, &photo, 2);
    assert!(chroma_apart > 10.0, "{chroma_apart}");
}

#[test]
fn the_cli_keeps_the_photos_colours_on_request() {
    let dir = common::scratch_dir("still-original-colors");
    // A photo in mid tones, so that its colours under the painting's luminance stay inside the
    // RGB cube (outside it they are clamped).
    let content = dir.join("photo.png");
    let photo = common::synthetic_content(48, 40);
    image::RgbImage::from_fn(48, 40, |x, y| image::Rgb(photo.get_pixel(x, y).0.map(|c| 64 + c / 2))).save(&content).unwrap();
    // A boldly coloured style (yellow and blue stripes), so the plain result's colours move far.
    let style = dir.join("style.png");
    common::synthetic_style(48, 40).save(&style).unwrap();
    let (plain, kept) = (dir.join("plain.png"), dir.join("kept.png"));
    for (output, extra) in [(&plain, None), (&kept, Some("--original-colors"))] {
        let status = Command::new(env!("CARGO_BIN_EXE_stylize-video"))
            .args([content.to_str().unwrap(), "--style", style.to_str().unwrap()])
            .args(["-o", output.to_str().unwrap(), "--size", "48", "--iterations", "15", "--quiet"])
            .args(extra)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let load = |p: &Path| ycbcr(&image::open(p).unwrap().to_rgb8());
    let (plain, kept, photo) = (load(&plain), load(&kept), load(&content));
    for channel in [1, 2] {
        let (d_kept, d_plain) = (mean_channel_difference(&kept, &photo, channel), mean_channel_difference(&plain, &photo, channel));
        assert!(d_kept < 1.0 && d_plain > 5.0, "chroma {channel}: {d_kept} kept, {d_plain} plain");
    }
    // The brushwork stays: the luminance is the stylized one, not the photo's.
    assert!(mean_channel_difference(&kept, &plain, 0) < 1.0);
    assert!(mean_channel_difference(&kept, &photo, 0) > 5.0, "{}", mean_channel_difference(&kept, &photo, 0));
}

#[test]
fn a_still_with_alpha_keeps_it_in_png_and_says_jpeg_loses_it() {
    let dir = common::scratch_dir("cli-still-alpha");
    let rgb = common::synthetic_content(40, 32);
    let rgba = image::RgbaImage::from_fn(40, 32, |x, y| {
        let p = rgb.get_pixel(x, y);
        image::Rgba([p[0], p[1], p[2], if y < 16 { 0 } else { 255 }])
    });
    let (input, out, report) = (dir.join("logo.png"), dir.join("out.png"), dir.join("r.json"));
    rgba.save(&input).unwrap();
    let style = common::repo_path("samples/starry_night.jpg");
    // At the photo's own size (40 px), so the alpha is not resized.
    let args = [input.to_str().unwrap(), "--style", style.to_str().unwrap(), "-o", out.to_str().unwrap(), "--size", "40", "--iterations", "1"];
    let (ok, stderr) = cli(&[&args[..], &["--report", report.to_str().unwrap()]].concat());
    assert!(ok && !stderr.contains("alpha channel"), "a PNG keeps the alpha: {stderr}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!((&written["input_alpha"], &written["output_alpha"]), (&serde_json::json!(true), &serde_json::json!(true)));
    let kept = image::open(&out).unwrap().into_rgba8();
    assert!(kept.enumerate_pixels().all(|(_, y, p)| p[3] == if y < 16 { 0 } else { 255 }), "the alpha is the input's");
    // A JPEG holds none: said once.
    let jpeg = dir.join("out.jpg");
    let jpeg_args = [input.to_str().unwrap(), "--style", style.to_str().unwrap(), "-o", jpeg.to_str().unwrap(), "--size", "32", "--iterations", "1"];
    let (ok, stderr) = cli(&jpeg_args);
    assert!(ok && stderr.contains("note: the input's alpha channel is not written: JPEG has none"), "{stderr}");
    // An opaque photo: no such note.
    let photo = write_content(&dir);
    let (ok, stderr) = cli(&[&photo, "--style", style.to_str().unwrap(), "-o", out.to_str().unwrap(), "-y", "--size", "32", "--iterations", "1"]);
    assert!(ok && !stderr.contains("alpha channel"), "{stderr}");
}
