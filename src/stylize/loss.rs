//! The costs of Gatys et al. neural style transfer, written as the formulas read.
//!
//! Notation: for a layer l, a^[l] are its activations, of shape n_H × n_W × n_C (stored here
//! as a tensor `(1, n_C, n_H, n_W)`); C is the content image, S the style image, G the image
//! being generated. Sums of squares are accumulated in f64 so that the reported costs do not
//! depend on summation order; the gradient flows back to f32.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// Style (Gram) matrix of one layer's activations `(1, n_C, n_H, n_W)`:
///
/// G^[l]_{kk'} = Σ_i Σ_j a^[l]_{ijk} a^[l]_{ijk'}   (unnormalised cross-covariance, n_C × n_C).
pub fn gram_matrix(a: &Tensor) -> Result<Tensor> {
    let (n, n_c, n_h, n_w) = a.dims4()?;
    if n != 1 {
        return Err(Error::Settings(format!("gram_matrix expects one image, got a batch of {n}")));
    }
    if a.device().is_cpu() {
        return Ok(a.contiguous()?.apply_op1(crate::net::cpu::layers::Gram)?);
    }
    let a = a.reshape((n_c, n_h * n_w))?;
    Ok(a.matmul(&a.t()?)?)
}

/// Σ of the squared entries, as an f64 scalar tensor.
fn sum_of_squares(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F64)?.sqr()?.sum_all()?)
}

/// Layer style cost, with `gram_style` = G^[l](S) already brought to G's size:
///
/// J^[l]_style(S,G) = 1/(2 n_H n_W n_C)^2 · Σ_k Σ_k' (G^[l](S)_{kk'} − G^[l](G)_{kk'})^2
///
/// where n_H, n_W, n_C are those of the generated image's activations `a_generated`.
pub fn layer_style_cost(gram_style: &Tensor, a_generated: &Tensor) -> Result<Tensor> {
    let (_, n_c, n_h, n_w) = a_generated.dims4()?;
    let gram_generated = gram_matrix(a_generated)?;
    let normaliser = (2 * n_h * n_w * n_c) as f64;
    Ok((sum_of_squares(&(gram_style - gram_generated)?)? / (normaliser * normaliser))?)
}

/// A matte m (1: paint, 0: keep, between: partly; Gatys et al. 2017's spatial control) as one
/// style layer sees it: m^[l], the matte averaged over the pixels each position pools (2×2
/// blocks, floored, as the network pools), and the area of the region there,
/// A^[l] = Σ_i Σ_j (m^[l]_ij)², which takes n_H n_W's place in J^[l]_style.
#[derive(Debug, Clone)]
pub struct LayerMatte {
    /// m^[l], `n_H × n_W` row by row.
    pub weights: Vec<f32>,
    /// The same as a `(1, 1, n_H, n_W)` tensor, for the device.
    pub tensor: Tensor,
    /// A^[l] = Σ_ij (m^[l]_ij)².
    pub area: f64,
}

/// A matte at every pooling level of the network: level b − 1 is what block b's layers see.
#[derive(Debug, Clone)]
pub struct Matte {
    /// (n_H, n_W) and the matte there, finest first.
    levels: Vec<((usize, usize), LayerMatte)>,
}

impl Matte {
    /// The matte `(1, 1, n_H, n_W)` with values in 0..1 at the image's size, averaged 2×2 (floored)
    /// down to one position.
    pub fn new(matte: &Tensor) -> Result<Self> {
        let (_, _, mut h, mut w) = matte.dims4()?;
        let device = matte.device();
        let mut weights = matte.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let mut levels = Vec::new();
        loop {
            let area = weights.iter().map(|&m| (m as f64) * (m as f64)).sum();
            let tensor = Tensor::from_slice(&weights, (1, 1, h, w), device)?;
            levels.push(((h, w), LayerMatte { weights: weights.clone(), tensor, area }));
            let (oh, ow) = (h / 2, w / 2);
            if oh == 0 || ow == 0 {
                break;
            }
            let at = |i: usize, j: usize| weights[i * w + j];
            weights = (0..oh * ow)
                .map(|p| {
                    let (i, j) = (2 * (p / ow), 2 * (p % ow));
                    (at(i, j) + at(i, j + 1) + at(i + 1, j) + at(i + 1, j + 1)) / 4.0
                })
                .collect();
            (h, w) = (oh, ow);
        }
        Ok(Self { levels })
    }

