//! The stylizer: J(G) = α J_content(C,G) + β J_style(S,G) + γ_tv J_tv(G) + γ_temp J_temporal(G),
//! minimised over the pixels of G starting from a given image. The style targets are computed
//! once, when the stylizer is built; each call of [`Stylizer::optimise`] takes a frame's target
//! (its content and, for video, the previous stylized frame warped into place) and a starting
//! image (the content, noise, or — for video — the previous stylized frame, warped). With a
//! matte ([`ContentTarget::with_matte`]) J is that of the painting over the content by the
//! matte, with J_style over the matted region only. With a margin ([`Settings::margin`]) the
//! network sees the content and G wrapped around by P pixels and the costs read the image's own
//! positions ([`margin`]); the style targets are the style images' own.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::net::cpu::layers::Gram;
use crate::net::input::IMAGENET_MEAN_RGB;
use crate::net::profile;
use crate::net::vgg::{Activation, DeviceTrace, LayerName, Trace, Vgg16};
use crate::progress::Progress;
use crate::stylize::margin::{self, Window};
use crate::stylize::loss::{self, content_cost, layer_style_cost, matted_layer_style_cost, temporal_cost, tv_cost, Matte, StyleTarget};
use crate::stylize::optim::{Optimizer, OptimizerKind, PixelBox};
use crate::stylize::optim_device::DeviceOptimizer;

/// What the stylizer optimises and how. Defaults are the documented CLI defaults.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// α, weight of J_content.
    pub content_weight: f64,
    /// β, weight of J_style.
    pub style_weight: f64,
    /// γ_tv, weight of J_tv (0 disables it).
    pub tv_weight: f64,
    /// γ_temp, weight of J_temporal for video frames with a previous frame (0 disables it).
    pub temporal_weight: f64,
    /// Layers whose Gram matrices make the style cost.
    pub style_layers: Vec<LayerName>,
    /// λ^[l] for each style layer.
    pub style_layer_weights: Vec<f64>,
    /// Layer of the content cost.
    pub content_layer: LayerName,
    pub optimizer: OptimizerKind,
    /// Adam's step size; L-BFGS's step scale (1 is the classic choice).
    pub learning_rate: f64,
    /// Curvature pairs L-BFGS keeps.
    pub lbfgs_history: usize,
    /// Early stop when |J_{t−w} − J_t| / J_{t−w} < tol over a window of w iterations (0: never).
    pub tol: f64,
    pub tol_window: usize,
    /// P, the margin VGG sees around the image (the image wrapped around), in pixels (0: none);
    /// the losses read only the image's own positions ([`margin`]).
    pub margin: usize,
}

/// The pixels a frame file can hold, for a network input of `dims` (1, C, H, W): 0..255 minus
/// each channel's ImageNet mean. The optimisers keep G inside it (see [`PixelBox`]).
pub fn displayable_box((_, channels, h, w): (usize, usize, usize, usize)) -> PixelBox {
    let mean = |c: usize| IMAGENET_MEAN_RGB[c % IMAGENET_MEAN_RGB.len()];
    PixelBox {
        plane: h * w,
        lower: (0..channels).map(|c| -mean(c)).collect(),
        upper: (0..channels).map(|c| 255.0 - mean(c)).collect(),
    }
}

/// Default γ_temp (see the temporal-coherence table in docs/temporal.md for how it was chosen).
pub const DEFAULT_TEMPORAL_WEIGHT: f64 = 100.0;

/// The style layers of Gatys et al.: relu1_1 … relu5_1.
pub fn default_style_layers() -> Vec<LayerName> {
    (1..=5).map(|block| LayerName { block, conv: 1 }).collect()
}

impl Default for Settings {
    fn default() -> Self {
        let style_layers = default_style_layers();
        let n = style_layers.len();
        Settings {
            content_weight: 1.0,
            style_weight: 5e-4,
            tv_weight: 1e-3,
            temporal_weight: DEFAULT_TEMPORAL_WEIGHT,
            style_layer_weights: vec![1.0 / n as f64; n],
            style_layers,
            content_layer: LayerName { block: 4, conv: 2 },
            optimizer: OptimizerKind::Lbfgs,
            learning_rate: 1.0,
            lbfgs_history: 20,
            tol: 1e-4,
            tol_window: 10,
            margin: 0,
        }
    }
}

impl Settings {
    /// The default learning rate of an optimiser (L-BFGS 1, Adam 10 in 0..255 pixel units).
    pub fn default_learning_rate(kind: OptimizerKind) -> f64 {
        match kind {
            OptimizerKind::Lbfgs => 1.0,
            OptimizerKind::Adam => 10.0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.style_layers.is_empty() {
            return Err(Error::Settings("--style-layers: at least one layer is needed".into()));
        }
        if self.style_layer_weights.len() != self.style_layers.len() {
            return Err(Error::Settings(format!(
                "--style-layer-weights: {} weights given for {} style layers",
                self.style_layer_weights.len(),
                self.style_layers.len()
            )));
        }
        let weights = [
            ("--content-weight", self.content_weight),
            ("--style-weight", self.style_weight),
            ("--tv-weight", self.tv_weight),
            ("--temporal-weight", self.temporal_weight),
            ("--tol", self.tol),
        ];
        for (name, w) in weights.into_iter().chain(self.style_layer_weights.iter().map(|&w| ("--style-layer-weights", w))) {
            if !(w >= 0.0 && w.is_finite()) {
                return Err(Error::Settings(format!("{name}: must be a finite number ≥ 0, got {w}")));
            }
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::Settings(format!("--learning-rate: must be a finite number > 0, got {}", self.learning_rate)));
        }
        Ok(())
    }

    /// Style layers then the content layer: every layer the cost reads.
    fn tapped_layers(&self) -> Vec<LayerName> {
        let mut layers = self.style_layers.clone();
        layers.push(self.content_layer);
        layers
    }

    /// Smallest image side that still leaves at least one position at the deepest tapped layer.
    pub fn min_image_side(&self) -> u32 {
        let deepest_block = self.tapped_layers().iter().map(|l| l.block).max().unwrap_or(1);
        1 << (deepest_block - 1)
    }
}

