//! The GPU path, run here on the CPU as `cpu-reference` (the same code on candle's CPU ops):
//! the network's own backward on tensors (input gradients as convolutions with the flipped
//! kernel, ReLU and pooling masks from the trace, no autograd) against candle's autograd through
//! the same ops and against this crate's CPU kernels; the optimisers on the device against the
//! host ones; and bf16 on the device against fp32.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use stylize_video::net::input::to_tensor;
use stylize_video::net::precision::Compute;
use stylize_video::net::precision::Precision;
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::progress::NoProgress;
use stylize_video::stylize::optim::{Optimizer, OptimizerKind};
use stylize_video::stylize::loss::{matted_layer_style_cost, Matte, StyleTarget};
use stylize_video::stylize::stylizer::{displayable_box, ContentTarget, Settings, Stylizer, TemporalTarget};

fn norm(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt()
}

fn relative_difference(a: &Tensor, b: &Tensor) -> f64 {
    norm(&(a - b).unwrap()) / norm(b)
}

/// A stylizer on `compute` with every term of J on (J_tv, and J_temporal against a shifted
/// copy of the content with a reliability mask that is 0 on a stripe), its content target and a
/// point that is neither content nor style. 44×30: odd pooled sizes at every depth.
fn problem(compute: Compute, pooling: Pooling, precision: Precision, settings: Settings) -> (Stylizer, ContentTarget, Tensor) {
    problem_in(compute, pooling, precision, settings, false)
}

/// A matte over the 44×30 problem: 0 on the left third, rising to 1 over the middle third, 1 on
/// the right third (hard and soft edges, odd sizes once pooled).
fn ramp_matte(w: usize, h: usize) -> Tensor {
    let m: Vec<f32> = (0..h * w).map(|i| (((i % w) as f32 - w as f32 / 3.0) / (w as f32 / 3.0)).clamp(0.0, 1.0)).collect();
    Tensor::from_vec(m, (1, 1, h, w), &Device::Cpu).unwrap()
}

/// [`problem`], with J_style over [`ramp_matte`]'s region when `matted`.
fn problem_in(compute: Compute, pooling: Pooling, precision: Precision, settings: Settings, matted: bool) -> (Stylizer, ContentTarget, Tensor) {
    problem_with(compute, pooling, precision, settings, matted, false)
}

/// [`problem_in`]; with `outside`, a second style (the content itself, turned upside down)
/// paints what the matte leaves out.
fn problem_with(
    compute: Compute,
    pooling: Pooling,
    precision: Precision,
    settings: Settings,
    matted: bool,
    outside: bool,
) -> (Stylizer, ContentTarget, Tensor) {
    let dev = Device::Cpu;
    let (w, h) = (44, 30);
    let content = to_tensor(&common::synthetic_content(w, h), &dev).unwrap();
    let style = to_tensor(&common::synthetic_style(w, h), &dev).unwrap();
    let vgg = Vgg16::load_with(&weights_path(None), pooling, compute, Some(precision)).unwrap();
    assert_eq!(vgg.precision(), precision);
    let stylizer = Stylizer::new(vgg, settings.clone(), &[(style.clone(), 1.0)]).unwrap();
    let stylizer = match outside {
        false => stylizer,
        true => {
            let vgg = Vgg16::load_with(&weights_path(None), pooling, compute, Some(precision)).unwrap();
            let other = Stylizer::new(vgg, settings, &[(content.flip(&[2]).unwrap(), 1.0)]).unwrap();
            stylizer.with_outside_style(&other).unwrap()
        }
    };
    let warped_previous = (content.roll(2, 3).unwrap() * 0.9).unwrap();
    let reliability: Vec<f32> = (0..h * w).map(|i| if (i % w) < 6 { 0.0 } else { 1.0 }).collect();
    let reliability = Tensor::from_vec(reliability, (1, 1, h as usize, w as usize), &dev).unwrap();
    let target = stylizer
        .content_target(&content)
        .unwrap()
        .with_temporal(vec![TemporalTarget { warped_previous, reliability }])
        .unwrap();
    let target = if matted { target.with_matte(&ramp_matte(w as usize, h as usize)).unwrap() } else { target };
    let generated = ((&content * 0.6).unwrap() + (&style * 0.4).unwrap()).unwrap();
    (stylizer, target, generated)
}

