//! Echo state network: the reservoir-computing baseline every chaos forecaster is compared with.
//!
//! A leaky-integrator reservoir of N tanh units with a fixed random input matrix `W_in` (entries
//! from U(−σ_in, σ_in)), a fixed sparse random recurrent matrix `W` scaled to the configured
//! spectral radius ρ, and a fixed bias (U(−σ_b, σ_b)):
//!
//! ```text
//! s_t = (1 − a)·s_{t−1} + a·tanh(W_in·u_t + W·s_{t−1} + b)        (a: the leak rate)
//! ŷ_t = W_out·[s_t; u_t; 1]                                        (the forecast of u_{t+1})
//! ```
//!
//! Only the readout `W_out` is trained, in closed form: ridge regression of u_{t+1} on the features
//! [s_t; u_t; 1] collected by driving the reservoir with the training series (teacher forcing) after
//! a washout, `W_out = (ΦᵀΦ + βI)⁻¹ΦᵀY` (see [`ridge`]). To forecast, the reservoir starts from
//! zero, is warmed up on the lookback window, and then runs closed-loop over the horizon, each
//! forecast fed back as the next input. Everything random comes from the config's seed.

use burn::module::Param;
use burn::prelude::*;
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{ensure_non_negative, ensure_positive};

/// Builds an [`Esn`].
#[derive(Config, Debug)]
pub struct EsnConfig {
    /// Variables in and out (D).
    pub vars: usize,
    /// Predicted steps (H).
    pub horizon: usize,
    /// Reservoir units N (default 500).
    #[config(default = 500)]
    pub reservoir: usize,
    /// Spectral radius ρ the recurrent matrix is scaled to (default 0.9).
    #[config(default = 0.9)]
    pub spectral_radius: f64,
    /// Leak rate a in (0, 1]; 1 is a plain tanh reservoir (default 0.5).
    #[config(default = 0.5)]
    pub leak: f64,
    /// Input weights from U(−σ_in, σ_in) on z-scored inputs (default 0.5).
    #[config(default = 0.5)]
    pub input_scaling: f64,
    /// Reservoir biases from U(−σ_b, σ_b) (default 0.2).
    #[config(default = 0.2)]
    pub bias_scaling: f64,
    /// Fraction of recurrent weights that are zero, in [0, 1) (default 0.95).
    #[config(default = 0.95)]
    pub sparsity: f64,
    /// Ridge (Tikhonov) regularisation β of the readout (default 1e-6).
    #[config(default = 1e-6)]
    pub ridge: f64,
    /// Steps of the training series that only warm the reservoir up (default 100).
    #[config(default = 100)]
    pub washout: usize,
    /// Seed of the input, recurrent and bias weights (default 0).
    #[config(default = 0)]
    pub seed: u64,
}

impl EsnConfig {
    /// Checks every field; returns the first bad one.
    pub fn validate(&self) -> crate::Result<()> {
        crate::error::ensure_counts(&[
            ("vars", self.vars),
            ("horizon", self.horizon),
            ("reservoir", self.reservoir),
        ])?;
        ensure_positive("spectral radius", self.spectral_radius)?;
        ensure_positive("leak", self.leak)?;
        if self.leak > 1.0 {
            return Err(crate::Error::config(
                "leak",
                format!("must be in (0, 1], got {}", self.leak),
            ));
        }
        ensure_positive("input scaling", self.input_scaling)?;
        ensure_non_negative("bias scaling", self.bias_scaling)?;
        ensure_non_negative("ridge", self.ridge)?;
        if !(0.0..1.0).contains(&self.sparsity) {
            return Err(crate::Error::config(
                "sparsity",
                format!("must be in [0, 1), got {}", self.sparsity),
            ));
        }
        Ok(())
    }

    /// Readout features per step: N reservoir states, D inputs and a constant.
    pub fn features(&self) -> usize {
        self.reservoir + self.vars + 1
    }

