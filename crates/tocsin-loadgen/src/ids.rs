//! Identifiers: NHS numbers from the 999 test range with a valid modulus-11
//! check digit, distinct per synthetic patient, and deterministic UUIDs.

use crate::rng::Rng;

/// The most patients the 999 test range can number (nine-digit bases
/// `999000000..=999999999` whose check digit is not 10).
pub const MAX_PATIENTS: u32 = 900_000;

/// The modulus-11 check digit of nine digits, or `None` when it would be 10
/// (such a base is never issued as an NHS number).
pub fn nhs_check_digit(base: u32) -> Option<u32> {
    let mut sum = 0;
    let mut n = base;
    // Digits from the right carry weights 2..=10.
    for weight in 2..=10 {
        sum += (n % 10) * weight;
        n /= 10;
    }
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c),
    }
}

/// The NHS numbers of a synthetic population: `patients` distinct valid
/// numbers in the 999 test range, shuffled by the seed.
#[derive(Debug, Clone)]
pub(crate) struct NhsNumbers(Vec<u32>);

impl NhsNumbers {
    /// Draws the population (`patients <= MAX_PATIENTS`, checked by the
    /// profile).
    pub(crate) fn new(seed: u64, patients: u32) -> Self {
        let mut bases: Vec<u32> = (999_000_000..=999_999_999u32)
            .filter(|b| nhs_check_digit(*b).is_some())
            .collect();
        let mut rng = Rng::derive(seed, 0x4E48_5321);
        // Partial Fisher-Yates: only the first `patients` places are needed.
        let want = (patients as usize).min(bases.len());
        for i in 0..want {
            let j = i + rng.below(bases.len() - i);
            bases.swap(i, j);
        }
        bases.truncate(want);
        Self(bases)
    }

    /// How many patients there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Patient `i`'s ten-digit NHS number.
    pub(crate) fn get(&self, i: u32) -> String {
        let base = self.0[i as usize];
        let check = nhs_check_digit(base).unwrap_or(0);
        format!("{base}{check}")
    }
}

/// A deterministic UUID (version-4 layout) from a seed tag, a kind and a
/// counter: distinct for distinct `(kind, counter)` within a run.
pub(crate) fn uuid(seed_tag: u32, kind: u16, counter: u64) -> String {
    format!(
        "{seed_tag:08x}-{kind:04x}-4{:03x}-8{:03x}-{:012x}",
        (counter >> 60) & 0xfff,
        (counter >> 48) & 0xfff,
        counter & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid_numbers_check() {
        // 943 476 5919 is the NHS's published example of a valid number.
        assert_eq!(nhs_check_digit(943_476_591), Some(9));
    }

    #[test]
    fn population_is_distinct_and_in_the_test_range() {
        let p = NhsNumbers::new(3, 50_000);
        let mut all: Vec<String> = (0..p.len() as u32).map(|i| p.get(i)).collect();
        assert!(all.iter().all(|n| n.starts_with("999") && n.len() == 10));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 50_000);
    }

    #[test]
    fn the_test_range_holds_enough_valid_numbers() {
        let valid = (999_000_000..=999_999_999u32)
            .filter(|b| nhs_check_digit(*b).is_some())
            .count();
        assert!(valid >= MAX_PATIENTS as usize, "{valid}");
    }
}
