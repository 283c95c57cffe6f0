//! The traffic profile: every volume, share, timing and code value the
//! generator uses, read from `config/loadgen.toml` (the checked-in file is
//! also the compiled-in default), so that no figure lives in code.

use serde::Deserialize;

use crate::error::ProfileError;

/// The checked-in default profile (a large acute trust).
pub const DEFAULT_PROFILE_TOML: &str = include_str!("../../../config/loadgen.toml");

/// A whole traffic profile (`config/loadgen.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Zone of the local times the generated messages carry.
    pub timezone: chrono_tz::Tz,
    /// Trust ODS code.
    pub trust: String,
    /// Site ODS codes.
    pub sites: Vec<String>,
    /// GP practice ODS codes.
    pub gp_practices: Vec<String>,
    /// Size of the synthetic population.
    pub patients: u32,
    /// How many encounters end, and when.
    pub volumes: Volumes,
    /// Discharge mix, classes and lengths of stay.
    pub discharges: Discharges,
    /// Document timing, shares and codes.
    pub documents: Documents,
    /// Acknowledgements.
    pub acks: Acks,
    /// Word lists for demographics and text.
    pub names: Names,
}

/// `[volumes]`: how many encounters end per day and at what hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volumes {
    /// Mean discharges (inpatient, day case, emergency) per day.
    pub discharges_per_day: f64,
    /// Mean outpatient attendances per day.
    pub outpatient_attendances_per_day: f64,
    /// Monday..Sunday multipliers for discharges.
    pub discharge_weekday_factors: [f64; 7],
    /// Monday..Sunday multipliers for outpatient attendances.
    pub outpatient_weekday_factors: [f64; 7],
    /// Weights of the 24 local hours for discharge times.
    pub discharge_hour_weights: [f64; 24],
    /// Weights of the 24 local hours for attendance end times.
    pub outpatient_hour_weights: [f64; 24],
}

/// `[discharges]`: encounter mix, patient classes and stay lengths.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discharges {
    /// Weight of inpatient discharges.
    pub inpatient: f64,
    /// Weight of day-case discharges.
    pub day_case: f64,
    /// Weight of emergency-department discharges.
    pub emergency: f64,
    /// PV1-2 for inpatients.
    pub inpatient_class: String,
    /// PV1-2 for day cases.
    pub day_case_class: String,
    /// PV1-2 for emergency attendances.
    pub emergency_class: String,
    /// PV1-2 for outpatient attendances.
    pub outpatient_class: String,
    /// Encounter.class code for inpatients.
    pub inpatient_fhir_class: String,
    /// Encounter.class code for day cases.
    pub day_case_fhir_class: String,
    /// Encounter.class code for emergency attendances.
    pub emergency_fhir_class: String,
    /// Encounter.class code for outpatient attendances.
    pub outpatient_fhir_class: String,
    /// Share of inpatient stays with a ward transfer.
    pub transfer_share: f64,
    /// Inpatient stay, hours `[min, max]`.
    pub inpatient_stay_hours: [f64; 2],
    /// Day-case stay, hours `[min, max]`.
    pub day_case_stay_hours: [f64; 2],
    /// Emergency stay, hours `[min, max]`.
    pub emergency_stay_hours: [f64; 2],
    /// Outpatient attendance, minutes `[min, max]`.
    pub outpatient_minutes: [f64; 2],
}

/// `[documents]`: when documents come, how they are sent and their codes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Documents {
    /// Share of expected documents issued after the deadline.
    pub late_share: f64,
    /// Share of expected documents never issued.
    pub missing_share: f64,
    /// Discharge summary deadline after discharge, hours.
    pub discharge_summary_due_hours: f64,
    /// Clinic letter deadline after the attendance, hours.
    pub clinic_letter_due_hours: f64,
    /// On-time issue point as a fraction of the deadline `[min, max]`.
    pub on_time_fraction: [f64; 2],
    /// Late issue point as a multiple of the deadline `[min, max]`.
    pub late_multiple: [f64; 2],
    /// Weight of HL7 MDM^T02 documents.
    pub hl7_mdm: f64,
    /// Weight of FHIR R4 document bundles.
    pub fhir_document: f64,
    /// Weight of ITK3 (FHIR STU3) messages.
    pub itk3: f64,
    /// TXA-2 for discharge summaries.
    pub hl7_discharge_summary: String,
    /// TXA-2 for clinic letters.
    pub hl7_clinic_letter: String,
    /// SNOMED CT code of a discharge summary.
    pub snomed_discharge_summary: String,
    /// SNOMED CT code of a clinic letter.
    pub snomed_clinic_letter: String,
    /// ITK3 message event of a discharge summary.
    pub itk_discharge_summary: String,
    /// ITK3 message event of a clinic letter.
    pub itk_clinic_letter: String,
    /// Words of body text `[min, max]`.
    pub text_words: [u32; 2],
}