    /// The other side of the matte, 1 − m, at every level (pooling is linear, so it is the
    /// complement of each level).
    pub fn complement(&self) -> Result<Self> {
        let levels = self
            .levels
            .iter()
            .map(|(size, m)| {
                let weights: Vec<f32> = m.weights.iter().map(|w| 1.0 - w).collect();
                let area = weights.iter().map(|&w| (w as f64) * (w as f64)).sum();
                let tensor = Tensor::from_slice(&weights, m.tensor.shape(), m.tensor.device())?;
                Ok((*size, LayerMatte { weights, tensor, area }))
            })
            .collect::<Result<_>>()?;
        Ok(Self { levels })
    }

    /// m^[l] for a layer whose activations are `n_H × n_W`.
    pub fn at(&self, n_h: usize, n_w: usize) -> Result<&LayerMatte> {
        self.levels.iter().find(|(size, _)| *size == (n_h, n_w)).map(|(_, m)| m).ok_or_else(|| {
            Error::Settings(format!("the matte has no level of {n_w}×{n_h} positions (it is {:?})", self.levels[0].0))
        })
    }

    /// The matte at the image's own size.
    pub fn finest(&self) -> &LayerMatte {
        &self.levels[0].1
    }
}

/// J^[l]_style over a matted region (Gatys et al. 2017): the Gram matrix of the matted
/// activations, G^[l]_{kk'}(G; m) = Σ_i Σ_j (m^[l]_ij a^[l]_{ijk})(m^[l]_ij a^[l]_{ijk'}), against
/// G^[l](S) brought to the region's area, with A^[l] in n_H n_W's place:
///
/// J^[l]_style(S,G; m) = 1/(2 A^[l] n_C)^2 · Σ_k Σ_k' (G^[l](S)_{kk'} · A^[l]/P_S − G^[l]_{kk'}(G; m))^2
///
/// so a hard matte's region is judged as an image of that size would be. An empty region costs 0.
pub fn matted_layer_style_cost(target: &StyleTarget, a_generated: &Tensor, matte: &LayerMatte) -> Result<Tensor> {
    let (_, n_c, _, _) = a_generated.dims4()?;
    if matte.area <= 0.0 {
        return Ok(Tensor::zeros((), DType::F64, a_generated.device())?);
    }
    let gram_generated = gram_matrix(&a_generated.broadcast_mul(&matte.tensor)?)?;
    let normaliser = 2.0 * matte.area * n_c as f64;
    Ok((sum_of_squares(&(target.gram_for_area(matte.area)? - gram_generated)?)? / (normaliser * normaliser))?)
}

/// Content cost at one layer:
///
/// J_content(C,G) = 1/(4 n_H n_W n_C) · Σ_{i,j,k} (a^[l](C)_{ijk} − a^[l](G)_{ijk})^2
pub fn content_cost(a_content: &Tensor, a_generated: &Tensor) -> Result<Tensor> {
    let (_, n_c, n_h, n_w) = a_generated.dims4()?;
    Ok((sum_of_squares(&(a_content - a_generated)?)? / (4 * n_h * n_w * n_c) as f64)?)
}

