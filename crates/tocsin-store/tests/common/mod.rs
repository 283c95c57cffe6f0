//! Test support: the two backends behind one harness, a throwaway PostgreSQL
//! database per test, and builders for the tracker's types.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tocsin_event::{DocumentKind, EncounterKind, EventId, Identifier};
use tocsin_store::{Store, StoreError};
use tocsin_tracker::{
    Alert, AlertEncounter, AlertKind, AlertPatient, EncounterSummary, Expectation, ExpectationId,
    ExpectationStatus, MatchMethod, PatientKeys, RuleRef, Settlement,
};

/// Where the tests find PostgreSQL: a database they may connect to in order
/// to create and drop their own.
pub fn admin_url() -> String {
    std::env::var("TOCSIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// One way of holding a store that can be closed and opened again.
pub trait Backend {
    /// A short name for messages.
    fn name(&self) -> &'static str;
    /// The URL `tocsin_store::open` takes.
    fn url(&self) -> String;
    /// Opens (or reopens) the store.
    fn open(&self) -> Box<dyn Store> {
        tocsin_store::open(&self.url())
            .unwrap_or_else(|e| panic!("opening the {} store: {e}", self.name()))
    }
    /// Runs SQL outside the store (to tamper with the schema).
    fn raw_execute(&self, sql: &str);
    /// Runs a query that returns one integer.
    fn raw_i64(&self, sql: &str) -> i64;
}

/// A SQLite file in a temporary directory.
pub struct Sqlite {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Sqlite {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("nested").join("dir").join("tocsin.db");
        Self { _dir: dir, path }
    }
}

impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
    fn raw_execute(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.path).expect("raw SQLite connection");
        conn.execute_batch(sql).expect("raw SQLite statement");
    }
    fn raw_i64(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.path).expect("raw SQLite connection");
        conn.query_row(sql, [], |r| r.get(0))
            .expect("raw SQLite query")
    }
}

/// A PostgreSQL database of the test's own, dropped when the value is
/// dropped (also when the test panics).
pub struct Postgres {
    pub db: String,
    admin: String,
}

/// Connects to the administration database at `admin` (where test
/// databases are created, managed and dropped).
fn admin_client(admin: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Client::connect(admin, postgres::NoTls)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Postgres {
    pub fn new() -> Self {
        let admin = admin_url();
        let db = format!(
            "tocsin_store_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            Utc::now().timestamp_micros()
        );
        let mut client = admin_client(&admin).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is unreachable at {} ({e}); these tests need it and do not skip. \
                 Start PostgreSQL on 127.0.0.1:5432 with trust authentication, or set \
                 TOCSIN_TEST_POSTGRES_URL.",
                tocsin_store::redact_url(&admin)
            )
        });
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .expect("create test database");
        Self { db, admin }
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("raw PostgreSQL connection")
    }

    /// A connection to the administration database, to manage this one.
    fn admin(&self) -> postgres::Client {
        admin_client(&self.admin).expect("admin PostgreSQL connection")
    }

    /// Lets the database accept connections, or not (as an administrator
    /// does for maintenance).
    pub fn allow_connections(&self, allow: bool) {
        let mut client = self.admin();
        client
            .batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
                self.db
            ))
            .expect("ALTER DATABASE ... ALLOW_CONNECTIONS");
    }

    /// Terminates a server process and waits until it is gone.
    pub fn terminate(&self, pid: i32) {
        let mut client = self.admin();
        let done: bool = client
            .query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid])
            .expect("pg_terminate_backend")
            .get(0);
        assert!(done, "backend {pid} did not terminate");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        match admin_client(&self.admin) {
            Ok(mut client) => {
                if let Err(e) = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
                {
                    eprintln!("could not drop test database {}: {e}", self.db);
                }
            }
            Err(e) => eprintln!("could not drop test database {}: {e}", self.db),
        }
    }
}

impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }
    fn url(&self) -> String {
        let base = admin_url();
        let cut = base.rfind('/').expect("admin URL names a database");
        format!("{}/{}", &base[..cut], self.db)
    }
    fn raw_execute(&self, sql: &str) {
        self.client()
            .batch_execute(sql)
            .expect("raw PostgreSQL statement");
    }
    fn raw_i64(&self, sql: &str) -> i64 {
        self.client()
            .query_one(sql, &[])
            .expect("raw PostgreSQL query")
            .get(0)
    }
}

/// A fixed instant plus `minutes` (with a sub-second part, to check that
/// precision survives).
pub fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2019, 3, 31, 0, 0, 0).unwrap()
        + Duration::minutes(minutes)
        + Duration::milliseconds(250)
}