/// The loss terms of one image, all evaluated on the same G.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LossTerms {
    /// J = α J_content + β J_style + γ_tv J_tv + γ_temp J_temporal.
    #[serde(rename = "J")]
    pub total: f64,
    #[serde(rename = "J_content")]
    pub content: f64,
    /// J_style = Σ_l λ^[l] J^[l]_style.
    #[serde(rename = "J_style")]
    pub style: f64,
    /// Unweighted J^[l]_style per style layer, by name.
    #[serde(rename = "J_style_layers", serialize_with = "serialize_layers")]
    pub style_layers: Vec<(LayerName, f64)>,
    #[serde(rename = "J_tv")]
    pub tv: f64,
    /// J_temporal against the warped earlier frames (0 without any).
    #[serde(rename = "J_temporal")]
    pub temporal: f64,
}

fn serialize_layers<S: serde::Serializer>(layers: &[(LayerName, f64)], s: S) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(layers.len()))?;
    for (name, value) in layers {
        map.serialize_entry(&name.to_string(), value)?;
    }
    map.end()
}

/// When an optimisation may end before its iterations ([`Stylizer::optimise_until`]): once it
/// has taken `min_iterations` steps and the best image so far has J_style ≤ `style_limit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnoughStyle {
    pub min_iterations: usize,
    pub style_limit: f64,
}

/// What a content image asks for: a^[l](C) at the content layer, and the image's size; for a
/// video frame also the previous stylized frame warped into place ([`TemporalTarget`]); with a
/// matte, the region J_style is computed over ([`ContentTarget::with_matte`]).
#[derive(Debug, Clone)]
pub struct ContentTarget {
    activations: Tensor,
    /// The same activations on the host, for the CPU kernels' own gradient.
    activations_host: Vec<f32>,
    dims: (usize, usize, usize, usize),
    temporal: Vec<TemporalTarget>,
    /// Each temporal target's ω(x_{t−j}) and c on the host, for the CPU kernels' own gradient.
    temporal_host: Vec<(Vec<f32>, Vec<f32>)>,
    /// The content image C itself (what a matte keeps).
    pixels: Tensor,
    matte: Option<Matte>,
    /// 1 − m, the region a second style paints ([`Stylizer::with_outside_style`]).
    outside_matte: Option<Matte>,
}

/// What J_temporal compares with: ω(x_{t−j}), an earlier stylized frame (the previous one, or
/// for long-term consistency one further back) warped to this frame, and the weight c of each
/// pixel (`(1, 1, n_H, n_W)`).
#[derive(Debug, Clone)]
pub struct TemporalTarget {
    pub warped_previous: Tensor,
    pub reliability: Tensor,
}

impl ContentTarget {
    /// The same target with J_temporal against `temporal` added to the cost: with several
    /// earlier frames, J_temporal = Σ_j (1/D) Σ_k c_{j,k} (x_k − ω(x_{t−j})_k)^2.
    pub fn with_temporal(mut self, temporal: Vec<TemporalTarget>) -> Result<Self> {
        let (n, _, h, w) = self.dims;
        for target in &temporal {
            if target.warped_previous.dims4()? != self.dims || target.reliability.dims4()? != (n, 1, h, w) {
                return Err(Error::Settings(format!(
                    "temporal target is {:?} with weights {:?}, the content is {:?}",
                    target.warped_previous.dims4()?,
                    target.reliability.dims4()?,
                    self.dims
                )));
            }
        }
        self.temporal_host = temporal
            .iter()
            .map(|t| Ok((t.warped_previous.flatten_all()?.to_vec1::<f32>()?, t.reliability.flatten_all()?.to_vec1::<f32>()?)))
            .collect::<Result<_>>()?;
        self.temporal = temporal;
        Ok(self)
    }

    /// The same target with J_temporal's weights c scaled by `share` (0..1): the pull towards
    /// the warped earlier frames is then γ_temp × `share`, the rest of J as it was.
    pub fn with_temporal_share(&self, share: f32) -> Result<Self> {
        let mut scaled = self.clone();
        for target in &mut scaled.temporal {
            target.reliability = target.reliability.affine(share as f64, 0.0)?;
        }
        for (_, reliability) in &mut scaled.temporal_host {
            reliability.iter_mut().for_each(|c| *c *= share);
        }
        Ok(scaled)
    }

    /// The same target for painting only the region a matte m `(1, 1, n_H, n_W)` marks (1: paint,
    /// 0: keep, between: partly). J is then that of the composite m ⊙ G + (1 − m) ⊙ C, the
    /// painting over the content as it will be written, so the optimisation sees the seam and the
    /// content around the region as they will be; and J_style is over the region: each style
    /// layer's Gram matrix is that of the matted activations, with the region's area in n_H n_W's
    /// place ([`loss::matted_layer_style_cost`]). The gradient with respect to G is m ⊙ ∇J.
    pub fn with_matte(mut self, matte: &Tensor) -> Result<Self> {
        let (n, _, h, w) = self.dims;
        if matte.dims4()? != (n, 1, h, w) {
            return Err(Error::Settings(format!("the matte is {:?}, the content is {:?}", matte.dims4()?, self.dims)));
        }
        let matte = Matte::new(matte)?;
        self.outside_matte = Some(matte.complement()?);
        self.matte = Some(matte);
        Ok(self)
    }

    /// The matte J_style is computed over, if any.
    pub fn matte(&self) -> Option<&Matte> {
        self.matte.as_ref()
    }

    /// What J is evaluated on: G itself, or with a matte m the composite m ⊙ G + (1 − m) ⊙ C.
    pub fn composite(&self, image: &Tensor) -> Result<Tensor> {
        let Some(matte) = &self.matte else { return Ok(image.clone()) };
        let m = &matte.finest().tensor;
        Ok((image.broadcast_mul(m)? + self.pixels.broadcast_mul(&(1.0 - m)?)?)?)
    }
}

