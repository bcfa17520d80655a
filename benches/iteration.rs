//! Benchmark: milliseconds per optimisation iteration (forward through VGG16, losses, backward
//! to the pixels, optimiser step), the still-image demo, and the video pipeline's seconds per
//! frame. Prints numbers; asserts nothing.
//!
//! `cargo bench --bench iteration` runs the default set (256×144 and 384×216 iterations, the
//! still demo). `scripts/bench-vs-pytorch` drives single measurements through `BENCH_MODE`:
//! `BENCH_DEVICE` (cpu, cpu-reference, cuda, cuda:N) picks where `iteration` and `video` run,
//! `BENCH_PRECISION` (fp32, tf32, bf16; unset: the device's default) how they multiply.
//! - `iteration` (`BENCH_SIZE=WxH`, `BENCH_ITERATIONS`, `BENCH_OPTIMIZER=adam|lbfgs`, `BENCH_MARGIN=PX`; with
//!   `STYLIZE_VIDEO_PROFILE=1` also ms per iteration by operation):
//!   `ours WxH precision=… median_ms=… min_ms=… peak_rss_mib=…`
//! - `sgemm`: the machine's single-precision matrix-product rate through `gemm` (the crate our
//!   kernels use), `sgemm_gflops=…`
//! - `layers` (`BENCH_SIZE=WxH`): each VGG16 convolution up to conv5_1 alone, forward + input
//!   gradient, with im2col, Winograd and (where the CPU has a bf16 kernel) Winograd with bf16
//!   products: `layer conv… im2col_ms=… winograd_ms=… direct_bf16_ms=… …`
//! - `gram` (`BENCH_SIZE=WxH`): the Gram matrix G = F Fᵀ of each style layer's shape and its
//!   input gradient S · F, alone: `gram relu… CxHW forward_ms=… gradient_ms=… forward_gflops=…`
//! - `quality`: the bf16 quality gate, the still demo (100 L-BFGS iterations) in fp32 and bf16:
//!   `quality J_bf16/J_fp32=… psnr_db=…` after a line per run
//! - `video` (`BENCH_FRAMES`): the sample clip at the defaults,
//!   `video device=… frames=… first_s=… warm_s=… frames_per_minute=… peak_rss_mib=…`

mod common;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use common::{env_or, median, StepTimes};

use candle_core::{Device, Tensor, Var};
use stylize_video::jobs::pipeline::{run_video, VideoJob};
use stylize_video::jobs::still::{run_still, StillJob};
use stylize_video::media::image_io::{load_rgb, resize, size_for_area};
use stylize_video::net::cpu::layers::{ConvAlgorithm, Conv3x3Relu, Conv3x3Weights};
use stylize_video::net::input::to_tensor;
use stylize_video::net::precision::Compute;
use stylize_video::net::precision::Precision;
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::progress::NoProgress;
use stylize_video::stylize::optim::OptimizerKind;
use stylize_video::stylize::stylizer::{Settings, Stylizer};



fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}


/// Peak resident memory of this process so far (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

/// Milliseconds of each of `iterations` optimisation steps at `w × h` (after 2 warm-up steps).
fn iteration_times(w: u32, h: u32, iterations: usize, optimizer: OptimizerKind) -> Vec<f64> {
    let content = load_rgb(&sample("pedestrians_frame0.jpg")).unwrap();
    let style = load_rgb(&sample("starry_night.jpg")).unwrap();
    let vgg = Vgg16::load_with(&weights_path(None), Pooling::Max, bench_device(), bench_precision()).unwrap();
    let dev = vgg.device().clone();
    let (sw, sh) = size_for_area(style.width(), style.height(), (w * h) as f64);
    let style_t = to_tensor(&resize(&style, sw, sh), &dev).unwrap();
    let content_t = to_tensor(&resize(&content, w, h), &dev).unwrap();
    let settings = Settings {
        tol: 0.0,
        optimizer,
        learning_rate: Settings::default_learning_rate(optimizer),
        margin: env_or("BENCH_MARGIN", 0),
        ..Settings::default()
    };
    let stylizer = Stylizer::new(vgg, settings, &[(style_t, 1.0)]).unwrap();
    let target = stylizer.content_target(&content_t).unwrap();
    stylizer.optimise(&target, &content_t, 2, &mut NoProgress).unwrap();
    let mut times = StepTimes(vec![Instant::now()]);
    stylizer.optimise(&target, &content_t, iterations, &mut times).unwrap();
    times.0.windows(2).map(|p| (p[1] - p[0]).as_secs_f64() * 1e3).collect()
}

