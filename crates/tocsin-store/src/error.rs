//! The store's one error type, and the classification callers need to decide
//! between retrying an input and rejecting it.

use std::error::Error as _;

/// Everything that can go wrong in the store. Connection strings in these
/// errors are always redacted (see [`redact_url`]); no variant carries a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one the store understands.
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The parent directory of a SQLite file could not be created.
    #[error("cannot create directory {path} for the SQLite store: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A store file's companion could not be handled: a store built aside
    /// (`tocsin replay --store` with a new file) prepared or moved into
    /// place, or the writer's lock file (`PATH.lock`) opened.
    #[error("cannot {op} store file {path}: {source}")]
    Build {
        /// What the store was doing (`sync`, `rename into place`...).
        op: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process writes this store (a second `tocsin run` on the same
    /// configuration, `tocsin replay --store` on a gateway's store): two
    /// writers would each track half the traffic (false `overdue` alerts),
    /// overwrite each other's expectations and send every alert twice.
    #[error(
        "store {store} is in use by another writer ({how}): stop that tocsin (a gateway or `replay --store`) or name another store"
    )]
    InUse {
        /// The store (redacted URL or file).
        store: String,
        /// What holds it: the lock file, or PostgreSQL's advisory lock.
        how: String,
    },
    /// The SQLite store's file can be read but not written (its or its
    /// directory's permissions, a read-only filesystem). Opened anyway, the
    /// gateway failed its first commit, exited, and was restarted onto the
    /// same inputs until the broker dead-lettered them at their delivery
    /// limit; refused at open, it waits (not ready) until the file is
    /// writable again.
    #[error(
        "SQLite store {path} can be read but not written (file or directory permissions, a read-only filesystem): tocsin must write it"
    )]
    ReadOnly {
        /// The store file.
        path: String,
    },
    /// The SQLite store's file has other names (hard links). SQLite keeps
    /// its write-ahead log and lock beside the name a store is opened by,
    /// so a writer through another name would write with a log and lock of
    /// its own, and the two would corrupt the store; the writer lock, kept
    /// beside the name too, cannot tell. Refused when a writer claims it.
    #[error(
        "SQLite store {path} has {links} names (hard links): a writer through another name \
         would use its own write-ahead log and lock and corrupt the store; remove the other \
         names (`find / -xdev -samefile {path}`), copying the file rather than linking it"
    )]
    HardLinked {
        /// The store file.
        path: String,
        /// How many names it has.
        links: u64,
    },
    /// The SQLite store's file was deleted, or another moved over it, while
    /// the store had it open: what it writes would go where no one reads
    /// it again, and a restart would open an empty store in its place.
    #[error(
        "SQLite store {path} was {how} while open: nothing more is written to it; \
         put the store file back, or restart tocsin to open the file now at that path"
    )]
    FileGone {
        /// The store file.
        path: String,
        /// `deleted` or `replaced by another file`.
        how: &'static str,
    },
    /// The SQLite store's file is missing or empty while its write-ahead
    /// log beside it holds data: the store was deleted or moved, and
    /// opening would start an empty store, every open expectation lost.
    #[error(
        "SQLite store {path} is missing or empty, but its write-ahead log {wal} holds data: \
         the store was deleted or moved; restore it from a backup, or remove {wal} (and the \
         -shm file beside it) to start an empty store"
    )]
    Orphaned {
        /// The store file.
        path: String,
        /// Its write-ahead log.
        wal: String,
    },
    /// A SQLite file that holds tables but no tocsin schema: another
    /// application's database, which migrating would change.
    #[error(
        "{path} is not a tocsin store: it holds other tables ({tables}) and no schema_version; \
         name another file"
    )]
    NotATocsinStore {
        /// The file.
        path: String,
        /// Some of its tables.
        tables: String,
    },
    /// A SQLite operation at open, with the file it was on.
    #[error("SQLite store {path}: {source}")]
    AtFile {
        /// The store file.
        path: String,
        /// The cause.
        source: Box<StoreError>,
    },
    /// Another run is building the same new store file: two replays into
    /// one new file would each overwrite the other's work.
    #[error(
        "store file {path} is being built by another run (it holds {partial}); \
         wait for that run to finish or name another file"
    )]
    BuildInProgress {
        /// The store file.
        path: String,
        /// The file that run is building.
        partial: String,
    },
    /// A file appeared under a built store's name while it was built (another
    /// run, a gateway started on it): it is left alone, not overwritten.
    #[error(
        "store file {path} appeared while this run was building it; it is left as it \
         was, and the store this run built is at {partial}"
    )]
    BuildTargetTaken {
        /// The store file that appeared.
        path: String,
        /// Where the built store is left.
        partial: String,
    },
    /// A SQLite operation failed.
    #[error("SQLite {op} failed: {source}")]
    Sqlite {
        /// What the store was doing.
        op: &'static str,
        /// The cause.
        source: rusqlite::Error,
    },
    /// Connecting to PostgreSQL failed.
    #[error("cannot connect to PostgreSQL at `{url}`: {}", with_causes(.source))]
    PostgresConnect {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        source: postgres::Error,
    },
    /// A PostgreSQL operation failed.
    #[error("PostgreSQL {op} failed: {}", describe_pg(.source))]
    Postgres {
        /// What the store was doing.
        op: &'static str,
        /// The cause.
        source: postgres::Error,
    },
    /// A value could not be serialised to JSON for storage.
    #[error("cannot serialise {what} `{id}` for storage: {source}")]
    Serialise {
        /// The kind of value (`expectation`, `alert`, `state record`).
        what: &'static str,
        /// Its id.
        id: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// A stored body no longer parses as the type the code expects (a body
    /// written by an incompatible version, or edited by hand).
    #[error("stored {table} row `{id}` does not parse: {source}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        id: String,
        /// The cause, with the stored value withheld.
        source: ParseFailure,
    },
    /// A stored column holds a value out of range (e.g. a timestamp).
    #[error("stored {table} row `{id}` has an invalid {column}")]
    InvalidColumn {
        /// The table.
        table: &'static str,
        /// The row's key.
        id: String,
        /// The column.
        column: &'static str,
    },
    /// The database was migrated by a newer tocsin than this one.
    #[error(
        "database schema version {found} is newer than this tocsin knows ({known}); upgrade tocsin or use another database"
    )]
    SchemaTooNew {
        /// The version found in `schema_version`.
        found: i64,
        /// The newest version this code knows.
        known: i64,
    },
    /// A migration failed to apply.
    #[error("migration {version:04}_{name} failed: {source}")]
    Migration {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The cause.
        source: Box<StoreError>,
    },
    /// A pagination cursor was not one this store issued.
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// Why it was refused.
        reason: &'static str,
    },
    /// A query's parameters make no sense (e.g. a limit of zero).
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// Why it was refused.
        reason: &'static str,
    },
}

