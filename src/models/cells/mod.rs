//! Our own recurrent cells, each with one fused gate projection: the input projection of all
//! steps is one matrix product, and each step adds one `[batch, hidden] × [hidden, gates·hidden]`
//! product. The bio mechanisms and the performance work reach inside these cells.

mod fused;
mod generic;
mod gru;
pub mod kernels;
mod lstm;

pub use gru::GruCell;
pub use lstm::LstmCell;

use burn::prelude::*;

/// A recurrent layer: LSTM or GRU.
#[derive(Module, Debug)]
pub enum RecurrentCell<B: Backend> {
    /// Long short-term memory.
    Lstm(LstmCell<B>),
    /// Gated recurrent unit.
    Gru(GruCell<B>),
}

impl<B: Backend> RecurrentCell<B> {
    /// Runs the layer over a sequence from a zero state.
    ///
    /// `x`: `[batch, steps, inputs]` → every hidden state, `[batch, steps, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            RecurrentCell::Lstm(cell) => cell.forward(x),
            RecurrentCell::Gru(cell) => cell.forward(x),
        }
    }

    /// The op-by-op reference forward pass (see [`LstmCell::forward_unfused`]).
    pub fn forward_unfused(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            RecurrentCell::Lstm(cell) => cell.forward_unfused(x),
            RecurrentCell::Gru(cell) => cell.forward_unfused(x),
        }
    }
}

/// The state a recurrent layer carries from step to step.
#[derive(Clone, Debug)]
pub enum CellState<B: Backend> {
    /// [h, c], each `[batch, hidden]`.
    Lstm([Tensor<B, 2>; 2]),
    /// h, `[batch, hidden]`.
    Gru(Tensor<B, 2>),
}

impl<B: Backend> CellState<B> {
    /// The hidden state h, `[batch, hidden]`.
    pub fn hidden(&self) -> Tensor<B, 2> {
        match self {
            CellState::Lstm([h, _]) => h.clone(),
            CellState::Gru(h) => h.clone(),
        }
    }

    /// The same state cut off from the autodiff graph: gradients stop here.
    pub fn detach(self) -> Self {
        match self {
            CellState::Lstm([h, c]) => CellState::Lstm([h.detach(), c.detach()]),
            CellState::Gru(h) => CellState::Gru(h.detach()),
        }
    }
}

impl<B: Backend> RecurrentCell<B> {
    /// Runs over a sequence from a zero state: every hidden state and the last state (fused on
    /// the CPU backends).
    pub fn forward_with_state(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, CellState<B>) {
        match self {
            RecurrentCell::Lstm(cell) => {
                let (h, state) = cell.forward_with_state(x);
                (h, CellState::Lstm(state))
            }
            RecurrentCell::Gru(cell) => {
                let h = cell.forward(x);
                let [batch, steps, hidden] = h.dims();
                let last = h.clone().narrow(1, steps - 1, 1).reshape([batch, hidden]);
                (h, CellState::Gru(last))
            }
        }
    }

    /// One step: `x` `[batch, inputs]` and the state → the next state.
    ///
    /// # Panics
    /// If the state belongs to the other cell type.
    pub fn step(&self, x: Tensor<B, 2>, state: CellState<B>) -> CellState<B> {
        match (self, state) {
            (RecurrentCell::Lstm(cell), CellState::Lstm(s)) => CellState::Lstm(cell.step(x, s)),
            (RecurrentCell::Gru(cell), CellState::Gru(h)) => CellState::Gru(cell.step(x, h)),
            _ => panic!("a recurrent state stepped through the other cell type"),
        }
    }
}

