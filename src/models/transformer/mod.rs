//! Transformer encoder forecaster (SPEC.md §4): input projection, sinusoidal positional encoding,
//! encoder layers, pooling (the last token or the mean), and a linear head to the whole horizon.
//!
//! A token is one time step by default; with `patch = p > 1` it is p consecutive steps of every
//! variable (as in PatchTST, Nie et al. 2023), the oldest L mod p steps dropped, which shortens
//! the sequence p-fold and the attention's cost p²-fold.
//!
//! With the autoregressive decoder (`decoder = autoregressive`) the head predicts one step — the
//! change from the window's last value — and the forecast slides the window forward one step at a
//! time, appending each forecast (or, in training, the true value where the teacher mask says so;
//! see [`super::autoregressive`] for the mask), so the encoder runs H times per forecast.
//!
//! Dropout (default 0) draws its masks from the backend's RNG, not yet from a seeded host
//! generator; with dropout 0 the model is fully determined by its seed.

use burn::module::Module;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PositionalEncoding, PositionalEncodingConfig};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::autoregressive::{Feed, Teacher};
use super::init::HostInit;
// `Result` stays unimported: burn's Config derive refers to it unqualified.
use crate::error::Error;

pub mod encoder;

/// How the encoder's outputs become one vector per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The last token's output.
    Last,
    /// The mean over all tokens.
    Mean,
}

/// Builds a [`TransformerForecaster`].
#[derive(Config, Debug)]
pub struct TransformerConfig {
    /// Variables in and out (D).
    pub vars: usize,
    /// Predicted steps (H).
    pub horizon: usize,
    /// Model width (default 128).
    #[config(default = 128)]
    pub d_model: usize,
    /// Attention heads; must divide `d_model` (default 4).
    #[config(default = 4)]
    pub heads: usize,
    /// Encoder layers (default 2).
    #[config(default = 2)]
    pub layers: usize,
    /// Feed-forward width (default 256).
    #[config(default = 256)]
    pub d_ff: usize,
    /// Dropout probability (default 0).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Time steps per token (default 1).
    #[config(default = 1)]
    pub patch: usize,
    /// Pooling of the encoder outputs (default: the last token).
    #[config(default = "Pooling::Last")]
    pub pooling: Pooling,
    /// Seed of the weight initialisation (default 0).
    #[config(default = 0)]
    pub seed: u64,
    /// Direct multi-step head or autoregressive decoder (default, and when absent: direct).
    pub decoder: Option<super::Decoder>,
}

impl TransformerConfig {
    /// Whether the decoder is the autoregressive one.
    pub fn is_autoregressive(&self) -> bool {
        self.decoder == Some(super::Decoder::Autoregressive)
    }

    /// Checks every field; returns the first bad one.
    pub fn validate(&self) -> crate::Result<()> {
        crate::error::ensure_counts(&[
            ("vars", self.vars),
            ("horizon", self.horizon),
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("layers", self.layers),
            ("d_ff", self.d_ff),
            ("patch", self.patch),
        ])?;
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(Error::config(
                "heads",
                format!(
                    "{} heads do not divide d_model = {}",
                    self.heads, self.d_model
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("dropout", "must be in [0, 1)"));
        }
        Ok(())
    }

    /// Builds the model with weights from the seeded host generator and zero biases.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<TransformerForecaster<B>> {
        self.validate()?;
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_initializer(Initializer::Zeros)
                .init(device)
        };
        let model = TransformerForecaster {
            input: linear(self.patch * self.vars, self.d_model),
            position: PositionalEncodingConfig::new(self.d_model).init(device),
            encoder: TransformerEncoderConfig::new(
                self.d_model,
                self.d_ff,
                self.heads,
                self.layers,
            )
            .with_dropout(self.dropout)
            .with_initializer(Initializer::Zeros)
            .init(device),
            head: linear(
                self.d_model,
                if self.is_autoregressive() {
                    self.vars
                } else {
                    self.horizon * self.vars
                },
            ),
            autoregressive: self.is_autoregressive(),
            pooling: self.pooling == Pooling::Mean,
            patch: self.patch,
            vars: self.vars,
            horizon: self.horizon,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        Ok(model.map(&mut HostInit { rng: &mut rng }))
    }
}

/// The transformer encoder forecaster.
#[derive(Module, Debug)]
pub struct TransformerForecaster<B: Backend> {
    /// Input projection `[vars, d_model]`.
    pub input: Linear<B>,
    /// Sinusoidal positional encoding.
    pub position: PositionalEncoding<B>,
    /// The encoder layers.
    pub encoder: TransformerEncoder<B>,
    /// Output head `[d_model, horizon·vars]`.
    pub head: Linear<B>,
    autoregressive: bool,
    pooling: bool,
    patch: usize,
    vars: usize,
    horizon: usize,
}

