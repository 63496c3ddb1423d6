//! The fused transformer encoder layer: one Burn operation per layer instead of some forty.
//!
//! Burn's [`TransformerEncoderLayer`] is a chain of small tensor operations, and on the CPU
//! backend (`Flex`) the broadcast and strided ones among them (the heads' reshapes and
//! transposes, the layer norms, the biases) walk their elements one at a time; most of a
//! training step went there. On `Flex` and its autodiff wrapper this module runs the whole
//! post-norm layer on host buffers instead — the three input projections as one matrix product,
//! attention per sequence and head as small products with a vectorised softmax, the output
//! projection, residual and layer norm, the GELU feed-forward block, residual and layer norm —
//! and, under autodiff, records one node whose backward step is the layer's gradient written
//! out by hand. The parameters enter as ordinary tensors, so the bio mechanisms and ASAM act
//! on them unchanged.
//!
//! Other backends, and layers this does not cover (pre-norm, dropout above 0, another
//! activation, the quiet softmax, missing biases), take Burn's own forward, which is also the
//! reference the fused layer is tested against (outputs and every gradient). A layer-norm ε
//! other than Burn's default cannot be detected (Burn keeps it private); only the forecaster,
//! which builds its encoder with the default, calls this.

use burn::nn::activation::Activation;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderLayer};
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use rayon::prelude::*;

use crate::models::host::{
    self, HostOp, View, affine, chunk_rows, column_block, column_sums, float, gelu, gelu_backward,
    gram, layer_norm, layer_norm_backward, matmul, side_by_side, softmax_backward, softmax_rows,
    times_transposed,
};

/// The layer norms' ε: the default of Burn's `TransformerEncoderConfig`, which the forecaster
/// builds its encoder with (a test checks that they agree).
pub(crate) const LAYER_NORM_EPS: f32 = 1e-5;

/// The encoder's forward pass, `[batch, steps, width]` → `[batch, steps, width]`: every layer
/// fused where the backend and the layer allow it, Burn's layer otherwise. For encoders built
/// with Burn's default layer-norm ε only (as the forecaster's): Burn keeps a layer norm's ε
/// private, so the fused layer cannot check it and uses [`LAYER_NORM_EPS`].
pub(crate) fn forward<B: Backend>(
    encoder: &TransformerEncoder<B>,
    x: Tensor<B, 3>,
) -> Tensor<B, 3> {
    encoder.layers.iter().fold(x, |x, layer| {
        fused(layer, x.clone()).unwrap_or_else(|| layer.forward(x, None, None))
    })
}

/// Sizes of one layer call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderLayerOp {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub steps: usize,
    /// Model width.
    pub width: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub ff: usize,
}

impl EncoderLayerOp {
    fn rows(&self) -> usize {
        self.batch * self.steps
    }
}

/// The operation's inputs: the layer input, then the parameters (Burn's `Linear` weights are
/// `[inputs, outputs]`).
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
enum Param {
    X,
    Wq,
    Bq,
    Wk,
    Bk,
    Wv,
    Bv,
    Wo,
    Bo,
    Gamma1,
    Beta1,
    W1,
    B1,
    W2,
    B2,
    Gamma2,
    Beta2,
}

const PARENTS: usize = 17;

/// The layer's parameters in parent order after the input, when the fused layer covers it.
fn parameters<B: Backend>(
    layer: &TransformerEncoderLayer<B>,
) -> Option<Vec<B::FloatTensorPrimitive>> {
    let covered = !layer.norm_first
        && !layer.mha.quiet_softmax
        && [
            layer.dropout.prob,
            layer.mha.dropout.prob,
            layer.pwff.dropout.prob,
        ] == [0.0; 3]
        && matches!(&layer.pwff.activation, Activation::Gelu(g) if !g.approximate);
    if !covered {
        return None;
    }
    let linear = |l: &Linear<B>| Some([float(l.weight.val()), float(l.bias.as_ref()?.val())]);
    let norm = |n: &LayerNorm<B>| Some([float(n.gamma.val()), float(n.beta.as_ref()?.val())]);
    let mha = &layer.mha;
    let mut out = Vec::with_capacity(PARENTS - 1);
    for l in [&mha.query, &mha.key, &mha.value, &mha.output] {
        out.extend(linear(l)?);
    }
    out.extend(norm(&layer.norm_1)?);
    out.extend(linear(&layer.pwff.linear_inner)?);
    out.extend(linear(&layer.pwff.linear_outer)?);
    out.extend(norm(&layer.norm_2)?);
    Some(out)
}

