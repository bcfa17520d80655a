//! Painting what a warm frame reveals (`--paint-revealed`): content that enters the frame or
//! comes out from behind something has nothing to be warped from, and a warm frame's few
//! iterations over the whole, nearly converged image leave it close to the photo (a car
//! entering the frame, the far side of a pan). Before the frame's own optimisation, a crop
//! around the revealed tiles is painted on its own, held by J_temporal where the flow vouches
//! for its pixels so that it joins its surroundings, and its revealed pixels go into the
//! frame's start. Measured in docs/temporal.md ("Painting what is revealed").

use std::time::Instant;

use candle_core::Tensor;

use crate::error::Result;
use crate::progress::Progress;
use crate::stylize::stylizer::{Stylizer, TemporalTarget};

/// Side of the square tiles the reliability mask is read in.
const TILE: usize = 16;
/// A tile is revealed when more than this share of its pixels has c = 0: a band a few pixels
/// wide along an edge or a disoccluded patch, not the scattered motion-boundary pixels every
/// moving frame has.
const REVEALED_SHARE: f64 = 0.2;
/// Pixels of context around the revealed tiles: the crop's reliable part, held to the warped
/// previous frame, lets the new paint continue the strokes around it.
const CONTEXT: usize = 16;
/// A crop covering more of the frame than this is not painted apart: it would cost as much
/// as the frame, and the frame's own iterations see it as much as the crop's would.
const MAX_CROP_SHARE: f64 = 0.6;

/// The crop painted for a frame's revealed tiles, in the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RevealedRecord {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
    /// Pixels of the crop with c = 0 (the ones taken into the start).
    pub pixels: usize,
    pub iterations: usize,
    pub seconds: f64,
}

