//! The gradient of J(G) with respect to the image agrees with finite differences, for both
//! poolings the tool ships (candle's own max-pool backward was ~12× off here).

mod common;

use candle_core::{Device, Shape, Tensor, Var};
use rand::{Rng, SeedableRng};
use stylize_video::image_io::to_tensor;
use stylize_video::stylize::{Settings, Stylizer};
use stylize_video::vgg::Pooling;

/// Reproducible random tensor with entries uniform in (−√3·σ, √3·σ) (variance σ²).
fn random(shape: &Shape, sigma: f32, rng: &mut rand::rngs::StdRng) -> Tensor {
    let a = 3f32.sqrt() * sigma;
    let data: Vec<f32> = (0..shape.elem_count()).map(|_| rng.random_range(-a..a)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn check(pooling: Pooling) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let dev = Device::Cpu;
    // 24×20: the pooled sizes go odd (3×… and 5×…) so the trailing-row handling is exercised.
    let content = to_tensor(&common::synthetic_content(24, 20), &dev).unwrap();
    let style = to_tensor(&common::synthetic_style(24, 20), &dev).unwrap();
    let settings = Settings { content_weight: 1.0, style_weight: 1e-3, tv_weight: 1e-2, ..Settings::default() };
    let stylizer = Stylizer::new(common::vgg(pooling), settings, &[(style, 1.0)]).unwrap();
    let target = stylizer.content_target(&content).unwrap();

    // Evaluate at a point between content and noise, so no term is at its minimum.
    let noise = random(content.shape(), 30.0, &mut rng);
    let x = Var::from_tensor(&(&content + &noise).unwrap()).unwrap();
    let (j, _) = stylizer.cost(x.as_tensor(), &target).unwrap();
    let grad = j.backward().unwrap().get(x.as_tensor()).unwrap().clone();

    // Directional derivatives along random directions: (J(x+hd) − J(x−hd)) / 2h ≈ ∇J·d.
    for trial in 0..3 {
        let d = random(content.shape(), 1.0, &mut rng);
        let analytic = (&grad * &d).unwrap().sum_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_scalar::<f64>().unwrap();
        // J is piecewise smooth (ReLU, max): a small step crosses few kinks; f32 features
        // (and Winograd's rounding in them) limit how small it can be: at h = 0.01 the
        // rounding alone moved the quotient by up to 5%, at 0.03 by under 3%. A wrong backward
        // (e.g. candle's max-pool, 4^-k off) is far outside this tolerance.
        let h = 0.03;
        let at = |s: f64| {
            let moved = (x.as_tensor() + (&d * s).unwrap()).unwrap();
            stylizer.cost(&moved, &target).unwrap().1.total
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        let rel = (analytic - numeric).abs() / numeric.abs();
        assert!(rel < 5e-2, "{pooling:?} trial {trial}: analytic {analytic}, finite difference {numeric}, relative error {rel:.3}");
    }
}

#[test]
fn gradient_matches_finite_differences_with_max_pooling() {
    check(Pooling::Max);
}

#[test]
fn gradient_matches_finite_differences_with_avg_pooling() {
    check(Pooling::Avg);
}
