//! The optimisers of [`crate::stylize::optim`] on candle tensors, where the image lives (a GPU): the same
//! L-BFGS and Adam, each step queued on the device with nothing read back to the host, so an
//! iteration on a GPU never waits on a host–device round trip (the stylizer reads J's terms
//! once per iteration, one small vector, and the finished image).
//!
//! L-BFGS's decisions, which [`crate::stylize::optim::Lbfgs`] takes on the host from scalars, are taken
//! here on the device from 0-d tensors, without branching:
//! - a curvature pair with y·s ≤ 1e-10 is kept with ρ = 0, which makes it neutral in the
//!   two-loop recursion (α = β = 0), as if it had been dropped;
//! - a direction that is not a descent direction (g·d ≥ 0), or a memory of neutral pairs only,
//!   gives the restart step −g·(first-step size) instead, and ρ = 0 for every pair used: the
//!   memory is cleared as the host version clears it.
//!
//! Vectors are flat f32 `(n,)`; dot products are candle's f32 sums (the host version adds f64
//! products), so the two agree to rounding, not bit for bit.

use std::collections::VecDeque;

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::stylize::optim::{usable_curvature_scale, OptimizerKind, PixelBox};

/// One optimiser state on the device; [`Self::step`] returns x_{k+1} from x_k and ∇J(x_k).
pub struct DeviceOptimizer {
    kind: DeviceOptimizerKind,
    /// Where x must stay (see [`Self::with_box`]).
    pixel_box: Option<PixelBox>,
    /// The box's bounds as `(1, C, 1, 1)` tensors, made on first use.
    bounds: Option<(Tensor, Tensor)>,
}

enum DeviceOptimizerKind {
    Lbfgs(DeviceLbfgs),
    Adam(DeviceAdam),
}

impl DeviceOptimizer {
    pub fn new(kind: OptimizerKind, learning_rate: f64, lbfgs_history: usize) -> Self {
        let kind = match kind {
            OptimizerKind::Lbfgs => DeviceOptimizerKind::Lbfgs(DeviceLbfgs::new(learning_rate, lbfgs_history)),
            OptimizerKind::Adam => DeviceOptimizerKind::Adam(DeviceAdam::new(learning_rate)),
        };
        DeviceOptimizer { kind, pixel_box: None, bounds: None }
    }

    /// See [`crate::stylize::optim::Optimizer::with_box`]; x is `(1, C, H, W)` with planes of H·W.
    pub fn with_box(mut self, pixel_box: Option<PixelBox>) -> Self {
        self.pixel_box = pixel_box;
        self
    }

    /// See [`crate::stylize::optim::Optimizer::with_gradient_resolution`].
    pub fn with_gradient_resolution(mut self, pixels: f64) -> Self {
        if let DeviceOptimizerKind::Lbfgs(o) = &mut self.kind {
            o.min_first_step = pixels;
        }
        self
    }

    /// See [`crate::stylize::optim::Optimizer::with_curvature_scale`].
    pub fn with_curvature_scale(mut self, scale: Option<f64>) -> Self {
        if let DeviceOptimizerKind::Lbfgs(o) = &mut self.kind {
            o.first_scale = usable_curvature_scale(scale);
        }
        self
    }

    /// See [`crate::stylize::optim::Optimizer::curvature_scale`] (read from the device: call it
    /// once, after the last step).
    pub fn curvature_scale(&self) -> Result<Option<f64>> {
        match &self.kind {
            DeviceOptimizerKind::Lbfgs(DeviceLbfgs { h_diag: Some(h), .. }) => Ok(Some(h.to_dtype(DType::F64)?.to_scalar::<f64>()?)),
            DeviceOptimizerKind::Lbfgs(DeviceLbfgs { first_scale, .. }) => Ok(*first_scale),
            _ => Ok(None),
        }
    }

    /// x_{k+1} (the shape of `x`) from x_k and the gradient of J there.
    pub fn step(&mut self, x: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let (shape, x_flat, g_flat) = (x.shape().clone(), x.flatten_all()?, grad.flatten_all()?);
        let next = match &mut self.kind {
            DeviceOptimizerKind::Lbfgs(o) => o.step(&x_flat, &g_flat)?,
            DeviceOptimizerKind::Adam(o) => o.step(&x_flat, &g_flat)?,
        };
        self.project(&next.reshape(shape)?)
    }

