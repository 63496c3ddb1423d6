//! Which cells are done, and a worker's atomic hold on the one it trains.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chaoscast::run::{checkpoint_path, write_atomic};

/// `finished` (a report or a divergence mark), `partial` (a checkpoint) or `new`.
pub(super) fn cell_state(folder: &Path) -> &'static str {
    if folder.join("report.json").is_file() || folder.join("diverged.txt").is_file() {
        "finished"
    } else if checkpoint_path(folder).is_file() {
        "partial"
    } else {
        "new"
    }
}

/// A worker's hold on a cell: `claim` in the cell folder, created atomically (only one worker
/// can create it) with the worker's host and process id, removed when the worker lets go. A
/// claim whose process is gone (same host, no such process: a killed worker) is taken over.
pub(super) struct Claim {
    path: PathBuf,
}

impl Claim {
    pub(super) fn take(folder: &Path) -> Result<Option<Self>> {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let path = folder.join("claim");
        let me = format!("{} {}\n", host(), std::process::id());
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(me.as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    write_atomic(&folder.join("worker.txt"), worker_record().as_bytes())?;
                    return Ok(Some(Self { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut parts = held.split_whitespace();
                    let (holder, pid) = (parts.next(), parts.next());
                    let gone = holder == Some(host().as_str())
                        && pid.is_some_and(|p| !Path::new("/proc").join(p).exists());
                    if !gone {
                        return Ok(None);
                    }
                    // A dead worker's claim: move it aside and try once more. Only one worker's
                    // rename succeeds, so two never both take it over.
                    let aside = folder.join(format!("claim.stale.{}", std::process::id()));
                    if std::fs::rename(&path, &aside).is_err() {
                        return Ok(None);
                    }
                    let _ = std::fs::remove_file(&aside);
                }
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
                    );
                }
            }
        }
        Ok(None)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This machine's name.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Who trains the cell: host, process, and the SLURM job and array task when under SLURM.
fn worker_record() -> String {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    format!(
        "host {}\npid {}\nthreads {}\nslurm_job_id {}\nslurm_array_job_id {}\nslurm_array_task_id {}\n",
        host(),
        std::process::id(),
        rayon::current_num_threads(),
        var("SLURM_JOB_ID"),
        var("SLURM_ARRAY_JOB_ID"),
        var("SLURM_ARRAY_TASK_ID")
    )
}