/// A rectangle of the frame: columns `x..x + width`, rows `y..y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// The crop around the revealed tiles of a `width × height` reliability mask c (row-major,
/// 0 = unreliable), with [`CONTEXT`] pixels around them and at least `min_side` a side; None
/// when no tile is revealed or the crop would cover more than [`MAX_CROP_SHARE`] of the frame.
pub fn revealed_crop(reliability: &[f32], width: usize, height: usize, min_side: usize) -> Option<Crop> {
    assert_eq!(reliability.len(), width * height, "the mask is not width × height");
    let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
    for ty in (0..height).step_by(TILE) {
        for tx in (0..width).step_by(TILE) {
            let (ex, ey) = ((tx + TILE).min(width), (ty + TILE).min(height));
            let unreliable = (ty..ey).map(|y| reliability[y * width + tx..y * width + ex].iter().filter(|&&c| c == 0.0).count()).sum::<usize>();
            if unreliable as f64 > REVEALED_SHARE * ((ex - tx) * (ey - ty)) as f64 {
                (x0, y0, x1, y1) = (x0.min(tx), y0.min(ty), x1.max(ex), y1.max(ey));
            }
        }
    }
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let span = |start: usize, end: usize, size: usize| {
        let (mut start, mut end) = (start.saturating_sub(CONTEXT), (end + CONTEXT).min(size));
        while end - start < min_side.min(size) {
            if start > 0 {
                start -= 1;
            } else {
                end += 1;
            }
        }
        (start, end)
    };
    let ((x0, x1), (y0, y1)) = (span(x0, x1, width), span(y0, y1, height));
    let crop = Crop { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
    ((crop.width * crop.height) as f64 <= MAX_CROP_SHARE * (width * height) as f64).then_some(crop)
}

/// Paints the revealed part of a warm frame's `start` (`(1, C, H, W)`, c = 0 where
/// `reliability` says so) with `iterations` of `stylizer` on the crop around it, J_temporal
/// holding the crop's other pixels to `warped_previous`; returns the start with the crop's
/// revealed pixels replaced, and what was done (None: nothing revealed, the start as it was).
/// With a `matte` (`(1, 1, H, W)`), the crop is painted under its part of the matte, and not at
/// all where that part is black.
#[allow(clippy::too_many_arguments)]
pub fn paint_revealed(
    stylizer: &Stylizer,
    content: &Tensor,
    start: &Tensor,
    warped_previous: &Tensor,
    reliability: &[f32],
    matte: Option<&Tensor>,
    iterations: usize,
    progress: &mut dyn Progress,
) -> Result<(Tensor, Option<RevealedRecord>)> {
    let started = Instant::now();
    let (_, channels, height, width) = start.dims4()?;
    let min_side = stylizer.settings().min_image_side() as usize;
    let Some(crop) = revealed_crop(reliability, width, height, min_side) else { return Ok((start.clone(), None)) };
    let cut = |t: &Tensor| -> Result<Tensor> { Ok(t.narrow(2, crop.y, crop.height)?.narrow(3, crop.x, crop.width)?.contiguous()?) };
    let weights = Tensor::from_slice(reliability, (1, 1, height, width), start.device())?;
    let mut target = stylizer
        .content_target(&cut(content)?)?
        .with_temporal(vec![TemporalTarget { warped_previous: cut(warped_previous)?, reliability: cut(&weights)? }])?;
    if let Some(matte) = matte {
        let matte = cut(matte)?;
        if matte.max_all()?.to_scalar::<f32>()? == 0.0 && !stylizer.has_outside_style() {
            return Ok((start.clone(), None)); // the matte keeps all of the crop
        }
        target = target.with_matte(&matte)?;
    }
    let painted = stylizer.optimise(&target, &cut(start)?, iterations, &mut StopOnly(progress))?;

    let mut pixels = start.flatten_all()?.to_vec1::<f32>()?;
    let patch = painted.image.flatten_all()?.to_vec1::<f32>()?;
    let mut revealed = 0;
    for y in crop.y..crop.y + crop.height {
        for x in crop.x..crop.x + crop.width {
            if reliability[y * width + x] == 0.0 {
                revealed += 1;
                for c in 0..channels {
                    pixels[(c * height + y) * width + x] = patch[(c * crop.height + y - crop.y) * crop.width + x - crop.x];
                }
            }
        }
    }
    let record = RevealedRecord {
        x: crop.x,
        y: crop.y,
        width: crop.width,
        height: crop.height,
        pixels: revealed,
        iterations: painted.iterations,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((Tensor::from_vec(pixels, start.shape(), start.device())?, Some(record)))
}

/// Passes a stop request on, and nothing of the crop's iterations (the frame's progress counts
/// the frame's own).
struct StopOnly<'a>(&'a mut dyn Progress);

impl Progress for StopOnly<'_> {
    fn iteration(&mut self, _done: usize, _total: usize, _loss: f64) {}

    fn should_stop(&self) -> bool {
        self.0.should_stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mask of a 96×64 frame, reliable but where `unreliable` says.
    fn mask(unreliable: impl Fn(usize, usize) -> bool) -> Vec<f32> {
        (0..64).flat_map(|y| (0..96).map(move |x| (x, y))).map(|(x, y)| if unreliable(x, y) { 0.0 } else { 1.0 }).collect()
    }

    #[test]
    fn a_band_revealed_at_an_edge_is_cropped_with_its_context() {
        // A pan to the right reveals the last 5 columns.
        let crop = revealed_crop(&mask(|x, _| x >= 91), 96, 64, 16).unwrap();
        assert_eq!(crop, Crop { x: 80 - CONTEXT, y: 0, width: 96 - 80 + CONTEXT, height: 64 });
        // A patch in the middle: it fills 37% of tiles x 32..64, y 16..32, and 12% of the two
        // below (not revealed).
        let crop = revealed_crop(&mask(|x, y| (40..56).contains(&x) && (20..36).contains(&y)), 96, 64, 16).unwrap();
        assert_eq!(crop, Crop { x: 32 - CONTEXT, y: 16 - CONTEXT, width: 64 - 32 + 2 * CONTEXT, height: 32 - 16 + 2 * CONTEXT });
    }

    #[test]
    fn scattered_boundary_pixels_and_a_frame_mostly_revealed_are_not_cropped() {
        // Every 7th pixel unreliable: 14% of each tile.
        assert_eq!(revealed_crop(&mask(|x, y| (x + y * 96) % 7 == 0), 96, 64, 16), None);
        assert_eq!(revealed_crop(&mask(|_, _| false), 96, 64, 16), None);
        // Revealed tiles at both ends: their crop would be the whole frame.
        assert_eq!(revealed_crop(&mask(|x, _| !(8..88).contains(&x)), 96, 64, 16), None);
    }

    #[test]
    fn a_small_crop_is_widened_to_the_networks_least_side() {
        // One revealed tile in the corner: 16 + 16 context = 32 each way; the network needs 40.
        let crop = revealed_crop(&mask(|x, y| x < 16 && y < 16), 96, 64, 40).unwrap();
        assert_eq!((crop.x, crop.y, crop.width, crop.height), (0, 0, 40, 40));
    }
}
