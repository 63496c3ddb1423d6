//! The LSTM's kernels: the whole sequence forward from a zero state and back-propagation
//! through time (gate order i, f, g, o).

use super::{Grads, RnnSizes, previous_states, sigmoid, tanh, weight_grads};
use crate::models::host::{
    View, affine_into, chunk_rows, column_sums, matmul, multiversion, transposed,
};

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
    pub fn last_cells(&self, d: RnnSizes) -> Vec<f32> {
        let hid = d.hidden;
        (0..d.batch)
            .flat_map(|b| {
                let row = b * d.steps + d.steps - 1;
                self.cells[row * hid..(row + 1) * hid].iter().copied()
            })
            .collect()
    }
}

/// LSTM over whole sequences from a zero state (gate order i, f, g, o): every hidden state
/// `[batch, steps, hidden]` and the tape for [`lstm_backward`].
pub fn lstm_forward(
    d: RnnSizes,
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
            let d = RnnSizes {
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
        d: RnnSizes,
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
    d: RnnSizes,
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
            let d = RnnSizes {
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
        d: RnnSizes,
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
