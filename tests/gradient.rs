//! The gradient of J(G) with respect to the image agrees with finite differences, for both
//! poolings the tool ships (candle's own max-pool backward was ~12× off here).

mod common;

use candle_core::{Device, Shape, Tensor, Var};
use rand::{Rng, SeedableRng};
use stylize_video::net::input::to_tensor;
use stylize_video::net::precision::Compute;
use stylize_video::net::precision::Precision;
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::stylize::stylizer::{Settings, Stylizer};

/// Reproducible random tensor with entries uniform in (−√3·σ, √3·σ) (variance σ²).
fn random(shape: &Shape, sigma: f32, rng: &mut rand::rngs::StdRng) -> Tensor {
    let a = 3f32.sqrt() * sigma;
    let data: Vec<f32> = (0..shape.elem_count()).map(|_| rng.random_range(-a..a)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn check(pooling: Pooling) {
    // J is piecewise smooth (ReLU, max): a small step crosses few kinks; f32 features (and
    // Winograd's rounding in them) limit how small it can be: at h = 0.01 the rounding alone
    // moved the quotient by up to 5%, at 0.03 by under 3%. A wrong backward (e.g. candle's
    // max-pool, 4^-k off) is far outside this tolerance.
    check_at(pooling, Precision::Fp32, 0.03, 5e-2);
}

/// The finite-difference check at `precision`, step `h` (pixel values), relative tolerance `tol`.
fn check_at(pooling: Pooling, precision: Precision, h: f64, tol: f64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let dev = Device::Cpu;
    // 24×20: the pooled sizes go odd (3×… and 5×…) so the trailing-row handling is exercised.
    let content = to_tensor(&common::synthetic_content(24, 20), &dev).unwrap();
    let style = to_tensor(&common::synthetic_style(24, 20), &dev).unwrap();
    let settings = Settings { content_weight: 1.0, style_weight: 1e-3, tv_weight: 1e-2, ..Settings::default() };
    let vgg = Vgg16::load_with(&weights_path(None), pooling, Compute::Cpu, Some(precision)).unwrap();
    assert_eq!(vgg.precision(), precision);
    let stylizer = Stylizer::new(vgg, settings, &[(style, 1.0)]).unwrap();
    let target = stylizer.content_target(&content).unwrap();

    // Evaluate at a point between content and noise, so no term is at its minimum.
    let noise = random(content.shape(), 30.0, &mut rng);
    let x = Var::from_tensor(&(&content + &noise).unwrap()).unwrap();
    // The gradient the optimiser uses: on the CPU kernels, the network's own backward.
    let (evaluation, _) = stylizer.evaluate(x.as_tensor(), &target).unwrap();
    let grad = Tensor::from_vec(evaluation.gradient(&stylizer).unwrap(), content.shape(), &dev).unwrap();

    // Directional derivatives along random directions: (J(x+hd) − J(x−hd)) / 2h ≈ ∇J·d.
    // Directions: random ones in fp32. In bf16 each evaluation of J rounds the moved image's
    // activations afresh, noise that swamps ∇J·d along a random direction, so the directions
    // there are the gradient's own and the gradient with random ones added (half their size).
    let grad_rms = grad.sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
    let along_gradient = (&grad / grad_rms as f64).unwrap();
    for trial in 0..3 {
        let random_direction = random(content.shape(), 1.0, &mut rng);
        let d = match (precision, trial) {
            (Precision::Bf16, 0) => along_gradient.clone(),
            (Precision::Bf16, _) => (&along_gradient + (random_direction * 0.5).unwrap()).unwrap(),
            _ => random_direction,
        };
        let analytic = (&grad * &d).unwrap().sum_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_scalar::<f64>().unwrap();
        let at = |s: f64| {
            let moved = (x.as_tensor() + (&d * s).unwrap()).unwrap();
            stylizer.cost(&moved, &target).unwrap().1.total
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        let rel = (analytic - numeric).abs() / numeric.abs();
        eprintln!("{pooling:?} {precision} h={h} trial {trial}: relative error {rel:.2e}");
        assert!(rel < tol, "{pooling:?} {precision} trial {trial}: analytic {analytic}, finite difference {numeric}, relative error {rel:.3}");
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

/// The same check with bf16 convolutions (where the CPU has a bf16 kernel), along directions
/// near the gradient's (see `check_at`), with a larger step, h = 1 (pixel values 0..255), so the
/// quotient rises above the rounding noise in J; stated tolerance 5% (measured: up to 2.1%).
#[test]
fn bf16_gradient_matches_finite_differences() {
    if stylize_video::net::cpu::bf16::Kernel::detect().is_none() {
        eprintln!("SKIPPED: no bf16 kernel on this CPU (bf16 runs as fp32 here)");
        return;
    }
    check_at(Pooling::Max, Precision::Bf16, 1.0, 5e-2);
    check_at(Pooling::Avg, Precision::Bf16, 1.0, 5e-2);
}

/// A 40×28 content and style image, and weights with every term of J in play (TV and temporal).
fn temporal_scene(dev: &Device) -> (Tensor, Tensor, Settings) {
    let content = to_tensor(&common::synthetic_content(40, 28), dev).unwrap();
    let style = to_tensor(&common::synthetic_style(40, 28), dev).unwrap();
    let settings = Settings { content_weight: 1.0, style_weight: 1e-3, tv_weight: 1e-2, temporal_weight: 0.5, ..Settings::default() };
    (content, style, settings)
}

/// The network's own backward ([`Stylizer::evaluate`] on the CPU kernels) against candle's
/// autograd through the same kernels ([`Stylizer::cost`]): the same J and the same gradient, in
/// fp32 and bf16, with TV and a temporal term (per-pixel weights) in play.
#[test]
fn own_backward_matches_autograd() {
    use stylize_video::stylize::stylizer::TemporalTarget;
    let (mut rng, dev) = (rand::rngs::StdRng::seed_from_u64(11), Device::Cpu);
    let (content, style, settings) = temporal_scene(&dev);
    let mut precisions = vec![Precision::Fp32];
    if stylize_video::net::cpu::bf16::Kernel::detect().is_some() {
        precisions.push(Precision::Bf16);
    }
    for precision in precisions {
        let vgg = Vgg16::load_with(&weights_path(None), Pooling::Max, Compute::Cpu, Some(precision)).unwrap();
        let stylizer = Stylizer::new(vgg, settings.clone(), &[(style.clone(), 1.0)]).unwrap();
        let warped = (&content + random(content.shape(), 20.0, &mut rng)).unwrap();
        let reliability = Tensor::rand(0f32, 1f32, (1, 1, 28, 40), &dev).unwrap();
        let target = stylizer
            .content_target(&content)
            .unwrap()
            .with_temporal(vec![TemporalTarget { warped_previous: warped, reliability }])
            .unwrap();
        let x = Var::from_tensor(&(&content + random(content.shape(), 30.0, &mut rng)).unwrap()).unwrap();

        let (j, terms) = stylizer.cost(x.as_tensor(), &target).unwrap();
        let autograd = j.backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (evaluation, own_terms) = stylizer.evaluate(x.as_tensor(), &target).unwrap();
        let own = evaluation.gradient(&stylizer).unwrap();

        assert!(terms.temporal > 0.0 && terms.tv > 0.0);
        for (what, a, b) in [("J", own_terms.total, terms.total), ("J_style", own_terms.style, terms.style), ("J_temporal", own_terms.temporal, terms.temporal)] {
            assert!((a - b).abs() <= 1e-6 * b.abs(), "{precision} {what}: own {a}, autograd {b}");
        }
        let diff: f64 = own.iter().zip(&autograd).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
        let norm: f64 = autograd.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel = (diff / norm).sqrt();
        eprintln!("{precision}: ‖own − autograd‖/‖autograd‖ = {rel:.2e}");
        assert!(rel < 1e-5, "{precision}: gradients differ by {rel}");
    }
}

/// A frame behind its shot is held to the previous painting with a share of γ_temp
/// ([`stylize_video::stylize::stylizer::ContentTarget::with_temporal_share`]): J_temporal and its
/// part of J scale by the share on both paths (the CPU kernels' own and candle's tensors), and the
/// rest of J is what it was.
#[test]
fn a_temporal_share_scales_j_temporal_alone() {
    use stylize_video::stylize::stylizer::TemporalTarget;
    let (mut rng, dev) = (rand::rngs::StdRng::seed_from_u64(12), Device::Cpu);
    let (content, style, settings) = temporal_scene(&dev);
    let vgg = Vgg16::load_with(&weights_path(None), Pooling::Max, Compute::Cpu, Some(Precision::Fp32)).unwrap();
    let stylizer = Stylizer::new(vgg, settings.clone(), &[(style, 1.0)]).unwrap();
    let warped = (&content + random(content.shape(), 20.0, &mut rng)).unwrap();
    let reliability = Tensor::rand(0f32, 1f32, (1, 1, 28, 40), &dev).unwrap();
    let full = stylizer.content_target(&content).unwrap().with_temporal(vec![TemporalTarget { warped_previous: warped, reliability }]).unwrap();
    let quarter = full.with_temporal_share(0.25).unwrap();
    let x = (&content + random(content.shape(), 30.0, &mut rng)).unwrap();

    let (_, own_full) = stylizer.evaluate(&x, &full).unwrap();
    let (_, own_quarter) = stylizer.evaluate(&x, &quarter).unwrap();
    let (_, tensors_quarter) = stylizer.cost(&x, &quarter).unwrap();
    assert!(own_full.temporal > 0.0);
    for (what, j) in [("own", own_quarter.temporal), ("tensors", tensors_quarter.temporal)] {
        assert!((j - 0.25 * own_full.temporal).abs() <= 1e-5 * own_full.temporal, "{what}: J_temporal {j} vs ¼ of {}", own_full.temporal);
    }
    let expected_total = own_full.total - 0.75 * settings.temporal_weight * own_full.temporal;
    assert!((own_quarter.total - expected_total).abs() <= 1e-6 * own_full.total, "J {} vs {expected_total}", own_quarter.total);
    assert_eq!((own_quarter.style, own_quarter.content, own_quarter.tv), (own_full.style, own_full.content, own_full.tv));
}