/// The fused layer, when the backend and the layer have it.
fn fused<B: Backend>(layer: &TransformerEncoderLayer<B>, x: Tensor<B, 3>) -> Option<Tensor<B, 3>> {
    let [batch, steps, width] = x.dims();
    let [inner_in, ff] = layer.pwff.linear_inner.weight.dims();
    let heads = layer.mha.n_heads;
    if inner_in != width || heads == 0 || !width.is_multiple_of(heads) {
        return None;
    }
    let d = EncoderLayerOp {
        batch,
        steps,
        width,
        heads,
        ff,
    };
    let mut inputs = vec![float(x)];
    inputs.extend(parameters(layer)?);
    host::run::<B, EncoderLayerOp, PARENTS, 3>(d, inputs)
}

impl HostOp for EncoderLayerOp {
    type Tape = Tape;

    /// In parent order (see [`Param`]).
    fn input_shapes(&self) -> Vec<Vec<usize>> {
        let (w, f) = (self.width, self.ff);
        vec![
            vec![self.batch, self.steps, w],
            vec![w, w],
            vec![w],
            vec![w, w],
            vec![w],
            vec![w, w],
            vec![w],
            vec![w, w],
            vec![w],
            vec![w],
            vec![w],
            vec![w, f],
            vec![f],
            vec![f, w],
            vec![w],
            vec![w],
            vec![w],
        ]
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![self.batch, self.steps, self.width]
    }

    /// The layer's forward pass on host buffers (`p` in parent order): the output
    /// `[batch, steps, width]` and the tape.
    fn forward(&self, p: &[&[f32]]) -> (Vec<f32>, Tape) {
        use Param::*;
        let d = *self;
        let (n, w) = (d.rows(), d.width);
        let wqkv = side_by_side(&[p[Wq as usize], p[Wk as usize], p[Wv as usize]], w);
        let bqkv = [p[Bq as usize], p[Bk as usize], p[Bv as usize]].concat();
        let qkv = affine(p[X as usize], n, &wqkv, &bqkv);
        let (attn, context) = attention(d, &qkv);
        let mut r1 = affine(&context, n, p[Wo as usize], p[Bo as usize]);
        for (r, x) in r1.iter_mut().zip(p[X as usize]) {
            *r += x;
        }
        let (mut xhat1, mut rstd1, mut y1) = (vec![0.0; n * w], vec![0.0; n], vec![0.0; n * w]);
        layer_norm(
            LAYER_NORM_EPS,
            &r1,
            p[Gamma1 as usize],
            p[Beta1 as usize],
            &mut xhat1,
            &mut rstd1,
            &mut y1,
        );
        let u = affine(&y1, n, p[W1 as usize], p[B1 as usize]);
        let mut g = vec![0.0; u.len()];
        gelu(&u, &mut g);
        let mut r2 = affine(&g, n, p[W2 as usize], p[B2 as usize]);
        for (r, y) in r2.iter_mut().zip(&y1) {
            *r += y;
        }
        let (mut xhat2, mut rstd2, mut out) = (vec![0.0; n * w], vec![0.0; n], vec![0.0; n * w]);
        layer_norm(
            LAYER_NORM_EPS,
            &r2,
            p[Gamma2 as usize],
            p[Beta2 as usize],
            &mut xhat2,
            &mut rstd2,
            &mut out,
        );
        let tape = Tape {
            wqkv,
            qkv,
            attn,
            context,
            xhat1,
            rstd1,
            y1,
            u,
            g,
            xhat2,
            rstd2,
        };
        (out, tape)
    }