/// The facets of an expectation the queries filter on.
#[derive(Clone, Debug)]
pub struct Spec {
    pub id: &'static str,
    pub status: ExpectationStatus,
    pub document_kind: DocumentKind,
    pub encounter_kind: EncounterKind,
    pub site: Option<&'static str>,
    pub ended_at: i64,
    pub deadline: i64,
}

pub fn expectation(s: &Spec) -> Expectation {
    let settled = matches!(
        s.status,
        ExpectationStatus::OnTime | ExpectationStatus::Late
    );
    Expectation {
        id: ExpectationId(s.id.to_string()),
        status: s.status,
        document_kind: s.document_kind,
        encounter: EncounterSummary {
            id: Some(format!("V-{}", s.id)),
            reference: Some(format!("Encounter/{}", s.id)),
            kind: s.encounter_kind,
            ended_at: at(s.ended_at),
            site: s.site.map(str::to_string),
            specialty: Some("300".into()),
        },
        patient: PatientKeys {
            nhs_number: Some("9434765919".into()),
            local_ids: vec![Identifier {
                system: "MR".into(),
                value: "H123 \"quoted\" é".into(),
            }],
        },
        gp_practice: Some("A81001".into()),
        rule: RuleRef {
            id: "discharge-summary-24h".into(),
            clause: "SC11.6".into(),
        },
        deadline: at(s.deadline),
        due_soon_at: Some(at(s.deadline - 60)),
        created_by: EventId::from_string(format!("evt-{}", s.id)),
        settlement: settled.then(|| Settlement {
            document_id: format!("DOC-{}", s.id),
            issued_at: at(s.ended_at + 30),
            delay_seconds: 1800,
            matched_by: MatchMethod::EncounterId,
            message_id: format!("MSG-{}", s.id),
            event_id: EventId::from_string(format!("evt-doc-{}", s.id)),
        }),
        delivery: None,
        alerts_raised: if s.status == ExpectationStatus::Overdue {
            vec![AlertKind::Overdue]
        } else {
            vec![]
        },
    }
}

/// An open inpatient discharge-summary expectation.
pub fn open_expectation(id: &'static str, ended_at: i64) -> Expectation {
    expectation(&Spec {
        id,
        status: ExpectationStatus::Open,
        document_kind: DocumentKind::DischargeSummary,
        encounter_kind: EncounterKind::Inpatient,
        site: Some("RXX01"),
        ended_at,
        deadline: ended_at + 24 * 60,
    })
}

/// A batch that opens one expectation.
pub fn open_batch(id: &'static str) -> tocsin_store::Batch {
    tocsin_store::Batch::from_effects([tocsin_tracker::Effect::ExpectationChanged(
        open_expectation(id, 0),
    )])
}

/// The ids of a store's unsettled expectations, sorted.
pub fn unsettled_ids(store: &mut dyn Store) -> Vec<String> {
    let mut ids: Vec<String> = store
        .load_unsettled()
        .unwrap()
        .into_iter()
        .map(|e| e.id.0)
        .collect();
    ids.sort();
    ids
}

pub fn alert(id: &str, kind: AlertKind, raised_at: i64) -> Alert {
    Alert {
        alert_id: id.to_string(),
        kind,
        expectation_id: ExpectationId(format!("exp-{id}")),
        document_kind: DocumentKind::DischargeSummary,
        encounter: AlertEncounter {
            id: Some("V1".into()),
            kind: EncounterKind::Inpatient,
            ended_at: at(raised_at - 24 * 60),
            site: Some("RXX01".into()),
            specialty: None,
        },
        patient: AlertPatient {
            nhs_number: Some("9434765919".into()),
        },
        gp_practice: Some("A81001".into()),
        deadline: at(raised_at),
        raised_at: at(raised_at),
        rule: RuleRef {
            id: "discharge-summary-24h".into(),
            clause: "SC11.6".into(),
        },
        document: None,
        delay_seconds: None,
        failure: None,
    }
}

pub fn message(id: &str) -> tocsin_store::OutboxMessage {
    tocsin_store::OutboxMessage {
        id: id.to_string(),
        exchange: "tocsin.alerts".into(),
        routing_key: format!("overdue.discharge_summary.{id}"),
        content_type: "application/json".into(),
        body: format!("{{\"alert_id\":\"{id}\",\"bin\":\"\u{0}\"}}").into_bytes(),
    }
}

/// Asserts a result is an error and returns it.
pub fn expect_err<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) -> StoreError {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    }
}
