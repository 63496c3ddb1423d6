use super::*;
use crate::models::CellKind;
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

/// A one-layer model of either cell with every weight and bias drawn (biases too, so the
/// hand-rolled rollout below checks where each one enters).
fn random_model(
    cell: CellKind,
    vars: usize,
    hidden: usize,
    horizon: usize,
) -> AutoregressiveRnn<B> {
    let device = Default::default();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let layer = match cell {
        CellKind::Gru => {
            let mut c = GruCell::<B>::new(&mut rng, vars, hidden, &device);
            c.input_bias = init::uniform(&mut rng, [3 * hidden], 0.3, &device);
            c.recurrent_bias = init::uniform(&mut rng, [3 * hidden], 0.3, &device);
            RecurrentCell::Gru(c)
        }
        CellKind::Lstm => {
            let mut c = LstmCell::<B>::new(&mut rng, vars, hidden, &device);
            c.bias = init::uniform(&mut rng, [4 * hidden], 0.3, &device);
            RecurrentCell::Lstm(c)
        }
    };
    let mut head = init::linear::<B>(&mut rng, hidden, vars, &device);
    head.bias = Some(init::uniform(&mut rng, [vars], 0.1, &device));
    AutoregressiveRnn {
        layers: vec![layer],
        head,
        vars,
        horizon,
    }
}

/// The model's weights on the host and its step in plain scalar arithmetic, written from the
/// gate equations in `cells/gru.rs` and `cells/lstm.rs` (GRU gates r, z, n; LSTM i, f, g, o).
struct HostRnn {
    lstm: bool,
    hidden: usize,
    wx: Vec<f32>,
    wh: Vec<f32>,
    bx: Vec<f32>,
    bh: Vec<f32>,
    head_w: Vec<f32>,
    head_b: Vec<f32>,
}

impl HostRnn {
    fn of(model: &AutoregressiveRnn<B>) -> Self {
        let v1 = |t: Tensor<B, 1>| values(t);
        let v2 = |t: Tensor<B, 2>| values(t);
        let (lstm, hidden, wx, wh, bx, bh) = match &model.layers[0] {
            RecurrentCell::Gru(c) => {
                let hidden = c.recurrent.val().dims()[0];
                (
                    false,
                    hidden,
                    v2(c.input.val()),
                    v2(c.recurrent.val()),
                    v1(c.input_bias.val()),
                    v1(c.recurrent_bias.val()),
                )
            }
            RecurrentCell::Lstm(c) => {
                let hidden = c.recurrent.val().dims()[0];
                (
                    true,
                    hidden,
                    v2(c.input.val()),
                    v2(c.recurrent.val()),
                    v1(c.bias.val()),
                    vec![0.0; 4 * hidden],
                )
            }
        };
        Self {
            lstm,
            hidden,
            wx,
            wh,
            bx,
            bh,
            head_w: v2(model.head.weight.val()),
            head_b: v1(model.head.bias.as_ref().unwrap().val()),
        }
    }

    /// `v · W + b` for a row-major `W` of `v.len()` rows.
    fn affine(v: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let cols = b.len();
        (0..cols)
            .map(|j| {
                b[j] + v
                    .iter()
                    .enumerate()
                    .map(|(i, x)| x * w[i * cols + j])
                    .sum::<f32>()
            })
            .collect()
    }

    fn step(&self, x: &[f32], h: &mut [f32], c: &mut [f32]) {
        let s = |v: f32| 1.0 / (1.0 + (-v).exp());
        let n = self.hidden;
        let xg = Self::affine(x, &self.wx, &self.bx);
        let hg = Self::affine(h, &self.wh, &self.bh);
        if self.lstm {
            for k in 0..n {
                let g = |b: usize| xg[b * n + k] + hg[b * n + k];
                c[k] = s(g(1)) * c[k] + s(g(0)) * g(2).tanh();
                h[k] = s(g(3)) * c[k].tanh();
            }
        } else {
            for k in 0..n {
                let r = s(xg[k] + hg[k]);
                let z = s(xg[n + k] + hg[n + k]);
                let cand = (xg[2 * n + k] + r * hg[2 * n + k]).tanh();
                h[k] = (1.0 - z) * cand + z * h[k];
            }
        }
    }

    /// Warm up on `window` (rows of `vars`) from a zero state, then run closed loop.
    fn rollout(&self, window: &[Vec<f32>], steps: usize) -> Vec<Vec<f32>> {
        let (mut h, mut c) = (vec![0.0; self.hidden], vec![0.0; self.hidden]);
        for row in window {
            self.step(row, &mut h, &mut c);
        }
        let mut current = window.last().unwrap().clone();
        let mut out = Vec::new();
        for t in 0..steps {
            if t > 0 {
                self.step(&current, &mut h, &mut c);
            }
            let change = Self::affine(&h, &self.head_w, &self.head_b);
            current = current.iter().zip(&change).map(|(a, d)| a + d).collect();
            out.push(current.clone());
        }
        out
    }
}

