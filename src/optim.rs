//! Optimisers over the pixels of the generated image, working on flat `f32` vectors:
//! L-BFGS (the default, as in Gatys et al. and neural-style) and Adam.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// Which optimiser minimises J(G).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Lbfgs,
    Adam,
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lbfgs" => Ok(OptimizerKind::Lbfgs),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(format!("unknown optimizer '{s}' (expected lbfgs or adam)")),
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptimizerKind::Lbfgs => "lbfgs",
            OptimizerKind::Adam => "adam",
        })
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// One optimiser state; `step` moves `x` given the gradient of J at `x`.
pub enum Optimizer {
    Lbfgs(Lbfgs),
    Adam(Adam),
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, learning_rate: f64, lbfgs_history: usize) -> Self {
        match kind {
            OptimizerKind::Lbfgs => Optimizer::Lbfgs(Lbfgs::new(learning_rate, lbfgs_history)),
            OptimizerKind::Adam => Optimizer::Adam(Adam::new(learning_rate)),
        }
    }

    /// Says how coarse the gradients are: with bf16 features, a step that moves no pixel by
    /// more than `pixels` (0..255 units) changes the rounded activations too little for the
    /// gradient's change to be more than rounding noise. L-BFGS then takes its first step (and
    /// the first after a reset) at least that long, so that its first curvature pair measures
    /// curvature. (0: exact gradients, the default.)
    pub fn with_gradient_resolution(mut self, pixels: f64) -> Self {
        if let Optimizer::Lbfgs(o) = &mut self {
            o.min_first_step = pixels;
        }
        self
    }

    pub fn step(&mut self, x: &mut [f32], grad: &[f32]) {
        match self {
            Optimizer::Lbfgs(o) => o.step(x, grad),
            Optimizer::Adam(o) => o.step(x, grad),
        }
    }
}

/// Limited-memory BFGS without line search, the variant neural-style runs (Torch's `optim.lbfgs`
/// with a fixed step): the direction is the two-loop recursion's −H·g over the last `history`
/// curvature pairs, the first step is scaled by min(1, 1/‖g‖₁) and later steps by the learning
/// rate (1 by default). A non-descent direction resets the memory.
pub struct Lbfgs {
    learning_rate: f64,
    history: usize,
    /// Curvature pairs (s, y, 1/(y·s)), oldest first.
    pairs: VecDeque<(Vec<f32>, Vec<f32>, f64)>,
    /// Step taken last time and the gradient it started from.
    last: Option<(Vec<f32>, Vec<f32>)>,
    /// Scale of the initial inverse Hessian, (y·s)/(y·y) of the newest pair.
    h_diag: f64,
    /// Longest pixel move of a first step, at least (see [`Optimizer::with_gradient_resolution`]).
    min_first_step: f64,
}

impl Lbfgs {
    pub fn new(learning_rate: f64, history: usize) -> Self {
        Self { learning_rate, history: history.max(1), pairs: VecDeque::new(), last: None, h_diag: 1.0, min_first_step: 0.0 }
    }

    pub fn step(&mut self, x: &mut [f32], grad: &[f32]) {
        if let Some((s, g_prev)) = self.last.take() {
            let y: Vec<f32> = grad.iter().zip(&g_prev).map(|(g, p)| g - p).collect();
            let ys = dot(&y, &s);
            if ys > 1e-10 {
                if self.pairs.len() == self.history {
                    self.pairs.pop_front();
                }
                self.h_diag = ys / dot(&y, &y);
                self.pairs.push_back((s, y, 1.0 / ys));
            }
        }
        let mut direction = self.two_loop(grad);
        if self.pairs.is_empty() || !(dot(grad, &direction) < 0.0) {
            // First step, or the memory no longer gives a descent direction: start afresh.
            self.pairs.clear();
            self.h_diag = 1.0;
            direction = grad.iter().map(|g| -g).collect();
        }
        let step_size = if self.pairs.is_empty() {
            let g_l1: f64 = grad.iter().map(|g| g.abs() as f64).sum();
            let torch_step = (1.0f64).min(1.0 / g_l1.max(f64::MIN_POSITIVE)) * self.learning_rate;
            let g_max = grad.iter().fold(0f32, |m, g| m.max(g.abs())) as f64;
            if g_max > 0.0 { torch_step.max(self.min_first_step / g_max) } else { torch_step }
        } else {
            self.learning_rate
        };
        let s: Vec<f32> = direction.iter().map(|d| d * step_size as f32).collect();
        x.iter_mut().zip(&s).for_each(|(x, s)| *x += s);
        self.last = Some((s, grad.to_vec()));
    }

