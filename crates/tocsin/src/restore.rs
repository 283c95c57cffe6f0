//! Rebuilding the tracker from a store: what the gateway does at start, and
//! what `tocsin replay --store` does with a store that already holds a
//! replay, so that both carry on from a store alike.

use tocsin_store::{Store, StoreError};
use tocsin_tracker::{Policy, RestoreError, Restoring, Tracker, TrackerConfig};

/// A tracker rebuilt from a store, with the stored state records it could
/// not use (to be reported; the restore went on without them).
pub type Restored = (Tracker, Vec<RestoreError>);

/// Streams the store's unsettled expectations, its state records and the
/// settled expectations that transmissions awaiting acknowledgement name,
/// row by row, into a tracker (loading a million unsettled expectations
/// and their seen keys as values first took gigabytes).
///
/// The outer error is the store's; the inner one an expectation that
/// cannot be restored, which stops the start: it is what tocsin exists to
/// track, and going on would lose its alert unseen.
pub fn from_store(
    s: &mut dyn Store,
    policy: Policy,
    config: TrackerConfig,
) -> Result<Result<Restored, RestoreError>, StoreError> {
    let mut restoring = Restoring::new(policy, config);
    // The first bad expectation is the answer; the rows after it are read
    // and skipped (the visit has no way to stop early but an error of the
    // store's own).
    let mut failed: Option<RestoreError> = None;
    s.visit_unsettled(&mut |e| {
        if failed.is_none() {
            failed = restoring.expectation(&e).err();
        }
        Ok(())
    })?;
    if let Some(e) = failed {
        return Ok(Err(e));
    }
    // A state record is auxiliary: one that cannot be used is reported and
    // the restore goes on without it.
    let mut skipped = Vec::new();
    s.visit_state(&mut |rec| {
        if let Err(e) = restoring.record(rec) {
            skipped.push(e);
        }
        Ok(())
    })?;
    // Transmissions awaiting acknowledgement name the settled expectations
    // they carry; those are read by id.
    s.visit_expectations_by_id(&restoring.wanted(), &mut |e| {
        restoring.settled(e);
        Ok(())
    })?;
    let (tracker, dropped) = restoring.finish();
    skipped.extend(dropped);
    Ok(Ok((tracker, skipped)))
}