    /// The fixed weights, drawn from the seed and scaled to the spectral radius.
    pub fn reservoir_weights(&self) -> crate::Result<Reservoir> {
        self.validate()?;
        let (n, d) = (self.reservoir, self.vars);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut dense = vec![0.0f64; n * n];
        for w in dense.iter_mut() {
            // Draw both numbers for every entry, so the pattern and values do not shift with ρ.
            let keep = rng.random::<f64>() >= self.sparsity;
            let value = rng.random_range(-1.0..1.0);
            if keep {
                *w = value;
            }
        }
        let radius = spectral_radius(&dense, n);
        if radius < 1e-12 {
            return Err(crate::Error::config(
                "sparsity",
                format!(
                    "{} leaves a reservoir of {n} units with no recurrent cycle (spectral radius 0); lower it",
                    self.sparsity
                ),
            ));
        }
        // Unit spectral radius first, then ρ: `Reservoir::rescaled` repeats the second step for
        // another ρ and gets the same bits as a fresh draw.
        dense.iter_mut().for_each(|w| *w /= radius);
        let unit = dense.clone();
        dense.iter_mut().for_each(|w| *w *= self.spectral_radius);
        let input = (0..n * d)
            .map(|_| rng.random_range(-self.input_scaling..self.input_scaling))
            .collect();
        let bias = (0..n)
            .map(|_| {
                if self.bias_scaling > 0.0 {
                    rng.random_range(-self.bias_scaling..self.bias_scaling)
                } else {
                    0.0
                }
            })
            .collect();
        let rows = sparse_rows(&dense, n);
        Ok(Reservoir {
            units: n,
            vars: d,
            leak: self.leak,
            input,
            recurrent: dense,
            unit,
            rows,
            bias,
        })
    }

    /// A model of this config's shapes with every weight zero, for a record to replace: what
    /// loading a trained ESN needs, without drawing the reservoir and solving its eigenvalues
    /// (seconds at a few thousand units).
    pub fn skeleton<B: Backend>(&self, device: &B::Device) -> crate::Result<Esn<B>> {
        self.validate()?;
        let (n, d) = (self.reservoir, self.vars);
        let zeros = |shape: [usize; 2]| Param::from_tensor(Tensor::zeros(shape, device));
        Ok(Esn {
            input: zeros([d, n]),
            recurrent: zeros([n, n]),
            bias: Param::from_tensor(Tensor::zeros([n], device)),
            readout: zeros([self.features(), d]),
            leak: self.leak,
            horizon: self.horizon,
        })
    }

    /// Builds the model with the fixed weights and a zero readout (fitted by
    /// [`crate::train::esn`]).
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Esn<B>> {
        let r = self.reservoir_weights()?;
        Ok(r.model(
            &vec![0.0; self.features() * self.vars],
            self.horizon,
            device,
        ))
    }
}

/// The non-zero entries of the row-major `n × n` matrix, by row.
fn sparse_rows(dense: &[f64], n: usize) -> Vec<Vec<(usize, f64)>> {
    (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| dense[i * n + j] != 0.0)
                .map(|j| (j, dense[i * n + j]))
                .collect()
        })
        .collect()
}

/// The largest eigenvalue magnitude of the row-major `n × n` matrix.
pub fn spectral_radius(matrix: &[f64], n: usize) -> f64 {
    DMatrix::from_row_slice(n, n, matrix)
        .complex_eigenvalues()
        .iter()
        .map(|l| l.norm())
        .fold(0.0, f64::max)
}

/// An ESN's fixed weights on the host, in `f64`.
#[derive(Clone, Debug)]
pub struct Reservoir {
    /// N.
    pub units: usize,
    /// D.
    pub vars: usize,
    /// The leak rate a.
    pub leak: f64,
    /// `W_in`, row-major `N × D`.
    pub input: Vec<f64>,
    /// `W`, row-major `N × N` (scaled to the spectral radius).
    pub recurrent: Vec<f64>,
    /// `W` scaled to spectral radius 1.
    unit: Vec<f64>,
    /// `W`'s non-zero entries by row, for the sequential drive.
    rows: Vec<Vec<(usize, f64)>>,
    /// `b`, N.
    pub bias: Vec<f64>,
}

