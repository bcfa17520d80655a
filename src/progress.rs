//! Progress reporting as a small trait, so the library stays silent and the binary decides how
//! to show it: an indicatif bar on a terminal, plain lines in a log, nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::stylize::LossTerms;

pub trait Progress {
    /// Called after each optimisation step; `terms` are those of the image the step started from.
    fn iteration(&mut self, done: usize, total: usize, terms: &LossTerms);

    /// Asked before each step: true abandons the optimisation with [`crate::Error::Interrupted`].
    fn should_stop(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn iteration(&mut self, _: usize, _: usize, _: &LossTerms) {}
}

/// An indicatif bar when stderr is a terminal, else a plain line every few seconds.
pub struct IterationBar {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl IterationBar {
    pub fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} iteration {pos}/{len}  {msg}  [{elapsed_precise}, ETA {eta}]")
                    .expect("valid template"),
            );
            bar
        });
        Self { bar, last_line: None }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for IterationBar {
    fn iteration(&mut self, done: usize, total: usize, terms: &LossTerms) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(format!("J {:.4e}", terms.total));
            }
            None => {
                let due = self.last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if due || done == total {
                    eprintln!("iteration {done}/{total}  J {:.4e}", terms.total);
                    self.last_line = Some(Instant::now());
                }
            }
        }
    }
}
