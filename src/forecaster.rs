//! The embedding API: load a trained run (or take a model trained in memory) and forecast from
//! plain `f32` rows, one history or a batch of them, with no Burn types in sight. Normalisation
//! happens inside; the model runs on the CPU ([`Forecaster::load`]) or on any Burn device
//! ([`Forecaster::load_on`], e.g. CUDA in a `cuda` build). Bad input is a [`ForecastError`] an
//! application can match on.
//!
//! ```no_run
//! use chaoscast::forecaster::{ForecastError, Forecaster};
//!
//! let forecaster = Forecaster::load("runs/lstm")?;
//! let history: Vec<Vec<f32>> = vec![vec![0.0; forecaster.vars()]; forecaster.lookback()];
//! let next = forecaster.predict(&history)?; // horizon rows of vars values
//! match forecaster.predict(&history[..3]) {
//!     Err(ForecastError::HistoryTooShort { needed, .. }) => println!("wait for {needed} rows"),
//!     other => println!("{other:?}"),
//! }
//! # Ok::<(), chaoscast::Error>(())
//! ```

use std::path::Path;

use burn::backend::Flex;
use burn::module::Module;
use burn::prelude::*;

pub use crate::error::ForecastError;
use crate::error::Result;
use crate::models::Model;
use crate::run::{RunConfig, load_model};

/// Forecasts of one history by several members: their mean, their spread and the members.
#[derive(Clone, Debug, PartialEq)]
pub struct Ensemble {
    /// Per step and variable, the members' mean.
    pub mean: Vec<Vec<f32>>,
    /// Per step and variable, the members' standard deviation (0 for one member).
    pub spread: Vec<Vec<f32>>,
    /// Every member's forecast, `members × steps × vars`.
    pub members: Vec<Vec<Vec<f32>>>,
}

impl Ensemble {
    /// The mean and spread of `members` (each `steps × vars`, all of one shape).
    pub fn of(members: Vec<Vec<Vec<f32>>>) -> Self {
        let k = members.len().max(1) as f64;
        let shape = |m: &Vec<Vec<f32>>| (m.len(), m.first().map_or(0, Vec::len));
        let (steps, vars) = members.first().map_or((0, 0), shape);
        let mut mean = vec![vec![0.0f32; vars]; steps];
        let mut spread = vec![vec![0.0f32; vars]; steps];
        for t in 0..steps {
            for j in 0..vars {
                let values: Vec<f64> = members.iter().map(|m| f64::from(m[t][j])).collect();
                let mu = values.iter().sum::<f64>() / k;
                let var = if values.len() > 1 {
                    values.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (k - 1.0)
                } else {
                    0.0
                };
                mean[t][j] = mu as f32;
                spread[t][j] = var.sqrt() as f32;
            }
        }
        Self {
            mean,
            spread,
            members,
        }
    }
}

/// A trained model with its normalisation, ready to forecast. `Send + Sync`: one forecaster can
/// serve many threads.
pub struct Forecaster<B: Backend = Flex> {
    model: Model<B>,
    config: RunConfig,
    device: B::Device,
}

impl Forecaster<Flex> {
    /// Loads a run folder written by `chaoscast train`, to forecast on the CPU.
    pub fn load(run: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(run, &Default::default())
    }
}

impl<B: Backend> Forecaster<B> {
    /// Loads a run folder written by `chaoscast train` onto `device`.
    pub fn load_on(run: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let run = run.as_ref();
        let config = RunConfig::load(run)?;
        let model = load_model::<B>(&config, run, device)?;
        Ok(Self {
            model,
            config,
            device: device.clone(),
        })
    }

