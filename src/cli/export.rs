//! `chaoscast export`: a run's trained weights as a file other tools read.

use std::path::PathBuf;

use anyhow::Result;

/// The file formats `export` writes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// safetensors: f32 tensors named by module path, with the run's config and every
    /// tensor's layout in the metadata.
    Safetensors,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    chaoscast export runs/lstm --format safetensors --output lstm.safetensors\n\n\
    The file holds the model as it forecasts (under weight splitting, the grouped weights), in\n\
    chaoscast's layout (matrices multiply from the right, y = x·W: the transposes of PyTorch's\n\
    weights). Its metadata holds the run's config.json (chaoscast.run), the forward pass in\n\
    words (chaoscast.forward) and each tensor's shape and role (chaoscast.layout).\n\
    benches/export_torch.py loads it into PyTorch modules and checks them against predict.")]
pub(crate) struct Args {
    /// A run folder written by `chaoscast train`.
    run: PathBuf,
    /// The file format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Where to write the file [default: RUN/model.safetensors].
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let ExportFormat::Safetensors = args.format;
    let out = args
        .output
        .unwrap_or_else(|| args.run.join("model.safetensors"));
    let layout = chaoscast::export::export_run(&args.run, &out, args.force)?;
    let values: usize = layout
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    println!(
        "wrote {} tensors ({values} values) of {} to {}",
        layout.len(),
        args.run.display(),
        out.display()
    );
    Ok(())
}
