//! The fused LSTM and GRU layers: one Burn operation per layer call instead of a dozen per time
//! step.
//!
//! On the CPU backend (`Flex`) and its autodiff wrapper the layer runs [`super::kernels`]: the
//! forward pass over the whole sequence, and, under autodiff, one node on the tape whose backward
//! step is back-propagation through time by hand. The layer's parameters enter as ordinary
//! tensors, so everything that acts on parameters (weight splitting's grouped view, fuzzy
//! learning rates' gradient scaling, rejuvenation, ASAM's perturbation) works unchanged.
//!
//! Under autodiff on CUDA the layer is [`super::generic`]'s: the same single node with
//! back-propagation through time by hand, as tensor operations on the GPU. Other backends (and
//! CUDA without autodiff) get `None` and the cells fall back to their op-by-op forward, which
//! stays the reference both are tested against.

use std::any::TypeId;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;

use super::generic::Kind;
use super::kernels::{self, Dims, GruTape, LstmTape};
use crate::models::host::{cast, flex, float, host, slice};

type Ad = Autodiff<Flex>;

/// The parameters of one layer call, in the operation's parent order.
struct Args<B: Backend> {
    x: Tensor<B, 3>,
    weights: [Tensor<B, 2>; 2],
    biases: Vec<Tensor<B, 1>>,
}

/// The layer's tensors on the plain CPU backend.
struct HostArgs {
    d: Dims,
    x: FlexTensor,
    input: FlexTensor,
    recurrent: FlexTensor,
    biases: Vec<FlexTensor>,
}

impl HostArgs {
    fn new(
        x: FlexTensor,
        input: FlexTensor,
        recurrent: FlexTensor,
        biases: Vec<FlexTensor>,
        dims: [usize; 3],
        hidden: usize,
    ) -> Option<Self> {
        let [batch, steps, inputs] = dims;
        Some(Self {
            d: Dims {
                batch,
                steps,
                inputs,
                hidden,
            },
            x: host(x)?,
            input: host(input)?,
            recurrent: host(recurrent)?,
            biases: biases.into_iter().map(host).collect::<Option<_>>()?,
        })
    }
}

/// The fused LSTM layer, when the backend has it: `x` `[batch, steps, inputs]` → every hidden
/// state `[batch, steps, hidden]`. With `with_cell` (the CPU backends and CUDA under autodiff)
/// the output is `[batch, steps + 1, hidden]`: every hidden state and then c_T as one more row
/// per sequence (what an autoregressive decoder continues from).
pub(super) fn lstm<B: Backend>(
    x: Tensor<B, 3>,
    input: Tensor<B, 2>,
    recurrent: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    hidden: usize,
    with_cell: bool,
) -> Option<Tensor<B, 3>> {
    run(
        Kind::Lstm,
        Args {
            x,
            weights: [input, recurrent],
            biases: vec![bias],
        },
        hidden,
        with_cell,
    )
}

/// Per sequence: its `steps` hidden rows, then its last cell state.
fn append_cells(h: &[f32], c: &[f32], d: Dims) -> Vec<f32> {
    let (n, hid) = (d.steps * d.hidden, d.hidden);
    let mut out = Vec::with_capacity(h.len() + c.len());
    for b in 0..d.batch {
        out.extend_from_slice(&h[b * n..(b + 1) * n]);
        out.extend_from_slice(&c[b * hid..(b + 1) * hid]);
    }
    out
}

/// The inverse of [`append_cells`] for a gradient: (hidden rows, last-cell rows).
fn split_cells(g: &[f32], d: Dims) -> (Vec<f32>, Vec<f32>) {
    let (n, hid) = (d.steps * d.hidden, d.hidden);
    let mut dh = Vec::with_capacity(d.batch * n);
    let mut dc = Vec::with_capacity(d.batch * hid);
    for chunk in g.chunks_exact(n + hid) {
        dh.extend_from_slice(&chunk[..n]);
        dc.extend_from_slice(&chunk[n..]);
    }
    (dh, dc)
}

/// The fused GRU layer, when the backend has it: `x` `[batch, steps, inputs]` → every hidden
/// state `[batch, steps, hidden]`.
pub(super) fn gru<B: Backend>(
    x: Tensor<B, 3>,
    input: Tensor<B, 2>,
    recurrent: Tensor<B, 2>,
    input_bias: Tensor<B, 1>,
    recurrent_bias: Tensor<B, 1>,
    hidden: usize,
) -> Option<Tensor<B, 3>> {
    run(
        Kind::Gru,
        Args {
            x,
            weights: [input, recurrent],
            biases: vec![input_bias, recurrent_bias],
        },
        hidden,
        false,
    )
}