/// `[acks]`: acknowledgements of transmissions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acks {
    /// Share of HL7 and ITK3 transmissions acknowledged.
    pub share: f64,
    /// Share of acknowledgements that report an error.
    pub error_share: f64,
    /// Delay after the transmission, seconds `[min, max]`.
    pub delay_seconds: [f64; 2],
}

/// `[names]`: word lists for synthetic demographics and text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// Family names.
    pub family: Vec<String>,
    /// Given names.
    pub given: Vec<String>,
    /// Street names.
    pub streets: Vec<String>,
    /// Towns.
    pub towns: Vec<String>,
    /// Wards.
    pub wards: Vec<String>,
    /// Outpatient clinics.
    pub clinics: Vec<String>,
    /// ICD-10 `code^text` diagnoses.
    pub diagnoses: Vec<String>,
    /// Allergen names.
    pub allergies: Vec<String>,
    /// Words of document text (no HL7 delimiters).
    pub words: Vec<String>,
}

impl Default for Profile {
    fn default() -> Self {
        // The checked-in profile is validated by a unit test.
        Self::from_toml(DEFAULT_PROFILE_TOML).unwrap_or_else(|e| panic!("config/loadgen.toml: {e}"))
    }
}

impl Profile {
    /// Parses and validates a profile.
    pub fn from_toml(text: &str) -> Result<Self, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    /// Checks what serde cannot: non-empty lists, shares in range, ranges
    /// ordered and bounded, HL7-safe words and codes, traffic on some day,
    /// a late document later than its deadline.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let d = &self.discharges;
        let docs = &self.documents;
        let codes: [(&str, &str); 15] = [
            ("trust", &self.trust),
            ("discharges.inpatient_class", &d.inpatient_class),
            ("discharges.day_case_class", &d.day_case_class),
            ("discharges.emergency_class", &d.emergency_class),
            ("discharges.outpatient_class", &d.outpatient_class),
            ("discharges.inpatient_fhir_class", &d.inpatient_fhir_class),
            ("discharges.day_case_fhir_class", &d.day_case_fhir_class),
            ("discharges.emergency_fhir_class", &d.emergency_fhir_class),
            ("discharges.outpatient_fhir_class", &d.outpatient_fhir_class),
            (
                "documents.hl7_discharge_summary",
                &docs.hl7_discharge_summary,
            ),
            ("documents.hl7_clinic_letter", &docs.hl7_clinic_letter),
            (
                "documents.snomed_discharge_summary",
                &docs.snomed_discharge_summary,
            ),
            ("documents.snomed_clinic_letter", &docs.snomed_clinic_letter),
            (
                "documents.itk_discharge_summary",
                &docs.itk_discharge_summary,
            ),
            ("documents.itk_clinic_letter", &docs.itk_clinic_letter),
        ];
        for (key, code) in codes {
            // Codes go into identifiers and URLs too: no white space.
            if code.is_empty() || code.contains(DELIMITERS) || code.contains(char::is_whitespace) {
                return Err(ProfileError::Invalid(
                    key.into(),
                    format!(
                        "{code:?} must be a non-empty code without spaces or HL7, JSON or XML delimiters"
                    ),
                ));
            }
        }
        let lists: [(&str, &[String]); 12] = [
            ("sites", &self.sites),
            ("gp_practices", &self.gp_practices),
            ("names.family", &self.names.family),
            ("names.given", &self.names.given),
            ("names.streets", &self.names.streets),
            ("names.towns", &self.names.towns),
            ("names.wards", &self.names.wards),
            ("names.clinics", &self.names.clinics),
            ("names.diagnoses", &self.names.diagnoses),
            ("names.allergies", &self.names.allergies),
            ("names.words", &self.names.words),
            ("sites", &self.sites),
        ];
        for (key, list) in lists {
            if list.is_empty() {
                return Err(ProfileError::Invalid(
                    key.into(),
                    "must not be empty".into(),
                ));
            }
            // A diagnosis is `code^text`: one component separator, no more.
            let bad = |w: &&String| {
                if key == "names.diagnoses" {
                    w.matches('^').count() > 1
                        || w.contains(|c| c != '^' && DELIMITERS.contains(&c))
                } else {
                    w.contains(DELIMITERS)
                }
            };
            if let Some(w) = list.iter().find(bad) {
                return Err(ProfileError::Invalid(
                    key.into(),
                    format!("{w:?} holds an HL7, JSON or XML delimiter"),
                ));
            }
        }
        let d = &self.documents;
        for (key, v) in [
            ("documents.late_share", d.late_share),
            ("documents.missing_share", d.missing_share),
            ("discharges.transfer_share", self.discharges.transfer_share),
            ("acks.share", self.acks.share),
            ("acks.error_share", self.acks.error_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ProfileError::Invalid(
                    key.into(),
                    format!("{v} is not between 0 and 1"),
                ));
            }
        }
        if d.late_share + d.missing_share > 1.0 {
            return Err(ProfileError::Invalid(
                "documents.late_share".into(),
                "late_share + missing_share exceeds 1".into(),
            ));
        }
        if self.patients == 0 || self.patients > crate::ids::MAX_PATIENTS {
            return Err(ProfileError::Invalid(
                "patients".into(),
                format!("must be between 1 and {}", crate::ids::MAX_PATIENTS),
            ));
        }
        for (key, [lo, hi]) in [
            ("documents.on_time_fraction", d.on_time_fraction),
            ("documents.late_multiple", d.late_multiple),
            ("acks.delay_seconds", self.acks.delay_seconds),
            (
                "discharges.inpatient_stay_hours",
                self.discharges.inpatient_stay_hours,
            ),
            (
                "discharges.day_case_stay_hours",
                self.discharges.day_case_stay_hours,
            ),
            (
                "discharges.emergency_stay_hours",
                self.discharges.emergency_stay_hours,
            ),
            (
                "discharges.outpatient_minutes",
                self.discharges.outpatient_minutes,
            ),
        ] {
            if !(lo >= 0.0 && lo <= hi && hi.is_finite()) {
                return Err(ProfileError::Invalid(
                    key.into(),
                    format!("[{lo}, {hi}] is not an ordered range"),
                ));
            }
            // Past this, stays and delays overflow the calendar's arithmetic.
            if hi > MAX_SPAN {
                return Err(ProfileError::Invalid(
                    key.into(),
                    format!("{hi} is over {MAX_SPAN}"),
                ));
            }
        }
        if d.on_time_fraction[1] >= 1.0 {
            return Err(ProfileError::Invalid(
                "documents.on_time_fraction".into(),
                "an on-time document must come before the deadline (max < 1)".into(),
            ));
        }
        // Times in messages are whole seconds: a late document must come at
        // least a second after the shorter deadline, or it reads as on time.
        let shortest = d.discharge_summary_due_hours.min(d.clinic_letter_due_hours) * 3600.0;
        if shortest > 0.0 && (d.late_multiple[0] - 1.0) * shortest < 1.0 {
            return Err(ProfileError::Invalid(
                "documents.late_multiple".into(),
                "a late document must come at least a second after the deadline (min > 1)".into(),
            ));
        }
        if d.text_words[0] > d.text_words[1] {
            return Err(ProfileError::Invalid(
                "documents.text_words".into(),
                "min exceeds max".into(),
            ));
        }
        let weights: [(&str, &[f64]); 5] = [
            (
                "volumes.discharge_hour_weights",
                &self.volumes.discharge_hour_weights,
            ),
            (
                "volumes.outpatient_hour_weights",
                &self.volumes.outpatient_hour_weights,
            ),
            (
                "discharges (inpatient, day_case, emergency)",
                &[
                    self.discharges.inpatient,
                    self.discharges.day_case,
                    self.discharges.emergency,
                ],
            ),
            (
                "documents (hl7_mdm, fhir_document, itk3)",
                &[d.hl7_mdm, d.fhir_document, d.itk3],
            ),
            (
                "volumes weekday factors",
                &[
                    self.volumes.discharge_weekday_factors.iter().sum(),
                    self.volumes.outpatient_weekday_factors.iter().sum(),
                ],
            ),
        ];
        for (key, w) in weights {
            if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
                return Err(ProfileError::Invalid(
                    key.into(),
                    "weights must be non-negative with a positive sum".into(),
                ));
            }
        }
        for (key, v) in [
            (
                "volumes.discharges_per_day",
                self.volumes.discharges_per_day,
            ),
            (
                "volumes.outpatient_attendances_per_day",
                self.volumes.outpatient_attendances_per_day,
            ),
            (
                "documents.discharge_summary_due_hours",
                d.discharge_summary_due_hours,
            ),
            (
                "documents.clinic_letter_due_hours",
                d.clinic_letter_due_hours,
            ),
        ] {
            if !(v.is_finite() && (0.0..=MAX_SPAN).contains(&v)) {
                return Err(ProfileError::Invalid(
                    key.into(),
                    format!("{v} is not a number between 0 and {MAX_SPAN}"),
                ));
            }
        }
        for (key, v) in [
            (
                "documents.discharge_summary_due_hours",
                d.discharge_summary_due_hours,
            ),
            (
                "documents.clinic_letter_due_hours",
                d.clinic_letter_due_hours,
            ),
        ] {
            if v <= 0.0 {
                return Err(ProfileError::Invalid(
                    key.into(),
                    "a deadline must be after the encounter's end (over 0)".into(),
                ));
            }
        }
        // Some day of the week must have traffic: a run bounded by a message
        // count would otherwise plan empty days until the calendar overflowed.
        let v = &self.volumes;
        let busiest = (0..7)
            .map(|i| {
                v.discharges_per_day * v.discharge_weekday_factors[i]
                    + v.outpatient_attendances_per_day * v.outpatient_weekday_factors[i]
            })
            .fold(0.0, f64::max);
        if busiest <= 0.0 {
            return Err(ProfileError::Invalid(
                "volumes".into(),
                "no day of the week has any discharges or attendances".into(),
            ));
        }
        Ok(())
    }

    /// Longest time before an encounter's end that its first message may
    /// carry (the longest stay), in seconds.
    pub(crate) fn max_lead_seconds(&self) -> i64 {
        let d = &self.discharges;
        let hours = d.inpatient_stay_hours[1]
            .max(d.day_case_stay_hours[1])
            .max(d.emergency_stay_hours[1])
            .max(d.outpatient_minutes[1] / 60.0);
        (hours * 3600.0).ceil() as i64 + 1
    }
}

