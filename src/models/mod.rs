//! Forecasting models, each `[batch, lookback, vars] → [batch, horizon, vars]`, built from configs
//! with weights drawn from seeded host generators and zero biases: the LSTM and GRU forecasters
//! with attention ([`recurrent`], on our own cells in [`cells`]), FDN ([`fdn`]) and the
//! transformer encoder ([`transformer`]), and the echo state network ([`esn`], the reservoir
//! baseline, fitted in closed form). One [`ModelConfig`] builds one [`Model`], so training,
//! checkpoints and the command line see one type.

pub mod attention;
pub mod autoregressive;
pub mod cells;
pub mod esn;
pub mod fdn;
mod host;
pub mod init;
pub mod recurrent;
#[cfg(test)]
mod testing;
pub mod transformer;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use autoregressive::{AutoregressiveRnn, Feed, Teacher};
pub use esn::{Esn, EsnConfig};
pub use fdn::{Fdn, FdnConfig};
pub use recurrent::{CellKind, Decoder, RecurrentConfig, RecurrentForecaster};
/// The fused encoder layer, where it lived before it moved beside the transformer.
pub use transformer::encoder;
pub use transformer::{Pooling, TransformerConfig, TransformerForecaster};

/// The model families by their command-line names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// LSTM with attention.
    Lstm,
    /// GRU with attention.
    Gru,
    /// FDN.
    Fdn,
    /// Transformer encoder.
    Transformer,
    /// Echo state network.
    Esn,
}

impl std::str::FromStr for ModelKind {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "lstm" => Ok(ModelKind::Lstm),
            "gru" => Ok(ModelKind::Gru),
            "fdn" => Ok(ModelKind::Fdn),
            "transformer" => Ok(ModelKind::Transformer),
            "esn" => Ok(ModelKind::Esn),
            other => Err(crate::Error::config(
                "model",
                format!("'{other}' is not a model; use lstm, gru, fdn, transformer or esn"),
            )),
        }
    }
}

/// Model sizes and training recipes: `default` (what `train` uses without `--preset`: the recipe
/// that converges on a 2-core CPU), `small` for quick runs, `paper` for the paper's protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// LSTM/GRU hidden 128; FDN and transformer as `small`; ESN 500 units (the training
    /// recipe: [`crate::train::trainer::TrainConfig::preset_for`]).
    #[default]
    Default,
    /// LSTM/GRU hidden 32; FDN 32 channels; transformer width 32, 2 layers, patches of 10 steps;
    /// ESN 500 units.
    Small,
    /// LSTM/GRU hidden 512; FDN 125 channels; transformer width 128, 2 layers (the paper gives
    /// no transformer size); ESN 2000 units.
    Paper,
}

/// The configuration of any model; `init` builds the matching [`Model`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "lowercase")]
pub enum ModelConfig {
    /// LSTM or GRU with attention.
    Recurrent(RecurrentConfig),
    /// The FDN convolutional forecaster.
    Fdn(FdnConfig),
    /// The transformer encoder.
    Transformer(TransformerConfig),
    /// The echo state network.
    Esn(EsnConfig),
}