/// Total-variation cost of an image `(1, n_C, n_H, n_W)` (pixel units, 0..255 scale):
///
/// J_tv(G) = 1/(n_H n_W n_C) · Σ_{i,j,k} [(G_{i+1,j,k} − G_{i,j,k})^2 + (G_{i,j+1,k} − G_{i,j,k})^2]
///
/// (differences that would leave the image are left out). It favours smooth images and
/// suppresses the high-frequency noise the style cost can introduce.
pub fn tv_cost(image: &Tensor) -> Result<Tensor> {
    let (_, n_c, n_h, n_w) = image.dims4()?;
    let mut total = Tensor::zeros((), DType::F64, image.device())?;
    if n_h > 1 {
        let dy = (image.narrow(2, 1, n_h - 1)? - image.narrow(2, 0, n_h - 1)?)?;
        total = (total + sum_of_squares(&dy)?)?;
    }
    if n_w > 1 {
        let dx = (image.narrow(3, 1, n_w - 1)? - image.narrow(3, 0, n_w - 1)?)?;
        total = (total + sum_of_squares(&dx)?)?;
    }
    Ok((total / (n_h * n_w * n_c) as f64)?)
}

/// The style target of one layer: the (blend of the) style images' Gram matrices, kept with
/// the number of positions n_H n_W they were summed over.
///
/// When the style and generated images differ in size, the style Gram is rescaled by
/// (n_H n_W of G)/(n_H n_W of S) before it enters J^[l]_style: Gram entries grow with the
/// number of positions they sum over, so without this a small style image would ask for
/// faint features. For equal sizes the factor is 1 and the cost is exactly the formula above.
#[derive(Debug, Clone)]
pub struct StyleTarget {
    /// Σ_s w_s (P / P_s) G^[l](S_s): the blend expressed at P positions.
    gram: Tensor,
    /// The same blend on the host, for the CPU kernels' own gradient.
    gram_host: Vec<f32>,
    /// P = (n_H n_W) of the first style image's activations.
    positions: usize,
}

impl StyleTarget {
    /// Blends the Gram matrices of several style images' activations at one layer with
    /// weights `w_s` (normalised to sum 1), each brought to a common number of positions.
    pub fn blend(style_activations: &[(Tensor, f64)]) -> Result<Self> {
        let total: f64 = style_activations.iter().map(|(_, w)| w).sum();
        let Some((first, _)) = style_activations.first() else {
            return Err(Error::Settings("at least one style image is needed".into()));
        };
        if total.is_nan() || total <= 0.0 {
            return Err(Error::Settings("style blend weights must be positive".into()));
        }
        let (_, _, n_h, n_w) = first.dims4()?;
        let positions = n_h * n_w;
        let mut blended: Option<Tensor> = None;
        for (a, w) in style_activations {
            let (_, _, n_h, n_w) = a.dims4()?;
            let factor = w / total * positions as f64 / (n_h * n_w) as f64;
            let gram = gram_matrix(a)?;
            let term = if factor == 1.0 { gram } else { (gram * factor)? };
            blended = Some(match blended {
                None => term,
                Some(b) => (b + term)?,
            });
        }
        let gram = blended.expect("non-empty").detach();
        let gram_host = gram.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { gram, gram_host, positions })
    }

    /// Blends style targets of one layer (each one style image's, [`Self::blend`] of one) with
    /// weights `w_s` ≥ 0 (normalised to sum 1, not all 0), as [`Self::blend`] blends their
    /// images: Σ_s w_s (P / P_s) G^[l](S_s), P the first target's positions.
    pub fn combine(targets: &[(&StyleTarget, f64)]) -> Result<Self> {
        let total: f64 = targets.iter().map(|(_, w)| w).sum();
        let Some((first, _)) = targets.first() else {
            return Err(Error::Settings("at least one style image is needed".into()));
        };
        if !(total > 0.0 && total.is_finite()) || targets.iter().any(|(_, w)| *w < 0.0) {
            return Err(Error::Settings("style blend weights must be ≥ 0 and not all 0".into()));
        }
        let positions = first.positions;
        let mut blended: Option<Tensor> = None;
        for (target, w) in targets.iter().filter(|(_, w)| *w > 0.0) {
            let term = (&target.gram * (w / total * positions as f64 / target.positions as f64))?;
            blended = Some(match blended {
                None => term,
                Some(b) => (b + term)?,
            });
        }
        let gram = blended.expect("a weight is positive");
        let gram_host = gram.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { gram, gram_host, positions })
    }

    /// G^[l](S) brought to the size of the generated image's activations `a_generated`:
    /// scaled by (n_H n_W of G)/(n_H n_W of S), exactly G^[l](S) when the sizes agree.
    pub fn gram_for(&self, a_generated: &Tensor) -> Result<Tensor> {
        let (_, _, n_h, n_w) = a_generated.dims4()?;
        self.gram_for_area((n_h * n_w) as f64)
    }

    /// G^[l](S) brought to `area` positions (n_H n_W, or a matte's A^[l]).
    pub fn gram_for_area(&self, area: f64) -> Result<Tensor> {
        if area == self.positions as f64 {
            return Ok(self.gram.clone());
        }
        Ok((&self.gram * (area / self.positions as f64))?)
    }

    /// [`Self::gram_for_area`] on the host: the blend and the factor it is scaled by for `area`
    /// positions at this layer (n_H n_W, or a matte's A^[l]).
    pub fn host_gram_for(&self, area: f64) -> (&[f32], f64) {
        (&self.gram_host, area / self.positions as f64)
    }
}

