//! Text on images, for the preview grid's labels: DejaVu Sans (embedded, see
//! `assets/fonts/README.md`) rasterised with `ab_glyph`, measured and drawn on RGB images with
//! its anti-aliasing coverage blended over the background, and clipped to a box.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

/// DejaVu Sans 2.37 (Bitstream Vera licence; DejaVu's changes public domain).
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The embedded font. It is part of the binary and checked by the tests, so parsing cannot fail
/// at run time.
fn font() -> FontRef<'static> {
    FontRef::try_from_slice(DEJAVU_SANS).expect("the embedded DejaVu Sans parses")
}

/// Text at one pixel height (the font's ascent-to-descent span).
#[derive(Debug, Clone, Copy)]
pub struct TextStyle {
    pub px: f32,
    pub color: Rgb<u8>,
}

/// The caret positions of `text`'s glyphs, left to right, and the advance after the last.
fn layout(text: &str, px: f32) -> (Vec<(GlyphId, f32)>, f32) {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = 0.0;
    let mut previous: Option<GlyphId> = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        glyphs.push((id, caret));
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    (glyphs, caret)
}

/// Width in whole pixels that `text` takes at `px`.
pub fn text_width(text: &str, px: f32) -> u32 {
    layout(text, px).1.ceil() as u32
}

/// Height in whole pixels of a line at `px` (ascent + descent).
pub fn line_height(px: f32) -> u32 {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(px));
    (scaled.ascent() - scaled.descent()).ceil() as u32
}

/// A rectangle of an image: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Draws `text` with its line's top-left corner at (`x`, `y`), blending each glyph's coverage
/// over what is there; nothing is drawn outside `clip` (nor outside the image).
pub fn draw_text(image: &mut RgbImage, text: &str, x: f32, y: f32, style: TextStyle, clip: Rect) {
    let font = font();
    let scale = PxScale::from(style.px);
    let ascent = font.as_scaled(scale).ascent();
    let (glyphs, _) = layout(text, style.px);
    let x_end = (clip.x + clip.width).min(image.width()) as i32;
    let y_end = (clip.y + clip.height).min(image.height()) as i32;
    for (id, caret) in glyphs {
        let glyph = id.with_scale_and_position(scale, point(x + caret, y + ascent));
        let Some(outline) = font.outline_glyph(glyph) else { continue }; // a space
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i32 + gx as i32;
            let py = bounds.min.y as i32 + gy as i32;
            if px < clip.x as i32 || py < clip.y as i32 || px >= x_end || py >= y_end {
                return;
            }
            let pixel = image.get_pixel_mut(px as u32, py as u32);
            let a = coverage.clamp(0.0, 1.0);
            for c in 0..3 {
                pixel[c] = (pixel[c] as f32 * (1.0 - a) + style.color[c] as f32 * a).round() as u8;
            }
        });
    }
}

/// Fills a rectangle (clipped to the image) with one colour.
pub fn fill(image: &mut RgbImage, rect: Rect, color: Rgb<u8>) {
    for y in rect.y..(rect.y + rect.height).min(image.height()) {
        for x in rect.x..(rect.x + rect.width).min(image.width()) {
            image.put_pixel(x, y, color);
        }
    }
}
