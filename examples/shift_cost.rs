//! How a painting's J_style moves when the painting moves, and nothing else does: the painting
//! rolled left by whole pixels (wrapped around, so no pixel is new and no stroke changes) and
//! moved by half a pixel (each column the mean of itself and its right neighbour, a bilinear
//! warp's worst case), each judged as the video job judges a frame of its size (the same
//! style targets, the default margin). The figures behind docs/temporal.md's "What the pan
//! has left": VGG's pooling grid and the blur of a bilinear warp, measured apart from the flow.
//!
//! `cargo run --release --example shift_cost -- STYLE CONTENT PAINTING [--margin 8]` prints one
//! JSON line per move: its J_style, the ratio to the unmoved painting's, and each style layer's
//! ratio.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use image::RgbImage;
use stylize_video::jobs::spec::StyleSpec;
use stylize_video::media::image_io::load_rgb;
use stylize_video::net::input::to_tensor;
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::stylize::margin::DEFAULT_VIDEO_MARGIN;
use stylize_video::stylize::stylizer::{Settings, Stylizer};

/// `image` rolled left by `k` whole pixels, the left columns wrapped around to the right.
fn rolled(image: &RgbImage, k: u32) -> RgbImage {
    let w = image.width();
    RgbImage::from_fn(w, image.height(), |x, y| *image.get_pixel((x + k) % w, y))
}

/// `image` moved left by half a pixel with bilinear weights (wrapped around like [`rolled`]).
fn half_pixel(image: &RgbImage) -> RgbImage {
    let w = image.width();
    RgbImage::from_fn(w, image.height(), |x, y| {
        let (a, b) = (image.get_pixel(x, y).0, image.get_pixel((x + 1) % w, y).0);
        image::Rgb([0, 1, 2].map(|c| (a[c] as u16 + b[c] as u16).div_ceil(2) as u8))
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let margin = match args.iter().position(|a| a == "--margin") {
        Some(i) => args.get(i + 1).and_then(|m| m.parse().ok()).expect("--margin takes a whole number of pixels"),
        None => DEFAULT_VIDEO_MARGIN,
    };
    let [style, content, painting] = [0, 1, 2].map(|i| args.get(i).expect("usage: STYLE CONTENT PAINTING [--margin P]"));
    let painting = load_rgb(Path::new(painting)).expect("the painting");
    let content = load_rgb(Path::new(content)).expect("the content");
    let (w, h) = painting.dimensions();
    assert_eq!(content.dimensions(), (w, h), "the content and the painting differ in size");

    let vgg = Arc::new(Vgg16::load(&weights_path(None), Pooling::Max).expect("VGG16 weights"));
    let styles = StyleSpec::one(style.into()).load(w, h, &Device::Cpu).expect("the style");
    let stylizer = Stylizer::new(vgg, Settings { margin, ..Settings::default() }, &styles).expect("stylizer");
    let target = stylizer.content_target(&to_tensor(&content, &Device::Cpu).expect("tensor")).expect("content target");
    let judge = |image: &RgbImage| stylizer.cost(&to_tensor(image, &Device::Cpu).expect("tensor"), &target).expect("cost").1;

    let unmoved = judge(&painting);
    let moves = (0..=16).map(|k| (format!("{k} px"), rolled(&painting, k))).chain([("0.5 px".to_string(), half_pixel(&painting))]);
    for (name, image) in moves {
        let terms = judge(&image);
        let layers: Vec<String> = (terms.style_layers.iter().zip(&unmoved.style_layers))
            .map(|((layer, j), (_, j0))| format!("\"{layer}\": {:.3}", j / j0))
            .collect();
        println!(
            "{{\"move\": \"{name}\", \"margin\": {margin}, \"J_style\": {:.4e}, \"ratio\": {:.3}, \"layers\": {{{}}}}}",
            terms.style,
            terms.style / unmoved.style,
            layers.join(", ")
        );
    }
}
