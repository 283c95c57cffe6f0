//! Versioned schema migrations, embedded from `migrations/{sqlite,postgres}/`.
//!
//! Each backend applies, in one transaction at open, every migration newer
//! than the highest version in its `schema_version` table, and refuses a
//! database whose version is newer than the last one listed here.

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

/// SQLite migrations, in order.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "deliveries",
        sql: include_str!("../migrations/sqlite/0002_deliveries.sql"),
    },
];

/// PostgreSQL migrations, in order.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "deliveries",
        sql: include_str!("../migrations/postgres/0002_deliveries.sql"),
    },
];

/// The newest schema version this code knows.
pub fn latest(migrations: &[Migration]) -> i64 {
    migrations.last().map(|m| m.version).unwrap_or(0)
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
