//! Warm start pays: on a slowly changing scene, frame 2 started from frame 1's stylized output
//! reaches frame 1's final loss in a fraction of the iterations it needs from its content.

mod common;

use candle_core::Device;
use image::RgbImage;
use stylize_video::net::input::to_tensor;
use stylize_video::net::vgg::Pooling;
use stylize_video::progress::NoProgress;
use stylize_video::stylize::stylizer::{Settings, Stylizer};

/// The synthetic scene panned right by `shift` pixels (a slow camera move).
fn frame(shift: u32) -> RgbImage {
    let wide = common::synthetic_content(64, 48);
    RgbImage::from_fn(48, 48, |x, y| *wide.get_pixel(x + shift, y))
}

#[test]
fn warm_start_reaches_frame_1s_loss_in_far_fewer_iterations_than_a_cold_start() {
    let dev = Device::Cpu;
    let style = to_tensor(&common::synthetic_style(48, 48), &dev).unwrap();
    let settings = Settings { tol: 0.0, ..Settings::default() };
    let stylizer = Stylizer::new(common::vgg(Pooling::Max), settings, &[(style, 1.0)]).unwrap();

    let content_1 = to_tensor(&frame(0), &dev).unwrap();
    let target_1 = stylizer.content_target(&content_1).unwrap();
    let stylized_1 = stylizer.optimise(&target_1, &content_1, 30, &mut NoProgress).unwrap();
    let goal = stylized_1.terms.total;

    // Frame 2: one pixel of camera pan later.
    let content_2 = to_tensor(&frame(1), &dev).unwrap();
    let target_2 = stylizer.content_target(&content_2).unwrap();
    let cold = stylizer.optimise(&target_2, &content_2, 60, &mut NoProgress).unwrap();
    let warm = stylizer.optimise(&target_2, &stylized_1.image, 30, &mut NoProgress).unwrap();
    let needed = |history: &[f64]| history.iter().position(|&j| j <= goal);
    let cold_needed = needed(&cold.history).expect("a cold start reaches frame 1's loss within 60 iterations");
    let warm_needed = needed(&warm.history).expect("a warm start reaches frame 1's loss within 30 iterations");
    eprintln!(
        "frame 1: J {goal:.4e} after 30 iterations; frame 2 reaches it after {cold_needed} iterations cold, {warm_needed} warm (J {:.4e} at the warm start)",
        warm.history[0]
    );
    assert!(cold_needed >= 15, "a cold start should need real work: {cold_needed}");
    assert!(warm_needed * 4 <= cold_needed, "warm {warm_needed} vs cold {cold_needed} iterations");
}
