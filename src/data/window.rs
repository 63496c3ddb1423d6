//! Splits and forecast windows (SPEC.md §3).
//!
//! The series is split chronologically into train/validation/test (default 80/10/10) and windows
//! are cut inside each split: a window starting at `s` reads `s .. s + lookback` and predicts
//! `s + lookback .. s + lookback + horizon`, all inside its split, so no test value is ever seen
//! in training. The Flipped-Classroom protocol instead cuts non-overlapping windows from the whole
//! series, shuffles them with a seed and splits the windows 80/10/10.

use std::ops::Range;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The default lookback L (SPEC.md §3).
pub const DEFAULT_LOOKBACK: usize = 150;

/// Window geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Input steps L (default 150).
    pub lookback: usize,
    /// Predicted steps H.
    pub horizon: usize,
    /// Distance between consecutive window starts (default 1).
    pub stride: usize,
}

impl WindowSpec {
    /// Steps one window spans: lookback + horizon.
    pub fn span(&self) -> usize {
        self.lookback + self.horizon
    }

    /// Checks that every size is at least 1.
    pub fn validate(&self) -> Result<()> {
        crate::error::ensure_counts(&[
            ("lookback", self.lookback),
            ("horizon", self.horizon),
            ("stride", self.stride),
        ])?;
        Ok(())
    }
}

/// Fractions of the train and validation parts; the test part is the rest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    /// Training fraction (default 0.8).
    pub train: f64,
    /// Validation fraction (default 0.1).
    pub val: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self {
            train: 0.8,
            val: 0.1,
        }
    }
}

impl SplitFractions {
    fn validate(&self) -> Result<()> {
        let ok = |f: f64| f.is_finite() && f > 0.0 && f < 1.0;
        if !(ok(self.train) && ok(self.val) && self.train + self.val < 1.0) {
            return Err(Error::config(
                "split",
                format!(
                    "train ({}) and validation ({}) fractions must be in (0, 1) and leave room for a test part",
                    self.train, self.val
                ),
            ));
        }
        Ok(())
    }
}

/// Window start indices of each part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSets {
    /// Training windows.
    pub train: Vec<usize>,
    /// Validation windows.
    pub val: Vec<usize>,
    /// Test windows.
    pub test: Vec<usize>,
}

/// The chronological split of `len` samples into train, validation and test ranges.
pub fn chronological_split(len: usize, fractions: SplitFractions) -> Result<[Range<usize>; 3]> {
    fractions.validate()?;
    let train_end = (len as f64 * fractions.train).round() as usize;
    let val_end = (len as f64 * (fractions.train + fractions.val)).round() as usize;
    Ok([0..train_end, train_end..val_end, val_end..len])
}

/// Start indices of the windows that fit entirely inside `range`, `stride` apart.
pub fn window_starts(range: Range<usize>, spec: WindowSpec) -> Vec<usize> {
    if range.len() < spec.span() {
        return Vec::new();
    }
    (range.start..=range.end - spec.span())
        .step_by(spec.stride)
        .collect()
}

/// Windows for the chronological protocol; every part must hold at least one window.
pub fn chronological_windows(
    len: usize,
    spec: WindowSpec,
    fractions: SplitFractions,
) -> Result<WindowSets> {
    spec.validate()?;
    let [train, val, test] = chronological_split(len, fractions)?;
    let sets = WindowSets {
        train: window_starts(train.clone(), spec),
        val: window_starts(val.clone(), spec),
        test: window_starts(test.clone(), spec),
    };
    for (name, part, windows) in [
        ("training", &train, &sets.train),
        ("validation", &val, &sets.val),
        ("test", &test, &sets.test),
    ] {
        if windows.is_empty() {
            return Err(Error::config(
                "lookback + horizon",
                format!(
                    "a window spans {} steps but the {name} part has only {} samples; use a \
                     longer series or a shorter lookback or horizon",
                    spec.span(),
                    part.len()
                ),
            ));
        }
    }
    Ok(sets)
}

/// How a dataset of one or more trajectories is split into train, validation and test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// Each trajectory chronologically (its first 80 % train, then 10 % validation, 10 % test);
    /// for one trajectory, the protocol of SPEC.md §3.
    #[default]
    Chronological,
    /// Whole trajectories: the first 80 % of them (rounded, leaving at least one to each other
    /// part) train, the next 10 % validate, the rest test; needs at least three.
    ByTrajectory,
}

