//! `tocsin check-config`: validate configuration, mappings and policy.

use std::process::ExitCode;

use crate::config::Config;

/// Loading the configuration already validated it; what is read only when
/// used (the store's password file) is read here too, so that a file the
/// gateway could not read is found before it starts.
pub fn run(config: &Config) -> Result<ExitCode, Box<dyn std::error::Error>> {
    config.store.password()?;
    if let Some(path) = config.store.ignored_password_file() {
        eprintln!(
            "note: [store] password_file {} is ignored: the store is not PostgreSQL",
            path.display()
        );
    }
    if config.env_overrides.is_empty() {
        println!("configuration OK: {}", config.origin);
    } else {
        println!(
            "configuration OK: {}, with {} from the environment",
            config.origin,
            config.env_overrides.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
