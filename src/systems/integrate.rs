//! Integration of an [`OdeSystem`] with DOP853 (an 8th-order Dormand–Prince method with
//! step-size control and dense output; see `src/systems/dop853.rs`), or by choice ([`Method`])
//! with `ode_solvers`' Dopri5 or the classical RK4 at a fixed step.
//!
//! [`advance`] carries a state forward (a transient, a Lyapunov renormalisation interval);
//! [`sample`] records a trajectory at a fixed interval by dense output. Both report progress,
//! stop with [`Error::NonFinite`] when the state blows up, and are deterministic: the same inputs
//! give bit-identical outputs.

use super::OdeSystem;
use super::dop853::{Outputs, integrate};
use crate::error::{Error, Result};
use crate::progress::Progress;

pub use super::dop853::Tolerances;

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

/// The integrator a recipe names (`integrator = "rk4"` with `step`, or `--integrator rk4
/// --step H`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Integrator {
    /// chaoscast's DOP853 (the default).
    #[default]
    Dop853,
    /// `ode_solvers`' Dopri5.
    Dopri5,
    /// The classical RK4 at a fixed step.
    Rk4,
}

impl Integrator {
    /// Whether it is the default (recipes leave it out then, as before it could be chosen).
    pub fn is_default(&self) -> bool {
        *self == Self::Dop853
    }

    /// The name recipes and flags use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dop853 => "dop853",
            Self::Dopri5 => "dopri5",
            Self::Rk4 => "rk4",
        }
    }
}

impl std::str::FromStr for Integrator {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dop853" => Ok(Self::Dop853),
            "dopri5" => Ok(Self::Dopri5),
            "rk4" => Ok(Self::Rk4),
            other => Err(Error::config(
                "integrator",
                format!("unknown integrator '{other}'; use dop853, dopri5 or rk4"),
            )),
        }
    }
}

/// How a trajectory is integrated (a recipe's `integrator`, see [`crate::data::Recipe`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// chaoscast's DOP853 (8th order, step-size control, dense output of order 7): the default.
    Dop853(Tolerances),
    /// `ode_solvers`' Dopri5: Dormand–Prince 5(4) with step-size control and dense output of
    /// order 4.
    Dopri5(Tolerances),
    /// The classical fourth-order Runge–Kutta method at a fixed step (written here: `ode_solvers`'
    /// `Rk4` keeps every step in memory, 3 GB for the two-scale Lorenz-96 dataset at step 0.001;
    /// tests/it/systems.rs checks this one against it).
    Rk4 {
        /// The step h.
        step: f64,
    },
}

/// [`advance`] with any [`Method`].
pub fn advance_by(
    method: Method,
    system: &dyn OdeSystem,
    y0: &[f64],
    t0: f64,
    duration: f64,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    check_inputs(system, y0, duration)?;
    let y = match method {
        Method::Dop853(tol) => {
            return integrate(system, y0, t0, t0 + duration, tol, None, progress);
        }
        Method::Rk4 { step } => {
            crate::error::ensure_positive("step", step)?;
            let mut y = y0.to_vec();
            let whole = (duration / step).floor() as usize;
            let mut rk = Rk4::new(system.dim());
            for k in 0..whole {
                rk.step(system, t0 + k as f64 * step, &mut y, step);
            }
            let rest = duration - whole as f64 * step;
            if rest > 1e-12 * step {
                rk.step(system, t0 + whole as f64 * step, &mut y, rest);
            }
            y
        }
        Method::Dopri5(tol) => {
            if duration == 0.0 {
                return Ok(y0.to_vec());
            }
            // ode_solvers adds its end point only within a tolerance of it: ask for the dense
            // output at the piece's end on a run that ends half a piece later. Pieces of at most
            // DOPRI5_PIECE time units keep each run under ode_solvers' 100,000-step limit.
            let mut y = y0.to_vec();
            let mut t = t0;
            let end = t0 + duration;
            while t < end {
                let piece = (end - t).min(DOPRI5_PIECE);
                let out = dopri5(system, &y, t, t + 1.5 * piece, piece, tol)?;
                y = out
                    .into_iter()
                    .nth(1)
                    .ok_or_else(|| Error::Integration("Dopri5 gave no output at the end".into()))?;
                t += piece;
            }
            y
        }
    };
    progress.update(1.0);
    finite(y, t0 + duration)
}

/// [`sample`] with any [`Method`]. RK4's step must divide `dt`.
pub fn sample_by(
    method: Method,
    system: &dyn OdeSystem,
    y0: &[f64],
    t0: f64,
    dt: f64,
    samples: usize,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    let tol = match method {
        Method::Dop853(tol) => return sample(system, y0, t0, dt, samples, tol, progress),
        Method::Dopri5(tol) => tol,
        Method::Rk4 { .. } => Tolerances::default(),
    };
    check_inputs(system, y0, dt)?;
    crate::error::ensure_counts(&[("samples", samples)])?;
    crate::error::ensure_positive("dt", dt)?;
    let n = y0.len();
    let rows = match method {
        Method::Rk4 { step } => {
            let per = rk4_steps_per_sample(dt, step)?;
            let mut rows = Vec::with_capacity(samples * n);
            let mut y = y0.to_vec();
            rows.extend_from_slice(&y);
            let mut rk = Rk4::new(n);
            for i in 1..samples {
                for k in 0..per {
                    let t = t0 + (i - 1) as f64 * dt + k as f64 * step;
                    rk.step(system, t, &mut y, step);
                }
                rows.extend_from_slice(&y);
                if i % 256 == 0 {
                    progress.update(i as f64 / samples as f64);
                }
            }
            rows
        }
        _ => {
            // Outputs within 1e-9 of ode_solvers' end point are extrapolated, not interpolated:
            // each run ends half a sample after its last output. Runs of at most
            // DOPRI5_SAMPLES samples, each from the last one's final state, keep every run under
            // ode_solvers' 100,000-step limit.
            let mut rows: Vec<f64> = Vec::with_capacity(samples * n);
            rows.extend_from_slice(y0);
            let mut done = 1;
            while done < samples {
                let count = (samples - done).min(DOPRI5_SAMPLES);
                let t = t0 + (done - 1) as f64 * dt;
                let start = rows[(done - 1) * n..done * n].to_vec();
                let out = dopri5(system, &start, t, t + (count as f64 + 0.5) * dt, dt, tol)?;
                if out.len() < count + 1 {
                    return Err(Error::Integration(format!(
                        "Dopri5 gave {} of {} samples",
                        out.len(),
                        count + 1
                    )));
                }
                for row in out.into_iter().skip(1).take(count) {
                    rows.extend(row);
                }
                done += count;
            }
            rows
        }
    };
    progress.update(1.0);
    if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "the integrated state".into(),
            at: format!("t = {}", t0 + (i / n) as f64 * dt),
        });
    }
    Ok(rows)
}

