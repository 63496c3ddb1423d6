//! Host kernels of the fused LSTM and GRU layers: the whole sequence forward, and
//! back-propagation through time by hand, on plain `f32` slices.
//!
//! Layouts are batch-major, as the layers' tensors: `x` is `[batch, steps, inputs]`, the hidden
//! states `[batch, steps, hidden]`, the gate buffers `[batch, steps, gates·hidden]`; weights are
//! `[inputs, gates·hidden]` and `[hidden, gates·hidden]` (row-major, as the cells store them).
//! Every matrix product goes through the `gemm` crate (the kernels Burn's Flex backend uses); the
//! gate math is one pass per step over `[batch, hidden]` with a vectorisable `exp`.
//!
//! The forward pass keeps what the backward pass needs (gate activations, cell states), so a
//! training step costs one pass each way: per step one `[batch, hidden] × [hidden, gates·hidden]`
//! product forward and one `[batch, gates·hidden] × [gates·hidden, hidden]` product backward; the
//! input projection, the weight gradients and the input gradient are one product each over all
//! steps at once.

mod gru;
mod lstm;

pub use gru::{GruTape, gru_backward, gru_forward};
pub use lstm::{LstmTape, lstm_backward, lstm_forward};

use crate::models::host::{View, exp, gram, matmul};

/// Sizes of one recurrent layer call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnSizes {
    /// Sequences in the batch.
    pub batch: usize,
    /// Time steps.
    pub steps: usize,
    /// Input width.
    pub inputs: usize,
    /// Hidden width.
    pub hidden: usize,
}

impl RnnSizes {
    pub(super) fn rows(&self) -> usize {
        self.batch * self.steps
    }
}

/// The logistic function 1/(1 + e^−x).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh(x) = 1 − 2/(1 + e^2x), to about 1e−7 absolute.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

/// The hidden states shifted one step later: row `(b, t)` holds `h[b, t−1]`, zero at `t = 0`.
pub(super) fn previous_states(h: &[f32], d: RnnSizes) -> Vec<f32> {
    let mut out = vec![0.0; h.len()];
    let seq = d.steps * d.hidden;
    for b in 0..d.batch {
        let start = b * seq;
        out[start + d.hidden..start + seq].copy_from_slice(&h[start..start + seq - d.hidden]);
    }
    out
}

/// Gradients of one recurrent layer call.
#[derive(Clone, Debug)]
pub struct Grads {
    /// Of the input, `[batch, steps, inputs]` (only when asked for).
    pub x: Option<Vec<f32>>,
    /// Of the input weights.
    pub input: Vec<f32>,
    /// Of the recurrent weights.
    pub recurrent: Vec<f32>,
    /// Of the bias (the LSTM's only bias; the GRU's input-side bias).
    pub bias: Vec<f32>,
    /// Of the GRU's recurrent-side bias (empty for the LSTM).
    pub recurrent_bias: Vec<f32>,
}

/// The products over all steps at once: dW_h = H_prevᵀ·dG_h, dW_x = Xᵀ·dG_x and
/// (when wanted) dX = dG_x·W_xᵀ.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grads(
    d: RnnSizes,
    gates: usize,
    x: &[f32],
    input: &[f32],
    h_prev: &[f32],
    dg_h: &[f32],
    dg_x: &[f32],
    want_dx: bool,
) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let rows = d.rows();
    let recurrent_grad = gram(h_prev, d.hidden, dg_h, gates);
    let input_grad = gram(x, d.inputs, dg_x, gates);
    let dx = want_dx.then(|| {
        let mut dx = vec![0.0f32; rows * d.inputs];
        matmul(
            &mut dx,
            View::row_major(rows, d.inputs),
            false,
            dg_x,
            View::row_major(rows, gates),
            input,
            View::row_major(d.inputs, gates).t(),
        );
        dx
    });
    (recurrent_grad, input_grad, dx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_library_to_a_few_ulp() {
        for k in -8700..=8800 {
            let x = k as f32 * 0.01;
            let (ours, std) = (exp(x), x.exp());
            assert!(
                (ours - std).abs() <= 4.0 * f32::EPSILON * std,
                "exp({x}): {ours} vs {std}"
            );
        }
    }

    #[test]
    fn sigmoid_and_tanh_match_the_library() {
        for k in -2000..=2000 {
            let x = k as f32 * 0.01;
            assert!(
                (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 2.5e-7,
                "σ({x})"
            );
            assert!((tanh(x) - x.tanh()).abs() < 2.5e-7, "tanh({x})");
        }
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
        assert_eq!(sigmoid(-200.0).min(1e-30), sigmoid(-200.0));
    }

    #[test]
    fn strided_matmul_matches_a_naive_product() {
        // lhs: rows 0 and 2 of a [3, 2] buffer; rhs: the transpose of a [3, 2] buffer.
        let lhs = [1.0, 2.0, 9.0, 9.0, 3.0, 4.0];
        let rhs = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]; // [3, 2] → rhsᵀ = [[1, 2, 3], [4, 5, 6]]
        let mut dst = vec![1.0f32; 6];
        matmul(
            &mut dst,
            View::row_major(2, 3),
            true,
            &lhs,
            View::strided(2, 2, 4),
            &rhs,
            View::row_major(3, 2).t(),
        );
        assert_eq!(dst, [10.0, 13.0, 16.0, 20.0, 27.0, 34.0]);
    }
}
