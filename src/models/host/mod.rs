//! Shared plumbing of the fused CPU operations (the recurrent layers in [`super::cells`], the
//! transformer encoder layer in [`super::transformer::encoder`], the FDN block in `fdn/block.rs`, the
//! recurrent forecasters' attention head in [`super::attention`]): [`HostOp`] and [`run`], which
//! make a forward and a hand-written backward pass on `f32` slices one Burn operation on the CPU
//! backend. The kernels they share: matrix products and reshuffles in `linalg`, the scalar
//! and element-wise math (exp, erf, GELU, softmax, layer norm) in `math`.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};

mod linalg;
mod math;

pub(crate) use linalg::*;
pub(crate) use math::*;

/// `value` as a `T` when `A` is `T`; the way the fused operations specialise on the backend type.
pub(crate) fn cast<A: 'static, T: 'static>(value: A) -> Option<T> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
}

/// A float primitive of the plain CPU backend, contiguous; `None` when it is not `f32`.
pub(crate) fn host(t: FlexTensor) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    })
}

/// The values of a tensor made by [`host`] or [`flex`].
pub(crate) fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("host tensors are contiguous f32 by construction")
}

/// A CPU tensor from row-major values.
pub(crate) fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A tensor's float primitive.
pub(crate) fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> B::FloatTensorPrimitive {
    t.into_primitive().tensor()
}

/// An operation's `N` inputs, to be named at once: `let [x, weight, bias] = parents(inputs);`.
/// [`run`] hands every operation exactly as many inputs as its [`HostOp::input_shapes`] lists.
pub(crate) fn parents<'a, const N: usize>(inputs: &[&'a [f32]]) -> [&'a [f32]; N] {
    inputs
        .try_into()
        .expect("an operation gets one input per entry of its input_shapes")
}

/// A fused operation on host buffers: the forward pass, keeping what the backward pass needs,
/// and the backward pass written out by hand. [`run`] makes it one Burn operation.
pub(crate) trait HostOp: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// What the forward pass keeps for the backward pass.
    type Tape: std::fmt::Debug + Send + Sync + 'static;

    /// The inputs' shapes, in order.
    fn input_shapes(&self) -> Vec<Vec<usize>>;

    /// The output's shape.
    fn output_shape(&self) -> Vec<usize>;

    /// The output (row-major) and the tape.
    fn forward(&self, inputs: &[&[f32]]) -> (Vec<f32>, Self::Tape);

    /// The inputs' gradients from the output's (`out` is the forward pass's output), in input
    /// order; `None` is allowed where `want` is false.
    fn backward(
        &self,
        inputs: &[&[f32]],
        out: &[f32],
        tape: &Self::Tape,
        dout: &[f32],
        want: &[bool],
    ) -> Vec<Option<Vec<f32>>>;
}

type Ad = Autodiff<Flex>;
type AdFloat = burn::tensor::ops::FloatTensor<Ad>;

/// Runs `op` on `N` float inputs as one operation of the CPU backend: on `Flex` the forward
/// pass alone; on `Autodiff<Flex>` also one node on the tape whose backward step is the op's.
/// `None` on other backends, for inputs that are not `f32`, not of the op's sizes or empty —
/// the caller then runs its tensor-operation form.
pub(crate) fn run<B: Backend, Op: HostOp, const N: usize, const D: usize>(
    op: Op,
    inputs: Vec<B::FloatTensorPrimitive>,
) -> Option<Tensor<B, D>> {
    let backend = TypeId::of::<B>();
    let shapes = op.input_shapes();
    // Empty tensors stay with the tensor form (the ops' chunking assumes at least one row).
    let nonempty = shapes
        .iter()
        .chain([&op.output_shape()])
        .all(|s| s.iter().product::<usize>() > 0);
    let fits = |values: &[FlexTensor]| {
        nonempty
            && values.len() == N
            && shapes.len() == N
            && values
                .iter()
                .zip(&shapes)
                .all(|(v, s)| slice(v).len() == s.iter().product::<usize>())
    };
    if backend == TypeId::of::<Flex>() {
        let inputs: Vec<FlexTensor> = cast(inputs)?;
        let values = inputs.into_iter().map(host).collect::<Option<Vec<_>>>()?;
        if !fits(&values) {
            return None;
        }
        let (out, _) = op.forward(&values.iter().map(slice).collect::<Vec<_>>());
        let out = flex(out, op.output_shape());
        cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(
            out,
        )))
    } else if backend == TypeId::of::<Ad>() {
        let inputs: Vec<AdFloat> = cast(inputs)?;
        let values = inputs
            .iter()
            .map(|p| host(p.primitive.clone()))
            .collect::<Option<Vec<_>>>()?;
        if !fits(&values) {
            return None;
        }
        let (out, tape) = op.forward(&values.iter().map(slice).collect::<Vec<_>>());
        let out = flex(out, op.output_shape());
        let nodes: [_; N] = std::array::from_fn(|i| inputs[i].node.clone());
        let state = State {
            op,
            values,
            out: out.clone(),
            tape: Arc::new(tape),
        };
        let out = match Node::<Op>(PhantomData)
            .prepare::<NoCheckpointing>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        cast(Tensor::<Ad, D>::from_primitive(TensorPrimitive::Float(out)))
    } else {
        None
    }
}

/// What a fused node's backward step needs: the op, its inputs and its tape.
#[derive(Debug)]
struct State<Op: HostOp> {
    op: Op,
    values: Vec<FlexTensor>,
    out: FlexTensor,
    tape: Arc<Op::Tape>,
}

// By hand: the derive would ask the tape to be `Clone`, which the `Arc` makes unnecessary.
impl<Op: HostOp> Clone for State<Op> {
    fn clone(&self) -> Self {
        Self {
            op: self.op.clone(),
            values: self.values.clone(),
            out: self.out.clone(),
            tape: Arc::clone(&self.tape),
        }
    }
}

/// The autodiff node of a fused operation.
#[derive(Debug)]
struct Node<Op>(PhantomData<Op>);

impl<Op: HostOp, const N: usize> Backward<Flex, N> for Node<Op> {
    type State = State<Op>;

    fn backward(self, ops: Ops<State<Op>, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = grads.consume::<Flex>(&ops.node);
        let dout = host(dout).expect("the output gradient of an f32 operation is f32");
        let state = &ops.state;
        let want: Vec<bool> = ops.parents.iter().map(Option::is_some).collect();
        let values: Vec<&[f32]> = state.values.iter().map(slice).collect();
        let out = state
            .op
            .backward(&values, slice(&state.out), &state.tape, slice(&dout), &want);
        let shapes = state.op.input_shapes();
        for ((parent, grad), shape) in ops.parents.into_iter().zip(out).zip(shapes) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<Flex>(node.id, flex(grad, shape));
            }
        }
    }
}
