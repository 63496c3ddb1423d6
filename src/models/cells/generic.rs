//! The fused LSTM and GRU layers for any autodiff backend (used for CUDA): the same single
//! autodiff node with back-propagation through time by hand as the CPU layers, but the forward
//! and backward passes are tensor operations on the inner backend, so nothing of the per-step
//! work is recorded on the tape, and a backend with kernel fusion can fuse each step's gate
//! math.
//!
//! Slower than the host kernels on the CPU (every step still allocates tensors); on a GPU it
//! removes the autodiff bookkeeping of a dozen small operations per step.
// Without the `cuda` feature only the tests use this module.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use std::sync::Arc;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::activation::sigmoid;
use burn::tensor::ops::FloatTensor;

/// Which layer a call runs (shared with the host path in `fused.rs`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Lstm,
    Gru,
}

/// What the backward step needs, on the inner backend.
#[derive(Clone, Debug)]
struct State<I: Backend> {
    kind: Kind,
    x: Tensor<I, 3>,
    input: Tensor<I, 2>,
    recurrent: Tensor<I, 2>,
    /// Every hidden state `[batch, steps, hidden]` (the output, or its first `steps` rows).
    h: Tensor<I, 3>,
    /// Whether the output carries the last cell state (LSTM) as one more row per sequence.
    with_cell: bool,
    /// Per step: LSTM (σ(i), σ(f), tanh(g), σ(o), c_t, tanh(c_t)); GRU (σ(r), σ(z), n, the
    /// recurrent n pre-activation).
    tape: Arc<Vec<Vec<Tensor<I, 2>>>>,
}

fn step<I: Backend>(x: &Tensor<I, 3>, t: usize) -> Tensor<I, 2> {
    x.clone().narrow(1, t, 1).squeeze_dim::<2>(1)
}

fn gates<I: Backend, const N: usize>(t: Tensor<I, 2>) -> [Tensor<I, 2>; N] {
    t.chunk(N, 1)
        .try_into()
        .expect("the gate blocks split evenly")
}

/// The forward pass on the inner backend: every hidden state and the per-step tape.
fn forward<I: Backend>(
    kind: Kind,
    x: &Tensor<I, 3>,
    input: &Tensor<I, 2>,
    recurrent: &Tensor<I, 2>,
    biases: &[Tensor<I, 1>],
) -> (Tensor<I, 3>, Vec<Vec<Tensor<I, 2>>>) {
    let [batch, steps, inputs] = x.dims();
    let width = input.dims()[1];
    let gate_count = match kind {
        Kind::Lstm => 4,
        Kind::Gru => 3,
    };
    let hidden = width / gate_count;
    let device = x.device();
    let projected = (x
        .clone()
        .reshape([batch * steps, inputs])
        .matmul(input.clone())
        + biases[0].clone().unsqueeze_dim::<2>(0))
    .reshape([batch, steps, width]);
    let mut h = Tensor::<I, 2>::zeros([batch, hidden], &device);
    let mut c = Tensor::<I, 2>::zeros([batch, hidden], &device);
    let mut outputs = Vec::with_capacity(steps);
    let mut tape = Vec::with_capacity(steps);
    for t in 0..steps {
        match kind {
            Kind::Lstm => {
                let [i, f, g, o] = gates(step(&projected, t) + h.matmul(recurrent.clone()));
                let (i, f, g, o) = (sigmoid(i), sigmoid(f), g.tanh(), sigmoid(o));
                c = f.clone() * c + i.clone() * g.clone();
                let tc = c.clone().tanh();
                h = o.clone() * tc.clone();
                tape.push(vec![i, f, g, o, c.clone(), tc]);
            }
            Kind::Gru => {
                let hg = h.clone().matmul(recurrent.clone()) + biases[1].clone().unsqueeze_dim(0);
                let [xr, xz, xn] = gates(step(&projected, t));
                let [hr, hz, hn] = gates(hg);
                let r = sigmoid(xr + hr);
                let z = sigmoid(xz + hz);
                let n = (xn + r.clone() * hn.clone()).tanh();
                h = n.clone() + z.clone() * (h - n.clone());
                tape.push(vec![r, z, n, hn]);
            }
        }
        outputs.push(h.clone());
    }
    (Tensor::stack(outputs, 1), tape)
}

