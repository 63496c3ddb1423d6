//! Generate a dataset from a recipe, measure its largest Lyapunov exponent, write it as Parquet
//! and read it back with its recipe.
//!
//! ```sh
//! cargo run --release --example generate -- datasets/thomas.toml thomas.parquet
//! ```

use chaoscast::prelude::*;

fn main() -> chaoscast::Result<()> {
    let mut args = std::env::args().skip(1);
    let recipe_path = args.next().unwrap_or_else(|| "datasets/thomas.toml".into());
    let out_path = args.next().unwrap_or_else(|| "thomas.parquet".into());

    let recipe = RecipeSpec::from_toml_file(recipe_path.as_ref())?.resolve()?;
    let mut data = generate(&recipe, &NoProgress)?;
    println!(
        "{}: {} samples of {} variables at dt = {}",
        recipe.system,
        data.len(),
        data.vars(),
        recipe.dt
    );

    let system = recipe.system.build(&recipe.params)?;
    let cfg = LyapunovConfig::for_system(recipe.system);
    let estimate = largest_lyapunov(system.as_ref(), &cfg, &NoProgress)?;
    println!(
        "largest Lyapunov exponent {:.4} ± {:.4}; one Lyapunov time = {:.1} samples",
        estimate.mean,
        estimate.std,
        1.0 / (estimate.mean * recipe.dt)
    );
    data.meta.lyapunov = Some(estimate);
    data.meta.lyapunov_config = Some(cfg);

    write_dataset(&data, out_path.as_ref(), Format::Parquet, true)?;
    let back = read_dataset(out_path.as_ref())?;
    assert_eq!(back.meta.recipe, recipe);
    println!("wrote and re-read {out_path}");
    Ok(())
}
