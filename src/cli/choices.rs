//! The enumerated settings, one typed enum each, shared by the flags (`clap::ValueEnum`) and the
//! files (`Deserialize`: `train --config` TOML, `compare` experiments), so a bad value is refused
//! the same way everywhere: clap's "invalid value … [possible values: …]" on the command line,
//! serde's "unknown variant …, expected one of …" in a file, and never a silent default.

use chaoscast::bio::{BioPreset, FuzzyDistribution, FuzzyTarget, Scope};
use chaoscast::models::{Decoder, ModelKind, Preset};
use chaoscast::train::strategy::Sampling;
use chaoscast::train::trainer::OptimizerKind;

/// One enum of named choices, each spelled the same in flags and files.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
        )]
        pub(crate) enum $name {
            $(
                #[value(name = $text)]
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// The name flags and files use.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// `--model`.
    ModelName { Lstm = "lstm", Gru = "gru", Fdn = "fdn", Transformer = "transformer", Esn = "esn" }
);
choice!(
    /// `--preset`.
    PresetName { Default = "default", Small = "small", Paper = "paper" }
);
choice!(
    /// `--device`.
    DeviceName { Cpu = "cpu", Cuda = "cuda" }
);
choice!(
    /// `--optimizer`.
    OptimizerName { Sgd = "sgd", Adam = "adam" }
);
choice!(
    /// `--sam`.
    SamName { Asam = "asam", Sam = "sam", None = "none" }
);
choice!(
    /// `--bio`.
    BioName { None = "none", PaperTuned = "paper-tuned", PaperDefault = "paper-default" }
);
choice!(
    /// `--fl-dist`.
    FlDistName { Uniform = "uniform", Normal = "normal", LogNormal = "lognormal" }
);
choice!(
    /// `--fl-target`.
    FlTargetName { Gradient = "gradient", Update = "update" }
);
choice!(
    /// `--bio-scope`.
    ScopeName { All = "all", Reference = "reference" }
);
choice!(
    /// `--decoder`.
    DecoderName { Direct = "direct", Autoregressive = "autoregressive" }
);
choice!(
    /// `--tf-sampling`.
    SamplingName { PerStep = "per-step", PerSequence = "per-sequence" }
);
choice!(
    /// `--schedule`.
    ScheduleName { Cosine = "cosine", Plateau = "plateau" }
);

choice!(
    /// `--split`.
    SplitName { Chronological = "chronological", ByTrajectory = "by-trajectory" }
);

impl From<SplitName> for chaoscast::data::window::Split {
    fn from(s: SplitName) -> Self {
        match s {
            SplitName::Chronological => Self::Chronological,
            SplitName::ByTrajectory => Self::ByTrajectory,
        }
    }
}

impl From<ModelName> for ModelKind {
    fn from(m: ModelName) -> Self {
        match m {
            ModelName::Lstm => ModelKind::Lstm,
            ModelName::Gru => ModelKind::Gru,
            ModelName::Fdn => ModelKind::Fdn,
            ModelName::Transformer => ModelKind::Transformer,
            ModelName::Esn => ModelKind::Esn,
        }
    }
}

impl From<PresetName> for Preset {
    fn from(p: PresetName) -> Self {
        match p {
            PresetName::Default => Preset::Default,
            PresetName::Small => Preset::Small,
            PresetName::Paper => Preset::Paper,
        }
    }
}

impl From<OptimizerName> for OptimizerKind {
    fn from(o: OptimizerName) -> Self {
        match o {
            OptimizerName::Sgd => OptimizerKind::Sgd,
            OptimizerName::Adam => OptimizerKind::Adam,
        }
    }
}

impl From<BioName> for BioPreset {
    fn from(b: BioName) -> Self {
        match b {
            BioName::None => BioPreset::None,
            BioName::PaperTuned => BioPreset::PaperTuned,
            BioName::PaperDefault => BioPreset::PaperDefault,
        }
    }
}

impl From<FlDistName> for FuzzyDistribution {
    fn from(d: FlDistName) -> Self {
        match d {
            FlDistName::Uniform => FuzzyDistribution::Uniform,
            FlDistName::Normal => FuzzyDistribution::Normal,
            FlDistName::LogNormal => FuzzyDistribution::LogNormal,
        }
    }
}

impl From<FlTargetName> for FuzzyTarget {
    fn from(t: FlTargetName) -> Self {
        match t {
            FlTargetName::Gradient => FuzzyTarget::Gradient,
            FlTargetName::Update => FuzzyTarget::Update,
        }
    }
}

impl From<ScopeName> for Scope {
    fn from(s: ScopeName) -> Self {
        match s {
            ScopeName::All => Scope::All,
            ScopeName::Reference => Scope::Reference,
        }
    }
}

impl From<DecoderName> for Decoder {
    fn from(d: DecoderName) -> Self {
        match d {
            DecoderName::Direct => Decoder::Direct,
            DecoderName::Autoregressive => Decoder::Autoregressive,
        }
    }
}

impl From<SamplingName> for Sampling {
    fn from(s: SamplingName) -> Self {
        match s {
            SamplingName::PerStep => Sampling::PerStep,
            SamplingName::PerSequence => Sampling::PerSequence,
        }
    }
}
