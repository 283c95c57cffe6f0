//! The compact in-memory form of an unsettled expectation, and its
//! conversions to and from the durable [`Expectation`].

use chrono::{DateTime, Utc};
use tocsin_event::{EncounterKind, EventId, Identifier};

use super::events::expectation_id_bytes;
use super::{RuleInfo, Tracker};
use crate::compact::{CStr, Nhs, Sym, Symbols, hex16, pack_hex};
use crate::model::{EncounterSummary, Expectation, ExpectationId, ExpectationStatus, PatientKeys};
use crate::{AlertKind, RuleRef};

/// An open or overdue expectation, 80 bytes inline (checked by a test),
/// with nothing on the heap for the usual one hospital number. What can be
/// derived is not kept: the deadline and due-soon point are the encounter's
/// end plus the rule's offsets (see [`RuleInfo`]), and the id is derived as
/// it was made, from the rule, the encounter and the creating event
/// ([`Tracker::open_id`]).
pub(crate) struct Open {
    pub encounter_id: Option<CStr>,
    pub nhs: Nhs,
    /// The first local patient id's value (its system is the fourth of
    /// `context`); further ones are in `extras`. Empty when there is none.
    pub local_val: CStr,
    /// What most expectations lack: a FHIR reference, a creating event id
    /// that is not 32 lowercase hex digits, a second local patient id.
    pub extras: Option<Box<Extras>>,
    /// The creating event's id, packed (when it is hex; else in `extras`).
    pub created_by: [u8; 16],
    /// Milliseconds since the epoch.
    pub ended_at: i64,
    /// The encounter's site, specialty and GP practice, and the first local
    /// patient id's system (see [`crate::compact::Context`]).
    pub context: u32,
    pub rule: u16,
    pub kind: EncounterKind,
    /// Bit set of [`AlertKind`]s already raised, and [`OVERDUE`].
    pub alerts: u8,
}

/// The rarely present fields of an open expectation.
#[derive(Default)]
pub(crate) struct Extras {
    /// The id, when deriving it would not give it back: an encounter id
    /// re-keyed by a merge, or a store written by another tool.
    pub id: Option<[u8; 16]>,
    pub encounter_ref: Option<CStr>,
    pub created_by: Option<Box<str>>,
    /// Local patient ids after the first.
    pub more_local_ids: Box<[(Sym, CStr)]>,
}

impl Extras {
    fn is_empty(&self) -> bool {
        self.id.is_none()
            && self.encounter_ref.is_none()
            && self.created_by.is_none()
            && self.more_local_ids.is_empty()
    }
}

/// Marks an absent instant in compact fields.
pub(crate) const NO_TIME: i64 = i64::MIN;

/// The bit of [`Open::alerts`] that marks an overdue expectation (the
/// alert kinds take the seven low bits).
pub(crate) const OVERDUE: u8 = 1 << 7;

pub(crate) fn alert_bit(k: AlertKind) -> u8 {
    1 << (k as u8)
}