impl Reservoir {
    /// One leaky update of `state` with input `u`.
    pub fn step(&self, state: &mut [f64], u: &[f64], scratch: &mut Vec<f64>) {
        scratch.clear();
        scratch.extend(self.rows.iter().enumerate().map(|(i, row)| {
            let recurrent: f64 = row.iter().map(|&(j, w)| w * state[j]).sum();
            let input: f64 = self.input[i * self.vars..(i + 1) * self.vars]
                .iter()
                .zip(u)
                .map(|(w, x)| w * x)
                .sum();
            (recurrent + input + self.bias[i]).tanh()
        }));
        let a = self.leak;
        for (s, p) in state.iter_mut().zip(scratch.iter()) {
            *s = (1.0 - a) * *s + a * p;
        }
    }

    /// Drives the reservoir from zero with `series` (row-major `T × D`, teacher forcing) and
    /// accumulates the ridge problem of predicting u_{t+1} from [s_t; u_t; 1] for
    /// `washout ≤ t < T − 1`.
    pub fn normal_equations(
        &self,
        series: &[f64],
        washout: usize,
    ) -> crate::Result<NormalEquations> {
        let (n, d) = (self.units, self.vars);
        let steps = series.len() / d;
        if steps < washout + 2 {
            return Err(crate::Error::config(
                "data",
                format!(
                    "the training split has {steps} steps; the ESN needs at least {} (a washout of \
                     {washout} and two more); use a longer series",
                    washout + 2
                ),
            ));
        }
        let f = n + d + 1;
        let rows = steps - 1 - washout;
        let mut phi = DMatrix::<f64>::zeros(rows, f);
        let mut targets = DMatrix::<f64>::zeros(rows, d);
        let mut state = vec![0.0; n];
        let mut scratch = Vec::with_capacity(n);
        for t in 0..steps - 1 {
            let u = &series[t * d..(t + 1) * d];
            self.step(&mut state, u, &mut scratch);
            if t < washout {
                continue;
            }
            let r = t - washout;
            for (k, v) in state
                .iter()
                .chain(u)
                .chain(std::iter::once(&1.0))
                .enumerate()
            {
                phi[(r, k)] = *v;
            }
            for k in 0..d {
                targets[(r, k)] = series[(t + 1) * d + k];
            }
        }
        Ok(NormalEquations {
            gram: phi.tr_mul(&phi),
            cross: phi.tr_mul(&targets),
            phi,
            targets,
        })
    }

    /// The same reservoir scaled to spectral radius `rho`, with leak rate `leak`: exactly the
    /// reservoir [`EsnConfig::reservoir_weights`] draws with those values, without drawing the
    /// weights or solving the eigenvalue problem again (what a search over ρ and a needs).
    pub fn rescaled(&self, rho: f64, leak: f64) -> Reservoir {
        let n = self.units;
        let recurrent: Vec<f64> = self.unit.iter().map(|w| w * rho).collect();
        let rows = sparse_rows(&recurrent, n);
        Reservoir {
            recurrent,
            rows,
            leak,
            ..self.clone()
        }
    }

    /// The Burn model with these weights and `readout` (row-major `[N + D + 1, D]`).
    pub fn model<B: Backend>(&self, readout: &[f64], horizon: usize, device: &B::Device) -> Esn<B> {
        let (n, d) = (self.units, self.vars);
        let f32s = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<_>>();
        // Stored transposed, for row-vector states: s·Wᵀ and u·W_inᵀ.
        let transpose = |m: &[f64], rows: usize, cols: usize| {
            let mut t = vec![0.0f32; rows * cols];
            for i in 0..rows {
                for j in 0..cols {
                    t[j * rows + i] = m[i * cols + j] as f32;
                }
            }
            t
        };
        Esn {
            input: Param::from_data(
                TensorData::new(transpose(&self.input, n, d), [d, n]),
                device,
            ),
            recurrent: Param::from_data(
                TensorData::new(transpose(&self.recurrent, n, n), [n, n]),
                device,
            ),
            bias: Param::from_data(TensorData::new(f32s(&self.bias), [n]), device),
            readout: Param::from_data(TensorData::new(f32s(readout), [n + d + 1, d]), device),
            leak: self.leak,
            horizon,
        }
    }
}

