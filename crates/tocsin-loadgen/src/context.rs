//! What rendering needs besides the plan: the profile, the population, the
//! run's identifier tag, and per-patient demographics derived from the seed
//! (so nothing per patient is stored).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::ids::NhsNumbers;
use crate::plan::Encounter;
use crate::profile::Profile;
use crate::rng::Rng;

/// Shared, read-only state for the renderers.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) profile: Profile,
    pub(crate) seed: u64,
    /// Eight hex digits from the seed and the first day, in every
    /// identifier, so that runs with different seeds or starts (January's
    /// traffic, then February's) can share a queue or a store without
    /// clashing: four digits from the seed alone gave two seeds in a
    /// few hundred the same tag, and a second month every identifier of the
    /// first, its encounters taken for repeats.
    pub(crate) tag: String,
    /// The same as a number, for UUIDs.
    pub(crate) tag_num: u32,
    pub(crate) nhs: NhsNumbers,
    /// The trust code in lower case (FHIR identifier systems).
    pub(crate) trust_lower: String,
}

/// One synthetic patient.
#[derive(Debug)]
pub(crate) struct Patient<'a> {
    pub(crate) nhs: String,
    pub(crate) mrn: String,
    pub(crate) family: &'a str,
    pub(crate) given: &'a str,
    pub(crate) birth: NaiveDate,
    pub(crate) female: bool,
    pub(crate) house: u32,
    pub(crate) street: &'a str,
    pub(crate) town: &'a str,
    pub(crate) postcode: String,
    pub(crate) phone: String,
    pub(crate) practice: &'a str,
    pub(crate) gp_code: String,
}

impl Ctx {
    pub(crate) fn new(profile: Profile, seed: u64, start: NaiveDate) -> Self {
        let day = u64::try_from(start.num_days_from_ce()).unwrap_or_default();
        let tag_num = (Rng::derive(seed, 0x7441_4721 ^ (day << 32)).next_u64() >> 32) as u32;
        let nhs = NhsNumbers::new(seed, profile.patients);
        let trust_lower = profile.trust.to_ascii_lowercase();
        Self {
            profile,
            seed,
            tag: format!("{tag_num:08X}"),
            tag_num,
            nhs,
            trust_lower,
        }
    }

    /// Patient `i`'s demographics.
    pub(crate) fn patient(&self, i: u32) -> Patient<'_> {
        let n = &self.profile.names;
        let mut r = Rng::derive(self.seed, 0x5041_5400_0000_0000 | u64::from(i));
        let birth = NaiveDate::from_ymd_opt(1930, 1, 1).unwrap_or_default()
            + chrono::Duration::days(r.below(90 * 365) as i64);
        let letters = b"ABDEFGHJLNPQRSTUWXYZ";
        Patient {
            nhs: self.nhs.get(i),
            mrn: format!("{}{:07}", self.profile.trust, i),
            family: r.pick(&n.family).as_str(),
            given: r.pick(&n.given).as_str(),
            birth,
            female: r.chance(0.5),
            house: 1 + r.below(200) as u32,
            street: r.pick(&n.streets).as_str(),
            town: r.pick(&n.towns).as_str(),
            postcode: format!(
                "LS{} {}{}{}",
                1 + r.below(29),
                r.below(10),
                letters[r.below(letters.len())] as char,
                letters[r.below(letters.len())] as char
            ),
            phone: format!("0113 496 {:04}", r.below(10_000)),
            practice: r.pick(&self.profile.gp_practices).as_str(),
            gp_code: format!("G{:07}", r.below(10_000_000)),
        }
    }

    /// The encounter's visit number.
    pub(crate) fn visit(&self, e: &Encounter) -> String {
        format!("V{}{:08}", self.tag, e.index)
    }

    /// The message id of an encounter's message (`step` one letter).
    pub(crate) fn message_id(&self, e: &Encounter, step: char) -> String {
        format!("{}{:09}{step}", self.tag, e.index)
    }

    /// The encounter's document number.
    pub(crate) fn document_id(&self, e: &Encounter) -> String {
        format!("DOC{}{:09}", self.tag, e.index)
    }

    /// A UUID for one resource of one encounter.
    pub(crate) fn uuid(&self, e: &Encounter, resource: u16) -> String {
        crate::ids::uuid(self.tag_num, resource, e.index)
    }

    /// A local HL7 timestamp with its offset: `20250106101500+0000`.
    pub(crate) fn hl7_ts(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz())
            .format("%Y%m%d%H%M%S%z")
            .to_string()
    }

    /// A FHIR dateTime in local time with its offset.
    pub(crate) fn fhir_ts(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz())
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    fn tz(&self) -> Tz {
        self.profile.timezone
    }

    /// Body text of `e`'s document: words from the profile, deterministic
    /// per encounter, in lines of about ten words.
    pub(crate) fn text_lines(&self, e: &Encounter) -> Vec<String> {
        let mut r = Rng::derive(self.seed, 0x5445_5854_0000_0000 ^ e.index);
        let [lo, hi] = self.profile.documents.text_words;
        let words = lo as usize + r.below((hi - lo) as usize + 1);
        let mut lines = Vec::with_capacity(words / 10 + 1);
        let mut line = String::new();
        for i in 0..words {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(r.pick::<String>(&self.profile.names.words));
            if i % 10 == 9 {
                line.push('.');
                lines.push(std::mem::take(&mut line));
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }
}
