//! Where the tracker's functions put what they decide.

use std::fmt::Display;

use serde::Serialize;

use crate::model::{Effect, JsonText, StateRange, StateRecord};

/// The effects of one call, and which optional ones belong among them: the
/// auxiliary state records ([`super::Tracker::set_state_records`]) and the
/// changes of expectations that stay unsettled
/// ([`super::Tracker::set_unsettled_changes`]).
///
/// Every function of the tracker writes through this rather than to a bare
/// vector, so that the switches are honoured in one place: a state record
/// is neither keyed nor serialised when it would only be dropped (replay
/// into its temporary store), while alerts and settled expectations are
/// always kept.
pub(super) struct Effects<'a> {
    out: &'a mut Vec<Effect>,
    switches: Switches,
}

/// Which optional effects a tracker returns.
#[derive(Debug, Clone, Copy)]
pub(super) struct Switches {
    /// Auxiliary state records.
    pub state_records: bool,
    /// Changes of expectations that stay open or overdue.
    pub unsettled_changes: bool,
}

impl<'a> Effects<'a> {
    /// Appends to `out` what `switches` asks for.
    pub(super) fn new(out: &'a mut Vec<Effect>, switches: Switches) -> Self {
        Self { out, switches }
    }

    /// Whether a change to an expectation that stays unsettled is kept:
    /// callers check before building one that would only be dropped.
    pub(super) fn wants_unsettled(&self) -> bool {
        self.switches.unsettled_changes
    }

    /// A judging effect (an expectation changed, an alert raised): kept,
    /// except an unsettled expectation's change when those are off.
    pub(super) fn push(&mut self, effect: Effect) {
        debug_assert!(
            !matches!(
                effect,
                Effect::StatePut(_) | Effect::StateDeleted { .. } | Effect::StateRangeDeleted(_)
            ),
            "state records go through put_state and delete_state"
        );
        if let Effect::ExpectationChanged(e) = &effect
            && e.status.is_unsettled()
            && !self.switches.unsettled_changes
        {
            return;
        }
        self.out.push(effect);
    }

    /// Judging effects, as [`Effects::push`].
    pub(super) fn extend(&mut self, effects: impl IntoIterator<Item = Effect>) {
        for e in effects {
            self.push(e);
        }
    }

    /// Stores one auxiliary state record: `value`, as JSON text, under
    /// `namespace` and `key`.
    pub(super) fn put_state(
        &mut self,
        namespace: &str,
        key: impl Display,
        value: &(impl Serialize + ?Sized),
    ) {
        if self.switches.state_records {
            self.out.push(Effect::StatePut(StateRecord {
                namespace: namespace.into(),
                key: key.to_string(),
                value: JsonText::of(value),
            }));
        }
    }

    /// Deletes one auxiliary state record.
    pub(super) fn delete_state(&mut self, namespace: &str, key: impl Display) {
        if self.switches.state_records {
            self.out.push(Effect::StateDeleted {
                namespace: namespace.into(),
                key: key.to_string(),
            });
        }
    }

    /// Deletes every auxiliary state record of `namespace` with a key at or
    /// after `from` and before `to`.
    pub(super) fn delete_state_range(
        &mut self,
        namespace: &str,
        from: impl Display,
        to: impl Display,
    ) {
        if self.switches.state_records {
            self.out.push(Effect::StateRangeDeleted(StateRange {
                namespace: namespace.into(),
                from: from.to_string(),
                to: to.to_string(),
            }));
        }
    }
}
