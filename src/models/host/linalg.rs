//! Linear algebra on host buffers for the fused operations: strided matrix products through the
//! `gemm` crate and the small reshuffles around them (transposes, side-by-side blocks, column
//! sums), and how a batch is cut into chunks for the thread pool (the same chunks on any number
//! of threads).

/// A strided matrix view: element `(r, c)` sits at `r·rs + c·cs` of its slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl View {
    pub(crate) fn row_major(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// Rows `[rows, cols]` whose starts lie `rs` elements apart.
    pub(crate) fn strided(rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Whether every element lies inside a slice of `len` elements.
    fn fits(&self, len: usize) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .zip((self.cols - 1).checked_mul(self.cs))
            .and_then(|(a, b)| a.checked_add(b));
        last.is_some_and(|last| last < len)
    }

    /// Whether distinct elements lie at distinct places (row-major rows that do not overlap),
    /// as a destination must: gemm's threads write it in parallel.
    fn distinct(&self) -> bool {
        self.rows <= 1 || (self.cs == 1 && self.rs >= self.cols)
    }
}

/// `dst = lhs·rhs`, or `dst += lhs·rhs` when `accumulate`.
pub(crate) fn matmul(
    dst: &mut [f32],
    d: View,
    accumulate: bool,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
) {
    assert!(
        l.rows == d.rows && r.cols == d.cols && l.cols == r.rows,
        "matmul shapes: {d:?} = {l:?} · {r:?}"
    );
    assert!(
        d.fits(dst.len()) && l.fits(lhs.len()) && r.fits(rhs.len()),
        "matmul views out of bounds"
    );
    assert!(d.distinct(), "matmul destination rows overlap: {d:?}");
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if l.cols == 0 {
        if !accumulate {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    dst[i * d.rs + j * d.cs] = 0.0;
                }
            }
        }
        return;
    }
    // Large products use the thread pool, unless this already runs on one of its threads (a
    // chunk of sequences), where nesting would only add waiting.
    let work = d.rows * d.cols * l.cols;
    let parallelism = if work >= 1 << 21 && rayon::current_thread_index().is_none() {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three views were checked to lie inside their slices, and `dst` is borrowed
    // mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr(),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr(),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr(),
            r.cs as isize,
            r.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x·w + b` for row-major `x` `[rows, inputs]`, `w` `[inputs, outputs]`.
pub(crate) fn affine(x: &[f32], rows: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; rows * b.len()];
    affine_into(&mut out, x, w, b);
    out
}

/// [`affine`] into `dst` (`[rows, outputs]`, the rows implied by its length).
pub(crate) fn affine_into(dst: &mut [f32], x: &[f32], w: &[f32], b: &[f32]) {
    let outputs = b.len();
    let inputs = w.len() / outputs;
    let rows = dst.len() / outputs;
    for row in dst.chunks_exact_mut(outputs) {
        row.copy_from_slice(b);
    }
    matmul(
        dst,
        View::row_major(rows, outputs),
        true,
        x,
        View::row_major(rows, inputs),
        w,
        View::row_major(inputs, outputs),
    );
}

/// `aᵀ·b` for row-major `a` `[rows, p]` and `b` `[rows, q]`: `[p, q]` (a weight gradient).
pub(crate) fn gram(a: &[f32], p: usize, b: &[f32], q: usize) -> Vec<f32> {
    let rows = a.len() / p;
    let mut out = vec![0.0; p * q];
    matmul(
        &mut out,
        View::row_major(p, q),
        false,
        a,
        View::row_major(rows, p).t(),
        b,
        View::row_major(rows, q),
    );
    out
}

/// `dst (+)= a·wᵀ` for row-major `a` `[rows, p]` and `w` `[q, p]` (an input gradient); `w` is
/// laid out transposed first, which `gemm` packs faster than a transposed view.
pub(crate) fn times_transposed(dst: &mut [f32], accumulate: bool, a: &[f32], p: usize, w: &[f32]) {
    let rows = a.len() / p;
    let q = w.len() / p;
    matmul(
        dst,
        View::row_major(rows, q),
        accumulate,
        a,
        View::row_major(rows, p),
        &transposed(w, q, p),
        View::row_major(p, q),
    );
}

/// Row-major matrices of `cols` columns each (and as many rows), side by side:
/// `[rows, blocks·cols]`, as one product multiplies them all.
pub(crate) fn side_by_side(blocks: &[&[f32]], cols: usize) -> Vec<f32> {
    let rows = blocks.first().map_or(0, |b| b.len() / cols);
    (0..rows)
        .flat_map(|r| {
            blocks
                .iter()
                .flat_map(move |b| b[r * cols..(r + 1) * cols].iter().copied())
        })
        .collect()
}

/// Block `k` of a row-major matrix of `blocks` side-by-side blocks `cols` wide: the inverse of
/// [`side_by_side`].
pub(crate) fn column_block(m: &[f32], blocks: usize, cols: usize, k: usize) -> Vec<f32> {
    m.chunks_exact(blocks * cols)
        .flat_map(|row| row[k * cols..(k + 1) * cols].iter().copied())
        .collect()
}

/// Column sums of a row-major `[rows, width]` buffer.
pub(crate) fn column_sums(m: &[f32], width: usize) -> Vec<f32> {
    let mut out = vec![0.0; width];
    for row in m.chunks_exact(width) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

/// The transpose of a row-major `rows × cols` matrix, row-major.
pub(crate) fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate().take(rows) {
        for (c, v) in row.iter().enumerate() {
            out[c * rows + r] = *v;
        }
    }
    out
}

/// The chunks the fused operations split a batch into, on any number of threads. The chunk
/// boundaries decide the bits: the FDN block sums each chunk's parameter gradients and adds the
/// sums in order, and gemm picks its kernels by a chunk's row count (so even row-wise passes
/// change with the cut). Fixed, they make a run give the same bits on every machine
/// (`RAYON_NUM_THREADS` and the core count change only its speed). Two, the split the 2-core
/// machines used when the committed results were trained, which keeps those results
/// bit-identical.
pub(crate) const CHUNKS: usize = 2;

/// Sequences per parallel chunk: the batch split evenly into [`CHUNKS`]. Sequences are
/// independent through the recurrence, so each chunk runs all its steps without waiting for
/// the others.
pub(crate) fn chunk_rows(batch: usize) -> usize {
    batch.div_ceil(CHUNKS).max(1)
}