/// The closed-loop forecast (fused encoder, then decoder steps) equals a rollout of the same
/// weights written out in scalar arithmetic, for both cells.
#[test]
fn closed_loop_forecast_equals_a_hand_rolled_rollout() {
    let (batch, steps, vars, horizon) = (2, 7, 3, 5);
    let series: Vec<f32> = (0..batch * steps * vars)
        .map(|i| (i as f32 * 0.61).sin())
        .collect();
    for cell in [CellKind::Gru, CellKind::Lstm] {
        let model = random_model(cell, vars, 6, horizon);
        let host = HostRnn::of(&model);
        let got = values(model.forward(tensor(series.clone(), [batch, steps, vars])));
        for b in 0..batch {
            let window: Vec<Vec<f32>> = (0..steps)
                .map(|t| series[(b * steps + t) * vars..(b * steps + t + 1) * vars].to_vec())
                .collect();
            let want = host.rollout(&window, horizon).concat();
            let got = &got[b * horizon * vars..(b + 1) * horizon * vars];
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-5,
                    "{cell:?} sequence {b}, value {i}: {g} vs {w}"
                );
            }
        }
    }
}

/// Teacher forcing in one pass over the window and the true horizon inputs equals the
/// step-by-step decoder under a mask of ones; with `window` it adds the one-step forecasts
/// of window steps 1 .. L − 1, each the window value before it plus the head.
#[test]
fn one_pass_teacher_forcing_equals_the_stepwise_decoder() {
    let device = Default::default();
    let (batch, steps, vars, horizon) = (3, 6, 2, 4);
    let series: Vec<f32> = (0..batch * (steps + horizon) * vars)
        .map(|i| (i as f32 * 0.37).cos())
        .collect();
    let series = tensor(series, [batch, steps + horizon, vars]);
    let (x, y) = (
        series.clone().narrow(1, 0, steps),
        series.clone().narrow(1, steps, horizon),
    );
    for cell in [CellKind::Gru, CellKind::Lstm] {
        let model = random_model(cell, vars, 5, horizon);
        let ones = Tensor::<B, 2>::ones([batch, horizon], &device);
        for window in [false, true] {
            let teacher = |feed| Teacher {
                inputs: y.clone(),
                feed,
                bptt: None,
                window,
            };
            let fused = values(model.train_forecast(x.clone(), &teacher(Feed::Truth)));
            let stepwise =
                values(model.train_forecast(x.clone(), &teacher(Feed::Mask(ones.clone()))));
            assert_eq!(
                fused.len(),
                batch * (horizon + if window { steps - 1 } else { 0 }) * vars
            );
            for (a, b) in fused.iter().zip(&stepwise) {
                assert!((a - b).abs() < 1e-5, "{cell:?} window {window}: {a} vs {b}");
            }
        }
        // Each one-step forecast is the first forecast from the true steps before it.
        let full = model.train_forecast(
            x.clone(),
            &Teacher {
                inputs: y.clone(),
                feed: Feed::Truth,
                bptt: None,
                window: true,
            },
        );
        for t in 1..steps + horizon {
            let first = model
                .forward(series.clone().narrow(1, 0, t))
                .narrow(1, 0, 1);
            let got = full.clone().narrow(1, t - 1, 1);
            for (a, b) in values(got).iter().zip(values(first)) {
                assert!((a - b).abs() < 1e-5, "{cell:?} step {t}: {a} vs {b}");
            }
        }
    }
}

/// Bounded backpropagation through the rollout leaves the forecast unchanged but cuts the
/// gradient path: with bptt = 1 a free-running step after the first depends on nothing that
/// came before it, so the window gets no gradient from it.
#[test]
fn bounded_bptt_cuts_the_gradient_through_the_rollout() {
    type A = burn::backend::Autodiff<B>;
    let device = Default::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let model = AutoregressiveRnn::<A> {
        layers: vec![RecurrentCell::Gru(GruCell::new(&mut rng, 2, 4, &device))],
        head: init::linear(&mut rng, 4, 2, &device),
        vars: 2,
        horizon: 4,
    };
    let x: Vec<f32> = (0..2 * 5 * 2).map(|i| (i as f32 * 0.3).sin()).collect();
    let window_grad = |bptt| {
        let x = Tensor::<A, 3>::from_data(TensorData::new(x.clone(), [2, 5, 2]), &device)
            .require_grad();
        let teacher = Teacher {
            inputs: x.clone().narrow(1, 0, 4),
            feed: Feed::Forecast,
            bptt,
            window: false,
        };
        let out = model.train_forecast(x.clone(), &teacher);
        let last = out.clone().narrow(1, 3, 1).sum();
        let grads = last.backward();
        let g = x.grad(&grads).map(|g| g.abs().sum().into_scalar());
        (
            out.inner().into_data().to_vec::<f32>().unwrap(),
            g.unwrap_or(0.0),
        )
    };
    let (full, g_full) = window_grad(None);
    let (cut, g_cut) = window_grad(Some(1));
    assert_eq!(full, cut, "bptt changes gradients, not the forecast");
    assert!(
        g_full > 1e-4,
        "the whole rollout reaches the window: {g_full}"
    );
    assert_eq!(
        g_cut, 0.0,
        "a step cut off from its past reaches nothing before it"
    );
    let (_, g_long) = window_grad(Some(4));
    assert!(
        (g_long - g_full).abs() < 1e-6,
        "bptt = horizon is full backpropagation"
    );
}