impl<B: Backend> TransformerForecaster<B> {
    /// `x`: `[batch, lookback, vars]` → forecast `[batch, horizon, vars]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if self.autoregressive {
            return self.decode(x, None);
        }
        let [batch, _, _] = x.dims();
        self.head
            .forward(self.encode(x))
            .reshape([batch, self.horizon, self.vars])
    }

    /// Whether the model forecasts one step at a time.
    pub fn is_autoregressive(&self) -> bool {
        self.autoregressive
    }

    /// The autoregressive forecast, the window sliding one step per forecast step; with
    /// `teacher` (targets `[batch, horizon, vars]` and a mask `[batch, horizon]`), the appended
    /// value is the truth where the mask is 1, as in [`super::AutoregressiveRnn::decode`].
    ///
    /// # Panics
    /// If the model was built with the direct head.
    pub fn decode(
        &self,
        x: Tensor<B, 3>,
        teacher: Option<(Tensor<B, 3>, Tensor<B, 2>)>,
    ) -> Tensor<B, 3> {
        let teacher = match teacher {
            Some((inputs, mask)) => Teacher::new(inputs, Feed::Mask(mask)),
            None => Teacher::new(x.clone(), Feed::Forecast),
        };
        self.train_forecast(x, &teacher)
    }

    /// The forecast a training step scores: the window slides one step per forecast step and
    /// takes in what `teacher.feed` says (see [`super::autoregressive::Teacher`]);
    /// `[batch, horizon, vars]`, or `[batch, 1, vars]` under teacher forcing, which for a
    /// sliding window is one-step training.
    ///
    /// # Panics
    /// If the model was built with the direct head, or `teacher.window` is set (training
    /// configs refuse it).
    pub fn train_forecast(&self, x: Tensor<B, 3>, teacher: &Teacher<B>) -> Tensor<B, 3> {
        assert!(self.autoregressive, "decode needs the autoregressive head");
        super::autoregressive::slide(x, teacher, self.horizon, |w| self.one_step(w))
    }

    /// The one-step head's change from a window's last value to the next, `[batch, vars]`.
    pub(super) fn one_step(&self, window: Tensor<B, 3>) -> Tensor<B, 2> {
        self.head.forward(self.encode(window))
    }

    /// The pooled encoding of a window, `[batch, d_model]`.
    fn encode(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, steps, vars] = x.dims();
        let p = self.patch;
        let x = if p > 1 {
            let kept = steps - steps % p;
            x.narrow(1, steps - kept, kept)
                .reshape([batch, kept / p, p * vars])
        } else {
            x
        };
        let steps = x.dims()[1];
        let tokens = self.position.forward(self.input.forward(x));
        let encoded = encoder::forward(&self.encoder, tokens);
        let width = encoded.dims()[2];
        if self.pooling {
            encoded.mean_dim(1).reshape([batch, width])
        } else {
            encoded.narrow(1, steps - 1, 1).reshape([batch, width])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn shapes_for_both_poolings_and_seeded_weights() {
        let device = Default::default();
        let x = Tensor::<Flex, 3>::from_data(
            TensorData::new(
                (0..60).map(|i| (i as f32 * 0.1).cos()).collect(),
                [2, 10, 3],
            ),
            &device,
        );
        for pooling in [Pooling::Last, Pooling::Mean] {
            let cfg = TransformerConfig::new(3, 4)
                .with_d_model(16)
                .with_d_ff(32)
                .with_pooling(pooling);
            let patched = cfg.clone().with_patch(3).init::<Flex>(&device).unwrap();
            assert_eq!(patched.forward(x.clone()).dims(), [2, 4, 3]);
            let a = cfg.init::<Flex>(&device).unwrap();
            let b = cfg.init::<Flex>(&device).unwrap();
            let ya = a.forward(x.clone());
            assert_eq!(ya.dims(), [2, 4, 3]);
            let (va, vb) = (
                ya.into_data().to_vec::<f32>().unwrap(),
                b.forward(x.clone()).into_data().to_vec::<f32>().unwrap(),
            );
            assert_eq!(va, vb, "same seed, same model");
            assert!(va.iter().any(|v| *v != 0.0), "weights were drawn");
        }
        let bias = TransformerConfig::new(3, 4)
            .init::<Flex>(&device)
            .unwrap()
            .head
            .bias
            .unwrap();
        assert!(
            bias.val()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
                .iter()
                .all(|v| *v == 0.0)
        );
    }

    #[test]
    fn heads_must_divide_the_width() {
        let err = TransformerConfig::new(3, 4)
            .with_heads(3)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("heads"), "{err}");
    }

    /// The autoregressive transformer slides its window: each free-running step is the first
    /// step of the forecast from the window moved on by the forecasts so far, and with the
    /// whole mask set each step is the first step from the window moved on by the true values
    /// (one-step-ahead training).
    #[test]
    fn autoregressive_head_slides_the_window() {
        let device = Default::default();
        let model = TransformerConfig::new(2, 3)
            .with_d_model(8)
            .with_d_ff(16)
            .with_patch(2)
            .with_decoder(Some(crate::models::Decoder::Autoregressive))
            .init::<Flex>(&device)
            .unwrap();
        assert!(model.is_autoregressive());
        assert_eq!(model.head.weight.val().dims(), [8, 2], "a one-step head");
        let series = Tensor::<Flex, 3>::from_data(
            TensorData::new(
                (0..2 * 9 * 2).map(|i| (i as f32 * 0.4).sin()).collect(),
                [2, 9, 2],
            ),
            &device,
        );
        let (x, y) = (series.clone().narrow(1, 0, 6), series.narrow(1, 6, 3));
        let first = |w: Tensor<Flex, 3>| model.forward(w).narrow(1, 0, 1);
        let check = |got: Tensor<Flex, 3>,
                     feed: &dyn Fn(usize, Tensor<Flex, 3>) -> Tensor<Flex, 3>| {
            let mut window = x.clone();
            for t in 0..3 {
                let step = first(window.clone());
                let g = got
                    .clone()
                    .narrow(1, t, 1)
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap();
                let w = step.clone().into_data().to_vec::<f32>().unwrap();
                for (a, b) in g.iter().zip(&w) {
                    assert!((a - b).abs() < 1e-5, "step {t}: {a} vs {b}");
                }
                window = Tensor::cat(vec![window.narrow(1, 1, 5), feed(t, step)], 1);
            }
        };
        check(model.forward(x.clone()), &|_, step| step);
        let forced = model.decode(x.clone(), Some((y.clone(), Tensor::ones([2, 3], &device))));
        check(forced, &|t, _| y.clone().narrow(1, t, 1));
    }
}
