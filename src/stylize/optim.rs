//! Optimisers over the pixels of the generated image, working on flat `f32` vectors:
//! L-BFGS (the default, as in Gatys et al. and neural-style) and Adam.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

/// Which optimiser minimises J(G).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
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

/// The box the pixels of G are kept in: every element of channel plane c (planes of `plane`
/// elements, channel = plane index mod the channel count) lies in [`lower[c]`, `upper[c]`].
/// For the stylizer it is the displayable range, 0..255 minus the mean of each channel: what is
/// optimised is then what a frame file can hold, instead of an image whose out-of-range pixels
/// are clamped when it is written (which undid much of the style: see docs/temporal.md).
#[derive(Debug, Clone, PartialEq)]
pub struct PixelBox {
    pub plane: usize,
    pub lower: Vec<f32>,
    pub upper: Vec<f32>,
}

impl PixelBox {
    /// Moves every element of `x` (elements `at..at + x.len()` of the image) into the box.
    pub fn project(&self, x: &mut [f32], at: usize) {
        let (plane, channels) = (self.plane.max(1), self.lower.len().min(self.upper.len()));
        let mut i = 0;
        while i < x.len() && channels > 0 {
            // The run of elements in plane `index`, one channel's bounds.
            let index = (at + i) / plane;
            let end = ((index + 1) * plane - at).min(x.len());
            let (lo, hi) = (self.lower[index % channels], self.upper[index % channels]);
            x[i..end].iter_mut().for_each(|x| *x = x.clamp(lo, hi));
            i = end;
        }
    }
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

    /// Starts L-BFGS from what a similar problem taught it: its first step (and the first
    /// after a reset) is −γ·g with γ = (y·s)/(y·y) of that problem's newest curvature pair (see
    /// [`Self::curvature_scale`]) instead of Torch's probe min(1, 1/‖g‖₁)·g, a 1e-5-pixel move
    /// that changes nothing but gives the first pair. For a warm video frame, whose J has the
    /// previous frame's curvature, the first iteration is then a real step. (None: the probe.)
    pub fn with_curvature_scale(mut self, scale: Option<f64>) -> Self {
        if let Optimizer::Lbfgs(o) = &mut self {
            o.first_scale = usable_curvature_scale(scale);
        }
        self
    }

    /// γ = (y·s)/(y·y) of the newest curvature pair L-BFGS accepted, or else the γ it was
    /// started with (None: neither, or Adam).
    pub fn curvature_scale(&self) -> Option<f64> {
        match self {
            Optimizer::Lbfgs(o) => o.newest_scale.or(o.first_scale),
            Optimizer::Adam(_) => None,
        }
    }

