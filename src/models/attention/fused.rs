//! The attention head as one fused operation on host buffers (see the parent module).

use burn::prelude::*;

use super::LastStateAttention;
use crate::models::host::{
    self, HostOp, View, affine, column_block, column_sums, exp, float, gram, matmul, parents,
    side_by_side, softmax_backward, times_transposed,
};

/// The states, then the query, key and value weights and biases.
const PARENTS: usize = 7;

/// Sizes of one call; the operation itself.
#[derive(Clone, Copy, Debug)]
struct AttentionOp {
    batch: usize,
    steps: usize,
    width: usize,
}

pub(super) fn forward<B: Backend>(
    att: &LastStateAttention<B>,
    states: Tensor<B, 3>,
) -> Option<Tensor<B, 2>> {
    let [batch, steps, width] = states.dims();
    if steps == 0 || att.query.weight.dims() != [width, width] {
        return None;
    }
    let d = AttentionOp {
        batch,
        steps,
        width,
    };
    let mut inputs = vec![float(states)];
    for l in [&att.query, &att.key, &att.value] {
        inputs.push(float(l.weight.val()));
        inputs.push(float(l.bias.as_ref()?.val()));
    }
    host::run::<B, AttentionOp, PARENTS, 2>(d, inputs)
}

impl HostOp for AttentionOp {
    type Tape = Tape;

    fn input_shapes(&self) -> Vec<Vec<usize>> {
        let w = self.width;
        vec![
            vec![self.batch, self.steps, w],
            vec![w, w],
            vec![w],
            vec![w, w],
            vec![w],
            vec![w, w],
            vec![w],
        ]
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![self.batch, self.width]
    }

    fn forward(&self, p: &[&[f32]]) -> (Vec<f32>, Tape) {
        let [states, w_q, b_q, w_k, b_k, w_v, b_v] = parents::<PARENTS>(p);
        let d = *self;
        let (t, w) = (d.steps, d.width);
        let divisor = (w as f32).sqrt();
        let last: Vec<f32> = states
            .chunks_exact(t * w)
            .flat_map(|s| s[(t - 1) * w..].iter().copied())
            .collect();
        let q = affine(&last, d.batch, w_q, b_q);
        let wkv = side_by_side(&[w_k, w_v], w);
        let kv = affine(states, d.batch * t, &wkv, &[b_k, b_v].concat());
        let mut a = vec![0.0; d.batch * t];
        let mut context = vec![0.0; d.batch * w];
        for b in 0..d.batch {
            let kv = &kv[b * t * 2 * w..];
            let a = &mut a[b * t..(b + 1) * t];
            // Scores K·q, then their softmax after the 1/√width scale; context = aᵀ·V.
            matmul(
                a,
                View::row_major(t, 1),
                false,
                kv,
                View::strided(t, w, 2 * w),
                &q[b * w..],
                View::row_major(w, 1),
            );
            // Not `host::softmax_rows`, which scales by 1/sum where this divides: the bits
            // differ, and trained runs must keep theirs.
            let max = a.iter().fold(f32::NEG_INFINITY, |m, s| m.max(*s / divisor));
            let mut sum = 0.0;
            for s in a.iter_mut() {
                *s = exp(*s / divisor - max);
                sum += *s;
            }
            for s in a.iter_mut() {
                *s /= sum;
            }
            matmul(
                &mut context[b * w..(b + 1) * w],
                View::row_major(1, w),
                false,
                a,
                View::row_major(1, t),
                &kv[w..],
                View::strided(t, w, 2 * w),
            );
        }
        let tape = Tape {
            last,
            wkv,
            q,
            kv,
            a,
        };
        (context, tape)
    }

    /// The gradients of the states and the six parameters from that of the context.
    fn backward(
        &self,
        p: &[&[f32]],
        _: &[f32],
        tape: &Tape,
        dout: &[f32],
        _: &[bool],
    ) -> Vec<Option<Vec<f32>>> {
        let [states, w_q, ..] = parents::<PARENTS>(p);
        let d = *self;
        let (t, w) = (d.steps, d.width);
        let divisor = (w as f32).sqrt();
        let mut dkv = vec![0.0; d.batch * t * 2 * w];
        let mut dq = vec![0.0; d.batch * w];
        let mut da = vec![0.0; t];
        for b in 0..d.batch {
            let kv = &tape.kv[b * t * 2 * w..];
            let dkv = &mut dkv[b * t * 2 * w..];
            let a = &tape.a[b * t..(b + 1) * t];
            let dc = &dout[b * w..(b + 1) * w];
            // da = V·dc, dV = a·dcᵀ.
            matmul(
                &mut da,
                View::row_major(t, 1),
                false,
                &kv[w..],
                View::strided(t, w, 2 * w),
                dc,
                View::row_major(w, 1),
            );
            matmul(
                &mut dkv[w..],
                View::strided(t, w, 2 * w),
                false,
                a,
                View::row_major(t, 1),
                dc,
                View::row_major(1, w),
            );
            // Through the softmax and the scale: ds = a ⊙ (da − a·da) / √width.
            softmax_backward(a, &mut da, t, divisor);
            // dq = dsᵀ·K, dK = ds·qᵀ.
            matmul(
                &mut dq[b * w..(b + 1) * w],
                View::row_major(1, w),
                false,
                &da,
                View::row_major(1, t),
                kv,
                View::strided(t, w, 2 * w),
            );
            matmul(
                dkv,
                View::strided(t, w, 2 * w),
                false,
                &da,
                View::row_major(t, 1),
                &tape.q[b * w..],
                View::row_major(1, w),
            );
        }
        let dwkv = gram(states, w, &dkv, 2 * w);
        let dbkv = column_sums(&dkv, 2 * w);
        let mut dstates = vec![0.0; d.batch * t * w];
        times_transposed(&mut dstates, false, &dkv, 2 * w, &tape.wkv);
        let mut dlast = vec![0.0; d.batch * w];
        times_transposed(&mut dlast, false, &dq, w, w_q);
        for (s, dl) in dstates.chunks_exact_mut(t * w).zip(dlast.chunks_exact(w)) {
            for (x, y) in s[(t - 1) * w..].iter_mut().zip(dl) {
                *x += y;
            }
        }
        vec![
            Some(dstates),
            Some(gram(&tape.last, w, &dq, w)),
            Some(column_sums(&dq, w)),
            Some(column_block(&dwkv, 2, w, 0)),
            Some(dbkv[..w].to_vec()),
            Some(column_block(&dwkv, 2, w, 1)),
            Some(dbkv[w..].to_vec()),
        ]
    }
}

/// What the forward pass keeps.
#[derive(Debug)]
struct Tape {
    /// The last states `[batch, width]`.
    last: Vec<f32>,
    /// The key and value weights side by side, `[width, 2·width]`.
    wkv: Vec<f32>,
    /// Queries `[batch, width]`.
    q: Vec<f32>,
    /// Keys and values of every step, `[batch·steps, 2·width]`.
    kv: Vec<f32>,
    /// Attention weights `[batch, steps]`.
    a: Vec<f32>,
}
