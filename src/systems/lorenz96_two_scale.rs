//! The two-scale Lorenz-96 model (E. N. Lorenz, 1996), K slow variables X, each coupled to J fast
//! variables Y:
//!
//! dX_k/dt = X_{k−1}(X_{k+1} − X_{k−2}) − X_k + F − (h·c/b)·Σ_j Y_{j,k}
//!
//! dY_{j,k}/dt = −c·b·Y_{j+1,k}(Y_{j+2,k} − Y_{j−1,k}) − c·Y_{j,k} + (h·c/b)·X_k
//!
//! with cyclic indices; the Y ring runs over all K·J fast variables (Y_{J+1,k} = Y_{1,k+1}).
//! Defaults: K = 36, J = 10, h = 1, b = 10, c = 10, F = 20 (largest exponent ≈ 20; F = 10 gives
//! ≈ 10). State layout: the K slow variables, then the fast ones with Y_{j,k} at index K + k·J + j.
//! Initial state: X_k = F with X_0 nudged by 0.01, Y = 0 (the seeded perturbation makes it generic).

use super::{OdeSystem, ParamReader, Params, SystemName, cyclic_advection, cyclic_advection_jvp};
use crate::error::Result;

/// The two-scale Lorenz-96 model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lorenz96TwoScale {
    /// Number of slow variables `K` (at least 4).
    pub k: usize,
    /// Fast variables per slow variable `J`.
    pub j: usize,
    /// Coupling `h`.
    pub h: f64,
    /// Amplitude ratio `b`.
    pub b: f64,
    /// Time-scale ratio `c`.
    pub c: f64,
    /// Forcing `F`.
    pub f: f64,
}

impl Default for Lorenz96TwoScale {
    fn default() -> Self {
        Self {
            k: 36,
            j: 10,
            h: 1.0,
            b: 10.0,
            c: 10.0,
            f: 20.0,
        }
    }
}

impl Lorenz96TwoScale {
    pub(crate) fn from_params(p: &mut ParamReader<'_>) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            k: p.count("K", d.k, 4)?,
            j: p.count("J", d.j, 1)?,
            h: p.real("h", d.h)?,
            b: p.real("b", d.b)?,
            c: p.real("c", d.c)?,
            f: p.real("F", d.f)?,
        })
    }

    fn coupling(&self) -> f64 {
        self.h * self.c / self.b
    }
}

impl OdeSystem for Lorenz96TwoScale {
    fn name(&self) -> &str {
        SystemName::Lorenz96TwoScale.as_str()
    }

    fn dim(&self) -> usize {
        self.k * (1 + self.j)
    }

    fn var_names(&self) -> Vec<String> {
        let mut names = super::indexed_names("X", self.k, 2);
        names.extend(super::indexed_names("Y", self.k * self.j, 3));
        names
    }

    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        tendency(self, y, dy)
    }

    fn jvp(&self, _t: f64, y: &[f64], v: &[f64], out: &mut [f64]) {
        let (x, fast) = y.split_at(self.k);
        let (vx, vfast) = v.split_at(self.k);
        let (ox, ofast) = out.split_at_mut(self.k);
        let coupling = self.coupling();
        let cb = self.c * self.b;
        cyclic_advection_jvp(x, vx, ox);
        fast_advection_jvp(fast, vfast, ofast);
        let groups = vfast
            .chunks_exact(self.j)
            .zip(ofast.chunks_exact_mut(self.j));
        for (kk, (vs, os)) in groups.enumerate() {
            let sum: f64 = vs.iter().sum();
            ox[kk] += -vx[kk] - coupling * sum;
            let forcing = coupling * vx[kk];
            for (o, w) in os.iter_mut().zip(vs) {
                *o = -cb * *o - self.c * w + forcing;
            }
        }
    }

    fn initial_state(&self) -> Vec<f64> {
        let mut state = vec![0.0; self.dim()];
        state[..self.k].fill(self.f);
        state[0] += 0.01;
        state
    }

    fn params(&self) -> Params {
        Params::from([
            ("K".into(), self.k as f64),
            ("J".into(), self.j as f64),
            ("h".into(), self.h),
            ("b".into(), self.b),
            ("c".into(), self.c),
            ("F".into(), self.f),
        ])
    }
}

