//! LSTM and GRU forecasters "with attention" (SPEC.md §4): stacked recurrent layers over the
//! lookback window, attention of the last hidden state over all of them, and a linear head on
//! [context; h_L] that predicts the whole horizon at once.

use burn::nn::Linear;
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::attention::LastStateAttention;
use super::autoregressive::AutoregressiveRnn;
use super::cells::{GruCell, LstmCell, RecurrentCell};
use super::init;

/// Which recurrent cell a forecaster uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit.
    Gru,
}

/// How a recurrent forecaster produces the horizon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decoder {
    /// All H steps at once from attention over the window (the paper's model).
    #[default]
    Direct,
    /// One step at a time, each forecast fed back as the next input
    /// ([`super::autoregressive`]).
    Autoregressive,
}

/// Builds a [`RecurrentForecaster`] (or, with the autoregressive decoder, an
/// [`AutoregressiveRnn`]).
#[derive(Config, Debug)]
pub struct RecurrentConfig {
    /// The cell type.
    pub cell: CellKind,
    /// Variables in and out (D).
    pub vars: usize,
    /// Predicted steps (H).
    pub horizon: usize,
    /// Hidden width of every layer and of the attention (default 512, the paper's size).
    #[config(default = 512)]
    pub hidden: usize,
    /// Stacked recurrent layers (default 1).
    #[config(default = 1)]
    pub layers: usize,
    /// Seed of the weight initialisation (default 0).
    #[config(default = 0)]
    pub seed: u64,
    /// Direct multi-step head or autoregressive decoder (default, and when absent: direct; an
    /// option so that configs written before the decoder existed still load).
    pub decoder: Option<Decoder>,
}

impl RecurrentConfig {
    /// Checks every size; returns the first bad one.
    pub fn validate(&self) -> crate::Result<()> {
        crate::error::ensure_counts(&[
            ("vars", self.vars),
            ("horizon", self.horizon),
            ("hidden", self.hidden),
            ("layers", self.layers),
        ])?;
        Ok(())
    }

    /// Whether the decoder is the autoregressive one.
    pub fn is_autoregressive(&self) -> bool {
        self.decoder == Some(Decoder::Autoregressive)
    }

    /// The autoregressive model (whatever `decoder` says), weights from the seeded host
    /// generator: the layers as [`Self::init`] draws them, then the one-step head.
    pub fn init_autoregressive<B: Backend>(
        &self,
        device: &B::Device,
    ) -> crate::Result<AutoregressiveRnn<B>> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let layers = self.layers(&mut rng, device);
        Ok(AutoregressiveRnn {
            layers,
            head: init::linear(&mut rng, self.hidden, self.vars, device),
            vars: self.vars,
            horizon: self.horizon,
        })
    }

    /// Builds the direct model (whatever `decoder` says) with weights from the seeded host
    /// generator.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<RecurrentForecaster<B>> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let layers = self.layers(&mut rng, device);
        Ok(RecurrentForecaster {
            layers,
            attention: LastStateAttention::new(&mut rng, self.hidden, device),
            head: init::linear(&mut rng, 2 * self.hidden, self.horizon * self.vars, device),
            vars: self.vars,
            horizon: self.horizon,
        })
    }

    fn layers<B: Backend>(
        &self,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Vec<RecurrentCell<B>> {
        (0..self.layers)
            .map(|l| {
                let inputs = if l == 0 { self.vars } else { self.hidden };
                match self.cell {
                    CellKind::Lstm => {
                        RecurrentCell::Lstm(LstmCell::new(rng, inputs, self.hidden, device))
                    }
                    CellKind::Gru => {
                        RecurrentCell::Gru(GruCell::new(rng, inputs, self.hidden, device))
                    }
                }
            })
            .collect()
    }
}

/// A recurrent encoder with last-state attention and a direct multi-step head.
#[derive(Module, Debug)]
pub struct RecurrentForecaster<B: Backend> {
    /// The stacked recurrent layers.
    pub layers: Vec<RecurrentCell<B>>,
    /// Attention of h_L over all hidden states.
    pub attention: LastStateAttention<B>,
    /// Output head `[2·hidden, horizon·vars]`.
    pub head: Linear<B>,
    vars: usize,
    horizon: usize,
}

