//! Temporal-coherence evaluation: stylizes a clip's first frames several ways and prints, for
//! each, the two figures of issue 8 — the mean warping error (Lai et al. 2018, from the run's
//! report) and the content lag (the shallow-feature distance of each output frame from its own
//! input, frames 2…N, relative to per-frame independent stylization) — and seconds per frame.
//!
//! `cargo run --release --example temporal_eval -- CLIP STYLE [FRAMES] [SIZE] [OUT_DIR] [VARIANT…]`
//! (`scripts/temporal-eval` wraps it). The default variants are `default` (the tool's defaults),
//! `prev` (plain warm start as before flow guidance: `init_video=prev,temporal_weight=0,
//! iterations=20`) and `independent` (each
//! frame from its own content with the first frame's iterations: `init_video=content,
//! temporal_weight=0,iterations=FIRST`). A VARIANT is `name` of those or
//! `name:key=value,…` with keys `init_video`, `temporal_weight`, `iterations`, `flow`, `temporal_frames`
//! (`;`-separated, e.g. `temporal_frames=1;10;20`).
//! A variant whose report and frames already exist in OUT_DIR (same settings, same frame
//! count) is not rerun. `EVAL_PER_FRAME=1` also prints each frame's content-distance ratio.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use stylize_video::jobs::pipeline::{run_video, VideoJob, DEFAULT_FIRST_ITERATIONS};
use stylize_video::media::image_io::load_rgb;
use stylize_video::media::video::{DecodeOptions, FrameSize, VideoCodec, VideoDecoder};
use stylize_video::motion::temporal::content_distance;
use stylize_video::net::input::to_tensor;
use stylize_video::net::precision::Compute;
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::progress::NoProgress;

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

fn variant_settings(spec: &str) -> Fallible<(String, Vec<(String, String)>)> {
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let mut pairs: Vec<(String, String)> = match name {
        "default" => vec![],
        // The tool before flow guidance: plain warm start, 20 iterations a warm frame.
        "prev" => vec![
            ("init_video".into(), "prev".into()),
            ("temporal_weight".into(), "0".into()),
            ("iterations".into(), "20".into()),
        ],
        "independent" => vec![
            ("init_video".into(), "content".into()),
            ("temporal_weight".into(), "0".into()),
            ("iterations".into(), DEFAULT_FIRST_ITERATIONS.to_string()),
        ],
        _ if !rest.is_empty() => vec![],
        _ => return Err(format!("unknown variant '{name}' (give its settings as {name}:key=value,…)").into()),
    };
    for pair in rest.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("'{pair}' is not key=value"))?;
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok((name.to_string(), pairs))
}

fn job_for(clip: &Path, style: &Path, frames: u64, size: u32, out: &Path, name: &str, pairs: &[(String, String)]) -> Fallible<VideoJob> {
    let mut job = VideoJob::with_defaults(clip.into(), style.into(), out.join(format!("{name}.mkv")));
    job.size = size;
    job.max_frames = Some(frames);
    job.codec = VideoCodec::Ffv1;
    job.keep_audio = false;
    job.overwrite = true;
    job.fresh = true;
    job.frames_dir = Some(out.join(format!("{name}-frames")));
    job.report = Some(out.join(format!("{name}.json")));
    for (k, v) in pairs {
        match k.as_str() {
            "init_video" => job.init_video = v.parse()?,
            "temporal_weight" => job.options.settings.temporal_weight = v.parse()?,
            "iterations" => job.iterations = v.parse()?,
            "max_iterations" => job.max_iterations = Some(v.parse()?),
            "paint_revealed" => job.paint_revealed = Some(v.parse()?),
            "passes" => job.passes = v.parse()?,
            "flow" => job.flow = v.parse()?,
            "temporal_frames" => job.temporal_frames = v.split(';').map(|j| j.parse()).collect::<Result<_, _>>()?,
            _ => return Err(format!("unknown variant key '{k}'").into()),
        }
    }
    Ok(job)
}

/// Whether `job`'s report is there from an earlier run with the same settings and frames.
fn already_done(job: &VideoJob, frames: u64) -> Fallible<bool> {
    let Ok(text) = std::fs::read_to_string(job.report.as_ref().unwrap()) else { return Ok(false) };
    let report: serde_json::Value = serde_json::from_str(&text)?;
    let same = report["settings"] == serde_json::to_value(&job.options.settings)?
        && report["init_video"] == serde_json::to_value(job.init_video)?
        && report["flow"] == serde_json::to_value(job.flow)?
        && report["temporal_frames"] == serde_json::to_value(&job.temporal_frames)?
        && report["iterations"] == serde_json::to_value(job.iterations)?
        && report["max_iterations"] == serde_json::to_value(job.max_iterations)?
        && report["paint_revealed"] == serde_json::to_value(job.paint_revealed)?
        && report["passes"] == serde_json::to_value(job.passes)?
        && report["first_iterations"] == serde_json::to_value(job.first_iterations)?
        && report["totals"]["frames"] == serde_json::to_value(frames)?;
    Ok(same)
}

