//! Fitting an echo state network ([`crate::models::esn`]): no gradient training, one ridge
//! regression of the next step on the reservoir's teacher-forced features over the z-scored
//! training split; and a small grid search over spectral radius, leak rate and ridge scored on the
//! validation split only.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::config::{TrainConfig, check_vars};
use super::optim::Optim;
use super::state::{EpochMetrics, Observer, TrainOutcome, TrainState};
use crate::data::Dataset;
use crate::data::batch::{ScaledWindows, training_normalizer};
use crate::data::normalize::Normalizer;
use crate::data::window::{SplitFractions, chronological_split, split_windows};
use crate::error::{Error, Result};
use crate::eval::windows::validate;
use crate::models::{Esn, EsnConfig, Model, ModelConfig};

/// The z-scored training split of `data`, row-major.
pub fn training_series(data: &Dataset, normalizer: &Normalizer) -> Result<Vec<f64>> {
    if data.segments().len() > 1 {
        return Err(Error::config(
            "trajectories",
            "the ESN's readout is fitted on one continuous series, and this dataset holds several \
             trajectories; train the ESN on a single-trajectory dataset",
        ));
    }
    let d = data.vars();
    let [rows, _, _] = chronological_split(data.len(), SplitFractions::default())?;
    let mut series = data.values[rows.start * d..rows.end * d].to_vec();
    normalizer.normalize(&mut series);
    Ok(series)
}

/// Fits the readout of `cfg`'s reservoir to the z-scored `series` (row-major `T × D`); returns
/// the model and its one-step mean squared error on the training features.
pub fn fit<B: Backend>(
    cfg: &EsnConfig,
    series: &[f64],
    device: &B::Device,
) -> Result<(Esn<B>, f64)> {
    let reservoir = cfg.reservoir_weights()?;
    let problem = reservoir.normal_equations(series, cfg.washout)?;
    let (readout, mse) = problem.solve(cfg.ridge)?;
    Ok((reservoir.model(&readout, cfg.horizon, device), mse))
}

/// The values an ESN search tries: every combination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EsnGrid {
    /// Spectral radii (default 0.3, 0.6, 0.9, 1.2).
    pub spectral_radius: Vec<f64>,
    /// Leak rates (default 0.3, 0.6, 1.0).
    pub leak: Vec<f64>,
    /// Ridge values (default 1e-6, 1e-4, 1e-2, 1).
    pub ridge: Vec<f64>,
}

impl Default for EsnGrid {
    fn default() -> Self {
        Self {
            spectral_radius: vec![0.3, 0.6, 0.9, 1.2],
            leak: vec![0.3, 0.6, 1.0],
            ridge: vec![1e-6, 1e-4, 1e-2, 1.0],
        }
    }
}

/// One tried combination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchRow {
    /// ρ.
    pub spectral_radius: f64,
    /// a.
    pub leak: f64,
    /// β.
    pub ridge: f64,
    /// One-step MSE on the training features (z-scored).
    pub train_mse: f64,
    /// Median NRMSE of the closed-loop forecasts of the validation windows.
    pub val_nrmse: f64,
}

