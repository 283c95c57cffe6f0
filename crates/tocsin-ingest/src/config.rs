//! The ingestion configuration: the code tables of `config/mappings.toml`
//! and the input size limit.

use serde::Deserialize;
use thiserror::Error;
use tocsin_fhir::FhirConfig;
use tocsin_hl7::Hl7Config;

/// Everything the normalisers need: code tables and limits.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// HL7 v2 settings and code tables (`[hl7]` of the mappings file).
    pub hl7: Hl7Config,
    /// FHIR settings and code tables (`[fhir]` of the mappings file).
    pub fhir: FhirConfig,
    /// Largest unit of input, in bytes: a whole FHIR resource (file or AMQP
    /// body) or one NDJSON line ([`crate::ingest`]).
    pub max_input_bytes: usize,
}

/// The default input limit: 64 MiB, room for a large batch file.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            hl7: Hl7Config::default(),
            fhir: FhirConfig::default(),
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// Why a mappings file could not be used: the TOML error, whose span names
/// the line.
#[derive(Debug, Error)]
#[error("mappings: {0}")]
pub struct ConfigError(#[from] pub toml::de::Error);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingsFile {
    hl7: Hl7Config,
    fhir: FhirConfig,
}

impl IngestConfig {
    /// Reads a mappings file (the text of `config/mappings.toml` or a trust's
    /// copy); the error names the line and the reason.
    pub fn from_mappings_toml(text: &str, max_input_bytes: usize) -> Result<Self, ConfigError> {
        let m: MappingsFile = toml::from_str(text)?;
        Ok(Self {
            hl7: m.hl7,
            fhir: m.fhir,
            max_input_bytes,
        })
    }
}
