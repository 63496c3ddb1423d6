//! The scalar and element-wise kernels the fused operations share: a vectorisable `exp` and
//! `erf`, GELU, the softmax by rows and layer norm by rows (each with its backward pass), and
//! [`multiversion`], which compiles a loop for several x86-64 levels and picks one at run time.

/// `e^x` to about one ulp (Cephes' `expf` polynomial), without branches or library calls so
/// that the gate loops vectorise. Inputs are clamped to `[−87, 88]`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32);
    y * scale
}

/// erf(x) to about 2e−7 absolute (Abramowitz and Stegun 7.1.26), branch-free so that the loops
/// around it vectorise.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// Defines the function `$name` with its body compiled three times, for AVX-512, for AVX2 + FMA and for the
/// baseline target, and picks the best the CPU has at run time: the gate loops vectorise
/// 16, 8 or 4 lanes wide, and the binary still runs on any x86-64.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v4($($arg: $ty),*) {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v3($($arg: $ty),*) {
                    imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature `v4` was compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature `v3` was compiled for.
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

multiversion! {
    /// Exact GELU, `u·Φ(u)`.
    pub(crate) fn gelu(u: &[f32], g: &mut [f32]) {
        for (g, &u) in g.iter_mut().zip(u) {
            *g = 0.5 * u * (1.0 + erf(u * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// `dg ⊙ GELU'(u)` in place of `dg`: GELU'(u) = Φ(u) + u·φ(u).
    pub(crate) fn gelu_backward(u: &[f32], dg: &mut [f32]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for (dg, &u) in dg.iter_mut().zip(u) {
            let cdf = 0.5 * (1.0 + erf(u * std::f32::consts::FRAC_1_SQRT_2));
            *dg *= cdf + u * INV_SQRT_2PI * exp(-0.5 * u * u);
        }
    }
}

multiversion! {
    /// The softmax of every row of `s / divisor`, in place.
    pub(crate) fn softmax_rows(s: &mut [f32], cols: usize, divisor: f32) {
        for row in s.chunks_exact_mut(cols) {
            let mut max = f32::NEG_INFINITY;
            for v in row.iter_mut() {
                *v /= divisor;
                max = max.max(*v);
            }
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = exp(*v - max);
                sum += *v;
            }
            let inv = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// The gradient of the scores `s / divisor` from that of their softmax `a`, in place of
    /// the latter: `ds = a ⊙ (da − Σ_j da·a) / divisor` by rows.
    pub(crate) fn softmax_backward(a: &[f32], da: &mut [f32], cols: usize, divisor: f32) {
        for (a, da) in a.chunks_exact(cols).zip(da.chunks_exact_mut(cols)) {
            let dot: f32 = a.iter().zip(da.iter()).map(|(a, d)| a * d).sum();
            for (a, d) in a.iter().zip(da.iter_mut()) {
                *d = a * (*d - dot) / divisor;
            }
        }
    }
}

multiversion! {
    /// Layer norm by rows of `r` (σ² + `eps` under the root): the normalised rows, 1/σ per row,
    /// and `xhat·γ + β`.
    pub(crate) fn layer_norm(
        eps: f32,
        r: &[f32],
        gamma: &[f32],
        beta: &[f32],
        xhat: &mut [f32],
        rstd: &mut [f32],
        y: &mut [f32],
    ) {
        let w = gamma.len();
        let rows = r
            .chunks_exact(w)
            .zip(xhat.chunks_exact_mut(w))
            .zip(rstd.iter_mut())
            .zip(y.chunks_exact_mut(w));
        for (((r, xhat), rstd), y) in rows {
            let mean = r.iter().sum::<f32>() / w as f32;
            let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / w as f32;
            let s = 1.0 / (var + eps).sqrt();
            *rstd = s;
            for j in 0..w {
                xhat[j] = (r[j] - mean) * s;
                y[j] = xhat[j] * gamma[j] + beta[j];
            }
        }
    }
}

multiversion! {
    /// The gradient of a layer norm's input from that of its output `dy`; γ's and β's
    /// gradients are added to `dgamma`, `dbeta`.
    pub(crate) fn layer_norm_backward(
        dy: &[f32],
        xhat: &[f32],
        rstd: &[f32],
        gamma: &[f32],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) {
        let w = gamma.len();
        let rows = dy
            .chunks_exact(w)
            .zip(xhat.chunks_exact(w))
            .zip(rstd)
            .zip(dx.chunks_exact_mut(w));
        for (((dy, xhat), &s), dx) in rows {
            let (mut m1, mut m2) = (0.0, 0.0);
            for j in 0..w {
                let g = dy[j] * gamma[j];
                m1 += g;
                m2 += g * xhat[j];
                dgamma[j] += dy[j] * xhat[j];
                dbeta[j] += dy[j];
            }
            let (m1, m2) = (m1 / w as f32, m2 / w as f32);
            for j in 0..w {
                dx[j] = s * (dy[j] * gamma[j] - m1 - xhat[j] * m2);
            }
        }
    }
}

pub(crate) use multiversion;