/// Tries every combination of `grid` around the ESN of `cfg` (its other settings unchanged) and
/// returns the config with the lowest validation median NRMSE, with every row tried. The test
/// split is never read. Combinations whose ridge system is singular are skipped; `progress` hears
/// of each row as it finishes.
pub fn search<B: Backend>(
    cfg: &TrainConfig,
    data: &Dataset,
    grid: &EsnGrid,
    device: &B::Device,
    progress: &mut dyn FnMut(&SearchRow, usize, usize),
) -> Result<(EsnConfig, Vec<SearchRow>)> {
    let ModelConfig::Esn(base) = &cfg.model else {
        return Err(Error::config(
            "model",
            "the hyper-parameter search is for the ESN (--model esn)",
        ));
    };
    if grid.spectral_radius.is_empty() || grid.leak.is_empty() || grid.ridge.is_empty() {
        return Err(Error::config(
            "esn search",
            "every grid axis needs at least one value",
        ));
    }
    cfg.validate()?;
    let normalizer = training_normalizer(data, cfg.split)?;
    let series = training_series(data, &normalizer)?;
    let spec = cfg.windows();
    let sets = split_windows(&data.segments(), spec, cfg.split, SplitFractions::default())?;
    let windows = ScaledWindows::new(data, &normalizer, spec);
    let total = grid.spectral_radius.len() * grid.leak.len() * grid.ridge.len();
    let mut rows = Vec::with_capacity(total);
    let mut best: Option<(f64, EsnConfig)> = None;
    // The weights drawn once, rescaled to each ρ of the grid: the same bits as
    // `reservoir_weights` at that ρ, without another eigenvalue solve.
    let drawn = base.reservoir_weights()?;
    for &rho in &grid.spectral_radius {
        for &leak in &grid.leak {
            let candidate = base.clone().with_spectral_radius(rho).with_leak(leak);
            candidate.validate()?;
            let reservoir = drawn.rescaled(rho, leak);
            let problem = reservoir.normal_equations(&series, candidate.washout)?;
            for &beta in &grid.ridge {
                let Ok((readout, train_mse)) = problem.solve(beta) else {
                    continue;
                };
                let model = Model::Esn(reservoir.model::<B>(&readout, candidate.horizon, device));
                let (_, val_nrmse) = validate(
                    &model,
                    &windows,
                    &sets.val,
                    &normalizer,
                    cfg.batch_size,
                    device,
                )?;
                let row = SearchRow {
                    spectral_radius: rho,
                    leak,
                    ridge: beta,
                    train_mse,
                    val_nrmse,
                };
                progress(&row, rows.len() + 1, total);
                // A diverging closed loop gives NaN or huge errors: never the best.
                if val_nrmse.is_finite() && best.as_ref().is_none_or(|(b, _)| val_nrmse < *b) {
                    best = Some((val_nrmse, candidate.clone().with_ridge(beta)));
                }
                rows.push(row);
            }
        }
    }
    let (_, chosen) = best.ok_or_else(|| {
        Error::config(
            "esn search",
            "no combination of the grid gave a finite validation NRMSE",
        )
    })?;
    Ok((chosen, rows))
}

/// The search rows as CSV.
pub fn search_csv(rows: &[SearchRow]) -> String {
    let mut out = String::from("spectral_radius,leak,ridge,train_mse,val_nrmse\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{:e},{},{}\n",
            r.spectral_radius, r.leak, r.ridge, r.train_mse, r.val_nrmse
        ));
    }
    out
}

