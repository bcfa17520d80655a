//! L-BFGS started from a known curvature: a warm frame's first iteration is a real step when it
//! starts from the previous frame's γ, where Torch's first step (min(1, 1/‖g‖₁)·g) only probes.

mod common;

use candle_core::Device;
use image::RgbImage;
use stylize_video::net::input::to_tensor;
use stylize_video::net::vgg::Pooling;
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::{Settings, Stylizer};

/// The synthetic scene panned right by `shift` pixels.
fn frame(shift: u32) -> RgbImage {
    let wide = common::synthetic_content(64, 48);
    RgbImage::from_fn(48, 48, |x, y| *wide.get_pixel(x + shift, y))
}

#[test]
fn a_warm_frame_started_with_the_previous_frames_curvature_takes_a_real_first_step() {
    let dev = Device::Cpu;
    let style = to_tensor(&common::synthetic_style(48, 48), &dev).unwrap();
    let stylizer = Stylizer::new(common::vgg(Pooling::Max), Settings { tol: 0.0, ..Settings::default() }, &[(style, 1.0)]).unwrap();
    let content_1 = to_tensor(&frame(0), &dev).unwrap();
    let frame_1 = stylizer.optimise(&stylizer.content_target(&content_1).unwrap(), &content_1, 30, &mut NoProgress).unwrap();
    // Frame 2, one pixel of pan later, warm: two iterations from frame 1's painting, started
    // with frame 1's curvature (as the pipeline does).
    let content_2 = to_tensor(&frame(1), &dev).unwrap();
    let target_2 = stylizer.content_target(&content_2).unwrap();
    let frame_2 = stylizer.optimise_with_curvature(&target_2, &frame_1.image, 2, frame_1.curvature_scale, &mut NoProgress).unwrap();
    let scale = frame_2.curvature_scale.expect("two L-BFGS iterations leave a curvature pair");
    assert!(scale > 0.0 && scale.is_finite(), "γ = {scale}");

    // Frame 3, warm from frame 2: from the probe, and from frame 2's curvature.
    let content_3 = to_tensor(&frame(2), &dev).unwrap();
    let target_3 = stylizer.content_target(&content_3).unwrap();
    let probed = stylizer.optimise(&target_3, &frame_2.image, 2, &mut NoProgress).unwrap();
    let known = stylizer.optimise_with_curvature(&target_3, &frame_2.image, 2, Some(scale), &mut NoProgress).unwrap();
    let start = probed.history[0];
    assert_eq!(known.history[0], start, "the same start");
    let (probe_gain, known_gain) = ((start - probed.history[1]) / start, (start - known.history[1]) / start);
    eprintln!("J {start:.5e}; after the first step: probe {:.5e}, with γ = {scale:.4} {:.5e}", probed.history[1], known.history[1]);
    eprintln!("after two: probe {:.5e}, with γ {:.5e}", probed.history[2], known.history[2]);
    assert!(probe_gain.abs() < 1e-3, "Torch's first step only probes: J changed by {probe_gain:.2e} of itself");
    assert!(known_gain > 1e-3 && known_gain > 100.0 * probe_gain.abs(), "with γ the first step should lower J by 0.1% and more: {known_gain:.2e}");
    assert!(known.history[2] < probed.history[2], "two iterations with γ end lower than two from the probe");
    // The curvature it ends with is its own newest pair's.
    assert!(known.curvature_scale.is_some_and(|s| s > 0.0 && s != scale), "{:?}", known.curvature_scale);
    // With one iteration no pair is formed: it hands on the γ it started from.
    let one = stylizer.optimise_with_curvature(&target_3, &frame_2.image, 1, Some(scale), &mut NoProgress).unwrap();
    assert_eq!(one.curvature_scale, Some(scale));
    // A γ that is not a positive number is ignored: the probe as without one.
    let bad = stylizer.optimise_with_curvature(&target_3, &frame_2.image, 2, Some(f64::NAN), &mut NoProgress).unwrap();
    assert_eq!(bad.history, probed.history);
}
