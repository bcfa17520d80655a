//! Optical flow, reliability weights, warping and J_temporal on synthetic frames whose true
//! motion is known: a smooth random texture translated by sub-pixel amounts or rotated.

mod common;

use candle_core::{Device, Tensor, Var};
use image::GrayImage;
use rand::{Rng, SeedableRng};
use stylize_video::motion::flow::{reliability, warp_planar, FlowEstimator, FlowField, FlowMethod};
use stylize_video::motion::temporal::{histogram_change, Motion, MotionEstimator};
use stylize_video::stylize::loss::temporal_cost;

/// A smooth aperiodic texture: a sum of random plane waves (periods 12–60 px), values ~0..255.
struct Texture {
    waves: Vec<(f32, f32, f32, f32)>,
}

impl Texture {
    fn new(seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let waves = (0..14)
            .map(|_| {
                let angle = rng.random_range(0.0..std::f32::consts::PI);
                let k = std::f32::consts::TAU / rng.random_range(12.0..60.0f32);
                (k * angle.cos(), k * angle.sin(), rng.random_range(0.0..std::f32::consts::TAU), rng.random_range(8.0..18.0))
            })
            .collect();
        Texture { waves }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        128.0 + self.waves.iter().map(|(kx, ky, phase, amplitude)| amplitude * (kx * x + ky * y + phase).sin()).sum::<f32>()
    }

    /// A grey frame whose pixel p shows the texture at `source(p)`.
    fn grey(&self, w: u32, h: u32, source: impl Fn(f32, f32) -> (f32, f32)) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            let (sx, sy) = source(x as f32, y as f32);
            image::Luma([self.at(sx, sy).round().clamp(0.0, 255.0) as u8])
        })
    }
}

/// Mean endpoint error of `flow` against `truth(x, y)` over the pixels at least `margin` from the border.
fn mean_endpoint_error(flow: &FlowField, margin: usize, truth: impl Fn(f32, f32) -> (f32, f32)) -> f32 {
    let (mut sum, mut n) = (0.0, 0);
    for y in margin..flow.height() - margin {
        for x in margin..flow.width() - margin {
            let (u, v) = flow.at(x, y);
            let (tu, tv) = truth(x as f32, y as f32);
            sum += ((u - tu).powi(2) + (v - tv).powi(2)).sqrt();
            n += 1;
        }
    }
    sum / n as f32
}

#[test]
fn dis_flow_recovers_a_sub_pixel_translation() {
    let texture = Texture::new(1);
    let (dx, dy) = (2.3f32, -1.6f32);
    let a = texture.grey(128, 96, |x, y| (x, y));
    // Content moves by (dx, dy): frame b at p shows what frame a had at p − d.
    let b = texture.grey(128, 96, |x, y| (x - dx, y - dy));
    let mut estimator = FlowEstimator::new(FlowMethod::Dis).unwrap();
    let forward = estimator.estimate(&a, &b).unwrap();
    let epe = mean_endpoint_error(&forward, 8, |_, _| (dx, dy));
    assert!(epe < 0.3, "forward endpoint error {epe} px");
    let backward = estimator.estimate(&b, &a).unwrap();
    let epe = mean_endpoint_error(&backward, 8, |_, _| (-dx, -dy));
    assert!(epe < 0.3, "backward endpoint error {epe} px");
}

#[test]
fn dis_flow_recovers_a_small_rotation() {
    let texture = Texture::new(2);
    let (w, h) = (128u32, 96u32);
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let angle = 2f32.to_radians();
    let (s, c) = angle.sin_cos();
    let a = texture.grey(w, h, |x, y| (x, y));
    // Frame b is frame a rotated by `angle` about the centre: b(p) = a(R⁻¹(p − centre) + centre).
    let b = texture.grey(w, h, |x, y| {
        let (px, py) = (x - cx, y - cy);
        (c * px + s * py + cx, -s * px + c * py + cy)
    });
    let flow = FlowEstimator::new(FlowMethod::Dis).unwrap().estimate(&a, &b).unwrap();
    let epe = mean_endpoint_error(&flow, 8, |x, y| {
        let (px, py) = (x - cx, y - cy);
        (c * px - s * py + cx - x, s * px + c * py + cy - y)
    });
    assert!(epe < 0.3, "endpoint error {epe} px (largest true displacement {:.1} px)", angle * cx.hypot(cy));
}