/// Fits an ESN's readout in closed form (see [`fit`]) and reports it as one epoch: the
/// training loss is the one-step MSE on the teacher-forced training features, the validation
/// numbers are those of closed-loop forecasts, and the learning rate is 0.
pub(crate) fn fit_esn<B: AutodiffBackend>(
    cfg: &TrainConfig,
    esn: &crate::models::EsnConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
) -> Result<TrainOutcome<B>> {
    check_vars(cfg, data)?;
    let start = Instant::now();
    let normalizer = training_normalizer(data, cfg.split)?;
    let series = training_series(data, &normalizer)?;
    let (fitted, train_mse) = fit::<B>(esn, &series, device)?;
    let model = Model::Esn(fitted);
    let spec = cfg.windows();
    let sets = split_windows(&data.segments(), spec, cfg.split, SplitFractions::default())?;
    let windows = ScaledWindows::new(data, &normalizer, spec);
    let (val_loss, val_nrmse) = validate(
        &model.valid(),
        &windows,
        &sets.val,
        &normalizer,
        cfg.batch_size,
        device,
    )?;
    let history = vec![EpochMetrics {
        epoch: 1,
        train_loss: train_mse,
        val_loss,
        val_nrmse,
        lr: 0.0,
        seconds: start.elapsed().as_secs_f64(),
        rejuvenated: 0,
    }];
    let state = TrainState {
        model: model.clone(),
        optimizer: Optim::<B>::new(cfg).state(),
        history: history.clone(),
        best: model.clone(),
        best_epoch: 1,
        normalizer: normalizer.clone(),
        fuzzy: None,
    };
    observer.epoch_done(&state, 1, true)?;
    Ok(TrainOutcome {
        best: model,
        best_epoch: 1,
        history,
        normalizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use nalgebra::DMatrix;

    fn sine(steps: usize, dt: f64) -> Vec<f64> {
        (0..steps).map(|t| (t as f64 * dt).sin()).collect()
    }

    /// The fitted readout solves the ridge normal equations of the features it was fitted on:
    /// (ΦᵀΦ + βI)·W = ΦᵀY, checked from Φ and Y directly.
    #[test]
    fn readout_is_the_closed_form_ridge_solution() {
        let cfg = EsnConfig::new(1, 3)
            .with_reservoir(30)
            .with_sparsity(0.7)
            .with_ridge(1e-3)
            .with_washout(20);
        let series = sine(300, 0.1);
        let r = cfg.reservoir_weights().unwrap();
        let problem = r.normal_equations(&series, cfg.washout).unwrap();
        assert_eq!(problem.phi.shape(), (300 - 1 - 20, 32));
        let (readout, _) = problem.solve(cfg.ridge).unwrap();
        let w = DMatrix::from_row_slice(32, 1, &readout);
        let lhs = problem.phi.tr_mul(&problem.phi) * &w + &w * cfg.ridge;
        let rhs = problem.phi.tr_mul(&problem.targets);
        let scale = rhs.amax();
        assert!(
            (lhs - rhs).amax() < 1e-8 * scale,
            "the readout does not solve the normal equations"
        );
        // The model carries exactly that readout.
        let (model, _) = fit::<Flex>(&cfg, &series, &Default::default()).unwrap();
        let stored = model.readout.val().into_data().to_vec::<f32>().unwrap();
        for (s, w) in stored.iter().zip(&readout) {
            assert_eq!(*s, *w as f32);
        }
    }

    /// Trained on a sine wave, the ESN's first forecast step is nearly exact, and the closed
    /// loop stays on the wave for a few more steps.
    #[test]
    fn one_step_prediction_of_a_sine_wave() {
        let dt = 0.1;
        let cfg = EsnConfig::new(1, 5)
            .with_reservoir(60)
            .with_ridge(1e-8)
            .with_washout(50);
        let (model, train_mse) = fit::<Flex>(&cfg, &sine(1000, dt), &Default::default()).unwrap();
        assert!(train_mse < 1e-8, "one-step training MSE {train_mse}");
        // Windows that start at phases the training series did not line up with.
        let starts = [1000.3, 1234.7, 2000.1];
        let lookback = 100;
        let mut x = Vec::new();
        for s in starts {
            x.extend((0..lookback).map(|t| ((s + t as f64) * dt).sin() as f32));
        }
        let input =
            Tensor::<Flex, 3>::from_data(TensorData::new(x, [3, lookback, 1]), &Default::default());
        let out = model.forward(input).into_data().to_vec::<f32>().unwrap();
        for (i, s) in starts.iter().enumerate() {
            for k in 0..5 {
                let truth = ((s + (lookback + k) as f64) * dt).sin();
                let err = (out[i * 5 + k] as f64 - truth).abs();
                let bound = if k == 0 { 1e-3 } else { 1e-2 };
                assert!(err < bound, "window {i}, step {k}: error {err}");
            }
        }
    }

    /// The search's shortcut: the base reservoir rescaled to another ρ and leak is, bit for
    /// bit, the reservoir drawn at that ρ and leak (so the chosen row refits to its own score).
    #[test]
    fn rescaled_reservoir_equals_a_fresh_draw() {
        let base = EsnConfig::new(2, 3).with_reservoir(25).with_sparsity(0.6);
        let drawn = base.reservoir_weights().unwrap();
        let other = base
            .clone()
            .with_spectral_radius(1.2)
            .with_leak(0.3)
            .reservoir_weights()
            .unwrap();
        let rescaled = drawn.rescaled(1.2, 0.3);
        assert_eq!(rescaled.leak, 0.3);
        assert_eq!(rescaled.input, other.input);
        assert_eq!(rescaled.recurrent, other.recurrent);
        let series: Vec<f64> = (0..120).map(|t| (t as f64 * 0.2).sin()).collect();
        let a = rescaled.normal_equations(&series, 10).unwrap();
        let b = other.normal_equations(&series, 10).unwrap();
        assert_eq!(a.phi, b.phi);
    }

    /// A model built from the same config twice is the same model: the reservoir is a function
    /// of the seed.
    #[test]
    fn same_seed_same_reservoir() {
        let cfg = EsnConfig::new(2, 3).with_reservoir(20).with_sparsity(0.5);
        let a = cfg.reservoir_weights().unwrap();
        let b = cfg.reservoir_weights().unwrap();
        assert_eq!(a.recurrent, b.recurrent);
        assert_eq!(a.input, b.input);
        let c = cfg.with_seed(1).reservoir_weights().unwrap();
        assert_ne!(a.recurrent, c.recurrent);
    }
}
