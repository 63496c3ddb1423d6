//! The distances between a model's run and the true trajectory: Wasserstein-1 between the
//! values' distributions, and Welch's periodogram with the mean log-power difference between
//! spectra (see the parent module's documentation).

/// The Wasserstein-1 distance between two samples' distributions: the mean absolute difference
/// of their quantile functions over 1000 evenly spaced levels.
pub fn wasserstein1(a: &[f64], b: &[f64]) -> f64 {
    let sorted = |x: &[f64]| {
        let mut s = x.to_vec();
        s.sort_by(f64::total_cmp);
        s
    };
    let (a, b) = (sorted(a), sorted(b));
    let quantile = |s: &[f64], u: f64| -> f64 {
        let pos = u * (s.len() - 1) as f64;
        let (lo, frac) = (pos.floor() as usize, pos.fract());
        let hi = (lo + 1).min(s.len() - 1);
        s[lo] * (1.0 - frac) + s[hi] * frac
    };
    const LEVELS: usize = 1000;
    (0..LEVELS)
        .map(|k| {
            let u = (k as f64 + 0.5) / LEVELS as f64;
            (quantile(&a, u) - quantile(&b, u)).abs()
        })
        .sum::<f64>()
        / LEVELS as f64
}

/// Welch's periodogram of `x` sampled every `dt`: (frequency, log₁₀ power) from the lowest
/// nonzero frequency to the Nyquist frequency (see the module's documentation).
pub fn welch(x: &[f64], dt: f64) -> Vec<(f64, f64)> {
    let len = 256.min(x.len() / 2).max(4);
    let hop = len / 2;
    let hann: Vec<f64> = (0..len)
        .map(|t| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * t as f64 / len as f64).cos())
        .collect();
    let mut power = vec![0.0; len / 2];
    let mut segments = 0;
    let mut start = 0;
    while start + len <= x.len() {
        let seg = &x[start..start + len];
        let mean = seg.iter().sum::<f64>() / len as f64;
        for (k, p) in power.iter_mut().enumerate() {
            let f = (k + 1) as f64 / len as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (t, (v, w)) in seg.iter().zip(&hann).enumerate() {
                let phase = 2.0 * std::f64::consts::PI * f * t as f64;
                re += (v - mean) * w * phase.cos();
                im -= (v - mean) * w * phase.sin();
            }
            *p += re * re + im * im;
        }
        segments += 1;
        start += hop;
    }
    power
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let f = (k + 1) as f64 / (len as f64 * dt);
            (f, (p / segments.max(1) as f64 + 1e-300).log10())
        })
        .collect()
}

/// Mean absolute difference of log₁₀ power over frequencies and variables.
pub(super) fn spectrum_distance(model: &[Vec<(f64, f64)>], truth: &[Vec<(f64, f64)>]) -> f64 {
    let mut sum = 0.0;
    let mut count = 0usize;
    for (m, t) in model.iter().zip(truth) {
        // Spectra of runs of other lengths have other frequencies: compare at the truth's,
        // each model value taken at the nearest frequency.
        for &(f, pt) in t {
            let pm = m
                .iter()
                .min_by(|a, b| (a.0 - f).abs().total_cmp(&(b.0 - f).abs()))
                .map_or(pt, |p| p.1);
            sum += (pm - pt).abs();
            count += 1;
        }
    }
    sum / count.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasserstein_of_shifted_samples_is_the_shift() {
        let a: Vec<f64> = (0..500).map(|i| i as f64 / 100.0).collect();
        let b: Vec<f64> = a.iter().map(|v| v + 0.7).collect();
        assert!((wasserstein1(&a, &b) - 0.7).abs() < 1e-9);
        assert!(wasserstein1(&a, &a) < 1e-12);
    }

    #[test]
    fn a_sine_has_its_spectral_peak_at_its_frequency() {
        let dt = 0.05;
        let x: Vec<f64> = (0..2048)
            .map(|t| (2.0 * std::f64::consts::PI * 0.8 * t as f64 * dt).sin())
            .collect();
        let spectrum = welch(&x, dt);
        let peak = spectrum.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        assert!((peak.0 - 0.8).abs() < 2.0 / (256.0 * dt), "{peak:?}");
        assert!(
            (spectrum.last().unwrap().0 - 10.0).abs() < 1e-9,
            "Nyquist is 1 / (2 dt)"
        );
    }
}
