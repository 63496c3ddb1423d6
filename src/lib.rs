//! # chaoscast
//!
//! Generate chaotic benchmark time series (the Thomas attractor, the two-scale Lorenz-96 model,
//! Lorenz-63, one-scale Lorenz-96), measure their largest Lyapunov exponent, and store them as
//! Parquet or CSV with the recipe that made them.
//!
//! ```
//! use chaoscast::prelude::*;
//!
//! let mut spec = RecipeSpec::for_system(SystemName::Thomas);
//! spec.samples = Some(50);
//! spec.transient = Some(10.0);
//! let recipe = spec.resolve()?;
//! let data = generate(&recipe, &NoProgress)?;
//! assert_eq!((data.len(), data.vars()), (50, 3));
//! # Ok::<(), chaoscast::Error>(())
//! ```

#![warn(missing_docs)]

pub mod bio;
pub mod climate;
pub mod compare;
pub mod data;
pub mod error;
pub mod eval;
pub mod export;
pub mod forecaster;
pub mod metrics;
pub mod models;
#[cfg(feature = "plots")]
pub mod plots;
pub mod progress;
pub mod run;
pub mod systems;
pub mod train;

pub use error::{Error, Result};

/// The names most programs need.
pub mod prelude {
    pub use crate::data::{
        Dataset, Format, Recipe, RecipeSpec, generate, read_dataset, write_dataset,
    };
    pub use crate::error::{Error, Result};
    pub use crate::forecaster::{ForecastError, Forecaster};
    pub use crate::progress::{NoProgress, Progress};
    pub use crate::systems::lyapunov::{LyapunovConfig, largest_lyapunov};
    pub use crate::systems::{OdeSystem, SystemName};
}