super::wide::dispatch! {
    /// The right-hand side, the widest copy the CPU has (bit-identical: [`super::wide`]).
    fn tendency / tendency_avx512 / tendency_avx2 = tendency_body(
        s: &Lorenz96TwoScale,
        y: &[f64],
        dy: &mut [f64],
    ) -> ()
}

/// The right-hand side in passes that vectorise: the slow advection, the fast ring's
/// advection and damping in one pass, then per group of J the coupling both ways.
#[inline(always)]
fn tendency_body(s: &Lorenz96TwoScale, y: &[f64], dy: &mut [f64]) {
    let (x, fast) = y.split_at(s.k);
    let (dx, dfast) = dy.split_at_mut(s.k);
    let coupling = s.coupling();
    cyclic_advection(x, dx);
    // The fast ring advects the other way round: Y_{i+1}(Y_{i+2} − Y_{i−1}) is the slow
    // term X_{k−1}(X_{k+1} − X_{k−2}) on the reversed ring.
    fast_advection_damping(fast, dfast, s.c * s.b, s.c);
    // The common group sizes get the length known to the compiler (the loops unrolled).
    match s.j {
        10 => couple_fixed::<10>(fast, dfast, x, dx, coupling, s.f),
        32 => couple_fixed::<32>(fast, dfast, x, dx, coupling, s.f),
        j => {
            let groups = fast.chunks_exact(j).zip(dfast.chunks_exact_mut(j));
            couple_all(groups, x, dx, coupling, s.f);
        }
    }
}

/// [`couple_all`] for groups of `J`.
#[inline(always)]
fn couple_fixed<const J: usize>(
    fast: &[f64],
    dfast: &mut [f64],
    x: &[f64],
    dx: &mut [f64],
    coupling: f64,
    f: f64,
) {
    let groups = fast
        .as_chunks::<J>()
        .0
        .iter()
        .zip(dfast.as_chunks_mut::<J>().0);
    couple_all(groups, x, dx, coupling, f);
}

/// [`couple`] over every group: `groups` pairs each group of fast variables with its tendencies.
#[inline(always)]
fn couple_all<Y: AsRef<[f64]>, D: AsMut<[f64]>>(
    groups: impl Iterator<Item = (Y, D)>,
    x: &[f64],
    dx: &mut [f64],
    coupling: f64,
    f: f64,
) {
    for (((ys, mut dys), xk), dxk) in groups.zip(x).zip(dx) {
        couple(ys.as_ref(), dys.as_mut(), *xk, dxk, coupling, f);
    }
}

/// One group's coupling both ways: `dX_k += F − X_k − (h·c/b)·Σ_j Y_{j,k}` and
/// `dY_{j,k} += (h·c/b)·X_k`.
#[inline(always)]
fn couple(ys: &[f64], dys: &mut [f64], xk: f64, dxk: &mut f64, coupling: f64, f: f64) {
    let sum: f64 = ys.iter().sum();
    *dxk += f - xk - coupling * sum;
    let forcing = coupling * xk;
    for d in dys.iter_mut() {
        *d += forcing;
    }
}

/// `out[i] = −cb·y[i+1]·(y[i+2] − y[i−1]) − c·y[i]` on a cyclic ring, the interior as one pass
/// over shifted slices (no index arithmetic, no bounds checks: it vectorises).
#[inline(always)]
fn fast_advection_damping(y: &[f64], out: &mut [f64], cb: f64, c: f64) {
    let n = y.len();
    let term = |p1: f64, p2: f64, m1: f64, v: f64| -cb * (p1 * (p2 - m1)) - c * v;
    if n < 4 {
        let at = |i: usize| y[i % n];
        for (i, o) in out.iter_mut().enumerate() {
            *o = term(at(i + 1), at(i + 2), at(i + n - 1), y[i]);
        }
        return;
    }
    out[0] = term(y[1], y[2], y[n - 1], y[0]);
    let interior = out[1..n - 2]
        .iter_mut()
        .zip(&y[1..n - 2])
        .zip(&y[2..n - 1])
        .zip(&y[3..n])
        .zip(&y[..n - 3]);
    for ((((o, v), p1), p2), m1) in interior {
        *o = term(*p1, *p2, *m1, *v);
    }
    out[n - 2] = term(y[n - 1], y[0], y[n - 3], y[n - 2]);
    out[n - 1] = term(y[0], y[1], y[n - 2], y[n - 1]);
}

