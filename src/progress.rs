//! Progress reporting without printing: long library calls take a `&dyn Progress` and report the
//! fraction done; the binary turns that into a progress bar, tests and embedders pass
//! [`NoProgress`] or a closure.

/// Receives the fraction of a long computation that is done, from 0 to 1.
pub trait Progress: Sync {
    /// Called with a fraction in `[0, 1]`, not necessarily monotone across threads.
    fn update(&self, fraction: f64);
}

/// Ignores progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _fraction: f64) {}
}

impl<F: Fn(f64) + Sync> Progress for F {
    fn update(&self, fraction: f64) {
        self(fraction)
    }
}

/// Maps a sub-task's progress into `[offset, offset + scale]` of an outer task.
pub(crate) struct Scaled<'a> {
    pub inner: &'a dyn Progress,
    pub offset: f64,
    pub scale: f64,
}

impl Progress for Scaled<'_> {
    fn update(&self, fraction: f64) {
        self.inner.update(self.offset + self.scale * fraction);
    }
}