    /// `x` (`(1, C, H, W)`) moved into the box, each element clamped to its channel's bounds
    /// (x itself without a box).
    pub fn project(&mut self, x: &Tensor) -> Result<Tensor> {
        match self.bounds(x)? {
            Some((lower, upper)) => Ok(x.broadcast_maximum(&lower)?.broadcast_minimum(&upper)?),
            None => Ok(x.clone()),
        }
    }

    /// The box's lower and upper bounds as `(1, C, 1, 1)` tensors on x's device (None: no box).
    fn bounds(&mut self, x: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        let Some(pixel_box) = &self.pixel_box else { return Ok(None) };
        if self.bounds.is_none() {
            let c = pixel_box.lower.len();
            let lower = Tensor::from_slice(&pixel_box.lower, (1, c, 1, 1), x.device())?.to_dtype(x.dtype())?;
            let upper = Tensor::from_slice(&pixel_box.upper, (1, c, 1, 1), x.device())?.to_dtype(x.dtype())?;
            self.bounds = Some((lower, upper));
        }
        Ok(self.bounds.clone())
    }
}

/// a·b as a 0-d f32 tensor.
fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok((a * b)?.sum_all()?)
}

/// One curvature pair: s = x_{k+1} − x_k, y = ∇J_{k+1} − ∇J_k, ρ = 1/(y·s) (0: neutral).
struct Pair {
    s: Tensor,
    y: Tensor,
    rho: Tensor,
}

/// [`crate::stylize::optim::Lbfgs`] on the device.
pub struct DeviceLbfgs {
    learning_rate: f64,
    history: usize,
    min_first_step: f64,
    /// γ a first step is scaled by, when known.
    first_scale: Option<f64>,
    /// Oldest first.
    pairs: VecDeque<Pair>,
    /// The step taken last and the gradient it started from.
    last: Option<(Tensor, Tensor)>,
    /// (y·s)/(y·y) of the newest accepted pair, 0-d.
    h_diag: Option<Tensor>,
}

impl DeviceLbfgs {
    pub fn new(learning_rate: f64, history: usize) -> Self {
        Self { learning_rate, history: history.max(1), min_first_step: 0.0, first_scale: None, pairs: VecDeque::new(), last: None, h_diag: None }
    }

    fn step(&mut self, x: &Tensor, g: &Tensor) -> Result<Tensor> {
        if let Some((s, g_prev)) = self.last.take() {
            let y = (g - g_prev)?;
            let (ys, yy) = (dot(&y, &s)?, y.sqr()?.sum_all()?);
            let accepted = ys.gt(1e-10)?.to_dtype(DType::F32)?;
            let rho = (&accepted * ys.maximum(1e-10)?.recip()?)?;
            let h = (&ys / yy.maximum(f32::MIN_POSITIVE as f64)?)?;
            let old = match self.h_diag.take() {
                Some(old) => old,
                None => Tensor::ones((), DType::F32, g.device())?,
            };
            self.h_diag = Some(((&accepted * h)? + (accepted.affine(-1.0, 1.0)? * old)?)?);
            if self.pairs.len() == self.history {
                self.pairs.pop_front();
            }
            self.pairs.push_back(Pair { s, y, rho });
        }
        let first_step = self.first_step(g)?;
        let s = if self.pairs.is_empty() {
            (g.broadcast_mul(&first_step)? * -1.0)?
        } else {
            let (q, descent) = self.two_loop(g)?;
            // Use the memory where it has an accepted pair and gives a descent direction.
            let rho_sum = self.pairs.iter().skip(1).try_fold(self.pairs[0].rho.clone(), |sum, p| sum + &p.rho)?;
            let use_memory = (rho_sum.gt(0.0)?.to_dtype(DType::F32)? * descent.lt(0.0)?.to_dtype(DType::F32)?)?;
            for pair in &mut self.pairs {
                pair.rho = (&pair.rho * &use_memory)?;
            }
            let restart = (use_memory.affine(-1.0, 1.0)? * first_step)?;
            (q.broadcast_mul(&(&use_memory * self.learning_rate)?)? - g.broadcast_mul(&restart)?)?
        };
        let next = (x + &s)?;
        self.last = Some((s, g.clone()));
        Ok(next)
    }

