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

    /// `states`: `[batch, steps, width]` → context `[batch, width]`.
    pub fn forward(&self, states: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, steps, width] = states.dims();
        let last = states.clone().narrow(1, steps - 1, 1); // [batch, 1, width]
        let q = self.query.forward(last);
        let k = self.key.forward(states.clone());
        let v = self.value.forward(states);
        let scores = q.matmul(k.swap_dims(1, 2)) / (self.width as f64).sqrt(); // [batch, 1, steps]
        softmax(scores, 2).matmul(v).reshape([batch, width])
    }
}