/// Temporal cost of Ruder et al. (2016) against the previous stylized frame warped into place,
/// ω(x_{t−1}), weighted per pixel by the reliability c (`(1, 1, n_H, n_W)`, broadcast over
/// the channels) — pixel units, 0..255 scale, like J_tv:
///
/// J_temporal(x) = 1/D · Σ_k c_k (x_k − ω(x_{t−1})_k)^2,   D = n_H n_W n_C of the image.
pub fn temporal_cost(image: &Tensor, warped_previous: &Tensor, reliability: &Tensor) -> Result<Tensor> {
    let (_, n_c, n_h, n_w) = image.dims4()?;
    let difference = (image - warped_previous)?.to_dtype(DType::F64)?;
    let weighted = difference.sqr()?.broadcast_mul(&reliability.to_dtype(DType::F64)?)?;
    Ok((weighted.sum_all()? / (n_h * n_w * n_c) as f64)?)
}

/// J^[l]_style = 1/(2 n_H n_W n_C)² Σ_k Σ_k' (G^[l](S)_{kk'} − G^[l](G)_{kk'})² from the two Gram
/// matrices on the host (G(S) scaled by `style_scale`, see [`StyleTarget::host_gram_for`]), with
/// `weight` · (∂J/∂G + ∂J/∂Gᵀ) = `weight` · 4 (G(G) − G(S)) / (2 n_H n_W n_C)²: the matrix S whose
/// product S · a^[l] is the gradient with respect to the activations
/// ([`crate::net::cpu::layers::Gram::input_gradient`]). `area` is n_H n_W, or a matte's A^[l]
/// ([`matted_layer_style_cost`]; G(G) is then the matted activations' Gram matrix).
pub fn layer_style_cost_and_gradient(
    gram_generated: &[f32],
    gram_style: &[f32],
    style_scale: f64,
    (n_c, area): (usize, f64),
    weight: f64,
) -> (f64, Vec<f32>) {
    if area <= 0.0 {
        return (0.0, vec![0f32; gram_generated.len()]);
    }
    let normaliser = 2.0 * area * n_c as f64;
    let n2 = normaliser * normaliser;
    let scale = style_scale as f32;
    let differences: Vec<f32> = gram_generated.iter().zip(gram_style).map(|(&g, &s)| g - scale * s).collect();
    let sum_sq: f64 = differences.iter().map(|&d| (d as f64) * (d as f64)).sum();
    let factor = (weight * 4.0 / n2) as f32;
    (sum_sq / n2, differences.into_iter().map(|d| factor * d).collect())
}