/// The result of an optimisation: the image with the lowest J seen, its loss terms (evaluated
/// on that very image, before any 8-bit quantisation) and the iterations and evaluations spent.
#[derive(Debug, Clone)]
pub struct Stylized {
    pub image: Tensor,
    pub terms: LossTerms,
    /// Optimiser steps taken.
    pub iterations: usize,
    /// Times J was computed (a forward pass through the network and the losses), each but the
    /// last with ∇J (backpropagation to the pixels). Both optimisers take a fixed step (L-BFGS
    /// runs no line search), so this is one per iteration plus the starting image's.
    pub evaluations: usize,
    /// J after each evaluation (index 0: the starting image).
    pub history: Vec<f64>,
    /// L-BFGS's γ = (y·s)/(y·y) of its newest curvature pair: the scale of the inverse Hessian
    /// where it stopped, for starting a similar problem ([`Stylizer::optimise_with_curvature`]).
    pub curvature_scale: Option<f64>,
    pub seconds: f64,
}

pub struct Stylizer {
    /// Shared: several stylizers (styles, settings, working sizes) can use one loaded network.
    vgg: Arc<Vgg16>,
    settings: Settings,
    /// The blend of the style images' targets, per style layer: what J_style compares with.
    style_targets: Vec<StyleTarget>,
    /// Each style image's own targets, per style layer, for another blend
    /// ([`Stylizer::with_settings`]).
    per_style: Vec<Vec<StyleTarget>>,
    /// A second style's targets, for what a matte leaves out ([`Stylizer::with_outside_style`]).
    outside_targets: Option<Vec<StyleTarget>>,
}

impl Stylizer {
    /// Builds the stylizer and computes the style targets once: for each style layer, the blend
    /// Σ_s w_s G^[l](S_s)/(n_H n_W)_{S_s} of the style images (already at their working size).
    /// `vgg` is a network or an `Arc` of one shared with other stylizers.
    pub fn new(vgg: impl Into<Arc<Vgg16>>, settings: Settings, styles: &[(Tensor, f64)]) -> Result<Self> {
        let vgg = vgg.into();
        settings.validate()?;
        if styles.is_empty() {
            return Err(Error::Settings("at least one style image is needed".into()));
        }
        let min_side = settings.min_image_side() as usize;
        let mut per_style = Vec::with_capacity(styles.len());
        for (style, _) in styles {
            let (_, _, h, w) = style.dims4()?;
            if h.min(w) < min_side {
                return Err(Error::Settings(format!(
                    "style image is {w}×{h} at its working size; the style layers need at least {min_side} pixels per side"
                )));
            }
            // Without the margin, whatever the settings: the style image wrapped around would put
            // the seams of its wrap into the target, and the painting would then tune its own
            // edges to make them (a 64-px painting moved by 4 px: 4.8× its J_style, against 1.6×).
            let activations = vgg.features(style, &settings.style_layers)?;
            per_style.push(activations.into_iter().map(|a| StyleTarget::blend(&[(a.detach(), 1.0)])).collect::<Result<Vec<_>>>()?);
        }
        let weights: Vec<f64> = styles.iter().map(|(_, w)| *w).collect();
        let style_targets = blend_targets(&per_style, &weights)?;
        Ok(Self { vgg, settings, style_targets, per_style, outside_targets: None })
    }

    /// The same network and style images with other `settings` (the same layers; other weights)
    /// and, given a `blend`, another blend of the style images (one weight ≥ 0 each, not all 0):
    /// what a frame whose settings are keyframed is painted with. Cheap: nothing is recomputed
    /// but the blend of the Gram matrices.
    pub fn with_settings(&self, settings: Settings, blend: Option<&[f64]>) -> Result<Stylizer> {
        settings.validate()?;
        if settings.style_layers != self.settings.style_layers || settings.content_layer != self.settings.content_layer {
            return Err(Error::Settings("the layers of a stylizer's costs cannot change over a clip".into()));
        }
        let style_targets = match blend {
            None => self.style_targets.clone(),
            Some(weights) if weights.len() == self.per_style.len() => blend_targets(&self.per_style, weights)?,
            Some(weights) => {
                return Err(Error::Settings(format!("--style-weights: {} weights for {} style images", weights.len(), self.per_style.len())))
            }
        };
        Ok(Stylizer { vgg: self.vgg.clone(), settings, style_targets, per_style: self.per_style.clone(), outside_targets: self.outside_targets.clone() })
    }

    /// The same stylizer with `outside`'s style (built at the same size, with the same layers) on
    /// the other side of a content target's matte: with a matte m, J_style is then
    /// J_style(S, G; m) + J_style(S_outside, G; 1 − m), and the whole image is painted (no
    /// composite over the content).
    pub fn with_outside_style(&self, outside: &Stylizer) -> Result<Stylizer> {
        if outside.settings.style_layers != self.settings.style_layers {
            return Err(Error::Settings("--style-outside: the two styles' layers differ".into()));
        }
        Ok(Stylizer { outside_targets: Some(outside.style_targets.clone()), ..self.clone_shallow() })
    }

    /// Whether a second style paints what a matte leaves out.
    pub fn has_outside_style(&self) -> bool {
        self.outside_targets.is_some()
    }

    /// A copy sharing the network (the targets' tensors are shared too).
    fn clone_shallow(&self) -> Stylizer {
        Stylizer {
            vgg: self.vgg.clone(),
            settings: self.settings.clone(),
            style_targets: self.style_targets.clone(),
            per_style: self.per_style.clone(),
            outside_targets: self.outside_targets.clone(),
        }
    }