/// `BENCH_DEVICE` (cpu, cpu-reference, cuda, cuda:N), cpu by default.
fn bench_device() -> Compute {
    env_or("BENCH_DEVICE", Compute::Cpu)
}

/// `BENCH_PRECISION` (fp32, tf32, bf16), the device's default when unset.
fn bench_precision() -> Option<Precision> {
    std::env::var("BENCH_PRECISION").ok().filter(|p| !p.is_empty()).map(|p| p.parse().expect("BENCH_PRECISION is fp32, tf32 or bf16"))
}

/// `BENCH_SIZE` (WxH), 384x216 by default.
fn bench_size() -> (u32, u32) {
    let text = std::env::var("BENCH_SIZE").unwrap_or_else(|_| "384x216".into());
    let (w, h) = text.split_once('x').expect("BENCH_SIZE is WxH");
    (w.parse().unwrap(), h.parse().unwrap())
}

/// GFLOP/s of a 2048³ single-precision product through `gemm` on all rayon threads (best of 5).
fn sgemm_gflops() -> f64 {
    let n = 2048;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0f32; n * n];
    let threads = rayon::current_num_threads();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        // SAFETY: a, b and c are n×n row-major buffers that live through the call, c is not
        // aliased, and the strides given match that layout.
        unsafe {
            gemm::gemm(
                n, n, n,
                c.as_mut_ptr(), 1, n as isize, false,
                a.as_ptr(), 1, n as isize,
                b.as_ptr(), 1, n as isize,
                0.0, 1.0, false, false, false,
                gemm::Parallelism::Rayon(threads),
            );
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Median milliseconds of one 3×3 convolution + ReLU layer: the forward alone, and forward +
/// input gradient through autograd (what an iteration pays, candle's bookkeeping included).
fn conv_layer_ms(weights: Conv3x3Weights, h: usize, w: usize) -> (f64, f64) {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, weights.c_in, h, w), &dev).unwrap()).unwrap();
    let probe = Tensor::randn(0f32, 1.0, (1, weights.c_out, h, w), &dev).unwrap();
    let op = Conv3x3Relu::new(weights);
    let forward: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let _ = x.as_tensor().apply_op1_no_bwd(&op).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let both: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let y = x.as_tensor().apply_op1(op.clone()).unwrap();
            (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (median(forward[1..].to_vec()), median(both[1..].to_vec()))
}

/// Median milliseconds of the style layers' Gram matrices and their input gradients at a frame
/// of `w × h` (relu1_1 … relu5_1: 64–512 channels at 1/1 … 1/16 of the frame's side).
fn gram(w: usize, h: usize) {
    use stylize_video::net::cpu::layers::Gram;
    for (name, c, scale) in [("relu1_1", 64, 1), ("relu2_1", 128, 2), ("relu3_1", 256, 4), ("relu4_1", 512, 8), ("relu5_1", 512, 16)] {
        let hw = (h / scale) * (w / scale);
        let a: Vec<f32> = (0..c * hw).map(|i| (i * 7919 % 997) as f32 / 997.0).collect();
        let s: Vec<f32> = (0..c * c).map(|i| (i * 104729 % 991) as f32 / 991.0 - 0.5).collect();
        let runs = (2_000_000_000 / (c * c * hw).max(1)).clamp(3, 50);
        let timed = |f: &dyn Fn() -> Vec<f32>| {
            std::hint::black_box(f());
            median((0..runs).map(|_| {
                let started = Instant::now();
                std::hint::black_box(f());
                started.elapsed().as_secs_f64() * 1e3
            }).collect())
        };
        let forward = timed(&|| Gram::compute(&a, c, hw));
        let gradient = timed(&|| Gram::input_gradient(&s, &a, c, hw));
        let gflops = 2.0 * (c * c * hw) as f64 / forward / 1e6;
        println!("gram {name} {c}x{hw} forward_ms={forward:.2} gradient_ms={gradient:.2} forward_gflops={gflops:.0}");
    }
}

