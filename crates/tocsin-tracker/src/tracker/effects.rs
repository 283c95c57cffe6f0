//! Where the tracker's functions put what they decide.

use std::fmt::Display;

use serde::Serialize;

use crate::model::{Effect, JsonText, StateRange, StateRecord};

/// The effects of one call, and whether the auxiliary state records belong
/// among them (see [`super::Tracker::set_state_records`]).
///
/// Every function of the tracker writes through this rather than to a bare
/// vector, so that the switch is honoured in one place: a state record is
/// neither keyed nor serialised when it would only be dropped (replay into
/// its temporary store), while the effects that judge (expectations
/// changed, alerts raised) are always kept.
pub(super) struct Effects<'a> {
    out: &'a mut Vec<Effect>,
    state_records: bool,
}

impl<'a> Effects<'a> {
    /// Appends to `out`; state records only if `state_records`.
    pub(super) fn new(out: &'a mut Vec<Effect>, state_records: bool) -> Self {
        Self { out, state_records }
    }

    /// A judging effect (an expectation changed, an alert raised): always
    /// kept.
    pub(super) fn push(&mut self, effect: Effect) {
        debug_assert!(
            !matches!(
                effect,
                Effect::StatePut(_) | Effect::StateDeleted { .. } | Effect::StateRangeDeleted(_)
            ),
            "state records go through put_state and delete_state"
        );
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
        if self.state_records {
            self.out.push(Effect::StatePut(StateRecord {
                namespace: namespace.into(),
                key: key.to_string(),
                value: JsonText::of(value),
            }));
        }
    }

    /// Deletes one auxiliary state record.
    pub(super) fn delete_state(&mut self, namespace: &str, key: impl Display) {
        if self.state_records {
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
        if self.state_records {
            self.out.push(Effect::StateRangeDeleted(StateRange {
                namespace: namespace.into(),
                from: from.to_string(),
                to: to.to_string(),
            }));
        }
    }
}
