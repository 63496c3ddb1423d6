//! The one benchmark binary (each extra binary relinks Burn): criterion groups by area.
//!
//! `cargo bench --bench main -- generate` runs the generation group, `-- bio_overhead` the cost of
//! each bio mechanism in training. The two-scale Lorenz-96
//! paper dataset (10,000 samples, rtol = atol = 1e-10) takes several seconds per iteration;
//! `benches/compare_scipy.py` times the same job in scipy.

/// The same allocator as the binary, so training here behaves as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use chaoscast::data::store::{Format, write_dataset};
use chaoscast::prelude::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Generation as `chaoscast generate` does it: integrate (transient included) and write Parquet.
fn generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("a temporary folder should be available");
    for (system, samples, seconds) in [
        (SystemName::Thomas, 10_000usize, 5),
        (SystemName::Lorenz96TwoScale, 10_000, 75),
    ] {
        group.measurement_time(Duration::from_secs(seconds));
        let mut spec = RecipeSpec::for_system(system);
        spec.samples = Some(samples);
        let recipe = spec.resolve().expect("the default recipe should be valid");
        let path = dir.path().join(format!("{system}.parquet"));
        group.bench_with_input(
            BenchmarkId::new(system.as_str(), format!("samples={samples}")),
            &recipe,
            |b, recipe| {
                b.iter(|| {
                    let data = generate(recipe, &NoProgress).expect("generation should succeed");
                    write_dataset(&data, &path, Format::Parquet, true)
                        .expect("write should succeed");
                })
            },
        );
    }
    group.finish();
}

/// What the bio mechanisms add to training: one epoch (7 optimizer steps of 64 windows, ASAM,
/// Adam, plus validation) of the small LSTM, the small FDN and the small transformer on a short
/// Thomas series with lookback 50 and horizon 10, for each mechanism alone, FL + WR
/// (paper-tuned) and all three (paper-default).
fn bio_overhead(c: &mut Criterion) {
    use burn::backend::{Autodiff, Flex};
    use chaoscast::bio::{BioConfig, BioPreset};
    use chaoscast::models::{ModelKind, Preset};
    use chaoscast::train::trainer::{Silent, TrainConfig, train};

    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.samples = Some(600);
    let data = generate(&spec.resolve().expect("valid recipe"), &NoProgress)
        .expect("generation should succeed");
    let mut group = c.benchmark_group("bio_overhead");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    let tuned = BioConfig::preset(BioPreset::PaperTuned);
    let variants = [
        ("none", BioConfig::default()),
        (
            "fl",
            BioConfig {
                rejuvenation: None,
                ..tuned.clone()
            },
        ),
        (
            "wr",
            BioConfig {
                fuzzy_lr: None,
                ..tuned.clone()
            },
        ),
        ("fl+wr", tuned),
        (
            "ws",
            BioConfig {
                fuzzy_lr: None,
                rejuvenation: None,
                ..BioConfig::preset(BioPreset::PaperDefault)
            },
        ),
        ("fl+wr+ws", BioConfig::preset(BioPreset::PaperDefault)),
    ];
    for kind in [ModelKind::Lstm, ModelKind::Fdn, ModelKind::Transformer] {
        for (name, bio) in &variants {
            let mut cfg = TrainConfig::preset(kind, Preset::Small, 3, 50, 10);
            cfg.epochs = 1;
            cfg.bio = bio.clone();
            group.bench_with_input(
                BenchmarkId::new(format!("{kind:?}").to_lowercase(), name),
                &cfg,
                |b, cfg| {
                    b.iter(|| {
                        train::<Autodiff<Flex>>(cfg, &data, &Default::default(), &mut Silent)
                            .expect("training should succeed")
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, generation, bio_overhead);
criterion_main!(benches);