impl<I: Backend> State<I> {
    /// The gradients of (x, W_x, W_h, biases…) from the output gradient `dh` `[batch, steps,
    /// hidden]` (and, for the last-cell output, that of c_T, `[batch, hidden]`), each only
    /// where `want` says so.
    fn backward(
        &self,
        dh: Tensor<I, 3>,
        dc_last: Option<Tensor<I, 2>>,
        want: &[bool],
    ) -> Vec<Option<Tensor<I, 2>>> {
        let [batch, steps, hidden] = self.h.dims();
        let inputs = self.x.dims()[2];
        let device = dh.device();
        let recurrent_t = self.recurrent.clone().transpose();
        let zeros = Tensor::<I, 2>::zeros([batch, hidden], &device);
        let mut dh_next = zeros.clone();
        let mut dc_next = dc_last.unwrap_or_else(|| zeros.clone());
        // Per step, the gradient of the input-side and of the recurrent-side pre-activations.
        let mut dgx = Vec::with_capacity(steps);
        let mut dgh = Vec::with_capacity(steps);
        for t in (0..steps).rev() {
            let dht = step(&dh, t) + dh_next;
            let s = &self.tape[t];
            match self.kind {
                Kind::Lstm => {
                    let (i, f, g, o, tc) = (&s[0], &s[1], &s[2], &s[3], &s[5]);
                    let c_prev = if t > 0 {
                        self.tape[t - 1][4].clone()
                    } else {
                        zeros.clone()
                    };
                    let dc =
                        dht.clone() * o.clone() * (tc.clone().powi_scalar(2).neg() + 1.0) + dc_next;
                    let da = Tensor::cat(
                        vec![
                            dc.clone() * g.clone() * i.clone() * (i.clone().neg() + 1.0),
                            dc.clone() * c_prev * f.clone() * (f.clone().neg() + 1.0),
                            dc.clone() * i.clone() * (g.clone().powi_scalar(2).neg() + 1.0),
                            dht * tc.clone() * o.clone() * (o.clone().neg() + 1.0),
                        ],
                        1,
                    );
                    dc_next = dc * f.clone();
                    dh_next = da.clone().matmul(recurrent_t.clone());
                    dgx.push(da.clone());
                    dgh.push(da);
                }
                Kind::Gru => {
                    let (r, z, n, hn) = (&s[0], &s[1], &s[2], &s[3]);
                    let h_prev = if t > 0 {
                        step(&self.h, t - 1)
                    } else {
                        zeros.clone()
                    };
                    let dan = dht.clone()
                        * (z.clone().neg() + 1.0)
                        * (n.clone().powi_scalar(2).neg() + 1.0);
                    let dar = dan.clone() * hn.clone() * r.clone() * (r.clone().neg() + 1.0);
                    let daz =
                        dht.clone() * (h_prev - n.clone()) * z.clone() * (z.clone().neg() + 1.0);
                    let gh =
                        Tensor::cat(vec![dar.clone(), daz.clone(), dan.clone() * r.clone()], 1);
                    dh_next = dht * z.clone() + gh.clone().matmul(recurrent_t.clone());
                    dgx.push(Tensor::cat(vec![dar, daz, dan], 1));
                    dgh.push(gh);
                }
            }
        }
        dgx.reverse();
        dgh.reverse();
        let rows = batch * steps;
        let width = self.input.dims()[1];
        let flat = |v: Vec<Tensor<I, 2>>| Tensor::stack::<3>(v, 1).reshape([rows, width]);
        let (dgx, dgh) = match self.kind {
            Kind::Lstm => {
                let d = flat(dgx);
                (d.clone(), d)
            }
            Kind::Gru => (flat(dgx), flat(dgh)),
        };
        // h_{t−1} for every step: zeros, then all but the last state (a zero-length narrow
        // would panic for a one-step window, so cut after concatenating).
        let h_prev = Tensor::cat(
            vec![
                Tensor::<I, 3>::zeros([batch, 1, hidden], &device),
                self.h.clone(),
            ],
            1,
        )
        .narrow(1, 0, steps)
        .reshape([rows, hidden]);
        let x = self.x.clone().reshape([rows, inputs]);
        let mut out = vec![
            want[0].then(|| dgx.clone().matmul(self.input.clone().transpose())),
            want[1].then(|| x.transpose().matmul(dgx.clone())),
            want[2].then(|| h_prev.transpose().matmul(dgh.clone())),
            want[3].then(|| dgx.sum_dim(0)),
        ];
        if let Kind::Gru = self.kind {
            out.push(want[4].then(|| dgh.sum_dim(0)));
        }
        out
    }
}