impl ModelConfig {
    /// A preset model for `vars` variables, `lookback` input and `horizon` output steps.
    pub fn preset(
        kind: ModelKind,
        preset: Preset,
        vars: usize,
        lookback: usize,
        horizon: usize,
    ) -> Self {
        let small = preset != Preset::Paper;
        match kind {
            ModelKind::Lstm | ModelKind::Gru => {
                let cell = if kind == ModelKind::Lstm {
                    CellKind::Lstm
                } else {
                    CellKind::Gru
                };
                let hidden = match preset {
                    Preset::Default => 128,
                    Preset::Small => 32,
                    Preset::Paper => 512,
                };
                ModelConfig::Recurrent(
                    RecurrentConfig::new(cell, vars, horizon).with_hidden(hidden),
                )
            }
            ModelKind::Fdn => ModelConfig::Fdn(
                FdnConfig::new(vars, lookback, horizon).with_channels(if small { 32 } else { 125 }),
            ),
            ModelKind::Transformer => {
                let (d_model, d_ff, patch) = if small { (32, 64, 10) } else { (128, 256, 1) };
                ModelConfig::Transformer(
                    TransformerConfig::new(vars, horizon)
                        .with_d_model(d_model)
                        .with_d_ff(d_ff)
                        .with_patch(patch.min(lookback)),
                )
            }
            ModelKind::Esn => {
                ModelConfig::Esn(EsnConfig::new(vars, horizon).with_reservoir(if small {
                    500
                } else {
                    2000
                }))
            }
        }
    }

    /// The model's short name: `lstm`, `gru`, `fdn`, `transformer` or `esn`.
    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Recurrent(c) if c.cell == CellKind::Lstm => "lstm",
            ModelConfig::Recurrent(_) => "gru",
            ModelConfig::Fdn(_) => "fdn",
            ModelConfig::Transformer(_) => "transformer",
            ModelConfig::Esn(_) => "esn",
        }
    }

    /// Variables in and out (D).
    pub fn vars(&self) -> usize {
        match self {
            ModelConfig::Recurrent(c) => c.vars,
            ModelConfig::Fdn(c) => c.vars,
            ModelConfig::Transformer(c) => c.vars,
            ModelConfig::Esn(c) => c.vars,
        }
    }

    /// Predicted steps (H).
    pub fn horizon(&self) -> usize {
        match self {
            ModelConfig::Recurrent(c) => c.horizon,
            ModelConfig::Fdn(c) => c.horizon,
            ModelConfig::Transformer(c) => c.horizon,
            ModelConfig::Esn(c) => c.horizon,
        }
    }

    /// The input steps the model itself is built for, where its layers depend on them (the
    /// FDN's segments); the other models read windows of any length.
    pub fn lookback(&self) -> Option<usize> {
        match self {
            ModelConfig::Fdn(c) => Some(c.lookback),
            _ => None,
        }
    }

    /// Whether the model forecasts one step at a time (and trains with a teacher-forcing
    /// strategy).
    pub fn is_autoregressive(&self) -> bool {
        match self {
            ModelConfig::Recurrent(c) => c.is_autoregressive(),
            ModelConfig::Transformer(c) => c.is_autoregressive(),
            ModelConfig::Fdn(c) => c.is_autoregressive(),
            _ => false,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> crate::Result<()> {
        match self {
            ModelConfig::Recurrent(c) => c.validate(),
            ModelConfig::Fdn(c) => c.validate(),
            ModelConfig::Transformer(c) => c.validate(),
            ModelConfig::Esn(c) => c.validate(),
        }
    }

    /// A model of this config's shapes for a saved record to replace (see
    /// [`Model::load_checked`]): [`Self::init`], except that the ESN skips drawing its reservoir
    /// and solving its eigenvalues, which the record overwrites anyway.
    pub fn skeleton<B: Backend>(&self, device: &B::Device) -> crate::Result<Model<B>> {
        match self {
            ModelConfig::Esn(c) => Ok(Model::Esn(c.skeleton(device)?)),
            other => other.init(device),
        }
    }

    /// Builds the model on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Model<B>> {
        Ok(match self {
            ModelConfig::Recurrent(c) if c.is_autoregressive() => {
                Model::Autoregressive(c.init_autoregressive(device)?)
            }
            ModelConfig::Recurrent(c) => Model::Recurrent(c.init(device)?),
            ModelConfig::Fdn(c) => Model::Fdn(c.init(device)?),
            ModelConfig::Transformer(c) => Model::Transformer(c.init(device)?),
            ModelConfig::Esn(c) => Model::Esn(c.init(device)?),
        })
    }
}

