//! Per-variable z-scoring with the statistics of the training split (SPEC.md §3): models see
//! (x − mean_d) / std_d; metrics are computed on de-normalised values.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-variable mean and standard deviation of the training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Per-variable mean.
    pub mean: Vec<f64>,
    /// Per-variable population standard deviation (never zero: see [`Normalizer::fit`]).
    pub std: Vec<f64>,
}

impl Normalizer {
    /// Fits to `rows` (row-major, `vars` values per row).
    ///
    /// A constant variable has no spread to scale by; it is an error, since z-scoring it would
    /// divide by zero and a forecaster learns nothing from it.
    pub fn fit(rows: &[f64], vars: usize) -> Result<Self> {
        if vars == 0 || rows.is_empty() || !rows.len().is_multiple_of(vars) {
            return Err(Error::ShapeMismatch {
                what: "rows to normalise".into(),
                expected: format!("a non-empty multiple of {vars} values"),
                got: rows.len().to_string(),
            });
        }
        let n = (rows.len() / vars) as f64;
        let mut mean = vec![0.0; vars];
        for row in rows.chunks_exact(vars) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n;
            }
        }
        let mut var = vec![0.0; vars];
        for row in rows.chunks_exact(vars) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m).powi(2) / n;
            }
        }
        let std: Vec<f64> = var.into_iter().map(f64::sqrt).collect();
        if let Some(d) = std.iter().position(|s| !(s.is_finite() && *s > 1e-12)) {
            return Err(Error::config(
                "variables",
                format!("variable {d} is constant over the training split; leave it out"),
            ));
        }
        Ok(Self { mean, std })
    }

    /// Number of variables.
    pub fn vars(&self) -> usize {
        self.mean.len()
    }

    /// z-scores row-major values in place.
    pub fn normalize(&self, values: &mut [f64]) {
        for row in values.chunks_exact_mut(self.vars()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Inverts [`Normalizer::normalize`] in place.
    pub fn denormalize(&self, values: &mut [f64]) {
        for row in values.chunks_exact_mut(self.vars()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = *v * s + m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn fit_and_round_trip() {
        let rows = [1.0, 10.0, 3.0, 20.0, 5.0, 60.0];
        let norm = Normalizer::fit(&rows, 2).unwrap();
        assert_relative_eq!(norm.mean[0], 3.0);
        assert_relative_eq!(norm.mean[1], 30.0);
        assert_relative_eq!(norm.std[0], (8.0f64 / 3.0).sqrt());
        let mut v = rows;
        norm.normalize(&mut v);
        let col0: Vec<f64> = v.iter().step_by(2).copied().collect();
        assert_relative_eq!(col0.iter().sum::<f64>(), 0.0, epsilon = 1e-12);
        norm.denormalize(&mut v);
        for (a, b) in v.iter().zip(&rows) {
            assert_relative_eq!(a, b, epsilon = 1e-12);
        }
    }

    #[test]
    fn constant_variable_is_an_error() {
        let err = Normalizer::fit(&[1.0, 2.0, 1.0, 3.0], 2).unwrap_err();
        assert!(err.to_string().contains("variable 0 is constant"), "{err}");
    }
}