/// The longest Dopri5 run of [`advance_by`], in time units.
const DOPRI5_PIECE: f64 = 10.0;
/// The most samples one Dopri5 run of [`sample_by`] records.
const DOPRI5_SAMPLES: usize = 200;

/// The RK4 steps per sample: `dt / step`, which must be a whole number.
pub fn rk4_steps_per_sample(dt: f64, step: f64) -> Result<usize> {
    crate::error::ensure_positive("step", step)?;
    let per = (dt / step).round();
    if per < 1.0 || (per * step - dt).abs() > 1e-9 * dt {
        return Err(Error::config(
            "step",
            format!(
                "RK4's step {step} must divide the sampling interval dt = {dt} a whole number of times"
            ),
        ));
    }
    Ok(per as usize)
}

fn finite(y: Vec<f64>, t: f64) -> Result<Vec<f64>> {
    if y.iter().all(|v| v.is_finite()) {
        Ok(y)
    } else {
        Err(Error::NonFinite {
            what: "the integrated state".into(),
            at: format!("t = {t}"),
        })
    }
}

/// The stage buffers of one classical RK4 step.
struct Rk4 {
    k: [Vec<f64>; 4],
    stage: Vec<f64>,
}

impl Rk4 {
    fn new(n: usize) -> Self {
        Self {
            k: std::array::from_fn(|_| vec![0.0; n]),
            stage: vec![0.0; n],
        }
    }

    /// One step of size `h` from (`t`, `y`), in place.
    fn step(&mut self, system: &dyn OdeSystem, t: f64, y: &mut [f64], h: f64) {
        let [k1, k2, k3, k4] = &mut self.k;
        system.rhs(t, y, k1);
        for ((s, y), k) in self.stage.iter_mut().zip(y.iter()).zip(k1.iter()) {
            *s = y + 0.5 * h * k;
        }
        system.rhs(t + 0.5 * h, &self.stage, k2);
        for ((s, y), k) in self.stage.iter_mut().zip(y.iter()).zip(k2.iter()) {
            *s = y + 0.5 * h * k;
        }
        system.rhs(t + 0.5 * h, &self.stage, k3);
        for ((s, y), k) in self.stage.iter_mut().zip(y.iter()).zip(k3.iter()) {
            *s = y + h * k;
        }
        system.rhs(t + h, &self.stage, k4);
        for (i, y) in y.iter_mut().enumerate() {
            *y += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
}

/// `ode_solvers`' Dopri5 from (`t0`, `y0`) to `end` with dense output every `dx` from `t0`.
fn dopri5(
    system: &dyn OdeSystem,
    y0: &[f64],
    t0: f64,
    end: f64,
    dx: f64,
    tol: Tolerances,
) -> Result<Vec<Vec<f64>>> {
    use ode_solvers::{DVector, Dopri5, System};
    struct Wrapped<'a>(&'a dyn OdeSystem);
    impl System<f64, DVector<f64>> for Wrapped<'_> {
        fn system(&self, t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
            self.0.rhs(t, y.as_slice(), dy.as_mut_slice());
        }
    }
    let mut solver = Dopri5::new(
        Wrapped(system),
        t0,
        end,
        dx,
        DVector::from_vec(y0.to_vec()),
        tol.rtol,
        tol.atol,
    );
    solver
        .integrate()
        .map_err(|e| Error::Integration(format!("Dopri5: {e:?}")))?;
    Ok(solver
        .y_out()
        .iter()
        .map(|y| y.as_slice().to_vec())
        .collect())
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

    /// The wide copies of the stepper and of the right-hand side (AVX2, AVX-512) give the
    /// baseline's bits, on the default two-scale Lorenz-96, on group sizes without their own
    /// unrolled copy, and on sizes that leave a remainder after the register blocks.
    #[test]
    fn every_vector_width_gives_the_same_bits() {
        use crate::systems::{Lorenz96TwoScale, wide};
        for (k, j) in [(36, 10), (5, 7), (4, 32), (9, 1)] {
            let s = Lorenz96TwoScale {
                k,
                j,
                ..Default::default()
            };
            let y0 = crate::systems::perturbed_state(&s, 3, 0.5);
            let tol = Tolerances {
                rtol: 1e-10,
                atol: 1e-10,
            };
            let run = || sample(&s, &y0, 0.0, 0.01, 60, tol, &NoProgress).unwrap();
            let wide_rows = run();
            let baseline_rows = wide::baseline(run);
            let same = wide_rows
                .iter()
                .zip(&baseline_rows)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "K = {k}, J = {j}: the copies differ");
        }
    }
}
