//! Forecast metrics: pure functions on slices, used by evaluation and early stopping.
//!
//! For one forecast window with prediction ŷ and truth y (horizon H, D variables) and σ_d the
//! per-variable standard deviation of the training split, the per-step error is
//!
//! e_t = sqrt( mean_d (ŷ_{t,d} − y_{t,d})² ) / mean_d σ_d,
//!
//! the window's NRMSE is mean_t e_t, and a dataset's NRMSE is the **median** over test windows
//! (Teutsch & Mäder, "Flipped Classroom", TMLR 2022, which Hofmann et al. 2025 follow). The valid
//! prediction time (VPT) is the 0-based index of the first step whose e_t exceeds a threshold
//! (default 0.4), or H if none does; in Lyapunov times it is VPT·Δt·λ.

use serde::{Deserialize, Serialize};

use crate::data::window::WindowSpec;
use crate::error::{Error, Result};

/// The default VPT threshold on e_t.
pub const VPT_THRESHOLD: f64 = 0.4;

/// Per-step errors e_t of one window; `pred` and `truth` are `horizon × vars`, row-major.
///
/// # Panics
/// If the slices' lengths are not `horizon · sigma.len()`.
pub fn step_errors(pred: &[f64], truth: &[f64], sigma: &[f64]) -> Vec<f64> {
    let vars = sigma.len();
    assert_eq!(
        pred.len(),
        truth.len(),
        "prediction and truth should have one shape"
    );
    assert_eq!(
        pred.len() % vars,
        0,
        "rows should have one value per variable"
    );
    let scale = sigma.iter().sum::<f64>() / vars as f64;
    pred.chunks_exact(vars)
        .zip(truth.chunks_exact(vars))
        .map(|(p, y)| {
            let mse = p.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / vars as f64;
            mse.sqrt() / scale
        })
        .collect()
}

/// The window's NRMSE: the mean of its per-step errors.
pub fn window_nrmse(errors: &[f64]) -> f64 {
    errors.iter().sum::<f64>() / errors.len() as f64
}

/// Valid prediction time in steps: the index of the first error above `threshold` (or NaN: an
/// overflowed forecast), or the horizon if none is.
pub fn vpt(errors: &[f64], threshold: f64) -> usize {
    errors
        .iter()
        .position(|e| e.is_nan() || *e > threshold)
        .unwrap_or(errors.len())
}

/// The median (mean of the two middle values for an even count). A NaN counts as +∞: an error
/// that overflowed (a diverging closed-loop forecast) is larger than any finite one.
///
/// # Panics
/// If `values` is empty.
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "the median of nothing is undefined");
    let mut sorted: Vec<f64> = values
        .iter()
        .map(|v| if v.is_nan() { f64::INFINITY } else { *v })
        .collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// Everything evaluation reports about a set of forecast windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastReport {
    /// Number of windows.
    pub windows: usize,
    /// Median over windows of the window NRMSE (the headline number).
    pub nrmse_median: f64,
    /// Mean over windows of the window NRMSE.
    pub nrmse_mean: f64,
    /// Mean over windows of e_t, for each horizon step t.
    pub nrmse_per_step: Vec<f64>,
    /// Per variable d: sqrt(mean over windows and steps of (ŷ − y)²) / σ_d.
    pub nrmse_per_var: Vec<f64>,
    /// Median over windows of the valid prediction time, in steps.
    pub vpt_median_steps: f64,
    /// The same in Lyapunov times (VPT·Δt·λ), when the exponent is known.
    pub vpt_median_lyapunov: Option<f64>,
    /// The VPT threshold used.
    pub vpt_threshold: f64,
}

/// Scores forecast windows. `preds` and `truths` hold one `horizon × vars` row-major block per
/// window, back to back; `sigma` is the training split's per-variable standard deviation;
/// `dt_lambda` is Δt·λ when the exponent is known.
pub fn evaluate(
    preds: &[f64],
    truths: &[f64],
    horizon: usize,
    sigma: &[f64],
    threshold: f64,
    dt_lambda: Option<f64>,
) -> Result<ForecastReport> {
    let vars = sigma.len();
    let block = horizon * vars;
    if block == 0
        || preds.is_empty()
        || !preds.len().is_multiple_of(block)
        || preds.len() != truths.len()
    {
        return Err(Error::ShapeMismatch {
            what: "forecast windows".into(),
            expected: format!("a multiple of {horizon} steps × {vars} variables, same for truth"),
            got: format!("{} predicted and {} true values", preds.len(), truths.len()),
        });
    }
    let windows = preds.len() / block;
    let mut per_window = Vec::with_capacity(windows);
    let mut vpts = Vec::with_capacity(windows);
    let mut per_step = vec![0.0; horizon];
    let mut sq_per_var = vec![0.0; vars];
    for (p, y) in preds.chunks_exact(block).zip(truths.chunks_exact(block)) {
        let errors = step_errors(p, y, sigma);
        per_window.push(window_nrmse(&errors));
        vpts.push(vpt(&errors, threshold) as f64);
        for (acc, e) in per_step.iter_mut().zip(&errors) {
            *acc += e / windows as f64;
        }
        for (i, (a, b)) in p.iter().zip(y).enumerate() {
            sq_per_var[i % vars] += (a - b).powi(2);
        }
    }
    let count = (windows * horizon) as f64;
    let nrmse_per_var = sq_per_var
        .iter()
        .zip(sigma)
        .map(|(sq, s)| (sq / count).sqrt() / s)
        .collect();
    let vpt_median_steps = median(&vpts);
    Ok(ForecastReport {
        windows,
        nrmse_median: median(&per_window),
        nrmse_mean: per_window.iter().sum::<f64>() / windows as f64,
        nrmse_per_step: per_step,
        nrmse_per_var,
        vpt_median_steps,
        vpt_median_lyapunov: dt_lambda.map(|dl| vpt_median_steps * dl),
        vpt_threshold: threshold,
    })
}

