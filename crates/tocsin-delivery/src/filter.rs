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
}

impl From<&FilterSection> for Filters {
    fn from(s: &FilterSection) -> Self {
        Self {
            alert_kinds: s.alert_kinds.clone(),
            document_kinds: s.document_kinds.clone(),
            encounter_kinds: s.encounter_kinds.clone(),
            sites: s.sites.clone(),
        }
    }
}

impl Filters {
    /// Whether the subscriber receives this alert.
    pub fn matches(&self, alert: &Alert) -> bool {
        fn any<T: PartialEq>(list: &[T], v: &T) -> bool {
            list.is_empty() || list.contains(v)
        }
        any(&self.alert_kinds, &alert.kind)
            && any(&self.document_kinds, &alert.document_kind)
            && any(&self.encounter_kinds, &alert.encounter.kind)
            && (self.sites.is_empty()
                || alert
                    .encounter
                    .site
                    .as_ref()
                    .is_some_and(|s| self.sites.contains(s)))
    }
}