#[test]
fn deepflow_recovers_a_translation_too() {
    let texture = Texture::new(3);
    let (dx, dy) = (-1.4f32, 2.2f32);
    let a = texture.grey(96, 64, |x, y| (x, y));
    let b = texture.grey(96, 64, |x, y| (x - dx, y - dy));
    let flow = FlowEstimator::new(FlowMethod::DeepFlow).unwrap().estimate(&a, &b).unwrap();
    let epe = mean_endpoint_error(&flow, 8, |_, _| (dx, dy));
    assert!(epe < 0.3, "endpoint error {epe} px");
}

#[test]
fn a_panned_frame_is_unreliable_exactly_in_the_band_that_entered_it() {
    // The camera pans: content moves right 3 px and down 2 px, so frame t's first 3 columns and
    // first 2 rows show what frame t−1 did not.
    let (w, h) = (40, 30);
    let backward = FlowField::from_fn(w, h, |_, _| (-3.0, -2.0));
    let forward = FlowField::from_fn(w, h, |_, _| (3.0, 2.0));
    let c = reliability(&backward, &forward);
    for y in 0..h {
        for x in 0..w {
            let expected = if x < 3 || y < 2 { 0.0 } else { 1.0 };
            assert_eq!(c[y * w + x], expected, "c at ({x}, {y})");
        }
    }
}

#[test]
fn a_moving_object_leaves_a_disoccluded_band_and_motion_boundaries() {
    // A 10×8 object moves 4 px right over a still background: in frame t−1 it covers
    // x ∈ [10, 20), in frame t x ∈ [14, 24); rows [10, 18) in both.
    let (w, h) = (40, 30);
    let in_object = |x: usize, y: usize, left: usize| (left..left + 10).contains(&x) && (10..18).contains(&y);
    let forward = FlowField::from_fn(w, h, |x, y| if in_object(x, y, 10) { (4.0, 0.0) } else { (0.0, 0.0) });
    let backward = FlowField::from_fn(w, h, |x, y| if in_object(x, y, 14) { (-4.0, 0.0) } else { (0.0, 0.0) });
    let c = reliability(&backward, &forward);
    // Motion boundary: the backward flow differs between the pixel's two neighbours along a row or a column.
    let boundary = |x: usize, y: usize| {
        let b = |x: usize, y: usize| backward.at(x.min(w - 1), y.min(h - 1));
        b(x.saturating_sub(1), y) != b(x + 1, y) || b(x, y.saturating_sub(1)) != b(x, y + 1)
    };
    for y in 0..h {
        for x in 0..w {
            let disoccluded = (10..14).contains(&x) && (10..18).contains(&y);
            let expected = if disoccluded || boundary(x, y) { 0.0 } else { 1.0 };
            assert_eq!(c[y * w + x], expected, "c at ({x}, {y})");
        }
    }
    // The band itself is unreliable all through, not only at its edges.
    assert!((11..13).all(|x| (11..17).all(|y| c[y * w + x] == 0.0)));
}

