//! `compare` as the unit of a job array (issue 16): cells listed, run in shards by independent
//! workers that claim them atomically, and summarised once, equal to a single process's run.

use crate::cli::{chaoscast, dataset, text};

const EXP: &str = "datasets = [\"t.parquet\"]\nmodels = [\"gru\"]\nseeds = [0, 1]\n\
                   [train]\nepochs = 1\nlookback = 12\nhidden = 4\n\
                   [[variants]]\nname = \"baseline\"\n[[variants]]\nname = \"fl\"\nfl-spread = 0.2\n";

/// cells.csv without its timing column, which differs from run to run.
fn without_seconds(csv: &str) -> Vec<String> {
    csv.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(11);
            f.join(",")
        })
        .collect()
}

#[test]
fn shards_and_a_summary_equal_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 400 --horizon 4 -o t.parquet");
    std::fs::write(d.join("exp.toml"), EXP).unwrap();

    let out = chaoscast(d, &["compare", "exp.toml", "-o", "arr", "--list-cells"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines[0], "4 cells");
    assert_eq!(lines[2], "0\tt\tgru\tbaseline\t0\tnew");
    assert_eq!(lines[5], "3\tt\tgru\tfl\t1\tnew");
    assert!(!d.join("arr").exists(), "listing writes nothing");

    let out = chaoscast(
        d,
        &["compare", "exp.toml", "-o", "arr", "--shard", "1/2", "-q"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !d.join("arr/summary.md").exists(),
        "a shard writes no summary"
    );
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "arr", "--summarise"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("2 of the cells are not finished"),
        "{}",
        text(&out.stderr)
    );
    let listing = text(&chaoscast(d, &["compare", "exp.toml", "-o", "arr", "--list-cells"]).stdout);
    assert!(
        listing.contains("1\tt\tgru\tbaseline\t1\tfinished"),
        "{listing}"
    );
    assert!(listing.contains("0\tt\tgru\tbaseline\t0\tnew"), "{listing}");

    let out = chaoscast(
        d,
        &["compare", "exp.toml", "-o", "arr", "--shard", "0/2", "-q"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = chaoscast(
        d,
        &["compare", "exp.toml", "-o", "arr", "--summarise", "-q"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = chaoscast(d, &["compare", "exp.toml", "-o", "one", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = |p: &str| std::fs::read_to_string(d.join(p)).unwrap();
    assert_eq!(
        without_seconds(&read("arr/cells.csv")),
        without_seconds(&read("one/cells.csv"))
    );
    for cell in std::fs::read_dir(d.join("arr/cells/t/gru/baseline")).unwrap() {
        let cell = cell.unwrap().path();
        assert!(!cell.join("claim").exists(), "a finished worker lets go");
        assert!(text(&std::fs::read(cell.join("worker.txt")).unwrap()).starts_with("host "));
    }
}

/// A cell claimed by a live worker is left to it; a claim of a process that is gone is taken.
#[test]
fn claimed_cells_are_left_and_dead_claims_taken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 400 --horizon 4 -o t.parquet");
    std::fs::write(
        d.join("exp.toml"),
        EXP.replace("seeds = [0, 1]", "seeds = [0]"),
    )
    .unwrap();
    // Plant claims: the baseline cell held by a live process (this test), the fl cell by a
    // process that does not exist.
    let out = chaoscast(
        d,
        &["compare", "exp.toml", "-o", "c", "--shard", "0/1", "-q"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let folders: Vec<_> = ["baseline", "fl"]
        .iter()
        .map(|v| {
            let variant = d.join("c/cells/t/gru").join(v);
            std::fs::read_dir(&variant)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
        })
        .collect();
    for f in &folders {
        std::fs::remove_file(f.join("report.json")).unwrap();
    }
    std::fs::write(
        folders[0].join("claim"),
        format!("{} {}\n", host.trim(), std::process::id()),
    )
    .unwrap();
    std::fs::write(
        folders[1].join("claim"),
        format!("{} 999999999\n", host.trim()),
    )
    .unwrap();
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "c", "--no-summary"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("baseline seed 0: claimed by another worker"),
        "{err}"
    );
    assert!(!folders[0].join("report.json").exists());
    assert!(folders[1].join("report.json").exists(), "{err}");
    assert!(!folders[1].join("claim").exists());
    assert!(folders[0].join("claim").exists(), "a live claim stays");
}

/// SIGUSR1 (a time limit's warning) or SIGTERM stops training at the epoch's end with its
/// checkpoint saved and exit code 3; the resumed run repeats the uninterrupted one (with the
/// plateau schedule, which does not depend on the epoch count the runs were given).
#[test]
fn a_signal_stops_training_after_a_checkpoint() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 400 --horizon 4 -o t.parquet");
    let args = |epochs: &str, out: &str| -> Vec<String> {
        [
            "train",
            "--data",
            "t.parquet",
            "--model",
            "gru",
            "--lookback",
            "12",
            "--hidden",
            "4",
            "--epochs",
            epochs,
            "--patience",
            epochs,
            "--schedule",
            "plateau",
            "-o",
            out,
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    for (signal, name) in [(libc_sigusr1(), "usr1"), (15, "term")] {
        let run = format!("run-{name}");
        let child = Command::new(env!("CARGO_BIN_EXE_chaoscast"))
            .args(args("100000", &run))
            .current_dir(d)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let metrics = d.join(&run).join("metrics.csv");
        let start = std::time::Instant::now();
        while std::fs::read_to_string(&metrics).map_or(0, |m| m.lines().count()) < 3 {
            assert!(start.elapsed().as_secs() < 120, "training did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {err}");
        assert!(err.contains("interrupted after epoch"), "{err}");
        let epochs = std::fs::read_to_string(&metrics).unwrap().lines().count() - 1;
        let last = (epochs + 2).to_string();
        let out = chaoscast(d, &["train", "--resume", &run, "--epochs", &last, "-q"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let whole = format!("whole-{name}");
        let a: Vec<String> = args(&last, &whole);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        assert!(chaoscast(d, &a).status.success());
        let nrmse = |m: &str| -> Vec<String> {
            std::fs::read_to_string(d.join(m).join("metrics.csv"))
                .unwrap()
                .lines()
                .map(|l| l.split(',').nth(3).unwrap().to_string())
                .collect()
        };
        assert_eq!(nrmse(&run), nrmse(&whole), "{name}");
    }
}

/// SIGUSR1's number on Linux.
fn libc_sigusr1() -> i32 {
    10
}

/// Under SLURM a worker computes on its task's CPUs, and records them with its job ids.
#[test]
fn a_worker_sizes_its_threads_from_slurm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 400 --horizon 4 -o t.parquet");
    std::fs::write(
        d.join("exp.toml"),
        EXP.replace("seeds = [0, 1]", "seeds = [0]"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaoscast"))
        .args(["compare", "exp.toml", "-o", "c", "--shard", "0/2", "-q"])
        .env_remove("RAYON_NUM_THREADS")
        .env("SLURM_CPUS_PER_TASK", "1")
        .env("SLURM_JOB_ID", "4242")
        .env("SLURM_ARRAY_TASK_ID", "0")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let variant = d.join("c/cells/t/gru/baseline");
    let cell = std::fs::read_dir(&variant)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let worker = std::fs::read_to_string(cell.join("worker.txt")).unwrap();
    assert!(worker.contains("threads 1\n"), "{worker}");
    assert!(worker.contains("slurm_job_id 4242\n"), "{worker}");
    assert!(worker.contains("slurm_array_task_id 0\n"), "{worker}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaoscast"))
        .args(["compare", "exp.toml", "-o", "c", "--list-cells"])
        .env("SLURM_CPUS_PER_TASK", "many")
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("SLURM_CPUS_PER_TASK is 'many'"));
}
