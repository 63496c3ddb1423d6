//! The one-scale Lorenz-96 model (E. N. Lorenz, ECMWF seminar, 1996):
//!
//! dX_k/dt = X_{k−1}·(X_{k+1} − X_{k−2}) − X_k + F,  k = 0..N−1, indices cyclic,
//!
//! with N = 40 and F = 8, started at X_k = F with X_0 nudged by 0.01. Its largest Lyapunov
//! exponent is about 1.68.

use super::{OdeSystem, ParamReader, Params, SystemName, cyclic_advection, cyclic_advection_jvp};
use crate::error::Result;

/// The one-scale Lorenz-96 model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lorenz96 {
    /// Number of variables `N` (at least 4).
    pub n: usize,
    /// Forcing `F`.
    pub f: f64,
}

impl Default for Lorenz96 {
    fn default() -> Self {
        Self { n: 40, f: 8.0 }
    }
}

impl Lorenz96 {
    pub(crate) fn from_params(p: &mut ParamReader<'_>) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            n: p.count("N", d.n, 4)?,
            f: p.real("F", d.f)?,
        })
    }
}

impl OdeSystem for Lorenz96 {
    fn name(&self) -> &str {
        SystemName::Lorenz96.as_str()
    }

    fn dim(&self) -> usize {
        self.n
    }

    fn var_names(&self) -> Vec<String> {
        super::indexed_names("X", self.n, 2)
    }

    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        cyclic_advection(y, dy);
        for (d, x) in dy.iter_mut().zip(y) {
            *d += self.f - x;
        }
    }

    fn jvp(&self, _t: f64, y: &[f64], v: &[f64], out: &mut [f64]) {
        cyclic_advection_jvp(y, v, out);
        for (o, vk) in out.iter_mut().zip(v) {
            *o -= vk;
        }
    }

    fn initial_state(&self) -> Vec<f64> {
        let mut x = vec![self.f; self.n];
        x[0] += 0.01;
        x
    }

    fn params(&self) -> Params {
        Params::from([("N".into(), self.n as f64), ("F".into(), self.f)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn rhs_at_hand_computed_points() {
        let s = Lorenz96 { n: 5, f: 8.0 };
        let mut dy = [0.0; 5];
        // X_k = F is a fixed point.
        s.rhs(0.0, &[8.0; 5], &mut dy);
        assert_eq!(dy, [0.0; 5]);
        // X = (1, 2, 3, 4, 5): dX_0 = X_4(X_1 − X_3) − X_0 + 8 = 5·(2 − 4) − 1 + 8 = −3,
        // dX_2 = X_1(X_3 − X_0) − X_2 + 8 = 2·(4 − 1) − 3 + 8 = 11.
        s.rhs(0.0, &[1.0, 2.0, 3.0, 4.0, 5.0], &mut dy);
        assert_relative_eq!(dy[0], -3.0);
        assert_relative_eq!(dy[2], 11.0);
    }
}