    /// −H·g by the two-loop recursion.
    fn two_loop(&self, grad: &[f32]) -> Vec<f32> {
        let mut q: Vec<f32> = grad.iter().map(|g| -g).collect();
        let mut alphas = vec![0f64; self.pairs.len()];
        for (i, (s, y, rho)) in self.pairs.iter().enumerate().rev() {
            let a = rho * dot(s, &q);
            alphas[i] = a;
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= (a as f32) * y);
        }
        q.iter_mut().for_each(|q| *q *= self.h_diag as f32);
        for (i, (s, y, rho)) in self.pairs.iter().enumerate() {
            let b = rho * dot(y, &q);
            let c = (alphas[i] - b) as f32;
            q.iter_mut().zip(s).for_each(|(q, s)| *q += c * s);
        }
        q
    }
}

/// Adam (Kingma & Ba) with β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
pub struct Adam {
    learning_rate: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    pub fn new(learning_rate: f64) -> Self {
        Self { learning_rate, m: Vec::new(), v: Vec::new(), t: 0 }
    }

    pub fn step(&mut self, x: &mut [f32], grad: &[f32]) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        if self.m.len() != x.len() {
            self.m = vec![0.0; x.len()];
            self.v = vec![0.0; x.len()];
            self.t = 0;
        }
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for i in 0..x.len() {
            let g = grad[i] as f64;
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * g;
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * g * g;
            let update = self.learning_rate * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
            x[i] -= update as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f(x) = Σ a_i (x_i − c_i)^2 with very different curvatures a_i.
    fn quadratic(x: &[f32]) -> (f64, Vec<f32>) {
        let a = [1.0f32, 10.0, 100.0, 0.5];
        let c = [3.0f32, -2.0, 0.5, 7.0];
        let f = (0..4).map(|i| (a[i] * (x[i] - c[i]).powi(2)) as f64).sum();
        let g = (0..4).map(|i| 2.0 * a[i] * (x[i] - c[i])).collect();
        (f, g)
    }

    #[test]
    fn lbfgs_minimises_an_ill_conditioned_quadratic() {
        let mut x = vec![0f32; 4];
        let mut opt = Optimizer::new(OptimizerKind::Lbfgs, 1.0, 10);
        let f0 = quadratic(&x).0;
        for _ in 0..60 {
            let (_, g) = quadratic(&x);
            opt.step(&mut x, &g);
        }
        let f = quadratic(&x).0;
        assert!(f < 1e-6 * f0, "f went from {f0} to {f}");
        assert!((x[3] - 7.0).abs() < 1e-3 && (x[1] + 2.0).abs() < 1e-3, "{x:?}");
    }

    #[test]
    fn adam_first_step_moves_each_coordinate_by_the_learning_rate() {
        let mut x = vec![0f32; 4];
        let (_, g) = quadratic(&x);
        Optimizer::new(OptimizerKind::Adam, 0.5, 0).step(&mut x, &g);
        // Bias-corrected m/√v = sign(g) on the first step.
        for (xi, gi) in x.iter().zip(&g) {
            assert!((xi + 0.5 * gi.signum()).abs() < 1e-6, "{x:?}");
        }
    }
}