/// Scores the persistence forecast — the last observed state repeated over the horizon — on the
/// windows starting at `starts` of a row-major series with `sigma.len()` variables. Every model
/// must beat it.
pub fn persistence(
    values: &[f64],
    starts: &[usize],
    spec: WindowSpec,
    sigma: &[f64],
    threshold: f64,
    dt_lambda: Option<f64>,
) -> Result<ForecastReport> {
    let vars = sigma.len();
    let block = spec.horizon * vars;
    let mut preds = Vec::with_capacity(starts.len() * block);
    let mut truths = Vec::with_capacity(starts.len() * block);
    for &s in starts {
        let first = s + spec.lookback;
        let end = (first + spec.horizon) * vars;
        if end > values.len() {
            return Err(Error::ShapeMismatch {
                what: "persistence window".into(),
                expected: format!("at most {} samples", values.len() / vars),
                got: format!("a window ending at sample {}", first + spec.horizon),
            });
        }
        let last = &values[(first - 1) * vars..first * vars];
        for _ in 0..spec.horizon {
            preds.extend_from_slice(last);
        }
        truths.extend_from_slice(&values[first * vars..end]);
    }
    evaluate(&preds, &truths, spec.horizon, sigma, threshold, dt_lambda)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn step_errors_by_hand() {
        // Two variables with σ = (1, 3): the scale is mean σ = 2.
        // Step 0: errors (1, 1) → sqrt(1) / 2 = 0.5. Step 1: errors (3, 4) → sqrt(12.5) / 2.
        let pred = [1.0, 1.0, 3.0, 4.0];
        let truth = [0.0, 0.0, 0.0, 0.0];
        let e = step_errors(&pred, &truth, &[1.0, 3.0]);
        assert_relative_eq!(e[0], 0.5);
        assert_relative_eq!(e[1], 12.5f64.sqrt() / 2.0);
        assert_relative_eq!(window_nrmse(&e), (0.5 + 12.5f64.sqrt() / 2.0) / 2.0);
    }

    #[test]
    fn vpt_is_the_first_crossing() {
        assert_eq!(vpt(&[0.1, 0.2, 0.5, 0.1], 0.4), 2);
        assert_eq!(vpt(&[0.5, 0.1], 0.4), 0);
        assert_eq!(vpt(&[0.1, f64::NAN, 0.1], 0.4), 1);
        assert_eq!(
            vpt(&[0.1, 0.4], 0.4),
            2,
            "equal to the threshold is still valid"
        );
    }

    #[test]
    fn median_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[f64::NAN, f64::NAN, 1.0]), f64::INFINITY);
    }

    #[test]
    fn evaluate_three_windows_by_hand() {
        // One variable, σ = 1, horizon 2. Window errors |ŷ − y| per step:
        // w0: (0.1, 0.3) → NRMSE 0.2, VPT 2; w1: (0.5, 0.7) → 0.6, VPT 0; w2: (0.2, 0.6) → 0.4, VPT 1.
        let truth = [0.0; 6];
        let pred = [0.1, 0.3, 0.5, 0.7, -0.2, 0.6];
        let r = evaluate(&pred, &truth, 2, &[1.0], 0.4, Some(0.5)).unwrap();
        assert_eq!(r.windows, 3);
        assert_relative_eq!(r.nrmse_median, 0.4, epsilon = 1e-12);
        assert_relative_eq!(r.nrmse_mean, 0.4, epsilon = 1e-12);
        assert_relative_eq!(
            r.nrmse_per_step[0],
            (0.1 + 0.5 + 0.2) / 3.0,
            epsilon = 1e-12
        );
        assert_relative_eq!(r.vpt_median_steps, 1.0);
        assert_relative_eq!(r.vpt_median_lyapunov.unwrap(), 0.5);
        let mse: f64 = pred.iter().map(|v| v * v).sum::<f64>() / 6.0;
        assert_relative_eq!(r.nrmse_per_var[0], mse.sqrt(), epsilon = 1e-12);
    }

    #[test]
    fn perfect_forecast_scores_zero() {
        let y = [0.3, -1.2, 2.0, 0.7];
        let r = evaluate(&y, &y, 2, &[1.0, 2.0], VPT_THRESHOLD, None).unwrap();
        assert_eq!(r.nrmse_median, 0.0);
        assert_eq!(r.vpt_median_steps, 2.0);
    }

    #[test]
    fn persistence_by_hand() {
        // One variable rising by 1 per step, lookback 2, horizon 2: from the window at 0 the last
        // observed value is 1, the truth (2, 3): errors (1, 2), NRMSE 1.5 with σ = 1, VPT 0.
        let values = [0.0, 1.0, 2.0, 3.0, 4.0];
        let spec = WindowSpec {
            lookback: 2,
            horizon: 2,
            stride: 1,
        };
        let r = persistence(&values, &[0, 1], spec, &[1.0], 0.4, None).unwrap();
        assert_relative_eq!(r.nrmse_median, 1.5);
        assert_eq!(r.vpt_median_steps, 0.0);
        assert!(persistence(&values, &[2], spec, &[1.0], 0.4, None).is_err());
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        assert!(evaluate(&[0.0; 5], &[0.0; 5], 2, &[1.0, 1.0], 0.4, None).is_err());
        assert!(evaluate(&[0.0; 4], &[0.0; 8], 2, &[1.0, 1.0], 0.4, None).is_err());
    }
}
