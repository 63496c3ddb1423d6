//! Integration of an [`OdeSystem`] with DOP853 (an 8th-order Dormand–Prince method with
//! step-size control and dense output; see `src/systems/dop853.rs`).
//!
//! [`advance`] carries a state forward (a transient, a Lyapunov renormalisation interval);
//! [`sample`] records a trajectory at a fixed interval by dense output. Both report progress,
//! stop with [`Error::NonFinite`] when the state blows up, and are deterministic: the same inputs
//! give bit-identical outputs.

use super::OdeSystem;
use super::dop853::{Outputs, integrate};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Tolerances of the adaptive integrator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

impl Default for Tolerances {
    /// rtol = atol = 1e-10, SPEC.md §2's default for dataset generation.
    fn default() -> Self {
        Self {
            rtol: 1e-10,
            atol: 1e-10,
        }
    }
}

/// Integrates from `y0` at `t0` for `duration` and returns the final state.
pub fn advance(
    system: &dyn OdeSystem,
    y0: &[f64],
    t0: f64,
    duration: f64,
    tol: Tolerances,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    check_inputs(system, y0, duration)?;
    integrate(system, y0, t0, t0 + duration, tol, None, progress)
}

/// Records `samples` states at `t0, t0 + dt, ...` by dense output, row-major
/// (`samples × dim`), starting with `y0` itself.
pub fn sample(
    system: &dyn OdeSystem,
    y0: &[f64],
    t0: f64,
    dt: f64,
    samples: usize,
    tol: Tolerances,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    check_inputs(system, y0, dt)?;
    crate::error::ensure_counts(&[("samples", samples)])?;
    crate::error::ensure_positive("dt", dt)?;
    let n = y0.len();
    let mut rows = vec![f64::NAN; samples * n];
    let mut sink = |i: usize, y: &[f64]| rows[i * n..(i + 1) * n].copy_from_slice(y);
    let outputs = Outputs {
        dt,
        count: samples,
        sink: &mut sink,
    };
    let t_end = t0 + samples.saturating_sub(1) as f64 * dt;
    integrate(system, y0, t0, t_end, tol, Some(outputs), progress)?;
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "the integrated state".into(),
            at: format!("t = {}", t0 + (i / n) as f64 * dt),
        });
    }
    Ok(rows)
}

fn check_inputs(system: &dyn OdeSystem, y0: &[f64], interval: f64) -> Result<()> {
    if y0.len() != system.dim() {
        return Err(Error::ShapeMismatch {
            what: format!("initial state of {}", system.name()),
            expected: system.dim().to_string(),
            got: y0.len().to_string(),
        });
    }
    if !(interval.is_finite() && interval >= 0.0) {
        return Err(Error::config(
            "integration interval",
            format!("must be zero or positive, got {interval}"),
        ));
    }
    if y0.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "the initial state".into(),
            at: "t = 0".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use crate::systems::{SystemName, Thomas};

    #[test]
    fn sample_returns_exactly_the_requested_points() {
        let s = Thomas::default();
        for (samples, dt) in [
            (1usize, 0.1),
            (2, 0.0497),
            (7, 0.1),
            (1000, 0.0497),
            (333, 0.3),
        ] {
            let y0 = s.initial_state();
            let rows = sample(
                &s,
                &y0,
                5.0,
                dt,
                samples,
                Tolerances::default(),
                &NoProgress,
            )
            .unwrap();
            assert_eq!(rows.len(), samples * 3);
            assert_eq!(&rows[..3], &y0[..]);
        }
    }

    /// The dense output at the last sample equals integrating straight to that time.
    #[test]
    fn dense_output_matches_direct_integration() {
        let s = SystemName::Lorenz63.build(&Default::default()).unwrap();
        let y0 = s.initial_state();
        let tol = Tolerances::default();
        let rows = sample(s.as_ref(), &y0, 0.0, 0.013, 100, tol, &NoProgress).unwrap();
        for i in [17usize, 50, 99] {
            let end = advance(s.as_ref(), &y0, 0.0, i as f64 * 0.013, tol, &NoProgress).unwrap();
            for d in 0..3 {
                let got = rows[i * 3 + d];
                assert!(
                    (got - end[d]).abs() < 1e-7 * (1.0 + end[d].abs()),
                    "{i} {got} {}",
                    end[d]
                );
            }
        }
    }
}
