//! GPU benchmark: the device path (`--device cuda`) measured on its own, built without the
//! `media` feature so that it runs on a GPU machine with no FFmpeg or OpenCV (scripts/build-cuda
//! packs it; scripts/bench-gpu runs it beside PyTorch on the same GPU). Prints numbers, one line
//! per measurement; asserts nothing. `BENCH_DEVICE` (default cuda in a CUDA build, else
//! cpu-reference: the same code on the CPU), `BENCH_PRECISION` (fp32, tf32, bf16; default:
//! the device's), `BENCH_WEIGHTS` (default: the bundled weights) apply to every mode:
//! - `check`: J and ∇J at 384×216 on the device against this crate's CPU kernels (fp32):
//!   `check device=… precision=… j_rel=… grad_rel=…`
//! - `iteration` (`BENCH_SIZES=384x216,640x360,…`, `BENCH_ITERATIONS`, `BENCH_OPTIMIZER`): ms
//!   per Adam iteration after 3 warm-up iterations, each iteration ending in the read of J's
//!   terms (so the time is the device's), and the pool's peak GPU memory:
//!   `ours WxH precision=… median_ms=… min_ms=… peak_gpu_mib=…`
//! - `video` (`BENCH_FRAMES_DIR` of PNG frames, `BENCH_FIRST_ITERATIONS` 100,
//!   `BENCH_WARM_ITERATIONS` 10: the CLI's defaults): each frame after the first starts from the
//!   previous stylized frame with J_temporal against it (reliability 1: optical flow is the
//!   CPU's work, measured separately), L-BFGS: `video … first_s=… warm_s=… frames_per_minute=…`
//! - `quality` (`BENCH_SIZE`, `BENCH_ITERATIONS` 100): the still at each precision, L-BFGS, its
//!   final J and the final image's J judged in fp32: `quality precision=… J=… J_fp32=… vs_fp32=…`

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use common::{env_or, median, StepTimes};

use candle_core::{DType, Device, Tensor};
use stylize_video::media::image_io::{load_rgb, resize, size_for_area};
use stylize_video::net::input::to_tensor;
use stylize_video::net::precision::Compute;
use stylize_video::net::precision::Precision;
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::progress::NoProgress;
use stylize_video::stylize::optim::OptimizerKind;
use stylize_video::stylize::stylizer::{ContentTarget, Settings, Stylizer, TemporalTarget};


fn repo_file(relative: &str) -> PathBuf {
    // Beside the binary's working directory first (the bundle runs from the checkout's root).
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn device() -> Compute {
    env_or("BENCH_DEVICE", if cfg!(feature = "cuda") { Compute::Cuda(0) } else { Compute::CpuReference })
}

fn precision() -> Option<Precision> {
    std::env::var("BENCH_PRECISION").ok().map(|p| p.parse().expect("BENCH_PRECISION: fp32, tf32 or bf16"))
}

fn load(compute: Compute, precision: Option<Precision>) -> Vgg16 {
    let weights = std::env::var_os("BENCH_WEIGHTS").map(PathBuf::from).unwrap_or_else(|| {
        let bundled = repo_file("weights/vgg16-conv.safetensors");
        if bundled.exists() { bundled } else { weights_path(None) }
    });
    Vgg16::load_with(&weights, Pooling::Max, compute, precision).unwrap_or_else(|e| panic!("{e}"))
}

/// The style and content images at `w × h` on the network's device.
fn images(vgg: &Vgg16, w: u32, h: u32) -> (Tensor, Tensor) {
    let content = load_rgb(&repo_file("samples/pedestrians_frame0.jpg")).unwrap();
    let style = load_rgb(&repo_file("samples/starry_night.jpg")).unwrap();
    let (sw, sh) = size_for_area(style.width(), style.height(), (w * h) as f64);
    (to_tensor(&resize(&content, w, h), vgg.device()).unwrap(), to_tensor(&resize(&style, sw, sh), vgg.device()).unwrap())
}

fn stylizer(vgg: impl Into<Arc<Vgg16>>, style: &Tensor, optimizer: OptimizerKind) -> Stylizer {
    let settings = Settings { tol: 0.0, optimizer, learning_rate: Settings::default_learning_rate(optimizer), ..Settings::default() };
    Stylizer::new(vgg, settings, &[(style.clone(), 1.0)]).unwrap()
}

/// Peak GPU memory of the pool since the last reset, MiB (NaN off CUDA).
fn peak_gpu_mib(device: &Device) -> f64 {
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        return stylize_video::net::memory::gpu::peak_bytes(device).map(|b| b as f64 / 1048576.0).unwrap_or(f64::NAN);
    }
    let _ = device;
    f64::NAN
}

