//! Benchmark: milliseconds per optimisation iteration (forward through VGG16, losses, backward
//! to the pixels, optimiser step) at 256×144 and 384×216, and the wall time of the still-image
//! demo at its defaults. Prints numbers; asserts nothing. Run: `cargo bench --bench iteration`.

use std::path::PathBuf;
use std::time::Instant;

use stylize_video::image_io::{load_rgb, resize, size_for_area, to_tensor};
use stylize_video::progress::{NoProgress, Progress};
use stylize_video::still::{run_still, StillJob};
use stylize_video::stylize::{LossTerms, Settings, Stylizer};
use stylize_video::vgg::{weights_path, Pooling, Vgg16};

/// Records the time of each optimiser step.
struct StepTimes(Vec<Instant>);

impl Progress for StepTimes {
    fn iteration(&mut self, _: usize, _: usize, _: &LossTerms) {
        self.0.push(Instant::now());
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let threads = rayon::current_num_threads();
    println!("stylize-video iteration benchmark ({threads} rayon threads, {iterations} timed iterations per size)");
    println!("{:>10}  {:>12}  {:>12}", "frame", "median ms/it", "min ms/it");
    let content = load_rgb(&sample("pedestrians_frame0.jpg")).unwrap();
    let style = load_rgb(&sample("starry_night.jpg")).unwrap();
    for (w, h) in [(256u32, 144u32), (384, 216)] {
        let dev = candle_core::Device::Cpu;
        let (sw, sh) = size_for_area(style.width(), style.height(), (w * h) as f64);
        let style_t = to_tensor(&resize(&style, sw, sh), &dev).unwrap();
        let content_t = to_tensor(&resize(&content, w, h), &dev).unwrap();
        let vgg = Vgg16::load(&weights_path(None), Pooling::Max).unwrap();
        let settings = Settings { tol: 0.0, ..Settings::default() };
        let stylizer = Stylizer::new(vgg, settings, &[(style_t, 1.0)]).unwrap();
        let target = stylizer.content_target(&content_t).unwrap();
        // Warm-up: first-touch allocations, rayon pool start.
        stylizer.optimise(&target, &content_t, 2, &mut NoProgress).unwrap();
        let mut times = StepTimes(vec![Instant::now()]);
        stylizer.optimise(&target, &content_t, iterations, &mut times).unwrap();
        let per_step: Vec<f64> = times.0.windows(2).map(|p| (p[1] - p[0]).as_secs_f64() * 1e3).collect();
        let min = per_step.iter().cloned().fold(f64::MAX, f64::min);
        println!("{:>10}  {:>12.0}  {:>12.0}", format!("{w}x{h}"), median(per_step), min);
    }

    let out = std::env::temp_dir().join("stylize-video-bench-demo.png");
    let cli_defaults = StillJob::with_defaults(sample("pedestrians_frame0.jpg"), sample("starry_night.jpg"), out.clone());
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
