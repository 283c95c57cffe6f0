//! Conversions shared by the R4 and STU3 readers: the data types they use
//! have the same shape in both versions but are distinct Rust types, so one
//! macro writes the conversions for each version's module.

/// Writes `ident`, `code`, `codes`, `reference` and `meta` conversion
/// functions for the fhir-sdk version module `$v` (`r4b` or `stu3`).
macro_rules! conversions {
    ($v:ident) => {
        use fhir_sdk::$v::types::{CodeableConcept, Coding, Identifier, Reference};
        use $crate::view::{Code, Ident, Meta, Ref};

        pub(crate) fn ident(i: &Identifier) -> Ident {
            Ident {
                system: i.system.clone(),
                value: i.value.clone(),
                type_code: i
                    .r#type
                    .as_ref()
                    .and_then(|t| t.coding.iter().flatten().find_map(|c| c.code.clone())),
            }
        }

        pub(crate) fn idents(v: &[Option<Identifier>]) -> Vec<Ident> {
            v.iter().flatten().map(ident).collect()
        }

        pub(crate) fn code(c: &Coding) -> Code {
            Code {
                system: c.system.clone(),
                code: c.code.clone(),
            }
        }

        pub(crate) fn codes(cc: &CodeableConcept) -> Vec<Code> {
            cc.coding.iter().flatten().map(code).collect()
        }

        pub(crate) fn reference(r: &Reference) -> Ref {
            Ref {
                reference: r.reference.clone(),
                identifier: r.identifier.as_ref().map(ident),
            }
        }

        pub(crate) fn refs(v: &[Option<Reference>]) -> Vec<Ref> {
            v.iter().flatten().map(reference).collect()
        }

        pub(crate) fn meta(id: &Option<String>, m: &Option<fhir_sdk::$v::types::Meta>) -> Meta {
            Meta {
                id: id.clone(),
                version_id: m.as_ref().and_then(|m| m.version_id.clone()),
                last_updated: m
                    .as_ref()
                    .and_then(|m| m.last_updated.as_ref())
                    .and_then($crate::time::instant_utc),
            }
        }
    };
}

pub(crate) use conversions;
