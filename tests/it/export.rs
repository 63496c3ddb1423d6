//! `chaoscast export` (issue 16): a run's forecasting weights as a safetensors file, read here
//! by a hand-written parser of the format (8-byte header length, JSON header, raw little-endian
//! data), not by the library that wrote it.

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::Flex;
use burn_store::ModuleSnapshot;
use chaoscast::models::Model;
use chaoscast::run::{RunConfig, load_model, load_weights};

use crate::cli::{chaoscast, dataset, small_train, text};

/// A safetensors file: its metadata and its f32 tensors (shape, values) by name.
struct Parsed {
    meta: BTreeMap<String, String>,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

fn parse(path: &Path) -> Parsed {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut meta = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().unwrap() {
                meta.insert(k.clone(), v.as_str().unwrap().to_string());
            }
            continue;
        }
        assert_eq!(entry["dtype"], "F32", "{name}");
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).unwrap();
        let [start, end]: [usize; 2] =
            serde_json::from_value(entry["data_offsets"].clone()).unwrap();
        let values: Vec<f32> = data[start..end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}");
        tensors.insert(name, (shape, values));
    }
    Parsed { meta, tensors }
}

/// Every parameter's values by name (enum variants skipped, as the export names them).
fn params(model: &Model<Flex>) -> BTreeMap<String, Vec<f32>> {
    model
        .collect(None, None, true)
        .iter()
        .map(|s| (s.full_path(), s.to_data().unwrap().to_vec::<f32>().unwrap()))
        .collect()
}

/// The export of a run trained with weight splitting holds the grouped weights the forecaster
/// computes with (not the stored ones), every tensor with its layout, and the run's config; an
/// existing file is kept without --force; bad runs and formats are one sentence each.
#[test]
fn export_writes_the_forecasting_weights_with_their_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 1, &["--model", "gru", "--ws-groups", "2", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = chaoscast(d, &["export", "run", "--format", "safetensors"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("run/model.safetensors"),
        "{}",
        text(&out.stdout)
    );
    let file = parse(&d.join("run/model.safetensors"));

    assert_eq!(
        file.meta["chaoscast.format"],
        chaoscast::export::EXPORT_FORMAT
    );
    let run = d.join("run");
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let in_file: serde_json::Value = serde_json::from_str(&file.meta["chaoscast.run"]).unwrap();
    assert_eq!(in_file, on_disk);
    // The default recipe's autoregressive decoder, in words.
    assert!(
        file.meta["chaoscast.forward"].contains("feeds the previous forecast back"),
        "{}",
        file.meta["chaoscast.forward"]
    );
    let layout: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&file.meta["chaoscast.layout"]).unwrap();
    assert_eq!(
        layout.keys().collect::<Vec<_>>(),
        file.tensors.keys().collect::<Vec<_>>()
    );
    for (name, (shape, _)) in &file.tensors {
        let described: Vec<usize> = serde_json::from_value(layout[name]["shape"].clone()).unwrap();
        assert_eq!(&described, shape, "{name}");
    }
    assert!(
        layout["layers.0.input"]["role"]
            .as_str()
            .unwrap()
            .contains("r, z, n"),
        "{:?}",
        layout["layers.0.input"]
    );

    let cfg = RunConfig::load(&run).unwrap();
    let device = Default::default();
    let forecasting = params(&load_model::<Flex>(&cfg, &run, &device).unwrap());
    let stored = params(&load_weights::<Flex>(&cfg, &run, &device).unwrap());
    let exported: BTreeMap<String, Vec<f32>> = file
        .tensors
        .iter()
        .map(|(k, (_, v))| (k.clone(), v.clone()))
        .collect();
    assert_eq!(exported, forecasting);
    assert_ne!(
        exported, stored,
        "weight splitting should change what is exported"
    );

    // An existing file is kept unless --force; then replaced.
    let again = chaoscast(d, &["export", "run", "--format", "safetensors"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    let forced = chaoscast(
        d,
        &[
            "export",
            "run",
            "--format",
            "safetensors",
            "--force",
            "-o",
            "w.safetensors",
        ],
    );
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_eq!(parse(&d.join("w.safetensors")).tensors, file.tensors);

    for (args, says) in [
        (
            vec!["export", "nowhere", "--format", "safetensors"],
            "nowhere",
        ),
        (vec!["export", "run", "--format", "onnx"], "onnx"),
        (vec!["export", "run"], "--format"),
    ] {
        let out = chaoscast(d, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!d.join("nowhere").exists());
}
