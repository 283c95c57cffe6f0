//! A store built aside (`open_for_build`, as `tocsin replay --store` uses
//! it): a new SQLite file appears under its name only when the build is
//! closed, complete; an unfinished build leaves nothing behind; an existing
//! store is written in place.

mod common;

use std::path::{Path, PathBuf};

use tocsin_store::{BuildMode, Store};

use common::{Backend, Sqlite, open_batch, unsettled_ids};

fn partial(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

/// Opens the store for a build, checking how.
fn build(url: &str, mode: BuildMode) -> Box<dyn Store> {
    let (store, opened) = tocsin_store::open_for_build(url).expect("open for a build");
    assert_eq!(opened, mode, "{url}");
    store
}

#[test]
fn a_new_sqlite_store_appears_only_when_its_build_is_closed() {
    let s = Sqlite::new();
    let mut store = build(&s.url(), BuildMode::Aside);
    store.commit(&open_batch("a")).unwrap();
    store.commit(&open_batch("b")).unwrap();
    assert!(!s.path.exists(), "not under its name while being built");
    assert!(partial(&s.path).exists(), "built beside it");
    // The builder reads back what it wrote (replay's report does).
    assert_eq!(unsettled_ids(store.as_mut()), ["a", "b"]);

    store.close().expect("close");
    assert!(s.path.exists());
    assert!(!partial(&s.path).exists());
    // A gateway opens it as any store, in WAL mode, with everything in it.
    let mut reopened = s.open();
    assert_eq!(unsettled_ids(reopened.as_mut()), ["a", "b"]);
    let journal: String = rusqlite::Connection::open(&s.path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn an_unfinished_build_leaves_nothing_behind() {
    let s = Sqlite::new();
    let mut store = build(&s.url(), BuildMode::Aside);
    store.commit(&open_batch("a")).unwrap();
    drop(store);
    assert!(!s.path.exists());
    assert!(!partial(&s.path).exists());
}

#[test]
fn a_stale_partial_file_is_replaced() {
    let s = Sqlite::new();
    std::fs::create_dir_all(s.path.parent().unwrap()).unwrap();
    std::fs::write(partial(&s.path), b"left by a killed replay, not a database").unwrap();
    let mut store = build(&s.url(), BuildMode::Aside);
    store.commit(&open_batch("a")).unwrap();
    store.close().expect("close");
    assert_eq!(unsettled_ids(s.open().as_mut()), ["a"]);
}

#[test]
fn an_existing_store_is_written_in_place() {
    let s = Sqlite::new();
    s.open().commit(&open_batch("old")).unwrap();
    let mut store = build(&s.url(), BuildMode::InPlace);
    store.commit(&open_batch("new")).unwrap();
    assert!(!partial(&s.path).exists(), "no build aside");
    // Committed in place: another connection sees it before the close.
    assert_eq!(unsettled_ids(s.open().as_mut()), ["new", "old"]);
    store.close().expect("close");
    assert_eq!(unsettled_ids(s.open().as_mut()), ["new", "old"]);
}

#[test]
fn memory_and_bad_urls_behave_as_with_open() {
    let mut mem = build("sqlite::memory:", BuildMode::InPlace);
    mem.commit(&open_batch("m")).unwrap();
    assert_eq!(unsettled_ids(mem.as_mut()), ["m"]);
    mem.close().unwrap();
    let Err(e) = tocsin_store::open_for_build("sqlite://") else {
        panic!("an empty path must be refused");
    };
    assert!(e.to_string().contains("no file path"), "{e}");
}
