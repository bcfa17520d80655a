//! The custom VGG layers against candle's own ops (forward and input gradient), on random
//! tensors of VGG-like shapes, including odd sizes.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::max_rel_diff;
use stylize_video::net::cpu::layers::{ConvAlgorithm, Conv3x3Relu, Conv3x3Weights, Pool2x2};

fn check_conv(c_in: usize, c_out: usize, h: usize, w: usize) {
    let dev = Device::Cpu;
    let weight = Tensor::randn(0f32, 0.1, (c_out, c_in, 3, 3), &dev).unwrap();
    let bias = Tensor::randn(0f32, 0.1, c_out, &dev).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, c_in, h, w), &dev).unwrap()).unwrap();
    let pre_activation = x.as_tensor().conv2d(&weight, 1, 1, 1, 1).unwrap().broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap()).unwrap();
    let candle = pre_activation.relu().unwrap();
    // Outputs within rounding of zero may fall on either side of the ReLU in the two
    // implementations, which flips their whole gradient: the probe leaves them out.
    let margin = 1e-4 * pre_activation.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let decided = pre_activation.abs().unwrap().ge(margin).unwrap().to_dtype(candle_core::DType::F32).unwrap();
    let probe = (Tensor::randn(0f32, 1.0, (1, c_out, h, w), &dev).unwrap() * decided).unwrap();

    let grad = |y: &Tensor| (y * &probe).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
    let candle_grad = grad(&candle);
    for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Winograd] {
        let ours_op = Conv3x3Relu::new(Conv3x3Weights::with_algorithm(
            c_out,
            c_in,
            weight.flatten_all().unwrap().to_vec1().unwrap(),
            Some(bias.to_vec1().unwrap()),
            algorithm,
        ));
        let ours = x.as_tensor().apply_op1(ours_op).unwrap();
        let fwd = max_rel_diff(&ours, &candle);
        // Winograd F(4×4, 3×3) adds and subtracts scaled copies of the inputs (by up to 5 and
        // 8): it gives up about a decimal digit of f32 precision, within the ~1e-4 asked of it.
        let tolerance = if algorithm == ConvAlgorithm::Winograd { 1e-4 } else { 1e-5 };
        assert!(fwd < tolerance, "{algorithm:?} forward {c_in}->{c_out} {h}x{w}: {fwd}");
        let bwd = max_rel_diff(&grad(&ours), &candle_grad);
        assert!(bwd < 1e-4, "{algorithm:?} input gradient {c_in}->{c_out} {h}x{w}: {bwd}");
    }
}

#[test]
fn conv3x3_relu_matches_candle_conv2d() {
    check_conv(3, 64, 18, 24);
    check_conv(64, 64, 7, 9);
    check_conv(64, 128, 40, 33);
    check_conv(128, 256, 5, 3);
    check_conv(512, 512, 2, 1);
    check_conv(512, 512, 13, 24);
}

#[test]
fn pooling_forward_matches_candle_and_backward_routes_to_the_window() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 4, 7, 9), &dev).unwrap()).unwrap();
    let max = x.as_tensor().apply_op1(Pool2x2::Max).unwrap();
    let avg = x.as_tensor().apply_op1(Pool2x2::Avg).unwrap();
    assert_eq!(max.dims4().unwrap(), (1, 4, 3, 4));
    assert_eq!(max_rel_diff(&max, &x.as_tensor().max_pool2d(2).unwrap()), 0.0);
    assert!(max_rel_diff(&avg, &x.as_tensor().avg_pool2d(2).unwrap()) < 1e-6);

    // d(Σ pool)/dx: max pooling puts exactly 1 on each window's maximum, average 1/4 on every
    // input inside a window, and both leave the trailing odd row and column at 0.
    let g_max = max.sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
    let g_avg = avg.sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
    let g_max = g_max.squeeze(0).unwrap().to_vec3::<f32>().unwrap();
    let g_avg = g_avg.squeeze(0).unwrap().to_vec3::<f32>().unwrap();
    let input = x.as_tensor().squeeze(0).unwrap().to_vec3::<f32>().unwrap();
    for c in 0..4 {
        for y in 0..7 {
            for xx in 0..9 {
                let inside = y < 6 && xx < 8;
                assert_eq!(g_avg[c][y][xx], if inside { 0.25 } else { 0.0 });
                if !inside {
                    assert_eq!(g_max[c][y][xx], 0.0);
                    continue;
                }
                let (wy, wx) = (y / 2 * 2, xx / 2 * 2);
                let window_max = [(0, 0), (0, 1), (1, 0), (1, 1)].iter().map(|(dy, dx)| input[c][wy + dy][wx + dx]).fold(f32::MIN, f32::max);
                assert_eq!(g_max[c][y][xx], if input[c][y][xx] == window_max { 1.0 } else { 0.0 }, "c{c} y{y} x{xx}");
            }
        }
    }
}

