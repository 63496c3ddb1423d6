//! The one integration-test binary (each extra binary relinks Burn): modules by area.

mod cli;
mod data;
mod systems;
