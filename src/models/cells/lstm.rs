//! The LSTM cell (Hochreiter & Schmidhuber 1997, PyTorch's gate order i, f, g, o):
//!
//! [i, f, g, o] = x_t·W_x + h_{t−1}·W_h + b,  c_t = σ(f)⊙c_{t−1} + σ(i)⊙tanh(g),
//! h_t = σ(o)⊙tanh(c_t).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use rand_chacha::ChaCha8Rng;

use super::step;
use crate::models::init;

/// An LSTM layer with fused gate weights.
#[derive(Module, Debug)]
pub struct LstmCell<B: Backend> {
    /// Input weights `[inputs, 4·hidden]`, gate blocks i, f, g, o.
    pub input: Param<Tensor<B, 2>>,
    /// Recurrent weights `[hidden, 4·hidden]`.
    pub recurrent: Param<Tensor<B, 2>>,
    /// Gate bias `[4·hidden]` (zero at initialisation).
    pub bias: Param<Tensor<B, 1>>,
    hidden: usize,
}

impl<B: Backend> LstmCell<B> {
    /// A cell with weights from U(−1/√hidden, 1/√hidden) (PyTorch's default) and zero bias.
    pub fn new(rng: &mut ChaCha8Rng, inputs: usize, hidden: usize, device: &B::Device) -> Self {
        let bound = 1.0 / (hidden as f64).sqrt();
        Self {
            input: init::uniform(rng, [inputs, 4 * hidden], bound, device),
            recurrent: init::uniform(rng, [hidden, 4 * hidden], bound, device),
            bias: init::zeros([4 * hidden], device),
            hidden,
        }
    }

    /// Runs over a sequence from a zero state: the fused layer where the backend has it
    /// (the CPU backend, with or without autodiff), [`Self::forward_unfused`] elsewhere.
    ///
    /// `x`: `[batch, steps, inputs]` → every hidden state, `[batch, steps, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        super::fused::lstm(
            x.clone(),
            self.input.val(),
            self.recurrent.val(),
            self.bias.val(),
            self.hidden,
            false,
        )
        .unwrap_or_else(|| self.forward_unfused(x))
    }

    /// The straightforward forward pass, one tensor operation at a time (autodiff records
    /// each): the reference the fused layer is tested against, and the path of backends without
    /// one.
    pub fn forward_unfused(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.unfused_with_state(x).0
    }

    /// Runs over a sequence from a zero state: every hidden state `[batch, steps, hidden]` and
    /// the last state [h_T, c_T], each `[batch, hidden]` (what an autoregressive decoder
    /// continues from). Fused on the CPU backends.
    pub fn forward_with_state(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, [Tensor<B, 2>; 2]) {
        let [batch, steps, _] = x.dims();
        let fused = super::fused::lstm(
            x.clone(),
            self.input.val(),
            self.recurrent.val(),
            self.bias.val(),
            self.hidden,
            true,
        );
        match fused {
            Some(out) => {
                let h = out.clone().narrow(1, 0, steps);
                let c = out.narrow(1, steps, 1).reshape([batch, self.hidden]);
                let last = h
                    .clone()
                    .narrow(1, steps - 1, 1)
                    .reshape([batch, self.hidden]);
                (h, [last, c])
            }
            None => self.unfused_with_state(x),
        }
    }

    /// One step from state [h, c]: `x` `[batch, inputs]` → the next [h, c].
    pub fn step(&self, x: Tensor<B, 2>, [h, c]: [Tensor<B, 2>; 2]) -> [Tensor<B, 2>; 2] {
        let gates = x.matmul(self.input.val())
            + self.bias.val().unsqueeze_dim::<2>(0)
            + h.matmul(self.recurrent.val());
        Self::gate_math(gates, c)
    }

    /// [h, c] from the pre-activations `[batch, 4·hidden]` and the previous cell state.
    fn gate_math(gates: Tensor<B, 2>, c: Tensor<B, 2>) -> [Tensor<B, 2>; 2] {
        let [i, f, g, o]: [Tensor<B, 2>; 4] = gates
            .chunk(4, 1)
            .try_into()
            .expect("four gate blocks should split evenly");
        let c = sigmoid(f) * c + sigmoid(i) * g.tanh();
        [sigmoid(o) * c.clone().tanh(), c]
    }

    pub(super) fn unfused_with_state(&self, x: Tensor<B, 3>) -> (Tensor<B, 3>, [Tensor<B, 2>; 2]) {
        let [batch, steps, inputs] = x.dims();
        let device = x.device();
        let gates_in = x
            .reshape([batch * steps, inputs])
            .matmul(self.input.val())
            .add(self.bias.val().unsqueeze_dim::<2>(0))
            .reshape([batch, steps, 4 * self.hidden]);
        let recurrent = self.recurrent.val();
        let mut h = Tensor::<B, 2>::zeros([batch, self.hidden], &device);
        let mut c = Tensor::<B, 2>::zeros([batch, self.hidden], &device);
        let mut outputs = Vec::with_capacity(steps);
        for k in 0..steps {
            let gates = step(&gates_in, k) + h.matmul(recurrent.clone());
            [h, c] = Self::gate_math(gates, c);
            outputs.push(h.clone());
        }
        (Tensor::stack(outputs, 1), [h, c])
    }
}
