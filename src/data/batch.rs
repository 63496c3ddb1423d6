//! A z-scored series cut into forecast windows ([`ScaledWindows`]): the batches a model trains
//! on and the targets it is scored against; and the training split's statistics every model
//! sees its inputs through.

use burn::prelude::*;

use super::Dataset;
use super::normalize::Normalizer;
use super::window::{Split, SplitFractions, WindowSpec, split_rows};
use crate::error::Result;

/// A z-scored series cut into forecast windows: batches for training, forecasts for scoring.
pub struct ScaledWindows {
    values: Vec<f32>,
    vars: usize,
    spec: WindowSpec,
}

impl ScaledWindows {
    /// z-scores `data` with `normalizer` (as `f32`, what the models read).
    pub fn new(data: &Dataset, normalizer: &Normalizer, spec: WindowSpec) -> Self {
        let mut scaled = data.values.clone();
        normalizer.normalize(&mut scaled);
        Self {
            values: scaled.iter().map(|v| *v as f32).collect(),
            vars: data.vars(),
            spec,
        }
    }

    /// The windows' shape.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Values per row.
    pub fn vars(&self) -> usize {
        self.vars
    }

    /// The z-scored targets of the windows at `starts`, row-major.
    pub fn targets(&self, starts: &[usize]) -> Vec<f64> {
        let (l, h, d) = (self.spec.lookback, self.spec.horizon, self.vars);
        starts
            .iter()
            .flat_map(|&s| &self.values[(s + l) * d..(s + l + h) * d])
            .map(|v| f64::from(*v))
            .collect()
    }

    /// Inputs `[n, L, D]` and targets `[n, H, D]` for the windows at `starts`.
    pub fn batch<B: Backend>(
        &self,
        starts: &[usize],
        device: &B::Device,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let (l, h, d) = (self.spec.lookback, self.spec.horizon, self.vars);
        let mut x = Vec::with_capacity(starts.len() * l * d);
        let mut y = Vec::with_capacity(starts.len() * h * d);
        for &s in starts {
            x.extend_from_slice(&self.values[s * d..(s + l) * d]);
            y.extend_from_slice(&self.values[(s + l) * d..(s + l + h) * d]);
        }
        (
            Tensor::from_data(TensorData::new(x, [starts.len(), l, d]), device),
            Tensor::from_data(TensorData::new(y, [starts.len(), h, d]), device),
        )
    }
}

/// The z-score statistics of the dataset's training split (the first 80 %).
pub fn training_normalizer(data: &Dataset, split: Split) -> Result<Normalizer> {
    Normalizer::fit(&training_rows(data, split)?, data.vars())
}

/// The values of the training part of `data` under `split`, row-major (the trajectories' training
/// rows back to back).
pub fn training_rows(data: &Dataset, split: Split) -> Result<Vec<f64>> {
    let vars = data.vars();
    let [train, _, _] = split_rows(&data.segments(), split, SplitFractions::default())?;
    Ok(train
        .iter()
        .flat_map(|r| data.values[r.start * vars..r.end * vars].iter().copied())
        .collect())
}
