//! The fused FDN block: one Burn operation for `gelu(temporal(pointwise(h))) + h` on
//! channels-last features `[series, steps, channels]`.
//!
//! As tensor operations the block is a dozen steps — the shifted copies of the temporal
//! convolution concatenated, biases broadcast, the exact GELU through a scalar `erf` — and on
//! the CPU backend (`Flex`) those copies and broadcasts walk their elements one at a time. On
//! `Flex` and its autodiff wrapper this module runs the block on host buffers: the 1×1
//! convolution as one matrix product, the kernel-k convolution as one product over the k
//! shifted copies laid side by side (zero-padded at each series' ends), GELU and the residual
//! in vectorised passes; under autodiff it records one node whose backward pass is written
//! out by hand. The parameters enter as ordinary tensors, so the bio mechanisms and ASAM act on
//! them unchanged. Other backends get `None` and the FDN runs its tensor-operation form, which
//! the tests compare this with.

use burn::nn::PaddingConfig1d;
use burn::nn::conv::Conv1d;
use burn::prelude::*;
use rayon::prelude::*;

use crate::models::host::{
    self, HostOp, View, affine_into, chunk_rows, column_sums, float, gelu, gelu_backward, gram,
    matmul, parents, times_transposed, transposed,
};

/// One residual block: 1×1 convolution, temporal convolution, GELU, plus the input.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// The 1×1 convolution.
    pub pointwise: Conv1d<B>,
    /// The kernel-k temporal convolution.
    pub temporal: Conv1d<B>,
}

/// Parents of the operation: the features, the 1×1 convolution's weight and bias, the
/// temporal convolution's weight and bias (Burn's `Conv1d` layouts: `[out, in, kernel]`).
const PARENTS: usize = 5;

/// Sizes of one block call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOp {
    /// Series (batch × variables).
    pub series: usize,
    /// Steps per series.
    pub steps: usize,
    /// Channels in and out.
    pub channels: usize,
    /// Temporal kernel size (odd).
    pub kernel: usize,
}

impl BlockOp {
    fn rows(&self) -> usize {
        self.series * self.steps
    }
}

/// The fused block, when the backend and the block have it: `h` `[series, steps, channels]`
/// → `gelu(temporal(pointwise(h))) + h`.
pub fn forward<B: Backend>(block: &Block<B>, h: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
    let [series, steps, channels] = h.dims();
    let [c_out, c_in, one] = block.pointwise.weight.dims();
    let [t_out, t_in, kernel] = block.temporal.weight.dims();
    let plain = |c: &burn::nn::conv::Conv1d<B>| {
        c.stride == 1 && c.dilation == 1 && c.groups == 1 && c.padding == PaddingConfig1d::Same
    };
    if [c_out, c_in, one, t_out, t_in] != [channels, channels, 1, channels, channels]
        || kernel.is_multiple_of(2)
        || !plain(&block.pointwise)
        || !plain(&block.temporal)
    {
        return None;
    }
    let d = BlockOp {
        series,
        steps,
        channels,
        kernel,
    };
    let inputs = vec![
        float(h),
        float(block.pointwise.weight.val()),
        float(block.pointwise.bias.as_ref()?.val()),
        float(block.temporal.weight.val()),
        float(block.temporal.bias.as_ref()?.val()),
    ];
    host::run::<B, BlockOp, PARENTS, 3>(d, inputs)
}

impl HostOp for BlockOp {
    type Tape = Tape;

    fn input_shapes(&self) -> Vec<Vec<usize>> {
        let c = self.channels;
        vec![
            vec![self.series, self.steps, c],
            vec![c, c, 1],
            vec![c],
            vec![c, c, self.kernel],
            vec![c],
        ]
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![self.series, self.steps, self.channels]
    }

    /// The block's forward pass on host buffers (`p`: features, then the parameters): the output
    /// `[series, steps, channels]` and the tape. The series are split into the fixed chunks of
    /// `chunk_rows` (they are independent), run on the thread pool, each chunk running every
    /// product and pass on its own.
    fn forward(&self, p: &[&[f32]]) -> (Vec<f32>, Tape) {
        let [features, w_point, b_point, w_temporal, b_temporal] = parents::<PARENTS>(p);
        let d = *self;
        let c = d.channels;
        let (pointwise, temporal) = (transposed(w_point, c, c), kernel_matrix(w_temporal, d));
        let len = d.rows() * c;
        let (mut z, mut y, mut out) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        let per = chunk_rows(d.series) * d.steps * c;
        z.par_chunks_mut(per)
            .zip(y.par_chunks_mut(per))
            .zip(out.par_chunks_mut(per))
            .zip(features.par_chunks(per))
            .for_each(|(((z, y), out), h)| {
                let local = BlockOp {
                    series: z.len() / (d.steps * c),
                    ..d
                };
                affine_into(z, h, &pointwise, b_point);
                affine_into(y, &shifted_copies(z, local), &temporal, b_temporal);
                gelu(y, out);
                for (o, h) in out.iter_mut().zip(h) {
                    *o += h;
                }
            });
        (out, Tape { z, y })
    }

