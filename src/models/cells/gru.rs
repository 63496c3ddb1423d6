//! The GRU cell (Cho et al. 2014, PyTorch's formulation and gate order r, z, n):
//!
//! [r, z] = σ(x_t·W_x[r,z] + b_x[r,z] + h_{t−1}·W_h[r,z] + b_h[r,z]),
//! n = tanh(x_t·W_x[n] + b_x[n] + r⊙(h_{t−1}·W_h[n] + b_h[n])),  h_t = (1 − z)⊙n + z⊙h_{t−1}.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use rand_chacha::ChaCha8Rng;

use super::step;
use crate::models::init;

/// A GRU layer with fused gate weights.
#[derive(Module, Debug)]
pub struct GruCell<B: Backend> {
    /// Input weights `[inputs, 3·hidden]`, gate blocks r, z, n.
    pub input: Param<Tensor<B, 2>>,
    /// Recurrent weights `[hidden, 3·hidden]`.
    pub recurrent: Param<Tensor<B, 2>>,
    /// Input-side bias `[3·hidden]` (zero at initialisation).
    pub input_bias: Param<Tensor<B, 1>>,
    /// Recurrent-side bias `[3·hidden]`; its n block sits inside the reset gate's product.
    pub recurrent_bias: Param<Tensor<B, 1>>,
    hidden: usize,
}

impl<B: Backend> GruCell<B> {
    /// A cell with weights from U(−1/√hidden, 1/√hidden) (PyTorch's default) and zero biases.
    pub fn new(rng: &mut ChaCha8Rng, inputs: usize, hidden: usize, device: &B::Device) -> Self {
        let bound = 1.0 / (hidden as f64).sqrt();
        Self {
            input: init::uniform(rng, [inputs, 3 * hidden], bound, device),
            recurrent: init::uniform(rng, [hidden, 3 * hidden], bound, device),
            input_bias: init::zeros([3 * hidden], device),
            recurrent_bias: init::zeros([3 * hidden], device),
            hidden,
        }
    }

    /// Runs over a sequence from a zero state: the fused layer where the backend has it
    /// (the CPU backend, with or without autodiff), [`Self::forward_unfused`] elsewhere.
    ///
    /// `x`: `[batch, steps, inputs]` → every hidden state, `[batch, steps, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        super::fused::gru(
            x.clone(),
            self.input.val(),
            self.recurrent.val(),
            self.input_bias.val(),
            self.recurrent_bias.val(),
            self.hidden,
        )
        .unwrap_or_else(|| self.forward_unfused(x))
    }

    /// The straightforward forward pass, one tensor operation at a time (autodiff records
    /// each): the reference the fused layer is tested against, and the path of backends without
    /// one.
    pub fn forward_unfused(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, steps, inputs] = x.dims();
        let hid = self.hidden;
        let device = x.device();
        let gates_in = x
            .reshape([batch * steps, inputs])
            .matmul(self.input.val())
            .add(self.input_bias.val().unsqueeze_dim::<2>(0))
            .reshape([batch, steps, 3 * hid]);
        let mut h = Tensor::<B, 2>::zeros([batch, hid], &device);
        let mut outputs = Vec::with_capacity(steps);
        for k in 0..steps {
            h = self.update(step(&gates_in, k), h);
            outputs.push(h.clone());
        }
        Tensor::stack(outputs, 1)
    }

    /// One step from state `h`: `x` `[batch, inputs]` → the next `h`.
    pub fn step(&self, x: Tensor<B, 2>, h: Tensor<B, 2>) -> Tensor<B, 2> {
        let xg = x.matmul(self.input.val()) + self.input_bias.val().unsqueeze_dim::<2>(0);
        self.update(xg, h)
    }

    /// The next state from the input-side pre-activations `xg` `[batch, 3·hidden]`.
    fn update(&self, xg: Tensor<B, 2>, h: Tensor<B, 2>) -> Tensor<B, 2> {
        let hid = self.hidden;
        let hg = h.clone().matmul(self.recurrent.val())
            + self.recurrent_bias.val().unsqueeze_dim::<2>(0);
        let rz = sigmoid(xg.clone().narrow(1, 0, 2 * hid) + hg.clone().narrow(1, 0, 2 * hid));
        let r = rz.clone().narrow(1, 0, hid);
        let z = rz.narrow(1, hid, hid);
        let n = (xg.narrow(1, 2 * hid, hid) + r * hg.narrow(1, 2 * hid, hid)).tanh();
        (z.ones_like() - z.clone()) * n + z * h
    }
}