/// Each VGG16 convolution up to conv5_1 at its own resolution for a `w × h` frame: both
/// algorithms, and the direct-convolution GFLOP/s (forward + input gradient) of the faster.
fn layers(w: usize, h: usize) {
    let shapes = [
        ("conv1_1", 3, 64, 1), ("conv1_2", 64, 64, 1), ("conv2_1", 64, 128, 2), ("conv2_2", 128, 128, 2),
        ("conv3_1", 128, 256, 4), ("conv3_2", 256, 256, 4), ("conv4_1", 256, 512, 8),
        ("conv4_2", 512, 512, 8), ("conv5_1", 512, 512, 16),
    ];
    for (name, c_in, c_out, scale) in shapes {
        let (lh, lw) = (h / scale, w / scale);
        let weight: Vec<f32> = (0..c_out * c_in * 9).map(|i| ((i * 7919 % 997) as f32 / 997.0 - 0.5) * 0.1).collect();
        let bias = Some(vec![0.01f32; c_out]);
        let ms = |algorithm| conv_layer_ms(Conv3x3Weights::with_algorithm(c_out, c_in, weight.clone(), bias.clone(), algorithm), lh, lw);
        let (im2col, winograd) = (ms(ConvAlgorithm::Im2col), ms(ConvAlgorithm::Winograd));
        let bf16 = stylize_video::net::cpu::bf16::Kernel::detect().is_some().then(|| ms(ConvAlgorithm::DirectBf16));
        let best = im2col.1.min(winograd.1).min(bf16.map_or(f64::MAX, |t| t.1));
        let gflop = 2.0 * 2.0 * (lh * lw * c_in * c_out * 9) as f64 / 1e9;
        let show = |t: (f64, f64)| format!("{:.1}/{:.1}", t.0, t.1);
        println!(
            "layer {name} {c_in}->{c_out} {lw}x{lh} fwd/fwd+bwd ms: im2col={} winograd={} direct_bf16={} best_gflops={:.0}",
            show(im2col),
            show(winograd),
            bf16.map_or("-".to_string(), show),
            gflop / (best / 1e3)
        );
    }
}

/// The bf16 quality gate: the still demo (CLI defaults, 100 L-BFGS iterations, no early stop)
/// in fp32 and in bf16: final J of each, their ratio, the PSNR between the two images, seconds.
fn quality() {
    let run = |precision: Precision| {
        let out = std::env::temp_dir().join(format!("stylize-video-quality-{precision}-{}.png", std::process::id()));
        let mut job = StillJob::with_defaults(sample("pedestrians_frame0.jpg"), sample("starry_night.jpg"), out.clone());
        job.iterations = 100;
        job.overwrite = true;
        job.options.settings.tol = 0.0;
        job.options.network.precision = Some(precision);
        let started = Instant::now();
        let report = run_still(&job, &mut NoProgress).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let image = image::open(&out).unwrap().to_rgb8();
        let _ = std::fs::remove_file(out);
        println!(
            "quality {} {}x{} iterations={} J={:.6e} seconds={seconds:.1}",
            report.options.precision, report.width, report.height, report.iterations, report.terms.total
        );
        (report.terms.total, image)
    };
    let (j32, image32) = run(Precision::Fp32);
    let (j16, image16) = run(Precision::Bf16);
    let mse = image32.as_raw().iter().zip(image16.as_raw()).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>()
        / image32.as_raw().len() as f64;
    println!("quality J_bf16/J_fp32={:.4} psnr_db={:.1}", j16 / j32, 10.0 * (255.0f64 * 255.0 / mse).log10());
}

