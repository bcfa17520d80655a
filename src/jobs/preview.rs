//! The preview grid: settings chosen in a minute before an hour is committed. A few frames
//! spread over the clip (or one at a given time, or a still image) are each stylized as stills,
//! for each style image and each value of one swept option, and laid out in one labelled image:
//! one row per style × value (the styles are alternatives here, not blended), one column per
//! frame. The network is loaded once, each frame decoded once, each row's style targets computed
//! once; every cell is [`stylize_image`] of its frame. The layout is data
//! ([`GridLayout`]), the labels are drawn with [`crate::media::text`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::jobs::cache::StylizerCache;
use crate::jobs::progress::{CellRecord, PreviewProgress};
use crate::jobs::spec::{
    check_before_work, check_working_size, job_reads, job_writes, write_json, OptionsReport, StyleSpec, StylizeOptions,
};
use crate::jobs::pyramid::Painter;
use crate::jobs::still::stylize_image;
use crate::media::image_io;
use crate::media::paths::{self, Named};
use crate::media::text::{self, Rect, TextStyle};
use crate::media::video::{DecodeOptions, DecodedFrame, FrameSize, VideoDecoder};
use crate::stylize::stylizer::Settings;

/// Longest side of a preview cell: small, so a preview takes a minute, not an hour.
pub const DEFAULT_PREVIEW_SIZE: u32 = 192;
/// Iterations of each cell (from the content, like a still).
pub const DEFAULT_PREVIEW_ITERATIONS: usize = 50;
/// Frames spread over the clip when no time is given.
pub const DEFAULT_PREVIEW_FRAMES: usize = 3;

/// Pixel height of the labels' text.
pub const LABEL_PX: f32 = 14.0;
/// Space around a label's text, and between the cells.
pub const LABEL_PADDING: u32 = 5;
pub const CELL_GAP: u32 = 2;
const BACKGROUND: Rgb<u8> = Rgb([32, 32, 32]);
const LABEL_COLOR: Rgb<u8> = Rgb([235, 235, 235]);

/// An option a preview can sweep: one row (per style) for each of its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SweptOption {
    StyleWeight,
    StyleScale,
    ContentWeight,
    TvWeight,
}

impl SweptOption {
    pub const ALL: [SweptOption; 4] =
        [SweptOption::StyleWeight, SweptOption::StyleScale, SweptOption::ContentWeight, SweptOption::TvWeight];

    /// The command-line option's name without its dashes, as the labels show it.
    pub fn name(self) -> &'static str {
        match self {
            SweptOption::StyleWeight => "style-weight",
            SweptOption::StyleScale => "style-scale",
            SweptOption::ContentWeight => "content-weight",
            SweptOption::TvWeight => "tv-weight",
        }
    }
}

/// The swept option and its values, in row order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sweep {
    pub option: SweptOption,
    pub values: Vec<f64>,
}

/// Which frames make the columns.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PreviewFrames {
    /// This many frames spread evenly over the clip (or over `start`…`start + duration`): the
    /// frames on screen at the middles of as many equal stretches (no more than there are).
    Spread(usize),
    /// The one frame at or after this time (seconds from the start of the clip).
    At(f64),
}

/// What is previewed: a clip, or a still image (one column).
#[derive(Debug, Clone, PartialEq)]
pub enum PreviewInput {
    Video(PathBuf),
    Still(PathBuf),
}

