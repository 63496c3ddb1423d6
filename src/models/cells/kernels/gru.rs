//! The GRU's kernels (PyTorch's formulation, gate order r, z, n): the whole sequence forward
//! from a zero state and back-propagation through time.

use super::{Grads, RnnSizes, previous_states, sigmoid, tanh, weight_grads};
use crate::models::host::{
    View, affine_into, chunk_rows, column_sums, matmul, multiversion, transposed,
};

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
    d: RnnSizes,
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
            let d = RnnSizes {
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
        d: RnnSizes,
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
    d: RnnSizes,
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
            let d = RnnSizes {
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
        d: RnnSizes,
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