/// The content distance of each of `frames_dir`'s PNGs from its input frame.
fn content_distances(vgg: &Vgg16, inputs: &[image::RgbImage], frames_dir: &Path) -> Fallible<Vec<f64>> {
    let mut distances = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let output = load_rgb(&frames_dir.join(format!("frame_{:06}.png", i + 1)))?;
        distances.push(content_distance(vgg, &to_tensor(&output, &Device::Cpu)?, &to_tensor(input, &Device::Cpu)?)?);
    }
    Ok(distances)
}

/// Mean over frames 2…N.
fn mean_after_first(values: &[f64]) -> f64 {
    values[1..].iter().sum::<f64>() / (values.len() - 1).max(1) as f64
}

fn main() -> Fallible<()> {
    stylize_video::net::memory::reuse_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: temporal_eval CLIP STYLE [FRAMES] [SIZE] [OUT_DIR] [VARIANT…]".into());
    }
    let (clip, style) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let frames: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(12);
    let size: u32 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(192);
    let out = PathBuf::from(args.get(4).cloned().unwrap_or_else(|| "out/temporal-eval".into()));
    let mut variants: Vec<String> = args.iter().skip(5).cloned().collect();
    if variants.is_empty() {
        variants = vec!["default".into(), "prev".into(), "independent".into()];
    }
    if !variants.iter().any(|v| v == "independent") {
        variants.push("independent".into());
    }
    std::fs::create_dir_all(&out)?;

    let mut decoder = VideoDecoder::open(
        &clip,
        &DecodeOptions { size: FrameSize::LongestSide(size), max_frames: Some(frames), ..Default::default() },
    )?;
    let mut inputs = Vec::new();
    while let Some(frame) = decoder.next_frame()? {
        inputs.push(frame.image);
    }
    let vgg = Vgg16::load_for(&weights_path(None), Pooling::Max, Compute::Cpu)?;

    let mut rows = Vec::new();
    for spec in &variants {
        let (name, pairs) = variant_settings(spec)?;
        let job = job_for(&clip, &style, frames, size, &out, &name, &pairs)?;
        if !already_done(&job, frames)? {
            eprintln!("{name}: stylizing {frames} frames at {size} px…");
            run_video(&job, &mut NoProgress, &AtomicBool::new(false))?;
        }
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(job.report.as_ref().unwrap())?)?;
        let distances = content_distances(&vgg, &inputs, job.frames_dir.as_ref().unwrap())?;
        let totals = &report["totals"];
        // The least painted shot: the highest per-shot median and 95th percentile style ratios.
        let worst = |key: &str| {
            totals["shots"].as_array().into_iter().flatten().filter_map(|shot| shot[key].as_f64()).reduce(f64::max)
        };
        let style = (worst("median_style_ratio"), worst("p95_style_ratio"));
        // A warm frame's seconds over all passes: the first pass's, plus each later pass's mean.
        let later_passes: f64 = totals["passes"].as_array().into_iter().flatten().skip(1).filter_map(|pass| {
            Some(pass["seconds"].as_f64()? / pass["computed_frames"].as_f64().filter(|&n| n > 0.0)?)
        }).sum();
        let seconds = totals["warm_frame_seconds"].as_f64().map(|s| s + later_passes);
        rows.push((name, totals["warping_error"].as_f64(), distances, seconds, totals["iterations"].as_u64(), style));
    }
    let baseline = rows.iter().find(|r| r.0 == "independent").map(|r| r.2.clone()).expect("independent variant is always run");
    let plain_warm = rows.iter().find(|r| r.0 == "prev").and_then(|r| r.1);
    println!("clip {} ({} frames at {size} px), style {}", clip.display(), inputs.len(), style.display());
    println!(
        "{:<28} {:>14} {:>12} {:>12} {:>16} {:>12} {:>14}",
        "variant", "warping_error", "vs prev", "content_lag", "s/frame (2..N)", "iterations", "style p50/p95"
    );
    for (name, error, distance, seconds, iterations, (p50, p95)) in &rows {
        let fmt = |v: Option<f64>, p: usize| v.map(|v| format!("{v:.p$}")).unwrap_or_else(|| "-".into());
        let vs_prev = match (error, plain_warm) {
            (Some(e), Some(p)) => format!("{:.2}×", e / p),
            _ => "-".into(),
        };
        println!(
            "{:<28} {:>14} {:>12} {:>12.3} {:>16} {:>12} {:>14}",
            name,
            fmt(*error, 4),
            vs_prev,
            mean_after_first(distance) / mean_after_first(&baseline),
            fmt(*seconds, 1),
            iterations.map(|i| i.to_string()).unwrap_or_default(),
            format!("{}/{}", fmt(*p50, 2), fmt(*p95, 2))
        );
    }
    if std::env::var_os("EVAL_PER_FRAME").is_some() {
        println!("per-frame content distance / independent's:");
        for (name, _, distances, _, _, _) in &rows {
            let ratios: Vec<String> = distances.iter().zip(&baseline).map(|(d, b)| format!("{:.3}", d / b)).collect();
            println!("{name:<28} {}", ratios.join(" "));
        }
    }
    Ok(())
}
