//! Progress display: a bar on a terminal; otherwise a plain line at every 10 % once the work has
//! run for a second (short jobs stay silent); nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chaoscast::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};

const STEPS: u64 = 1000;

pub(crate) enum Reporter {
    Bar(ProgressBar),
    Lines {
        label: String,
        last: AtomicU64,
        start: Instant,
    },
    Silent,
}

impl Reporter {
    pub(crate) fn new(label: &str, quiet: bool) -> Self {
        if quiet {
            return Reporter::Silent;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(STEPS);
            let style = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {percent:>3}% (ETA {eta})",
            )
            .expect("the progress template should be valid");
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            Reporter::Bar(bar)
        } else {
            Reporter::Lines {
                label: label.to_string(),
                last: AtomicU64::new(0),
                start: Instant::now(),
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Reporter {
    fn update(&self, fraction: f64) {
        let fraction = fraction.clamp(0.0, 1.0);
        match self {
            Reporter::Bar(bar) => bar.set_position((fraction * STEPS as f64) as u64),
            Reporter::Lines { label, last, start } => {
                let decile = (fraction * 10.0).floor() as u64;
                if start.elapsed() < Duration::from_secs(1) {
                    return;
                }
                if decile > last.fetch_max(decile, Ordering::Relaxed) {
                    eprintln!("{label}: {}%", decile * 10);
                }
            }
            Reporter::Silent => {}
        }
    }
}
