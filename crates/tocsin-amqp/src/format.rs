//! Map an AMQP `content_type` to the input format it announces, so the
//! gateway can skip content sniffing when the integration engine labels its
//! traffic. This crate knows nothing of the parsers; the binary maps
//! [`InputFormat`] onto the ingest crate's own hint type.

/// The input formats a content type can announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// HL7 v2 in ER7 (pipe-delimited) encoding.
    Hl7,
    /// A FHIR resource or Bundle in JSON.
    FhirJson,
    /// Newline-delimited JSON (one FHIR resource or event per line).
    Ndjson,
    /// A FHIR resource or Bundle in XML.
    FhirXml,
}

/// The format announced by `content_type`, or `None` when it is absent or
/// not one we recognise (the caller then detects the format from the body).
///
/// Matching ignores case, surrounding blanks and parameters such as
/// `; charset=utf-8` or FHIR's `; fhirVersion=4.0`.
#[must_use]
pub fn format_hint(content_type: Option<&str>) -> Option<InputFormat> {
    let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "x-application/hl7-v2+er7" | "application/hl7-v2" | "application/x-hl7" => {
            Some(InputFormat::Hl7)
        }
        "application/fhir+json" | "application/json" | "application/json+fhir" => {
            Some(InputFormat::FhirJson)
        }
        "application/x-ndjson" | "application/ndjson" | "application/fhir+ndjson" => {
            Some(InputFormat::Ndjson)
        }
        "application/fhir+xml" | "application/xml" | "application/xml+fhir" | "text/xml" => {
            Some(InputFormat::FhirXml)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_formats_are_recognised() {
        let cases = [
            ("x-application/hl7-v2+er7", InputFormat::Hl7),
            ("application/hl7-v2", InputFormat::Hl7),
            ("application/fhir+json", InputFormat::FhirJson),
            ("application/json", InputFormat::FhirJson),
            ("application/x-ndjson", InputFormat::Ndjson),
            ("application/fhir+xml", InputFormat::FhirXml),
            ("application/xml", InputFormat::FhirXml),
        ];
        for (ct, want) in cases {
            assert_eq!(format_hint(Some(ct)), Some(want), "{ct}");
        }
    }

    #[test]
    fn parameters_case_and_blanks_are_ignored() {
        assert_eq!(
            format_hint(Some(
                " Application/FHIR+JSON; fhirVersion=4.0; charset=utf-8"
            )),
            Some(InputFormat::FhirJson)
        );
        assert_eq!(
            format_hint(Some("x-application/HL7-v2+er7;charset=iso-8859-1")),
            Some(InputFormat::Hl7)
        );
    }

    #[test]
    fn unknown_or_absent_types_give_no_hint() {
        assert_eq!(format_hint(None), None);
        assert_eq!(format_hint(Some("")), None);
        assert_eq!(format_hint(Some("text/plain")), None);
        assert_eq!(format_hint(Some("application/octet-stream")), None);
    }
}
