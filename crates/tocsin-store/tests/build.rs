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
    let (store, opened) = tocsin_store::open_for_build(url, None).expect("open for a build");
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
    let Err(e) = tocsin_store::open_for_build("sqlite://", None) else {
        panic!("an empty path must be refused");
    };
    assert!(e.to_string().contains("no file path"), "{e}");
}

#[test]
fn a_second_build_of_the_same_new_store_is_refused_while_the_first_runs() {
    let s = Sqlite::new();
    let mut first = build(&s.url(), BuildMode::Aside);
    first.commit(&open_batch("a")).unwrap();

    let Err(e) = tocsin_store::open_for_build(&s.url(), None) else {
        panic!("a second build of the same file must be refused");
    };
    assert!(
        matches!(e, tocsin_store::StoreError::BuildInProgress { .. }),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(message.contains(&s.path.display().to_string()), "{message}");
    assert!(message.contains("another run"), "{message}");

    // The refused run took nothing from the first: its file and its rows
    // are still there, and it completes.
    first.commit(&open_batch("b")).unwrap();
    assert_eq!(unsettled_ids(first.as_mut()), ["a", "b"]);
    first.close().expect("close");
    assert_eq!(unsettled_ids(s.open().as_mut()), ["a", "b"]);
    // Once it is in place, a later run writes it in place.
    build(&s.url(), BuildMode::InPlace).close().unwrap();
}

#[test]
fn a_file_that_appears_under_the_name_during_a_build_is_not_overwritten() {
    let s = Sqlite::new();
    let mut built = build(&s.url(), BuildMode::Aside);
    built.commit(&open_batch("built")).unwrap();
    // Meanwhile a gateway starts on the same path and commits.
    s.open().commit(&open_batch("gateway")).unwrap();

    let Err(e) = built.close() else {
        panic!("the build must not replace a store that appeared meanwhile");
    };
    assert!(
        matches!(e, tocsin_store::StoreError::BuildTargetTaken { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains(&partial(&s.path).display().to_string()),
        "the error says where the built store is: {e}"
    );
    assert_eq!(unsettled_ids(s.open().as_mut()), ["gateway"]);
    // Nothing built is lost: the complete store is left at its partial name.
    let kept = format!("sqlite://{}", partial(&s.path).display());
    assert_eq!(
        unsettled_ids(tocsin_store::open(&kept).unwrap().as_mut()),
        ["built"]
    );
}