fn reset_peak(device: &Device) {
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        let _ = stylize_video::net::memory::gpu::reset_peak(device);
    }
    let _ = device;
}



fn norm(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt()
}

/// J and ∇J at the content plus a fixed pattern, on `compute` and on the CPU kernels.
fn check() {
    let (w, h) = (384, 216);
    let compute = device();
    let on_device = load(compute, precision());
    let precision = on_device.precision();
    let (content, style) = images(&on_device, w, h);
    let evaluate = |stylizer: &Stylizer, content: &Tensor| -> (f64, Tensor) {
        let target = stylizer.content_target(content).unwrap();
        let pattern = Tensor::arange(0f32, (3 * w * h) as f32, content.device()).unwrap().reshape(content.shape()).unwrap();
        let x = (content + (pattern * 0.37).unwrap().sin().unwrap() * 20.0).unwrap();
        let (evaluation, terms) = stylizer.evaluate(&x, &target).unwrap();
        let grad = evaluation.gradient(stylizer).unwrap();
        (terms.total, Tensor::from_vec(grad, x.shape(), &Device::Cpu).unwrap())
    };
    let (j_device, g_device) = evaluate(&stylizer(on_device, &style, OptimizerKind::Adam), &content);
    let kernels = load(Compute::Cpu, Some(Precision::Fp32));
    let (content_cpu, style_cpu) = images(&kernels, w, h);
    let (j_cpu, g_cpu) = evaluate(&stylizer(kernels, &style_cpu, OptimizerKind::Adam), &content_cpu);
    let j_rel = (j_device - j_cpu).abs() / j_cpu;
    let grad_rel = norm(&(&g_device - &g_cpu).unwrap()) / norm(&g_cpu);
    println!("check device={compute} precision={precision} J={j_device:.6e} J_cpu_fp32={j_cpu:.6e} j_rel={j_rel:.2e} grad_rel={grad_rel:.2e}");
}

fn iteration() {
    let sizes: String = env_or("BENCH_SIZES", "384x216,640x360,1280x720,1920x1080".to_string());
    let iterations: usize = env_or("BENCH_ITERATIONS", 10);
    let optimizer: OptimizerKind = env_or("BENCH_OPTIMIZER", OptimizerKind::Adam);
    let compute = device();
    // One network for every size, shared by the sizes' stylizers.
    let vgg = Arc::new(load(compute, precision()));
    let (precision, dev) = (vgg.precision(), vgg.device().clone());
    for size in sizes.split(',') {
        let (w, h) = size.split_once('x').map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap())).expect("BENCH_SIZES: WxH,…");
        let (content, style) = images(&vgg, w, h);
        let stylizer = stylizer(vgg.clone(), &style, optimizer);
        let target = stylizer.content_target(&content).unwrap();
        reset_peak(&dev);
        let mut times = StepTimes(vec![Instant::now()]);
        stylizer.optimise(&target, &content, iterations + 3, &mut times).unwrap();
        let ms: Vec<f64> = times.0.windows(2).skip(3).map(|p| (p[1] - p[0]).as_secs_f64() * 1e3).collect();
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "ours {w}x{h} device={compute} precision={precision} optimizer={optimizer} median_ms={:.2} min_ms={min:.2} peak_gpu_mib={:.0}",
            median(ms.clone()),
            peak_gpu_mib(&dev)
        );
    }
}

