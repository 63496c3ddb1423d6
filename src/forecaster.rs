//! The embedding API: load a trained run and forecast from plain `f32` rows, with no Burn types
//! in sight. Normalisation happens inside; the model runs on the CPU.
//!
//! ```no_run
//! let forecaster = chaoscast::forecaster::Forecaster::load("runs/lstm")?;
//! let history: Vec<Vec<f32>> = vec![vec![0.0; forecaster.vars()]; forecaster.lookback()];
//! let next = forecaster.predict(&history)?; // horizon rows of vars values
//! # Ok::<(), chaoscast::Error>(())
//! ```

use std::path::Path;

use burn::backend::Flex;
use burn::prelude::*;

use crate::error::{Error, Result};
use crate::models::Model;
use crate::run::{RunConfig, load_model};

/// A trained model with its normalisation, ready to forecast.
pub struct Forecaster {
    model: Model<Flex>,
    config: RunConfig,
}

impl Forecaster {
    /// Loads a run folder written by `chaoscast train`.
    pub fn load(run: impl AsRef<Path>) -> Result<Self> {
        let run = run.as_ref();
        let config = RunConfig::load(run)?;
        let model = load_model::<Flex>(&config, run, &Default::default())?;
        Ok(Self { model, config })
    }

    /// Rows the model reads (L).
    pub fn lookback(&self) -> usize {
        self.config.train.lookback
    }

    /// Rows one forecast returns (H).
    pub fn horizon(&self) -> usize {
        self.config.train.model.horizon()
    }

    /// Values per row.
    pub fn vars(&self) -> usize {
        self.config.names.len()
    }

    /// The sampling interval Δt of the data the model was trained on.
    pub fn dt(&self) -> f64 {
        self.config.data.recipe.dt
    }

    /// The run's configuration (training settings, dataset recipe, normalisation).
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The variables' names, in row order.
    pub fn names(&self) -> &[String] {
        &self.config.names
    }

    /// Forecasts the next `horizon` rows from the last `lookback` rows of `history`.
    pub fn predict(&self, history: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let input = self.window(history)?;
        self.rows(self.model.forward(input))
    }

    /// Forecasts `steps` rows in closed loop (see [`Model::rollout`]): models that forecast one
    /// step at a time carry their loop on; direct models feed each forecast of `horizon` rows
    /// back as history.
    pub fn rollout(&self, history: &[Vec<f32>], steps: usize) -> Result<Vec<Vec<f32>>> {
        let input = self.window(history)?;
        if steps == 0 {
            return Ok(Vec::new());
        }
        self.rows(self.model.rollout(input, steps))
    }

    /// The last `lookback` rows of `history`, checked and z-scored, as `[1, lookback, vars]`.
    fn window(&self, history: &[Vec<f32>]) -> Result<Tensor<Flex, 3>> {
        let (l, d) = (self.lookback(), self.vars());
        if history.len() < l {
            return Err(Error::ShapeMismatch {
                what: "forecast history".into(),
                expected: format!("at least {l} rows"),
                got: format!("{} rows", history.len()),
            });
        }
        let first = history.len() - l;
        let recent = &history[first..];
        if let Some(row) = recent.iter().find(|r| r.len() != d) {
            return Err(Error::ShapeMismatch {
                what: "forecast history row".into(),
                expected: format!("{d} values ({})", self.names().join(", ")),
                got: format!("{} values", row.len()),
            });
        }
        for (i, row) in recent.iter().enumerate() {
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFiniteInput {
                    what: "the forecast history".into(),
                    at: format!("row {} ({})", first + i + 1, self.names()[j]),
                });
            }
        }
        let mut x: Vec<f64> = recent.iter().flatten().map(|v| f64::from(*v)).collect();
        self.config.normalizer.normalize(&mut x);
        let x: Vec<f32> = x.into_iter().map(|v| v as f32).collect();
        Ok(Tensor::from_data(
            TensorData::new(x, [1, l, d]),
            &Default::default(),
        ))
    }

    /// A z-scored forecast `[1, steps, vars]` as de-normalised rows.
    fn rows(&self, forecast: Tensor<Flex, 3>) -> Result<Vec<Vec<f32>>> {
        let mut out = crate::train::trainer::read_back(forecast)?;
        self.config.normalizer.denormalize(&mut out);
        Ok(out
            .chunks_exact(self.vars())
            .map(|row| row.iter().map(|v| *v as f32).collect())
            .collect())
    }

    /// The model itself, for callers that work with Burn tensors.
    pub fn model(&self) -> &Model<Flex> {
        &self.model
    }
}
