//! A model's forecasts over the windows of a [`ScaledWindows`] series: direct forecasts, closed-loop
//! rollouts, and the validation score training stops on.

use burn::prelude::*;

use crate::data::batch::ScaledWindows;
use crate::data::normalize::Normalizer;
use crate::error::{Error, Result};
use crate::metrics::{VPT_THRESHOLD, evaluate};
use crate::models::Model;

/// A model output as `f64` values, row-major.
pub fn read_back<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f64>> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_err(|e| Error::config("model output", format!("could not be read back ({e:?})")))
}

/// The model's z-scored forecasts for the windows at `starts`, row-major
/// (`starts.len() × horizon × vars`), computed `batch_size` windows at a time.
pub fn forecast<B: Backend>(
    model: &Model<B>,
    windows: &ScaledWindows,
    starts: &[usize],
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<f64>> {
    let mut preds = Vec::with_capacity(starts.len() * windows.spec().horizon * windows.vars());
    for batch in starts.chunks(batch_size) {
        let (x, _) = windows.batch::<B>(batch, device);
        preds.extend(read_back(model.forward(x))?);
    }
    Ok(preds)
}

/// Closed-loop forecasts of `steps` rows for the windows at `starts` (z-scored, row-major,
/// `starts.len() × steps × vars`; see [`Model::rollout`]).
pub fn rollout<B: Backend>(
    model: &Model<B>,
    windows: &ScaledWindows,
    starts: &[usize],
    steps: usize,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(starts.len() * steps * windows.vars());
    for batch in starts.chunks(batch_size) {
        let (x, _) = windows.batch::<B>(batch, device);
        out.extend(read_back(model.rollout(x, steps))?);
    }
    Ok(out)
}

/// Validation MSE (z-scored) and median NRMSE (de-normalised) over `starts`.
pub fn validate<B: Backend>(
    model: &Model<B>,
    windows: &ScaledWindows,
    starts: &[usize],
    normalizer: &Normalizer,
    batch_size: usize,
    device: &B::Device,
) -> Result<(f64, f64)> {
    let mut preds = forecast(model, windows, starts, batch_size, device)?;
    let mut truths = windows.targets(starts);
    let mse = preds
        .iter()
        .zip(&truths)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / preds.len() as f64;
    normalizer.denormalize(&mut preds);
    normalizer.denormalize(&mut truths);
    let report = evaluate(
        &preds,
        &truths,
        windows.spec().horizon,
        &normalizer.std,
        VPT_THRESHOLD,
        None,
    )?;
    Ok((mse, report.nrmse_median))
}
