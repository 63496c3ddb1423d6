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
        let [batch, steps, vars] = x.dims();
        let mut states = Vec::with_capacity(self.layers.len());
        let mut input = x.clone();
        for layer in &self.layers {
            let (h, state) = layer.forward_with_state(input);
            states.push(state);
            input = h;
        }
        let top = |states: &[CellState<B>]| {
            states
                .last()
                .expect("a forecaster has at least one layer")
                .hidden()
        };
        let mut current = x.narrow(1, steps - 1, 1).reshape([batch, vars]);
        let mut forecast = current.clone() + self.head.forward(top(&states));
        let mut out = Vec::with_capacity(self.horizon);
        out.push(forecast.clone());
        for t in 1..self.horizon {
            current = match &teacher {
                Some((targets, mask)) => teacher_input(targets, mask, t, forecast),
                None => forecast,
            };
            let mut v = current.clone();
            for (layer, state) in self.layers.iter().zip(states.iter_mut()) {
                *state = layer.step(v, state.clone());
                v = state.hidden();
            }
            forecast = current.clone() + self.head.forward(v);
            out.push(forecast.clone());
        }
        Tensor::stack(out, 1)
    }
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
    let [batch, vars] = forecast.dims();
    let truth = targets.clone().narrow(1, t - 1, 1).reshape([batch, vars]);
    let m = mask.clone().narrow(1, t, 1);
    truth * m.clone() + forecast * (m.ones_like() - m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::cells::{GruCell, LstmCell};
    use crate::models::init;
    use burn::backend::Flex;
    use burn::module::Param;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type B = Flex;

    fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// A one-variable model built by hand: a GRU of width 1 whose weights are all zero, so its
    /// hidden state stays 0, and a head with bias 0.5 and weight 0: every step adds 0.5 to its
    /// input. Free running therefore counts up from the window's last value; teacher forcing
    /// adds 0.5 to each true value instead.
    fn adder() -> AutoregressiveRnn<B> {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut cell = GruCell::<B>::new(&mut rng, 1, 1, &device);
        cell.input = Param::from_tensor(Tensor::zeros([1, 3], &device));
        cell.recurrent = Param::from_tensor(Tensor::zeros([1, 3], &device));
        let mut head = init::linear::<B>(&mut rng, 1, 1, &device);
        head.weight = Param::from_tensor(Tensor::zeros([1, 1], &device));
        head.bias = Some(Param::from_tensor(Tensor::full([1], 0.5, &device)));
        AutoregressiveRnn {
            layers: vec![RecurrentCell::Gru(cell)],
            head,
            vars: 1,
            horizon: 4,
        }
    }

    #[test]
    fn free_running_feeds_its_own_forecasts_back() {
        let model = adder();
        let x = tensor(vec![0.0, 1.0, 2.0], [1, 3, 1]);
        assert_eq!(values(model.forward(x)), [2.5, 3.0, 3.5, 4.0]);
    }

    #[test]
    fn teacher_forcing_feeds_the_truth_where_the_mask_says() {
        let model = adder();
        let x = tensor(vec![0.0, 1.0, 2.0], [1, 3, 1]);
        let y = tensor(vec![10.0, 20.0, 30.0, 40.0], [1, 4, 1]);
        let all = tensor(vec![1.0; 4], [1, 4]);
        assert_eq!(
            values(model.decode(x.clone(), Some((y.clone(), all)))),
            [2.5, 10.5, 20.5, 30.5]
        );
        // Truth at step 2 only: 2.5, then ŷ₁ + 0.5, then y₂ + 0.5, then ŷ₃ + 0.5.
        let some = tensor(vec![1.0, 0.0, 1.0, 0.0], [1, 4]);
        assert_eq!(
            values(model.decode(x.clone(), Some((y.clone(), some)))),
            [2.5, 3.0, 20.5, 21.0]
        );
        let none = tensor(vec![0.0; 4], [1, 4]);
        assert_eq!(
            values(model.decode(x.clone(), Some((y, none)))),
            values(model.forward(x))
        );
    }

    /// Teacher forcing at ratio 1 is one-step-ahead training: each step of the forced
    /// forecast is the first step of the free forecast from the window extended by the true
    /// values before it, so the forced loss is the mean one-step loss.
    #[test]
    fn teacher_forcing_at_ratio_one_is_the_one_step_loss() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let model = AutoregressiveRnn {
            layers: vec![RecurrentCell::Gru(GruCell::<B>::new(
                &mut rng, 2, 5, &device,
            ))],
            head: init::linear::<B>(&mut rng, 5, 2, &device),
            vars: 2,
            horizon: 4,
        };
        let series: Vec<f32> = (0..2 * 10 * 2).map(|i| (i as f32 * 0.3).cos()).collect();
        let series = tensor(series, [2, 10, 2]);
        let (x, y) = (series.clone().narrow(1, 0, 6), series.narrow(1, 6, 4));
        let forced = model.decode(x.clone(), Some((y.clone(), Tensor::ones([2, 4], &device))));
        let loss = (forced - y.clone()).square().mean().into_scalar();
        let mut one_step = 0.0;
        for t in 0..4 {
            let window = match t {
                0 => x.clone(),
                _ => Tensor::cat(vec![x.clone(), y.clone().narrow(1, 0, t)], 1),
            };
            let first = model.forward(window).narrow(1, 0, 1);
            let truth = y.clone().narrow(1, t, 1);
            one_step += (first - truth).square().mean().into_scalar() / 4.0;
        }
        assert!((loss - one_step).abs() < 1e-6, "{loss} vs {one_step}");
    }

    /// With an LSTM (whose cell state crosses from the fused encoder to the decoder steps), the
    /// free-running forecast equals the forecast rebuilt step by step from a plain forward pass
    /// over the window extended by the forecasts so far.
    #[test]
    fn decoder_steps_continue_the_encoder_state() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let layers = vec![
            RecurrentCell::Lstm(LstmCell::<B>::new(&mut rng, 2, 6, &device)),
            RecurrentCell::Lstm(LstmCell::<B>::new(&mut rng, 6, 6, &device)),
        ];
        let model = AutoregressiveRnn {
            layers,
            head: init::linear::<B>(&mut rng, 6, 2, &device),
            vars: 2,
            horizon: 3,
        };
        let x: Vec<f32> = (0..2 * 5 * 2).map(|i| (i as f32 * 0.7).sin()).collect();
        let x = tensor(x, [2, 5, 2]);
        let out = model.forward(x.clone());
        let mut window = x;
        for t in 0..3 {
            let h = model
                .layers
                .iter()
                .fold(window.clone(), |input, l| l.forward_unfused(input));
            let steps = window.dims()[1];
            let last_h = h.narrow(1, steps - 1, 1).reshape([2, 6]);
            let last_x = window.clone().narrow(1, steps - 1, 1).reshape([2, 2]);
            let next = last_x + model.head.forward(last_h);
            let got = out.clone().narrow(1, t, 1).reshape([2, 2]);
            for (a, b) in values(got).iter().zip(values(next.clone())) {
                assert!((a - b).abs() < 1e-5, "step {t}: {a} vs {b}");
            }
            window = Tensor::cat(vec![window, next.unsqueeze_dim(1)], 1);
        }
    }
}