impl StoreError {
    /// True for failures that may pass on their own (a connection lost, the
    /// database busy or locked, a serialization failure or deadlock, a disk
    /// full): the caller should retry the same operation later, not reject the
    /// input. Constraint, schema and data errors are not transient.
    ///
    /// A commit is idempotent (expectations and state are upserts, alerts,
    /// outbox messages and inputs are insert-if-absent), so retrying a batch
    /// whose commit outcome is unknown (connection lost during COMMIT) is safe.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sqlite { source, .. } => sqlite_transient(source),
            Self::PostgresConnect { source, .. } => {
                pg_transient(source) || pg_not_accepting_connections(source)
            }
            Self::Postgres { source, .. } => pg_transient(source),
            Self::Migration { source, .. } => source.is_transient(),
            // The other writer may be a gateway that is stopping (a restart)
            // or a dead session the server has not noticed yet: waiting is
            // right, and nothing is written meanwhile.
            Self::InUse { .. } => true,
            // Mended from outside (permissions, a remount), as a full disk.
            Self::ReadOnly { .. } => true,
            // Nothing is written meanwhile: an operator puts the file back
            // (or restarts onto the new one); store down says so.
            Self::FileGone { .. } => true,
            Self::AtFile { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

fn sqlite_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(code) => matches!(
            code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                // Permissions or a filesystem remounted read-only: mended
                // from outside, as a full disk is. Taken as permanent, a
                // commit's failure made the gateway exit and be restarted
                // onto the same inputs until the broker dead-lettered them.
                | ErrorCode::ReadOnly
        ),
        None => false,
    }
}

/// A connection refused because the database does not accept connections
/// for now (`ALTER DATABASE ... ALLOW_CONNECTIONS false`, as for
/// maintenance): SQLSTATE 55000, which passes once the administrator allows
/// them again. Only at connect: from a statement, 55000 means an object in
/// the wrong state, which retrying does not mend.
fn pg_not_accepting_connections(e: &postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.code().code() == "55000")
}

/// PostgreSQL SQLSTATEs that describe a passing condition.
pub(crate) fn pg_transient(e: &postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08") // connection exception
            || code.starts_with("53") // insufficient resources
            || matches!(
                code,
                "40001" // serialization_failure
                    | "40P01" // deadlock_detected
                    | "55P03" // lock_not_available
                    | "57P01" // admin_shutdown (pg_terminate_backend, restart)
                    | "57P02" // crash_shutdown
                    | "57P03" // cannot_connect_now
                    | "57014" // query_canceled (statement timeout)
                    // read_only_sql_transaction: a read-only replica after a
                    // failover, or `default_transaction_read_only` set for
                    // maintenance; the connection is dropped and the next
                    // one sees the database as it is then.
                    | "25006"
            );
    }
    if e.is_closed() {
        return true;
    }
    // No server error: an I/O failure (refused, reset, timed out) is passing;
    // a configuration or protocol error is not, nor a TLS refusal (an
    // untrusted certificate, a wrong host name), though the TLS layer
    // reports it as I/O: retrying cannot mend it.
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return !io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>());
        }
        source = s.source();
    }
    false
}