    /// A forecaster around a model trained in memory (e.g. [`crate::train::trainer::train`]'s
    /// best model, `outcome.best.valid()`) and its run config ([`RunConfig::new`]). `model` holds
    /// the stored weights, as training returns them; under weight splitting the forecaster
    /// computes through their grouped view, the function that was trained.
    pub fn from_trained(model: Model<B>, config: RunConfig, device: &B::Device) -> Result<Self> {
        config.train.validate()?;
        if config.train.model.vars() != config.names.len() {
            return Err(crate::Error::ShapeMismatch {
                what: "model variables and the run's variable names".into(),
                expected: config.train.model.vars().to_string(),
                got: config.names.len().to_string(),
            });
        }
        let model = crate::bio::inference_view(model.fork(device), &config.train.bio);
        Ok(Self {
            model,
            config,
            device: device.clone(),
        })
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
    pub fn predict<R: AsRef<[f32]>>(
        &self,
        history: &[R],
    ) -> std::result::Result<Vec<Vec<f32>>, ForecastError> {
        let mut out = self.predict_batch(&[history])?;
        Ok(out.pop().expect("one history gives one forecast"))
    }

    /// Forecasts the next `horizon` rows after each history, in one batched pass of the model:
    /// the forecasts come back in the histories' order. Each history may be of any length of at
    /// least `lookback` rows; the model reads its last `lookback`.
    pub fn predict_batch<H: AsRef<[R]>, R: AsRef<[f32]>>(
        &self,
        histories: &[H],
    ) -> std::result::Result<Vec<Vec<Vec<f32>>>, ForecastError> {
        if histories.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.windows(histories)?;
        self.rows(self.model.forward(input), histories.len())
    }

    /// Forecasts `steps` rows in closed loop (see [`Model::rollout`]): models that forecast one
    /// step at a time carry their loop on; direct models feed each forecast of `horizon` rows
    /// back as history.
    pub fn rollout<R: AsRef<[f32]>>(
        &self,
        history: &[R],
        steps: usize,
    ) -> std::result::Result<Vec<Vec<f32>>, ForecastError> {
        let mut out = self.rollout_batch(&[history], steps)?;
        Ok(out.pop().expect("one history gives one rollout"))
    }

    /// [`Self::rollout`] for many histories in one batched pass.
    pub fn rollout_batch<H: AsRef<[R]>, R: AsRef<[f32]>>(
        &self,
        histories: &[H],
        steps: usize,
    ) -> std::result::Result<Vec<Vec<Vec<f32>>>, ForecastError> {
        let input = self.windows(histories)?;
        if steps == 0 || histories.is_empty() {
            return Ok(vec![Vec::new(); histories.len()]);
        }
        self.rows(self.model.rollout(input, steps), histories.len())
    }

    /// An ensemble of `members` rollouts of `steps` rows from perturbed copies of `history`:
    /// member k reads the history plus Gaussian noise of `perturb` training standard deviations
    /// per value (seeded by `seed` and k; member 0 is unperturbed), all in one batched pass.
    /// With `perturb` = 0 every member is the plain rollout and the spread is zero.
    pub fn ensemble<R: AsRef<[f32]>>(
        &self,
        history: &[R],
        members: usize,
        perturb: f64,
        steps: usize,
        seed: u64,
    ) -> std::result::Result<Ensemble, ForecastError> {
        use rand::{Rng, SeedableRng};
        let d = self.vars();
        let recent = self.recent(history)?;
        let copies: Vec<Vec<Vec<f32>>> = (0..members.max(1))
            .map(|k| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(k as u64);
                recent
                    .iter()
                    .map(|row| {
                        row.as_ref()
                            .iter()
                            .enumerate()
                            .map(|(j, v)| {
                                let noise: f64 = if k == 0 || perturb == 0.0 {
                                    0.0
                                } else {
                                    rng.sample(rand_distr::StandardNormal)
                                };
                                v + (noise * perturb * self.config.normalizer.std[j % d]) as f32
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let runs = self.rollout_batch(&copies, steps)?;
        Ok(Ensemble::of(runs))
    }

    /// The last `lookback` rows of `history`, checked: enough rows, each of `vars` finite values.
    fn recent<'h, R: AsRef<[f32]>>(
        &self,
        history: &'h [R],
    ) -> std::result::Result<&'h [R], ForecastError> {
        let (l, d) = (self.lookback(), self.vars());
        if history.len() < l {
            return Err(ForecastError::HistoryTooShort {
                needed: l,
                got: history.len(),
            });
        }
        let first = history.len() - l;
        for (i, row) in history[first..].iter().enumerate() {
            let row = row.as_ref();
            if row.len() != d {
                return Err(ForecastError::WrongColumns {
                    row: first + i + 1,
                    expected: d,
                    got: row.len(),
                    names: self.names().join(", "),
                });
            }
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(ForecastError::NonFinite {
                    row: first + i + 1,
                    column: self.names()[j].clone(),
                });
            }
        }
        Ok(&history[first..])
    }

    /// The last `lookback` rows of each history, checked and z-scored, as `[n, lookback, vars]`.
    fn windows<H: AsRef<[R]>, R: AsRef<[f32]>>(
        &self,
        histories: &[H],
    ) -> std::result::Result<Tensor<B, 3>, ForecastError> {
        let (l, d) = (self.lookback(), self.vars());
        let mut x: Vec<f64> = Vec::with_capacity(histories.len() * l * d);
        for history in histories {
            for row in self.recent(history.as_ref())? {
                x.extend(row.as_ref().iter().map(|v| f64::from(*v)));
            }
        }
        self.config.normalizer.normalize(&mut x);
        let x: Vec<f32> = x.into_iter().map(|v| v as f32).collect();
        Ok(Tensor::from_data(
            TensorData::new(x, [histories.len(), l, d]),
            &self.device,
        ))
    }

    /// A z-scored forecast `[n, steps, vars]` as `n` blocks of de-normalised rows.
    fn rows(
        &self,
        forecast: Tensor<B, 3>,
        n: usize,
    ) -> std::result::Result<Vec<Vec<Vec<f32>>>, ForecastError> {
        let mut out = crate::eval::windows::read_back(forecast)
            .map_err(|e| ForecastError::Backend(e.to_string()))?;
        self.config.normalizer.denormalize(&mut out);
        let per = out.len() / n.max(1);
        Ok(out
            .chunks_exact(per.max(1))
            .map(|block| {
                block
                    .chunks_exact(self.vars())
                    .map(|row| row.iter().map(|v| *v as f32).collect())
                    .collect()
            })
            .collect())
    }

    /// The model itself, for callers that work with Burn tensors (under weight splitting, its
    /// grouped view: the trained function).
    pub fn model(&self) -> &Model<B> {
        &self.model
    }
}
