//! The base optimizer behind [`super::TrainConfig::optimizer`]: SGD with momentum (no dampening) or
//! Adam, with coupled weight decay, and its state for checkpoints.

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::tensor::backend::AutodiffBackend;

use super::config::{OptimizerKind, TrainConfig};
use crate::error::{Error, Result};
use crate::models::Model;

pub(crate) type SgdOptim<B> =
    OptimizerAdaptor<Sgd<<B as AutodiffBackend>::InnerBackend>, Model<B>, B>;
pub(crate) type AdamOptim<B> = OptimizerAdaptor<Adam, Model<B>, B>;

/// The base optimizer's state.
#[derive(Clone)]
pub enum OptimizerState<B: AutodiffBackend> {
    /// SGD's momentum buffers.
    Sgd(<SgdOptim<B> as Optimizer<Model<B>, B>>::Record),
    /// Adam's moments.
    Adam(<AdamOptim<B> as Optimizer<Model<B>, B>>::Record),
}

/// The base optimizer of a run.
pub(crate) enum Optim<B: AutodiffBackend> {
    Sgd(SgdOptim<B>),
    Adam(AdamOptim<B>),
}

impl<B: AutodiffBackend> Optim<B> {
    pub(crate) fn new(cfg: &TrainConfig) -> Self {
        let decay =
            (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
        match cfg.optimizer {
            OptimizerKind::Sgd => Optim::Sgd(
                SgdConfig::new()
                    .with_momentum((cfg.momentum > 0.0).then(|| {
                        MomentumConfig::new()
                            .with_momentum(cfg.momentum)
                            .with_dampening(0.0)
                    }))
                    .with_weight_decay(decay)
                    .init(),
            ),
            OptimizerKind::Adam => Optim::Adam(
                AdamConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(decay)
                    .init(),
            ),
        }
    }

    pub(crate) fn step(&mut self, lr: f64, model: Model<B>, grads: GradientsParams) -> Model<B> {
        match self {
            Optim::Sgd(o) => o.step(lr, model, grads),
            Optim::Adam(o) => o.step(lr, model, grads),
        }
    }

    pub(crate) fn state(&self) -> OptimizerState<B> {
        match self {
            Optim::Sgd(o) => OptimizerState::Sgd(o.to_record()),
            Optim::Adam(o) => OptimizerState::Adam(o.to_record()),
        }
    }

    pub(crate) fn restore(self, state: OptimizerState<B>) -> Result<Self> {
        match (self, state) {
            (Optim::Sgd(o), OptimizerState::Sgd(r)) => Ok(Optim::Sgd(o.load_record(r))),
            (Optim::Adam(o), OptimizerState::Adam(r)) => Ok(Optim::Adam(o.load_record(r))),
            _ => Err(Error::config(
                "optimizer",
                "the checkpoint holds the state of another optimizer than the config names",
            )),
        }
    }
}
