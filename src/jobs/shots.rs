//! How painted a video's shots stay: each warm frame's style ratio (its J_style over its
//! shot's first frame's), each shot's median and 95th percentile of it, and the top-up that
//! gives a frame more iterations while it stays above [`STYLE_RATIO_TARGET`] (`--max-iterations`).

use crate::jobs::progress::FrameRecord;
use crate::jobs::pyramid::TopUp;

/// A warm frame whose J_style exceeds its shot's first frame's by more than this factor is
/// less painted than its shot: with `--max-iterations` it goes on (see [`TopUp`]).
pub const STYLE_RATIO_TARGET: f64 = 1.2;

/// The J_style of the current shot's first frame (the newest record that started afresh: the
/// run's first, or a cut), the reference of [`FrameRecord::style_ratio`]; none when there is
/// no such frame or its J_style is 0.
pub fn shot_reference_style(records: &[FrameRecord]) -> Option<f64> {
    let first = records.iter().rposition(|r| r.cut).unwrap_or(0);
    records.get(first).map(|r| r.style).filter(|&style| style > 0.0)
}

/// γ_temp's share for a warm frame behind its shot: in its top-up, and from its first iteration
/// when the frame before it ended behind ([`TopUp::behind`]). J_temporal holds the reliable
/// pixels to the previous painting warped bilinearly, which has lost its finest strokes, so at the
/// full weight a frame cannot get far below its start however long it runs (docs/temporal.md,
/// "the temporal cost's floor"). Measured on the fast pan's first 20 frames (256 px,
/// `--max-iterations 15`): full weight throughout 1.36 / 1.41 median / p95 style ratio; ¼ in the
/// top-up 1.27 / 1.32; 1/10 and 0 there gave no more (1.25 / 1.32, 1.24 / 1.31); ¼ also
/// throughout a frame whose predecessor was behind, in one run to the cap, 1.21 / 1.28 at 1.19×
/// the full weight's warping error. Frames that keep up with their shot (the sample, the cup)
/// never get here.
pub const BEHIND_TEMPORAL_SHARE: f32 = 0.25;

/// The top-up of a warm frame with budget `iterations`: with `max_iterations` above it and a
/// shot reference, it goes on while J_style is above [`STYLE_RATIO_TARGET`] × the reference.
/// `previous_ratio`: the style ratio the frame before it ended at (in the same shot), which makes
/// this frame [`TopUp::behind`] from the start when above the target.
pub fn top_up(
    iterations: usize,
    max_iterations: Option<usize>,
    reference_style: Option<f64>,
    previous_ratio: Option<f64>,
) -> Option<TopUp> {
    match (max_iterations, reference_style) {
        (Some(max_iterations), Some(reference_style)) if max_iterations > iterations => Some(TopUp {
            reference_style,
            ratio: STYLE_RATIO_TARGET,
            max_iterations,
            behind: previous_ratio.is_some_and(|r| r > STYLE_RATIO_TARGET),
            temporal_share: BEHIND_TEMPORAL_SHARE,
        }),
        _ => None,
    }
}

/// Sets each record's style ratio: J_style over its shot's first frame's among `records` (a
/// whole clip's, in order; the first and each cut start a shot).
pub fn set_style_ratios(records: &mut [FrameRecord]) {
    let mut reference = None;
    for (i, record) in records.iter_mut().enumerate() {
        if i == 0 || record.cut {
            reference = Some(record.style).filter(|&s| s > 0.0);
        }
        record.style_ratio = reference.map(|r| record.style / r);
    }
}

/// How painted one shot's warm frames stayed, against its first frame.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShotFigures {
    /// Index of the shot's first frame.
    pub first_frame: u64,
    pub frames: u64,
    /// Median and 95th percentile (nearest rank) of the warm frames' style ratios; none for a
    /// shot of one frame.
    pub median_style_ratio: Option<f64>,
    pub p95_style_ratio: Option<f64>,
    /// Mean iterations of its warm frames.
    pub warm_iterations: Option<f64>,
}

/// The shots of `records` (a new one at the first record and at each cut) and their figures.
pub fn shot_figures(records: &[FrameRecord]) -> Vec<ShotFigures> {
    let mut shots: Vec<Vec<&FrameRecord>> = Vec::new();
    for record in records {
        match shots.last_mut() {
            Some(shot) if !record.cut => shot.push(record),
            _ => shots.push(vec![record]),
        }
    }
    shots
        .into_iter()
        .map(|shot| {
            let warm = &shot[1..];
            let mut ratios: Vec<f64> = warm.iter().filter_map(|r| r.style_ratio).collect();
            ratios.sort_by(f64::total_cmp);
            let rank = |q: f64| (!ratios.is_empty()).then(|| ratios[((q * ratios.len() as f64).ceil() as usize).clamp(1, ratios.len()) - 1]);
            ShotFigures {
                first_frame: shot[0].index,
                frames: shot.len() as u64,
                median_style_ratio: rank(0.5),
                p95_style_ratio: rank(0.95),
                warm_iterations: (!warm.is_empty()).then(|| warm.iter().map(|r| r.iterations as f64).sum::<f64>() / warm.len() as f64),
            }
        })
        .collect()
}