    /// Moves x back into `pixel_box` after every step (each element clamped to its bounds).
    /// L-BFGS's curvature pair keeps the step it proposed, not the clamped one: on a still
    /// (100 iterations) that reached a lower J than pairs of the clamped step and than an
    /// active-set variant (bound pixels' gradient and direction zeroed), and video frames
    /// stayed steadier (docs/temporal.md, "Optimising what is shown"). None: unbounded.
    pub fn with_box(mut self, pixel_box: Option<PixelBox>) -> Self {
        match &mut self {
            Optimizer::Lbfgs(o) => o.pixel_box = pixel_box,
            Optimizer::Adam(o) => o.pixel_box = pixel_box,
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

/// A curvature scale L-BFGS can start from: a finite γ > 0 (anything else: none, the probe).
pub(crate) fn usable_curvature_scale(scale: Option<f64>) -> Option<f64> {
    scale.filter(|s| s.is_finite() && *s > 0.0)
}

/// Limited-memory BFGS without line search, the variant neural-style runs (Torch's `optim.lbfgs`
/// with a fixed step): the direction is the two-loop recursion's −H·g over the last `history`
/// curvature pairs, the first step is scaled by min(1, 1/‖g‖₁) (or by a known γ, see
/// [`Optimizer::with_curvature_scale`]) and later steps by the learning rate (1 by default). A
/// non-descent direction resets the memory.
///
/// A step makes a few passes over `history` pairs of image-sized vectors, so it is written for
/// speed (at 640×360 the textbook version took 70 ms a step, 7% of an iteration): the vectors
/// are allocated once and recycled (the pair pushed out of the memory gives its buffers to the
/// next), each pass of the recursion also computes the dot product the next pass starts from,
/// dot products add up in [`LANES`] independent f64 accumulators over fixed blocks (so they
/// vectorise, and give the same sums whatever the thread count), long vectors are split over
/// the rayon threads, and the passes are compiled for the widest vector unit the CPU has. The
/// arithmetic is the textbook recursion's: every element sees the same f32 operations, and
/// only the order in which a dot product adds up its (exact, f64) products differs.
pub struct Lbfgs {
    learning_rate: f64,
    history: usize,
    /// Curvature pairs, oldest first.
    pairs: VecDeque<Pair>,
    /// Step taken last time and the gradient it started from.
    last: Option<(Vec<f32>, Vec<f32>)>,
    /// Scale of the initial inverse Hessian, (y·s)/(y·y) of the newest pair.
    h_diag: f64,
    /// Longest pixel move of a first step, at least (see [`Optimizer::with_gradient_resolution`]).
    min_first_step: f64,
    /// γ a first step is scaled by, when known (see [`Optimizer::with_curvature_scale`]).
    first_scale: Option<f64>,
    /// γ of the newest pair accepted.
    newest_scale: Option<f64>,
    /// The direction being built (q of the two-loop recursion).
    q: Vec<f32>,
    /// α of each pair in the recursion.
    alphas: Vec<f64>,
    /// Vectors of dropped pairs, reused before new ones are allocated.
    spare: Vec<Vec<f32>>,
    /// Where x must stay (see [`Optimizer::with_box`]).
    pixel_box: Option<PixelBox>,
}

/// One curvature pair: s = x_{k+1} − x_k, y = ∇J_{k+1} − ∇J_k and ρ = 1/(y·s).
struct Pair {
    s: Vec<f32>,
    y: Vec<f32>,
    rho: f64,
}

impl Lbfgs {
    pub fn new(learning_rate: f64, history: usize) -> Self {
        Self {
            learning_rate,
            history: history.max(1),
            pairs: VecDeque::new(),
            last: None,
            h_diag: 1.0,
            q: Vec::new(),
            alphas: Vec::new(),
            spare: Vec::new(),
            min_first_step: 0.0,
            first_scale: None,
            newest_scale: None,
            pixel_box: None,
        }
    }

    pub fn step(&mut self, x: &mut [f32], grad: &[f32]) {
        let n = grad.len();
        assert_eq!(x.len(), n, "x and its gradient differ in length");
        if let Some((s, mut y)) = self.last.take() {
            // y = g − g_prev, in g_prev's buffer, with y·s and y·y.
            let [ys, yy] = blocks(&mut y, |y, at| kernel::difference_dots(y, &grad[at..], &s[at..]));
            if ys > 1e-10 {
                if self.pairs.len() == self.history {
                    let old = self.pairs.pop_front().expect("history ≥ 1");
                    self.spare.extend([old.s, old.y]);
                }
                self.h_diag = ys / yy;
                self.newest_scale = Some(self.h_diag);
                self.pairs.push_back(Pair { s, y, rho: 1.0 / ys });
            } else {
                self.spare.extend([s, y]);
            }
        }
        let descent = self.two_loop(grad);
        if self.pairs.is_empty() || descent.is_nan() || descent >= 0.0 {
            // First step, or the memory no longer gives a descent direction: start afresh.
            for pair in self.pairs.drain(..) {
                self.spare.extend([pair.s, pair.y]);
            }
            self.h_diag = 1.0;
            self.q.resize(n, 0.0);
            self.q.iter_mut().zip(grad).for_each(|(q, g)| *q = -g);
        }
        let step_size = if self.pairs.is_empty() {
            let first_step = match self.first_scale {
                Some(scale) => scale * self.learning_rate,
                None => {
                    let [g_l1] = sum_blocks(n, |at, len| [kernel::abs_sum(&grad[at..at + len])]);
                    (1.0f64).min(1.0 / g_l1.max(f64::MIN_POSITIVE)) * self.learning_rate
                }
            };
            let g_max = grad.iter().fold(0f32, |m, g| m.max(g.abs())) as f64;
            if g_max > 0.0 { first_step.max(self.min_first_step / g_max) } else { first_step }
        } else {
            self.learning_rate
        };
        // s = step·direction, x += s; s and g kept for the next pair.
        let (mut s, mut g_prev) = (self.buffer(n), self.buffer(n));
        let (q, step, pixel_box) = (&self.q, step_size as f32, &self.pixel_box);
        let update = |((x, s), g_prev): ((&mut [f32], &mut [f32]), &mut [f32]), at: usize| {
            kernel::take_step(x, s, &q[at..], step);
            if let Some(pixel_box) = pixel_box {
                pixel_box.project(x, at);
            }
            g_prev.copy_from_slice(&grad[at..at + g_prev.len()]);
        };
        if n >= PARALLEL_FROM {
            x.par_chunks_mut(BLOCK)
                .zip(s.par_chunks_mut(BLOCK))
                .zip(g_prev.par_chunks_mut(BLOCK))
                .enumerate()
                .for_each(|(b, chunks)| update(chunks, b * BLOCK));
        } else {
            update(((x, &mut s), &mut g_prev), 0);
        }
        self.last = Some((s, g_prev));
    }

    /// A vector of length `n` (contents unspecified), a spare one when there is one.
    fn buffer(&mut self, n: usize) -> Vec<f32> {
        let mut v = self.spare.pop().unwrap_or_default();
        v.resize(n, 0.0);
        v
    }

    /// Puts −H·g into `self.q` by the two-loop recursion and returns g·(−H·g) (0 without pairs).
    fn two_loop(&mut self, grad: &[f32]) -> f64 {
        let m = self.pairs.len();
        if m == 0 {
            return 0.0;
        }
        self.q.resize(grad.len(), 0.0);
        self.alphas.resize(m, 0.0);
        let pairs = &self.pairs;
        // q = −g, with s_newest·q.
        let newest = &pairs[m - 1].s;
        let [mut d] = blocks(&mut self.q, |q, at| [kernel::negate_dot(q, &grad[at..], &newest[at..])]);
        // Newest to oldest: α_i = ρ_i s_i·q, q −= α_i y_i; after the oldest, q *= h_diag. Each
        // pass also gives the dot product the next starts from.
        let h = self.h_diag as f32;
        for i in (0..m).rev() {
            let a = pairs[i].rho * d;
            self.alphas[i] = a;
            let (c, y) = (a as f32, &pairs[i].y);
            [d] = if i > 0 {
                let next = &pairs[i - 1].s;
                blocks(&mut self.q, |q, at| [kernel::sub_dot(q, c, &y[at..], &next[at..])])
            } else {
                blocks(&mut self.q, |q, at| [kernel::sub_scale_dot(q, c, &y[at..], h)])
            };
        }
        // Oldest to newest: β_i = ρ_i y_i·q, q += (α_i − β_i) s_i; the last pass gives g·q.
        for i in 0..m {
            let b = pairs[i].rho * d;
            let (c, s) = ((self.alphas[i] - b) as f32, &pairs[i].s);
            let next: &[f32] = if i + 1 < m { &pairs[i + 1].y } else { grad };
            [d] = blocks(&mut self.q, |q, at| [kernel::add_dot(q, c, &s[at..], &next[at..])]);
        }
        d
    }
}

/// Elements per block of the vector passes: each block's dot products are summed on their own,
/// then the blocks' sums in order, so the result does not depend on how blocks are shared out.
const BLOCK: usize = 16 * 1024;
/// Vectors at least this long are split over the rayon threads (shorter ones are done sooner
/// on one thread than the threads are woken).
const PARALLEL_FROM: usize = 4 * BLOCK;
/// Independent f64 accumulators of a dot product: enough to fill a vector unit and hide the
/// latency of the additions.
const LANES: usize = 8;

/// Runs `f` on each block of `v` (with the block's offset) and adds up the sums it returns,
/// block by block in order.
fn blocks<const K: usize>(v: &mut [f32], f: impl Fn(&mut [f32], usize) -> [f64; K] + Sync + Send) -> [f64; K] {
    if v.len() >= PARALLEL_FROM {
        let sums: Vec<[f64; K]> = v.par_chunks_mut(BLOCK).enumerate().map(|(b, chunk)| f(chunk, b * BLOCK)).collect();
        sums.into_iter().fold([0.0; K], add)
    } else {
        v.chunks_mut(BLOCK).enumerate().map(|(b, chunk)| f(chunk, b * BLOCK)).fold([0.0; K], add)
    }
}

/// [`blocks`] over 0..n with no vector to write: `f(offset, length)` for each block.
fn sum_blocks<const K: usize>(n: usize, f: impl Fn(usize, usize) -> [f64; K] + Sync + Send) -> [f64; K] {
    let block = |b: usize| f(b * BLOCK, BLOCK.min(n - b * BLOCK));
    if n >= PARALLEL_FROM {
        let sums: Vec<[f64; K]> = (0..n.div_ceil(BLOCK)).into_par_iter().map(block).collect();
        sums.into_iter().fold([0.0; K], add)
    } else {
        (0..n.div_ceil(BLOCK)).map(block).fold([0.0; K], add)
    }
}

fn add<const K: usize>(mut a: [f64; K], b: [f64; K]) -> [f64; K] {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    a
}

/// The passes over one block. Each runs over its first argument's length (the others may be
/// longer) and is compiled for AVX-512 and AVX2 besides baseline x86-64 (which the crate
/// targets), the widest the CPU has chosen at run time. Dot products add up in [`LANES`]
/// accumulators, element i into lane i mod [`LANES`].
mod kernel {
    use super::LANES;

    /// Defines `pub fn $name` from a generic body, compiled three ways.
    macro_rules! widest_simd {
        ($($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block)*) => {$(
            $(#[$attr])*
            pub fn $name($($arg: $ty),*) $(-> $ret)? {
                #[inline(always)]
                fn generic($($arg: $ty),*) $(-> $ret)? $body
                #[cfg(target_arch = "x86_64")]
                {
                    /// The generic body compiled with AVX-512 enabled.
                    ///
                    /// # Safety
                    /// The CPU must have AVX-512 F, VL, BW and DQ.
                    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
                    unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                        generic($($arg),*)
                    }
                    /// The generic body compiled with AVX2 and FMA enabled.
                    ///
                    /// # Safety
                    /// The CPU must have AVX2 and FMA.
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                        generic($($arg),*)
                    }
                    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512dq")
                    {
                        // SAFETY: `avx512` is unsafe only for its target features, all four of
                        // which the CPU has (detected just above); the body is safe code.
                        return unsafe { avx512($($arg),*) };
                    }
                    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                        // SAFETY: as above, for AVX2 and FMA (both detected just above).
                        return unsafe { avx2($($arg),*) };
                    }
                }
                generic($($arg),*)
            }
        )*};
    }

    /// Fixed order of adding up the lanes.
    #[inline(always)]
    fn total(l: [f64; LANES]) -> f64 {
        ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
    }

    #[inline(always)]
    fn product(a: f32, b: f32) -> f64 {
        a as f64 * b as f64
    }

    widest_simd! {
        /// y = g − y (y holds the previous gradient); returns [y·s, y·y].
        fn difference_dots(y: &mut [f32], g: &[f32], s: &[f32]) -> [f64; 2] {
            let n = y.len();
            let (mut ys, mut yy) = ([0f64; LANES], [0f64; LANES]);
            let (yc, yr) = y.as_chunks_mut::<LANES>();
            let (gc, gr) = g[..n].as_chunks::<LANES>();
            let (sc, sr) = s[..n].as_chunks::<LANES>();
            for ((y, g), s) in yc.iter_mut().zip(gc).zip(sc) {
                for k in 0..LANES {
                    let d = g[k] - y[k];
                    y[k] = d;
                    ys[k] += product(d, s[k]);
                    yy[k] += product(d, d);
                }
            }
            for (k, ((y, g), s)) in yr.iter_mut().zip(gr).zip(sr).enumerate() {
                let d = g - *y;
                *y = d;
                ys[k] += product(d, *s);
                yy[k] += product(d, d);
            }
            [total(ys), total(yy)]
        }

        /// q = −g; returns s·q.
        fn negate_dot(q: &mut [f32], g: &[f32], s: &[f32]) -> f64 {
            let n = q.len();
            let mut acc = [0f64; LANES];
            let (qc, qr) = q.as_chunks_mut::<LANES>();
            let (gc, gr) = g[..n].as_chunks::<LANES>();
            let (sc, sr) = s[..n].as_chunks::<LANES>();
            for ((q, g), s) in qc.iter_mut().zip(gc).zip(sc) {
                for k in 0..LANES {
                    q[k] = -g[k];
                    acc[k] += product(s[k], q[k]);
                }
            }
            for (k, ((q, g), s)) in qr.iter_mut().zip(gr).zip(sr).enumerate() {
                *q = -g;
                acc[k] += product(*s, *q);
            }
            total(acc)
        }

        /// q −= c·y; returns next·q.
        fn sub_dot(q: &mut [f32], c: f32, y: &[f32], next: &[f32]) -> f64 {
            let n = q.len();
            let mut acc = [0f64; LANES];
            let (qc, qr) = q.as_chunks_mut::<LANES>();
            let (yc, yr) = y[..n].as_chunks::<LANES>();
            let (nc, nr) = next[..n].as_chunks::<LANES>();
            for ((q, y), next) in qc.iter_mut().zip(yc).zip(nc) {
                for k in 0..LANES {
                    q[k] -= c * y[k];
                    acc[k] += product(next[k], q[k]);
                }
            }
            for (k, ((q, y), next)) in qr.iter_mut().zip(yr).zip(nr).enumerate() {
                *q -= c * y;
                acc[k] += product(*next, *q);
            }
            total(acc)
        }

        /// q −= c·y, then q *= h; returns y·q.
        fn sub_scale_dot(q: &mut [f32], c: f32, y: &[f32], h: f32) -> f64 {
            let n = q.len();
            let mut acc = [0f64; LANES];
            let (qc, qr) = q.as_chunks_mut::<LANES>();
            let (yc, yr) = y[..n].as_chunks::<LANES>();
            for (q, y) in qc.iter_mut().zip(yc) {
                for k in 0..LANES {
                    q[k] -= c * y[k];
                    q[k] *= h;
                    acc[k] += product(y[k], q[k]);
                }
            }
            for (k, (q, y)) in qr.iter_mut().zip(yr).enumerate() {
                *q -= c * y;
                *q *= h;
                acc[k] += product(*y, *q);
            }
            total(acc)
        }

        /// q += c·s; returns next·q.
        fn add_dot(q: &mut [f32], c: f32, s: &[f32], next: &[f32]) -> f64 {
            let n = q.len();
            let mut acc = [0f64; LANES];
            let (qc, qr) = q.as_chunks_mut::<LANES>();
            let (sc, sr) = s[..n].as_chunks::<LANES>();
            let (nc, nr) = next[..n].as_chunks::<LANES>();
            for ((q, s), next) in qc.iter_mut().zip(sc).zip(nc) {
                for k in 0..LANES {
                    q[k] += c * s[k];
                    acc[k] += product(next[k], q[k]);
                }
            }
            for (k, ((q, s), next)) in qr.iter_mut().zip(sr).zip(nr).enumerate() {
                *q += c * s;
                acc[k] += product(*next, *q);
            }
            total(acc)
        }

        /// Σ|g|.
        fn abs_sum(g: &[f32]) -> f64 {
            let mut acc = [0f64; LANES];
            let (gc, gr) = g.as_chunks::<LANES>();
            for g in gc {
                for k in 0..LANES {
                    acc[k] += g[k].abs() as f64;
                }
            }
            for (k, g) in gr.iter().enumerate() {
                acc[k] += g.abs() as f64;
            }
            total(acc)
        }

        /// s = step·q, x += s.
        fn take_step(x: &mut [f32], s: &mut [f32], q: &[f32], step: f32) {
            let n = x.len();
            for ((x, s), q) in x.iter_mut().zip(&mut s[..n]).zip(&q[..n]) {
                *s = q * step;
                *x += *s;
            }
        }
    }
}

/// Adam (Kingma & Ba) with β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
pub struct Adam {
    learning_rate: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
    /// Where x must stay (see [`Optimizer::with_box`]).
    pixel_box: Option<PixelBox>,
}

impl Adam {
    pub fn new(learning_rate: f64) -> Self {
        Self { learning_rate, m: Vec::new(), v: Vec::new(), t: 0, pixel_box: None }
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
        if let Some(pixel_box) = &self.pixel_box {
            pixel_box.project(x, 0);
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

    /// A box of three channel planes whose length is no multiple of the blocks the steps are
    /// split into, and a separable quadratic whose minimum lies partly outside it: each
    /// optimiser keeps x in the box at every step, on one thread and on several. Adam ends at
    /// the constrained minimum (the box's nearest point to the minimum). L-BFGS, whose pairs
    /// keep the proposed steps, is not guaranteed to: on this problem it leaves a third of the
    /// coordinates held at a bound and 5% of J's excess over the constrained minimum; it must
    /// close at least 90% of it (on images it reaches a lower J than the convergent variants,
    /// see [`Optimizer::with_box`]).
    #[test]
    fn optimisers_keep_x_in_the_box_and_approach_the_constrained_minimum() {
        let plane = 30_001;
        let n = 3 * plane;
        let pixel_box = PixelBox { plane, lower: vec![-1.0, 0.0, -5.0], upper: vec![2.0, 10.0, -4.0] };
        let bounds = |i: usize| (pixel_box.lower[i / plane], pixel_box.upper[i / plane]);
        let a: Vec<f32> = (0..n).map(|i| [1.0, 10.0, 100.0, 0.5][i % 4]).collect();
        let c: Vec<f32> = (0..n).map(|i| [3.0, -2.0, 0.5, 7.0, -4.5][i % 5]).collect();
        let f = |x: &[f32]| -> f64 { x.iter().zip(&a).zip(&c).map(|((x, a), c)| (a * (x - c) * (x - c)) as f64).sum() };
        let gradient = |x: &[f32]| -> Vec<f32> { x.iter().zip(&a).zip(&c).map(|((x, a), c)| 2.0 * a * (x - c)).collect() };
        let best: Vec<f32> = (0..n).map(|i| c[i].clamp(bounds(i).0, bounds(i).1)).collect();
        for (kind, lr, steps) in [(OptimizerKind::Lbfgs, 1.0, 80), (OptimizerKind::Adam, 0.1, 600)] {
            let mut ends = Vec::new();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (start, x) = pool.install(|| {
                    let mut optimizer = Optimizer::new(kind, lr, 5).with_box(Some(pixel_box.clone()));
                    let mut x = vec![20f32; n];
                    pixel_box.project(&mut x, 0);
                    let start = x.clone();
                    for step in 0..steps {
                        let g = gradient(&x);
                        optimizer.step(&mut x, &g);
                        let outside = (0..n).find(|&i| !(bounds(i).0..=bounds(i).1).contains(&x[i]));
                        assert_eq!(outside, None, "{kind}: x left the box at step {step}");
                    }
                    (start, x)
                });
                let (excess, start_excess) = (f(&x) - f(&best), f(&start) - f(&best));
                match kind {
                    OptimizerKind::Lbfgs => assert!(excess <= 0.1 * start_excess, "{kind}: J's excess {excess} of {start_excess}"),
                    OptimizerKind::Adam => {
                        for (i, (x, e)) in x.iter().zip(&best).enumerate() {
                            assert!((x - e).abs() < 1e-2, "{kind} on {threads} threads: x_{i} = {x}, expected {e}");
                        }
                    }
                }
                ends.push(x);
            }
            assert_eq!(ends[0], ends[1], "{kind}: one thread and two disagree");
        }
    }

    /// Where the box does not bind, it changes nothing: the same steps as without it, bit for bit.
    #[test]
    fn a_box_that_does_not_bind_changes_no_step() {
        let pixel_box = PixelBox { plane: 2, lower: vec![-100.0, -50.0], upper: vec![100.0, 50.0] };
        for kind in [OptimizerKind::Lbfgs, OptimizerKind::Adam] {
            let (mut free, mut boxed) = (Optimizer::new(kind, 1.0, 5), Optimizer::new(kind, 1.0, 5).with_box(Some(pixel_box.clone())));
            let (mut x_free, mut x_boxed) = (vec![0f32; 4], vec![0f32; 4]);
            for _ in 0..30 {
                let (g_free, g_boxed) = (quadratic(&x_free).1, quadratic(&x_boxed).1);
                free.step(&mut x_free, &g_free);
                boxed.step(&mut x_boxed, &g_boxed);
                assert_eq!(x_free, x_boxed, "{kind}");
            }
        }
    }

    /// The textbook L-BFGS step that [`Lbfgs`] computes faster: fresh vectors each step, one
    /// pass per dot product and per update, dot products summed in order.
    struct Textbook {
        history: usize,
        pairs: VecDeque<(Vec<f32>, Vec<f32>, f64)>,
        last: Option<(Vec<f32>, Vec<f32>)>,
        h_diag: f64,
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    impl Textbook {
        fn step(&mut self, x: &mut [f32], grad: &[f32]) {
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
            let mut q: Vec<f32> = grad.iter().map(|g| -g).collect();
            let mut alphas = vec![0f64; self.pairs.len()];
            for (i, (s, y, rho)) in self.pairs.iter().enumerate().rev() {
                let a = rho * dot(s, &q);
                alphas[i] = a;
                q.iter_mut().zip(y).for_each(|(q, y)| *q -= (a as f32) * y);
            }
            q.iter_mut().for_each(|q| *q *= self.h_diag as f32);
            for (i, (s, y, rho)) in self.pairs.iter().enumerate() {
                let c = (alphas[i] - rho * dot(y, &q)) as f32;
                q.iter_mut().zip(s).for_each(|(q, s)| *q += c * s);
            }
            // Not a descent direction (NaN included).
            if self.pairs.is_empty() || dot(grad, &q).partial_cmp(&0.0) != Some(std::cmp::Ordering::Less) {
                self.pairs.clear();
                self.h_diag = 1.0;
                q = grad.iter().map(|g| -g).collect();
            }
            let step_size = if self.pairs.is_empty() {
                let g_l1: f64 = grad.iter().map(|g| g.abs() as f64).sum();
                (1.0f64).min(1.0 / g_l1.max(f64::MIN_POSITIVE))
            } else {
                1.0
            };
            let s: Vec<f32> = q.iter().map(|d| d * step_size as f32).collect();
            x.iter_mut().zip(&s).for_each(|(x, s)| *x += s);
            self.last = Some((s, grad.to_vec()));
        }
    }

    /// A separable non-quadratic f(x) = Σ a_i (x_i − c_i)² + b_i (x_i − c_i)⁴ of n variables:
    /// its gradient, so that L-BFGS's curvature pairs change from step to step.
    fn quartic_gradient(x: &[f32]) -> Vec<f32> {
        (0..x.len())
            .map(|i| {
                let (a, b, c) = (0.5 + (i * 7919 % 997) as f32 / 100.0, 0.01 * (i % 7) as f32, (i % 255) as f32 - 120.0);
                let d = x[i] - c;
                2.0 * a * d + 4.0 * b * d * d * d * 1e-3
            })
            .collect()
    }

    #[test]
    fn lbfgs_takes_the_textbook_steps_whatever_the_length_and_thread_count() {
        // Lengths: under one block and not a multiple of the lanes; over the parallel threshold
        // with a partial last block. History 4 over 14 steps: pairs are pushed out and recycled.
        for n in [1003, PARALLEL_FROM + 3 * BLOCK / 2 + 5] {
            let mut textbook = Textbook { history: 4, pairs: VecDeque::new(), last: None, h_diag: 1.0 };
            let mut x_ref = vec![0f32; n];
            let mut runs = Vec::new();
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut lbfgs = Lbfgs::new(1.0, 4);
                let mut x = vec![0f32; n];
                pool.install(|| {
                    for _ in 0..14 {
                        let g = quartic_gradient(&x);
                        lbfgs.step(&mut x, &g);
                    }
                });
                runs.push(x);
            }
            for _ in 0..14 {
                let g = quartic_gradient(&x_ref);
                textbook.step(&mut x_ref, &g);
            }
            assert_eq!(runs[0], runs[1], "n = {n}: the thread count changed the result");
            let scale = x_ref.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = runs[0].iter().zip(&x_ref).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-5 * scale, "n = {n}: differs from the textbook step by {worst} (scale {scale})");
        }
    }

