//! Largest Lyapunov exponent by the tangent (variational) method.
//!
//! The state is integrated together with a tangent vector v obeying dv/dt = J(t, y)·v (the
//! system's [`OdeSystem::jvp`]); every τ the vector's growth ln‖v‖ is accumulated and v is
//! renormalised to unit length (Benettin et al., Meccanica 15, 1980). The estimate is the mean
//! growth rate after a discarded transient; several seeds (different perturbations of the initial
//! state and of v) run in parallel and give the spread.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::integrate::{Tolerances, advance};
use super::{OdeSystem, Params, SystemName, perturbed_state};
use crate::error::{Error, Result, ensure_non_negative, ensure_positive};
use crate::progress::{NoProgress, Progress};

/// Settings of the Lyapunov estimator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LyapunovConfig {
    /// Renormalisation interval τ.
    pub tau: f64,
    /// Time integrated before any growth is counted.
    pub transient: f64,
    /// Time over which growth is averaged.
    pub duration: f64,
    /// Relative tolerance of the integrator (default 1e-9).
    pub rtol: f64,
    /// Absolute tolerance of the integrator (default 1e-9).
    pub atol: f64,
    /// Number of independent runs (default 3).
    pub seeds: usize,
    /// Seed of the first run; run i uses `seed + i`.
    pub seed: u64,
    /// Standard deviation of the Gaussian perturbation of the initial state (default 1e-3).
    pub perturbation: f64,
}

impl LyapunovConfig {
    /// The defaults for a system: its τ, transient and duration from [`SystemName::defaults`].
    pub fn for_system(name: SystemName) -> Self {
        let d = name.defaults();
        Self {
            tau: d.lyapunov_tau,
            transient: d.transient,
            duration: d.lyapunov_duration,
            rtol: 1e-9,
            atol: 1e-9,
            seeds: 3,
            seed: 0,
            perturbation: 1e-3,
        }
    }

    /// Checks every field; returns the first bad one.
    pub fn validate(&self) -> Result<()> {
        ensure_positive("tau", self.tau)?;
        ensure_positive("duration", self.duration)?;
        ensure_positive("rtol", self.rtol)?;
        ensure_positive("atol", self.atol)?;
        ensure_non_negative("transient", self.transient)?;
        ensure_non_negative("perturbation", self.perturbation)?;
        if self.seeds == 0 {
            return Err(Error::config("seeds", "must be at least 1"));
        }
        if self.duration < self.tau {
            return Err(Error::config(
                "duration",
                "must be at least one interval tau",
            ));
        }
        Ok(())
    }
}

/// The estimate over several seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LyapunovEstimate {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation over seeds (0 for one seed).
    pub std: f64,
    /// One estimate per seed.
    pub per_seed: Vec<f64>,
}

impl LyapunovEstimate {
    fn from_runs(per_seed: Vec<f64>) -> Self {
        let n = per_seed.len() as f64;
        let mean = per_seed.iter().sum::<f64>() / n;
        let std = if per_seed.len() > 1 {
            (per_seed.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Self {
            mean,
            std,
            per_seed,
        }
    }

    /// Relative spread: (max − min) / |mean| over the seeds.
    pub fn spread(&self) -> f64 {
        let max = self.per_seed.iter().copied().fold(f64::MIN, f64::max);
        let min = self.per_seed.iter().copied().fold(f64::MAX, f64::min);
        (max - min) / self.mean.abs()
    }
}

/// Estimates the largest Lyapunov exponent of `system`, one thread per seed.
///
/// `progress` receives the fraction of renormalisation intervals done over all seeds.
pub fn largest_lyapunov(
    system: &dyn OdeSystem,
    cfg: &LyapunovConfig,
    progress: &dyn Progress,
) -> Result<LyapunovEstimate> {
    cfg.validate()?;
    let segments = (cfg.duration / cfg.tau).round() as usize;
    let done = AtomicUsize::new(0);
    let total = segments * cfg.seeds;
    let tick = || {
        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress.update(d as f64 / total as f64);
    };
    let runs: Vec<Result<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.seeds as u64)
            .map(|i| {
                let tick = &tick;
                std::thread::Builder::new()
                    .stack_size(32 << 20)
                    .spawn_scoped(scope, move || {
                        one_run(system, cfg, cfg.seed + i, segments, tick)
                    })
                    .expect("spawning a thread should succeed")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a Lyapunov worker should not panic"))
            .collect()
    });
    let per_seed = runs.into_iter().collect::<Result<Vec<f64>>>()?;
    Ok(LyapunovEstimate::from_runs(per_seed))
}

fn one_run(
    system: &dyn OdeSystem,
    cfg: &LyapunovConfig,
    seed: u64,
    segments: usize,
    tick: &dyn Fn(),
) -> Result<f64> {
    let tol = Tolerances {
        rtol: cfg.rtol,
        atol: cfg.atol,
    };
    let n = system.dim();
    let y0 = perturbed_state(system, seed, cfg.perturbation);
    let y = advance(system, &y0, 0.0, cfg.transient, tol, &NoProgress)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    let mut state = y;
    state.extend((0..n).map(|_| -> f64 { StandardNormal.sample(&mut rng) }));
    normalise(&mut state[n..]);
    let tangent = Tangent { base: system };
    // The first intervals align v with the most unstable direction; they are not counted.
    let skip = (segments / 10).min(10);
    let mut growth = 0.0;
    let mut t = cfg.transient;
    for i in 0..segments + skip {
        state = advance(&tangent, &state, t, cfg.tau, tol, &NoProgress)?;
        t += cfg.tau;
        let norm = normalise(&mut state[n..]);
        if !(norm.is_finite() && norm > 0.0) {
            return Err(Error::NonFinite {
                what: "the tangent vector".into(),
                at: format!("t = {t}"),
            });
        }
        if i >= skip {
            growth += norm.ln();
            tick();
        }
    }
    Ok(growth / (segments as f64 * cfg.tau))
}

fn normalise(v: &mut [f64]) -> f64 {
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    v.iter_mut().for_each(|a| *a /= norm);
    norm
}

/// A system together with its tangent dynamics: state `[y, v]`, `d[y, v]/dt = [f(y), J(y)·v]`.
struct Tangent<'a> {
    base: &'a dyn OdeSystem,
}

impl OdeSystem for Tangent<'_> {
    fn name(&self) -> &str {
        self.base.name()
    }

    fn dim(&self) -> usize {
        2 * self.base.dim()
    }

    fn var_names(&self) -> Vec<String> {
        let names = self.base.var_names();
        let tangent: Vec<String> = names.iter().map(|n| format!("d{n}")).collect();
        names.into_iter().chain(tangent).collect()
    }

    fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64]) {
        let n = self.base.dim();
        let (state, v) = y.split_at(n);
        let (dstate, dv) = dy.split_at_mut(n);
        self.base.rhs(t, state, dstate);
        self.base.jvp(t, state, v, dv);
    }

    fn initial_state(&self) -> Vec<f64> {
        let mut s = self.base.initial_state();
        s.resize(self.dim(), 0.0);
        s
    }

    fn params(&self) -> Params {
        self.base.params()
    }
}
