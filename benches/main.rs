//! The one benchmark binary (each extra binary relinks Burn): criterion groups by area.
//!
//! `cargo bench --bench main -- generate` runs the generation group. The two-scale Lorenz-96
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

criterion_group!(benches, generation);
criterion_main!(benches);