/// J_content = 1/(4 n_H n_W n_C) Σ (a^[l](C) − a^[l](G))² on the host, with `weight` ·
/// ∂J/∂a^[l](G) = `weight` · (a^[l](G) − a^[l](C)) / (2 n_H n_W n_C).
pub fn content_cost_and_gradient(a_content: &[f32], a_generated: &[f32], weight: f64) -> (f64, Vec<f32>) {
    let n = a_generated.len() as f64;
    let sum_sq: f64 = a_generated.iter().zip(a_content).map(|(&g, &c)| ((g - c) as f64).powi(2)).sum();
    let factor = (weight / (2.0 * n)) as f32;
    (sum_sq / (4.0 * n), a_generated.iter().zip(a_content).map(|(&g, &c)| factor * (g - c)).collect())
}

/// [`tv_cost`] on the host for an image `[n_c][n_h][n_w]`, with `weight` · ∂J_tv/∂G: each
/// difference d = G_{i+1} − G_i contributes 2d/(n_H n_W n_C) to G_{i+1} and −2d/(n_H n_W n_C) to G_i.
pub fn tv_cost_and_gradient(image: &[f32], (n_c, n_h, n_w): (usize, usize, usize), weight: f64) -> (f64, Vec<f32>) {
    let d = (n_c * n_h * n_w) as f64;
    let factor = (2.0 * weight / d) as f32;
    let mut gradient = vec![0f32; image.len()];
    let mut sum_sq = 0f64;
    for (plane, grad) in image.chunks_exact(n_h * n_w).zip(gradient.chunks_exact_mut(n_h * n_w)) {
        for i in 0..n_h {
            for j in 0..n_w {
                let here = plane[i * n_w + j];
                if i + 1 < n_h {
                    let dy = plane[(i + 1) * n_w + j] - here;
                    sum_sq += (dy as f64) * (dy as f64);
                    grad[(i + 1) * n_w + j] += factor * dy;
                    grad[i * n_w + j] -= factor * dy;
                }
                if j + 1 < n_w {
                    let dx = plane[i * n_w + j + 1] - here;
                    sum_sq += (dx as f64) * (dx as f64);
                    grad[i * n_w + j + 1] += factor * dx;
                    grad[i * n_w + j] -= factor * dx;
                }
            }
        }
    }
    (sum_sq / d, gradient)
}

/// [`temporal_cost`] on the host (`reliability` `[n_H][n_W]`, shared by the channels), adding
/// `weight` · ∂J_temporal/∂x = `weight` · 2 c_k (x_k − ω_k)/D into `gradient`.
pub fn temporal_cost_and_gradient(
    image: &[f32],
    warped_previous: &[f32],
    reliability: &[f32],
    weight: f64,
    gradient: &mut [f32],
) -> f64 {
    let d = image.len() as f64;
    let factor = (2.0 * weight / d) as f32;
    let mut sum = 0f64;
    for ((x, w), g) in image.chunks_exact(reliability.len()).zip(warped_previous.chunks_exact(reliability.len())).zip(gradient.chunks_exact_mut(reliability.len())) {
        for (((&x, &w), &c), g) in x.iter().zip(w).zip(reliability).zip(g.iter_mut()) {
            let diff = x - w;
            sum += c as f64 * (diff as f64) * (diff as f64);
            *g += factor * c * diff;
        }
    }
    sum / d
}

// The same costs with their gradients as tensors on the device (the GPU path, and
// `cpu-reference`): each returns J as a 0-d f64 tensor, not read, and `weight` · ∂J/∂(its input)
// as an f32 tensor of the input's shape.

