//! The Lorenz-63 system (E. N. Lorenz, J. Atmos. Sci. 20, 1963):
//!
//! dx/dt = σ(y − x),  dy/dt = x(ρ − z) − y,  dz/dt = x·y − β·z,
//!
//! with σ = 10, ρ = 28, β = 8/3, start (1, 1, 1). Its largest Lyapunov exponent, 0.9056 in the
//! literature (Sprott, "Chaos and Time-Series Analysis", 2003), validates the estimator.

use super::{OdeSystem, ParamReader, Params, SystemName};
use crate::error::Result;

/// The Lorenz-63 system.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lorenz63 {
    /// Prandtl number `sigma`.
    pub sigma: f64,
    /// Rayleigh number `rho`.
    pub rho: f64,
    /// Geometric factor `beta`.
    pub beta: f64,
}

impl Default for Lorenz63 {
    fn default() -> Self {
        Self {
            sigma: 10.0,
            rho: 28.0,
            beta: 8.0 / 3.0,
        }
    }
}

impl Lorenz63 {
    pub(crate) fn from_params(p: &mut ParamReader<'_>) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            sigma: p.real("sigma", d.sigma)?,
            rho: p.real("rho", d.rho)?,
            beta: p.real("beta", d.beta)?,
        })
    }
}

impl OdeSystem for Lorenz63 {
    fn name(&self) -> &str {
        SystemName::Lorenz63.as_str()
    }

    fn dim(&self) -> usize {
        3
    }

    fn var_names(&self) -> Vec<String> {
        vec!["x".into(), "y".into(), "z".into()]
    }

    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        let Self { sigma, rho, beta } = *self;
        dy[0] = sigma * (y[1] - y[0]);
        dy[1] = y[0] * (rho - y[2]) - y[1];
        dy[2] = y[0] * y[1] - beta * y[2];
    }

    fn jvp(&self, _t: f64, y: &[f64], v: &[f64], out: &mut [f64]) {
        let Self { sigma, rho, beta } = *self;
        out[0] = sigma * (v[1] - v[0]);
        out[1] = (rho - y[2]) * v[0] - v[1] - y[0] * v[2];
        out[2] = y[1] * v[0] + y[0] * v[1] - beta * v[2];
    }

    fn initial_state(&self) -> Vec<f64> {
        vec![1.0, 1.0, 1.0]
    }

    fn params(&self) -> Params {
        Params::from([
            ("sigma".into(), self.sigma),
            ("rho".into(), self.rho),
            ("beta".into(), self.beta),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn rhs_at_hand_computed_points() {
        let s = Lorenz63::default();
        let mut dy = [0.0; 3];
        // (1, 1, 1): dx = 10·0, dy = 1·27 − 1, dz = 1 − 8/3.
        s.rhs(0.0, &[1.0, 1.0, 1.0], &mut dy);
        assert_relative_eq!(dy[0], 0.0);
        assert_relative_eq!(dy[1], 26.0);
        assert_relative_eq!(dy[2], 1.0 - 8.0 / 3.0, epsilon = 1e-15);
        // The non-trivial fixed point C+ = (√(β(ρ−1)), √(β(ρ−1)), ρ−1) has zero derivative.
        let q = (8.0 / 3.0 * 27.0f64).sqrt();
        s.rhs(0.0, &[q, q, 27.0], &mut dy);
        for d in dy {
            assert!(d.abs() < 1e-12, "{d}");
        }
    }
}