#[derive(Debug)]
struct GenericLayer;

impl<I: Backend, const N: usize> Backward<I, N> for GenericLayer {
    type State = State<I>;

    fn backward(self, ops: Ops<State<I>, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dh =
            Tensor::<I, 3>::from_primitive(TensorPrimitive::Float(grads.consume::<I>(&ops.node)));
        let want: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
        let [batch, steps, inputs] = ops.state.x.dims();
        let (dh, dc_last) = if ops.state.with_cell {
            let hidden = dh.dims()[2];
            let dc = dh.clone().narrow(1, steps, 1).reshape([batch, hidden]);
            (dh.narrow(1, 0, steps), Some(dc))
        } else {
            (dh, None)
        };
        let out = ops.state.backward(dh, dc_last, &want);
        for (k, (parent, grad)) in ops.parents.into_iter().zip(out).enumerate() {
            if let (Some(node), Some(grad)) = (parent, grad) {
                // x's gradient comes back as [batch·steps, inputs]; biases' as [1, width].
                let prim = match k {
                    0 => grad
                        .reshape([batch, steps, inputs])
                        .into_primitive()
                        .tensor(),
                    1 | 2 => grad.into_primitive().tensor(),
                    _ => grad.squeeze_dim::<1>(0).into_primitive().tensor(),
                };
                grads.register::<I>(node.id, prim);
            }
        }
    }
}

/// The fused layer on `Autodiff<I>`: `x` `[batch, steps, inputs]` → every hidden state; with
/// `with_cell` (LSTM) `[batch, steps + 1, hidden]`, the last cell state appended per sequence.
pub(super) fn run<I: Backend>(
    kind: Kind,
    x: Tensor<Autodiff<I>, 3>,
    input: Tensor<Autodiff<I>, 2>,
    recurrent: Tensor<Autodiff<I>, 2>,
    biases: Vec<Tensor<Autodiff<I>, 1>>,
    with_cell: bool,
) -> Tensor<Autodiff<I>, 3> {
    let float = |t: TensorPrimitive<Autodiff<I>>| -> FloatTensor<Autodiff<I>> { t.tensor() };
    let mut parents = vec![
        float(x.into_primitive()),
        float(input.into_primitive()),
        float(recurrent.into_primitive()),
    ];
    parents.extend(biases.into_iter().map(|b| float(b.into_primitive())));
    let inner2 = |p: &FloatTensor<Autodiff<I>>| {
        Tensor::<I, 2>::from_primitive(TensorPrimitive::Float(p.primitive.clone()))
    };
    let x = Tensor::<I, 3>::from_primitive(TensorPrimitive::Float(parents[0].primitive.clone()));
    let (input, recurrent) = (inner2(&parents[1]), inner2(&parents[2]));
    let biases: Vec<Tensor<I, 1>> = parents[3..]
        .iter()
        .map(|p| Tensor::from_primitive(TensorPrimitive::Float(p.primitive.clone())))
        .collect();
    let (h, tape) = forward(kind, &x, &input, &recurrent, &biases);
    let with_cell = with_cell && matches!(kind, Kind::Lstm);
    let out = match tape.last() {
        Some(last) if with_cell => {
            Tensor::cat(vec![h.clone(), last[4].clone().unsqueeze_dim(1)], 1)
        }
        _ => h.clone(),
    };
    let state = State {
        kind,
        x,
        input,
        recurrent,
        h,
        with_cell,
        tape: Arc::new(tape),
    };
    let out = out.into_primitive().tensor();
    let out = match kind {
        Kind::Lstm => track::<I, 4>(&parents, state, out),
        Kind::Gru => track::<I, 5>(&parents, state, out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

fn track<I: Backend, const N: usize>(
    parents: &[FloatTensor<Autodiff<I>>],
    state: State<I>,
    out: FloatTensor<I>,
) -> FloatTensor<Autodiff<I>> {
    let nodes = std::array::from_fn(|i| parents[i].node.clone());
    match <GenericLayer as Backward<I, N>>::prepare::<NoCheckpointing>(GenericLayer, nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}
