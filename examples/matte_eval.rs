//! Matte evaluation: how painted a matted region is, and how untouched the rest.
//!
//! `cargo run --release --example matte_eval -- CONTENT STYLE MATTE IMAGE…` prints, for each
//! IMAGE (a painting of CONTENT, e.g. one frame of a matted run and of an unmatted one), J_style
//! over the region the MATTE marks as `--matte` optimises it (IMAGE over CONTENT by the matte,
//! masked Gram matrices) with its layers, J_style of IMAGE over the whole frame, and the PSNR of the image against CONTENT where the
//! matte is black. Every file is taken at IMAGE's size; the style at the content's area.

use std::path::PathBuf;

use candle_core::Device;
use stylize_video::jobs::spec::StyleSpec;
use stylize_video::media::image_io::{load_rgb, resize};
use stylize_video::media::matte::MatteFrames;
use stylize_video::media::matte::MatteSpec;
use stylize_video::net::input::{matte_tensor, to_tensor};
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::stylize::stylizer::{Settings, Stylizer};

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Fallible<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [content_path, style_path, matte_path, images @ ..] = &args[..] else {
        return Err("usage: matte_eval CONTENT STYLE MATTE IMAGE…".into());
    };
    let device = Device::Cpu;
    let first = load_rgb(images.first().ok_or("no IMAGE given")?)?;
    let (width, height) = first.dimensions();
    let content = resize(&load_rgb(content_path)?, width, height);
    let spec = MatteSpec { path: matte_path.clone(), feather: 0.0 };
    let matte = MatteFrames::still(&spec, content.dimensions(), (width, height))?.next_frame()?.matte;
    let styles = StyleSpec::one(style_path.clone()).load(width, height, &device)?;
    let vgg = Vgg16::load(&weights_path(None), Pooling::Max)?;
    let stylizer = Stylizer::new(vgg, Settings::default(), &styles)?;
    let content_tensor = to_tensor(&content, &device)?;
    let whole = stylizer.content_target(&content_tensor)?;
    let matted = stylizer.content_target(&content_tensor)?.with_matte(&matte_tensor(&matte, &device)?)?;
    for path in images {
        let image = load_rgb(path)?;
        if image.dimensions() != (width, height) {
            return Err(format!("{} is {:?}, the first image {:?}", path.display(), image.dimensions(), (width, height)).into());
        }
        let x = to_tensor(&image, &device)?;
        let region = stylizer.evaluate(&x, &matted)?.1;
        let all = stylizer.evaluate(&x, &whole)?.1;
        // PSNR against the content where the matte is black.
        let (mut sum, mut n) = (0f64, 0usize);
        for ((p, c), m) in image.pixels().zip(content.pixels()).zip(matte.pixels()) {
            if m[0] == 0 {
                sum += (0..3).map(|k| (p[k] as f64 - c[k] as f64).powi(2)).sum::<f64>();
                n += 3;
            }
        }
        let psnr = if sum == 0.0 { f64::INFINITY } else { 10.0 * (255f64.powi(2) / (sum / n as f64)).log10() };
        let layers: Vec<String> = region.style_layers.iter().map(|(l, j)| format!("{l} {j:.3e}")).collect();
        println!(
            "{}: J_style over the matte {:.4e} ({}), over the whole image {:.4e}; outside PSNR {psnr:.1} dB",
            path.display(),
            region.style,
            layers.join(", "),
            all.style
        );
    }
    Ok(())
}
