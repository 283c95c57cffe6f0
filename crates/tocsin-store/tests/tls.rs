//! TLS to the real PostgreSQL on loopback, which serves TLS with its own
//! certificate (Debian's `ssl-cert-snakeoil`, issued to `localhost`): each
//! `sslmode` encrypts or refuses as libpq's does, and what the server sees
//! (`pg_stat_ssl`) is the judge.

mod common;

use common::{Backend, Postgres, admin_url, expect_err};
use tocsin_store::PostgresStore;

/// The server's certificate file, and a check that it serves TLS at all.
fn server_certificate() -> String {
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).expect("admin");
    let show = |c: &mut postgres::Client, what: &str| -> String {
        c.query_one(&format!("SHOW {what}"), &[]).unwrap().get(0)
    };
    assert_eq!(
        show(&mut admin, "ssl"),
        "on",
        "PostgreSQL at 127.0.0.1 must have ssl = on for these tests (Debian's default)"
    );
    show(&mut admin, "ssl_cert_file")
}

/// Whether the server sees the store's connection as encrypted.
fn encrypted(store: &mut PostgresStore) -> bool {
    let pid = store.backend_pid().expect("backend pid");
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).expect("admin");
    admin
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", &[&pid])
        .expect("pg_stat_ssl")
        .get(0)
}

/// The test database's URL with another host and these options.
fn url(db: &Postgres, host: &str, query: &str) -> String {
    let base = db.url().replace("127.0.0.1", host);
    assert!(base.contains(host), "{base}");
    format!("{base}?{query}")
}

#[test]
fn each_sslmode_encrypts_or_refuses_as_libpq_does() {
    let cert = server_certificate();
    let db = Postgres::new();

    // No sslmode: prefer. The server offers TLS, so the link is encrypted.
    let mut store = PostgresStore::connect(&db.url()).expect("default");
    assert!(encrypted(&mut store), "prefer encrypts when offered");
    let mut store = PostgresStore::connect(&url(&db, "127.0.0.1", "sslmode=disable")).unwrap();
    assert!(!encrypted(&mut store), "disable stays plain");
    // require encrypts without checking the certificate (as libpq).
    let mut store = PostgresStore::connect(&url(&db, "127.0.0.1", "sslmode=require")).unwrap();
    assert!(encrypted(&mut store));

    // verify-full: the server's certificate, trusted through sslrootcert,
    // names localhost.
    let full = format!("sslmode=verify-full&sslrootcert={cert}");
    let mut store = PostgresStore::connect(&url(&db, "localhost", &full)).expect("verify-full");
    assert!(encrypted(&mut store));
    // ... and not 127.0.0.1: refused, and not worth retrying.
    let e = expect_err(
        PostgresStore::connect(&url(&db, "127.0.0.1", &full)).map(|_| ()),
        "verify-full on a name the certificate lacks",
    );
    let said = e.to_string();
    assert!(said.contains("not valid for name"), "{said}");
    assert!(!e.is_transient(), "{said}");

    // verify-ca checks the chain only: 127.0.0.1 is accepted.
    let ca = format!("sslmode=verify-ca&sslrootcert={cert}");
    let mut store = PostgresStore::connect(&url(&db, "127.0.0.1", &ca)).expect("verify-ca");
    assert!(encrypted(&mut store));

    // A CA that did not sign the server's certificate is refused.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, OTHER_CA).unwrap();
    let wrong = format!("sslmode=verify-ca&sslrootcert={}", other.display());
    let e = expect_err(
        PostgresStore::connect(&url(&db, "localhost", &wrong)).map(|_| ()),
        "a certificate from another CA",
    );
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    assert!(!e.is_transient(), "{e}");
}

/// A self-signed CA certificate (CN "tocsin test CA", made for this test
/// with openssl) that signed nothing the server holds.
const OTHER_CA: &str = include_str!("fixtures/other-ca.pem");
