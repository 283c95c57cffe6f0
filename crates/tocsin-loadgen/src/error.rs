//! Errors of the load generator: only its profile can be wrong; generation
//! itself cannot fail.

use thiserror::Error;

/// Why a traffic profile was refused.
#[derive(Debug, Error)]
pub enum ProfileError {
    /// Not valid TOML, or a key of the wrong type, missing or unknown.
    #[error("loadgen profile: {0}")]
    Parse(String),
    /// A value out of range: names the key and the reason.
    #[error("loadgen profile: {0}: {1}")]
    Invalid(String, String),
}
