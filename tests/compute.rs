//! The two ways the network runs agree: this crate's CPU kernels and candle's own ops (the path
//! a CUDA GPU takes, run here on the CPU as `cpu-reference`): activations at every layer, the
//! cost and its gradient, for both poolings; and a device this build cannot provide is a clear
//! error, not a panic.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use stylize_video::net::input::to_tensor;
use stylize_video::net::precision::Compute;
use stylize_video::net::vgg::{weights_path, LayerName, Pooling, Vgg16};
use stylize_video::stylize::stylizer::{Settings, Stylizer};

fn check(pooling: Pooling) {
    let load = |compute| Vgg16::load_for(&weights_path(None), pooling, compute).unwrap();
    let (kernels, reference) = (load(Compute::Cpu), load(Compute::CpuReference));
    assert_eq!((kernels.compute(), reference.compute()), (Compute::Cpu, Compute::CpuReference));
    // 44×30: pooled sizes 22×15, 11×7, 5×3, 2×1 — odd sides at every depth.
    let image = to_tensor(&common::synthetic_content(44, 30), &Device::Cpu).unwrap();
    let layers = LayerName::all();
    let ours = kernels.features(&image, &layers).unwrap();
    let theirs = reference.features(&image, &layers).unwrap();
    for ((layer, a), b) in layers.iter().zip(&ours).zip(&theirs) {
        assert_eq!(a.dims(), b.dims(), "{pooling:?} {layer}");
        let diff = common::max_rel_diff(a, b);
        assert!(diff < 1e-4, "{pooling:?} {layer}: activations differ by {diff:.2e} of their scale");
    }

    // J(G) and ∇J at a point that is neither content nor style.
    let style = to_tensor(&common::synthetic_style(44, 30), &Device::Cpu).unwrap();
    let generated = ((&image * 0.5).unwrap() + (&style * 0.5).unwrap()).unwrap();
    let cost_and_gradient = |vgg: Vgg16| {
        let stylizer = Stylizer::new(vgg, Settings::default(), &[(style.clone(), 1.0)]).unwrap();
        let target = stylizer.content_target(&image).unwrap();
        let x = Var::from_tensor(&generated).unwrap();
        let (j, terms) = stylizer.cost(x.as_tensor(), &target).unwrap();
        let grad = j.backward().unwrap().get(x.as_tensor()).unwrap().clone();
        (terms.total, grad)
    };
    let (j_ours, grad_ours) = cost_and_gradient(kernels);
    let (j_theirs, grad_theirs) = cost_and_gradient(reference);
    assert!(j_theirs > 0.0);
    let rel = (j_ours - j_theirs).abs() / j_theirs;
    assert!(rel < 1e-4, "{pooling:?}: J = {j_ours} with our kernels, {j_theirs} with candle's ops");
    let norm = |t: &Tensor| t.to_dtype(DType::F64).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt();
    let rel = norm(&(&grad_ours - &grad_theirs).unwrap()) / norm(&grad_theirs);
    assert!(rel < 1e-3, "{pooling:?}: gradients differ by {rel:.2e} of their norm");
}

#[test]
fn candle_ops_path_matches_the_crate_kernels_with_max_pooling() {
    check(Pooling::Max);
}

#[test]
fn candle_ops_path_matches_the_crate_kernels_with_avg_pooling() {
    check(Pooling::Avg);
}

#[test]
fn devices_parse_and_print_by_name() {
    for (text, compute) in
        [("cpu", Compute::Cpu), ("cpu-reference", Compute::CpuReference), ("cuda", Compute::Cuda(0)), ("cuda:1", Compute::Cuda(1))]
    {
        assert_eq!(text.parse::<Compute>().unwrap(), compute);
    }
    assert_eq!(Compute::Cuda(0).to_string(), "cuda:0");
    let err = "gpu".parse::<Compute>().unwrap_err();
    assert!(err.contains("'gpu'") && err.contains("cuda:N"), "{err}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_build_without_it_is_a_clear_error() {
    let err = Vgg16::load_for(&weights_path(None), Pooling::Max, Compute::Cuda(0)).err().unwrap().to_string();
    assert!(err.contains("cuda:0") && err.contains("--features cuda"), "{err}");
}