/// The teacher-forced regression problem of one reservoir: features Φ (`rows × F`), targets Y
/// (`rows × D`), and ΦᵀΦ and ΦᵀY, so several ridge values cost one solve each.
pub struct NormalEquations {
    /// Φ.
    pub phi: DMatrix<f64>,
    /// Y.
    pub targets: DMatrix<f64>,
    gram: DMatrix<f64>,
    cross: DMatrix<f64>,
}

impl NormalEquations {
    /// The readout for ridge β (row-major `[F, D]`) and its mean squared one-step error on the
    /// training features.
    pub fn solve(&self, beta: f64) -> crate::Result<(Vec<f64>, f64)> {
        let w = ridge(&self.gram, &self.cross, beta)?;
        let residual = &self.phi * &w - &self.targets;
        let mse = residual.norm_squared() / residual.len() as f64;
        let mut rows = Vec::with_capacity(w.len());
        for i in 0..w.nrows() {
            rows.extend(w.row(i).iter());
        }
        Ok((rows, mse))
    }
}

/// The ridge solution `W = (G + βI)⁻¹C` of `G = ΦᵀΦ`, `C = ΦᵀY`, by Cholesky.
pub fn ridge(gram: &DMatrix<f64>, cross: &DMatrix<f64>, beta: f64) -> crate::Result<DMatrix<f64>> {
    let mut a = gram.clone();
    for i in 0..a.nrows() {
        a[(i, i)] += beta;
    }
    let chol = a.cholesky().ok_or_else(|| {
        crate::Error::config(
            "ridge",
            format!(
                "β = {beta} leaves the readout's normal equations singular; use a larger ridge"
            ),
        )
    })?;
    Ok(chol.solve(cross))
}

/// A reservoir with a linear readout; see the module documentation.
#[derive(Module, Debug)]
pub struct Esn<B: Backend> {
    /// `W_inᵀ`, `[D, N]` (fixed).
    pub input: Param<Tensor<B, 2>>,
    /// `Wᵀ`, `[N, N]` (fixed).
    pub recurrent: Param<Tensor<B, 2>>,
    /// `b`, `[N]` (fixed).
    pub bias: Param<Tensor<B, 1>>,
    /// `W_outᵀ`, `[N + D + 1, D]` (fitted by ridge regression).
    pub readout: Param<Tensor<B, 2>>,
    leak: f64,
    horizon: usize,
}