/// An error and its causes, `: `-separated: the client's own message is
/// often only the stage that failed ("error performing TLS handshake"), the
/// reason (an untrusted certificate, a refused connection) is its cause.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The server's message with its SQLSTATE, for operators.
fn describe_pg(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Replaces the password in a connection string with `***`: both the URL form
/// (`postgres://user:secret@host/db`) and the key-value form
/// (`host=h password=secret`). Everything that prints a store URL goes
/// through this.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let start = scheme_end + 3;
        let mut out = url.to_string();
        // The user-info runs to the last `@`, and the password from the
        // first `:` to it, not to the first `/`, `?` or `#`: an unencoded
        // password may hold any of them (a base64 one often has `/`), and
        // a client that reads it so would connect while this printed it
        // whole. A user name holding `/`, `?` or `#` cannot be told from a
        // host, so the whole user-info goes then. Cutting too much (an `@`
        // in a query value) only hides more. `tocsin_amqp::redact_url`
        // cuts the same way; keep them alike.
        if let Some(at) = rest.rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            if rest[..colon].contains(['/', '?', '#']) {
                out.replace_range(start..start + at, "***");
            } else {
                out.replace_range(start + colon + 1..start + at, "***");
            }
        }
        return redact_query_password(&out);
    }
    redact_key_value(url)
}

/// `?password=secret` in a URL's query string.
fn redact_query_password(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_string();
    };
    let (head, query) = url.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{head}{}", parts.join("&"))
}

/// `password=secret` (or `password='se cret'`) in a key-value string.
fn redact_key_value(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let Some(pos) = lower.find("password") else {
        return s.to_string();
    };
    let after = &s[pos + "password".len()..];
    let trimmed = after.trim_start();
    let Some(value) = trimmed.strip_prefix('=') else {
        return s.to_string();
    };
    let value = value.trim_start();
    let value_start = s.len() - value.len();
    let value_len = if let Some(quoted) = value.strip_prefix('\'') {
        quoted.find('\'').map(|i| i + 2).unwrap_or(value.len())
    } else {
        value.find(char::is_whitespace).unwrap_or(value.len())
    };
    let mut out = s.to_string();
    out.replace_range(value_start..value_start + value_len, "***");
    out
}

/// Why a stored body did not parse, as the store reports it: what was
/// wrong and where, never the stored value itself. serde's data errors
/// quote the value they met (`invalid type: string "...", expected u64`),
/// and the bodies of the expectations and state tables hold NHS numbers and
/// names, while a store error is logged and printed. Exists so that a
/// damaged row cannot put patient data into a log.
#[derive(Debug)]
pub struct ParseFailure(serde_json::Error);

impl From<serde_json::Error> for ParseFailure {
    fn from(e: serde_json::Error) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        let text = e.to_string();
        // serde_json ends its message with " at line L column C" when it
        // knows where.
        let message = match text.rfind(" at line ") {
            Some(i) if e.line() > 0 => &text[..i],
            _ => text.as_str(),
        };
        match e.classify() {
            // Syntax messages name the token expected, never the input.
            serde_json::error::Category::Data => f.write_str(&withhold_value(message))?,
            _ => f.write_str(message)?,
        }
        if e.line() > 0 {
            write!(f, " at line {} column {}", e.line(), e.column())?;
        }
        Ok(())
    }
}

/// The inner error is not offered as a source: printers that walk the
/// chain would show its unredacted message.
impl std::error::Error for ParseFailure {}