impl<B: Backend> RecurrentForecaster<B> {
    /// `x`: `[batch, lookback, vars]` → forecast `[batch, horizon, vars]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, steps, _] = x.dims();
        let states = self
            .layers
            .iter()
            .fold(x, |input, layer| layer.forward(input));
        let hidden = states.dims()[2];
        let last = states
            .clone()
            .narrow(1, steps - 1, 1)
            .reshape([batch, hidden]);
        let context = self.attention.forward(states);
        self.head
            .forward(Tensor::cat(vec![context, last], 1))
            .reshape([batch, self.horizon, self.vars])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::list_param_ids;

    type B = Flex;

    fn input(batch: usize, steps: usize, vars: usize) -> Tensor<B, 3> {
        let values: Vec<f32> = (0..batch * steps * vars)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        Tensor::from_data(
            TensorData::new(values, [batch, steps, vars]),
            &Default::default(),
        )
    }

    #[test]
    fn output_shapes_for_both_cells_and_two_layers() {
        for cell in [CellKind::Lstm, CellKind::Gru] {
            let model = RecurrentConfig::new(cell, 3, 7)
                .with_hidden(8)
                .with_layers(2)
                .init::<B>(&Default::default())
                .unwrap();
            assert_eq!(model.forward(input(4, 11, 3)).dims(), [4, 7, 3]);
        }
    }

    #[test]
    fn same_seed_same_weights_and_zero_biases() {
        let cfg = RecurrentConfig::new(CellKind::Lstm, 2, 3).with_hidden(4);
        let a = cfg.init::<B>(&Default::default()).unwrap();
        let b = cfg.init::<B>(&Default::default()).unwrap();
        let out = |m: &RecurrentForecaster<B>| {
            m.forward(input(2, 5, 2))
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(out(&a), out(&b));
        let c = cfg
            .clone()
            .with_seed(1)
            .init::<B>(&Default::default())
            .unwrap();
        assert_ne!(out(&a), out(&c));
        let RecurrentCell::Lstm(cell) = &a.layers[0] else {
            panic!("an LSTM config should build LSTM layers")
        };
        let bias = cell.bias.val().into_data().to_vec::<f32>().unwrap();
        assert!(bias.iter().all(|v| *v == 0.0));
        let head_bias = a
            .head
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!(head_bias.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn every_parameter_receives_a_gradient() {
        type A = Autodiff<Flex>;
        for cell in [CellKind::Lstm, CellKind::Gru] {
            let model = RecurrentConfig::new(cell, 2, 3)
                .with_hidden(4)
                .init::<A>(&Default::default())
                .unwrap();
            let x = Tensor::<A, 3>::from_data(input(2, 5, 2).into_data(), &Default::default());
            let grads = model.forward(x).powi_scalar(2).mean().backward();
            let params = list_param_ids(&model);
            let with_grad = burn::optim::GradientsParams::from_grads(grads, &model);
            assert_eq!(with_grad.len(), params.len(), "{cell:?}");
        }
    }

    /// One LSTM step by hand: inputs = hidden = 1, x = 1, zero state, so the gates are the input
    /// weights: c = σ(w_i)·tanh(w_g), h = σ(w_o)·tanh(c).
    #[test]
    fn lstm_step_by_hand() {
        let device = Default::default();
        let mut cell = LstmCell::<B>::new(&mut ChaCha8Rng::seed_from_u64(0), 1, 1, &device);
        let w = [0.3f32, -0.2, 0.5, 0.8];
        cell.input = burn::module::Param::from_data(TensorData::new(w.to_vec(), [1, 4]), &device);
        let h = cell.forward(Tensor::ones([1, 1, 1], &device)).into_scalar();
        let s = |v: f32| 1.0 / (1.0 + (-v).exp());
        let c = s(0.3) * 0.5f32.tanh();
        assert!((h - s(0.8) * c.tanh()).abs() < 1e-6, "{h}");
    }

    /// One GRU step by hand: zero state, x = 1: z = σ(w_z), n = tanh(w_n), h = (1 − z)·n.
    #[test]
    fn gru_step_by_hand() {
        let device = Default::default();
        let mut cell = GruCell::<B>::new(&mut ChaCha8Rng::seed_from_u64(0), 1, 1, &device);
        let w = [0.3f32, -0.2, 0.5];
        cell.input = burn::module::Param::from_data(TensorData::new(w.to_vec(), [1, 3]), &device);
        let h = cell.forward(Tensor::ones([1, 1, 1], &device)).into_scalar();
        let z = 1.0 / (1.0 + 0.2f32.exp());
        assert!((h - (1.0 - z) * 0.5f32.tanh()).abs() < 1e-6, "{h}");
    }
}
