//! Which alerts a subscriber receives.

use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_tracker::{Alert, AlertKind};

use crate::config::FilterSection;

/// A subscriber's filters: an alert passes when it matches every list that
/// is not empty (an empty list lets everything through).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Alert kinds.
    pub alert_kinds: Vec<AlertKind>,
    /// Document kinds.
    pub document_kinds: Vec<DocumentKind>,
    /// Encounter kinds.
    pub encounter_kinds: Vec<EncounterKind>,
    /// Sites (an alert with no site never matches a site filter).
    pub sites: Vec<String>,
    /// Specialties: a clinical-letter team's own (an alert with no
    /// specialty never matches).
    pub specialties: Vec<String>,
    /// GP practices (ODS codes): a practice's or a primary care network's
    /// own (an alert with no practice never matches).
    pub gp_practices: Vec<String>,
}

impl From<&FilterSection> for Filters {
    fn from(s: &FilterSection) -> Self {
        Self {
            alert_kinds: s.alert_kinds.clone(),
            document_kinds: s.document_kinds.clone(),
            encounter_kinds: s.encounter_kinds.clone(),
            sites: s.sites.clone(),
            specialties: s.specialties.clone(),
            gp_practices: s.gp_practices.clone(),
        }
    }
}

impl Filters {
    /// Whether the subscriber receives this alert.
    pub fn matches(&self, alert: &Alert) -> bool {
        fn any<T: PartialEq>(list: &[T], v: &T) -> bool {
            list.is_empty() || list.contains(v)
        }
        /// A text the alert may lack: absent never matches a list.
        fn known(list: &[String], v: Option<&String>) -> bool {
            list.is_empty() || v.is_some_and(|v| list.contains(v))
        }
        any(&self.alert_kinds, &alert.kind)
            && any(&self.document_kinds, &alert.document_kind)
            && any(&self.encounter_kinds, &alert.encounter.kind)
            && known(&self.sites, alert.encounter.site.as_ref())
            && known(&self.specialties, alert.encounter.specialty.as_ref())
            && known(&self.gp_practices, alert.gp_practice.as_ref())
    }
}
