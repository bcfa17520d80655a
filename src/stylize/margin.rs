//! The margin the network sees around the image: VGG reads the image wrapped around by P pixels
//! on every side (as if it tiled the plane), and the losses read the activations over the image's
//! own positions only (P / 2^(b−1) in from each side at a layer of block b). Without it, the
//! positions next to the convolutions' zero padding are ones the optimisation can tune apart
//! from the rest: it paints a frame of its own along the edges that J_style leans on (a 4-px
//! border of the photo in a 256-px painting multiplies its J_style by 15), which a pan then
//! drags inward as a seam, leaving every later frame of the pan scored far above the first
//! (docs/temporal.md). With the margin the edges are ordinary positions. Wrapping, not
//! mirroring: a mirror at the edge rewards strokes at right angles to it (they continue in their
//! reflection), which filled the edges with bars.

/// The margin of a video's frames painted in one level, by default (src/cli/build.rs): one
/// position at relu4_1, where positions are 8 px apart. On a fast pan it took the warm frames'
/// 95th-percentile style ratio from 2.81 to 1.61, as 16 px did (1.59), for
/// (272 × 208)/(256 × 192) = 1.15× the pixels at 256 px instead of 1.31× (docs/temporal.md).
pub const DEFAULT_VIDEO_MARGIN: usize = 8;

/// Where row or column `i` of a margin of `p` around a side of `n` reads from (`i` counted
/// from the margin's start): the image wrapped around.
fn source_of(i: usize, n: usize, p: usize) -> usize {
    (i as isize - p as isize).rem_euclid(n as isize) as usize
}

/// For each row (or column) of a side of `n` with a margin of `p`, the one it reads.
pub fn source_indices(n: usize, p: usize) -> Vec<u32> {
    (0..n + 2 * p).map(|i| source_of(i, n, p) as u32).collect()
}

/// `planes` planes of `h × w` with the margin `p` around each: planes of `(h + 2p) × (w + 2p)`.
pub fn pad(planes: &[f32], (channels, h, w): (usize, usize, usize), p: usize) -> Vec<f32> {
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let columns: Vec<usize> = (0..pw).map(|x| source_of(x, w, p)).collect();
    let mut out = Vec::with_capacity(channels * ph * pw);
    for plane in planes.chunks_exact(h * w) {
        for y in 0..ph {
            let row = &plane[source_of(y, h, p) * w..][..w];
            out.extend(columns.iter().map(|&x| row[x]));
        }
    }
    out
}

/// The adjoint of [`pad`]: a gradient over the padded planes summed back onto the pixels each
/// padded position reads.
pub fn fold(gradient: &[f32], (channels, h, w): (usize, usize, usize), p: usize) -> Vec<f32> {
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let columns: Vec<usize> = (0..pw).map(|x| source_of(x, w, p)).collect();
    let mut out = vec![0f32; channels * h * w];
    for (padded, plane) in gradient.chunks_exact(ph * pw).zip(out.chunks_exact_mut(h * w)) {
        for y in 0..ph {
            let row = &mut plane[source_of(y, h, p) * w..][..w];
            for (&x, g) in columns.iter().zip(&padded[y * pw..][..pw]) {
                row[x] += g;
            }
        }
    }
    out
}

/// Where a layer's activations over the image's own positions lie in those computed with the
/// margin: `off` positions in from the top and the left, `h × w` of them (the image's own size at
/// that layer, so that a matte or a content target made without the margin lines up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub off: usize,
    pub h: usize,
    pub w: usize,
}

impl Window {
    /// The window at a layer of VGG block `block` (1-based) for an image of `h × w` with a margin
    /// of `p`: each pooling halves the margin and the image (rounding down, as the pooling does).
    pub fn at_block(p: usize, (h, w): (usize, usize), block: usize) -> Window {
        let halvings = block - 1;
        Window { off: p >> halvings, h: h >> halvings, w: w >> halvings }
    }

    /// Whether the window is the whole of a layer of `h × w` (no margin there).
    pub fn is_whole(&self, (h, w): (usize, usize)) -> bool {
        self.off == 0 && self.h == h && self.w == w
    }
}

/// The window's part of `channels` planes of `h × w`.
pub fn crop(planes: &[f32], (channels, h, w): (usize, usize, usize), window: Window) -> Vec<f32> {
    let mut out = Vec::with_capacity(channels * window.h * window.w);
    for plane in planes.chunks_exact(h * w) {
        for y in window.off..window.off + window.h {
            out.extend_from_slice(&plane[y * w + window.off..][..window.w]);
        }
    }
    out
}

/// The adjoint of [`crop`]: the window's planes placed in zero planes of `h × w`.
pub fn uncrop(inner: &[f32], channels: usize, window: Window, (h, w): (usize, usize)) -> Vec<f32> {
    let mut out = vec![0f32; channels * h * w];
    for (plane, inner) in out.chunks_exact_mut(h * w).zip(inner.chunks_exact(window.h * window.w)) {
        for y in 0..window.h {
            plane[(y + window.off) * w + window.off..][..window.w].copy_from_slice(&inner[y * window.w..][..window.w]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_continues_from_the_opposite_side() {
        // One plane 2 × 3: rows [1 2 3], [4 5 6], a margin of 1; and a margin wider than the image.
        let padded = pad(&[1., 2., 3., 4., 5., 6.], (1, 2, 3), 1);
        #[rustfmt::skip]
        assert_eq!(padded, vec![
            6., 4., 5., 6., 4.,
            3., 1., 2., 3., 1.,
            6., 4., 5., 6., 4.,
            3., 1., 2., 3., 1.,
        ]);
        assert_eq!(pad(&[1., 2.], (1, 1, 2), 3), [2., 1., 2., 1., 2., 1., 2., 1.].repeat(7));
    }

    #[test]
    fn fold_and_uncrop_are_the_adjoints_of_pad_and_crop() {
        // <pad(x), y> = <x, fold(y)> and <crop(u), v> = <u, uncrop(v)> for arbitrary values.
        let (c, h, w, p) = (2, 5, 7, 2);
        let x: Vec<f32> = (0..c * h * w).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let y: Vec<f32> = (0..c * (h + 2 * p) * (w + 2 * p)).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
        assert_eq!(dot(&pad(&x, (c, h, w), p), &y), dot(&x, &fold(&y, (c, h, w), p)));
        let window = Window::at_block(p, (h, w), 1);
        let inner = crop(&y, (c, h + 2 * p, w + 2 * p), window);
        assert_eq!(dot(&inner, &x), dot(&y, &uncrop(&x, c, window, (h + 2 * p, w + 2 * p))));
        assert_eq!(crop(&pad(&x, (c, h, w), p), (c, h + 2 * p, w + 2 * p), window), x);
    }

    #[test]
    fn a_window_is_the_image_own_size_at_every_depth() {
        // 44 × 30 with a margin of 8: pooled with the margin, block 5 is 3 × 2 (60/16, 46/16); the
        // image's own part is 2 × 1 (44/16, 30/16), at offset 0.
        assert_eq!(Window::at_block(8, (30, 44), 5), Window { off: 0, h: 1, w: 2 });
        assert_eq!(Window::at_block(8, (30, 44), 2), Window { off: 4, h: 15, w: 22 });
        assert!(Window::at_block(0, (30, 44), 3).is_whole((7, 11)));
    }
}