fn video(frames: u64) {
    let out = std::env::temp_dir().join(format!("stylize-video-bench-{}.mp4", std::process::id()));
    let mut job = VideoJob {
        max_frames: Some(frames),
        overwrite: true,
        fresh: true,
        ..VideoJob::with_defaults(sample("pedestrians.mp4"), sample("starry_night.jpg"), out.clone())
    };
    job.options.network.compute = bench_device();
    job.options.network.precision = bench_precision();
    let report = run_video(&job, &mut NoProgress, &AtomicBool::new(false)).unwrap();
    let _ = std::fs::remove_file(out);
    let t = report.totals;
    println!(
        "video device={} frames={} size={}x{} first_s={:.2} warm_s={:.2} total_s={:.1} frames_per_minute={:.1} peak_rss_mib={:.0}",
        report.options.device,
        t.frames,
        report.width,
        report.height,
        t.first_frame_seconds.unwrap_or(f64::NAN),
        t.warm_frame_seconds.unwrap_or(f64::NAN),
        t.seconds,
        t.frames as f64 / t.seconds * 60.0,
        peak_rss_mib()
    );
}

fn main() {
    stylize_video::net::memory::reuse_freed_memory();
    match std::env::var("BENCH_MODE").as_deref() {
        Ok("iteration") => {
            let (w, h) = bench_size();
            let optimizer = env_or("BENCH_OPTIMIZER", OptimizerKind::Adam);
            let times = iteration_times(w, h, env_or("BENCH_ITERATIONS", 10), optimizer);
            let min = times.iter().cloned().fold(f64::MAX, f64::min);
            let profile = stylize_video::net::profile::take();
            let precision = Precision::effective(bench_precision(), bench_device());
            println!("ours {w}x{h} precision={precision} median_ms={:.1} min_ms={min:.1} peak_rss_mib={:.0}", median(times), peak_rss_mib());
            // With STYLIZE_VIDEO_PROFILE set: ms per iteration by operation (warm-up included).
            let per_iteration = 1e3 / (env_or("BENCH_ITERATIONS", 10) + 2) as f64;
            for (what, calls, seconds) in profile {
                println!("  {what:<48} {:>8.2} ms/it {calls:>6} calls", seconds * per_iteration);
            }
        }
        Ok("layers") => {
            let (w, h) = bench_size();
            layers(w as usize, h as usize);
        }
        Ok("gram") => {
            let (w, h) = bench_size();
            gram(w as usize, h as usize);
        }
        Ok("sgemm") => println!("sgemm_gflops={:.1}", sgemm_gflops()),
        Ok("video") => video(env_or("BENCH_FRAMES", 6)),
        Ok("quality") => quality(),
        _ => default_set(),
    }
}

fn default_set() {
    let iterations: usize = env_or("BENCH_ITERATIONS", 12);
    let threads = rayon::current_num_threads();
    println!("stylize-video iteration benchmark ({threads} rayon threads, {iterations} timed L-BFGS iterations per size)");
    println!("{:>10}  {:>12}  {:>12}", "frame", "median ms/it", "min ms/it");
    for (w, h) in [(256u32, 144u32), (384, 216)] {
        let times = iteration_times(w, h, iterations, OptimizerKind::Lbfgs);
        let min = times.iter().cloned().fold(f64::MAX, f64::min);
        println!("{:>10}  {:>12.0}  {:>12.0}", format!("{w}x{h}"), median(times), min);
    }
    let out = std::env::temp_dir().join("stylize-video-bench-demo.png");
    let cli_defaults =
        StillJob { overwrite: true, ..StillJob::with_defaults(sample("pedestrians_frame0.jpg"), sample("starry_night.jpg"), out.clone()) };
    let started = Instant::now();
    let report = run_still(&cli_defaults, &mut NoProgress).unwrap();
    println!(
        "still demo (samples/pedestrians_frame0.jpg, CLI defaults: {}x{}, {} iterations): {:.1} s",
        report.width,
        report.height,
        report.iterations,
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(out);
}
