//! The custom VGG layers against candle's own ops (forward and input gradient), on random
//! tensors of VGG-like shapes, including odd sizes.

mod common;

use candle_core::{Device, Tensor, Var};
use common::max_rel_diff;
use stylize_video::layers::{ConvAlgorithm, Conv3x3Relu, Conv3x3Weights, Pool2x2};

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
    let ours = stylize_video::loss::gram_matrix(x.as_tensor()).unwrap();
    let f = x.as_tensor().reshape((32, 9 * 13)).unwrap();
    let reference = f.matmul(&f.t().unwrap()).unwrap();
    assert!(max_rel_diff(&ours, &reference) < 1e-5);
    let grad = |g: &Tensor| (g * &probe).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
    let diff = max_rel_diff(&grad(&ours), &grad(&reference));
    assert!(diff < 1e-5, "gradient differs by {diff}");
}
