//! The fused LSTM and GRU layers: one Burn operation per layer call instead of a dozen per time
//! step.
//!
//! On the CPU backend (`Flex`) and its autodiff wrapper the layer is a [`HostOp`] running
//! [`super::kernels`]: the forward pass over the whole sequence, and, under autodiff, one node on
//! the tape whose backward step is back-propagation through time by hand. The layer's parameters
//! enter as ordinary tensors, so everything that acts on parameters (weight splitting's grouped
//! view, fuzzy learning rates' gradient scaling, rejuvenation, ASAM's perturbation) works
//! unchanged.
//!
//! Under autodiff on CUDA the layer is [`super::generic`]'s: the same single node with
//! back-propagation through time by hand, as tensor operations on the GPU. Other backends (and
//! CUDA without autodiff) get `None` and the cells fall back to their op-by-op forward, which
//! stays the reference both are tested against.

use burn::prelude::*;

use super::generic::Kind;
use super::kernels::{self, GruTape, LstmTape, RnnSizes};
use crate::models::host::{self, HostOp, float, parents};

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
        x,
        [input, recurrent],
        vec![bias],
        hidden,
        with_cell,
    )
}

/// Per sequence: its `steps` hidden rows, then its last cell state.
fn append_cells(h: &[f32], c: &[f32], d: RnnSizes) -> Vec<f32> {
    let (n, hid) = (d.steps * d.hidden, d.hidden);
    let mut out = Vec::with_capacity(h.len() + c.len());
    for b in 0..d.batch {
        out.extend_from_slice(&h[b * n..(b + 1) * n]);
        out.extend_from_slice(&c[b * hid..(b + 1) * hid]);
    }
    out
}

/// The inverse of [`append_cells`] for a gradient: (hidden rows, last-cell rows).
fn split_cells(g: &[f32], d: RnnSizes) -> (Vec<f32>, Vec<f32>) {
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
        x,
        [input, recurrent],
        vec![input_bias, recurrent_bias],
        hidden,
        false,
    )
}

fn run<B: Backend>(
    kind: Kind,
    x: Tensor<B, 3>,
    [input, recurrent]: [Tensor<B, 2>; 2],
    biases: Vec<Tensor<B, 1>>,
    hidden: usize,
    with_cell: bool,
) -> Option<Tensor<B, 3>> {
    #[cfg(feature = "cuda")]
    {
        type AdCuda = burn::backend::Autodiff<burn::backend::Cuda>;
        if std::any::TypeId::of::<B>() == std::any::TypeId::of::<AdCuda>() {
            let (x, input, recurrent, biases): (
                Tensor<AdCuda, 3>,
                Tensor<AdCuda, 2>,
                Tensor<AdCuda, 2>,
                Vec<Tensor<AdCuda, 1>>,
            ) = host::cast((x, input, recurrent, biases))?;
            let out = super::generic::run(kind, x, input, recurrent, biases, with_cell);
            return host::cast(out);
        }
    }
    let [batch, steps, inputs] = x.dims();
    let layer = Layer {
        kind,
        d: RnnSizes {
            batch,
            steps,
            inputs,
            hidden,
        },
        with_cell: with_cell && matches!(kind, Kind::Lstm),
    };
    let mut values = vec![float(x), float(input), float(recurrent)];
    values.extend(biases.into_iter().map(float));
    match kind {
        Kind::Lstm => host::run::<B, Layer, 4, 3>(layer, values),
        Kind::Gru => host::run::<B, Layer, 5, 3>(layer, values),
    }
}

/// One layer call: the operation the host path runs.
#[derive(Clone, Copy, Debug)]
struct Layer {
    kind: Kind,
    d: RnnSizes,
    /// Whether the output carries the last cell state after the hidden states (LSTM).
    with_cell: bool,
}

/// What the forward pass keeps: the kernels' tape, and the hidden states when the output is
/// more than them (with the last cell state appended).
#[derive(Debug)]
enum Tape {
    Lstm(LstmTape, Option<Vec<f32>>),
    Gru(GruTape),
}

impl HostOp for Layer {
    type Tape = Tape;

    /// x, W_x, W_h, then the bias (LSTM) or the input-side and recurrent-side biases (GRU).
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        let d = self.d;
        let (width, biases) = match self.kind {
            Kind::Lstm => (4 * d.hidden, 1),
            Kind::Gru => (3 * d.hidden, 2),
        };
        let mut shapes = vec![
            vec![d.batch, d.steps, d.inputs],
            vec![d.inputs, width],
            vec![d.hidden, width],
        ];
        shapes.extend(std::iter::repeat_n(vec![width], biases));
        shapes
    }

    fn output_shape(&self) -> Vec<usize> {
        let d = self.d;
        vec![d.batch, d.steps + usize::from(self.with_cell), d.hidden]
    }

    fn forward(&self, p: &[&[f32]]) -> (Vec<f32>, Tape) {
        let d = self.d;
        match self.kind {
            Kind::Lstm => {
                let [x, w_x, w_h, bias] = parents::<4>(p);
                let (h, tape) = kernels::lstm_forward(d, x, w_x, w_h, bias);
                if self.with_cell {
                    let out = append_cells(&h, &tape.last_cells(d), d);
                    (out, Tape::Lstm(tape, Some(h)))
                } else {
                    (h, Tape::Lstm(tape, None))
                }
            }
            Kind::Gru => {
                let [x, w_x, w_h, b_x, b_h] = parents::<5>(p);
                let (h, tape) = kernels::gru_forward(d, x, w_x, w_h, b_x, b_h);
                (h, Tape::Gru(tape))
            }
        }
    }

    fn backward(
        &self,
        p: &[&[f32]],
        out: &[f32],
        tape: &Tape,
        dout: &[f32],
        want: &[bool],
    ) -> Vec<Option<Vec<f32>>> {
        let d = self.d;
        // Both layers' inputs start x, W_x, W_h (see input_shapes); the backward kernels do not
        // read the biases.
        let [x, wx, wh] = parents::<3>(&p[..3]);
        let grads = match tape {
            Tape::Lstm(tape, h) => {
                let h = h.as_deref().unwrap_or(out);
                if self.with_cell {
                    let (dh, dc) = split_cells(dout, d);
                    kernels::lstm_backward(d, x, wx, wh, h, tape, &dh, Some(&dc), want[0])
                } else {
                    kernels::lstm_backward(d, x, wx, wh, h, tape, dout, None, want[0])
                }
            }
            Tape::Gru(tape) => kernels::gru_backward(d, x, wx, wh, out, tape, dout, want[0]),
        };
        let mut out = vec![
            grads.x,
            Some(grads.input),
            Some(grads.recurrent),
            Some(grads.bias),
        ];
        if matches!(self.kind, Kind::Gru) {
            out.push(Some(grads.recurrent_bias));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

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
        assert!(lstm_on::<Autodiff<Flex>>().is_some());
        let x = ones::<Flex, 3>([2, 3, 1]).cast(burn::tensor::FloatDType::F64);
        assert!(lstm::<Flex>(x, ones([1, 8]), ones([2, 8]), ones([8]), 2, false).is_none());
    }
}