/// [`layer_style_cost`] and `weight` · ∂J^[l]_style/∂a^[l] = `weight` · 4 (G^[l](G) − G^[l](S)) a^[l] / (2 n_H n_W n_C)²,
/// G^[l](S) being `target`'s blend brought to G's size ([`StyleTarget::gram_for`]). With a matte,
/// [`matted_layer_style_cost`] and its gradient m^[l] ⊙ (S · (m^[l] ⊙ a^[l])), S as above with
/// A^[l] in n_H n_W's place.
pub fn layer_style_cost_and_gradient_on_device(
    target: &StyleTarget,
    a_generated: &Tensor,
    matte: Option<&LayerMatte>,
    weight: f64,
) -> Result<(Tensor, Tensor)> {
    let (n, n_c, n_h, n_w) = a_generated.dims4()?;
    let (a, area) = match matte {
        None => (a_generated.clone(), (n_h * n_w) as f64),
        Some(m) if m.area <= 0.0 => return Ok((Tensor::zeros((), DType::F64, a_generated.device())?, a_generated.zeros_like()?)),
        Some(m) => (a_generated.broadcast_mul(&m.tensor)?, m.area),
    };
    let a = a.reshape((n_c, n_h * n_w))?;
    let difference = (a.matmul(&a.t()?)? - target.gram_for_area(area)?)?;
    let normaliser = 2.0 * area * n_c as f64;
    let n2 = normaliser * normaliser;
    let j = (sum_of_squares(&difference)? / n2)?;
    let gradient = (difference.matmul(&a)? * (weight * 4.0 / n2))?.reshape((n, n_c, n_h, n_w))?;
    let gradient = match matte {
        Some(m) => gradient.broadcast_mul(&m.tensor)?,
        None => gradient,
    };
    Ok((j, gradient))
}

/// [`content_cost`] and `weight` · ∂J_content/∂a^[l](G) = `weight` · (a^[l](G) − a^[l](C)) / (2 n_H n_W n_C).
pub fn content_cost_and_gradient_on_device(a_content: &Tensor, a_generated: &Tensor, weight: f64) -> Result<(Tensor, Tensor)> {
    let n = a_generated.elem_count() as f64;
    let difference = (a_generated - a_content)?;
    let j = (sum_of_squares(&difference)? / (4.0 * n))?;
    Ok((j, (difference * (weight / (2.0 * n)))?))
}

/// [`tv_cost`] and `weight` · ∂J_tv/∂G: a difference d = G_{i+1} − G_i adds 2d/(n_H n_W n_C) at
/// G_{i+1} and takes it at G_i. The differences are taken once for both.
pub fn tv_cost_and_gradient_on_device(image: &Tensor, weight: f64) -> Result<(Tensor, Tensor)> {
    let (_, n_c, n_h, n_w) = image.dims4()?;
    let d = (n_h * n_w * n_c) as f64;
    let mut sum = Tensor::zeros((), DType::F64, image.device())?;
    let mut gradient = image.zeros_like()?;
    for (axis, len) in [(2, n_h), (3, n_w)] {
        if len > 1 {
            let difference = (image.narrow(axis, 1, len - 1)? - image.narrow(axis, 0, len - 1)?)?;
            sum = (sum + sum_of_squares(&difference)?)?;
            // Each difference pushes up the later pixel and down the earlier one.
            gradient = ((gradient + difference.pad_with_zeros(axis, 1, 0)?)? - difference.pad_with_zeros(axis, 0, 1)?)?;
        }
    }
    Ok(((sum / d)?, (gradient * (2.0 * weight / d))?))
}

/// [`temporal_cost`] and `weight` · ∂J_temporal/∂x = `weight` · 2 c_k (x_k − ω_k)/D, from one
/// difference x − ω (J summed in f64, as [`temporal_cost`] sums it).
pub fn temporal_cost_and_gradient_on_device(image: &Tensor, warped_previous: &Tensor, reliability: &Tensor, weight: f64) -> Result<(Tensor, Tensor)> {
    let d = image.elem_count() as f64;
    let difference = (image - warped_previous)?;
    let weighted_squares = difference.to_dtype(DType::F64)?.sqr()?.broadcast_mul(&reliability.to_dtype(DType::F64)?)?;
    let j = (weighted_squares.sum_all()? / d)?;
    Ok((j, (difference.broadcast_mul(reliability)? * (2.0 * weight / d))?))
}