fn all_terms() -> Settings {
    Settings { tv_weight: 1e-2, temporal_weight: 50.0, ..Settings::default() }
}

/// J and ∇J by the stylizer's own evaluation (what the optimiser uses).
fn own_gradient(stylizer: &Stylizer, target: &ContentTarget, x: &Tensor) -> (f64, Tensor) {
    let (evaluation, terms) = stylizer.evaluate(x, target).unwrap();
    let grad = evaluation.gradient(stylizer).unwrap();
    (terms.total, Tensor::from_vec(grad, x.shape(), x.device()).unwrap())
}

fn backward_matches_autograd(pooling: Pooling, matted: bool) {
    backward_matches_autograd_with(pooling, matted, false)
}

fn backward_matches_autograd_with(pooling: Pooling, matted: bool, outside: bool) {
    let (stylizer, target, generated) = problem_with(Compute::CpuReference, pooling, Precision::Fp32, all_terms(), matted, outside);
    let (j_own, grad_own) = own_gradient(&stylizer, &target, &generated);

    let x = Var::from_tensor(&generated).unwrap();
    let (j, terms) = stylizer.cost(x.as_tensor(), &target).unwrap();
    let grad_autograd = j.backward().unwrap().get(x.as_tensor()).unwrap().clone();
    assert!(terms.tv > 0.0 && terms.temporal > 0.0 && terms.content > 0.0, "every term is on: {terms:?}");
    let rel_j = (j_own - terms.total).abs() / terms.total;
    assert!(rel_j < 1e-6, "{pooling:?}: J = {j_own} by the device evaluation, {} by the autograd graph", terms.total);
    let rel = relative_difference(&grad_own, &grad_autograd);
    eprintln!("{pooling:?}: own backward vs autograd: J {rel_j:.1e}, gradient {rel:.1e}");
    assert!(rel < 1e-5, "{pooling:?}: the own backward differs from autograd by {rel:.2e} of its norm");

    // And against the CPU kernels' own backward (different arithmetic: Winograd, im2col).
    let (kernels, kernel_target, _) = problem_with(Compute::Cpu, pooling, Precision::Fp32, all_terms(), matted, outside);
    let (j_kernels, grad_kernels) = own_gradient(&kernels, &kernel_target, &generated);
    assert!((j_kernels - j_own).abs() / j_own < 1e-4, "{pooling:?}: J {j_kernels} on the kernels, {j_own} on the device path");
    let rel = relative_difference(&grad_own, &grad_kernels);
    eprintln!("{pooling:?}: device vs kernel gradients {rel:.1e}");
    assert!(rel < 1e-3, "{pooling:?}: device and kernel gradients differ by {rel:.2e}");
}

#[test]
fn device_backward_matches_autograd_and_the_kernels_with_max_pooling() {
    backward_matches_autograd(Pooling::Max, false);
}

#[test]
fn device_backward_matches_autograd_and_the_kernels_with_avg_pooling() {
    backward_matches_autograd(Pooling::Avg, false);
}

/// The same with J_style over a matted region (masked Gram matrices): the device path's
/// gradient m ⊙ (S · (m ⊙ a)) against autograd through the matted activations, and against the
/// kernels'; and the matte changes J_style (it is not ignored).
#[test]
fn matted_backward_matches_autograd_and_the_kernels() {
    backward_matches_autograd(Pooling::Max, true);
    let (stylizer, matted, generated) = problem_in(Compute::Cpu, Pooling::Max, Precision::Fp32, all_terms(), true);
    let (_, whole, _) = problem(Compute::Cpu, Pooling::Max, Precision::Fp32, all_terms());
    let style = |target: &ContentTarget| stylizer.evaluate(&generated, target).unwrap().1.style;
    let (j_matted, j_whole) = (style(&matted), style(&whole));
    assert!((j_matted - j_whole).abs() > 0.05 * j_whole, "J_style {j_matted} matted, {j_whole} whole");
}

