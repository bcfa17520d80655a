//! Compares two renderings of one clip pair by pair: the warping error (Lai et al.) of every
//! consecutive frame pair of `B` over that of the same pair in `A`, measured with the input's
//! optical flow at the outputs' size. With A a single-process run and B the segments
//! assembled, the pairs that span a join show whether the joins are seamless.
//!
//! `cargo run --release --example join_eval -- INPUT A B [JOINS…]` (JOINS: first frames of
//! later segments, 0-based, e.g. from the assemble report's boundaries).

use std::path::Path;

use stylize_video::media::video::{DecodeOptions, FrameSize, VideoDecoder};
use stylize_video::motion::flow::FlowMethod;
use stylize_video::motion::temporal::pair_warping_errors;

fn frames(path: &Path, size: Option<(u32, u32)>) -> Vec<image::RgbImage> {
    let options = DecodeOptions { size: size.map_or(FrameSize::Source, |(w, h)| FrameSize::Exact(w, h)), ..Default::default() };
    let mut decoder = VideoDecoder::open(path, &options).expect("decodable video");
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().expect("decodable frame") {
        frames.push(frame.image);
    }
    frames
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(args.len() >= 3, "usage: join_eval INPUT A B [JOINS…]");
    let a = frames(Path::new(&args[1]), None);
    let size = a[0].dimensions();
    let b = frames(Path::new(&args[2]), Some(size));
    let input = frames(Path::new(&args[0]), Some(size));
    let joins: Vec<usize> = args[3..].iter().map(|j| j.parse().expect("a frame number")).collect();
    let we_a = pair_warping_errors(&input, &a, FlowMethod::Dis).expect("flow");
    let we_b = pair_warping_errors(&input, &b, FlowMethod::Dis).expect("flow");
    let mut ratios = Vec::new();
    for (t, (x, y)) in we_a.iter().zip(&we_b).enumerate() {
        if let (Some(x), Some(y)) = (x, y) {
            let near = joins.iter().any(|&j| t + 1 >= j && t <= j + 12);
            if near || std::env::var_os("EVAL_ALL").is_some() {
                println!("pair {:>3}→{:<3} A {x:.3e}  B {y:.3e}  B/A {:.2}{}", t - 1, t, y / x, if joins.contains(&t) { "  ← join" } else { "" });
            }
            ratios.push(y / x);
        }
    }
    let mean_a = we_a.iter().flatten().sum::<f64>() / we_a.iter().flatten().count() as f64;
    let mean_b = we_b.iter().flatten().sum::<f64>() / we_b.iter().flatten().count() as f64;
    let worst = ratios.iter().cloned().fold(0.0, f64::max);
    println!("pairs {}: mean A {mean_a:.3e}, mean B {mean_b:.3e}, mean B/A {:.3}, worst pair B/A {worst:.2}", ratios.len(), mean_b / mean_a);
}
