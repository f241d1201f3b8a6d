//! The median of a benchmark's runs and their range, shared by the
//! benchmarks that report `median [min–max]`.

/// The median, the minimum and the maximum of `v`, which must not be empty.
pub fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
