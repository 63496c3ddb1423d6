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

use crate::models::host::{
    View, affine_into, chunk_rows, column_sums, exp, gram, matmul, multiversion, transposed,
};

/// Sizes of one recurrent layer call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Sequences in the batch.
    pub batch: usize,
    /// Time steps.
    pub steps: usize,
    /// Input width.
    pub inputs: usize,
    /// Hidden width.
    pub hidden: usize,
}

impl Dims {
    fn rows(&self) -> usize {
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
fn previous_states(h: &[f32], d: Dims) -> Vec<f32> {
    let mut out = vec![0.0; h.len()];
    let seq = d.steps * d.hidden;
    for b in 0..d.batch {
        let start = b * seq;
        out[start + d.hidden..start + seq].copy_from_slice(&h[start..start + seq - d.hidden]);
    }
    out
}
/// What the LSTM forward pass keeps for back-propagation.
#[derive(Clone, Debug)]
pub struct LstmTape {
    /// Gate activations σ(i), σ(f), tanh(g), σ(o), `[batch, steps, 4·hidden]`.
    acts: Vec<f32>,
    /// Cell states c_t, `[batch, steps, hidden]`.
    cells: Vec<f32>,
    /// tanh(c_t), `[batch, steps, hidden]`.
    tanh_cells: Vec<f32>,
}

impl LstmTape {
    /// The last cell state of every sequence, `[batch, hidden]`.
    pub fn last_cells(&self, d: Dims) -> Vec<f32> {
        let hid = d.hidden;
        (0..d.batch)
            .flat_map(|b| {
                let row = b * d.steps + d.steps - 1;
                self.cells[row * hid..(row + 1) * hid].iter().copied()
            })
            .collect()
    }
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

/// LSTM over whole sequences from a zero state (gate order i, f, g, o): every hidden state
/// `[batch, steps, hidden]` and the tape for [`lstm_backward`].
pub fn lstm_forward(
    d: Dims,
    x: &[f32],
    input: &[f32],
    recurrent: &[f32],
    bias: &[f32],
) -> (Vec<f32>, LstmTape) {
    use rayon::prelude::*;
    let (hid, steps) = (d.hidden, d.steps);
    let g4 = 4 * hid;
    let rows = d.rows();
    assert_eq!(x.len(), rows * d.inputs, "lstm input size");
    assert_eq!(input.len(), d.inputs * g4, "lstm input weight size");
    assert_eq!(recurrent.len(), hid * g4, "lstm recurrent weight size");
    assert_eq!(bias.len(), g4, "lstm bias size");
    let mut h = vec![0.0f32; rows * hid];
    let mut acts = vec![0.0f32; rows * g4];
    let mut cells = vec![0.0f32; rows * hid];
    let mut tanh_cells = vec![0.0f32; rows * hid];
    let n = chunk_rows(d.batch) * steps;
    h.par_chunks_mut(n * hid)
        .zip(acts.par_chunks_mut(n * g4))
        .zip(cells.par_chunks_mut(n * hid))
        .zip(tanh_cells.par_chunks_mut(n * hid))
        .zip(x.par_chunks(n * d.inputs))
        .for_each(|((((h, acts), cells), tanh_cells), x)| {
            let d = Dims {
                batch: h.len() / (steps * hid),
                ..d
            };
            lstm_forward_chunk(d, x, input, recurrent, bias, h, acts, cells, tanh_cells);
        });
    (
        h,
        LstmTape {
            acts,
            cells,
            tanh_cells,
        },
    )
}

multiversion! {
    /// [`lstm_forward`] for one chunk of sequences, on one thread.
    fn lstm_forward_chunk(
        d: Dims,
        x: &[f32],
        input: &[f32],
        recurrent: &[f32],
        bias: &[f32],
        h: &mut [f32],
        acts: &mut [f32],
        cells: &mut [f32],
        tanh_cells: &mut [f32],
    ) {
        let (hid, steps) = (d.hidden, d.steps);
        let g4 = 4 * hid;
        // The input projection of every step at once, bias included.
        affine_into(acts, x, input, bias);
        let zeros = vec![0.0f32; hid];
        for t in 0..steps {
            if t > 0 {
                matmul(
                    &mut acts[t * g4..],
                    View::strided(d.batch, g4, steps * g4),
                    true,
                    &h[(t - 1) * hid..],
                    View::strided(d.batch, hid, steps * hid),
                    recurrent,
                    View::row_major(hid, g4),
                );
            }
            for b in 0..d.batch {
                let row = b * steps + t;
                let (done, rest) = cells.split_at_mut(row * hid);
                let c_prev = if t > 0 {
                    &done[(row - 1) * hid..]
                } else {
                    &zeros[..]
                };
                let c = &mut rest[..hid];
                let tc = &mut tanh_cells[row * hid..(row + 1) * hid];
                let h_row = &mut h[row * hid..(row + 1) * hid];
                let a = &mut acts[row * g4..(row + 1) * g4];
                let (ai, a) = a.split_at_mut(hid);
                let (af, a) = a.split_at_mut(hid);
                let (ag, ao) = a.split_at_mut(hid);
                lstm_forward_row(ai, af, ag, ao, c_prev, c, tc, h_row);
            }
        }
    }
}

/// Back-propagation through time of [`lstm_forward`]: `h` is its output, `dh` the gradient of
/// the loss with respect to it, and `dc_last` (`[batch, hidden]`, when the last cell state is an
/// output too) the gradient with respect to the last cell state.
#[allow(clippy::too_many_arguments)]
pub fn lstm_backward(
    d: Dims,
    x: &[f32],
    input: &[f32],
    recurrent: &[f32],
    h: &[f32],
    tape: &LstmTape,
    dh: &[f32],
    dc_last: Option<&[f32]>,
    want_dx: bool,
) -> Grads {
    use rayon::prelude::*;
    let (hid, steps) = (d.hidden, d.steps);
    let g4 = 4 * hid;
    let rows = d.rows();
    assert_eq!(dh.len(), rows * hid, "lstm output gradient size");
    let zeros;
    let dc_last = match dc_last {
        Some(dc) => dc,
        None => {
            zeros = vec![0.0f32; d.batch * hid];
            &zeros[..]
        }
    };
    assert_eq!(
        dc_last.len(),
        d.batch * hid,
        "lstm cell-state gradient size"
    );
    let mut da = vec![0.0f32; rows * g4];
    // W_hᵀ laid out row-major once: gemm packs a transposed view far more slowly, and the
    // recurrence multiplies by it at every step.
    let recurrent_t = transposed(recurrent, hid, g4);
    let n = chunk_rows(d.batch) * steps;
    da.par_chunks_mut(n * g4)
        .zip(tape.acts.par_chunks(n * g4))
        .zip(tape.cells.par_chunks(n * hid))
        .zip(tape.tanh_cells.par_chunks(n * hid))
        .zip(dh.par_chunks(n * hid))
        .zip(dc_last.par_chunks(chunk_rows(d.batch) * hid))
        .for_each(|(((((da, acts), cells), tanh_cells), dh), dc_last)| {
            let d = Dims {
                batch: dh.len() / (steps * hid),
                ..d
            };
            lstm_backward_chunk(d, &recurrent_t, acts, cells, tanh_cells, dh, dc_last, da);
        });
    let h_prev = previous_states(h, d);
    let (recurrent_grad, input_grad, dx) =
        weight_grads(d, g4, x, input, &h_prev, &da, &da, want_dx);
    Grads {
        x: dx,
        input: input_grad,
        recurrent: recurrent_grad,
        bias: column_sums(&da, g4),
        recurrent_bias: Vec::new(),
    }
}

multiversion! {
    /// The gate gradients `da` of [`lstm_backward`] for one chunk of sequences, on one thread.
    fn lstm_backward_chunk(
        d: Dims,
        recurrent_t: &[f32],
        acts: &[f32],
        cells: &[f32],
        tanh_cells: &[f32],
        dh: &[f32],
        dc_last: &[f32],
        da: &mut [f32],
    ) {
        let (hid, steps) = (d.hidden, d.steps);
        let g4 = 4 * hid;
        let mut dh_next = vec![0.0f32; d.batch * hid];
        let mut dc_next = dc_last.to_vec();
        let zeros = vec![0.0f32; hid];
        for t in (0..steps).rev() {
            if t + 1 < steps {
                // dh_t from the recurrence: dA_{t+1}·W_hᵀ.
                matmul(
                    &mut dh_next,
                    View::row_major(d.batch, hid),
                    false,
                    &da[(t + 1) * g4..],
                    View::strided(d.batch, g4, steps * g4),
                    recurrent_t,
                    View::row_major(g4, hid),
                );
            }
            for b in 0..d.batch {
                let row = b * steps + t;
                let a = &acts[row * g4..(row + 1) * g4];
                let (ai, a) = a.split_at(hid);
                let (af, a) = a.split_at(hid);
                let (ag, ao) = a.split_at(hid);
                let c_prev = if t > 0 {
                    &cells[(row - 1) * hid..row * hid]
                } else {
                    &zeros[..]
                };
                let tc = &tanh_cells[row * hid..(row + 1) * hid];
                let dh_row = &dh[row * hid..(row + 1) * hid];
                let dhn = &dh_next[b * hid..(b + 1) * hid];
                let dcn = &mut dc_next[b * hid..(b + 1) * hid];
                let g = &mut da[row * g4..(row + 1) * g4];
                let (gi, g) = g.split_at_mut(hid);
                let (gf, g) = g.split_at_mut(hid);
                let (gg, go) = g.split_at_mut(hid);
                lstm_backward_row(
                    [ai, af, ag, ao],
                    c_prev,
                    tc,
                    dh_row,
                    dhn,
                    dcn,
                    [gi, gf, gg, go],
                );
            }
        }
    }
}

/// The products over all steps at once: dW_h = H_prevᵀ·dG_h, dW_x = Xᵀ·dG_x and
/// (when wanted) dX = dG_x·W_xᵀ.
#[allow(clippy::too_many_arguments)]
fn weight_grads(
    d: Dims,
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

/// What the GRU forward pass keeps for back-propagation.
#[derive(Clone, Debug)]
pub struct GruTape {
    /// Gate activations σ(r), σ(z), n, `[batch, steps, 3·hidden]`.
    acts: Vec<f32>,
    /// The recurrent n pre-activation h_{t−1}·W_h[n] + b_h[n], `[batch, steps, hidden]`.
    hidden_n: Vec<f32>,
}

/// GRU over whole sequences from a zero state (PyTorch's formulation, gate order r, z, n):
/// every hidden state `[batch, steps, hidden]` and the tape for [`gru_backward`].
pub fn gru_forward(
    d: Dims,
    x: &[f32],
    input: &[f32],
    recurrent: &[f32],
    input_bias: &[f32],
    recurrent_bias: &[f32],
) -> (Vec<f32>, GruTape) {
    use rayon::prelude::*;
    let (hid, steps) = (d.hidden, d.steps);
    let g3 = 3 * hid;
    let rows = d.rows();
    assert_eq!(x.len(), rows * d.inputs, "gru input size");
    assert_eq!(input.len(), d.inputs * g3, "gru input weight size");
    assert_eq!(recurrent.len(), hid * g3, "gru recurrent weight size");
    assert_eq!(input_bias.len(), g3, "gru input bias size");
    assert_eq!(recurrent_bias.len(), g3, "gru recurrent bias size");
    let mut h = vec![0.0f32; rows * hid];
    let mut acts = vec![0.0f32; rows * g3];
    let mut hidden_n = vec![0.0f32; rows * hid];
    let n = chunk_rows(d.batch) * steps;
    h.par_chunks_mut(n * hid)
        .zip(acts.par_chunks_mut(n * g3))
        .zip(hidden_n.par_chunks_mut(n * hid))
        .zip(x.par_chunks(n * d.inputs))
        .for_each(|(((h, acts), hidden_n), x)| {
            let d = Dims {
                batch: h.len() / (steps * hid),
                ..d
            };
            gru_forward_chunk(
                d,
                x,
                input,
                recurrent,
                input_bias,
                recurrent_bias,
                h,
                acts,
                hidden_n,
            );
        });
    (h, GruTape { acts, hidden_n })
}

multiversion! {
    /// [`gru_forward`] for one chunk of sequences, on one thread.
    fn gru_forward_chunk(
        d: Dims,
        x: &[f32],
        input: &[f32],
        recurrent: &[f32],
        input_bias: &[f32],
        recurrent_bias: &[f32],
        h: &mut [f32],
        acts: &mut [f32],
        hidden_n: &mut [f32],
    ) {
        let (hid, steps) = (d.hidden, d.steps);
        let g3 = 3 * hid;
        // The input projection of every step at once, bias included.
        affine_into(acts, x, input, input_bias);
        let mut hg = vec![0.0f32; d.batch * g3];
        let zeros = vec![0.0f32; hid];
        for t in 0..steps {
            for row in hg.chunks_exact_mut(g3) {
                row.copy_from_slice(recurrent_bias);
            }
            if t > 0 {
                matmul(
                    &mut hg,
                    View::row_major(d.batch, g3),
                    true,
                    &h[(t - 1) * hid..],
                    View::strided(d.batch, hid, steps * hid),
                    recurrent,
                    View::row_major(hid, g3),
                );
            }
            for b in 0..d.batch {
                let row = b * steps + t;
                let (done, rest) = h.split_at_mut(row * hid);
                let h_prev = if t > 0 {
                    &done[(row - 1) * hid..]
                } else {
                    &zeros[..]
                };
                let h_row = &mut rest[..hid];
                let hn_row = &mut hidden_n[row * hid..(row + 1) * hid];
                let hgb = &hg[b * g3..(b + 1) * g3];
                let (hr, hgb) = hgb.split_at(hid);
                let (hz, hn) = hgb.split_at(hid);
                let a = &mut acts[row * g3..(row + 1) * g3];
                let (ar, a) = a.split_at_mut(hid);
                let (az, an) = a.split_at_mut(hid);
                gru_forward_row([ar, az, an], [hr, hz, hn], h_prev, hn_row, h_row);
            }
        }
    }
}

/// Back-propagation through time of [`gru_forward`]: `h` is its output, `dh` the gradient of
/// the loss with respect to it.
#[allow(clippy::too_many_arguments)]
pub fn gru_backward(
    d: Dims,
    x: &[f32],
    input: &[f32],
    recurrent: &[f32],
    h: &[f32],
    tape: &GruTape,
    dh: &[f32],
    want_dx: bool,
) -> Grads {
    use rayon::prelude::*;
    let (hid, steps) = (d.hidden, d.steps);
    let g3 = 3 * hid;
    let rows = d.rows();
    assert_eq!(dh.len(), rows * hid, "gru output gradient size");
    // Gradients of the input-side and recurrent-side pre-activations; they differ only in the
    // n block, where the recurrent side sits inside the reset gate's product.
    let mut dgx = vec![0.0f32; rows * g3];
    let mut dgh = vec![0.0f32; rows * g3];
    let recurrent_t = transposed(recurrent, hid, g3);
    let n = chunk_rows(d.batch) * steps;
    dgx.par_chunks_mut(n * g3)
        .zip(dgh.par_chunks_mut(n * g3))
        .zip(tape.acts.par_chunks(n * g3))
        .zip(tape.hidden_n.par_chunks(n * hid))
        .zip(h.par_chunks(n * hid))
        .zip(dh.par_chunks(n * hid))
        .for_each(|(((((dgx, dgh), acts), hidden_n), h), dh)| {
            let d = Dims {
                batch: dh.len() / (steps * hid),
                ..d
            };
            gru_backward_chunk(d, &recurrent_t, acts, hidden_n, h, dh, dgx, dgh);
        });
    let h_prev = previous_states(h, d);
    let (recurrent_grad, input_grad, dx) =
        weight_grads(d, g3, x, input, &h_prev, &dgh, &dgx, want_dx);
    Grads {
        x: dx,
        input: input_grad,
        recurrent: recurrent_grad,
        bias: column_sums(&dgx, g3),
        recurrent_bias: column_sums(&dgh, g3),
    }
}

multiversion! {
    /// The pre-activation gradients of [`gru_backward`] for one chunk of sequences, on one
    /// thread.
    fn gru_backward_chunk(
        d: Dims,
        recurrent_t: &[f32],
        acts: &[f32],
        hidden_n: &[f32],
        h: &[f32],
        dh: &[f32],
        dgx: &mut [f32],
        dgh: &mut [f32],
    ) {
        let (hid, steps) = (d.hidden, d.steps);
        let g3 = 3 * hid;
        let mut dh_next = vec![0.0f32; d.batch * hid];
        let zeros = vec![0.0f32; hid];
        for t in (0..steps).rev() {
            for b in 0..d.batch {
                let row = b * steps + t;
                let a = &acts[row * g3..(row + 1) * g3];
                let (ar, a) = a.split_at(hid);
                let (az, an) = a.split_at(hid);
                let hn = &hidden_n[row * hid..(row + 1) * hid];
                let h_prev = if t > 0 {
                    &h[(row - 1) * hid..row * hid]
                } else {
                    &zeros[..]
                };
                let dh_row = &dh[row * hid..(row + 1) * hid];
                let dhn = &mut dh_next[b * hid..(b + 1) * hid];
                let gx = &mut dgx[row * g3..(row + 1) * g3];
                let (gxr, gx) = gx.split_at_mut(hid);
                let (gxz, gxn) = gx.split_at_mut(hid);
                let gxn = &mut gxn[..hid];
                let gh = &mut dgh[row * g3..(row + 1) * g3];
                let (ghr, gh) = gh.split_at_mut(hid);
                let (ghz, ghn) = gh.split_at_mut(hid);
                gru_backward_row(
                    [ar, az, an],
                    hn,
                    h_prev,
                    dh_row,
                    dhn,
                    [gxr, gxz, gxn],
                    [ghr, ghz, ghn],
                );
            }
            if t > 0 {
                // dh_{t−1} += dG_h,t·W_hᵀ.
                matmul(
                    &mut dh_next,
                    View::row_major(d.batch, hid),
                    true,
                    &dgh[t * g3..],
                    View::strided(d.batch, g3, steps * g3),
                    recurrent_t,
                    View::row_major(g3, hid),
                );
            }
        }
    }
}

// The gate math of one sequence at one step. Each function first cuts every slice to the same
// length, so the compiler drops the bounds checks and vectorises the loop.

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_forward_row(
    ai: &mut [f32],
    af: &mut [f32],
    ag: &mut [f32],
    ao: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
) {
    let n = ai.len();
    let (af, ag, ao) = (&mut af[..n], &mut ag[..n], &mut ao[..n]);
    let (c_prev, c, tc, h) = (&c_prev[..n], &mut c[..n], &mut tc[..n], &mut h[..n]);
    for j in 0..n {
        let i = sigmoid(ai[j]);
        let f = sigmoid(af[j]);
        let g = tanh(ag[j]);
        let o = sigmoid(ao[j]);
        let cj = f * c_prev[j] + i * g;
        let tcj = tanh(cj);
        ai[j] = i;
        af[j] = f;
        ag[j] = g;
        ao[j] = o;
        c[j] = cj;
        tc[j] = tcj;
        h[j] = o * tcj;
    }
}

#[inline(always)]
fn lstm_backward_row(
    [ai, af, ag, ao]: [&[f32]; 4],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dh_next: &[f32],
    dc_next: &mut [f32],
    [gi, gf, gg, go]: [&mut [f32]; 4],
) {
    let n = ai.len();
    let (af, ag, ao) = (&af[..n], &ag[..n], &ao[..n]);
    let (c_prev, tc, dh, dh_next, dc_next) = (
        &c_prev[..n],
        &tc[..n],
        &dh[..n],
        &dh_next[..n],
        &mut dc_next[..n],
    );
    let (gi, gf, gg, go) = (&mut gi[..n], &mut gf[..n], &mut gg[..n], &mut go[..n]);
    for j in 0..n {
        let (i, f, g, o) = (ai[j], af[j], ag[j], ao[j]);
        let dhj = dh[j] + dh_next[j];
        let dc = dhj * o * (1.0 - tc[j] * tc[j]) + dc_next[j];
        gi[j] = dc * g * i * (1.0 - i);
        gf[j] = dc * c_prev[j] * f * (1.0 - f);
        gg[j] = dc * i * (1.0 - g * g);
        go[j] = dhj * tc[j] * o * (1.0 - o);
        dc_next[j] = dc * f;
    }
}

#[inline(always)]
fn gru_forward_row(
    [ar, az, an]: [&mut [f32]; 3],
    [hr, hz, hn]: [&[f32]; 3],
    h_prev: &[f32],
    hn_out: &mut [f32],
    h: &mut [f32],
) {
    let n = ar.len();
    let (az, an, hr, hz, hn) = (&mut az[..n], &mut an[..n], &hr[..n], &hz[..n], &hn[..n]);
    let (h_prev, hn_out, h) = (&h_prev[..n], &mut hn_out[..n], &mut h[..n]);
    for j in 0..n {
        let r = sigmoid(ar[j] + hr[j]);
        let z = sigmoid(az[j] + hz[j]);
        let nj = tanh(an[j] + r * hn[j]);
        ar[j] = r;
        az[j] = z;
        an[j] = nj;
        hn_out[j] = hn[j];
        h[j] = (1.0 - z) * nj + z * h_prev[j];
    }
}

#[inline(always)]
fn gru_backward_row(
    [ar, az, an]: [&[f32]; 3],
    hn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dh_next: &mut [f32],
    [gxr, gxz, gxn]: [&mut [f32]; 3],
    [ghr, ghz, ghn]: [&mut [f32]; 3],
) {
    let n = ar.len();
    let (az, an, hn, h_prev, dh) = (&az[..n], &an[..n], &hn[..n], &h_prev[..n], &dh[..n]);
    let dh_next = &mut dh_next[..n];
    let (gxr, gxz, gxn) = (&mut gxr[..n], &mut gxz[..n], &mut gxn[..n]);
    let (ghr, ghz, ghn) = (&mut ghr[..n], &mut ghz[..n], &mut ghn[..n]);
    for j in 0..n {
        let (r, z, nj) = (ar[j], az[j], an[j]);
        let dhj = dh[j] + dh_next[j];
        let dan = dhj * (1.0 - z) * (1.0 - nj * nj);
        let dar = dan * hn[j] * r * (1.0 - r);
        let daz = dhj * (h_prev[j] - nj) * z * (1.0 - z);
        gxr[j] = dar;
        gxz[j] = daz;
        gxn[j] = dan;
        ghr[j] = dar;
        ghz[j] = daz;
        ghn[j] = dan * r;
        dh_next[j] = dhj * z;
    }
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