    /// Torch's first step, min(1, 1/‖g‖₁)·learning rate (or γ·learning rate where γ is known),
    /// lengthened so that the largest pixel move is at least `min_first_step` (see
    /// [`crate::stylize::optim::Optimizer::with_gradient_resolution`]).
    fn first_step(&self, g: &Tensor) -> Result<Tensor> {
        let g_abs = g.abs()?;
        let torch = match self.first_scale {
            Some(scale) => Tensor::new(scale as f32 * self.learning_rate as f32, g.device())?,
            None => (g_abs.sum_all()?.maximum(f64::from(f32::MIN_POSITIVE))?.recip()?.minimum(1.0)? * self.learning_rate)?,
        };
        if self.min_first_step <= 0.0 {
            return Ok(torch);
        }
        // Where g is 0 everywhere the step moves nothing whatever its size.
        let resolution = (g_abs.max_all()?.maximum(1e-30)?.recip()? * self.min_first_step)?;
        Ok(torch.maximum(&resolution)?)
    }

    /// −H·g by the two-loop recursion over the pairs, and g·(−H·g).
    fn two_loop(&self, g: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut q = g.neg()?;
        let mut alphas = Vec::with_capacity(self.pairs.len());
        for pair in self.pairs.iter().rev() {
            let alpha = (&pair.rho * dot(&pair.s, &q)?)?;
            q = (q - pair.y.broadcast_mul(&alpha)?)?;
            alphas.push(alpha);
        }
        q = q.broadcast_mul(self.h_diag.as_ref().expect("set with the first pair"))?;
        for (pair, alpha) in self.pairs.iter().zip(alphas.into_iter().rev()) {
            let beta = (&pair.rho * dot(&pair.y, &q)?)?;
            q = (q + pair.s.broadcast_mul(&(alpha - beta)?)?)?;
        }
        let descent = dot(g, &q)?;
        Ok((q, descent))
    }
}

/// [`crate::stylize::optim::Adam`] on the device (moments in f32).
pub struct DeviceAdam {
    learning_rate: f64,
    moments: Option<(Tensor, Tensor)>,
    t: i32,
}

impl DeviceAdam {
    pub fn new(learning_rate: f64) -> Self {
        Self { learning_rate, moments: None, t: 0 }
    }