impl PreviewInput {
    pub fn path(&self) -> &Path {
        match self {
            PreviewInput::Video(p) | PreviewInput::Still(p) => p,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PreviewJob {
    pub input: PreviewInput,
    /// Style images, each stylized on its own (one row group each).
    pub styles: Vec<PathBuf>,
    /// Style image area = frame area × this (unless swept).
    pub style_scale: f64,
    /// The option given several values, if any (its value in `settings`/`style_scale` is unused).
    pub sweep: Option<Sweep>,
    pub frames: PreviewFrames,
    /// Stretch of the clip the spread frames are taken from (`--start`, `--duration`).
    pub start: Option<f64>,
    pub duration: Option<f64>,
    /// Frames per second of an image-sequence input (see [`DecodeOptions::sequence_rate`]).
    pub sequence_rate: Option<(i32, i32)>,
    /// Longest side of each cell, in pixels.
    pub size: u32,
    /// Iterations of each cell.
    pub iterations: usize,
    /// The network and the optimisation's options shared with the other jobs.
    pub options: StylizeOptions,
    /// The grid image (PNG or JPEG by extension).
    pub output: PathBuf,
    pub report: Option<PathBuf>,
}

impl PreviewJob {
    /// The job with every option at its CLI default.
    pub fn with_defaults(input: PreviewInput, style: PathBuf, output: PathBuf) -> Self {
        PreviewJob {
            input,
            styles: vec![style],
            style_scale: 1.0,
            sweep: None,
            frames: PreviewFrames::Spread(DEFAULT_PREVIEW_FRAMES),
            start: None,
            duration: None,
            sequence_rate: None,
            size: DEFAULT_PREVIEW_SIZE,
            iterations: DEFAULT_PREVIEW_ITERATIONS,
            options: StylizeOptions::default(),
            output,
            report: None,
        }
    }

    /// Every file the job reads, named by its option.
    pub fn reads(&self) -> Vec<Named> {
        job_reads(self.input.path(), &self.styles, &self.options)
    }

    /// Every file the job writes, named by its option.
    pub fn writes(&self) -> Vec<Named> {
        job_writes("--preview", &self.output, self.report.as_deref())
    }
}

/// Where everything goes in the grid image: a band of row labels on the left, a band of column
/// labels on top, and `rows × columns` cells of `cell_width × cell_height`, with `gap` pixels
/// around every cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GridLayout {
    pub rows: usize,
    pub columns: usize,
    pub cell_width: u32,
    pub cell_height: u32,
    /// Width of the left band (the row labels).
    pub label_width: u32,
    /// Height of the top band (the column labels).
    pub header_height: u32,
    pub gap: u32,
}

impl GridLayout {
    /// The layout for cells of `cell` size and these labels (the left band fits the widest of
    /// the row labels and the `corner` label above them).
    pub fn for_labels(cell: (u32, u32), row_labels: &[String], column_labels: &[String], corner: &str) -> GridLayout {
        let widest = row_labels.iter().chain([&corner.to_string()]).map(|l| text::text_width(l, LABEL_PX)).max().unwrap_or(0);
        GridLayout {
            rows: row_labels.len(),
            columns: column_labels.len(),
            cell_width: cell.0,
            cell_height: cell.1,
            label_width: widest + 2 * LABEL_PADDING,
            header_height: text::line_height(LABEL_PX) + 2 * LABEL_PADDING,
            gap: CELL_GAP,
        }
    }

    pub fn width(&self) -> u32 {
        self.label_width + self.gap + self.columns as u32 * (self.cell_width + self.gap)
    }

    pub fn height(&self) -> u32 {
        self.header_height + self.gap + self.rows as u32 * (self.cell_height + self.gap)
    }

    /// The cell at `row`, `column` (from 0).
    pub fn cell(&self, row: usize, column: usize) -> Rect {
        Rect {
            x: self.label_width + self.gap + column as u32 * (self.cell_width + self.gap),
            y: self.header_height + self.gap + row as u32 * (self.cell_height + self.gap),
            width: self.cell_width,
            height: self.cell_height,
        }
    }

    /// The label box of a row (left band) and of a column (top band).
    pub fn row_label(&self, row: usize) -> Rect {
        Rect { x: 0, width: self.label_width, ..self.cell(row, 0) }
    }

    pub fn column_label(&self, column: usize) -> Rect {
        Rect { y: 0, height: self.header_height, ..self.cell(0, column) }
    }
}


/// What `--report` writes for a preview.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviewReport {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Size of the grid image.
    pub width: u32,
    pub height: u32,
    pub layout: GridLayout,
    pub styles: Vec<PathBuf>,
    pub sweep: Option<Sweep>,
    pub frames: PreviewFrames,
    pub size: u32,
    pub iterations: usize,
    /// The options every row shares (the swept option's value in `settings` is the row's, see
    /// `cells`).
    #[serde(flatten)]
    pub options: OptionsReport,
    pub cells: Vec<CellRecord>,
    /// Wall time of the whole preview (decoding, loading, every cell, writing).
    pub seconds: f64,
}

/// A row: one style with one value of the swept option.
struct Row {
    style: PathBuf,
    style_scale: f64,
    settings: Settings,
    label: String,
}

/// A column: one frame.
struct Column {
    image: RgbImage,
    t_seconds: Option<f64>,
    label: String,
}

/// Runs the preview: returns the report (also written to `job.report` when set). The grid
/// appears under its name only when complete.
pub fn run_preview(job: &PreviewJob, progress: &mut dyn PreviewProgress) -> Result<PreviewReport> {
    let started = Instant::now();
    image_io::output_format(&job.output)?;
    paths::check_writes_spare_reads(&job.reads(), &job.writes())?;
    check_before_work(&job.options, job.size, &job.output, job.report.as_deref())?;
    let rows = rows(job)?;
    for row in &rows {
        row.settings.validate()?;
    }
    let columns = columns(job)?;
    let (width, height) = columns[0].image.dimensions();
    for row in &rows {
        check_working_size(job.input.path(), job.size, (width, height), &row.settings)?;
    }
    // Every style image readable before the network is loaded.
    for style in &job.styles {
        image_io::load_rgb(style)?;
    }
    // One network for all rows; each row's style targets once.
    let cache = StylizerCache::new();
        let mut stylizers = Vec::with_capacity(rows.len());
    for row in &rows {
        let spec = StyleSpec { paths: vec![row.style.clone()], blend_weights: vec![1.0], scale: row.style_scale };
        stylizers.push(cache.stylizer(&job.options.network, &row.settings, &spec, (width, height))?);
    }

    let corner = corner_label(job, (width, height));
    let layout = GridLayout::for_labels(
        (width, height),
        &rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
        &columns.iter().map(|c| c.label.clone()).collect::<Vec<_>>(),
        &corner,
    );
    let mut grid = RgbImage::from_pixel(layout.width(), layout.height(), BACKGROUND);
    progress.begin_cells(rows.len() * columns.len());
    let mut cells = Vec::with_capacity(rows.len() * columns.len());
    for ((r, row), stylizer) in rows.iter().enumerate().zip(&stylizers) {
        // A cell is small: painted in one level.
        let painter = Painter::single(stylizer.clone());
        for (c, column) in columns.iter().enumerate() {
            let cell_started = Instant::now();
            let (image, painted) =
                stylize_image(&painter, &column.image, None, &job.options.init, job.options.seed, job.iterations, job.options.original_colors, progress)?;
            let result = painted.stylized;
            let place = layout.cell(r, c);
            image::imageops::replace(&mut grid, &image, place.x as i64, place.y as i64);
            let record = CellRecord {
                row: r,
                column: c,
                label: format!("{}, {}", row.label, column.label),
                style: row.style.clone(),
                style_scale: row.style_scale,
                content_weight: row.settings.content_weight,
                style_weight: row.settings.style_weight,
                tv_weight: row.settings.tv_weight,
                t_seconds: column.t_seconds,
                terms: result.terms,
                iterations: result.iterations,
                evaluations: result.evaluations,
                seconds: cell_started.elapsed().as_secs_f64(),
            };
            progress.cell(&record);
            cells.push(record);
        }
    }
    draw_labels(&mut grid, &layout, &rows, &columns, &corner);
    image_io::save_rgb(&grid, &job.output)?;

    let report = PreviewReport {
        input: job.input.path().to_path_buf(),
        output: job.output.clone(),
        width: layout.width(),
        height: layout.height(),
        layout,
        styles: job.styles.clone(),
        sweep: job.sweep.clone(),
        frames: job.frames,
        size: job.size,
        iterations: job.iterations,
        options: OptionsReport::new(&job.options, stylizers[0].vgg().precision()),
        cells,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(path) = &job.report {
        write_json(path, &report)?;
    }
    Ok(report)
}

/// The rows: for each style, one per value of the swept option (one when nothing is swept).
fn rows(job: &PreviewJob) -> Result<Vec<Row>> {
    if job.styles.is_empty() {
        return Err(Error::Settings("at least one style image is needed".into()));
    }
    let values: Vec<Option<f64>> = match &job.sweep {
        Some(sweep) if sweep.values.is_empty() => {
            return Err(Error::Settings(format!("--{}: no values to sweep", sweep.option.name())))
        }
        Some(sweep) => sweep.values.iter().map(|&v| Some(v)).collect(),
        None => vec![None],
    };
    let mut rows = Vec::new();
    for style in &job.styles {
        for &value in &values {
            let mut settings = job.options.settings.clone();
            let mut style_scale = job.style_scale;
            let mut label = file_name(style);
            if let (Some(sweep), Some(v)) = (&job.sweep, value) {
                match sweep.option {
                    SweptOption::StyleWeight => settings.style_weight = v,
                    SweptOption::StyleScale => style_scale = v,
                    SweptOption::ContentWeight => settings.content_weight = v,
                    SweptOption::TvWeight => settings.tv_weight = v,
                }
                label = format!("{label} · {} {}", sweep.option.name(), short_number(v));
            }
            if !(style_scale > 0.0 && style_scale.is_finite()) {
                return Err(Error::Settings(format!("--style-scale: must be > 0, got {style_scale}")));
            }
            rows.push(Row { style: style.clone(), style_scale, settings, label });
        }
    }
    Ok(rows)
}

/// The columns: the still image, or the chosen frames of the clip, at the working size.
fn columns(job: &PreviewJob) -> Result<Vec<Column>> {
    match &job.input {
        PreviewInput::Still(path) => {
            if let PreviewFrames::At(_) = job.frames {
                return Err(Error::input(path, "is a still image: --preview-at picks a frame of a video"));
            }
            let image = image_io::load_rgb(path)?;
            let (w, h) = image_io::size_for_longest_side(image.width(), image.height(), job.size);
            Ok(vec![Column { image: image_io::resize(&image, w, h), t_seconds: None, label: file_name(path) }])
        }
        PreviewInput::Video(path) => {
            let frames = pick_frames(path, job)?;
            Ok(frames
                .into_iter()
                .map(|f| Column { label: format!("t = {} s", short_time(f.pts_seconds)), t_seconds: Some(f.pts_seconds), image: f.image })
                .collect())
        }
    }
}

/// Decodes the frames the job asks for, each once (seeking to it), in time order.
fn pick_frames(path: &Path, job: &PreviewJob) -> Result<Vec<DecodedFrame>> {
    let size = FrameSize::LongestSide(job.size);
    let from = job.start.unwrap_or(0.0);
    // The frame at `t`: for --preview-at the first at or after it (as ffmpeg -ss), for a spread
    // the one on screen then (the last that starts at or before it), so that n columns over n
    // frames show each once. Either way, where no frame starts after `t` (a time after the
    // last frame starts), the last one. Decoded from a frame's length before `t`.
    let frame_at = |t: f64, frame_seconds: f64, on_screen: bool| -> Result<DecodedFrame> {
        let start = (t - frame_seconds).max(from);
        let options = DecodeOptions { size, start: Some(start), max_frames: None, sequence_rate: job.sequence_rate, ..Default::default() };
        let mut decoder = VideoDecoder::open(path, &options)?;
        let mut before = None;
        while let Some(frame) = decoder.next_frame()? {
            if on_screen && frame.pts_seconds > t + 1e-9 {
                return Ok(before.unwrap_or(frame));
            }
            if !on_screen && frame.pts_seconds >= t - 1e-9 {
                return Ok(frame);
            }
            before = Some(frame);
        }
        before.ok_or_else(|| Error::input(path, format!("no video frame at {t} s")))
    };
    let probe_options =
        DecodeOptions {
            size,
            start: job.start,
            duration: job.duration,
            max_frames: Some(1),
            sequence_rate: job.sequence_rate,
            ..Default::default()
        };
    let probe = VideoDecoder::open(path, &probe_options)?;
    let (length, frame_seconds) = (probe.info().duration_seconds, probe.info().frame_seconds());
    drop(probe);
    let targets = match job.frames {
        PreviewFrames::At(t) => {
            if job.start.is_some() || job.duration.is_some() {
                return Err(Error::Settings("--preview-at: give a time or --start/--duration, not both".into()));
            }
            if let Some(length) = length.filter(|&l| t.partial_cmp(&l) != Some(std::cmp::Ordering::Less)) {
                return Err(Error::input(path, format!("--preview-at {t} s is beyond the end of the clip ({length:.2} s long)")));
            }
            vec![t]
        }
        PreviewFrames::Spread(0) => return Err(Error::Settings("--preview-frames: must be at least 1".into())),
        PreviewFrames::Spread(n) => {
            let span = match length {
                Some(length) => (length - from).min(job.duration.unwrap_or(f64::INFINITY)),
                None => scanned_span(path, job)?,
            };
            if span.is_nan() || span <= 0.0 {
                return Err(Error::input(path, format!("no video in the requested range (--start {from} s)")));
            }
            // No more columns than the stretch has frames: each frame once, not a seek per
            // column asked for (--preview-frames 1000 on a 30-frame clip).
            let n = n.min(((span / frame_seconds).round() as usize).max(1));
            (0..n).map(|i| from + span * (2 * i + 1) as f64 / (2 * n) as f64).collect()
        }
    };
    let mut frames: Vec<DecodedFrame> = Vec::with_capacity(targets.len());
    for t in targets {
        let frame = frame_at(t, frame_seconds, matches!(job.frames, PreviewFrames::Spread(_)))?;
        // A clip with fewer frames than columns asked for: each frame once.
        if frames.last().is_none_or(|last| last.pts != frame.pts) {
            frames.push(frame);
        }
    }
    Ok(frames)
}

/// The length of the requested stretch when the container does not state the clip's length:
/// the last frame's time plus one frame, found by decoding it (tiny) once.
fn scanned_span(path: &Path, job: &PreviewJob) -> Result<f64> {
    let options = DecodeOptions {
        size: FrameSize::Exact(16, 16),
        start: job.start,
        duration: job.duration,
        max_frames: None,
        sequence_rate: job.sequence_rate,
        ..Default::default()
    };
    let mut decoder = VideoDecoder::open(path, &options)?;
    let (mut first, mut last) = (None, 0.0);
    while let Some(frame) = decoder.next_frame()? {
        first.get_or_insert(frame.pts_seconds);
        last = frame.pts_seconds;
    }
    let from = job.start.unwrap_or(0.0);
    Ok(last + decoder.info().frame_seconds() - from.min(first.unwrap_or(from)))
}

/// What the top-left corner says: the cells' size and iterations ("192×144, 50 it.").
fn corner_label(job: &PreviewJob, (width, height): (u32, u32)) -> String {
    format!("{width}×{height}, {} it.", job.iterations)
}

/// Row labels in the left band, column labels in the top band, `corner` above the row labels.
fn draw_labels(grid: &mut RgbImage, layout: &GridLayout, rows: &[Row], columns: &[Column], corner: &str) {
    let style = TextStyle { px: LABEL_PX, color: LABEL_COLOR };
    let line = text::line_height(LABEL_PX) as f32;
    let corner_box = Rect { x: 0, y: 0, width: layout.label_width, height: layout.header_height };
    let dim = TextStyle { color: Rgb([150, 150, 150]), ..style };
    text::draw_text(grid, corner, LABEL_PADDING as f32, LABEL_PADDING as f32, dim, corner_box);
    for (r, row) in rows.iter().enumerate() {
        let rect = layout.row_label(r);
        let y = rect.y as f32 + (rect.height as f32 - line) / 2.0;
        text::draw_text(grid, &row.label, (rect.x + LABEL_PADDING) as f32, y, style, rect);
    }
    for (c, column) in columns.iter().enumerate() {
        let rect = layout.column_label(c);
        // "t = 1.5 s", or "1.5 s" over a narrow cell.
        let short = column.label.trim_start_matches("t = ");
        let label = if text::text_width(&column.label, LABEL_PX) > rect.width { short } else { &column.label };
        let width = text::text_width(label, LABEL_PX);
        let x = rect.x as f32 + (rect.width as f32 - width as f32).max(0.0) / 2.0;
        text::draw_text(grid, label, x, LABEL_PADDING as f32, style, rect);
    }
}

/// The file name of a path, for labels.
fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// A setting as a person writes it: 0.5, 1, 100; 5e-4 and 2e-3 below 0.01; 1e6 from a million.
pub fn short_number(value: f64) -> String {
    if value != 0.0 && (value.abs() < 0.01 || value.abs() >= 1e6) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// Seconds with at most two decimals and no trailing zeros: 1.5, 0.04, 2.
pub fn short_time(seconds: f64) -> String {
    let text = format!("{seconds:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
