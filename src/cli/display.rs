//! What the terminal shows while a job runs: an indicatif bar when stderr is a terminal, else a
//! plain line every few seconds (or per frame, per cell), and nothing with `--quiet`; these
//! implement the library's progress traits.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use stylize_video::jobs::progress::{CellRecord, FrameRecord, PreviewProgress, VideoProgress};
use stylize_video::progress::Progress;

/// An indicatif bar when stderr is a terminal, else a plain line every few seconds.
pub struct IterationBar {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
    /// Put before what the bar or a line says (a batch's "file 2/3 b.jpg · ").
    prefix: String,
}

impl IterationBar {
    pub fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix}{bar:30} iteration {pos}/{len}  {msg}  [{elapsed_precise}, ETA {eta}]")
                    .expect("valid template"),
            );
            bar
        });
        Self { bar, last_line: None, prefix: String::new() }
    }

    /// The same bar with `prefix` before what it says.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        if let Some(bar) = &self.bar {
            bar.set_prefix(self.prefix.clone());
        }
        self
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for IterationBar {
    fn iteration(&mut self, done: usize, total: usize, cost: f64) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(format!("J {:.4e}", cost));
            }
            None => {
                let due = self.last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if due || done == total {
                    eprintln!("{}iteration {done}/{total}  J {:.4e}", self.prefix, cost);
                    self.last_line = Some(Instant::now());
                }
            }
        }
    }
}

/// Frame-level progress of a video: an indicatif bar (frame i/N, iterations and loss of the last
/// frame, seconds per frame, ETA) on a terminal, else one plain line per frame.
pub struct FrameBar {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    done: u64,
    /// Seconds of the frames computed in this run (resumed ones cost nothing).
    computed_seconds: Vec<f64>,
    last: Option<FrameRecord>,
    /// Put before what the bar or a line says (a batch's "file 2/3 b.mp4 · ").
    prefix: String,
}

impl FrameBar {
    pub fn new() -> Self {
        Self { bar: None, total: None, done: 0, computed_seconds: Vec::new(), last: None, prefix: String::new() }
    }

    /// The same display with `prefix` before what it says.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn seconds_per_frame(&self) -> Option<f64> {
        let warm = if self.computed_seconds.len() > 1 { &self.computed_seconds[1..] } else { &self.computed_seconds[..] };
        (!warm.is_empty()).then(|| warm.iter().sum::<f64>() / warm.len() as f64)
    }

    fn summary(&self) -> String {
        let Some(last) = &self.last else { return String::new() };
        let speed = self.seconds_per_frame().map(|s| format!(", {s:.1} s/frame")).unwrap_or_default();
        format!("last frame: {} iterations, J {:.3e}{}{speed}", last.iterations, last.total, coherence(last))
    }
}

impl Default for FrameBar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for FrameBar {
    fn iteration(&mut self, done: usize, total: usize, _: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} | frame {}: iteration {done}/{total}", self.summary(), self.done + 1));
        }
    }
}

impl VideoProgress for FrameBar {
    fn begin(&mut self, total: Option<u64>) {
        self.total = total;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total.unwrap_or(0));
            let template = if total.is_some() {
                "{prefix}{bar:25} frame {pos}/{len}  {msg}  [{elapsed_precise}, ETA {eta}]"
            } else {
                "{prefix}{spinner} frame {pos}  {msg}  [{elapsed_precise}]"
            };
            bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
            bar.set_prefix(self.prefix.clone());
            bar.enable_steady_tick(Duration::from_millis(500));
            self.bar = Some(bar);
        }
    }

    fn frame(&mut self, record: &FrameRecord) {
        self.done += 1;
        // More frames than the container's duration promised (a closed timestamp discontinuity,
        // a wrong header): the count is no longer known.
        if self.total.is_some_and(|total| self.done > total) {
            self.total = None;
            if let Some(bar) = &self.bar {
                bar.set_length(self.done);
            }
        }
        if !record.resumed {
            self.computed_seconds.push(record.seconds);
        }
        let first_computed = !record.resumed && self.computed_seconds.len() == 1;
        self.last = Some(record.clone());
        if let Some(why) = &record.repaired {
            let note = format!("{}note: frame {} of the earlier run recomputed ({why})", self.prefix, record.index + 1);
            match &self.bar {
                Some(bar) => bar.println(note),
                None => eprintln!("{note}"),
            }
        }
        match &self.bar {
            Some(bar) => {
                if first_computed {
                    bar.reset_eta(); // resumed frames came for free: they say nothing of the pace
                }
                bar.set_position(self.done);
                bar.set_message(self.summary());
            }
            None => {
                let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
                let eta = match (self.total, self.seconds_per_frame()) {
                    (Some(t), Some(s)) if t > self.done => format!(", ETA {:.0} s", s * (t - self.done) as f64),
                    _ => String::new(),
                };
                let what = if record.resumed { "resumed".to_string() } else { format!("{:.1} s", record.seconds) };
                eprintln!(
                    "{}frame {}{of}  t={:.3} s  {} iterations  J {:.3e}{}  {what}{eta}",
                    self.prefix,
                    self.done,
                    record.pts_seconds,
                    record.iterations,
                    record.total,
                    coherence(record)
                );
            }
        }
    }
}

/// The frame's temporal facts for a progress line: its warping error, or that it starts a shot.
fn coherence(record: &FrameRecord) -> String {
    match (record.cut, record.warping_error) {
        (true, _) => ", shot cut".into(),
        (false, Some(e)) => format!(", warping error {e:.2e}"),
        (false, None) => String::new(),
    }
}

/// Progress of a preview grid: an indicatif bar (cell i/N, the cell's iterations, ETA) on a
/// terminal, else one plain line per cell.
#[derive(Default)]
pub struct CellBar {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    seconds: f64,
}

impl CellBar {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for CellBar {
    fn iteration(&mut self, done: usize, total: usize, cost: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("cell {}: iteration {done}/{total}, J {:.3e}", self.done + 1, cost));
        }
    }
}

impl PreviewProgress for CellBar {
    fn begin_cells(&mut self, total: usize) {
        self.total = total;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:25} cell {pos}/{len}  {msg}  [{elapsed_precise}, ETA {eta}]")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            self.bar = Some(bar);
        }
    }

    fn cell(&mut self, record: &CellRecord) {
        self.done += 1;
        self.seconds += record.seconds;
        match &self.bar {
            Some(bar) => bar.set_position(self.done as u64),
            None => {
                let left = self.total.saturating_sub(self.done);
                let eta = if left > 0 { format!(", ETA {:.0} s", self.seconds / self.done as f64 * left as f64) } else { String::new() };
                eprintln!(
                    "cell {}/{}  {}  {} iterations  J {:.3e}  {:.1} s{eta}",
                    self.done, self.total, record.label, record.iterations, record.terms.total, record.seconds
                );
            }
        }
    }
}
