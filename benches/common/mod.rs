//! What the benchmarks share: the step timer, the median, settings from the environment.

use std::time::Instant;

use stylize_video::progress::Progress;

/// Records the time of each optimiser step.
pub struct StepTimes(pub Vec<Instant>);

impl Progress for StepTimes {
    fn iteration(&mut self, _: usize, _: usize, _: f64) {
        self.0.push(Instant::now());
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `$name` parsed, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