pub(crate) const ALERT_KINDS: [AlertKind; 7] = [
    AlertKind::DueSoon,
    AlertKind::Overdue,
    AlertKind::Late,
    AlertKind::Resolved,
    AlertKind::DeliveryFailed,
    AlertKind::Unconfirmed,
    AlertKind::Cancelled,
];

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Open {
    /// The compact form of a new expectation's patient and rare fields;
    /// `rule`, `kind` and the times are the caller's to set.
    pub(crate) fn new(encounter_ref: Option<&str>, created_by: &str, nhs: Nhs) -> Self {
        let packed = pack_hex(created_by);
        let extras = Extras {
            id: None,
            encounter_ref: encounter_ref.map(CStr::new),
            created_by: packed.is_none().then(|| created_by.into()),
            more_local_ids: Box::default(),
        };
        Open {
            encounter_id: None,
            nhs,
            local_val: CStr::new(""),
            extras: (!extras.is_empty()).then(|| Box::new(extras)),
            created_by: packed.unwrap_or_default(),
            ended_at: NO_TIME,
            context: 0,
            rule: 0,
            kind: EncounterKind::Other,
            alerts: 0,
        }
    }

    /// Whether the deadline has passed with the document still missing.
    pub(crate) fn overdue(&self) -> bool {
        self.alerts & OVERDUE != 0
    }

    pub(crate) fn set_overdue(&mut self) {
        self.alerts |= OVERDUE;
    }

    /// Records alerts as raised already (under this expectation's id), so
    /// that they are not raised again.
    pub(crate) fn mark_raised(&mut self, kinds: &[AlertKind]) {
        self.alerts |= kinds.iter().fold(0, |a, k| a | alert_bit(*k));
    }

    /// The local patient ids, in the order given.
    pub(crate) fn local_ids(&self, syms: &Symbols) -> impl Iterator<Item = (Sym, &CStr)> {
        let more = self
            .extras
            .as_ref()
            .map_or(&[][..], |x| &x.more_local_ids[..]);
        syms.context(self.context)[3]
            .map(|s| (s, &self.local_val))
            .into_iter()
            .chain(more.iter().map(|(s, v)| (*s, v)))
    }

    /// Replaces the local patient ids: the first inline, the rest boxed.
    pub(crate) fn set_local_ids(&mut self, ids: Vec<(Sym, CStr)>, syms: &mut Symbols) {
        let mut ids = ids.into_iter();
        let mut context = syms.context(self.context);
        match ids.next() {
            Some((s, v)) => {
                context[3] = Some(s);
                self.local_val = v;
            }
            None => {
                context[3] = None;
                self.local_val = CStr::new("");
            }
        }
        self.context = syms.intern_context(context);
        let more: Box<[(Sym, CStr)]> = ids.collect();
        match &mut self.extras {
            Some(x) => {
                x.more_local_ids = more;
                if x.is_empty() {
                    self.extras = None;
                }
            }
            None if !more.is_empty() => {
                self.extras = Some(Box::new(Extras {
                    more_local_ids: more,
                    ..Extras::default()
                }))
            }
            None => {}
        }
    }

    /// Replaces the GP practice (a visit moved to another patient).
    pub(crate) fn set_gp_practice(&mut self, gp: Option<&str>, syms: &mut Symbols) {
        let mut context = syms.context(self.context);
        context[2] = gp.map(|g| syms.intern(g));
        self.context = syms.intern_context(context);
    }

    /// Keeps `id` as this expectation's id from now on, whatever the fields
    /// it was derived from become (unless an id is kept already).
    pub(crate) fn pin_id(&mut self, id: [u8; 16]) {
        let x = self.extras.get_or_insert_with(Box::default);
        x.id.get_or_insert(id);
    }

    /// Takes the FHIR reference a later end event names for this
    /// expectation's encounter. Only for one keyed by its visit number, whose
    /// id the reference does not change ([`expectation_id_bytes`]).
    pub(crate) fn learn_encounter_ref(&mut self, reference: &str) {
        if self.encounter_id.is_some() && self.encounter_ref().is_none() {
            let x = self.extras.get_or_insert_with(Box::default);
            x.encounter_ref = Some(CStr::new(reference));
        }
    }

    pub(crate) fn encounter_ref(&self) -> Option<&CStr> {
        self.extras.as_ref()?.encounter_ref.as_ref()
    }

    /// When the document is due, by `rule` (this expectation's).
    pub(crate) fn deadline(&self, rule: &RuleInfo) -> i64 {
        self.ended_at.saturating_add(rule.due_after)
    }

    /// The due-soon point, by `rule` (this expectation's), if it has one.
    pub(crate) fn due_soon_at(&self, rule: &RuleInfo) -> Option<i64> {
        (rule.due_soon != NO_TIME).then(|| self.ended_at.saturating_add(rule.due_soon))
    }

    fn created_by(&self) -> String {
        match self.extras.as_ref().and_then(|x| x.created_by.as_deref()) {
            Some(s) => s.to_string(),
            None => hex16(&self.created_by),
        }
    }

    pub(crate) fn raised(&self, k: AlertKind) -> bool {
        self.alerts & alert_bit(k) != 0
    }

    /// The next instant at which a timer of this expectation is due, by
    /// `rule` (this expectation's).
    pub(crate) fn next_timer(&self, rule: &RuleInfo) -> Option<i64> {
        let deadline = self.deadline(rule);
        match self.due_soon_at(rule) {
            Some(t) if !self.raised(AlertKind::DueSoon) && !self.overdue() && t < deadline => {
                Some(t)
            }
            _ if !self.overdue() => Some(deadline),
            _ => None,
        }
    }

    pub(crate) fn status(&self) -> ExpectationStatus {
        if self.overdue() {
            ExpectationStatus::Overdue
        } else {
            ExpectationStatus::Open
        }
    }
}

impl Tracker {
    pub(crate) fn rule_info(&self, o: &Open) -> &RuleInfo {
        &self.rules[o.rule as usize]
    }

    /// The id of `o`: derived as [`expectation_id`] made it when the
    /// encounter ended, unless one is pinned (see [`Open::pin_id`]).
    ///
    /// [`expectation_id`]: super::expectation_id
    pub(crate) fn open_id(&self, o: &Open) -> [u8; 16] {
        if let Some(id) = o.extras.as_ref().and_then(|x| x.id) {
            return id;
        }
        self.derived_id(o)
    }

    /// The id an end event for `o`'s encounter as it now stands would
    /// derive: its [`Tracker::open_id`] unless a merge re-keyed its visit
    /// (the id stays pinned to the one it was made under).
    pub(crate) fn derived_id(&self, o: &Open) -> [u8; 16] {
        let enc = o.encounter_id.as_ref().map(ToString::to_string);
        let r = o.encounter_ref().map(ToString::to_string);
        expectation_id_bytes(
            &self.rule_info(o).id,
            enc.as_deref(),
            r.as_deref(),
            &o.created_by(),
        )
    }

