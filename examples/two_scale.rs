//! Judges high-resolution stylizations at two scales, as the project's targets for footage
//! resolution are stated: J_style and J_content with content, style and output resized
//! (Lanczos) to `--coarse` px on the longest side (is it a painting when seen small?), and at
//! the output's own size (is it sharp?). The style image is resized to exactly the judged size,
//! the same for every output, so the figures compare outputs with one another (e.g. against
//! the base-size painting upscaled), not with a run's own J. Max pooling, fp32, the seed's
//! losses (the same conventions as the shared reference implementation).
//!
//! `cargo run --release --example two_scale -- CONTENT STYLE OUTPUT [OUTPUT…] [--coarse 320]`
//! prints one JSON line per output.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use image::RgbImage;
use stylize_video::media::image_io::{load_rgb, resize, size_for_longest_side};
use stylize_video::net::input::to_tensor;
use stylize_video::net::precision::{Compute, Precision};
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::stylize::stylizer::{Settings, Stylizer};

/// J_style and J_content of `output` against `content` and `style`, all resized to `size`.
fn judge(vgg: &Arc<Vgg16>, content: &RgbImage, style: &RgbImage, output: &RgbImage, (w, h): (u32, u32)) -> (f64, f64) {
    let tensor = |image: &RgbImage| to_tensor(&resize(image, w, h), &Device::Cpu).expect("tensor");
    let stylizer = Stylizer::new(vgg.clone(), Settings::default(), &[(tensor(style), 1.0)]).expect("stylizer");
    let target = stylizer.content_target(&tensor(content)).expect("content target");
    let (_, terms) = stylizer.cost(&tensor(output), &target).expect("cost");
    (terms.style, terms.content)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut coarse = 320;
    if let Some(i) = args.iter().position(|a| a == "--coarse") {
        coarse = args[i + 1].parse().expect("--coarse takes a number of pixels");
        args.drain(i..i + 2);
    }
    assert!(args.len() >= 3, "usage: two_scale CONTENT STYLE OUTPUT [OUTPUT…] [--coarse 320]");
    let vgg = Arc::new(
        Vgg16::load_with(&weights_path(None), Pooling::Max, Compute::Cpu, Some(Precision::Fp32)).expect("weights"),
    );
    let content = load_rgb(Path::new(&args[0])).expect("content image");
    let style = load_rgb(Path::new(&args[1])).expect("style image");
    for path in &args[2..] {
        let output = load_rgb(Path::new(path)).expect("output image");
        let (w, h) = output.dimensions();
        let small = size_for_longest_side(w, h, coarse);
        let (coarse_style, coarse_content) = judge(&vgg, &content, &style, &output, small);
        let (full_style, full_content) = judge(&vgg, &content, &style, &output, (w, h));
        println!(
            "{}",
            serde_json::json!({
                "output": path,
                "coarse": {"J_style": coarse_style, "J_content": coarse_content, "size": [small.0, small.1]},
                "full": {"J_style": full_style, "J_content": full_content, "size": [w, h]},
            })
        );
    }
}
