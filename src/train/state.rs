//! What training hands its caller: each epoch's numbers ([`EpochMetrics`]), the state a
//! checkpoint keeps ([`TrainState`]), the [`Observer`] that receives them, and the result
//! ([`TrainOutcome`]).

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

pub use super::optim::OptimizerState;
use crate::bio::fuzzy::FuzzyFactors;
use crate::data::normalize::Normalizer;
use crate::error::Result;
use crate::models::Model;

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (MSE on z-scored values, at the unperturbed weights).
    pub train_loss: f64,
    /// Validation MSE on z-scored values.
    pub val_loss: f64,
    /// Validation median NRMSE on de-normalised values.
    pub val_nrmse: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
    /// Weights re-drawn by rejuvenation during the epoch.
    #[serde(default)]
    pub rejuvenated: usize,
}

/// Receives progress; the library never prints.
pub trait Observer<B: AutodiffBackend> {
    /// Called after every optimizer step: 1-based epoch, 0-based step within it, steps per
    /// epoch, and the step's training loss.
    fn step_done(&mut self, _epoch: usize, _step: usize, _steps: usize, _loss: f64) {}

    /// Called after every epoch with everything a checkpoint needs, the maximum epoch count, and
    /// whether this epoch's validation NRMSE is the best yet. An error stops the run.
    fn epoch_done(
        &mut self,
        _state: &TrainState<B>,
        _epochs: usize,
        _improved: bool,
    ) -> Result<()> {
        Ok(())
    }
}

/// Where a run stands after a completed epoch: enough to resume it exactly.
#[derive(Clone)]
pub struct TrainState<B: AutodiffBackend> {
    /// The model after the last completed epoch.
    pub model: Model<B>,
    /// The base optimizer's state (momentum or Adam moments), keyed by parameter id.
    pub optimizer: OptimizerState<B>,
    /// Every completed epoch's numbers.
    pub history: Vec<EpochMetrics>,
    /// The model with the best validation NRMSE so far.
    pub best: Model<B>,
    /// Its epoch (1-based).
    pub best_epoch: usize,
    /// The training split's statistics the model sees its inputs through.
    pub normalizer: Normalizer,
    /// The fuzzy learning-rate factors, when that mechanism is on.
    pub fuzzy: Option<FuzzyFactors>,
}

impl<B: AutodiffBackend> TrainState<B> {
    /// Completed epochs.
    pub fn epoch(&self) -> usize {
        self.history.len()
    }

    /// The best validation NRMSE so far.
    pub fn best_nrmse(&self) -> f64 {
        self.history[self.best_epoch - 1].val_nrmse
    }
}

/// An observer that ignores everything.
pub struct Silent;

impl<B: AutodiffBackend> Observer<B> for Silent {}

/// The result of a run.
pub struct TrainOutcome<B: AutodiffBackend> {
    /// The model with the best validation NRMSE.
    pub best: Model<B>,
    /// Its epoch (1-based).
    pub best_epoch: usize,
    /// Every epoch's numbers.
    pub history: Vec<EpochMetrics>,
    /// The training split's statistics the model sees its inputs through.
    pub normalizer: Normalizer,
}