    /// The gradients of the block's inputs in parent order, from the output gradient `dout`; the
    /// features' only when wanted. Split over the series like the forward pass; the chunks'
    /// parameter gradients are summed.
    fn backward(
        &self,
        p: &[&[f32]],
        _: &[f32],
        tape: &Tape,
        dout: &[f32],
        want: &[bool],
    ) -> Vec<Option<Vec<f32>>> {
        let [features, w_point, _, w_temporal, _] = parents::<PARENTS>(p);
        let d = *self;
        let (c, k) = (d.channels, d.kernel);
        let temporal = kernel_matrix(w_temporal, d);
        let per = chunk_rows(d.series) * d.steps * c;
        // The residual passes `dout` on; the chunks add the convolutions' part.
        let mut dh = dout.to_vec();
        let partials: Vec<[Vec<f32>; 4]> = dh
            .par_chunks_mut(per)
            .zip(dout.par_chunks(per))
            .zip(tape.y.par_chunks(per))
            .zip(tape.z.par_chunks(per))
            .zip(features.par_chunks(per))
            .map(|((((dh, dout), y), z), h)| {
                let local = BlockOp {
                    series: dh.len() / (d.steps * c),
                    ..d
                };
                let n = local.rows();
                let mut dy = dout.to_vec();
                gelu_backward(y, &mut dy);
                // The temporal kernel's gradient as the matrix `[k·in, out]`.
                let dtemporal = gram(&shifted_copies(z, local), k * c, &dy, c);
                let mut dcols = vec![0.0; n * k * c];
                times_transposed(&mut dcols, false, &dy, c, &temporal);
                let dz = unshift(&dcols, local);
                // The 1×1 weight's gradient as `hᵀ·dz`, `[in, out]`.
                let dpointwise = gram(h, c, &dz, c);
                matmul(
                    dh,
                    View::row_major(n, c),
                    true,
                    &dz,
                    View::row_major(n, c),
                    w_point,
                    View::row_major(c, c),
                );
                [
                    dpointwise,
                    column_sums(&dz, c),
                    dtemporal,
                    column_sums(&dy, c),
                ]
            })
            .collect();
        let [dpointwise, dpb, dtemporal, dtb] = partials
            .into_iter()
            .reduce(|mut a, b| {
                for (a, b) in a.iter_mut().zip(&b) {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                }
                a
            })
            .expect("at least one chunk");
        // Back to Burn's layouts: `[out, in, 1]` and `[out, in, k]`.
        let dkernel = kernel_from_matrix(&dtemporal, d);
        vec![
            want[0].then_some(dh),
            Some(transposed(&dpointwise, c, c)),
            Some(dpb),
            Some(dkernel),
            Some(dtb),
        ]
    }
}

/// What the forward pass keeps: the 1×1 convolution's output and the temporal convolution's
/// (GELU's input), both `[rows, channels]`.
#[derive(Clone, Debug)]
pub struct Tape {
    z: Vec<f32>,
    y: Vec<f32>,
}

/// The temporal kernel `[out, in, k]` as the matrix `[k·in, out]` the shifted copies multiply.
fn kernel_matrix(w: &[f32], d: BlockOp) -> Vec<f32> {
    let (c, k) = (d.channels, d.kernel);
    let mut m = vec![0.0; w.len()];
    for o in 0..c {
        for i in 0..c {
            for j in 0..k {
                m[(j * c + i) * c + o] = w[(o * c + i) * k + j];
            }
        }
    }
    m
}

/// The inverse of [`kernel_matrix`]: `[k·in, out]` back to Burn's `[out, in, k]`.
fn kernel_from_matrix(m: &[f32], d: BlockOp) -> Vec<f32> {
    let (c, k) = (d.channels, d.kernel);
    let mut w = vec![0.0; m.len()];
    for o in 0..c {
        for i in 0..c {
            for j in 0..k {
                w[(o * c + i) * k + j] = m[(j * c + i) * c + o];
            }
        }
    }
    w
}

/// The k shifted copies of every series side by side, `[rows, k·channels]`: row `(s, t)`
/// holds `z[s, t + j − pad]` in block `j`, zero outside the series.
fn shifted_copies(z: &[f32], d: BlockOp) -> Vec<f32> {
    let (c, k, steps) = (d.channels, d.kernel, d.steps);
    let pad = (k - 1) / 2;
    let mut cols = vec![0.0; d.rows() * k * c];
    for (series, out) in z
        .chunks_exact(steps * c)
        .zip(cols.chunks_exact_mut(steps * k * c))
    {
        for t in 0..steps {
            let row = &mut out[t * k * c..(t + 1) * k * c];
            for j in 0..k {
                if let Some(src) = (t + j).checked_sub(pad).filter(|&s| s < steps) {
                    row[j * c..(j + 1) * c].copy_from_slice(&series[src * c..(src + 1) * c]);
                }
            }
        }
    }
    cols
}

