//! Versioned schema migrations, embedded from `migrations/{sqlite,postgres}/`.
//!
//! Each backend applies, in one transaction at open, every migration newer
//! than the highest version in its `schema_version` table, and refuses a
//! database whose version is newer than the last one listed here.

use crate::StoreError;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version: 1, 2, 3... in order, the same for both backends.
    pub version: i64,
    /// Its name (the file name after `NNNN_`).
    pub name: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

/// One backend's list: `(version, file prefix, name)` triples whose SQL is read from
/// `migrations/<dir>/<NNNN>_<name>.sql`, the same list for both backends.
macro_rules! migrations {
    ($dir:literal: $(($version:literal, $file:literal, $name:literal)),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $dir, "/", $file, "_", $name, ".sql")),
        }),*]
    };
}

/// SQLite migrations, in order.
pub const SQLITE: &[Migration] = migrations!("sqlite":
    (1, "0001", "initial"),
    (2, "0002", "deliveries"),
    (3, "0003", "retention"),
    (4, "0004", "seen_key_time"),
    (5, "0005", "report_delay"),
    (6, "0006", "report_specialty_practice"),
    (7, "0007", "alert_specialty"),
    (8, "0008", "alert_seq"),
    (9, "0009", "refill_nul_bodies"),
    (10, "0010", "report_delivery"),
);

/// PostgreSQL migrations, in order.
pub const POSTGRES: &[Migration] = migrations!("postgres":
    (1, "0001", "initial"),
    (2, "0002", "deliveries"),
    (3, "0003", "retention"),
    (4, "0004", "seen_key_time"),
    (5, "0005", "report_delay"),
    (6, "0006", "report_specialty_practice"),
    (7, "0007", "alert_specialty"),
    (8, "0008", "alert_seq"),
    (9, "0009", "refill_nul_bodies"),
    (10, "0010", "report_delivery"),
);

/// The newest schema version this code knows.
pub fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map(|m| m.version).unwrap_or(0)
}

/// One backend's side of a migration, inside the transaction it opened:
/// what the version check and the apply loop of [`apply_pending`] need, so
/// that both backends judge versions and report failures alike.
pub(crate) trait SchemaTx {
    /// The highest version recorded (0 for a new database), creating the
    /// `schema_version` table when it is missing.
    fn current_version(&mut self) -> Result<i64, StoreError>;
    /// Runs one migration's SQL (`Err` from this step is reported as `apply`).
    fn apply(&mut self, m: &Migration) -> Result<(), StoreError>;
    /// Records one migration as applied.
    fn record(&mut self, m: &Migration) -> Result<(), StoreError>;
}

/// Applies every migration newer than the database, in order, refusing a
/// database newer than this code. The caller commits.
pub(crate) fn apply_pending(
    tx: &mut impl SchemaTx,
    migrations: &[Migration],
    backend: &'static str,
) -> Result<(), StoreError> {
    let current = tx.current_version()?;
    let known = latest(migrations);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for m in migrations.iter().filter(|m| m.version > current) {
        let fail = |source| StoreError::Migration {
            version: m.version,
            name: m.name,
            source: Box::new(source),
        };
        tx.apply(m).map_err(fail)?;
        tx.record(m).map_err(fail)?;
        tracing::info!(
            backend,
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(dir: &str) -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .expect("migrations directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    fn listed(ms: &[Migration]) -> Vec<String> {
        ms.iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect()
    }

    #[test]
    fn every_migration_file_is_listed_in_order() {
        assert_eq!(files("sqlite"), listed(SQLITE));
        assert_eq!(files("postgres"), listed(POSTGRES));
        for ms in [SQLITE, POSTGRES] {
            for (i, m) in ms.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "versions are 1, 2, 3...");
            }
        }
    }

    #[test]
    fn both_backends_know_the_same_versions() {
        assert_eq!(
            SQLITE
                .iter()
                .map(|m| (m.version, m.name))
                .collect::<Vec<_>>(),
            POSTGRES
                .iter()
                .map(|m| (m.version, m.name))
                .collect::<Vec<_>>()
        );
    }
}