    /// The next instant at which a timer of `o` is due.
    pub(crate) fn next_timer(&self, o: &Open) -> Option<i64> {
        o.next_timer(self.rule_info(o))
    }

    /// The durable form of an open slot.
    pub(crate) fn materialise(&self, o: &Open) -> Expectation {
        let rule = self.rule_info(o);
        let sym = |s: Option<Sym>| s.map(|s| self.syms.name(s).to_string());
        let [site, specialty, gp, _] = self.syms.context(o.context);
        Expectation {
            id: ExpectationId(hex16(&self.open_id(o))),
            status: o.status(),
            document_kind: rule.document_kind,
            encounter: EncounterSummary {
                id: o.encounter_id.as_ref().map(ToString::to_string),
                reference: o.encounter_ref().map(ToString::to_string),
                kind: o.kind,
                ended_at: from_ms(o.ended_at),
                site: sym(site),
                specialty: sym(specialty),
            },
            patient: PatientKeys {
                nhs_number: o.nhs.to_string(&self.syms),
                local_ids: o
                    .local_ids(&self.syms)
                    .map(|(s, v)| Identifier {
                        system: self.syms.name(s).to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            },
            gp_practice: sym(gp),
            rule: RuleRef {
                id: rule.id.clone(),
                clause: rule.clause.clone(),
            },
            deadline: from_ms(o.deadline(rule)),
            due_soon_at: o.due_soon_at(rule).map(from_ms),
            created_by: EventId::from_string(o.created_by()),
            settlement: None,
            delivery: None,
            alerts_raised: ALERT_KINDS.into_iter().filter(|k| o.raised(*k)).collect(),
        }
    }

    /// The compact form of a new open expectation: the one place where the
    /// fields of an encounter's end (as read, or as stored) become an
    /// [`Open`], its strings interned or packed.
    pub(crate) fn new_open(&mut self, f: OpenFacts<'_>) -> Open {
        let nhs = Nhs::new(f.nhs_number, &mut self.syms);
        let local_ids = f
            .local_ids
            .iter()
            .map(|i| (self.syms.intern(&i.system), CStr::new(&i.value)))
            .collect();
        let mut o = Open::new(f.encounter_ref, f.created_by, nhs);
        o.encounter_id = f.encounter_id.map(CStr::new);
        o.ended_at = f.ended_at;
        // A value sent as the name of no value is none.
        let mut sym = |s: Option<&str>| {
            s.filter(|s| *s != crate::compliance::UNKNOWN)
                .map(|s| self.syms.intern(s))
        };
        let context = [sym(f.site), sym(f.specialty), sym(f.gp_practice), None];
        o.context = self.syms.intern_context(context);
        o.set_local_ids(local_ids, &mut self.syms);
        o.rule = f.rule;
        o.kind = f.kind;
        o
    }

    /// The compact form of a durable expectation (for restore).
    pub(crate) fn compact(&mut self, e: &Expectation, id: [u8; 16], rule: u16) -> Open {
        let enc = &e.encounter;
        let mut o = self.new_open(OpenFacts {
            rule,
            created_by: e.created_by.as_str(),
            kind: enc.kind,
            encounter_id: enc.id.as_deref(),
            encounter_ref: enc.reference.as_deref(),
            ended_at: ms(enc.ended_at),
            site: enc.site.as_deref(),
            specialty: enc.specialty.as_deref(),
            gp_practice: e.gp_practice.as_deref(),
            nhs_number: e.patient.nhs_number.as_deref(),
            local_ids: &e.patient.local_ids,
        });
        if self.open_id(&o) != id {
            o.pin_id(id);
        }
        o.alerts = e.alerts_raised.iter().fold(0, |a, k| a | alert_bit(*k));
        if e.status == ExpectationStatus::Overdue {
            o.set_overdue();
        }
        o
    }
}

/// What an open expectation is made from, borrowed from the encounter-end
/// event (a new expectation) or from the stored expectation (a restore).
/// Times are milliseconds since the epoch; the deadline and due-soon point
/// follow from `rule`.
pub(crate) struct OpenFacts<'a> {
    /// Index into the tracker's rules.
    pub rule: u16,
    pub created_by: &'a str,
    pub kind: EncounterKind,
    pub encounter_id: Option<&'a str>,
    pub encounter_ref: Option<&'a str>,
    pub ended_at: i64,
    pub site: Option<&'a str>,
    pub specialty: Option<&'a str>,
    pub gp_practice: Option<&'a str>,
    pub nhs_number: Option<&'a str>,
    pub local_ids: &'a [Identifier],
}

#[cfg(test)]
mod tests {
    #[test]
    fn open_expectation_stays_compact() {
        assert_eq!(std::mem::size_of::<super::Open>(), 80);
        assert_eq!(std::mem::size_of::<Option<super::Open>>(), 80);
    }
}