    /// The gradients of the layer's inputs in parent order, from the output gradient `dout`; the
    /// input's only when wanted.
    fn backward(
        &self,
        p: &[&[f32]],
        _: &[f32],
        tape: &Tape,
        dout: &[f32],
        want: &[bool],
    ) -> Vec<Option<Vec<f32>>> {
        use Param::*;
        let d = *self;
        let (n, w, f) = (d.rows(), d.width, d.ff);
        // Second layer norm; its input was y1 + the feed-forward output.
        let (mut dr2, mut dgamma2, mut dbeta2) = (vec![0.0; n * w], vec![0.0; w], vec![0.0; w]);
        layer_norm_backward(
            dout,
            &tape.xhat2,
            &tape.rstd2,
            p[Gamma2 as usize],
            &mut dr2,
            &mut dgamma2,
            &mut dbeta2,
        );
        // Feed-forward block.
        let dw2 = gram(&tape.g, f, &dr2, w);
        let db2 = column_sums(&dr2, w);
        let mut du = vec![0.0; n * f];
        times_transposed(&mut du, false, &dr2, w, p[W2 as usize]);
        gelu_backward(&tape.u, &mut du);
        let dw1 = gram(&tape.y1, w, &du, f);
        let db1 = column_sums(&du, f);
        let mut dy1 = dr2;
        times_transposed(&mut dy1, true, &du, f, p[W1 as usize]);
        // First layer norm; its input was x + the attention output.
        let (mut dr1, mut dgamma1, mut dbeta1) = (vec![0.0; n * w], vec![0.0; w], vec![0.0; w]);
        layer_norm_backward(
            &dy1,
            &tape.xhat1,
            &tape.rstd1,
            p[Gamma1 as usize],
            &mut dr1,
            &mut dgamma1,
            &mut dbeta1,
        );
        // Output projection.
        let dwo = gram(&tape.context, w, &dr1, w);
        let dbo = column_sums(&dr1, w);
        let mut dcontext = vec![0.0; n * w];
        times_transposed(&mut dcontext, false, &dr1, w, p[Wo as usize]);
        // Attention, then the query, key and value projections.
        let dqkv = attention_backward(d, tape, &dcontext);
        let dwqkv = gram(p[X as usize], w, &dqkv, 3 * w);
        let dbqkv = column_sums(&dqkv, 3 * w);
        let dx = want[X as usize].then(|| {
            let mut dx = dr1;
            times_transposed(&mut dx, true, &dqkv, 3 * w, &tape.wqkv);
            dx
        });
        vec![
            dx,
            Some(column_block(&dwqkv, 3, w, 0)),
            Some(dbqkv[..w].to_vec()),
            Some(column_block(&dwqkv, 3, w, 1)),
            Some(dbqkv[w..2 * w].to_vec()),
            Some(column_block(&dwqkv, 3, w, 2)),
            Some(dbqkv[2 * w..].to_vec()),
            Some(dwo),
            Some(dbo),
            Some(dgamma1),
            Some(dbeta1),
            Some(dw1),
            Some(db1),
            Some(dw2),
            Some(db2),
            Some(dgamma2),
            Some(dbeta2),
        ]
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct Tape {
    /// The query, key and value weights side by side, `[width, 3·width]`.
    wqkv: Vec<f32>,
    /// Queries, keys and values, `[rows, 3·width]`.
    qkv: Vec<f32>,
    /// Attention weights, `[batch, heads, steps, steps]`.
    attn: Vec<f32>,
    /// The heads' outputs side by side, `[rows, width]`.
    context: Vec<f32>,
    /// First layer norm: normalised input `[rows, width]`, 1/σ per row, and the output.
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    y1: Vec<f32>,
    /// The feed-forward block's pre-activation and activation, `[rows, ff]`.
    u: Vec<f32>,
    g: Vec<f32>,
    /// Second layer norm: normalised input and 1/σ per row.
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
}

/// Self-attention of every sequence and head: the attention weights
/// `[batch, heads, steps, steps]` and the heads' outputs side by side, `[rows, width]`. The
/// batch is split into the fixed chunks, run on the thread pool.
fn attention(d: EncoderLayerOp, qkv: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (t, w, h) = (d.steps, d.width, d.heads);
    let (dk, w3) = (w / h, 3 * w);
    let divisor = (dk as f32).sqrt();
    let mut attn = vec![0.0; d.batch * h * t * t];
    let mut context = vec![0.0; d.rows() * w];
    let per = chunk_rows(d.batch);
    attn.par_chunks_mut(per * h * t * t)
        .zip(context.par_chunks_mut(per * t * w))
        .enumerate()
        .for_each(|(chunk, (attn, context))| {
            for local in 0..context.len() / (t * w) {
                let b = chunk * per + local;
                let qkv = &qkv[b * t * w3..(b + 1) * t * w3];
                for head in 0..h {
                    let a = &mut attn[(local * h + head) * t * t..][..t * t];
                    let col = head * dk;
                    // S = Q·Kᵀ, then the softmax of S/√d_k by rows.
                    matmul(
                        a,
                        View::row_major(t, t),
                        false,
                        &qkv[col..],
                        View::strided(t, dk, w3),
                        &qkv[w + col..],
                        View::strided(t, dk, w3).t(),
                    );
                    softmax_rows(a, t, divisor);
                    matmul(
                        &mut context[local * t * w + col..],
                        View::strided(t, dk, w),
                        false,
                        a,
                        View::row_major(t, t),
                        &qkv[2 * w + col..],
                        View::strided(t, dk, w3),
                    );
                }
            }
        });
    (attn, context)
}

/// The gradient of the queries, keys and values `[rows, 3·width]` from that of the heads'
/// outputs, per sequence and head, the batch split into the fixed chunks.
fn attention_backward(d: EncoderLayerOp, tape: &Tape, dcontext: &[f32]) -> Vec<f32> {
    let (t, w, h) = (d.steps, d.width, d.heads);
    let (dk, w3) = (w / h, 3 * w);
    let divisor = (dk as f32).sqrt();
    let mut dqkv = vec![0.0; d.rows() * w3];
    let per = chunk_rows(d.batch);
    dqkv.par_chunks_mut(per * t * w3)
        .enumerate()
        .for_each(|(chunk, dqkv)| {
            let mut ds = vec![0.0; t * t];
            for local in 0..dqkv.len() / (t * w3) {
                let b = chunk * per + local;
                let qkv = &tape.qkv[b * t * w3..(b + 1) * t * w3];
                let dc = &dcontext[b * t * w..(b + 1) * t * w];
                let dqkv = &mut dqkv[local * t * w3..(local + 1) * t * w3];
                for head in 0..h {
                    let a = &tape.attn[(b * h + head) * t * t..][..t * t];
                    let col = head * dk;
                    // dA = dC·Vᵀ, dV = Aᵀ·dC.
                    matmul(
                        &mut ds,
                        View::row_major(t, t),
                        false,
                        &dc[col..],
                        View::strided(t, dk, w),
                        &qkv[2 * w + col..],
                        View::strided(t, dk, w3).t(),
                    );
                    matmul(
                        &mut dqkv[2 * w + col..],
                        View::strided(t, dk, w3),
                        false,
                        a,
                        View::row_major(t, t).t(),
                        &dc[col..],
                        View::strided(t, dk, w),
                    );
                    // Through the softmax and the 1/√d_k scale; dQ = dS·K, dK = dSᵀ·Q.
                    softmax_backward(a, &mut ds, t, divisor);
                    matmul(
                        &mut dqkv[col..],
                        View::strided(t, dk, w3),
                        false,
                        &ds,
                        View::row_major(t, t),
                        &qkv[w + col..],
                        View::strided(t, dk, w3),
                    );
                    matmul(
                        &mut dqkv[w + col..],
                        View::strided(t, dk, w3),
                        false,
                        &ds,
                        View::row_major(t, t).t(),
                        &qkv[col..],
                        View::strided(t, dk, w3),
                    );
                }
            }
        });
    dqkv
}

#[cfg(test)]
mod tests;