    fn step(&mut self, x: &Tensor, g: &Tensor) -> Result<Tensor> {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        let (m, v) = match self.moments.take() {
            Some((m, v)) if m.dims() == g.dims() => {
                ((m.affine(B1, 0.0)? + g.affine(1.0 - B1, 0.0)?)?, (v.affine(B2, 0.0)? + g.sqr()?.affine(1.0 - B2, 0.0)?)?)
            }
            _ => {
                self.t = 0;
                (g.affine(1.0 - B1, 0.0)?, g.sqr()?.affine(1.0 - B2, 0.0)?)
            }
        };
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        let update = (m.affine(self.learning_rate / c1, 0.0)? / v.affine(1.0 / c2, 0.0)?.sqrt()?.affine(1.0, 1e-8)?)?;
        let next = (x - update)?;
        self.moments = Some((m, v));
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stylize::optim::Optimizer;
    use candle_core::Device;

    /// f(x) = Σ a_i (x_i − c_i)² + b Σ (x_i − c_i)⁴: ill-conditioned and, far from c, far from
    /// quadratic, so L-BFGS meets pairs of every kind.
    fn gradient(x: &[f32]) -> Vec<f32> {
        let a = [1.0f32, 10.0, 100.0, 0.5, 3.0, 0.01];
        let c = [3.0f32, -2.0, 0.5, 7.0, -1.0, 4.0];
        (0..x.len()).map(|i| 2.0 * a[i] * (x[i] - c[i]) + 0.4 * (x[i] - c[i]).powi(3)).collect()
    }

    /// The device optimisers take the host ones' steps: the same trajectory to f32 rounding for
    /// 20 steps (L-BFGS amplifies rounding: the dot products sum in f32 here and f64 there, and
    /// the trajectories drift apart by ~1e-5 per step on this problem), then both get near the minimum.
    #[test]
    fn device_optimisers_follow_the_host_ones() {
        // (Started from a known curvature the trajectory takes longer steps early and drifts
        // sooner: compared for 12 steps.)
        for (kind, lr, resolution, curvature, compared) in [
            (OptimizerKind::Lbfgs, 1.0, 0.0, None, 20),
            (OptimizerKind::Lbfgs, 1.0, 0.5, None, 20),
            (OptimizerKind::Lbfgs, 1.0, 0.0, Some(0.02), 12),
            (OptimizerKind::Adam, 0.3, 0.0, None, 20),
        ] {
            let mut host = Optimizer::new(kind, lr, 4).with_gradient_resolution(resolution).with_curvature_scale(curvature);
            let mut device =
                DeviceOptimizer::new(kind, lr, 4).with_gradient_resolution(resolution).with_curvature_scale(curvature);
            let mut x_host = vec![0f32, 0.0, 0.0, 0.0, 5.0, -3.0];
            let mut x_device = Tensor::from_vec(x_host.clone(), (1, 6), &Device::Cpu).unwrap();
            for k in 0..60 {
                let g = gradient(&x_host);
                host.step(&mut x_host, &g);
                let g_device = Tensor::from_vec(gradient(&x_device.flatten_all().unwrap().to_vec1::<f32>().unwrap()), (1, 6), &Device::Cpu).unwrap();
                x_device = device.step(&x_device, &g_device).unwrap();
                assert_eq!(x_device.dims(), &[1, 6]);
                let got = x_device.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                if k == compared - 1 {
                    let (host_scale, device_scale) = (host.curvature_scale(), device.curvature_scale().unwrap());
                    assert_eq!(host_scale.is_some(), device_scale.is_some(), "{kind}");
                    if let (Some(h), Some(d)) = (host_scale, device_scale) {
                        assert!((h - d).abs() <= 1e-3 * h.abs(), "{kind}: γ host {h}, device {d}");
                    }
                }
                for (i, (d, h)) in got.iter().zip(&x_host).enumerate().filter(|_| k < compared) {
                    assert!(
                        (d - h).abs() <= 1e-4 * h.abs().max(1.0),
                        "{kind} (resolution {resolution}, curvature {curvature:?}) step {k}, x_{i}: device {d}, host {h}"
                    );
                }
            }
            let x_device = x_device.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for x in [&x_host, &x_device] {
                let g: f32 = gradient(x).iter().map(|g| g.abs()).sum();
                assert!(kind == OptimizerKind::Adam || g < 1.0, "{kind} did not get near the minimum in 60 steps: |g|₁ = {g} (564 at the start)");
            }
        }
    }

    /// In a box the device optimisers take the host ones' projected steps too: x stays in the
    /// box, and the trajectories agree to rounding for 10 steps (then a pair without
    /// positive curvature, which the host drops and the device keeps as a neutral pair in the
    /// memory, sends them apart), and both stay in the box for 20.
    #[test]
    fn device_optimisers_keep_to_the_box_as_the_host_ones_do() {
        let pixel_box = PixelBox { plane: 3, lower: vec![-1.0, 0.0], upper: vec![2.5, 6.0] };
        for (kind, lr) in [(OptimizerKind::Lbfgs, 1.0), (OptimizerKind::Adam, 0.3)] {
            let mut host = Optimizer::new(kind, lr, 4).with_box(Some(pixel_box.clone()));
            let mut device = DeviceOptimizer::new(kind, lr, 4).with_box(Some(pixel_box.clone()));
            let mut x_host = vec![0f32, 0.0, 0.0, 0.0, 5.0, 1.0];
            let mut x_device = Tensor::from_vec(x_host.clone(), (1, 2, 1, 3), &Device::Cpu).unwrap();
            let mut held = 0;
            for k in 0..20 {
                let g_host = gradient(&x_host);
                host.step(&mut x_host, &g_host);
                let x = x_device.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let g_device = Tensor::from_vec(gradient(&x), (1, 2, 1, 3), &Device::Cpu).unwrap();
                x_device = device.step(&x_device, &g_device).unwrap();
                let got = x_device.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (i, (d, h)) in got.iter().zip(&x_host).enumerate() {
                    let (lo, hi) = (pixel_box.lower[i / 3], pixel_box.upper[i / 3]);
                    assert!((lo..=hi).contains(d) && (lo..=hi).contains(h), "{kind} step {k}, x_{i}: device {d}, host {h}");
                    assert!(k >= 10 || (d - h).abs() <= 1e-4 * h.abs().max(1.0), "{kind} step {k}, x_{i}: device {d}, host {h}");
                    held += usize::from(*h == lo || *h == hi);
                }
            }
            // The minimum (3, −2, 0.5 | 7, −1, 4) is outside the box in three coordinates.
            assert!(held > 0, "{kind}: the box never held a coordinate");
        }
    }
}
