//! Where an iteration's time goes: wall time per kind of operation, collected only when the
//! environment variable `STYLIZE_VIDEO_PROFILE` is set (the benchmark prints it with
//! `BENCH_PROFILE=1`). Off, a timed call costs one relaxed atomic load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// 0: not yet read, 1: off, 2: on.
static STATE: AtomicU8 = AtomicU8::new(0);
static TOTALS: Mutex<BTreeMap<String, (u64, f64)>> = Mutex::new(BTreeMap::new());

fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var_os("STYLIZE_VIDEO_PROFILE").is_some();
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        state => state == 2,
    }
}

/// Runs `f`, adding its wall time to the total of `what()` when profiling is on.
pub fn time<R>(what: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let started = Instant::now();
    let result = f();
    let seconds = started.elapsed().as_secs_f64();
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = totals.entry(what()).or_insert((0, 0.0));
    entry.0 += 1;
    entry.1 += seconds;
    result
}

/// The totals so far, `(what, calls, seconds)`, and clears them.
pub fn take() -> Vec<(String, u64, f64)> {
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *totals).into_iter().map(|(k, (n, s))| (k, n, s)).collect()
}