/// With a second style on the other side of the matte (no composite: both sides painted): the
/// three gradients agree, and J_style is the sum of the two regions' costs.
#[test]
fn two_styles_across_a_matte_match_autograd_and_the_kernels() {
    backward_matches_autograd_with(Pooling::Max, true, true);
    let (two, target, generated) = problem_with(Compute::Cpu, Pooling::Max, Precision::Fp32, all_terms(), true, true);
    let j_two = two.evaluate(&generated, &target).unwrap().1.style;
    // By hand: Σ_l λ^[l] (J^[l]_style(S, G; m) + J^[l]_style(S', G; 1 − m)) on G itself.
    let dev = Device::Cpu;
    let (w, h) = (44, 30);
    let content = to_tensor(&common::synthetic_content(w, h), &dev).unwrap();
    let style = to_tensor(&common::synthetic_style(w, h), &dev).unwrap();
    let layers = Settings::default().style_layers;
    let features = |image: &Tensor| two.vgg().features(image, &layers).unwrap();
    let (a, s_in, s_out) = (features(&generated), features(&style), features(&content.flip(&[2]).unwrap()));
    let matte = Matte::new(&ramp_matte(w as usize, h as usize)).unwrap();
    let outside = matte.complement().unwrap();
    let mut by_hand = 0.0;
    for l in 0..layers.len() {
        let (_, _, n_h, n_w) = a[l].dims4().unwrap();
        let cost = |s: &Tensor, m: &Matte| {
            let target = StyleTarget::blend(&[(s.clone(), 1.0)]).unwrap();
            matted_layer_style_cost(&target, &a[l], m.at(n_h, n_w).unwrap()).unwrap().to_scalar::<f64>().unwrap()
        };
        by_hand += 0.2 * (cost(&s_in[l], &matte) + cost(&s_out[l], &outside));
    }
    assert!((j_two - by_hand).abs() <= 1e-4 * by_hand, "J_style {j_two} by the stylizer, {by_hand} by hand");
}

/// The whole optimisation on the device path (`optimise` on cpu-reference: evaluation, backward
/// and optimiser step on tensors) against the same evaluations driven by the host optimiser
/// (only the optimiser's arithmetic differs: f32 dot products and moments there, f64 here), and against the
/// CPU kernels' optimisation (different arithmetic throughout, which L-BFGS amplifies: about
/// 3e-3 apart in J after 9 iterations).
fn optimisation_matches_the_host(optimizer: OptimizerKind, iterations: usize, host_tol: f64, kernels_tol: f64) {
    let settings = Settings {
        optimizer,
        learning_rate: Settings::default_learning_rate(optimizer),
        tol: 0.0,
        ..all_terms()
    };
    let (stylizer, target, start) = problem(Compute::CpuReference, Pooling::Max, Precision::Fp32, settings.clone());
    let device = stylizer.optimise(&target, &start, iterations, &mut NoProgress).unwrap();
    assert_eq!((device.iterations, device.evaluations, device.history.len()), (iterations, iterations + 1, iterations + 1));
    assert_eq!(device.image.device().location(), Device::Cpu.location());

    // The host optimiser over the device path's own evaluations, in the same box.
    let pixel_box = displayable_box(start.dims4().unwrap());
    let mut host_optimizer =
        Optimizer::new(optimizer, settings.learning_rate, settings.lbfgs_history).with_box(Some(pixel_box.clone()));
    let mut x = start.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    pixel_box.project(&mut x, 0);
    let mut host_history = Vec::new();
    for k in 0..=iterations {
        let image = Tensor::from_slice(&x, start.shape(), start.device()).unwrap();
        let (evaluation, terms) = stylizer.evaluate(&image, &target).unwrap();
        host_history.push(terms.total);
        if k < iterations {
            host_optimizer.step(&mut x, &evaluation.gradient(&stylizer).unwrap());
        }
    }
    let worst = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs() / y).fold(0.0, f64::max);
    eprintln!("{optimizer}: J per iteration, device vs host optimiser {:.1e} apart at worst", worst(&device.history, &host_history));
    for (k, (d, h)) in device.history.iter().zip(&host_history).enumerate() {
        let rel = (d - h).abs() / h;
        assert!(rel < host_tol, "{optimizer} iteration {k}: J = {d} with the device optimiser, {h} with the host one ({rel:.2e})");
    }
    let best = host_history.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((device.terms.total - best).abs() / best < host_tol, "{optimizer}: best J {} against {best}", device.terms.total);
    assert!(device.terms.total < 0.8 * device.history[0], "{optimizer}: J went from {} to {}", device.history[0], device.terms.total);

    let (kernels, kernel_target, _) = problem(Compute::Cpu, Pooling::Max, Precision::Fp32, settings.clone());
    let on_kernels = kernels.optimise(&kernel_target, &start, iterations, &mut NoProgress).unwrap();
    eprintln!("{optimizer}: J per iteration, device path vs CPU kernels {:.1e} apart at worst", worst(&device.history, &on_kernels.history));
    for (k, (d, h)) in device.history.iter().zip(&on_kernels.history).enumerate() {
        let rel = (d - h).abs() / h;
        assert!(rel < kernels_tol, "{optimizer} iteration {k}: J = {d} on the device path, {h} on the CPU kernels ({rel:.2e})");
    }
}