fn run<B: Backend>(
    kind: Kind,
    args: Args<B>,
    hidden: usize,
    with_cell: bool,
) -> Option<Tensor<B, 3>> {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Flex>() {
        let args: Args<Flex> = cast(args)?;
        let out = run_host(kind, args, hidden, with_cell)?;
        cast(out)
    } else if backend == TypeId::of::<Ad>() {
        let args: Args<Ad> = cast(args)?;
        let out = run_autodiff(kind, args, hidden, with_cell)?;
        cast(out)
    } else {
        #[cfg(feature = "cuda")]
        if backend == TypeId::of::<Autodiff<burn::backend::Cuda>>() {
            let args: Args<Autodiff<burn::backend::Cuda>> = cast(args)?;
            let [input, recurrent] = args.weights;
            let out = super::generic::run(kind, args.x, input, recurrent, args.biases, with_cell);
            return cast(out);
        }
        None
    }
}

fn run_host(
    kind: Kind,
    args: Args<Flex>,
    hidden: usize,
    with_cell: bool,
) -> Option<Tensor<Flex, 3>> {
    let dims = args.x.dims();
    let [input, recurrent] = args.weights;
    let host = HostArgs::new(
        float(args.x),
        float(input),
        float(recurrent),
        args.biases.into_iter().map(float).collect(),
        dims,
        hidden,
    )?;
    let (h, tape) = forward(kind, &host);
    let out = output(
        flex(h, vec![dims[0], dims[1], hidden]),
        &tape,
        with_cell,
        host.d,
    );
    Some(Tensor::from_primitive(TensorPrimitive::Float(out)))
}

/// The layer's output: the hidden states `h`, or with `with_cell` (LSTM) the hidden states with
/// the last cell state appended per sequence (see [`append_cells`]).
fn output(h: FlexTensor, tape: &Tape, with_cell: bool, d: Dims) -> FlexTensor {
    match (tape, with_cell) {
        (Tape::Lstm(t), true) => flex(
            append_cells(slice(&h), &t.last_cells(d), d),
            vec![d.batch, d.steps + 1, d.hidden],
        ),
        _ => h,
    }
}

/// The tape a fused layer leaves for its backward step.
#[derive(Clone, Debug)]
enum Tape {
    Lstm(Arc<LstmTape>),
    Gru(Arc<GruTape>),
}

fn forward(kind: Kind, a: &HostArgs) -> (Vec<f32>, Tape) {
    let (x, wx, wh) = (slice(&a.x), slice(&a.input), slice(&a.recurrent));
    match kind {
        Kind::Lstm => {
            let (h, tape) = kernels::lstm_forward(a.d, x, wx, wh, slice(&a.biases[0]));
            (h, Tape::Lstm(Arc::new(tape)))
        }
        Kind::Gru => {
            let (h, tape) =
                kernels::gru_forward(a.d, x, wx, wh, slice(&a.biases[0]), slice(&a.biases[1]));
            (h, Tape::Gru(Arc::new(tape)))
        }
    }
}

/// What the backward step needs: the inputs, the output and the tape.
#[derive(Clone, Debug)]
struct State {
    d: Dims,
    x: FlexTensor,
    input: FlexTensor,
    recurrent: FlexTensor,
    h: FlexTensor,
    tape: Tape,
    /// Whether the output carries the last cell state after the hidden states.
    with_cell: bool,
}

