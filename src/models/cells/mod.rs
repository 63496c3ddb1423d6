//! Our own recurrent cells, each with one fused gate projection: the input projection of all
//! steps is one matrix product, and each step adds one `[batch, hidden] × [hidden, gates·hidden]`
//! product. The bio mechanisms and the performance work reach inside these cells.

mod gru;
mod lstm;

pub use gru::GruCell;
pub use lstm::LstmCell;

use burn::prelude::*;

/// A recurrent layer: LSTM or GRU.
#[derive(Module, Debug)]
pub enum RecurrentCell<B: Backend> {
    /// Long short-term memory.
    Lstm(LstmCell<B>),
    /// Gated recurrent unit.
    Gru(GruCell<B>),
}

impl<B: Backend> RecurrentCell<B> {
    /// Runs the layer over a sequence from a zero state.
    ///
    /// `x`: `[batch, steps, inputs]` → every hidden state, `[batch, steps, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self {
            RecurrentCell::Lstm(cell) => cell.forward(x),
            RecurrentCell::Gru(cell) => cell.forward(x),
        }
    }
}

/// Step `k` of `[batch, steps, width]` as `[batch, width]`.
fn step<B: Backend>(x: &Tensor<B, 3>, k: usize) -> Tensor<B, 2> {
    x.clone().narrow(1, k, 1).squeeze_dim::<2>(1)
}
