//! The Thomas cyclically symmetric attractor, in the form used by the `dysts` benchmark:
//!
//! dx/dt = −a·x + b·sin y,  dy/dt = −a·y + b·sin z,  dz/dt = −a·z + b·sin x,
//!
//! with a = 1.85, b = 10 and initial state (2.199442, 2.3634225, 3.220197) (SPEC.md §2; R. Thomas,
//! Int. J. Bifurcation and Chaos 9, 1999). Its largest Lyapunov exponent is about 0.49–0.50.

use super::{OdeSystem, ParamReader, Params, SystemName};
use crate::error::Result;

/// The Thomas system with its two parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thomas {
    /// Damping `a`.
    pub a: f64,
    /// Forcing amplitude `b`.
    pub b: f64,
}

impl Default for Thomas {
    fn default() -> Self {
        Self { a: 1.85, b: 10.0 }
    }
}

impl Thomas {
    pub(crate) fn from_params(p: &mut ParamReader<'_>) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            a: p.real("a", d.a)?,
            b: p.real("b", d.b)?,
        })
    }
}

impl OdeSystem for Thomas {
    fn name(&self) -> &str {
        SystemName::Thomas.as_str()
    }

    fn dim(&self) -> usize {
        3
    }

    fn var_names(&self) -> Vec<String> {
        vec!["x".into(), "y".into(), "z".into()]
    }

    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        let Self { a, b } = *self;
        dy[0] = -a * y[0] + b * y[1].sin();
        dy[1] = -a * y[1] + b * y[2].sin();
        dy[2] = -a * y[2] + b * y[0].sin();
    }

    fn jvp(&self, _t: f64, y: &[f64], v: &[f64], out: &mut [f64]) {
        let Self { a, b } = *self;
        out[0] = -a * v[0] + b * y[1].cos() * v[1];
        out[1] = -a * v[1] + b * y[2].cos() * v[2];
        out[2] = -a * v[2] + b * y[0].cos() * v[0];
    }

    fn initial_state(&self) -> Vec<f64> {
        vec![2.199442, 2.3634225, 3.220197]
    }

    fn params(&self) -> Params {
        Params::from([("a".into(), self.a), ("b".into(), self.b)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn rhs_at_hand_computed_points() {
        let s = Thomas::default();
        let mut dy = [0.0; 3];
        // At the origin every term vanishes: the origin is a fixed point.
        s.rhs(0.0, &[0.0, 0.0, 0.0], &mut dy);
        assert_eq!(dy, [0.0; 3]);
        // At (π/2, 0, π/2): dx = −1.85·π/2 + 10·sin 0, dy = −0 + 10·sin(π/2), dz = −1.85·π/2 + 10·sin(π/2).
        let h = std::f64::consts::FRAC_PI_2;
        s.rhs(0.0, &[h, 0.0, h], &mut dy);
        assert_relative_eq!(dy[0], -1.85 * h, epsilon = 1e-12);
        assert_relative_eq!(dy[1], 10.0, epsilon = 1e-12);
        assert_relative_eq!(dy[2], -1.85 * h + 10.0, epsilon = 1e-12);
    }
}