    #[test]
    fn lbfgs_keeps_no_pair_without_positive_curvature() {
        // A constant gradient: y = 0, so y·s = 0 and no pair is kept; every step is then a
        // first step, −g·min(1, 1/‖g‖₁), and the rejected vectors are recycled.
        let mut lbfgs = Lbfgs::new(1.0, 3);
        let mut x = vec![0f32; 5];
        for k in 1..=4 {
            lbfgs.step(&mut x, &[2.0; 5]);
            assert!(lbfgs.pairs.is_empty());
            assert!(x.iter().all(|v| (v + 0.2 * k as f32).abs() < 1e-6), "step {k}: {x:?}");
        }
        assert!(lbfgs.spare.len() <= 2, "{} spare vectors", lbfgs.spare.len());
    }

    #[test]
    fn lbfgs_with_a_known_curvature_starts_with_a_step_of_that_scale() {
        let g = [2.0f32, -1.0, 0.5];
        let mut optimizer = Optimizer::new(OptimizerKind::Lbfgs, 1.0, 3).with_curvature_scale(Some(0.25));
        let mut x = vec![1f32; 3];
        optimizer.step(&mut x, &g);
        assert_eq!(x, [0.5, 1.25, 0.875], "x − γ·g");
        assert_eq!(optimizer.curvature_scale(), Some(0.25), "no pair yet: the γ it started with");
        // On f = Σ c_i x_i² / 2 (gradient c·x) the next pair's γ = y·s / y·y.
        let c = [4.0f32, 4.0, 4.0];
        let mut optimizer = Optimizer::new(OptimizerKind::Lbfgs, 1.0, 3).with_curvature_scale(Some(0.1));
        let mut x = vec![1f32, 2.0, 3.0];
        for _ in 0..2 {
            let g: Vec<f32> = x.iter().zip(&c).map(|(x, c)| x * c).collect();
            optimizer.step(&mut x, &g);
        }
        let scale = optimizer.curvature_scale().unwrap();
        assert!((scale - 0.25).abs() < 1e-6, "γ = 1/c on a quadratic: {scale}");
        // Not a positive number: Torch's first step, min(1, 1/‖g‖₁) = 1/3.5.
        for bad in [Some(0.0), Some(-1.0), Some(f64::INFINITY), None] {
            let mut optimizer = Optimizer::new(OptimizerKind::Lbfgs, 1.0, 3).with_curvature_scale(bad);
            let mut x = vec![0f32; 3];
            optimizer.step(&mut x, &g);
            assert!(x.iter().zip(&g).all(|(x, g)| (x + g / 3.5).abs() < 1e-6), "{bad:?}: {x:?}");
        }
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
