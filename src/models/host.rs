//! Shared plumbing of the fused CPU operations (the recurrent layers in [`super::cells`], the
//! transformer encoder layer in [`super::encoder`], the FDN block in [`super::fdn_block`], the
//! recurrent forecasters' attention head in [`super::attention`]): [`HostOp`] and [`run`], which
//! make a forward and a hand-written backward pass on `f32` slices one Burn operation on the CPU
//! backend; strided matrix products through the `gemm` crate; a vectorisable `exp`, `erf` and
//! GELU; functions compiled for several x86-64 levels and chosen at run time.

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

/// A strided matrix view: element `(r, c)` sits at `r·rs + c·cs` of its slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl View {
    pub(crate) fn row_major(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// Rows `[rows, cols]` whose starts lie `rs` elements apart.
    pub(crate) fn strided(rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Whether every element lies inside a slice of `len` elements.
    fn fits(&self, len: usize) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .zip((self.cols - 1).checked_mul(self.cs))
            .and_then(|(a, b)| a.checked_add(b));
        last.is_some_and(|last| last < len)
    }

    /// Whether distinct elements lie at distinct places (row-major rows that do not overlap),
    /// as a destination must: gemm's threads write it in parallel.
    fn distinct(&self) -> bool {
        self.rows <= 1 || (self.cs == 1 && self.rs >= self.cols)
    }
}

/// `dst = lhs·rhs`, or `dst += lhs·rhs` when `accumulate`.
pub(crate) fn matmul(
    dst: &mut [f32],
    d: View,
    accumulate: bool,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
) {
    assert!(
        l.rows == d.rows && r.cols == d.cols && l.cols == r.rows,
        "matmul shapes: {d:?} = {l:?} · {r:?}"
    );
    assert!(
        d.fits(dst.len()) && l.fits(lhs.len()) && r.fits(rhs.len()),
        "matmul views out of bounds"
    );
    assert!(d.distinct(), "matmul destination rows overlap: {d:?}");
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if l.cols == 0 {
        if !accumulate {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    dst[i * d.rs + j * d.cs] = 0.0;
                }
            }
        }
        return;
    }
    // Large products use the thread pool, unless this already runs on one of its threads (a
    // chunk of sequences), where nesting would only add waiting.
    let work = d.rows * d.cols * l.cols;
    let parallelism = if work >= 1 << 21 && rayon::current_thread_index().is_none() {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three views were checked to lie inside their slices, and `dst` is borrowed
    // mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr(),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr(),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr(),
            r.cs as isize,
            r.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x·w + b` for row-major `x` `[rows, inputs]`, `w` `[inputs, outputs]`.
pub(crate) fn affine(x: &[f32], rows: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; rows * b.len()];
    affine_into(&mut out, x, w, b);
    out
}

/// [`affine`] into `dst` (`[rows, outputs]`, the rows implied by its length).
pub(crate) fn affine_into(dst: &mut [f32], x: &[f32], w: &[f32], b: &[f32]) {
    let outputs = b.len();
    let inputs = w.len() / outputs;
    let rows = dst.len() / outputs;
    for row in dst.chunks_exact_mut(outputs) {
        row.copy_from_slice(b);
    }
    matmul(
        dst,
        View::row_major(rows, outputs),
        true,
        x,
        View::row_major(rows, inputs),
        w,
        View::row_major(inputs, outputs),
    );
}

/// `aᵀ·b` for row-major `a` `[rows, p]` and `b` `[rows, q]`: `[p, q]` (a weight gradient).
pub(crate) fn gram(a: &[f32], p: usize, b: &[f32], q: usize) -> Vec<f32> {
    let rows = a.len() / p;
    let mut out = vec![0.0; p * q];
    matmul(
        &mut out,
        View::row_major(p, q),
        false,
        a,
        View::row_major(rows, p).t(),
        b,
        View::row_major(rows, q),
    );
    out
}

/// `dst (+)= a·wᵀ` for row-major `a` `[rows, p]` and `w` `[q, p]` (an input gradient); `w` is
/// laid out transposed first, which `gemm` packs faster than a transposed view.
pub(crate) fn times_transposed(dst: &mut [f32], accumulate: bool, a: &[f32], p: usize, w: &[f32]) {
    let rows = a.len() / p;
    let q = w.len() / p;
    matmul(
        dst,
        View::row_major(rows, q),
        accumulate,
        a,
        View::row_major(rows, p),
        &transposed(w, q, p),
        View::row_major(p, q),
    );
}

/// Row-major matrices of `cols` columns each (and as many rows), side by side:
/// `[rows, blocks·cols]`, as one product multiplies them all.
pub(crate) fn side_by_side(blocks: &[&[f32]], cols: usize) -> Vec<f32> {
    let rows = blocks.first().map_or(0, |b| b.len() / cols);
    (0..rows)
        .flat_map(|r| {
            blocks
                .iter()
                .flat_map(move |b| b[r * cols..(r + 1) * cols].iter().copied())
        })
        .collect()
}

/// Block `k` of a row-major matrix of `blocks` side-by-side blocks `cols` wide: the inverse of
/// [`side_by_side`].
pub(crate) fn column_block(m: &[f32], blocks: usize, cols: usize, k: usize) -> Vec<f32> {
    m.chunks_exact(blocks * cols)
        .flat_map(|row| row[k * cols..(k + 1) * cols].iter().copied())
        .collect()
}

/// `e^x` to about one ulp (Cephes' `expf` polynomial), without branches or library calls so
/// that the gate loops vectorise. Inputs are clamped to `[−87, 88]`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32);
    y * scale
}

/// erf(x) to about 2e−7 absolute (Abramowitz and Stegun 7.1.26), branch-free so that the loops
/// around it vectorise.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// Column sums of a row-major `[rows, width]` buffer.
pub(crate) fn column_sums(m: &[f32], width: usize) -> Vec<f32> {
    let mut out = vec![0.0; width];
    for row in m.chunks_exact(width) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

/// The transpose of a row-major `rows × cols` matrix, row-major.
pub(crate) fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate().take(rows) {
        for (c, v) in row.iter().enumerate() {
            out[c * rows + r] = *v;
        }
    }
    out
}

/// Defines the function `$name` with its body compiled three times, for AVX-512, for AVX2 + FMA and for the
/// baseline target, and picks the best the CPU has at run time: the gate loops vectorise
/// 16, 8 or 4 lanes wide, and the binary still runs on any x86-64.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v4($($arg: $ty),*) {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v3($($arg: $ty),*) {
                    imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature `v4` was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature `v3` was compiled for.
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// Sequences per parallel chunk: the batch split evenly over the thread pool. Sequences are
/// independent through the recurrence, so each chunk runs all its steps without waiting for
/// the others.
pub(crate) fn chunk_rows(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

multiversion! {
    /// Exact GELU, `u·Φ(u)`.
    pub(crate) fn gelu(u: &[f32], g: &mut [f32]) {
        for (g, &u) in g.iter_mut().zip(u) {
            *g = 0.5 * u * (1.0 + erf(u * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// `dg ⊙ GELU'(u)` in place of `dg`: GELU'(u) = Φ(u) + u·φ(u).
    pub(crate) fn gelu_backward(u: &[f32], dg: &mut [f32]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for (dg, &u) in dg.iter_mut().zip(u) {
            let cdf = 0.5 * (1.0 + erf(u * std::f32::consts::FRAC_1_SQRT_2));
            *dg *= cdf + u * INV_SQRT_2PI * exp(-0.5 * u * u);
        }
    }
}

pub(crate) use multiversion;