impl Split {
    /// Whether it is the default, chronological split.
    pub fn is_default(&self) -> bool {
        *self == Self::Chronological
    }
}

/// The row ranges of each part (train, validation, test) of a series made of `segments`
/// (trajectories, back to back), split by `split`. No range crosses a segment's end.
pub fn split_rows(
    segments: &[Range<usize>],
    split: Split,
    fractions: SplitFractions,
) -> Result<[Vec<Range<usize>>; 3]> {
    fractions.validate()?;
    let mut parts: [Vec<Range<usize>>; 3] = Default::default();
    match split {
        Split::Chronological => {
            for seg in segments {
                let ranges = chronological_split(seg.len(), fractions)?;
                for (part, r) in parts.iter_mut().zip(ranges) {
                    part.push(seg.start + r.start..seg.start + r.end);
                }
            }
        }
        Split::ByTrajectory => {
            // Rounded, then moved so that each part keeps at least one trajectory.
            let n = segments.len();
            let train = ((n as f64 * fractions.train).round() as usize)
                .min(n.saturating_sub(2))
                .max(1);
            let val = ((n as f64 * (fractions.train + fractions.val)).round() as usize)
                .min(n.saturating_sub(1))
                .max(train + 1);
            if n < 3 {
                return Err(Error::config(
                    "split",
                    format!(
                        "by-trajectory needs a trajectory in each of train, validation and test, \
                         and {n} trajectories give {train}, {} and {}; generate more \
                         (--trajectories) or split chronologically",
                        val.saturating_sub(train),
                        n.saturating_sub(val)
                    ),
                ));
            }
            parts[0] = segments[..train].to_vec();
            parts[1] = segments[train..val].to_vec();
            parts[2] = segments[val..].to_vec();
        }
    }
    Ok(parts)
}