#[test]
fn long_term_weights_hold_each_pixel_to_the_nearest_frame_that_saw_it() {
    // Three 1-D "frames" of 6 pixels: c for t−1, t−10, t−20.
    let grid = |c: [f32; 6]| {
        let flow = FlowField::from_fn(6, 1, |_, _| (0.0, 0.0));
        let blank = GrayImage::new(6, 1);
        let mut motion = Motion::from_flows(flow.clone(), &flow, &blank, &blank);
        motion.reliability = c.to_vec();
        motion
    };
    let mut motion = grid([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    motion.earlier = vec![(10, grid([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])), (20, grid([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]))];
    // c_long^(t−j) = max(c^(t−j) − Σ_{k<j} c^(t−k), 0).
    assert_eq!(
        motion.long_term_weights(),
        vec![
            (1, vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
            (10, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
            (20, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
        ]
    );
}

fn rgb(grey: &GrayImage) -> image::RgbImage {
    image::RgbImage::from_fn(grey.width(), grey.height(), |x, y| {
        let v = grey.get_pixel(x, y)[0];
        image::Rgb([v, v, v])
    })
}

#[test]
fn the_motion_estimator_looks_back_as_asked_and_starts_over_at_a_cut() {
    let texture = Texture::new(11);
    let other = Texture::new(12);
    // Frames 0–4 pan 1.5 px a frame to the right; frame 5 is another scene; frame 6 pans on from it.
    let frame = |i: usize| -> image::RgbImage {
        let shift = 1.5 * i as f32;
        match i {
            0..=4 => rgb(&texture.grey(96, 64, |x, y| (x - shift, y))),
            _ => rgb(&other.grey(96, 64, |x, y| (0.9 * y - shift, 1.3 * x))),
        }
    };
    let mut estimator = MotionEstimator::new(FlowMethod::Dis, &[1, 3]).unwrap();
    let motions: Vec<Option<Motion>> = (0..7).map(|i| estimator.next(&frame(i)).unwrap()).collect();
    assert!(motions[0].is_none());
    let looked_back = |m: &Option<Motion>| m.as_ref().unwrap().earlier.iter().map(|(j, _)| *j).collect::<Vec<_>>();
    assert_eq!(looked_back(&motions[1]), Vec::<usize>::new());
    assert_eq!(looked_back(&motions[2]), Vec::<usize>::new());
    assert_eq!(looked_back(&motions[3]), [3]);
    assert_eq!(looked_back(&motions[4]), [3]);
    // The flow to frame t−3 is three frames' motion: (−4.5, 0) from frame 4 back to frame 1.
    let (_, three_back) = &motions[4].as_ref().unwrap().earlier[0];
    let epe = mean_endpoint_error(&three_back.backward, 8, |_, _| (-4.5, 0.0));
    assert!(epe < 0.3, "endpoint error {epe} px");
    assert!(motions[1..5].iter().all(|m| !m.as_ref().unwrap().is_cut()));
    // The cut, then nothing to look back to across it.
    assert!(motions[5].as_ref().unwrap().is_cut());
    assert_eq!(looked_back(&motions[5]), Vec::<usize>::new());
    assert!(!motions[6].as_ref().unwrap().is_cut());
    assert_eq!(looked_back(&motions[6]), Vec::<usize>::new());
}

/// A three-channel planar image of the texture with per-channel offsets, shifted by (dx, dy).
fn planar_rgb(texture: &Texture, w: usize, h: usize, dx: f32, dy: f32) -> Vec<f32> {
    let mut out = vec![0f32; 3 * w * h];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                out[c * w * h + y * w + x] = texture.at(x as f32 - dx + 17.0 * c as f32, y as f32 - dy);
            }
        }
    }
    out
}

#[test]
fn warping_the_previous_output_by_the_exact_flow_reproduces_the_shifted_output() {
    let texture = Texture::new(4);
    let (w, h) = (64, 48);
    let (dx, dy) = (2.6f32, 1.3f32);
    let previous = planar_rgb(&texture, w, h, 0.0, 0.0);
    let current = planar_rgb(&texture, w, h, dx, dy);
    let backward = FlowField::from_fn(w, h, |_, _| (-dx, -dy));
    let warped = warp_planar(&previous, 3, &backward);
    let mut worst = 0f32;
    for c in 0..3 {
        for y in 2..h {
            for x in 3..w {
                let i = c * w * h + y * w + x;
                worst = worst.max((warped[i] - current[i]).abs());
            }
        }
    }
    // Bilinear interpolation of waves with periods ≥ 12 px stays within a couple of levels.
    assert!(worst < 2.0, "largest warping difference {worst} (of 255)");
    // Without the warp the frames differ by far more.
    let unwarped = (0..previous.len()).map(|i| (previous[i] - current[i]).abs()).fold(0f32, f32::max);
    assert!(unwarped > 5.0 * worst, "unwarped difference {unwarped}");
}

#[test]
fn histograms_tell_a_new_scene_from_a_moved_one() {
    let texture = Texture::new(5);
    let a = texture.grey(64, 48, |x, y| (x, y));
    let moved = texture.grey(64, 48, |x, y| (x - 3.0, y));
    let dark = GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 7 + y * 3) % 40) as u8]));
    assert!(histogram_change(&a, &a) == 0.0);
    assert!(histogram_change(&a, &moved) < 0.1, "{}", histogram_change(&a, &moved));
    assert!(histogram_change(&a, &dark) > 0.9, "{}", histogram_change(&a, &dark));
}

#[test]
fn motion_marks_a_cut_between_unrelated_frames_but_not_a_pan() {
    let texture = Texture::new(6);
    let other = Texture::new(7);
    let a = texture.grey(96, 64, |x, y| (x, y));
    let panned = texture.grey(96, 64, |x, y| (x - 2.0, y + 1.0));
    let unrelated = other.grey(96, 64, |x, y| (1.7 * y, 0.8 * x));
    let mut estimator = FlowEstimator::new(FlowMethod::Dis).unwrap();
    let motion = |from: &GrayImage, to: &GrayImage, estimator: &mut FlowEstimator| {
        let backward = estimator.estimate(to, from).unwrap();
        let forward = estimator.estimate(from, to).unwrap();
        Motion::from_flows(backward, &forward, from, to)
    };
    let pan = motion(&a, &panned, &mut estimator);
    assert!(!pan.is_cut() && pan.unreliable_share < 0.2, "pan: {} unreliable", pan.unreliable_share);
    let cut = motion(&a, &unrelated, &mut estimator);
    assert!(cut.is_cut(), "cut: {} unreliable, histogram change {}", cut.unreliable_share, cut.histogram_change);
}