/// A serde data error's message with any value it quotes taken out: field
/// names and what was expected stay, since they come from the code's types.
fn withhold_value(message: &str) -> String {
    const KEPT: [&str; 4] = [
        "missing field `",
        "duplicate field `",
        "unknown field `",
        "invalid length ",
    ];
    if KEPT.iter().any(|k| message.starts_with(k)) {
        return message.to_string();
    }
    for lead in ["invalid type", "invalid value", "unknown variant"] {
        if message.starts_with(lead) {
            if let Some(i) = message.rfind(", expected ") {
                return format!("{lead} (value withheld){}", &message[i..]);
            }
            return format!("{lead} (value withheld)");
        }
    }
    "invalid data (message withheld: it may quote the stored value)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_redacted() {
        assert_eq!(
            redact_url("postgres://tocsin:s3cr%40t@db.example:5432/tocsin"),
            "postgres://tocsin:***@db.example:5432/tocsin"
        );
        assert_eq!(
            redact_url("postgres://tocsin@db/tocsin?password=hunter2&sslmode=disable"),
            "postgres://tocsin@db/tocsin?password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("host=db user=tocsin password='a b c' dbname=x"),
            "host=db user=tocsin password=*** dbname=x"
        );
        assert_eq!(
            redact_url("host=db password = hunter2"),
            "host=db password = ***"
        );
        assert_eq!(
            redact_url("sqlite://data/tocsin.db"),
            "sqlite://data/tocsin.db"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        // Unencoded `/` and `?` in the password.
        for url in [
            "postgres://tocsin:s3cr/t+x@db/tocsin",
            "postgres://tocsin:a?b/c@db:5432/tocsin?sslmode=require",
        ] {
            let shown = redact_url(url);
            assert!(shown.starts_with("postgres://tocsin:***@db"), "{shown}");
            assert!(!shown.contains("s3cr") && !shown.contains("a?b"), "{shown}");
        }
        // `#` and `@` in the password; an `@` in the user name.
        assert_eq!(
            redact_url("postgres://tocsin:a#b@c@db/tocsin"),
            "postgres://tocsin:***@db/tocsin"
        );
        assert_eq!(
            redact_url("postgres://me@trust:s3cret@db/tocsin"),
            "postgres://me@trust:***@db/tocsin"
        );
        // A user name with `/` cannot be told from a host: all goes.
        assert_eq!(
            redact_url("postgres://to/csin:s3cret@db/tocsin"),
            "postgres://***@db/tocsin"
        );
        assert_eq!(
            redact_url("postgres://db:5432/tocsin"),
            "postgres://db:5432/tocsin",
            "a port is no password"
        );
    }

    /// A write refused because the file may only be read (its permissions
    /// or a read-only filesystem, here a connection opened read-only) waits
    /// to be mended, as a full disk does: taken as permanent, the gateway
    /// exited and was restarted onto the same inputs until the broker
    /// dead-lettered them.
    #[test]
    fn a_write_to_a_read_only_sqlite_file_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let ro = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        assert!(ro.is_readonly(rusqlite::MAIN_DB).unwrap());
        let source = ro.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        let e = StoreError::Sqlite {
            op: "commit",
            source,
        };
        assert!(e.is_transient(), "{e}");
        let e = StoreError::ReadOnly {
            path: path.display().to_string(),
        };
        assert!(
            e.is_transient() && e.to_string().contains("not written"),
            "{e}"
        );
    }

    #[test]
    fn invalid_url_display_never_shows_the_password() {
        let e = StoreError::InvalidUrl {
            url: redact_url("postgres://u:topsecret@h:notaport/d"),
            reason: "bad port".into(),
        };
        assert!(!e.to_string().contains("topsecret"), "{e}");
    }
}

#[cfg(test)]
mod parse_failure_tests {
    use super::ParseFailure;

    /// `serde_json`'s own message for `text` read as `T`, and the store's.
    fn both<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> (String, String) {
        let e = serde_json::from_str::<T>(text).expect_err(text);
        (e.to_string(), ParseFailure::from(e).to_string())
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Patient {
        nhs_number: u64,
        name: String,
        kind: Kind,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Inpatient,
    }

    #[test]
    fn a_quoted_value_is_withheld_and_the_rest_kept() {
        for (text, found) in [
            (r#"{"nhs_number": "9434765919"}"#, "9434765919"),
            (r#"{"nhs_number": 1, "name": 9434765919}"#, "9434765919"),
            (
                r#"{"nhs_number": 1, "name": "Smith", "kind": "Jane Smith"}"#,
                "Jane Smith",
            ),
            (r#"{"nhs_number": -9434765919}"#, "9434765919"),
        ] {
            let (serde, ours) = both::<Patient>(text);
            assert!(
                serde.contains(found),
                "the test needs serde to quote it: {serde}"
            );
            assert!(!ours.contains(found), "{ours}");
            assert!(ours.contains("(value withheld), expected "), "{ours}");
            assert!(ours.contains(" at line 1 column "), "{ours}");
        }
    }

    #[test]
    fn messages_that_quote_no_value_are_kept_whole() {
        for text in [
            r#"{"nhs_number": 1}"#,
            r#"{"nhs_number": 1, "nhs_number": 2, "name": "x", "kind": "inpatient"}"#,
            r#"{"nhs_number": "#,
            r#"{"nhs_number" 1}"#,
            r#"{"nhs_number": 1"#,
        ] {
            let (serde, ours) = both::<Patient>(text);
            assert_eq!(ours, serde, "{text}");
        }
    }
}
