//! The costs on small hand-made tensors against numbers worked out by hand.

use candle_core::{Device, Tensor};
use stylize_video::stylize::loss::{content_cost, gram_matrix, layer_style_cost, matted_layer_style_cost, tv_cost, Matte, StyleTarget};

fn scalar(t: Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

/// a^[l] with n_C = 2, n_H = n_W = 2: channel 0 = [1 2; 3 4], channel 1 = [0 1; 0 -1].
fn activations() -> Tensor {
    Tensor::from_vec(vec![1f32, 2., 3., 4., 0., 1., 0., -1.], (1, 2, 2, 2), &Device::Cpu).unwrap()
}

#[test]
fn gram_matrix_is_the_unnormalised_cross_covariance() {
    let g = gram_matrix(&activations()).unwrap().to_vec2::<f32>().unwrap();
    // G_00 = 1+4+9+16, G_01 = G_10 = 0+2+0-4, G_11 = 0+1+0+1
    assert_eq!(g, vec![vec![30., -2.], vec![-2., 2.]]);
}

#[test]
fn layer_style_cost_follows_the_formula() {
    let gram_s = Tensor::from_vec(vec![10f32, 0., 0., 1.], (2, 2), &Device::Cpu).unwrap();
    // Σ (G(S) − G(G))^2 = 20² + 2² + 2² + 1² = 409, over (2·n_H·n_W·n_C)^2 = 16² = 256.
    let j = scalar(layer_style_cost(&gram_s, &activations()).unwrap());
    assert!((j - 409.0 / 256.0).abs() < 1e-12, "{j}");
}

#[test]
fn content_cost_follows_the_formula() {
    let ones = Tensor::ones((1, 2, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    // Σ (1 − a)^2 = (0+1+4+9) + (1+0+1+4) = 20, over 4·n_H·n_W·n_C = 32.
    let j = scalar(content_cost(&ones, &activations()).unwrap());
    assert!((j - 20.0 / 32.0).abs() < 1e-12, "{j}");
}

#[test]
fn tv_cost_follows_the_formula() {
    let image = Tensor::from_vec(vec![1f32, 2., 4., 0., 0., 0.], (1, 1, 2, 3), &Device::Cpu).unwrap();
    // vertical: 1+4+16, horizontal: (1+4) + 0, over n_H·n_W·n_C = 6.
    let j = scalar(tv_cost(&image).unwrap());
    assert!((j - 26.0 / 6.0).abs() < 1e-12, "{j}");
}

#[test]
fn identical_inputs_cost_nothing() {
    let a = activations();
    assert_eq!(scalar(layer_style_cost(&gram_matrix(&a).unwrap(), &a).unwrap()), 0.0);
    assert_eq!(scalar(content_cost(&a, &a).unwrap()), 0.0);
    let flat = Tensor::full(3f32, (1, 3, 4, 5), &Device::Cpu).unwrap();
    assert_eq!(scalar(tv_cost(&flat).unwrap()), 0.0);
}

#[test]
fn style_target_is_rescaled_to_the_generated_size_and_blended() {
    let a = activations(); // 2×2 positions
    let generated_4x4 = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let target = StyleTarget::blend(&[(a.clone(), 2.0)]).unwrap();
    // Same size: exactly G(S). Four times the positions: 4·G(S).
    assert_eq!(target.gram_for(&a).unwrap().to_vec2::<f32>().unwrap(), vec![vec![30., -2.], vec![-2., 2.]]);
    assert_eq!(target.gram_for(&generated_4x4).unwrap().to_vec2::<f32>().unwrap(), vec![vec![120., -8.], vec![-8., 8.]]);

    // Blend 1:3 of a (Gram G over 4 positions) and 2a (Gram 4G over 4 positions): per position
    // 0.25·G/4 + 0.75·4G/4 = 0.8125·G, so 3.25·G at 2×2.
    let doubled = (&a * 2.0).unwrap();
    let blended = StyleTarget::blend(&[(a.clone(), 1.0), (doubled, 3.0)]).unwrap();
    let g = blended.gram_for(&a).unwrap().to_vec2::<f32>().unwrap();
    assert!((g[0][0] - 30.0 * 3.25).abs() < 1e-4 && (g[1][1] - 2.0 * 3.25).abs() < 1e-5, "{g:?}");
}

/// A matte over `activations()`'s 2×2 positions: [1 0.5; 0 1].
fn matte_2x2() -> Tensor {
    Tensor::from_vec(vec![1f32, 0.5, 0., 1.], (1, 1, 2, 2), &Device::Cpu).unwrap()
}

#[test]
fn a_matte_is_averaged_as_the_network_pools() {
    // 4×5: the last column is dropped by the floored 2×2 pooling, as VGG drops it.
    let m: Vec<f32> = (0..20).map(|i| if i % 5 < 2 { 1.0 } else { 0.0 }).collect();
    let matte = Matte::new(&Tensor::from_vec(m, (1, 1, 4, 5), &Device::Cpu).unwrap()).unwrap();
    assert_eq!(matte.finest().area, 8.0);
    let pooled = matte.at(2, 2).unwrap();
    assert_eq!(pooled.weights, vec![1.0, 0.0, 1.0, 0.0]);
    assert_eq!(pooled.area, 2.0);
    assert_eq!(matte.at(1, 1).unwrap().weights, vec![0.5]);
    assert!(matte.at(3, 3).is_err());
}

#[test]
fn matted_layer_style_cost_follows_the_formula() {
    // m ⊙ a: channel 0 = [1 1; 0 4], channel 1 = [0 0.5; 0 -1]; its Gram matrix:
    // G_00 = 1+1+16 = 18, G_01 = 0.5−4 = −3.5, G_11 = 0.25+1 = 1.25. Area A = 1+0.25+0+1 = 2.25.
    let matte = Matte::new(&matte_2x2()).unwrap();
    let layer = matte.at(2, 2).unwrap();
    assert_eq!(layer.area, 2.25);
    // The style: Gram [10 0; 0 1] over 4 positions, brought to A: × 2.25/4 = [5.625 0; 0 0.5625].
    // Σ (G(S)·A/P − G(G; m))² = 12.375² + 2·3.5² + 0.6875² = 177.988..., over (2·A·n_C)² = 9².
    let style = Tensor::from_vec(vec![10f32.sqrt(), 0., 0., 0., 0., 0., 0., 1.], (1, 2, 2, 2), &Device::Cpu).unwrap();
    let target = StyleTarget::blend(&[(style, 1.0)]).unwrap();
    let j = scalar(matted_layer_style_cost(&target, &activations(), layer).unwrap());
    let expected = (12.375f64.powi(2) + 2.0 * 3.5f64.powi(2) + 0.6875f64.powi(2)) / 81.0;
    assert!((j - expected).abs() < 1e-6 * expected, "{j} vs {expected}");
    // A matte of ones is the plain cost; an empty one costs nothing.
    let ones = Matte::new(&Tensor::ones((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap();
    let plain = scalar(layer_style_cost(&target.gram_for(&activations()).unwrap(), &activations()).unwrap());
    assert!((scalar(matted_layer_style_cost(&target, &activations(), ones.at(2, 2).unwrap()).unwrap()) - plain).abs() < 1e-9);
    let empty = Matte::new(&Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap();
    assert_eq!(scalar(matted_layer_style_cost(&target, &activations(), empty.at(2, 2).unwrap()).unwrap()), 0.0);
}

#[test]
fn combined_targets_blend_as_their_images_do() {
    // Blending the images' activations 1:3 and combining each image's own target 1:3 agree.
    let a = activations();
    let doubled_4x4 = Tensor::ones((1, 2, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let direct = StyleTarget::blend(&[(a.clone(), 1.0), (doubled_4x4.clone(), 3.0)]).unwrap();
    let (ta, tb) = (StyleTarget::blend(&[(a.clone(), 1.0)]).unwrap(), StyleTarget::blend(&[(doubled_4x4, 1.0)]).unwrap());
    let combined = StyleTarget::combine(&[(&ta, 1.0), (&tb, 3.0)]).unwrap();
    assert_eq!(combined.gram_for(&a).unwrap().to_vec2::<f32>().unwrap(), direct.gram_for(&a).unwrap().to_vec2::<f32>().unwrap());
    // A weight of 0 leaves a style out; all zero is refused.
    let only_b = StyleTarget::combine(&[(&ta, 0.0), (&tb, 2.0)]).unwrap();
    // tb's Gram over 16 positions is 16 everywhere; brought to ta's 4 positions: 4.
    assert_eq!(only_b.gram_for(&a).unwrap().to_vec2::<f32>().unwrap(), vec![vec![4., 4.], vec![4., 4.]]);
    assert!(StyleTarget::combine(&[(&ta, 0.0), (&tb, 0.0)]).is_err());
}