#[test]
fn lbfgs_on_the_device_follows_the_host_lbfgs() {
    optimisation_matches_the_host(OptimizerKind::Lbfgs, 12, 1e-4, 1e-2);
}

#[test]
fn adam_on_the_device_follows_the_host_adam() {
    // Adam moves every pixel by about the learning rate whatever its gradient's size, so the
    // moments' rounding (f32 here, f64 on the host) shows: 1.8e-4 apart after 12 iterations.
    optimisation_matches_the_host(OptimizerKind::Adam, 12, 1e-3, 1e-3);
}

/// bf16 on the device (the GPU's bf16 path: bf16 activations, f32 Gram matrices and losses)
/// against fp32: J at the start within 1%, and the image after N L-BFGS iterations, judged in
/// fp32, no more than 1% worse than fp32's own result. (Not "within 1% either way": L-BFGS
/// without a line search amplifies any rounding difference, and on this small problem the two
/// runs end up to 1.5% apart — bf16's result lower, measured.)
#[test]
fn bf16_on_the_device_ends_within_one_percent_of_fp32() {
    let settings = Settings { tol: 0.0, ..all_terms() };
    let run = |precision| {
        let (stylizer, target, start) = problem(Compute::CpuReference, Pooling::Max, precision, settings.clone());
        stylizer.optimise(&target, &start, 20, &mut NoProgress).unwrap()
    };
    let (fp32, bf16) = (run(Precision::Fp32), run(Precision::Bf16));
    let (judge, judge_target, _) = problem(Compute::CpuReference, Pooling::Max, Precision::Fp32, settings.clone());
    let judged = judge.evaluate(&bf16.image, &judge_target).unwrap().1.total;
    let start = (bf16.history[0] - fp32.history[0]).abs() / fp32.history[0];
    let end = judged / fp32.terms.total - 1.0;
    eprintln!("bf16 vs fp32 on the device path: J at the start {start:.2e} apart; after 20 iterations bf16's image judged in fp32 {end:+.2e}");
    assert!(start < 1e-2, "J at the start: bf16 {} against fp32 {}", bf16.history[0], fp32.history[0]);
    assert!(end < 1e-2, "after 20 iterations bf16's image has J = {judged} in fp32, fp32's own {}", fp32.terms.total);
    assert!(fp32.terms.total < 0.5 * fp32.history[0]);
}