/// The adjoint of [`shifted_copies`]: every block's rows added back where they came from.
fn unshift(cols: &[f32], d: BlockOp) -> Vec<f32> {
    let (c, k, steps) = (d.channels, d.kernel, d.steps);
    let pad = (k - 1) / 2;
    let mut z = vec![0.0; d.rows() * c];
    for (series, cols) in z
        .chunks_exact_mut(steps * c)
        .zip(cols.chunks_exact(steps * k * c))
    {
        for t in 0..steps {
            let row = &cols[t * k * c..(t + 1) * k * c];
            for j in 0..k {
                if let Some(dst) = (t + j).checked_sub(pad).filter(|&s| s < steps) {
                    for (a, b) in series[dst * c..(dst + 1) * c]
                        .iter_mut()
                        .zip(&row[j * c..(j + 1) * c])
                    {
                        *a += b;
                    }
                }
            }
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use burn::nn::Gelu;
    use burn::nn::conv::Conv1dConfig;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::models::testing::{Randomise, assert_close, random};

    fn block<B: Backend>(channels: usize, kernel: usize, seed: u64) -> Block<B> {
        let conv = |k: usize| {
            Conv1dConfig::new(channels, channels, k)
                .with_padding(PaddingConfig1d::Same)
                .init::<B>(&Default::default())
        };
        Block {
            pointwise: conv(1),
            temporal: conv(kernel),
        }
        .map(&mut Randomise::new(seed, 0.6))
    }

    /// The block through Burn's `Conv1d` modules on `[series, channels, steps]`.
    fn reference<B: Backend>(block: &Block<B>, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = h.clone().swap_dims(1, 2);
        let y = block.temporal.forward(block.pointwise.forward(x));
        Gelu::new().forward(y).swap_dims(1, 2) + h
    }

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// The fused block agrees with Burn's convolutions on random features, parameters and
    /// output gradients: the output, and the gradients of the features and of all four
    /// parameters; kernels 3 and 5, series shorter than the kernel, the series split over 1 to
    /// 3 threads; without autodiff too.
    #[test]
    fn fused_block_matches_burns_convolutions() {
        for threads in [1, 2, 3] {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(agreement);
        }
    }

    /// Convolutions with a stride, and empty inputs, stay with the tensor form.
    #[test]
    fn other_convolutions_fall_back() {
        let mut strided = block::<Flex>(3, 3, 0);
        strided.temporal.stride = 2;
        let h = Tensor::<Flex, 3>::ones([2, 6, 3], &Default::default());
        assert!(forward(&strided, h.clone()).is_none());
        assert!(forward(&block::<Flex>(3, 3, 0), h).is_some());
        let empty = Tensor::<Flex, 3>::zeros([0, 6, 3], &Default::default());
        assert!(forward(&block::<Flex>(3, 3, 0), empty).is_none());
    }

    fn agreement() {
        type A = Autodiff<Flex>;
        for (series, steps, channels, kernel) in [(5, 9, 5, 3), (3, 6, 4, 5), (2, 1, 3, 5)] {
            let what = format!("{series} series of {steps} steps, {channels} channels, k {kernel}");
            let b = block::<A>(channels, kernel, 1);
            let mut rng = ChaCha8Rng::seed_from_u64(2);
            let h = random::<A, 3>(&mut rng, [series, steps, channels], 1.5).require_grad();
            let weight = random::<A, 3>(&mut rng, [series, steps, channels], 1.5);
            let run = |fused: bool| {
                let y = if fused {
                    forward(&b, h.clone()).expect("the CPU autodiff backend is fused")
                } else {
                    reference(&b, h.clone())
                };
                let grads = (y.clone() * weight.clone()).sum().backward();
                let g3 = |p: &Param<Tensor<A, 3>>| values(p.val().grad(&grads).unwrap());
                let g1 = |p: &Option<Param<Tensor<A, 1>>>| {
                    values(p.as_ref().unwrap().val().grad(&grads).unwrap())
                };
                vec![
                    values(y),
                    values(h.grad(&grads).unwrap()),
                    g3(&b.pointwise.weight),
                    g1(&b.pointwise.bias),
                    g3(&b.temporal.weight),
                    g1(&b.temporal.bias),
                ]
            };
            for (i, (a, r)) in run(true).iter().zip(&run(false)).enumerate() {
                assert_close(&format!("{what}: tensor {i}"), a, r, 1e-6);
            }
            let plain = block::<Flex>(channels, kernel, 1);
            let h = h.inner();
            let (a, r) = (
                values(forward(&plain, h.clone()).expect("the CPU backend is fused")),
                values(reference(&plain, h)),
            );
            for (x, y) in a.iter().zip(&r) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "{what}: {x} vs {y}"
                );
            }
        }
    }
}
