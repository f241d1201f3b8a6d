//! Repeated measurements reported as median and spread.

use std::time::Instant;

/// A measurement: the median of several runs and their range.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Runs `f` once to warm up, then `runs` times, returning the median and range.
pub fn median_of(runs: usize, mut f: impl FnMut() -> f64) -> Figure {
    let _ = f();
    let mut samples: Vec<f64> = (0..runs).map(|_| f()).collect();
    samples.sort_by(f64::total_cmp);
    Figure {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

/// Nanoseconds per operation of `f(n)`, which performs `n` operations and
/// returns something derived from them (so the work cannot be optimized away).
pub fn ns_per_op(runs: usize, ops: usize, mut f: impl FnMut(usize) -> usize) -> Figure {
    median_of(runs, || {
        let start = Instant::now();
        std::hint::black_box(f(ops));
        start.elapsed().as_secs_f64() * 1e9 / ops as f64
    })
}