/// Step `k` of `[batch, steps, width]` as `[batch, width]`.
fn step<B: Backend>(x: &Tensor<B, 3>, k: usize) -> Tensor<B, 2> {
    x.clone().narrow(1, k, 1).squeeze_dim::<2>(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    type A = Autodiff<Flex>;

    fn random<const D: usize>(rng: &mut ChaCha8Rng, shape: [usize; D], scale: f32) -> Tensor<A, D> {
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            // Per element: a small part of the largest magnitude (float noise of sums) plus a
            // relative part, so small entries are checked too.
            assert!(
                (x - y).abs() <= 1e-6 * scale + 1e-5 * y.abs(),
                "{what}[{i}]: fused {x} vs reference {y} (scale {scale})"
            );
        }
    }

    /// A layer with random weights and biases (biases start at zero otherwise, which would hide
    /// a wrong bias gradient).
    fn layer(kind: &str, rng: &mut ChaCha8Rng, inputs: usize, hidden: usize) -> RecurrentCell<A> {
        let device = Default::default();
        match kind {
            "lstm" => {
                let mut cell = LstmCell::<A>::new(rng, inputs, hidden, &device);
                cell.bias = Param::from_tensor(random(rng, [4 * hidden], 0.5));
                RecurrentCell::Lstm(cell)
            }
            _ => {
                let mut cell = GruCell::<A>::new(rng, inputs, hidden, &device);
                cell.input_bias = Param::from_tensor(random(rng, [3 * hidden], 0.5));
                cell.recurrent_bias = Param::from_tensor(random(rng, [3 * hidden], 0.5));
                RecurrentCell::Gru(cell)
            }
        }
    }

    /// Every parameter's gradient, by name.
    fn param_grads(
        cell: &RecurrentCell<A>,
        grads: &<A as burn::tensor::backend::AutodiffBackend>::Gradients,
    ) -> Vec<(&'static str, Vec<f32>)> {
        let g2 = |p: &Param<Tensor<A, 2>>| values(p.val().grad(grads).expect("a weight gradient"));
        let g1 = |p: &Param<Tensor<A, 1>>| values(p.val().grad(grads).expect("a bias gradient"));
        match cell {
            RecurrentCell::Lstm(c) => vec![
                ("input", g2(&c.input)),
                ("recurrent", g2(&c.recurrent)),
                ("bias", g1(&c.bias)),
            ],
            RecurrentCell::Gru(c) => vec![
                ("input", g2(&c.input)),
                ("recurrent", g2(&c.recurrent)),
                ("input_bias", g1(&c.input_bias)),
                ("recurrent_bias", g1(&c.recurrent_bias)),
            ],
        }
    }

    /// The backend-generic fused layer (the CUDA path), here on the CPU backend.
    fn generic_forward(cell: &RecurrentCell<A>, x: Tensor<A, 3>) -> Tensor<A, 3> {
        use generic::Kind;
        match cell {
            RecurrentCell::Lstm(c) => generic::run::<Flex>(
                Kind::Lstm,
                x,
                c.input.val(),
                c.recurrent.val(),
                vec![c.bias.val()],
                false,
            ),
            RecurrentCell::Gru(c) => generic::run::<Flex>(
                Kind::Gru,
                x,
                c.input.val(),
                c.recurrent.val(),
                vec![c.input_bias.val(), c.recurrent_bias.val()],
                false,
            ),
        }
    }

    /// The fused layers (forward and back-propagation through time by hand; the host kernels
    /// and the backend-generic layer) agree with the op-by-op reference on random inputs,
    /// weights and output gradients: outputs, and the gradients of the input and of every
    /// parameter, through two stacked layers.
    #[test]
    fn fused_layers_match_the_reference_forward_and_gradients() {
        // The batch is cut into two uneven chunks, run on 1, 2 and 5 threads; and a one-step
        // window.
        for (threads, steps) in [(1, 9), (2, 9), (5, 9), (2, 1)] {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(|| agreement(steps));
        }
    }

    fn agreement(steps: usize) {
        for kind in ["lstm", "gru"] {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let (batch, inputs, hidden) = (5, 2, 5);
            let layers = [
                layer(kind, &mut rng, inputs, hidden),
                layer(kind, &mut rng, hidden, hidden),
            ];
            let x = random(&mut rng, [batch, steps, inputs], 2.0).require_grad();
            let weight = random(&mut rng, [batch, steps, hidden], 1.0);
            let run = |mode: &str| {
                let h = layers.iter().fold(x.clone(), |input, l| match mode {
                    "fused" => l.forward(input),
                    "generic" => generic_forward(l, input),
                    _ => l.forward_unfused(input),
                });
                let grads = (h.clone() * weight.clone()).sum().backward();
                let mut out = vec![("output".to_string(), values(h.inner()))];
                out.push(("x".into(), values(x.grad(&grads).unwrap())));
                for (l, layer) in layers.iter().enumerate() {
                    for (name, g) in param_grads(layer, &grads) {
                        out.push((format!("layer {l} {name}"), g));
                    }
                }
                out
            };
            let reference = run("reference");
            for mode in ["fused", "generic"] {
                for ((name, a), (_, b)) in run(mode).iter().zip(&reference) {
                    assert_close(&format!("{kind} {mode} {name}"), a, b);
                }
            }
        }
    }

    /// The output gradient reaches the fused layers in other layouts too: a broadcast one
    /// (the gradient of a plain sum) and one that is zero but for the last step (a head on
    /// the last hidden state, as in the bare benchmark).
    #[test]
    fn fused_layers_take_broadcast_and_sliced_output_gradients() {
        for kind in ["lstm", "gru"] {
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let layer = layer(kind, &mut rng, 3, 4);
            let x = random(&mut rng, [5, 6, 3], 1.0);
            for loss in ["sum", "last"] {
                let grads_of = |fused: bool| {
                    let h = if fused {
                        layer.forward(x.clone())
                    } else {
                        layer.forward_unfused(x.clone())
                    };
                    let scalar = match loss {
                        "sum" => h.sum(),
                        _ => h.narrow(1, 5, 1).powi_scalar(2).sum(),
                    };
                    param_grads(&layer, &scalar.backward())
                };
                for ((name, a), (_, b)) in grads_of(true).iter().zip(&grads_of(false)) {
                    assert_close(&format!("{kind} {loss} {name}"), a, b);
                }
            }
        }
    }

    /// The encoder of an autoregressive decoder: the fused layer's last state (the LSTM's cell
    /// state is an extra output of the fused node, on the host path and on the backend-generic
    /// one CUDA takes) and a few decoder steps after it give the reference's outputs and
    /// gradients, with the loss on the decoder's hidden states only, so
    /// every gradient into the encoder flows through the last state; and stepping once past a
    /// window equals running over the longer window.
    #[test]
    fn last_state_and_steps_match_the_reference() {
        for threads in [1, 2] {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(|| {
                    for kind in ["lstm", "gru"] {
                        let mut rng = ChaCha8Rng::seed_from_u64(5);
                        let layer = layer(kind, &mut rng, 2, 4);
                        let x = random(&mut rng, [3, 7, 2], 1.5).require_grad();
                        let next = random(&mut rng, [3, 2], 1.5);
                        let weight = random(&mut rng, [3, 4], 1.0);
                        let run = |mode: &str| {
                            let (h, mut state) = match (&layer, mode) {
                                (_, "fused") => layer.forward_with_state(x.clone()),
                                (RecurrentCell::Lstm(c), "generic") => {
                                    // The backend-generic layer's last-cell output (CUDA's).
                                    let out = generic::run::<Flex>(
                                        generic::Kind::Lstm,
                                        x.clone(),
                                        c.input.val(),
                                        c.recurrent.val(),
                                        vec![c.bias.val()],
                                        true,
                                    );
                                    let h = out.clone().narrow(1, 0, 7);
                                    let last = h.clone().narrow(1, 6, 1).reshape([3, 4]);
                                    let cell = out.narrow(1, 7, 1).reshape([3, 4]);
                                    (h, CellState::Lstm([last, cell]))
                                }
                                (RecurrentCell::Lstm(c), _) => {
                                    let (h, s) = c.unfused_with_state(x.clone());
                                    (h, CellState::Lstm(s))
                                }
                                (RecurrentCell::Gru(c), _) => {
                                    let h = c.forward_unfused(x.clone());
                                    let last = h.clone().narrow(1, 6, 1).reshape([3, 4]);
                                    (h, CellState::Gru(last))
                                }
                            };
                            let mut loss = Tensor::<A, 1>::zeros([1], &Default::default());
                            for _ in 0..3 {
                                state = layer.step(next.clone(), state);
                                loss = loss + (state.hidden() * weight.clone()).sum();
                            }
                            let grads = loss.backward();
                            let mut out = vec![
                                ("outputs".to_string(), values(h.inner())),
                                ("decoded".into(), values(state.hidden().inner())),
                                ("x".into(), values(x.grad(&grads).unwrap())),
                            ];
                            for (name, g) in param_grads(&layer, &grads) {
                                out.push((name.to_string(), g));
                            }
                            out
                        };
                        let reference = run("reference");
                        for mode in ["fused", "generic"] {
                            for ((name, a), (_, b)) in run(mode).iter().zip(&reference) {
                                assert_close(&format!("{kind} {mode} {name}"), a, b);
                            }
                        }
                        // One step past the window is the longer window's last state.
                        let (_, state) = layer.forward_with_state(x.clone());
                        let stepped = layer.step(next.clone(), state).hidden();
                        let longer = Tensor::cat(vec![x.clone(), next.clone().unsqueeze_dim(1)], 1);
                        let full = layer.forward(longer).narrow(1, 7, 1).reshape([3, 4]);
                        assert_close(
                            &format!("{kind} step"),
                            &values(stepped.inner()),
                            &values(full.inner()),
                        );
                    }
                });
        }
    }

    /// Without autodiff (evaluation, prediction) the fused layer gives the reference outputs.
    #[test]
    fn fused_inference_matches_the_reference() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x: Tensor<Flex, 3> = random(&mut rng, [2, 6, 3], 1.5).inner();
        let lstm = LstmCell::<Flex>::new(&mut rng, 3, 4, &device);
        assert_close(
            "lstm",
            &values(lstm.forward(x.clone())),
            &values(lstm.forward_unfused(x.clone())),
        );
        let gru = GruCell::<Flex>::new(&mut rng, 3, 4, &device);
        assert_close(
            "gru",
            &values(gru.forward(x.clone())),
            &values(gru.forward_unfused(x)),
        );
    }
}