/// Any forecasting model.
// Built once per run and moved rarely: boxing the variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model<B: Backend> {
    /// LSTM or GRU with attention.
    Recurrent(RecurrentForecaster<B>),
    /// FDN.
    Fdn(Fdn<B>),
    /// Transformer encoder.
    Transformer(TransformerForecaster<B>),
    /// Echo state network.
    Esn(Esn<B>),
    /// LSTM or GRU with the autoregressive decoder.
    Autoregressive(AutoregressiveRnn<B>),
}

impl<B: Backend> Model<B> {
    /// `x`: `[batch, lookback, vars]` → forecast `[batch, horizon, vars]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            Model::Recurrent(m) => m.forward(x),
            Model::Fdn(m) => m.forward(x),
            Model::Transformer(m) => m.forward(x),
            Model::Esn(m) => m.forward(x),
            Model::Autoregressive(m) => m.forward(x),
        }
    }

    /// The forecast a training step scores: for an autoregressive decoder, with the decoder
    /// inputs chosen by `teacher` (see [`Teacher`]); for every other model (or without a
    /// teacher), the forecast.
    pub fn forward_train(&self, x: Tensor<B, 3>, teacher: Option<&Teacher<B>>) -> Tensor<B, 3> {
        match (self, teacher) {
            (Model::Autoregressive(m), Some(t)) => m.train_forecast(x, t),
            (Model::Transformer(m), Some(t)) if m.is_autoregressive() => m.train_forecast(x, t),
            (Model::Fdn(m), Some(t)) if m.is_autoregressive() => m.train_forecast(x, t),
            _ => self.forward(x),
        }
    }

    /// A closed-loop forecast of `steps` steps (`[batch, steps, vars]`) from the window `x`
    /// `[batch, lookback, vars]`: models that forecast one step at a time (the ESN, the
    /// autoregressive decoders) carry their closed loop on; direct models append each forecast
    /// of H steps to the window and read its last L steps again.
    ///
    /// # Panics
    /// If `steps` is 0 (there is no empty forecast tensor to return).
    pub fn rollout(&self, x: Tensor<B, 3>, steps: usize) -> Tensor<B, 3> {
        assert!(steps > 0, "a rollout forecasts at least one step");
        let free = || Teacher::new(x.clone(), Feed::Forecast);
        match self {
            Model::Autoregressive(m) => m.forecast(x, steps),
            Model::Esn(m) => m.forecast(x, steps),
            Model::Transformer(m) if m.is_autoregressive() => {
                autoregressive::slide(x.clone(), &free(), steps, |w| m.one_step(w))
            }
            Model::Fdn(m) if m.is_autoregressive() => {
                autoregressive::slide(x.clone(), &free(), steps, |w| m.one_step(w))
            }
            direct => {
                let lookback = x.dims()[1];
                let mut context = x;
                let mut pieces = Vec::new();
                let mut made = 0;
                while made < steps {
                    let next = direct.forward(context.clone());
                    made += next.dims()[1];
                    context = Tensor::cat(vec![context, next.clone()], 1);
                    let len = context.dims()[1];
                    context = context.narrow(1, len - lookback, lookback);
                    pieces.push(next);
                }
                Tensor::cat(pieces, 1).narrow(1, 0, steps)
            }
        }
    }

    /// The values [`Self::forward_train`] is scored against, from the clean window `x`
    /// `[batch, lookback, vars]` and horizon `y` `[batch, horizon, vars]`: window steps
    /// 1 .. L − 1 then the horizon for a window loss; the first step for a sliding-window model
    /// under teacher forcing; otherwise the horizon.
    pub fn training_target(
        &self,
        x: Tensor<B, 3>,
        y: Tensor<B, 3>,
        teacher: Option<&Teacher<B>>,
    ) -> Tensor<B, 3> {
        let Some(t) = teacher else { return y };
        let sliding = match self {
            Model::Transformer(m) => m.is_autoregressive(),
            Model::Fdn(m) => m.is_autoregressive(),
            _ => false,
        };
        let steps = x.dims()[1];
        match (sliding, &t.feed) {
            (true, Feed::Truth) => y.narrow(1, 0, 1),
            (false, _) if t.window && steps > 1 && matches!(self, Model::Autoregressive(_)) => {
                Tensor::cat(vec![x.narrow(1, 1, steps - 1), y], 1)
            }
            _ => y,
        }
    }

    /// Every parameter's shape, in visiting order.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        struct Shapes(Vec<Vec<usize>>);
        impl<B: Backend> ModuleVisitor<B> for Shapes {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                self.0.push(param.val().dims().to_vec());
            }
        }
        let mut shapes = Shapes(Vec::new());
        self.visit(&mut shapes);
        shapes.0
    }

    /// Loads `record` into this (freshly built) model, checking that every parameter keeps its
    /// shape: Burn itself would accept a record of another size and fail later. `what` names the
    /// record in the error.
    pub fn load_checked(self, record: ModelRecord<B>, what: &str) -> crate::Result<Self> {
        let expected = self.param_shapes();
        let loaded = self.load_record(record);
        let got = loaded.param_shapes();
        if got != expected {
            return Err(crate::Error::ShapeMismatch {
                what: format!("parameter shapes of the {what}"),
                expected: format!("{expected:?}"),
                got: format!("{got:?}"),
            });
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn all_models() -> Vec<ModelConfig> {
        vec![
            ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 5).with_hidden(8)),
            ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8)),
            ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(4)),
            ModelConfig::Transformer(TransformerConfig::new(3, 5).with_d_model(8).with_d_ff(16)),
            ModelConfig::Esn(EsnConfig::new(3, 5).with_reservoir(10).with_sparsity(0.5)),
            ModelConfig::Recurrent(
                RecurrentConfig::new(CellKind::Gru, 3, 5)
                    .with_hidden(8)
                    .with_decoder(Some(Decoder::Autoregressive)),
            ),
            ModelConfig::Transformer(
                TransformerConfig::new(3, 5)
                    .with_d_model(8)
                    .with_d_ff(16)
                    .with_patch(4)
                    .with_decoder(Some(Decoder::Autoregressive)),
            ),
        ]
    }

    #[test]
    fn every_model_maps_lookback_to_horizon() {
        let device = Default::default();
        for cfg in all_models() {
            let model = cfg.init::<Flex>(&device).unwrap();
            let x = Tensor::<Flex, 3>::ones([2, 20, 3], &device);
            assert_eq!(model.forward(x).dims(), [2, 5, 3], "{}", cfg.name());
        }
    }

    /// What loading builds has the shapes of what training builds, so every record fits it.
    #[test]
    fn skeletons_have_the_models_shapes() {
        let device = Default::default();
        for cfg in all_models() {
            let init = cfg.init::<Flex>(&device).unwrap();
            let skeleton = cfg.skeleton::<Flex>(&device).unwrap();
            assert_eq!(
                skeleton.param_shapes(),
                init.param_shapes(),
                "{}",
                cfg.name()
            );
            let loaded = skeleton
                .load_checked(init.clone().into_record(), "test")
                .unwrap();
            let x = Tensor::<Flex, 3>::ones([1, 20, 3], &device);
            assert_eq!(
                loaded.forward(x.clone()).into_data(),
                init.forward(x).into_data(),
                "{}",
                cfg.name()
            );
        }
    }

    #[test]
    fn configs_round_trip_through_json() {
        let names: Vec<&str> = all_models().iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "lstm",
                "gru",
                "fdn",
                "transformer",
                "esn",
                "gru",
                "transformer"
            ]
        );
        for cfg in all_models() {
            let json = serde_json::to_string(&cfg).unwrap();
            let back: ModelConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }
    }
}
