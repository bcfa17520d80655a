//! Command line: parses the options, hands the job to the library, reports errors in one line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use stylize_video::optim::OptimizerKind;
use stylize_video::progress::{IterationBar, NoProgress, Progress};
use stylize_video::still::{run_still, Init, StillJob, StyleSpec, DEFAULT_ITERATIONS, DEFAULT_SIZE};
use stylize_video::stylize::{default_style_layers, Settings};
use stylize_video::vgg::{LayerName, Pooling};

/// Turn a photo (and soon a video) into a painting: Gatys et al. neural style transfer with
/// VGG16, optimised over the pixels of the output image.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Input image (PNG or JPEG).
    input: PathBuf,

    /// Style image(s); several (repeated or comma-separated) are blended, see --style-weights.
    #[arg(short, long, required = true, num_args = 1.., value_delimiter = ',')]
    style: Vec<PathBuf>,

    /// Output file; .png or .jpg [default: <input stem>-stylized.png beside the input]
    #[arg(short, long)]
    output: Option<PathBuf>,

    /// Maximum optimisation iterations (each: forward, losses, backward, step).
    #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
    iterations: usize,

    /// Optimiser over the pixels.
    #[arg(long, default_value = "lbfgs", value_parser = ["lbfgs", "adam"])]
    optimizer: String,

    /// Step size: L-BFGS's step scale [default: 1]; Adam's step in 0..255 pixel units [default: 10].
    #[arg(long)]
    learning_rate: Option<f64>,

    /// α, weight of the content cost J_content.
    #[arg(long, default_value_t = Settings::default().content_weight)]
    content_weight: f64,

    /// β, weight of the style cost J_style.
    #[arg(long, default_value_t = Settings::default().style_weight)]
    style_weight: f64,

    /// γ_tv, weight of the total-variation cost J_tv (0 disables it).
    #[arg(long, default_value_t = Settings::default().tv_weight)]
    tv_weight: f64,

    /// Layers of the style cost, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")]
    style_layers: Vec<LayerName>,

    /// λ^[l] for each style layer, comma-separated [default: 1/(number of style layers) each].
    #[arg(long, value_delimiter = ',')]
    style_layer_weights: Option<Vec<f64>>,

    /// Layer of the content cost.
    #[arg(long, default_value = "relu4_2")]
    content_layer: LayerName,

    /// Pooling between VGG's blocks.
    #[arg(long, default_value = "max", value_parser = ["max", "avg"])]
    pooling: String,

    /// Starting image: content, noise, or the path of an image.
    #[arg(long, default_value = "content")]
    init: Init,

    /// Seed of --init noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Longest side of the processed (and written) image, in pixels. Time per iteration grows
    /// with the pixel count: at 256 an iteration takes about 0.3 s on 2 CPU cores, at 512 four
    /// times that.
    #[arg(long, default_value_t = DEFAULT_SIZE)]
    size: u32,

    /// Style images are resized so their area is the content's area times this.
    #[arg(long, default_value_t = 1.0)]
    style_scale: f64,

    /// Blend weights of the --style images, comma-separated [default: equal].
    #[arg(long, value_delimiter = ',')]
    style_weights: Option<Vec<f64>>,

    /// Early stop when J changes by less than this fraction over 10 iterations (0: never).
    #[arg(long, default_value_t = Settings::default().tol)]
    tol: f64,

    /// Write the loss terms and run facts as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,

    /// VGG16 weights (safetensors) [default: $STYLIZE_VIDEO_WEIGHTS, else weights/ in the source tree].
    #[arg(long)]
    weights: Option<PathBuf>,

    /// No progress output.
    #[arg(short, long)]
    quiet: bool,
}

fn default_output(input: &Path) -> PathBuf {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    input.with_file_name(format!("{stem}-stylized.png"))
}

impl Cli {
    fn job(self) -> Result<StillJob, String> {
        let optimizer: OptimizerKind = self.optimizer.parse()?;
        let pooling: Pooling = self.pooling.parse()?;
        let n = self.style_layers.len();
        let settings = Settings {
            content_weight: self.content_weight,
            style_weight: self.style_weight,
            tv_weight: self.tv_weight,
            style_layer_weights: self.style_layer_weights.unwrap_or_else(|| vec![1.0 / n.max(1) as f64; n]),
            style_layers: if n == 0 { default_style_layers() } else { self.style_layers },
            content_layer: self.content_layer,
            optimizer,
            learning_rate: self.learning_rate.unwrap_or(Settings::default_learning_rate(optimizer)),
            tol: self.tol,
            ..Settings::default()
        };
        let blend_weights = self.style_weights.unwrap_or_else(|| vec![1.0; self.style.len()]);
        Ok(StillJob {
            output: self.output.unwrap_or_else(|| default_output(&self.input)),
            content: self.input,
            style: StyleSpec { paths: self.style, blend_weights, scale: self.style_scale },
            size: self.size,
            init: self.init,
            seed: self.seed,
            iterations: self.iterations,
            pooling,
            settings,
            weights: self.weights,
            report: self.report,
        })
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // clap's first line says what is wrong; the rest points at --help.
            let message = e.render().to_string();
            eprintln!("stylize-video: {}", message.lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    let quiet = cli.quiet;
    let job = match cli.job() {
        Ok(job) => job,
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bar = (!quiet).then(|| IterationBar::new(job.iterations));
    let progress: &mut dyn Progress = match bar.as_mut() {
        Some(bar) => bar,
        None => &mut NoProgress,
    };
    let result = run_still(&job, progress);
    if let Some(bar) = &bar {
        bar.finish();
    }
    match result {
        Ok(report) => {
            if !quiet {
                eprintln!(
                    "wrote {} ({}×{}, {} iterations, {:.1} s, J {:.4e} = α·{:.4e} + β·{:.4e} + γ·{:.4e})",
                    report.output.display(),
                    report.width,
                    report.height,
                    report.iterations,
                    report.seconds,
                    report.terms.total,
                    report.terms.content,
                    report.terms.style,
                    report.terms.tv
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stylize-video: error: {e}");
            ExitCode::FAILURE
        }
    }
}