#[test]
fn warping_an_rgb_tensor_matches_the_planar_warp() {
    let texture = Texture::new(8);
    let (w, h) = (32, 24);
    let previous = planar_rgb(&texture, w, h, 0.0, 0.0);
    let backward = FlowField::from_fn(w, h, |x, y| (0.3 * (x as f32 / 8.0).sin(), -0.7 + 0.05 * y as f32));
    let motion = Motion::from_flows(backward.clone(), &backward, &GrayImage::new(w as u32, h as u32), &GrayImage::new(w as u32, h as u32));
    let tensor = Tensor::from_vec(previous.clone(), (1, 3, h, w), &Device::Cpu).unwrap();
    let warped = motion.warp_tensor(&tensor).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(warped, warp_planar(&previous, 3, &backward));
}

// ---- J_temporal ----

#[test]
fn temporal_cost_is_zero_at_the_warped_previous_frame_for_any_mask() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let x: Vec<f32> = (0..3 * 5 * 4).map(|_| rng.random_range(-100.0..100.0)).collect();
    let image = Tensor::from_vec(x, (1, 3, 5, 4), &Device::Cpu).unwrap();
    for mask in [vec![1f32; 20], vec![0f32; 20], (0..20).map(|i| (i % 3 == 0) as u8 as f32).collect()] {
        let c = Tensor::from_vec(mask, (1, 1, 5, 4), &Device::Cpu).unwrap();
        assert_eq!(temporal_cost(&image, &image, &c).unwrap().to_scalar::<f64>().unwrap(), 0.0);
    }
}

#[test]
fn temporal_cost_matches_a_hand_computed_value() {
    // x and ω(x_{t−1}) of shape (1, 2, 1, 2); c = [1, 0]: only the first pixel counts.
    let x = Tensor::new(&[[[[10f32, 4.0]], [[-3.0, 7.0]]]], &Device::Cpu).unwrap();
    let warped = Tensor::new(&[[[[7f32, 0.0]], [[1.0, -1.0]]]], &Device::Cpu).unwrap();
    let c = Tensor::new(&[[[[1f32, 0.0]]]], &Device::Cpu).unwrap();
    // D = n_H n_W n_C = 1·2·2 = 4; Σ c (x − ω)² = (10−7)² + (−3−1)² = 9 + 16 = 25 → 25/4.
    let j = temporal_cost(&x, &warped, &c).unwrap().to_scalar::<f64>().unwrap();
    assert_eq!(j, 6.25);
    let c_all = Tensor::new(&[[[[1f32, 1.0]]]], &Device::Cpu).unwrap();
    // + (4−0)² + (7+1)² = 16 + 64 → (25 + 80)/4.
    assert_eq!(temporal_cost(&x, &warped, &c_all).unwrap().to_scalar::<f64>().unwrap(), 26.25);
}

#[test]
fn temporal_cost_gradient_matches_finite_differences() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let shape = (1, 3, 6, 5);
    let n = 3 * 6 * 5;
    let random = |rng: &mut rand::rngs::StdRng, n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-50.0..50.0)).collect() };
    let x0 = random(&mut rng, n);
    let warped = Tensor::from_vec(random(&mut rng, n), shape, &Device::Cpu).unwrap();
    let mask: Vec<f32> = (0..30).map(|_| rng.random_bool(0.6) as u8 as f32).collect();
    let c = Tensor::from_vec(mask, (1, 1, 6, 5), &Device::Cpu).unwrap();
    let var = Var::from_vec(x0.clone(), shape, &Device::Cpu).unwrap();
    let j = temporal_cost(var.as_tensor(), &warped, &c).unwrap();
    let grad = j.backward().unwrap().get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let cost = |x: &[f32]| {
        let t = Tensor::from_vec(x.to_vec(), shape, &Device::Cpu).unwrap();
        temporal_cost(&t, &warped, &c).unwrap().to_scalar::<f64>().unwrap()
    };
    let h = 0.01f32;
    let mut checked_nonzero = 0;
    for k in 0..n {
        let (mut plus, mut minus) = (x0.clone(), x0.clone());
        plus[k] += h;
        minus[k] -= h;
        let numeric = (cost(&plus) - cost(&minus)) / (2.0 * h as f64);
        let analytic = grad[k] as f64;
        assert!((numeric - analytic).abs() <= 1e-3 * numeric.abs().max(1e-2), "∂J/∂x_{k}: {analytic} vs {numeric}");
        checked_nonzero += (analytic != 0.0) as usize;
    }
    assert!(checked_nonzero > n / 3, "the mask left too few pixels to check");
}
