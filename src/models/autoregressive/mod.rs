//! The autoregressive mode of the LSTM and GRU forecasters (`--decoder autoregressive`): the
//! stacked layers read the lookback window, then keep stepping over the horizon, each step's
//! input being the previous step's value, and a linear head on the top hidden state predicts
//! the change to the next step:
//!
//! ```text
//! ŷ_{L+1} = u_L + head(h_L),   ŷ_{t+1} = v_t + head(h_t) with h_t = cell(v_t, state_{t−1})
//! ```
//!
//! where the decoder input v_t is the true value u_t (teacher forcing) or the model's own
//! forecast ŷ_t (free running). Forecasting always runs free; training mixes the two by a mask
//! that the training strategy draws (see [`crate::train::strategy`]). Predicting the change
//! rather than the value keeps a fresh model near persistence, so a free-running rollout starts
//! stable. The encoder runs fused on the CPU backends; the decoder steps are tensor operations.

use burn::nn::Linear;
use burn::prelude::*;

use super::cells::{CellState, RecurrentCell};

/// A recurrent encoder that keeps stepping over the horizon with a one-step head.
#[derive(Module, Debug)]
pub struct AutoregressiveRnn<B: Backend> {
    /// The stacked recurrent layers, shared by the window and the horizon.
    pub layers: Vec<RecurrentCell<B>>,
    /// One-step head `[hidden, vars]`: the change from the current input to the next value.
    pub head: Linear<B>,
    pub(super) vars: usize,
    pub(super) horizon: usize,
}

impl<B: Backend> AutoregressiveRnn<B> {
    /// `x`: `[batch, lookback, vars]` → free-running forecast `[batch, horizon, vars]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.decode(x, None)
    }

    /// The forecast with decoder inputs mixed from the truth: `teacher` holds the targets
    /// `[batch, horizon, vars]` and a mask `[batch, horizon]` whose entry (b, t) is 1 where the
    /// input of step t (t ≥ 1) is the true value y_{t−1} and 0 where it is the forecast ŷ_{t−1}
    /// (column 0 is unused: the first input is the window's last value). Without `teacher`,
    /// free running.
    pub fn decode(
        &self,
        x: Tensor<B, 3>,
        teacher: Option<(Tensor<B, 3>, Tensor<B, 2>)>,
    ) -> Tensor<B, 3> {
        let teacher = match teacher {
            Some((inputs, mask)) => Teacher::new(inputs, Feed::Mask(mask)),
            None => Teacher::free(x.clone()),
        };
        self.train_forecast(x, &teacher)
    }

    /// The forecast a training step scores (see [`Teacher`]): `[batch, horizon, vars]`, or with
    /// `teacher.window` `[batch, lookback − 1 + horizon, vars]`, the one-step forecasts of
    /// window steps 1 .. L − 1 (each from the true steps before it) followed by the horizon.
    ///
    /// Under [`Feed::Truth`] every input is a true value, so the layers run once over the
    /// window and the horizon's inputs together (fused on the CPU backends); this equals the
    /// step-by-step decoder with a mask of ones.
    pub fn train_forecast(&self, x: Tensor<B, 3>, teacher: &Teacher<B>) -> Tensor<B, 3> {
        let [_, steps, _] = x.dims();
        if matches!(teacher.feed, Feed::Truth) {
            let sequence = match self.horizon {
                1 => x,
                h => Tensor::cat(vec![x, teacher.inputs.clone().narrow(1, 0, h - 1)], 1),
            };
            let top = self
                .layers
                .iter()
                .fold(sequence.clone(), |input, layer| layer.forward(input));
            let forecast = sequence + self.head.forward(top);
            return if teacher.window {
                forecast
            } else {
                forecast.narrow(1, steps - 1, self.horizon)
            };
        }
        let mut states = Vec::with_capacity(self.layers.len());
        let mut input = x.clone();
        for layer in &self.layers {
            let (h, state) = layer.forward_with_state(input);
            states.push(state);
            input = h;
        }
        let mut out = Vec::with_capacity(self.horizon + 1);
        if teacher.window && steps > 1 {
            let early = input.narrow(1, 0, steps - 1);
            out.push(x.clone().narrow(1, 0, steps - 1) + self.head.forward(early));
        }
        out.push(self.decode_horizon(x, states, teacher, self.horizon));
        Tensor::cat(out, 1)
    }

    /// The free-running forecast of `steps` steps, any number: the same closed loop as
    /// [`Self::forward`], carried on (`[batch, steps, vars]`).
    pub fn forecast(&self, x: Tensor<B, 3>, steps: usize) -> Tensor<B, 3> {
        let mut states = Vec::with_capacity(self.layers.len());
        let mut input = x.clone();
        for layer in &self.layers {
            let (h, state) = layer.forward_with_state(input);
            states.push(state);
            input = h;
        }
        let free = Teacher::free(x.clone());
        self.decode_horizon(x, states, &free, steps)
    }

    /// `horizon` steps from the encoder's last states, `[batch, horizon, vars]`.
    fn decode_horizon(
        &self,
        x: Tensor<B, 3>,
        mut states: Vec<CellState<B>>,
        teacher: &Teacher<B>,
        horizon: usize,
    ) -> Tensor<B, 3> {
        let [batch, steps, vars] = x.dims();
        let top = |states: &[CellState<B>]| {
            states
                .last()
                .expect("a forecaster has at least one layer")
                .hidden()
        };
        let current = x.narrow(1, steps - 1, 1).reshape([batch, vars]);
        let mut forecast = current + self.head.forward(top(&states));
        let mut out = Vec::with_capacity(horizon);
        out.push(forecast.clone());
        for t in 1..horizon {
            let mut current = match &teacher.feed {
                Feed::Mask(mask) => teacher_input(&teacher.inputs, mask, t, forecast),
                Feed::Truth => step_of(&teacher.inputs, t - 1),
                Feed::Forecast => forecast,
            };
            if teacher.bptt.is_some_and(|k| t.is_multiple_of(k)) {
                current = current.detach();
                states = states.into_iter().map(CellState::detach).collect();
            }
            let mut v = current.clone();
            for (layer, state) in self.layers.iter().zip(states.iter_mut()) {
                *state = layer.step(v, state.clone());
                v = state.hidden();
            }
            forecast = current + self.head.forward(v);
            out.push(forecast.clone());
        }
        Tensor::stack(out, 1)
    }
}

