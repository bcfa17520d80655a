//! How an optimisation reports its progress, as a small trait of plain numbers, so that the
//! library stays silent and the binary decides how to show it (a bar on a terminal, plain lines
//! in a log, nothing with `--quiet`). The video and preview jobs report more through the traits
//! of [`crate::jobs::progress`], which extend this one.
//! May import: nothing of this crate.

/// Receives an optimisation's progress.
pub trait Progress {
    /// Called after each optimisation step: `done` of at most `total` iterations, and the cost
    /// J of the image the step started from.
    fn iteration(&mut self, done: usize, total: usize, cost: f64);

    /// Asked before each step: true abandons the optimisation with [`crate::Error::Interrupted`].
    fn should_stop(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn iteration(&mut self, _: usize, _: usize, _: f64) {}
}
