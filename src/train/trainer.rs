//! The training loop (SPEC.md §5): chronological windows, training-split z-scoring, shuffled
//! mini-batches from a seeded host generator, ASAM (or SAM, or none) over SGD with momentum and
//! no dampening (or Adam), weight decay, cosine annealing per step, MSE over the horizon, and
//! early stopping on the validation split's median NRMSE with the best model kept. Validation
//! scores what `eval` scores: for the autoregressive models, closed-loop forecasts.
//!
//! Beyond the paper's protocol: Gaussian input noise (on what a model reads, never on the
//! targets), gradient-norm clipping over all parameters ([`super::clip`]), a loss over the whole
//! window for the autoregressive LSTM/GRU (one-step forecasts of every lookback step, warm-up
//! included), and closed-loop fine-tuning (the last epochs free running with bounded
//! backpropagation through the rollout).
//!
//! Every epoch ends with a [`TrainState`] (the model, the optimizer's state, the history and the
//! best model) handed to the [`Observer`], which may checkpoint it; [`resume`] continues from one.
//! Each epoch's shuffle and the backend's random stream are seeded from (seed, epoch) alone and
//! the learning rate is a function of the step, so a resumed run repeats the uninterrupted one.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::asam::gradients;
use super::clip::clip_gradients;
use super::config::check_vars;
use super::esn::fit_esn;
use super::optim::Optim;
use super::schedule::{LrSchedule, cosine_lr, plateau_lr};
use crate::bio::FuzzyTarget;
use crate::bio::coverage::Coverage;
use crate::bio::fuzzy::{FuzzyFactors, scale_gradients, scale_updates, weights_before_step};
use crate::bio::rejuvenate::rejuvenate_model;
use crate::bio::split;
use crate::data::Dataset;
use crate::data::window::{SplitFractions, split_windows};
use crate::error::{Error, Result};
use crate::eval::windows::validate;
use crate::models::{Feed, Model, ModelConfig, Teacher};

// The training API, whose parts live beside the loop: the config, what the loop hands its
// observer, and the windows it reads.
pub use super::config::{
    ClosedLoop, DEFAULT_INPUT_NOISE, OptimizerKind, SMALL_ADAM_LR, TrainConfig,
};
pub use super::state::{EpochMetrics, Observer, OptimizerState, Silent, TrainOutcome, TrainState};
pub use crate::data::batch::{ScaledWindows, training_normalizer, training_rows};

/// Trains `cfg.model` on `data` (all its variables) and returns the best model by validation NRMSE.
pub fn train<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
) -> Result<TrainOutcome<B>> {
    cfg.validate()?;
    if let ModelConfig::Esn(esn) = &cfg.model {
        return fit_esn(cfg, esn, data, device, observer);
    }
    let model = cfg.model.init::<B>(device)?;
    run_epochs(cfg, data, device, observer, model, Optim::new(cfg), None)
}

/// Continues a run from `state` (a checkpoint of the same `cfg` and `data`) up to `cfg.epochs`.
/// With the same config, the result equals the uninterrupted run's. A run with nothing left to
/// train (all epochs run, stopped early, or an ESN, fitted in one pass) is an
/// [`Error::NothingToResume`] saying how to ask for more (see [`nothing_left`]).
pub fn resume<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
    state: TrainState<B>,
) -> Result<TrainOutcome<B>> {
    cfg.validate()?;
    if let Some(why) = nothing_left(cfg, &state.history, state.best_epoch) {
        return Err(Error::NothingToResume(why));
    }
    if let ModelConfig::Esn(esn) = &cfg.model {
        return fit_esn(cfg, esn, data, device, observer);
    }
    let optim = Optim::new(cfg).restore(state.optimizer.clone())?;
    let model = state.model.clone();
    run_epochs(cfg, data, device, observer, model, optim, Some(state))
}

/// Why a run of `cfg` with `history` (best epoch `best_epoch`) would train no further epoch, if
/// it would not: every epoch run, early stopping reached, or an ESN (fitted in one pass).
pub fn nothing_left(
    cfg: &TrainConfig,
    history: &[EpochMetrics],
    best_epoch: usize,
) -> Option<String> {
    let done = history.len();
    if matches!(cfg.model, ModelConfig::Esn(_)) && done > 0 {
        return Some(
            "an ESN's readout is fitted in one pass, which this run has done; train a new run to \
             change it"
                .into(),
        );
    }
    if done > cfg.epochs {
        return Some(format!(
            "it has trained {done} epochs, more than the {} asked for; pass --epochs with more \
             than {done} to train further",
            cfg.epochs
        ));
    }
    if done >= cfg.epochs {
        return Some(format!(
            "it has trained all {done} of its {} epochs; pass --epochs with more than {done} to \
             train further",
            cfg.epochs
        ));
    }
    if done > 0 && done - best_epoch >= cfg.patience {
        return Some(format!(
            "it stopped early after epoch {done}, {} epochs without a better validation NRMSE \
             than epoch {best_epoch}'s (patience {}); pass --patience with more than {} to train \
             further",
            done - best_epoch,
            cfg.patience,
            done - best_epoch
        ));
    }
    None
}

