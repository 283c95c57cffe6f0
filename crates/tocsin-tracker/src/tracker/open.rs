//! The compact in-memory form of an unsettled expectation, and its
//! conversions to and from the durable [`Expectation`].

use chrono::{DateTime, Utc};
use tocsin_event::{EncounterKind, EventId, Identifier};

use super::{RuleInfo, Tracker};
use crate::compact::{CStr, Sym, hex16, pack_hex};
use crate::model::{EncounterSummary, Expectation, ExpectationId, ExpectationStatus, PatientKeys};
use crate::{AlertKind, RuleRef};

/// An open or overdue expectation, 152 bytes inline (checked by a test).
pub(crate) struct Open {
    pub id: [u8; 16],
    pub encounter_id: Option<CStr>,
    pub nhs: Option<CStr>,
    pub local_ids: Box<[(Sym, CStr)]>,
    /// What most expectations lack: a FHIR reference, or a creating event id
    /// that is not 32 lowercase hex digits.
    pub extras: Option<Box<Extras>>,
    /// The creating event's id, packed (when it is hex; else in `extras`).
    pub created_by: [u8; 16],
    /// Milliseconds since the epoch.
    pub ended_at: i64,
    pub deadline: i64,
    /// `NO_TIME` when the rule has no due-soon point.
    pub due_soon: i64,
    pub site: Option<Sym>,
    pub specialty: Option<Sym>,
    pub gp: Option<Sym>,
    pub rule: u16,
    pub kind: EncounterKind,
    pub overdue: bool,
    /// Bit set of [`AlertKind`]s already raised.
    pub alerts: u8,
}

/// The rarely present fields of an open expectation.
#[derive(Default)]
pub(crate) struct Extras {
    pub encounter_ref: Option<CStr>,
    pub created_by: Option<Box<str>>,
}

/// Marks an absent instant in compact fields.
pub(crate) const NO_TIME: i64 = i64::MIN;

pub(crate) fn alert_bit(k: AlertKind) -> u8 {
    1 << (k as u8)
}

pub(crate) const ALERT_KINDS: [AlertKind; 6] = [
    AlertKind::DueSoon,
    AlertKind::Overdue,
    AlertKind::Late,
    AlertKind::Resolved,
    AlertKind::DeliveryFailed,
    AlertKind::Unconfirmed,
];

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Open {
    /// Builds the rarely present fields, boxed only when needed.
    pub(crate) fn pack_rare(
        encounter_ref: Option<&str>,
        created_by: &str,
    ) -> ([u8; 16], Option<Box<Extras>>) {
        let packed = pack_hex(created_by);
        let extras = Extras {
            encounter_ref: encounter_ref.map(CStr::new),
            created_by: packed.is_none().then(|| created_by.into()),
        };
        let boxed = (extras.encounter_ref.is_some() || extras.created_by.is_some())
            .then(|| Box::new(extras));
        (packed.unwrap_or_default(), boxed)
    }

    pub(crate) fn encounter_ref(&self) -> Option<&CStr> {
        self.extras.as_ref()?.encounter_ref.as_ref()
    }

    pub(crate) fn due_soon_at(&self) -> Option<i64> {
        (self.due_soon != NO_TIME).then_some(self.due_soon)
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

    /// The next instant at which a timer of this expectation is due.
    pub(crate) fn next_timer(&self) -> Option<i64> {
        match self.due_soon_at() {
            Some(t) if !self.raised(AlertKind::DueSoon) && !self.overdue && t < self.deadline => {
                Some(t)
            }
            _ if !self.overdue => Some(self.deadline),
            _ => None,
        }
    }

    pub(crate) fn status(&self) -> ExpectationStatus {
        if self.overdue {
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

    /// The durable form of an open slot.
    pub(crate) fn materialise(&self, o: &Open) -> Expectation {
        let rule = self.rule_info(o);
        let sym = |s: Option<Sym>| s.map(|s| self.syms.name(s).to_string());
        Expectation {
            id: ExpectationId(hex16(&o.id)),
            status: o.status(),
            document_kind: rule.document_kind,
            encounter: EncounterSummary {
                id: o.encounter_id.as_ref().map(ToString::to_string),
                reference: o.encounter_ref().map(ToString::to_string),
                kind: o.kind,
                ended_at: from_ms(o.ended_at),
                site: sym(o.site),
                specialty: sym(o.specialty),
            },
            patient: PatientKeys {
                nhs_number: o.nhs.as_ref().map(ToString::to_string),
                local_ids: o
                    .local_ids
                    .iter()
                    .map(|(s, v)| Identifier {
                        system: self.syms.name(*s).to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            },
            gp_practice: sym(o.gp),
            rule: RuleRef {
                id: rule.id.clone(),
                clause: rule.clause.clone(),
            },
            deadline: from_ms(o.deadline),
            due_soon_at: o.due_soon_at().map(from_ms),
            created_by: EventId::from_string(o.created_by()),
            settlement: None,
            delivery: None,
            alerts_raised: ALERT_KINDS.into_iter().filter(|k| o.raised(*k)).collect(),
        }
    }

    /// The compact form of a durable expectation (for restore).
    pub(crate) fn compact(&mut self, e: &Expectation, id: [u8; 16], rule: u16) -> Open {
        let enc = &e.encounter;
        let (created_by, extras) = Open::pack_rare(enc.reference.as_deref(), e.created_by.as_str());
        Open {
            id,
            created_by,
            extras,
            encounter_id: enc.id.as_deref().map(CStr::new),
            nhs: e.patient.nhs_number.as_deref().map(CStr::new),
            local_ids: e
                .patient
                .local_ids
                .iter()
                .map(|i| (self.syms.intern(&i.system), CStr::new(&i.value)))
                .collect(),
            ended_at: ms(enc.ended_at),
            deadline: ms(e.deadline),
            due_soon: e.due_soon_at.map_or(NO_TIME, ms),
            site: enc.site.as_deref().map(|s| self.syms.intern(s)),
            specialty: enc.specialty.as_deref().map(|s| self.syms.intern(s)),
            gp: e.gp_practice.as_deref().map(|s| self.syms.intern(s)),
            rule,
            kind: enc.kind,
            overdue: e.status == ExpectationStatus::Overdue,
            alerts: e.alerts_raised.iter().fold(0, |a, k| a | alert_bit(*k)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn open_expectation_stays_compact() {
        assert_eq!(std::mem::size_of::<super::Open>(), 152);
        assert_eq!(std::mem::size_of::<Option<super::Open>>(), 152);
    }
}