impl State {
    /// The gradients of the layer's inputs, in parent order (x, W_x, W_h, biases…), each only
    /// when its parent wants one.
    fn backward(&self, dh: FlexTensor, want: &[bool]) -> Vec<Option<FlexTensor>> {
        let dh = host(dh).expect("the output gradient of an f32 layer is f32");
        let d = self.d;
        let (dh, dc) = if self.with_cell {
            let (dh, dc) = split_cells(slice(&dh), d);
            (flex(dh, vec![d.batch, d.steps, d.hidden]), Some(dc))
        } else {
            (dh, None)
        };
        let (x, wx, wh, h) = (
            slice(&self.x),
            slice(&self.input),
            slice(&self.recurrent),
            slice(&self.h),
        );
        let (grads, gates) = match &self.tape {
            Tape::Lstm(tape) => (
                kernels::lstm_backward(d, x, wx, wh, h, tape, slice(&dh), dc.as_deref(), want[0]),
                4,
            ),
            Tape::Gru(tape) => (
                kernels::gru_backward(d, x, wx, wh, h, tape, slice(&dh), want[0]),
                3,
            ),
        };
        let width = gates * d.hidden;
        let mut out = vec![
            grads.x.map(|g| flex(g, vec![d.batch, d.steps, d.inputs])),
            Some(flex(grads.input, vec![d.inputs, width])),
            Some(flex(grads.recurrent, vec![d.hidden, width])),
            Some(flex(grads.bias, vec![width])),
        ];
        if matches!(self.tape, Tape::Gru(_)) {
            out.push(Some(flex(grads.recurrent_bias, vec![width])));
        }
        out.into_iter()
            .zip(want)
            .map(|(g, &w)| if w { g } else { None })
            .collect()
    }
}

/// The autodiff node of a fused layer with `N` parents (4 for the LSTM, 5 for the GRU).
#[derive(Debug)]
struct FusedLayer;

impl<const N: usize> Backward<Flex, N> for FusedLayer {
    type State = State;

    fn backward(self, ops: Ops<State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dh = grads.consume::<Flex>(&ops.node);
        let want: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
        let out = ops.state.backward(dh, &want);
        for (parent, grad) in ops.parents.into_iter().zip(out) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// The autodiff backend's float primitive: a `FlexTensor` and its node on the tape.
type AdFloat = burn::tensor::ops::FloatTensor<Ad>;

fn run_autodiff(
    kind: Kind,
    args: Args<Ad>,
    hidden: usize,
    with_cell: bool,
) -> Option<Tensor<Ad, 3>> {
    let dims = args.x.dims();
    let [input, recurrent] = args.weights;
    let mut parents: Vec<AdFloat> = vec![float(args.x), float(input), float(recurrent)];
    parents.extend(args.biases.into_iter().map(float));
    let host = HostArgs::new(
        parents[0].primitive.clone(),
        parents[1].primitive.clone(),
        parents[2].primitive.clone(),
        parents[3..].iter().map(|p| p.primitive.clone()).collect(),
        dims,
        hidden,
    )?;
    let (h, tape) = forward(kind, &host);
    let h = flex(h, vec![dims[0], dims[1], hidden]);
    let output = output(h.clone(), &tape, with_cell, host.d);
    let state = State {
        d: host.d,
        x: host.x,
        input: host.input,
        recurrent: host.recurrent,
        h,
        tape,
        with_cell,
    };
    let out = match kind {
        Kind::Lstm => track::<4>(&parents, state, output),
        Kind::Gru => track::<5>(&parents, state, output),
    };
    Some(Tensor::from_primitive(TensorPrimitive::Float(out)))
}

/// Records the fused layer on the tape (when any parent wants gradients) and returns its output.
fn track<const N: usize>(parents: &[AdFloat], state: State, h: FlexTensor) -> AdFloat {
    let nodes = std::array::from_fn(|i| parents[i].node.clone());
    match <FusedLayer as Backward<Flex, N>>::prepare::<NoCheckpointing>(FusedLayer, nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, h),
        OpsKind::UnTracked(prep) => prep.finish(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones<B: Backend, const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
        Tensor::ones(shape, &Default::default())
    }

    fn lstm_on<B: Backend>() -> Option<Tensor<B, 3>> {
        lstm::<B>(
            ones([2, 3, 1]),
            ones([1, 8]),
            ones([2, 8]),
            ones([8]),
            2,
            false,
        )
    }

    /// The CPU backend, with and without autodiff, takes the fused path (so the agreement tests
    /// in `cells` compare the kernels with the reference, not the reference with itself);
    /// other element types fall back.
    #[test]
    fn the_cpu_backends_take_the_fused_path() {
        assert!(lstm_on::<Flex>().is_some());
        assert!(lstm_on::<Ad>().is_some());
        let x = ones::<Flex, 3>([2, 3, 1]).cast(burn::tensor::FloatDType::F64);
        assert!(lstm::<Flex>(x, ones([1, 8]), ones([2, 8]), ones([8]), 2, false).is_none());
    }
}