/// The shuffle generator of `epoch`: one ChaCha8 stream per epoch, so no state carries over.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

fn run_epochs<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
    mut model: Model<B>,
    mut optim: Optim<B>,
    resumed: Option<TrainState<B>>,
) -> Result<TrainOutcome<B>> {
    check_vars(cfg, data)?;
    let spec = cfg.windows();
    let fractions = SplitFractions::default();
    let sets = split_windows(&data.segments(), spec, cfg.split, fractions)?;
    let normalizer = training_normalizer(data, cfg.split)?;
    let windows = ScaledWindows::new(data, &normalizer, spec);

    let autoregressive = cfg.model.is_autoregressive();
    let steps_per_epoch = sets.train.len().div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;

    let coverage = Coverage::of(&model, cfg.bio.scope);
    let groups = cfg.bio.splitting.as_ref().map(|s| s.groups);
    if let Some(g) = groups {
        split::check(&model, &coverage, g)?;
    }
    let fuzzy = match (&cfg.bio.fuzzy_lr, resumed.as_ref()) {
        (None, _) => None,
        (Some(_), Some(state)) => Some(state.fuzzy.clone().ok_or_else(|| {
            Error::config("checkpoint", "it holds no fuzzy learning-rate factors")
        })?),
        (Some(fl), None) => Some(FuzzyFactors::draw(&model, &coverage, fl, cfg.seed)),
    };
    let factors = fuzzy.as_ref().map(|f| f.to_device::<B>(device));
    let on_update = (cfg.bio.fuzzy_lr.as_ref()).is_some_and(|f| f.target == FuzzyTarget::Update);

    let (mut history, mut best) = match resumed {
        Some(state) if state.normalizer != normalizer => {
            return Err(Error::config(
                "checkpoint",
                "it was trained on data with other statistics than this dataset's training split; \
                 resume with the dataset the run was trained on",
            ));
        }
        Some(state) => (state.history, Some((state.best_epoch, state.best))),
        None => (Vec::new(), None),
    };
    let stopped_early = |history: &[EpochMetrics], best: &Option<(usize, Model<B>)>| {
        best.as_ref()
            .is_some_and(|(e, _)| history.len() - e >= cfg.patience)
    };
    let first = history.len() + 1;
    for epoch in first..=cfg.epochs {
        if stopped_early(&history, &best) {
            break;
        }
        let start = Instant::now();
        let plateau = match cfg.schedule {
            LrSchedule::Cosine => None,
            LrSchedule::Plateau { factor, patience } => {
                let nrmse: Vec<f64> = history.iter().map(|m| m.val_nrmse).collect();
                Some(plateau_lr(&nrmse, cfg.lr, cfg.lr_min, factor, patience))
            }
        };
        if let (Some((_, true)), Some((_, best_model))) = (plateau, &best) {
            model = best_model.clone();
        }
        let mut order = sets.train.clone();
        order.shuffle(&mut epoch_rng(cfg.seed, epoch));
        B::seed(device, epoch_rng(cfg.seed ^ 0x5eed, epoch).next_u64());
        let mut wr_rng = epoch_rng(cfg.seed ^ 0x7e7e, epoch);
        let mut tf_rng = epoch_rng(cfg.seed ^ 0x7eac, epoch);
        let tf_ratio = cfg.strategy.ratio(epoch, cfg.epochs);
        let closed = cfg.closed_loop.filter(|c| epoch + c.epochs > cfg.epochs);
        let mut noise_rng = epoch_rng(cfg.seed ^ 0x4015e, epoch);
        let mut rejuvenated = 0;
        let mut loss_sum = 0.0;
        let mut lr = cfg.lr;
        for (i, batch) in order.chunks(cfg.batch_size).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + i;
            lr = match plateau {
                Some((rate, _)) => rate,
                None => cosine_lr(cfg.lr, cfg.lr_min, step, total_steps),
            };
            let (x, y) = windows.batch::<B>(batch, device);
            let (x_in, y_in) = if cfg.input_noise > 0.0 {
                (
                    with_noise(x.clone(), cfg.input_noise, &mut noise_rng),
                    with_noise(y.clone(), cfg.input_noise, &mut noise_rng),
                )
            } else {
                (x.clone(), y.clone())
            };
            let teacher = autoregressive.then(|| {
                let feed = match closed {
                    Some(_) => Feed::Forecast,
                    None if tf_ratio >= 1.0 => Feed::Truth,
                    None if tf_ratio <= 0.0 => Feed::Forecast,
                    None => Feed::Mask(cfg.strategy.mask::<B>(
                        tf_ratio,
                        batch.len(),
                        spec.horizon,
                        &mut tf_rng,
                        device,
                    )),
                };
                Teacher {
                    inputs: y_in,
                    feed,
                    bptt: closed.map(|c| c.bptt),
                    window: cfg.window_loss,
                }
            });
            let target = model.training_target(x, y, teacher.as_ref());
            let (loss, grads) = gradients(&model, cfg.sharpness, |m: &Model<B>| {
                let forward = |m: &Model<B>| m.forward_train(x_in.clone(), teacher.as_ref());
                let out = match groups {
                    Some(g) => forward(&split::split_model(m.clone(), &coverage, g)),
                    None => forward(m),
                };
                (out - target.clone()).square().mean()
            });
            if !loss.is_finite() {
                return Err(Error::NonFinite {
                    what: "the training loss".into(),
                    at: format!("epoch {epoch}, step {} of the epoch", i + 1),
                });
            }
            loss_sum += loss * batch.len() as f64;
            let grads = match &factors {
                Some(f) if !on_update => scale_gradients(&model, f, grads),
                _ => grads,
            };
            let grads = match cfg.clip_grad {
                Some(max) => clip_gradients(&model, grads, max).0,
                None => grads,
            };
            let before = (factors.as_ref())
                .filter(|_| on_update)
                .map(|f| weights_before_step(&model, f));
            model = optim.step(lr, model, grads);
            if let (Some(before), Some(f)) = (&before, &factors) {
                model = scale_updates(model, before, f);
            }
            if let Some(wr) = &cfg.bio.rejuvenation
                && (step + 1).is_multiple_of(wr.every)
            {
                let scale = if wr.lr_scaled { lr / cfg.lr } else { 1.0 };
                let (m, n) = rejuvenate_model(model, &coverage, wr, scale, &mut wr_rng);
                model = m;
                rejuvenated += n;
            }
            observer.step_done(epoch, i, steps_per_epoch, loss);
        }
        let valid = match groups {
            Some(g) => split::split_model(model.valid(), &coverage, g),
            None => model.valid(),
        };
        let (val_loss, val_nrmse) = validate(
            &valid,
            &windows,
            &sets.val,
            &normalizer,
            cfg.batch_size,
            device,
        )?;
        history.push(EpochMetrics {
            epoch,
            train_loss: loss_sum / sets.train.len() as f64,
            val_loss,
            val_nrmse,
            lr,
            seconds: start.elapsed().as_secs_f64(),
            rejuvenated,
        });
        let improved = best
            .as_ref()
            .is_none_or(|(e, _)| val_nrmse < history[*e - 1].val_nrmse);
        if improved {
            best = Some((epoch, model.clone()));
        }
        let (best_epoch, best_model) = best.clone().expect("an epoch has just ended");
        let state = TrainState {
            model: model.clone(),
            optimizer: optim.state(),
            history: history.clone(),
            best: best_model,
            best_epoch,
            normalizer: normalizer.clone(),
            fuzzy: fuzzy.clone(),
        };
        observer.epoch_done(&state, cfg.epochs, improved)?;
    }
    let (best_epoch, best) = best.ok_or_else(|| {
        Error::config(
            "epochs",
            format!(
                "the run had already completed {} epochs; ask for more with --epochs",
                history.len()
            ),
        )
    })?;
    Ok(TrainOutcome {
        best,
        best_epoch,
        history,
        normalizer,
    })
}

/// `x` plus Gaussian noise of standard deviation `sigma` from the host generator `rng`.
fn with_noise<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    sigma: f64,
    rng: &mut ChaCha8Rng,
) -> Tensor<B, D> {
    let shape = x.shape();
    let noise: Vec<f32> = (0..shape.num_elements())
        .map(|_| (sigma * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect();
    let device = x.device();
    x + Tensor::from_data(TensorData::new(noise, shape), &device)
}
