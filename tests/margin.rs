//! The margin the network sees around the image (`Settings::margin`, src/stylize/margin.rs): the
//! own backwards (CPU kernels, device path) through the wrapped margin and the crops match
//! autograd through the same ops, and what the margin is for — a painting that keeps its J_style
//! when a pan moves it.
mod common;

use candle_core::{DType, Device, Tensor, Var};
use stylize_video::jobs::spec::StyleSpec;
use stylize_video::media::image_io::{load_rgb, resize};
use stylize_video::net::input::to_tensor;
use stylize_video::progress::NoProgress;
use stylize_video::net::precision::{Compute, Precision};
use stylize_video::net::vgg::{weights_path, Pooling, Vgg16};
use stylize_video::stylize::margin::DEFAULT_VIDEO_MARGIN;
use stylize_video::stylize::stylizer::{ContentTarget, Settings, Stylizer};

fn norm(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap().sqrt()
}

#[test]
fn gradients_through_the_margin_match_autograd() {
    let dev = Device::Cpu;
    let (w, h) = (44, 30);
    let content = to_tensor(&common::synthetic_content(w, h), &dev).unwrap();
    let style = to_tensor(&common::synthetic_style(w, h), &dev).unwrap();
    let settings = Settings { margin: 12, tv_weight: 1e-2, ..Settings::default() };
    let kernels = Stylizer::new(Vgg16::load_with(&weights_path(None), Pooling::Max, Compute::Cpu, Some(Precision::Fp32)).unwrap(), settings.clone(), &[(style.clone(), 1.0)]).unwrap();
    let reference = Stylizer::new(Vgg16::load_with(&weights_path(None), Pooling::Max, Compute::CpuReference, Some(Precision::Fp32)).unwrap(), settings, &[(style.clone(), 1.0)]).unwrap();
    let generated = ((&content * 0.6).unwrap() + (&style * 0.4).unwrap()).unwrap();
    let target = kernels.content_target(&content).unwrap();
    let (evaluation, terms) = kernels.evaluate(&generated, &target).unwrap();
    let grad = Tensor::from_vec(evaluation.gradient(&kernels).unwrap(), generated.shape(), &dev).unwrap();
    let ref_target = reference.content_target(&content).unwrap();
    let x = Var::from_tensor(&generated).unwrap();
    let (j, ref_terms) = reference.cost(x.as_tensor(), &ref_target).unwrap();
    let ref_grad = j.backward().unwrap().get(x.as_tensor()).unwrap().clone();
    eprintln!("J {} vs {}, style {} vs {}", terms.total, ref_terms.total, terms.style, ref_terms.style);
    let rel = norm(&(&grad - &ref_grad).unwrap()) / norm(&ref_grad);
    eprintln!("gradient rel diff {rel:.2e}");
    assert!((terms.total - ref_terms.total).abs() / ref_terms.total < 1e-4, "J {} on the kernels, {} by autograd", terms.total, ref_terms.total);
    assert!(rel < 1e-3, "the kernels' gradient differs from autograd's by {rel:.2e} of its norm");
    let (evaluation, device_terms) = reference.evaluate(&generated, &ref_target).unwrap();
    let device_grad = Tensor::from_vec(evaluation.gradient(&reference).unwrap(), generated.shape(), &dev).unwrap();
    let rel = norm(&(&device_grad - &ref_grad).unwrap()) / norm(&ref_grad);
    eprintln!("device gradient rel diff {rel:.2e}, J {}", device_terms.total);
    assert!(rel < 1e-5, "the device path's gradient differs from autograd's by {rel:.2e} of its norm");
}

/// J_style of `image` shifted `dx` pixels left, the new columns at the right edge repeating the
/// last one (what a pan brings in before it is painted), against the image's own.
fn shifted_style_ratio(stylizer: &Stylizer, target: &ContentTarget, image: &Tensor, dx: usize) -> f64 {
    let (_, _, _, w) = image.dims4().unwrap();
    let kept = image.narrow(3, dx, w - dx).unwrap();
    let edge = image.narrow(3, w - 1, 1).unwrap().repeat((1, 1, 1, dx)).unwrap();
    let shifted = Tensor::cat(&[&kept, &edge], 3).unwrap().contiguous().unwrap();
    let style = |x: &Tensor| stylizer.evaluate(x, target).unwrap().1.style;
    style(&shifted) / style(image)
}

/// Why the margin is there: a painting optimised without it is fitted to its own edges (a frame
/// of its own that J_style leans on), so the same painting moved by a few pixels, as a pan moves
/// it, scores several times its J_style; with the margin it stays close to its own.
#[test]
fn a_painting_made_with_the_margin_keeps_its_style_when_moved() {
    let dev = Device::Cpu;
    let (w, h) = (64, 48);
    let content = to_tensor(&resize(&load_rgb(&common::repo_path("samples/pedestrians_frame0.jpg")).unwrap(), w, h), &dev).unwrap();
    let styles = StyleSpec::one(common::repo_path("samples/starry_night.jpg")).load(w, h, &dev).unwrap();
    let vgg = std::sync::Arc::new(common::vgg(Pooling::Max));
    let ratio = |margin: usize| {
        let settings = Settings { margin, tol: 0.0, ..Settings::default() };
        let stylizer = Stylizer::new(vgg.clone(), settings, &styles).unwrap();
        let target = stylizer.content_target(&content).unwrap();
        let painting = stylizer.optimise(&target, &content, 60, &mut NoProgress).unwrap();
        [2, 4, 8].map(|dx| shifted_style_ratio(&stylizer, &target, &painting.image, dx))
    };
    let (without, with) = (ratio(0), ratio(DEFAULT_VIDEO_MARGIN));
    eprintln!("J_style moved / own, by 2, 4, 8 px: without a margin {without:.2?}, with {DEFAULT_VIDEO_MARGIN} px {with:.2?}");
    for (without, with) in without.iter().zip(&with) {
        assert!(*with < 0.7 * without, "moved: {with:.2} of its own J_style with the margin, {without:.2} without");
    }
}