/// Windows of a series made of `segments`, split by `split`: every window lies inside one part
/// of one segment, so none crosses a trajectory's end or reads another part. For one segment
/// and [`Split::Chronological`] these are [`chronological_windows`].
pub fn split_windows(
    segments: &[Range<usize>],
    spec: WindowSpec,
    split: Split,
    fractions: SplitFractions,
) -> Result<WindowSets> {
    spec.validate()?;
    let parts = split_rows(segments, split, fractions)?;
    let starts = |ranges: &[Range<usize>]| -> Vec<usize> {
        ranges
            .iter()
            .flat_map(|r| window_starts(r.clone(), spec))
            .collect()
    };
    let sets = WindowSets {
        train: starts(&parts[0]),
        val: starts(&parts[1]),
        test: starts(&parts[2]),
    };
    for (name, ranges, windows) in [
        ("training", &parts[0], &sets.train),
        ("validation", &parts[1], &sets.val),
        ("test", &parts[2], &sets.test),
    ] {
        if windows.is_empty() {
            let longest = ranges.iter().map(|r| r.len()).max().unwrap_or(0);
            return Err(Error::config(
                "lookback + horizon",
                format!(
                    "a window spans {} steps but the {name} part has only {longest} samples{}; \
                     use a longer series or a shorter lookback or horizon",
                    spec.span(),
                    if ranges.len() > 1 {
                        " in its longest trajectory"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(sets)
}

/// Windows for the Flipped-Classroom protocol: non-overlapping windows over the whole series,
/// shuffled with `seed`, then split by the fractions.
pub fn flipped_classroom_windows(
    len: usize,
    spec: WindowSpec,
    fractions: SplitFractions,
    seed: u64,
) -> Result<WindowSets> {
    spec.validate()?;
    fractions.validate()?;
    let mut starts: Vec<usize> = (0..len / spec.span()).map(|i| i * spec.span()).collect();
    if starts.len() < 3 {
        return Err(Error::config(
            "lookback + horizon",
            format!(
                "{len} samples hold only {} non-overlapping windows of {} steps; at least 3 are needed",
                starts.len(),
                spec.span()
            ),
        ));
    }
    starts.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n = starts.len();
    let n_train = ((n as f64 * fractions.train).round() as usize).clamp(1, n - 2);
    let n_val = ((n as f64 * fractions.val).round() as usize).clamp(1, n - n_train - 1);
    let test = starts.split_off(n_train + n_val);
    let val = starts.split_off(n_train);
    Ok(WindowSets {
        train: starts,
        val,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: WindowSpec = WindowSpec {
        lookback: 5,
        horizon: 2,
        stride: 1,
    };

    #[test]
    fn chronological_parts_never_overlap() {
        let sets = chronological_windows(100, SPEC, SplitFractions::default()).unwrap();
        let used = |starts: &[usize]| -> (usize, usize) {
            (starts[0], starts.last().unwrap() + SPEC.span() - 1)
        };
        let (t0, t1) = used(&sets.train);
        let (v0, v1) = used(&sets.val);
        let (s0, s1) = used(&sets.test);
        assert_eq!((t0, t1), (0, 79));
        assert_eq!((v0, v1), (80, 89));
        assert_eq!((s0, s1), (90, 99));
        assert_eq!(sets.train.len(), 80 - 7 + 1);
    }

    #[test]
    fn stride_thins_windows() {
        assert_eq!(
            window_starts(0..20, WindowSpec { stride: 5, ..SPEC }),
            vec![0, 5, 10]
        );
        assert!(window_starts(0..6, SPEC).is_empty());
    }

    #[test]
    fn too_short_parts_are_errors() {
        let err = chronological_windows(50, SPEC, SplitFractions::default()).unwrap_err();
        assert!(
            err.to_string().contains("validation part has only 5"),
            "{err}"
        );
    }

    #[test]
    fn flipped_classroom_is_seeded_disjoint_and_complete() {
        let a = flipped_classroom_windows(700, SPEC, SplitFractions::default(), 7).unwrap();
        let b = flipped_classroom_windows(700, SPEC, SplitFractions::default(), 7).unwrap();
        assert_eq!(a, b);
        let c = flipped_classroom_windows(700, SPEC, SplitFractions::default(), 8).unwrap();
        assert_ne!(a, c);
        assert_eq!((a.train.len(), a.val.len(), a.test.len()), (80, 10, 10));
        let mut all: Vec<usize> = [a.train, a.val, a.test].concat();
        all.sort();
        assert_eq!(all, (0..100).map(|i| i * 7).collect::<Vec<_>>());
    }

    #[test]
    fn windows_never_cross_a_trajectory_or_a_part() {
        let segments: Vec<Range<usize>> = (0..10).map(|k| k * 100..(k + 1) * 100).collect();
        let spec = WindowSpec {
            lookback: 6,
            horizon: 3,
            stride: 1,
        };
        for split in [Split::Chronological, Split::ByTrajectory] {
            let parts = split_rows(&segments, split, SplitFractions::default()).unwrap();
            let sets = split_windows(&segments, spec, split, SplitFractions::default()).unwrap();
            for (windows, ranges) in [&sets.train, &sets.val, &sets.test].iter().zip(&parts) {
                assert!(!windows.is_empty());
                for &w in windows.iter() {
                    let inside = ranges
                        .iter()
                        .any(|r| r.start <= w && w + spec.span() <= r.end);
                    assert!(inside, "{split:?}: window {w} leaves its part");
                    let seg = segments.iter().find(|s| s.contains(&w)).unwrap();
                    assert!(w + spec.span() <= seg.end, "{split:?}: {w} crosses");
                }
            }
        }
        // By trajectory: 10 give 8 / 1 / 1; 5 give 3 / 1 / 1 and 3 give 1 / 1 / 1 (each part
        // keeps one); 2 are refused.
        let counts = |n: usize| {
            split_rows(
                &segments[..n],
                Split::ByTrajectory,
                SplitFractions::default(),
            )
            .map(|p| p.map(|p| p.len()))
        };
        assert_eq!(counts(10).unwrap(), [8, 1, 1]);
        assert_eq!(counts(5).unwrap(), [3, 1, 1]);
        assert_eq!(counts(3).unwrap(), [1, 1, 1]);
        assert!(counts(2).is_err());
        // One segment, chronological: the SPEC's protocol exactly.
        assert_eq!(
            split_windows(
                std::slice::from_ref(&(0..500)),
                spec,
                Split::Chronological,
                SplitFractions::default()
            )
            .unwrap(),
            chronological_windows(500, spec, SplitFractions::default()).unwrap()
        );
    }
}
