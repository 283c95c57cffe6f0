//! Auxiliary state records held in memory until a bulk load ends.
//!
//! The tracker puts a state record for nearly every message (its duplicate
//! key, the clock) and deletes most of them again within days (a key past
//! the duplicate horizon, an acknowledged transmission). A store that
//! nothing reads until it is complete (one built aside, see
//! `open_for_build`) need not hold those records in between: the writer
//! keeps them here, applying puts and deletes as the tracker makes them,
//! and writes only the survivors at the end. For a month of a large
//! trust's traffic that is a few hundred records written instead of
//! 431,000 written and deleted again (docs/performance.md, "Fourteenth
//! session"). What it holds is bounded by the tracker's horizons (30 days
//! of duplicate keys by default), not by the length of the load.

use std::collections::{BTreeMap, HashMap};

use tocsin_tracker::{Effect, JsonText, StateRange, StateRecord};

/// The current auxiliary state records, by namespace and key.
#[derive(Debug, Default)]
pub struct HeldState {
    namespaces: HashMap<String, BTreeMap<String, JsonText>>,
}

impl HeldState {
    /// Holds a state effect (put, delete, range delete); any other effect
    /// is handed back, for the batch.
    pub fn hold(&mut self, effect: Effect) -> Option<Effect> {
        match effect {
            Effect::StatePut(r) => self.put(r),
            Effect::StateDeleted { namespace, key } => self.delete(&namespace, &key),
            Effect::StateRangeDeleted(r) => self.delete_range(&r),
            other => return Some(other),
        }
        None
    }

    /// Puts a record, replacing one with the same namespace and key.
    pub fn put(&mut self, r: StateRecord) {
        match self.namespaces.get_mut(&r.namespace) {
            Some(records) => {
                records.insert(r.key, r.value);
            }
            None => {
                self.namespaces
                    .insert(r.namespace, BTreeMap::from([(r.key, r.value)]));
            }
        }
    }

    /// Deletes a record, if held.
    pub fn delete(&mut self, namespace: &str, key: &str) {
        if let Some(records) = self.namespaces.get_mut(namespace) {
            records.remove(key);
        }
    }

    /// Deletes every record the range holds.
    pub fn delete_range(&mut self, r: &StateRange) {
        let Some(records) = self.namespaces.get_mut(&r.namespace) else {
            return;
        };
        if r.from >= r.to {
            return;
        }
        // Split off what lies from `from` on, then give back what lies
        // from `to` on: what is left in between is dropped.
        let mut from_on = records.split_off(r.from.as_str());
        let mut to_on = from_on.split_off(r.to.as_str());
        records.append(&mut to_on);
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        self.namespaces.values().map(BTreeMap::len).sum()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records held, by namespace then key.
    pub fn into_records(self) -> impl Iterator<Item = StateRecord> {
        let mut namespaces: Vec<_> = self.namespaces.into_iter().collect();
        namespaces.sort_by(|a, b| a.0.cmp(&b.0));
        namespaces.into_iter().flat_map(|(namespace, records)| {
            records.into_iter().map(move |(key, value)| StateRecord {
                namespace: namespace.clone(),
                key,
                value,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(namespace: &str, key: &str, value: &str) -> StateRecord {
        StateRecord {
            namespace: namespace.into(),
            key: key.into(),
            value: JsonText::of(value),
        }
    }

    fn held(h: HeldState) -> Vec<(String, String, String)> {
        h.into_records()
            .map(|r| (r.namespace, r.key, r.value.as_str().to_string()))
            .collect()
    }

    #[test]
    fn a_put_replaces_and_a_delete_removes() {
        let mut h = HeldState::default();
        h.put(rec("clock", "event_time", "t1"));
        h.put(rec("clock", "event_time", "t2"));
        h.put(rec("transmission", "m1", "x"));
        h.put(rec("transmission", "m2", "y"));
        h.delete("transmission", "m1");
        h.delete("transmission", "never-put");
        h.delete("no-such-namespace", "m2");
        assert_eq!(h.len(), 2);
        assert_eq!(
            held(h),
            [
                ("clock".into(), "event_time".into(), "\"t2\"".into()),
                ("transmission".into(), "m2".into(), "\"y\"".into()),
            ]
        );
    }

    #[test]
    fn a_range_delete_removes_exactly_the_keys_from_its_start_to_before_its_end() {
        let mut h = HeldState::default();
        for k in ["a", "b", "c", "d"] {
            h.put(rec("seen", k, "t"));
        }
        h.put(rec("other", "b", "t"));
        h.delete_range(&StateRange {
            namespace: "seen".into(),
            from: "b".into(),
            to: "d".into(),
        });
        // An empty or reversed range deletes nothing.
        h.delete_range(&StateRange {
            namespace: "seen".into(),
            from: "d".into(),
            to: "a".into(),
        });
        let keys: Vec<_> = held(h).into_iter().map(|(n, k, _)| (n, k)).collect();
        assert_eq!(
            keys,
            [
                ("other".to_string(), "b".to_string()),
                ("seen".into(), "a".into()),
                ("seen".into(), "d".into()),
            ]
        );
    }

    #[test]
    fn held_records_agree_with_the_ranges_own_test() {
        // The same puts and range as `StateRange::contains` judges them.
        let range = StateRange {
            namespace: "seen".into(),
            from: "0000000000000010".into(),
            to: "0000000000000020".into(),
        };
        let keys = [
            "000000000000000f~",
            "0000000000000010",
            "00000000000000100",
            "000000000000001f",
            "0000000000000020",
            "00000000000000200",
        ];
        let mut h = HeldState::default();
        for k in keys {
            h.put(rec("seen", k, "t"));
        }
        h.delete_range(&range);
        let left: Vec<String> = held(h).into_iter().map(|(_, k, _)| k).collect();
        let expected: Vec<String> = keys
            .iter()
            .filter(|k| !range.contains("seen", k))
            .map(|k| k.to_string())
            .collect();
        assert_eq!(left, expected);
        assert_eq!(left.len(), 3);
    }
}