/// Where the decoder's inputs come from in a training forecast.
#[derive(Clone, Debug)]
pub enum Feed<B: Backend> {
    /// Every input is the true value (teacher forcing): one-step-ahead training.
    Truth,
    /// Every input is the model's own previous forecast (free running, closed loop).
    Forecast,
    /// Per sequence and step, `[batch, horizon]`: 1 for the true value, 0 for the forecast (see
    /// [`AutoregressiveRnn::decode`]).
    Mask(Tensor<B, 2>),
}

/// What a training forecast may read besides its window.
#[derive(Clone, Debug)]
pub struct Teacher<B: Backend> {
    /// The true horizon values `[batch, horizon, vars]` that [`Feed`] may put in as inputs
    /// (in training, with the input noise already added).
    pub inputs: Tensor<B, 3>,
    /// Where each decoder input comes from.
    pub feed: Feed<B>,
    /// Backpropagation through the rollout spans at most this many steps: the fed-back input
    /// and the recurrent state are detached every `bptt` steps (`None`: the whole horizon).
    pub bptt: Option<usize>,
    /// Whether the forecast also holds the one-step forecasts inside the lookback window (a
    /// loss over the whole window, warm-up steps included).
    pub window: bool,
}

impl<B: Backend> Teacher<B> {
    /// Inputs fed as `feed` says, over the horizon only, with full backpropagation.
    pub fn new(inputs: Tensor<B, 3>, feed: Feed<B>) -> Self {
        Self {
            inputs,
            feed,
            bptt: None,
            window: false,
        }
    }

    /// Free running; `like` only lends its device and type (never read as a value).
    fn free(like: Tensor<B, 3>) -> Self {
        Self::new(like, Feed::Forecast)
    }
}

/// The autoregressive forecast of a sliding-window model (the transformer's and the FDN's
/// autoregressive mode): `change` maps a window `[batch, L, vars]` to the change from its last
/// value to the next, the forecast is appended (or, where `teacher.feed` says, the true value)
/// and the oldest step dropped, `horizon` times; `[batch, horizon, vars]`. With
/// `teacher.bptt = Some(k)` the window is detached every k steps.
///
/// Under [`Feed::Truth`] only the first step is forecast, `[batch, 1, vars]`: with true inputs,
/// step t from window s is step 0 from window s + t, which the training set holds itself (at
/// stride 1), so teacher forcing is one-step training at 1/H of the cost.
///
/// # Panics
/// If `teacher.window` is set: a sliding-window model makes no one-step forecasts inside its
/// window (training configs refuse it).
pub(super) fn slide<B: Backend>(
    x: Tensor<B, 3>,
    teacher: &Teacher<B>,
    horizon: usize,
    change: impl Fn(Tensor<B, 3>) -> Tensor<B, 2>,
) -> Tensor<B, 3> {
    assert!(
        !teacher.window,
        "a sliding-window model makes no one-step forecasts inside its window"
    );
    let [batch, steps, vars] = x.dims();
    let horizon = if matches!(teacher.feed, Feed::Truth) {
        1
    } else {
        horizon
    };
    let mut window = x;
    let mut out = Vec::with_capacity(horizon);
    for t in 0..horizon {
        let last = window
            .clone()
            .narrow(1, steps - 1, 1)
            .reshape([batch, vars]);
        let forecast = last + change(window.clone());
        out.push(forecast.clone());
        if t + 1 < horizon {
            let next = match &teacher.feed {
                Feed::Mask(mask) => teacher_input(&teacher.inputs, mask, t + 1, forecast),
                Feed::Truth => step_of(&teacher.inputs, t),
                Feed::Forecast => forecast,
            };
            window = if steps > 1 {
                Tensor::cat(
                    vec![window.narrow(1, 1, steps - 1), next.unsqueeze_dim(1)],
                    1,
                )
            } else {
                next.unsqueeze_dim(1)
            };
            if teacher.bptt.is_some_and(|k| (t + 1).is_multiple_of(k)) {
                window = window.detach();
            }
        }
    }
    Tensor::stack(out, 1)
}

/// Step `t` of `[batch, horizon, vars]` as `[batch, vars]`.
fn step_of<B: Backend>(x: &Tensor<B, 3>, t: usize) -> Tensor<B, 2> {
    let [batch, _, vars] = x.dims();
    x.clone().narrow(1, t, 1).reshape([batch, vars])
}

/// The input of decoder step `t` (t ≥ 1) under a teacher: the true value y_{t−1} of `targets`
/// `[batch, horizon, vars]` where column t of `mask` is 1, the forecast ŷ_{t−1} (`[batch, vars]`)
/// where it is 0.
pub(super) fn teacher_input<B: Backend>(
    targets: &Tensor<B, 3>,
    mask: &Tensor<B, 2>,
    t: usize,
    forecast: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let truth = step_of(targets, t - 1);
    let m = mask.clone().narrow(1, t, 1);
    truth * m.clone() + forecast * (m.ones_like() - m)
}

#[cfg(test)]
mod tests;