#[test]
fn gram_op_matches_matmul_forward_and_gradient() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 32, 9, 13), &dev).unwrap()).unwrap();
    let probe = Tensor::randn(0f32, 1.0, (32, 32), &dev).unwrap();
    let ours = stylize_video::stylize::loss::gram_matrix(x.as_tensor()).unwrap();
    let f = x.as_tensor().reshape((32, 9 * 13)).unwrap();
    let reference = f.matmul(&f.t().unwrap()).unwrap();
    assert!(max_rel_diff(&ours, &reference) < 1e-5);
    let grad = |g: &Tensor| (g * &probe).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
    let diff = max_rel_diff(&grad(&ours), &grad(&reference));
    assert!(diff < 1e-5, "gradient differs by {diff}");
}

/// G = F Fᵀ summed over chunks of positions on the threads (`Gram::compute`) against a direct
/// sum in f64: odd channel counts, position counts across several chunks and below one, and
/// exactly symmetric (G^[l]_{kk'} and G^[l]_{k'k} are the same sum in the same order).
#[test]
fn gram_over_chunks_matches_the_direct_sum() {
    use stylize_video::net::cpu::layers::Gram;
    for (c, hw) in [(130, 1300), (64, 300), (3, 7), (512, 4), (70, 2049)] {
        let a: Vec<f32> = (0..c * hw).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.3) * if i % 3 == 0 { 2.0 } else { 1.0 }).collect();
        let g = Gram::compute(&a, c, hw);
        assert_eq!(g.len(), c * c);
        let mut worst = 0f64;
        for i in 0..c {
            for j in 0..c {
                let direct: f64 = (0..hw).map(|p| a[i * hw + p] as f64 * a[j * hw + p] as f64).sum();
                let scale: f64 = (0..hw).map(|p| (a[i * hw + p] as f64).abs() * (a[j * hw + p] as f64).abs()).sum();
                worst = worst.max((g[i * c + j] as f64 - direct).abs() / scale.max(1e-30));
                assert_eq!(g[i * c + j], g[j * c + i], "G is not symmetric at ({i}, {j}), c = {c}, hw = {hw}");
            }
        }
        assert!(worst < 1e-6, "c = {c}, hw = {hw}: off by {worst:e} of the sum of |products|");
    }
}

/// ‖a − b‖ / ‖b‖ over all entries.
fn rel_l2(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let diff: f64 = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm).sqrt() as f32
}

