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
mod fused;

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