/// What no word, name or code may hold: HL7's separators (field,
/// component, repetition, escape, subcomponent), line ends, and what JSON
/// and XML would have to escape. Generated text is written as it is.
const DELIMITERS: [char; 9] = ['|', '^', '~', '\\', '&', '\r', '\n', '"', '<'];

/// Largest value of a stay, delay or deadline range, in its own unit
/// (hours, minutes, seconds): ten years of hours. Larger values overflow
/// the date arithmetic.
const MAX_SPAN: f64 = 87_600.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_profile_is_valid() {
        Profile::from_toml(DEFAULT_PROFILE_TOML).unwrap();
    }

    #[test]
    fn shares_over_one_are_refused_with_the_key() {
        let text = DEFAULT_PROFILE_TOML.replace("late_share = 0.10", "late_share = 0.99");
        let e = Profile::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains("documents.late_share"), "{e}");
    }

    #[test]
    fn delimiters_in_words_are_refused() {
        for bad in ["SM|ITH", "SM^ITH"] {
            let text = DEFAULT_PROFILE_TOML.replace("\"SMITH\"", &format!("\"{bad}\""));
            let e = Profile::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains("names.family"), "{e}");
        }
        let p = Profile {
            trust: "R&X".into(),
            ..Profile::default()
        };
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("trust"), "{e}");
    }

    #[test]
    fn profiles_that_would_mislead_or_never_end_are_refused() {
        let refused = |edit: &dyn Fn(&mut Profile), key: &str| {
            let mut p = Profile::default();
            edit(&mut p);
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        };
        // A "late" document that would be stamped in the deadline's second.
        refused(
            &|p| p.documents.late_multiple = [1.000_000_1, 2.0],
            "documents.late_multiple",
        );
        refused(
            &|p| p.documents.clinic_letter_due_hours = 0.0,
            "documents.clinic_letter_due_hours",
        );
        refused(
            &|p| p.discharges.inpatient_stay_hours = [12.0, 1e12],
            "discharges.inpatient_stay_hours",
        );
        refused(
            &|p| {
                p.volumes.discharges_per_day = 0.0;
                p.volumes.outpatient_weekday_factors = [0.0; 7];
            },
            "volumes",
        );
        Profile::default().validate().unwrap();
    }
}