fn video() {
    let dir = PathBuf::from(env_or("BENCH_FRAMES_DIR", "frames".to_string()));
    let first_iterations: usize = env_or("BENCH_FIRST_ITERATIONS", 100);
    let warm_iterations: usize = env_or("BENCH_WARM_ITERATIONS", 10);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 2, "{}: at least two PNG frames are needed", dir.display());
    let compute = device();
    let vgg = load(compute, precision());
    let precision = vgg.precision();
    let dev = vgg.device().clone();
    let frame = |p: &Path| to_tensor(&load_rgb(p).unwrap(), &dev).unwrap();
    let first = frame(&paths[0]);
    let (_, _, h, w) = first.dims4().unwrap();
    let style_image = load_rgb(&repo_file("samples/starry_night.jpg")).unwrap();
    let (sw, sh) = size_for_area(style_image.width(), style_image.height(), (w * h) as f64);
    let style = to_tensor(&resize(&style_image, sw, sh), &dev).unwrap();
    let stylizer = Stylizer::new(vgg, Settings::default(), &[(style, 1.0)]).unwrap();
    reset_peak(&dev);
    let mut previous: Option<Tensor> = None;
    let (mut first_s, mut warm) = (0.0, Vec::new());
    for path in &paths {
        let started = Instant::now();
        let content = frame(path);
        let target: ContentTarget = stylizer.content_target(&content).unwrap();
        let (target, start, iterations) = match &previous {
            None => (target, content.clone(), first_iterations),
            Some(previous) => {
                let reliability = Tensor::ones((1, 1, h, w), DType::F32, &dev).unwrap();
                let temporal = TemporalTarget { warped_previous: previous.clone(), reliability };
                (target.with_temporal(vec![temporal]).unwrap(), previous.clone(), warm_iterations)
            }
        };
        let result = stylizer.optimise(&target, &start, iterations, &mut NoProgress).unwrap();
        // The finished frame comes back to the host, as the pipeline's encoder needs it.
        let _pixels = result.image.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let seconds = started.elapsed().as_secs_f64();
        match previous {
            None => first_s = seconds,
            Some(_) => warm.push(seconds),
        }
        previous = Some(result.image);
    }
    let warm_s = median(warm.clone());
    println!(
        "video {w}x{h} device={compute} precision={precision} frames={} first_s={first_s:.2} warm_s={warm_s:.3} frames_per_minute={:.0} peak_gpu_mib={:.0}",
        paths.len(),
        60.0 / warm_s,
        peak_gpu_mib(&dev)
    );
}

fn quality() {
    let (w, h): (u32, u32) = env_or("BENCH_SIZE", "512x288".to_string())
        .split_once('x')
        .map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap()))
        .expect("BENCH_SIZE: WxH");
    let iterations: usize = env_or("BENCH_ITERATIONS", 100);
    let compute = device();
    let judge = load(compute, Some(Precision::Fp32));
    let (content, style) = images(&judge, w, h);
    let judge = stylizer(judge, &style, OptimizerKind::Lbfgs);
    let judge_target = judge.content_target(&content).unwrap();
    let mut fp32_j = None;
    for precision in [Precision::Fp32, Precision::Tf32, Precision::Bf16] {
        let vgg = load(compute, Some(precision));
        if vgg.precision() != precision {
            continue;
        }
        let stylizer = stylizer(vgg, &style, OptimizerKind::Lbfgs);
        let target = stylizer.content_target(&content).unwrap();
        let started = Instant::now();
        let result = stylizer.optimise(&target, &content, iterations, &mut NoProgress).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let judged = judge.evaluate(&result.image, &judge_target).unwrap().1.total;
        let reference = *fp32_j.get_or_insert(judged);
        println!(
            "quality {w}x{h} device={compute} precision={precision} iterations={iterations} J={:.5e} J_fp32={judged:.5e} vs_fp32={:+.2}% seconds={seconds:.2}",
            result.terms.total,
            (judged / reference - 1.0) * 100.0
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is read from the command line.
    match std::env::var("BENCH_MODE").as_deref() {
        Ok("check") => check(),
        Ok("video") => video(),
        Ok("quality") => quality(),
        Ok("iteration") | Err(_) => iteration(),
        Ok(other) => panic!("unknown BENCH_MODE {other} (check, iteration, video, quality)"),
    }
}