/// The direct bf16 convolution (each kernel this CPU has) against the f32 Winograd, forward and
/// input gradient, on VGG16's layer shapes (channels as in the network, small frames) with
/// VGG-like weights (He-scaled) and ReLU-like inputs.
///
/// Tolerances: bf16 keeps 8 mantissa bits (relative rounding 2⁻⁹ ≈ 0.2% per operand), and sums
/// of hundreds of products in f32 average that down. Stated: ‖bf16 − f32‖/‖f32‖ < 1% for
/// outputs and input gradients, and no entry further off than 2% of the largest magnitude.
#[test]
fn bf16_direct_convolution_matches_f32_on_vgg16_shapes() {
    use stylize_video::net::cpu::bf16::Kernel;
    let kernels = Kernel::all_available();
    if kernels.is_empty() {
        eprintln!("no bf16 kernel on this CPU: the bf16 path falls back to f32 (tests/precision.rs)");
        return;
    }
    let dev = Device::Cpu;
    // (c_in, c_out, h, w): conv1_1 .. conv5_1 at a 64×48 frame (conv1_1's 3 input channels,
    // and its input gradient's 3 outputs, are padded inside), and odd sizes.
    for (c_in, c_out, h, w) in [(3, 64, 48, 64), (64, 64, 48, 64), (64, 128, 24, 32), (128, 128, 24, 32), (128, 256, 12, 16), (256, 256, 12, 16), (256, 512, 6, 8), (512, 512, 6, 8), (512, 512, 3, 4), (64, 64, 13, 21), (5, 20, 9, 37)] {
        let std = (2.0 / (9 * c_in) as f64).sqrt();
        let weight = Tensor::randn(0f32, std as f32, (c_out, c_in, 3, 3), &dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let bias: Vec<f32> = Tensor::randn(0f32, 0.1, c_out, &dev).unwrap().to_vec1().unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, c_in, h, w), &dev).unwrap().relu().unwrap()).unwrap();
        let probe = Tensor::randn(0f32, 1.0, (1, c_out, h, w), &dev).unwrap();
        let forward = |weights: Conv3x3Weights| x.as_tensor().apply_op1(Conv3x3Relu::new(weights)).unwrap();
        let input_gradient = |y: &Tensor, probe: &Tensor| {
            (y * probe).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone()
        };
        let y32 = forward(Conv3x3Weights::with_algorithm(c_out, c_in, weight.clone(), Some(bias.clone()), ConvAlgorithm::Winograd));
        for &kernel in &kernels {
            let weights = Conv3x3Weights::direct_bf16_on(c_out, c_in, weight.clone(), Some(bias.clone()), kernel);
            assert_eq!(weights.algorithm(), ConvAlgorithm::DirectBf16);
            let y = forward(weights);
            // Outputs within rounding of zero may fall on either side of the ReLU in the two
            // precisions, which flips their whole gradient: the probe leaves them out.
            let margin = 1e-2 * y32.max_all().unwrap().to_scalar::<f32>().unwrap();
            let on = |t: &Tensor| t.ge(margin).unwrap().to_dtype(DType::F32).unwrap();
            let off = |t: &Tensor| t.le(0f32).unwrap().to_dtype(DType::F32).unwrap();
            let decided = ((on(&y) * on(&y32)).unwrap() + (off(&y) * off(&y32)).unwrap()).unwrap();
            let probe = (&probe * decided).unwrap();
            let (g, g32) = (input_gradient(&y, &probe), input_gradient(&y32, &probe));
            let (fwd, bwd) = (rel_l2(&y, &y32), rel_l2(&g, &g32));
            let (fwd_max, bwd_max) = (max_rel_diff(&y, &y32), max_rel_diff(&g, &g32));
            eprintln!("{kernel} {c_in}->{c_out} {h}x{w}: forward {fwd:.2e} (max {fwd_max:.2e}), input gradient {bwd:.2e} (max {bwd_max:.2e})");
            assert!(fwd < 1e-2 && fwd_max < 2e-2, "{kernel} forward {c_in}->{c_out} {h}x{w}: {fwd} (max {fwd_max})");
            assert!(bwd < 1e-2 && bwd_max < 2e-2, "{kernel} input gradient {c_in}->{c_out} {h}x{w}: {bwd} (max {bwd_max})");
            assert!(fwd > 0.0, "bf16 products identical to f32: the bf16 kernel did not run");
        }
    }
}

/// Max-pooling's backward on rows wide enough for the vectorised path (16 windows a step) and
/// a remainder, with ties (small integer inputs) going to the window's first maximum in
/// reading order, against a plain loop.
#[test]
fn max_pool_backward_routes_to_the_first_maximum_on_wide_rows() {
    let (c, h, w) = (3, 6, 71); // 35 windows a row: 32 vectorised, 3 one by one, an odd column
    let values: Vec<f32> = (0..c * h * w).map(|i| ((i * 7919) % 5) as f32).collect();
    let grad: Vec<f32> = (0..c * (h / 2) * (w / 2)).map(|i| 1.0 + i as f32).collect();
    let got = Pool2x2::Max.input_gradient(&values, &grad, c, h, w);
    let (oh, ow) = (h / 2, w / 2);
    let mut expected = vec![0f32; c * h * w];
    for p in 0..c {
        for y in 0..oh {
            for x in 0..ow {
                let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dy, dx)| (p * h + 2 * y + dy) * w + 2 * x + dx);
                let mut best = window[0];
                for &i in &window[1..] {
                    if values[i] > values[best] {
                        best = i;
                    }
                }
                expected[best] = grad[(p * oh + y) * ow + x];
            }
        }
    }
    assert_eq!(got, expected);
}
