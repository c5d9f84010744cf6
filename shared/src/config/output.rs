//! What the alert sinks write (`MSSP_OUTPUT_FORMAT` for the fetcher, `output_format` for the
//! local `mssp`).

use std::str::FromStr;

/// The objects a delivery writes: the raw records (`alerts/…`, schema `mssp.alert/1`), their OCSF
/// rendering (`ocsf/…`, one Detection Finding per line), or both, with the same key below the
/// prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// `raw`: `alerts/…` only (the default).
    #[default]
    Raw,
    /// `ocsf`: `ocsf/…` only.
    Ocsf,
    /// `raw+ocsf`: both.
    RawAndOcsf,
}

impl OutputFormat {
    /// Whether raw objects are written.
    pub fn raw(self) -> bool {
        matches!(self, OutputFormat::Raw | OutputFormat::RawAndOcsf)
    }

    /// Whether OCSF objects are written.
    pub fn ocsf(self) -> bool {
        matches!(self, OutputFormat::Ocsf | OutputFormat::RawAndOcsf)
    }

    /// `raw`, `ocsf`, `raw+ocsf`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Raw => "raw",
            OutputFormat::Ocsf => "ocsf",
            OutputFormat::RawAndOcsf => "raw+ocsf",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "raw" => Ok(OutputFormat::Raw),
            "ocsf" => Ok(OutputFormat::Ocsf),
            "raw+ocsf" | "ocsf+raw" => Ok(OutputFormat::RawAndOcsf),
            other => Err(format!("{other:?}: raw, ocsf or raw+ocsf")),
        }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
