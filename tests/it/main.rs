//! The one integration-test binary (each extra binary relinks Burn): modules by area.

/// The same allocator as the binary, so training here behaves as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod climate;
mod data;
mod embed;
mod export;
mod settings;
mod sweep;
mod systems;
mod train;

/// The sorted file names in a folder.
pub fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