impl<B: Backend> Esn<B> {
    /// `x`: `[batch, lookback, vars]` → forecast `[batch, horizon, vars]`: warm-up over the
    /// window from a zero state, then `horizon` closed-loop steps.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forecast(x, self.horizon)
    }

    /// As [`Self::forward`] for `horizon` closed-loop steps, any number (`[batch, horizon, vars]`).
    pub fn forecast(&self, x: Tensor<B, 3>, horizon: usize) -> Tensor<B, 3> {
        let [batch, steps, vars] = x.dims();
        let device = x.device();
        let w_in = self.input.val();
        let w = self.recurrent.val();
        let units = w.dims()[0];
        let bias = self.bias.val().unsqueeze::<2>();
        let readout = self.readout.val();
        let a = self.leak;
        let update = |s: Tensor<B, 2>, drive: Tensor<B, 2>| {
            let fresh = (drive + s.clone().matmul(w.clone())).tanh();
            if a == 1.0 {
                fresh
            } else {
                s.mul_scalar(1.0 - a) + fresh.mul_scalar(a)
            }
        };
        // Input projections of the whole window at once.
        let drive = (x
            .clone()
            .reshape([batch * steps, vars])
            .matmul(w_in.clone())
            + bias.clone())
        .reshape([batch, steps, units]);
        let mut s = Tensor::<B, 2>::zeros([batch, units], &device);
        for t in 0..steps {
            s = update(s, drive.clone().narrow(1, t, 1).reshape([batch, units]));
        }
        let ones = Tensor::<B, 2>::ones([batch, 1], &device);
        let mut u = x.narrow(1, steps - 1, 1).reshape([batch, vars]);
        let mut out = Vec::with_capacity(horizon);
        for k in 0..horizon {
            let y = Tensor::cat(vec![s.clone(), u, ones.clone()], 1).matmul(readout.clone());
            out.push(y.clone().unsqueeze_dim::<3>(1));
            if k + 1 < horizon {
                s = update(s, y.clone().matmul(w_in.clone()) + bias.clone());
            }
            u = y;
        }
        Tensor::cat(out, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ‖Wᵏ‖^(1/k) → ρ(W) (Gelfand's formula), computed with renormalised power steps in `f64`: an
    /// estimate that shares no code with the eigenvalue solver.
    fn gelfand_radius(w: &[f64], n: usize, k: usize) -> f64 {
        let mut m = DMatrix::<f64>::identity(n, n);
        let w = DMatrix::from_row_slice(n, n, w);
        let mut log_norm = 0.0;
        for _ in 0..k {
            m = &w * m;
            let norm = m.norm();
            log_norm += norm.ln();
            m /= norm;
        }
        (log_norm / k as f64).exp()
    }

    #[test]
    fn reservoir_is_scaled_to_the_configured_spectral_radius() {
        for (rho, sparsity) in [(0.9, 0.8), (1.3, 0.5)] {
            let cfg = EsnConfig::new(2, 3)
                .with_reservoir(40)
                .with_spectral_radius(rho)
                .with_sparsity(sparsity)
                .with_seed(3);
            let r = cfg.reservoir_weights().unwrap();
            let exact = spectral_radius(&r.recurrent, 40);
            assert!((exact - rho).abs() < 1e-9, "eigenvalues: {exact} vs {rho}");
            let gelfand = gelfand_radius(&r.recurrent, 40, 3000);
            assert!(
                (gelfand - rho).abs() < 0.01 * rho,
                "Gelfand estimate {gelfand} vs {rho}"
            );
            let zeros = r.recurrent.iter().filter(|w| **w == 0.0).count() as f64 / 1600.0;
            assert!((zeros - sparsity).abs() < 0.05, "zero fraction {zeros}");
            assert!(r.input.iter().all(|w| w.abs() <= cfg.input_scaling));
        }
    }

    /// Ridge on a problem small enough to solve by hand: y = 2·x₁ − x₂ with features x₁, x₂.
    #[test]
    fn ridge_matches_the_hand_solution() {
        let phi = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let y = DMatrix::from_row_slice(3, 1, &[2.0, -1.0, 1.0]);
        // ΦᵀΦ = [[2, 1], [1, 2]], ΦᵀY = [3, 0]; with β = 0.5 the system is [[2.5, 1], [1, 2.5]],
        // whose inverse is [[2.5, −1], [−1, 2.5]] / 5.25.
        let w = ridge(&phi.tr_mul(&phi), &phi.tr_mul(&y), 0.5).unwrap();
        let expected = [2.5 * 3.0 / 5.25, -3.0 / 5.25];
        for (got, want) in w.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // β = 0 on an exact problem recovers the generating weights.
        let w = ridge(&phi.tr_mul(&phi), &phi.tr_mul(&y), 0.0).unwrap();
        assert!((w[0] - 2.0).abs() < 1e-12 && (w[1] + 1.0).abs() < 1e-12);
    }

    #[test]
    fn singular_ridge_is_a_config_error() {
        // A feature that is always zero: ΦᵀΦ has a zero row and column.
        let phi = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 1.0, 0.0]);
        let err = ridge(&phi.tr_mul(&phi), &phi.tr_mul(&phi), 0.0).unwrap_err();
        assert!(err.to_string().contains("ridge"), "{err}");
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = EsnConfig::new(3, 5);
        assert!(ok.validate().is_ok());
        assert!(ok.clone().with_leak(1.5).validate().is_err());
        assert!(ok.clone().with_leak(0.0).validate().is_err());
        assert!(ok.clone().with_sparsity(1.0).validate().is_err());
        assert!(
            ok.clone()
                .with_spectral_radius(f64::NAN)
                .validate()
                .is_err()
        );
        assert!(ok.clone().with_reservoir(0).validate().is_err());
        assert!(ok.with_ridge(-1.0).validate().is_err());
    }
}