/// Linearisation of the fast ring's advection `y[i+1]·(y[i+2] − y[i−1])` at `y` applied to `v`.
fn fast_advection_jvp(y: &[f64], v: &[f64], out: &mut [f64]) {
    let n = y.len();
    let term = |p1: usize, p2: usize, m1: usize| v[p1] * (y[p2] - y[m1]) + y[p1] * (v[p2] - v[m1]);
    for i in [0, n - 2, n - 1] {
        out[i] = term((i + 1) % n, (i + 2) % n, (i + n - 1) % n);
    }
    for (i, o) in out.iter_mut().enumerate().take(n - 2).skip(1) {
        *o = term(i + 1, i + 2, i - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn rhs_at_hand_computed_points() {
        // K = 4, J = 2, h = 1, b = 10, c = 10, F = 20: coupling h·c/b = 1, c·b = 100.
        let s = Lorenz96TwoScale {
            k: 4,
            j: 2,
            ..Default::default()
        };
        // X = (1, 2, 3, 4); Y ring (index k·J + j) = (1, 0, 0, 2, 0, 0, 0, 1).
        let y = [1.0, 2.0, 3.0, 4.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0];
        let mut dy = [0.0; 12];
        s.rhs(0.0, &y, &mut dy);
        // dX_0 = X_3(X_1 − X_2) − X_0 + 20 − (Y_0 + Y_1) = 4·(2 − 3) − 1 + 20 − 1 = 14.
        assert_relative_eq!(dy[0], 14.0);
        // dX_1 = X_0(X_2 − X_3) − X_1 + 20 − (Y_2 + Y_3) = 1·(3 − 4) − 2 + 20 − 2 = 15.
        assert_relative_eq!(dy[1], 15.0);
        // dY_0 = −100·Y_1(Y_2 − Y_7) − 10·Y_0 + X_0 = −100·0 − 10 + 1 = −9.
        assert_relative_eq!(dy[4], -9.0);
        // dY_2 = −100·Y_3(Y_4 − Y_1) − 10·Y_2 + X_1 = −100·2·(0 − 0) − 0 + 2 = 2.
        assert_relative_eq!(dy[6], 2.0);
        // dY_6 = −100·Y_7(Y_0 − Y_5) − 10·Y_6 + X_3 = −100·1·(1 − 0) − 0 + 4 = −96.
        assert_relative_eq!(dy[10], -96.0);
        // dY_7 = −100·Y_0(Y_1 − Y_6) − 10·Y_7 + X_3 = −100·1·(0 − 0) − 10 + 4 = −6.
        assert_relative_eq!(dy[11], -6.0);
    }

    /// The vectorised passes and the unrolled group sizes compute exactly (bit for bit) the
    /// textbook formula with cyclic indices, evaluated in the same order.
    #[test]
    fn rhs_is_the_formula_for_every_group_size() {
        for (k, j) in [(4, 1), (5, 3), (36, 10), (6, 32), (4, 33)] {
            let s = Lorenz96TwoScale {
                k,
                j,
                ..Default::default()
            };
            let y = crate::systems::perturbed_state(&s, 7, 1.0);
            let mut got = vec![0.0; s.dim()];
            s.rhs(0.0, &y, &mut got);
            let (x, fast) = y.split_at(k);
            let n = k * j;
            let coupling = s.h * s.c / s.b;
            for kk in 0..k {
                let at = |i: usize| x[i % k];
                let sum: f64 = fast[kk * j..(kk + 1) * j].iter().sum();
                let adv = at(kk + k - 1) * (at(kk + 1) - at(kk + k - 2));
                let want = adv + (s.f - x[kk] - coupling * sum);
                assert_eq!(
                    got[kk].to_bits(),
                    want.to_bits(),
                    "K = {k}, J = {j}, X_{kk}"
                );
            }
            for i in 0..n {
                let at = |m: usize| fast[m % n];
                let adv = at(i + 1) * (at(i + 2) - at(i + n - 1));
                let want = -s.c * s.b * adv - s.c * fast[i] + coupling * x[i / j];
                let got = got[k + i];
                assert_eq!(got.to_bits(), want.to_bits(), "K = {k}, J = {j}, Y_{i}");
            }
        }
    }
}
