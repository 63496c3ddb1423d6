//! The run-time choice of the wide copies of the integrator's and the right-hand sides' hot
//! loops.
//!
//! Those loops are written once, as plain Rust that vectorises; on x86-64 they are compiled again
//! inside functions with AVX2 and with AVX-512 enabled, and the widest copy the CPU runs is
//! chosen (eight doubles a vector with AVX-512, four with AVX2, two in the baseline). Fused
//! multiply-adds stay off: without them every copy performs the same IEEE operations in the
//! same order, so a recipe gives bit-identical data on every machine (tested).

#[cfg(test)]
use std::sync::atomic::{AtomicBool, Ordering};

/// The instruction sets the wide copies are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Width {
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2.
    Avx2,
    /// AVX-512 (foundation).
    Avx512,
}

/// Set by tests to run the baseline copies on a CPU with wider vectors.
#[cfg(test)]
static BASELINE_ONLY: AtomicBool = AtomicBool::new(false);

/// The widest copy this CPU runs (detected by the standard library once, then a load).
#[inline]
pub(crate) fn width() -> Width {
    #[cfg(test)]
    if BASELINE_ONLY.load(Ordering::Relaxed) {
        return Width::Baseline;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Width::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Width::Avx2;
        }
    }
    Width::Baseline
}

/// Defines `$wide512` and `$wide2`, `$body` compiled with AVX-512 and with AVX2 (x86-64 only),
/// and `$name`, which calls the widest one [`width`] allows; `$body` must be `#[inline(always)]`
/// with its helpers, so that each copy is compiled for its instruction set.
macro_rules! dispatch {
    ($(#[$doc:meta])* $vis:vis fn $name:ident / $wide512:ident / $wide2:ident = $body:ident
        ($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            match $crate::systems::wide::width() {
                // SAFETY: `width` has checked that this CPU has the instruction set.
                $crate::systems::wide::Width::Avx512 => return unsafe { $wide512($($arg),*) },
                $crate::systems::wide::Width::Avx2 => return unsafe { $wide2($($arg),*) },
                $crate::systems::wide::Width::Baseline => {}
            }
            $body($($arg),*)
        }

        /// The AVX-512 copy.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $wide512($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }

        /// The AVX2 copy.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $wide2($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// Runs `f` with the baseline copies only, for tests that compare them with the wide ones.
#[cfg(test)]
pub(crate) fn baseline<T>(f: impl FnOnce() -> T) -> T {
    BASELINE_ONLY.store(true, Ordering::Relaxed);
    let out = f();
    BASELINE_ONLY.store(false, Ordering::Relaxed);
    out
}