    /// The style regions of a content target, each with its targets and matte: the whole image
    /// (no matte), the matted region, or with a second style also the rest (1 − m).
    fn style_regions<'a>(&'a self, content: &'a ContentTarget) -> Vec<(&'a [StyleTarget], Option<&'a Matte>)> {
        match (&content.matte, &content.outside_matte, &self.outside_targets) {
            (None, _, _) => vec![(&self.style_targets, None)],
            (Some(m), Some(outside_m), Some(outside)) => vec![(&self.style_targets, Some(m)), (outside, Some(outside_m))],
            (Some(m), _, _) => vec![(&self.style_targets, Some(m))],
        }
    }

    /// The matte J is composited with (the painting over the content by it): a content target's
    /// matte, unless a second style paints the rest.
    fn composite_matte<'a>(&self, content: &'a ContentTarget) -> Option<&'a Matte> {
        content.matte.as_ref().filter(|_| self.outside_targets.is_none())
    }

    /// What J is evaluated on: G, or with a matte (and no second style) m ⊙ G + (1 − m) ⊙ C.
    fn evaluated_image(&self, image: &Tensor, content: &ContentTarget) -> Result<Tensor> {
        match self.composite_matte(content) {
            Some(_) => content.composite(image),
            None => Ok(image.clone()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn vgg(&self) -> &Vgg16 {
        &self.vgg
    }

    /// a^[l](C) at the content layer, computed once per content image (frame).
    pub fn content_target(&self, content: &Tensor) -> Result<ContentTarget> {
        let dims = content.dims4()?;
        let min_side = self.settings.min_image_side() as usize;
        if dims.2.min(dims.3) < min_side {
            return Err(Error::Settings(format!(
                "image is {}×{} at its working size; the chosen layers need at least {min_side} pixels per side",
                dims.3, dims.2
            )));
        }
        let (layer, p) = (self.settings.content_layer, self.settings.margin);
        let activations = self.vgg.features(&with_margin(content, p)?, &[layer])?.remove(0).detach();
        let activations = inner(&activations, layer, (dims.2, dims.3), p)?;
        let activations_host = activations.flatten_all()?.to_vec1::<f32>()?;
        let pixels = content.clone();
        Ok(ContentTarget {
            activations,
            activations_host,
            dims,
            temporal: Vec::new(),
            temporal_host: Vec::new(),
            pixels,
            matte: None,
            outside_matte: None,
        })
    }

    /// J(G) as a scalar tensor (for backprop) and its terms as numbers.
    pub fn cost(&self, image: &Tensor, content: &ContentTarget) -> Result<(Tensor, LossTerms)> {
        let s = &self.settings;
        let image = &self.evaluated_image(image, content)?;
        let layers = s.tapped_layers();
        let (_, _, h, w) = image.dims4()?;
        let mut features = (self.vgg.features(&with_margin(image, s.margin)?, &layers)?.iter().zip(&layers))
            .map(|(a, &l)| inner(a, l, (h, w), s.margin))
            .collect::<Result<Vec<_>>>()?;
        let a_content = features.pop().expect("content layer is tapped last");
        let j_content = content_cost(&content.activations, &a_content)?;
        let mut j_style = None;
        let mut style_layers = Vec::with_capacity(s.style_layers.len());
        let regions = self.style_regions(content);
        for (l, (a, (&layer, &lambda))) in features.iter().zip(s.style_layers.iter().zip(&s.style_layer_weights)).enumerate() {
            let mut j_layer = Tensor::zeros((), DType::F64, a.device())?;
            for (targets, matte) in &regions {
                let target = &targets[l];
                j_layer = (j_layer
                    + match matte {
                        None => layer_style_cost(&target.gram_for(a)?, a)?,
                        Some(matte) => {
                            let (_, _, n_h, n_w) = a.dims4()?;
                            matted_layer_style_cost(target, a, matte.at(n_h, n_w)?)?
                        }
                    })?;
            }
            style_layers.push((layer, j_layer.to_scalar::<f64>()?));
            let weighted = (j_layer * lambda)?;
            j_style = Some(match j_style {
                None => weighted,
                Some(sum) => (sum + weighted)?,
            });
        }
        let j_style = j_style.expect("style layers are not empty");
        let (image_terms, tv, temporal) = self.image_terms(image, content)?;
        let total = (((&j_content * s.content_weight)? + (&j_style * s.style_weight)?)? + image_terms)?;
        let terms = LossTerms {
            total: total.to_scalar::<f64>()?,
            content: j_content.to_scalar::<f64>()?,
            style: j_style.to_scalar::<f64>()?,
            style_layers,
            tv,
            temporal,
        };
        Ok((total, terms))
    }

    /// Optimises the pixels of G from `start` (same size as the content) for at most
    /// `iterations` steps, stopping early when J levels off (see [`Settings::tol`]).
    /// Returns the best image seen with its loss terms. `iterations = 0` returns `start`.
    pub fn optimise(
        &self,
        content: &ContentTarget,
        start: &Tensor,
        iterations: usize,
        progress: &mut dyn Progress,
    ) -> Result<Stylized> {
        self.optimise_with_curvature(content, start, iterations, None, progress)
    }

    /// [`Self::optimise`], with L-BFGS's first step scaled by `curvature_scale` where it is known
    /// (a similar problem's [`Stylized::curvature_scale`], such as the previous video frame's at
    /// the same size; see [`Optimizer::with_curvature_scale`]).
    pub fn optimise_with_curvature(
        &self,
        content: &ContentTarget,
        start: &Tensor,
        iterations: usize,
        curvature_scale: Option<f64>,
        progress: &mut dyn Progress,
    ) -> Result<Stylized> {
        self.optimise_until(content, start, iterations, curvature_scale, None, progress)
    }

    /// [`Self::optimise_with_curvature`], ending before `iterations` once `enough` says the best
    /// image so far is painted enough.
    pub fn optimise_until(
        &self,
        content: &ContentTarget,
        start: &Tensor,
        iterations: usize,
        curvature_scale: Option<f64>,
        enough: Option<EnoughStyle>,
        progress: &mut dyn Progress,
    ) -> Result<Stylized> {
        let started = Instant::now();
        if start.dims4()? != content.dims {
            return Err(Error::Settings(format!(
                "starting image is {:?}, the content is {:?}",
                start.dims4()?,
                content.dims
            )));
        }
        if !self.vgg.compute().uses_crate_kernels() {
            return self.optimise_on_device(content, start, (iterations, enough), curvature_scale, progress, started);
        }
        let s = &self.settings;
        let pixel_box = displayable_box(content.dims);
        let mut x = start.flatten_all()?.to_vec1::<f32>()?;
        pixel_box.project(&mut x, 0);
        let mut image = Tensor::from_slice(&x, start.shape(), start.device())?;
        let mut optimizer = Optimizer::new(s.optimizer, s.learning_rate, s.lbfgs_history)
            .with_gradient_resolution(self.vgg.precision().gradient_resolution())
            .with_curvature_scale(curvature_scale)
            .with_box(Some(pixel_box));
        let mut record = Record::new(iterations);
        loop {
            let (evaluation, terms) = profile::time(|| "J: features and losses".into(), || self.evaluate(&image, content))?;
            record.evaluated(&terms, &image)?;
            if record.done == iterations || self.levelled_off(&record.history) || record.enough(enough) {
                break;
            }
            if progress.should_stop() {
                return Err(Error::Interrupted(String::new()));
            }
            let grad = profile::time(|| "∇J: backward".into(), || evaluation.gradient(self))?;
            if let Some(bad) = grad.iter().find(|g| !g.is_finite()) {
                return Err(Error::Diverged(format!("gradient became {bad} after {} iterations", record.done)));
            }
            image = profile::time(
                || "optimiser step".into(),
                || -> Result<Tensor> {
                    optimizer.step(&mut x, &grad);
                    Ok(Tensor::from_slice(&x, start.shape(), start.device())?)
                },
            )?;
            record.done += 1;
            progress.iteration(record.done, iterations, terms.total);
        }
        Ok(record.finish(optimizer.curvature_scale(), started))
    }

    /// J(G) and what its gradient needs, without candle's autograd: the network's own forward
    /// trace and the losses' gradients at the tapped layers, written out ([`loss`]'s
    /// `…_and_gradient` functions), so that [`Evaluation::gradient`] runs the layers' own
    /// backward. On this crate's CPU kernels on host vectors; elsewhere (a GPU, `cpu-reference`)
    /// on tensors on the device ([`Vgg16::device_trace`], [`Vgg16::device_backward`]).
    pub fn evaluate(&self, image: &Tensor, content: &ContentTarget) -> Result<(Evaluation, LossTerms)> {
        if !self.vgg.compute().uses_crate_kernels() {
            let (evaluation, terms) = self.device_evaluate(image, content)?;
            let terms = self.read_terms(&terms)?;
            return Ok((Evaluation::Device(evaluation), terms));
        }
        let s = &self.settings;
        let (_, n_c, h, w) = image.dims4()?;
        let pixels = self.evaluated_image(image, content)?.flatten_all()?.to_vec1::<f32>()?;
        let deepest = *s.tapped_layers().iter().max_by_key(|l| l.depth()).expect("tapped layers are not empty");
        let p = s.margin;
        let trace = profile::time(
            || "VGG16 forward (trace)".into(),
            || match p {
                0 => self.vgg.trace(&pixels, h, w, deepest),
                p => self.vgg.trace(&margin::pad(&pixels, (n_c, h, w), p), h + 2 * p, w + 2 * p, deepest),
            },
        )?;
        let activation = |layer: LayerName| inner_activation(trace.activation(layer).expect("the trace reaches every tapped layer"), (h, w), p);

        let a_content = activation(s.content_layer);
        let (j_content, content_gradient) = profile::time(
            || "J_content and its gradient".into(),
            || loss::content_cost_and_gradient(&content.activations_host, &a_content.values, s.content_weight),
        );
        let mut style_gradients = Vec::with_capacity(s.style_layers.len());
        let mut style_layers = Vec::with_capacity(s.style_layers.len());
        let mut j_style = 0.0;
        let regions = self.style_regions(content);
        for (l, (&layer, &lambda)) in s.style_layers.iter().zip(&s.style_layer_weights).enumerate() {
            let a = activation(layer);
            let positions = a.h * a.w;
            let mut j_layer = 0.0;
            for (targets, matte) in &regions {
                // With a matte, the Gram matrix of the matted activations m^[l] ⊙ a^[l] over its area.
                let matte = matte.map(|m| m.at(a.h, a.w)).transpose()?;
                let (gram, area) = match matte {
                    None => (Gram::compute(&a.values, a.channels, positions), positions as f64),
                    Some(m) => (Gram::compute(&matted(&a.values, &m.weights), a.channels, positions), m.area),
                };
                let (gram_style, scale) = targets[l].host_gram_for(area);
                let (j, s_matrix) = profile::time(
                    || "J_style layers and their S".into(),
                    || loss::layer_style_cost_and_gradient(&gram, gram_style, scale, (a.channels, area), s.style_weight * lambda),
                );
                j_layer += j;
                style_gradients.push(StyleGradient { layer, s_matrix, matte: matte.map(|m| m.weights.clone()) });
            }
            style_layers.push((layer, j_layer));
            j_style += lambda * j_layer;
        }
        // J_tv and J_temporal act on the image itself; their gradient is added at the end.
        let (tv, temporal, image_gradient) = profile::time(
            || "J_tv, J_temporal and their gradients".into(),
            || {
                let (mut tv, mut temporal, mut gradient) = (0.0, 0.0, None);
                if s.tv_weight > 0.0 {
                    let (j, g) = loss::tv_cost_and_gradient(&pixels, (n_c, h, w), s.tv_weight);
                    (tv, gradient) = (j, Some(g));
                }
                if s.temporal_weight > 0.0 && !content.temporal_host.is_empty() {
                    let gradient = gradient.get_or_insert_with(|| vec![0f32; pixels.len()]);
                    for (warped, reliability) in &content.temporal_host {
                        temporal += loss::temporal_cost_and_gradient(&pixels, warped, reliability, s.temporal_weight, gradient);
                    }
                }
                (tv, temporal, gradient)
            },
        );
        let total = s.content_weight * j_content + s.style_weight * j_style + s.tv_weight * tv + s.temporal_weight * temporal;
        let terms = LossTerms { total, content: j_content, style: j_style, style_layers, tv, temporal };
        let evaluation = Evaluation::Kernels {
            trace,
            margin: (p, (n_c, h, w)),
            content_gradient: (s.content_layer, content_gradient),
            style_gradients,
            image_gradient,
            matte: self.composite_matte(content).map(|m| m.finest().weights.clone()),
        };
        Ok((evaluation, terms))
    }

    /// [`Self::optimise`] on the device (a GPU, `cpu-reference`): the evaluation, the backward
    /// and the optimiser's step are queued on the device; per iteration the host reads J's terms
    /// (one small vector, read after the step is queued so the device never waits for the host)
    /// and nothing else; the image stays on the device.
    fn optimise_on_device(
        &self,
        content: &ContentTarget,
        start: &Tensor,
        (iterations, enough): (usize, Option<EnoughStyle>),
        curvature_scale: Option<f64>,
        progress: &mut dyn Progress,
        started: Instant,
    ) -> Result<Stylized> {
        let s = &self.settings;
        let mut optimizer = DeviceOptimizer::new(s.optimizer, s.learning_rate, s.lbfgs_history)
            .with_gradient_resolution(self.vgg.precision().gradient_resolution())
            .with_curvature_scale(curvature_scale)
            .with_box(Some(displayable_box(content.dims)));
        let mut x = optimizer.project(&start.detach().to_dtype(DType::F32)?)?.contiguous()?;
        let mut record = Record::new(iterations);
        loop {
            let (evaluation, terms_on_device) =
                profile::time(|| "J: features and losses (queued)".into(), || self.device_evaluate(&x, content))?;
            let next = if record.done == iterations {
                None
            } else {
                let grad = profile::time(|| "∇J: backward (queued)".into(), || self.device_gradient(evaluation))?;
                Some(profile::time(|| "optimiser step (queued)".into(), || optimizer.step(&x, &grad))?)
            };
            let terms = profile::time(|| "read J's terms (waits for the device)".into(), || self.read_terms(&terms_on_device))?;
            record.evaluated(&terms, &x)?;
            let Some(next) = next else { break };
            if self.levelled_off(&record.history) || record.enough(enough) {
                break;
            }
            if progress.should_stop() {
                return Err(Error::Interrupted(String::new()));
            }
            x = next;
            record.done += 1;
            progress.iteration(record.done, iterations, terms.total);
        }
        Ok(record.finish(optimizer.curvature_scale()?, started))
    }

    /// What the gradient needs and J's terms, on the device, nothing read back: the terms are
    /// one f64 vector [J_content, J^[l]_style for each style layer, J_tv, J_temporal].
    fn device_evaluate(&self, image: &Tensor, content: &ContentTarget) -> Result<(DeviceEvaluation, Tensor)> {
        let s = &self.settings;
        let image = &self.evaluated_image(image, content)?;
        let deepest = *s.tapped_layers().iter().max_by_key(|l| l.depth()).expect("tapped layers are not empty");
        let trace = self.vgg.device_trace(&with_margin(image, s.margin)?, deepest)?;
        let (_, _, h, w) = image.dims4()?;
        let activation = |layer: LayerName| inner(&trace.activation(layer).expect("the trace reaches every tapped layer")?, layer, (h, w), s.margin);
        let (j_content, content_gradient) =
            loss::content_cost_and_gradient_on_device(&content.activations, &activation(s.content_layer)?, s.content_weight)?;
        let mut terms = vec![j_content];
        let mut taps = vec![(s.content_layer, content_gradient)];
        let regions = self.style_regions(content);
        for (l, (&layer, &lambda)) in s.style_layers.iter().zip(&s.style_layer_weights).enumerate() {
            let a = activation(layer)?;
            let (_, _, n_h, n_w) = a.dims4()?;
            let mut sum: Option<(Tensor, Tensor)> = None;
            for (targets, matte) in &regions {
                let matte = matte.map(|m| m.at(n_h, n_w)).transpose()?;
                let (j, g) = loss::layer_style_cost_and_gradient_on_device(&targets[l], &a, matte, s.style_weight * lambda)?;
                sum = Some(match sum {
                    None => (j, g),
                    Some((sj, sg)) => ((sj + j)?, (sg + g)?),
                });
            }
            let (j_layer, gradient) = sum.expect("at least one region");
            terms.push(j_layer);
            taps.push((layer, gradient));
        }
        let zero = || Tensor::zeros((), DType::F64, image.device());
        let mut image_gradient: Option<Tensor> = None;
        let mut add = |g: Tensor| -> Result<()> {
            image_gradient = Some(match image_gradient.take() {
                None => g,
                Some(sum) => (sum + g)?,
            });
            Ok(())
        };
        let j_tv = if s.tv_weight > 0.0 {
            let (j, g) = loss::tv_cost_and_gradient_on_device(image, s.tv_weight)?;
            add(g)?;
            j
        } else {
            zero()?
        };
        let mut j_temporal = zero()?;
        if s.temporal_weight > 0.0 {
            for target in &content.temporal {
                let (j, g) = loss::temporal_cost_and_gradient_on_device(image, &target.warped_previous, &target.reliability, s.temporal_weight)?;
                j_temporal = (j_temporal + j)?;
                add(g)?;
            }
        }
        terms.extend([j_tv, j_temporal]);
        let terms = Tensor::stack(&terms.iter().map(|t| t.to_dtype(DType::F64)).collect::<candle_core::Result<Vec<_>>>()?, 0)?;
        let matte = self.composite_matte(content).map(|m| m.finest().tensor.clone());
        // ∂J/∂a^[l] over the margin is 0: the losses read the image's own positions.
        let taps = taps
            .into_iter()
            .map(|(layer, g)| {
                let full = trace.activation(layer).expect("the trace reaches every tapped layer")?.dims4()?;
                let window = Window::at_block(s.margin, (h, w), layer.block);
                if window.is_whole((full.2, full.3)) {
                    return Ok((layer, g));
                }
                let (after_h, after_w) = (full.2 - window.off - window.h, full.3 - window.off - window.w);
                Ok((layer, g.pad_with_zeros(2, window.off, after_h)?.pad_with_zeros(3, window.off, after_w)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((DeviceEvaluation { trace, taps, image_gradient, matte, image_dims: image.dims4()? }, terms))
    }

    /// ∇J on the device, `(1, 3, H, W)` f32: the network's own backward from the taps, plus the
    /// image terms' gradient.
    fn device_gradient(&self, evaluation: DeviceEvaluation) -> Result<Tensor> {
        let DeviceEvaluation { trace, taps, image_gradient, matte, image_dims } = evaluation;
        let gradient = fold_margin(self.vgg.device_backward(&trace, taps)?, image_dims, self.settings.margin)?;
        let gradient = match image_gradient {
            Some(g) => (gradient + g)?,
            None => gradient,
        };
        // Through the composite m ⊙ G + (1 − m) ⊙ C: m ⊙ ∇J.
        Ok(match matte {
            Some(m) => gradient.broadcast_mul(&m)?,
            None => gradient,
        })
    }

    /// The terms [`Self::device_evaluate`] left on the device, read to the host (the one read of
    /// an iteration).
    fn read_terms(&self, terms: &Tensor) -> Result<LossTerms> {
        let s = &self.settings;
        let values = terms.to_vec1::<f64>()?;
        let n = s.style_layers.len();
        let (content, style_layers, tv, temporal) = (values[0], &values[1..=n], values[n + 1], values[n + 2]);
        let style: f64 = style_layers.iter().zip(&s.style_layer_weights).map(|(j, lambda)| lambda * j).sum();
        let total = s.content_weight * content + s.style_weight * style + s.tv_weight * tv + s.temporal_weight * temporal;
        let style_layers = s.style_layers.iter().copied().zip(style_layers.iter().copied()).collect();
        Ok(LossTerms { total, content, style, style_layers, tv, temporal })
    }

    /// γ_tv J_tv + γ_temp J_temporal as a candle graph on `image`, with J_tv and J_temporal.
    fn image_terms(&self, image: &Tensor, content: &ContentTarget) -> Result<(Tensor, f64, f64)> {
        let s = &self.settings;
        let mut total = Tensor::zeros((), candle_core::DType::F64, image.device())?;
        let mut tv = 0.0;
        if s.tv_weight > 0.0 {
            let j_tv = tv_cost(image)?;
            tv = j_tv.to_scalar::<f64>()?;
            total = (total + (j_tv * s.tv_weight)?)?;
        }
        let mut temporal = 0.0;
        if s.temporal_weight > 0.0 {
            for target in &content.temporal {
                let j_temporal = temporal_cost(image, &target.warped_previous, &target.reliability)?;
                temporal += j_temporal.to_scalar::<f64>()?;
                total = (total + (j_temporal * s.temporal_weight)?)?;
            }
        }
        Ok((total, tv, temporal))
    }

    fn levelled_off(&self, history: &[f64]) -> bool {
        let (tol, w) = (self.settings.tol, self.settings.tol_window);
        if tol <= 0.0 || w == 0 || history.len() <= w {
            return false;
        }
        let (then, now) = (history[history.len() - 1 - w], history[history.len() - 1]);
        (then - now).abs() / then.abs().max(f64::MIN_POSITIVE) < tol
    }
}

/// The network's input for an image `(1, C, H, W)`: the image with a margin of `p` around it
/// ([`margin`]; tensor ops, so autograd and the device follow it).
fn with_margin(image: &Tensor, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(image.clone());
    }
    let (_, _, h, w) = image.dims4()?;
    let (rows, columns) = margin_sources((h, w), p, image.device())?;
    Ok(image.index_select(&rows, 2)?.index_select(&columns, 3)?)
}

/// The adjoint of [`with_margin`]: a gradient over the network's input summed back onto the
/// pixels of the image `(n, c, h, w)` each input position reads.
fn fold_margin(gradient: Tensor, (n, c, h, w): (usize, usize, usize, usize), p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(gradient);
    }
    let device = gradient.device();
    let (rows, columns) = margin_sources((h, w), p, device)?;
    let folded_rows = Tensor::zeros((n, c, h, w + 2 * p), gradient.dtype(), device)?.index_add(&rows, &gradient, 2)?;
    Ok(Tensor::zeros((n, c, h, w), gradient.dtype(), device)?.index_add(&columns, &folded_rows, 3)?)
}

/// For each row and each column of an image of `h × w` with a margin of `p`, the one it reads
/// ([`margin::source_indices`]), as index tensors.
fn margin_sources((h, w): (usize, usize), p: usize, device: &candle_core::Device) -> Result<(Tensor, Tensor)> {
    let indices = |n: usize| Tensor::from_vec(margin::source_indices(n, p), n + 2 * p, device);
    Ok((indices(h)?, indices(w)?))
}

/// The image's own positions ([`margin::Window`]) of a layer's activations `(1, n_C, n_H, n_W)`
/// computed with a margin of `p`, for an image of `image_size` (H, W).
fn inner(activations: &Tensor, layer: LayerName, image_size: (usize, usize), p: usize) -> Result<Tensor> {
    let window = Window::at_block(p, image_size, layer.block);
    let (_, _, h, w) = activations.dims4()?;
    if window.is_whole((h, w)) {
        return Ok(activations.clone());
    }
    Ok(activations.narrow(2, window.off, window.h)?.narrow(3, window.off, window.w)?)
}

/// [`inner`] for the CPU kernels' trace.
fn inner_activation(a: &Activation, image_size: (usize, usize), p: usize) -> Cow<'_, Activation> {
    let window = Window::at_block(p, image_size, a.layer.block);
    if window.is_whole((a.h, a.w)) {
        return Cow::Borrowed(a);
    }
    let values = margin::crop(&a.values, (a.channels, a.h, a.w), window);
    Cow::Owned(Activation { layer: a.layer, values, channels: a.channels, h: window.h, w: window.w })
}

/// Per style layer, the blend of each style image's target with `weights` (one style: its own).
fn blend_targets(per_style: &[Vec<StyleTarget>], weights: &[f64]) -> Result<Vec<StyleTarget>> {
    if let ([only], [_]) = (per_style, weights) {
        return Ok(only.clone());
    }
    let layers = per_style.first().map_or(0, Vec::len);
    (0..layers)
        .map(|l| StyleTarget::combine(&per_style.iter().zip(weights).map(|(targets, &w)| (&targets[l], w)).collect::<Vec<_>>()))
        .collect()
}

/// What an optimisation keeps from its evaluations, on the host and on the device alike: J's
/// history, the best image with its terms, the counts.
struct Record {
    history: Vec<f64>,
    best: Option<(f64, Tensor, LossTerms)>,
    /// Optimiser steps taken.
    done: usize,
    evaluations: usize,
}

impl Record {
    fn new(iterations: usize) -> Self {
        Self { history: Vec::with_capacity(iterations + 1), best: None, done: 0, evaluations: 0 }
    }

    /// J was evaluated at `image` (an immutable tensor: kept as it is if it is the best so far).
    fn evaluated(&mut self, terms: &LossTerms, image: &Tensor) -> Result<()> {
        self.evaluations += 1;
        if !terms.total.is_finite() {
            return Err(Error::Diverged(format!("J became {} after {} iterations", terms.total, self.done)));
        }
        self.history.push(terms.total);
        if self.best.as_ref().is_none_or(|(b, _, _)| terms.total < *b) {
            self.best = Some((terms.total, image.clone(), terms.clone()));
        }
        Ok(())
    }

    /// Whether the best image so far is painted `enough` (never without a rule).
    fn enough(&self, enough: Option<EnoughStyle>) -> bool {
        match (enough, &self.best) {
            (Some(rule), Some((_, _, terms))) => self.done >= rule.min_iterations && terms.style <= rule.style_limit,
            _ => false,
        }
    }

    fn finish(self, curvature_scale: Option<f64>, started: Instant) -> Stylized {
        let (_, image, terms) = self.best.expect("at least one evaluation");
        let Record { history, done, evaluations, .. } = self;
        let seconds = started.elapsed().as_secs_f64();
        Stylized { image, terms, iterations: done, evaluations, history, curvature_scale, seconds }
    }
}

/// One evaluation of J on the device ([`Stylizer::evaluate`] on a GPU or `cpu-reference`).
pub struct DeviceEvaluation {
    trace: DeviceTrace,
    /// ∂J/∂a^[l] (weighted) at the content and style layers.
    taps: Vec<(LayerName, Tensor)>,
    /// ∇(γ_tv J_tv + γ_temp J_temporal), when either term is on.
    image_gradient: Option<Tensor>,
    /// The matte m the composite was made with (the gradient is m ⊙ ∇J).
    matte: Option<Tensor>,
    /// The image's `(1, C, H, W)`, without the margin the network saw.
    image_dims: (usize, usize, usize, usize),
}

/// The style term's gradient at one layer, as the matrix S of [`Gram::input_gradient`], with the
/// matte m^[l] it was computed under (its gradient is then m^[l] ⊙ (S · (m^[l] ⊙ a^[l]))).
pub struct StyleGradient {
    layer: LayerName,
    s_matrix: Vec<f32>,
    matte: Option<Vec<f32>>,
}

/// Activations `(n_C, n_H n_W)` weighted per position by `matte` (`n_H n_W`).
fn matted(values: &[f32], matte: &[f32]) -> Vec<f32> {
    values.chunks_exact(matte.len()).flat_map(|plane| plane.iter().zip(matte).map(|(a, m)| a * m)).collect()
}

/// One evaluation of J, holding what its gradient needs ([`Stylizer::evaluate`]).
pub enum Evaluation {
    /// On the device: the trace, the taps' gradients and the image terms' gradient as tensors.
    Device(DeviceEvaluation),
    /// The network's trace and the losses' gradients at the tapped layers (the style ones as the
    /// matrices S of [`Gram::input_gradient`]), plus the image terms' gradient.
    Kernels {
        trace: Trace,
        /// The margin P the trace was made with, and the image's `(C, H, W)` without it.
        margin: (usize, (usize, usize, usize)),
        content_gradient: (LayerName, Vec<f32>),
        style_gradients: Vec<StyleGradient>,
        /// ∇(γ_tv J_tv + γ_temp J_temporal), when either term is on.
        image_gradient: Option<Vec<f32>>,
        /// The matte m the composite was made with, `n_H n_W` (the gradient is m ⊙ ∇J).
        matte: Option<Vec<f32>>,
    },
}

impl Evaluation {
    /// ∇J with respect to the image evaluated, flat.
    pub fn gradient(self, stylizer: &Stylizer) -> Result<Vec<f32>> {
        match self {
            Evaluation::Device(evaluation) => Ok(stylizer.device_gradient(evaluation)?.flatten_all()?.to_vec1::<f32>()?),
            Evaluation::Kernels { trace, margin: (p, image_dims), content_gradient, style_gradients, image_gradient, matte } => {
                // ∂J/∂a^[l] at a tapped layer, made when the backward reaches it: the content
                // term's, plus the style term's from its S matrix (G^[l] − G^[l](S) scaled).
                let mut content_gradient = Some(content_gradient);
                let tap_gradient = |full: &Activation| -> Option<Vec<f32>> {
                    let tapped = content_gradient.as_ref().is_some_and(|(layer, _)| *layer == full.layer)
                        || style_gradients.iter().any(|g| g.layer == full.layer);
                    if !tapped {
                        return None;
                    }
                    // Over the image's own positions; 0 over the margin.
                    let window = Window::at_block(p, (image_dims.1, image_dims.2), full.layer.block);
                    let a = &*inner_activation(full, (image_dims.1, image_dims.2), p);
                    let mut sum = content_gradient.take_if(|(layer, _)| *layer == a.layer).map(|(_, g)| g);
                    for StyleGradient { s_matrix, matte, .. } in style_gradients.iter().filter(|g| g.layer == a.layer) {
                        // Matted: m^[l] ⊙ (S · (m^[l] ⊙ a^[l])).
                        let style = match matte {
                            None => Gram::input_gradient(s_matrix, &a.values, a.channels, a.h * a.w),
                            Some(m) => matted(&Gram::input_gradient(s_matrix, &matted(&a.values, m), a.channels, a.h * a.w), m),
                        };
                        sum = Some(match sum {
                            None => style,
                            Some(mut sum) => {
                                sum.iter_mut().zip(&style).for_each(|(s, t)| *s += t);
                                sum
                            }
                        });
                    }
                    sum.map(|g| if window.is_whole((full.h, full.w)) { g } else { margin::uncrop(&g, a.channels, window, (full.h, full.w)) })
                };
                let mut gradient = stylizer.vgg.backward(trace, tap_gradient)?;
                if p > 0 {
                    gradient = margin::fold(&gradient, image_dims, p);
                }
                if let Some(g) = image_gradient {
                    gradient.iter_mut().zip(&g).for_each(|(total, g)| *total += g);
                }
                // Through the composite m ⊙ G + (1 − m) ⊙ C: m ⊙ ∇J.
                Ok(match matte {
                    Some(m) => matted(&gradient, &m),
                    None => gradient,
                })
            }
        }
    }
}
