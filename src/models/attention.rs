//! Scaled dot-product attention of the last hidden state over all hidden states (SPEC.md §4):
//! q = W_q·h_L, k_t = W_k·h_t, v_t = W_v·h_t, context = softmax(q·kᵀ/√width)·v.

use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand_chacha::ChaCha8Rng;

use super::init;

/// Learned query, key and value projections of width `width`.
#[derive(Module, Debug)]
pub struct LastStateAttention<B: Backend> {
    /// Query projection `[width, width]`.
    pub query: Linear<B>,
    /// Key projection `[width, width]`.
    pub key: Linear<B>,
    /// Value projection `[width, width]`.
    pub value: Linear<B>,
    width: usize,
}

impl<B: Backend> LastStateAttention<B> {
    /// Projections initialised like PyTorch's `Linear` (U(±1/√width)), zero biases.
    pub fn new(rng: &mut ChaCha8Rng, width: usize, device: &B::Device) -> Self {
        Self {
            query: init::linear(rng, width, width, device),
            key: init::linear(rng, width, width, device),
            value: init::linear(rng, width, width, device),
            width,
        }
    }

    /// `states`: `[batch, steps, width]` → context `[batch, width]`. One fused operation on
    /// the CPU backend; [`Self::forward_reference`] elsewhere.
    pub fn forward(&self, states: Tensor<B, 3>) -> Tensor<B, 2> {
        fused::forward(self, states.clone()).unwrap_or_else(|| self.forward_reference(states))
    }

    /// The attention as Burn tensor operations: the straightforward form, the reference the
    /// fused one is tested against.
    pub fn forward_reference(&self, states: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, steps, width] = states.dims();
        let last = states.clone().narrow(1, steps - 1, 1); // [batch, 1, width]
        let q = self.query.forward(last);
        let k = self.key.forward(states.clone());
        let v = self.value.forward(states);
        let scores = q.matmul(k.swap_dims(1, 2)) / (self.width as f64).sqrt(); // [batch, 1, steps]
        softmax(scores, 2).matmul(v).reshape([batch, width])
    }
}

/// The fused attention head, when the backend has it (the CPU backend, with or without
/// autodiff): one Burn operation on host buffers instead of a dozen tensor operations, whose
/// broadcast bias additions and transposes the CPU backend walks element by element. The key
/// and value projections of all steps are one matrix product; the backward pass is written out
/// by hand (one node on the tape). Other backends get `None`.
mod fused {
    use burn::prelude::*;

    use super::LastStateAttention;
    use crate::models::host::{
        self, HostOp, View, affine, column_block, column_sums, exp, float, gram, matmul,
        side_by_side, times_transposed,
    };

    /// The states, then the query, key and value weights and biases.
    const PARENTS: usize = 7;

    /// Sizes of one call; the operation itself.
    #[derive(Clone, Copy, Debug)]
    struct Dims {
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
        let d = Dims {
            batch,
            steps,
            width,
        };
        let mut inputs = vec![float(states)];
        for l in [&att.query, &att.key, &att.value] {
            inputs.push(float(l.weight.val()));
            inputs.push(float(l.bias.as_ref()?.val()));
        }
        host::run::<B, Dims, PARENTS, 2>(d, inputs)
    }

    impl HostOp for Dims {
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
            let d = *self;
            let (t, w) = (d.steps, d.width);
            let divisor = (w as f32).sqrt();
            let last: Vec<f32> = p[0]
                .chunks_exact(t * w)
                .flat_map(|s| s[(t - 1) * w..].iter().copied())
                .collect();
            let q = affine(&last, d.batch, p[1], p[2]);
            let wkv = side_by_side(&[p[3], p[5]], w);
            let kv = affine(p[0], d.batch * t, &wkv, &[p[4], p[6]].concat());
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
                let dot: f32 = a.iter().zip(&da).map(|(a, d)| a * d).sum();
                for (d, a) in da.iter_mut().zip(a) {
                    *d = a * (*d - dot) / divisor;
                }
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
            let dwkv = gram(p[0], w, &dkv, 2 * w);
            let dbkv = column_sums(&dkv, 2 * w);
            let mut dstates = vec![0.0; d.batch * t * w];
            times_transposed(&mut dstates, false, &dkv, 2 * w, &tape.wkv);
            let mut dlast = vec![0.0; d.batch * w];
            times_transposed(&mut dlast, false, &dq, w, p[1]);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use rand::SeedableRng;

    use crate::models::testing::{Randomise, assert_close, param_grads, random};

    type A = Autodiff<Flex>;

    /// The fused head agrees with the tensor-operation form on random states, parameters
    /// (biases included) and output gradients: the context, the states' gradient and all six
    /// parameter gradients; a one-step window too; without autodiff too.
    #[test]
    fn fused_attention_matches_the_reference() {
        for (batch, steps, width) in [(3, 7, 5), (2, 1, 4), (4, 12, 16)] {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let att = LastStateAttention::<A>::new(&mut rng, width, &Default::default())
                .map(&mut Randomise::new(4, 0.8));
            let states = random::<A, 3>(&mut rng, [batch, steps, width], 1.5).require_grad();
            let weight = random::<A, 2>(&mut rng, [batch, width], 1.5);
            assert!(
                fused::forward(&att, states.clone()).is_some(),
                "fused on the CPU"
            );
            let run = |fused: bool| {
                let c = if fused {
                    att.forward(states.clone())
                } else {
                    att.forward_reference(states.clone())
                };
                let grads = (c.clone() * weight.clone()).sum().backward();
                let mut out = vec![
                    c.into_data().to_vec::<f32>().unwrap(),
                    states.grad(&grads).unwrap().into_data().to_vec().unwrap(),
                ];
                out.extend(param_grads(&att, &grads));
                out
            };
            let (fused, reference) = (run(true), run(false));
            assert_eq!(fused.len(), 8);
            // The floor is a part of the largest gradient: the key bias's gradient is zero but
            // for rounding (a shift of all scores alike does not change the softmax).
            let largest = reference
                .iter()
                .flatten()
                .fold(0.0f32, |m, v| m.max(v.abs()));
            for (i, (a, r)) in fused.iter().zip(&reference).enumerate() {
                let what = format!("[{batch}, {steps}, {width}] tensor {i}");
                assert_close(&what, a, r, 1e-6 * largest);
            }
            let plain = LastStateAttention::<Flex>::new(&mut rng, width, &Default::default())
                .map(&mut Randomise::new(4, 0.8));
            let s = states.inner();
            let (a, r) = (
                plain
                    .forward(s.clone())
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap(),
                plain
                    .forward_reference(s)
                    .into_data()
                    .to_vec::<f32>()
                    .unwrap(),
            );
            for (x, y) in a.iter().zip(&r) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
    }
}
