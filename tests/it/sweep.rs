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
