//! FHIR STU3 JSON (ITK3 Transfer of Care, CareConnect) read through
//! fhir-sdk's STU3 models.

use chrono_tz::Tz;
use fhir_sdk::stu3::resources::{
    Bundle, Composition, CompositionRelatesToTarget, DocumentReference, Encounter, MessageHeader,
    Organization, Patient,
};

use crate::common::conversions;
use crate::time::{LocalTimes, datetime_utc, instant_utc, model, period_end_utc};
use crate::view::{
    BundleView, CompositionView, DocRefView, EncounterView, MessageHeaderView, OrganizationView,
    PatientView, Reader,
};

conversions!(stu3);

/// The STU3 reader.
pub(crate) struct Stu3 {
    pub tz: Tz,
    /// Date-times of this input read as local time.
    pub local: LocalTimes,
}

impl Reader for Stu3 {
    fn local_times(&self) -> &LocalTimes {
        &self.local
    }

    fn encounter(&self, v: &str) -> Result<EncounterView, serde_json::Error> {
        let e: Encounter = model(v, self.tz, &self.local)?;
        let period = e.period.as_ref();
        Ok(EncounterView {
            meta: meta(&e.id, &e.meta),
            identifiers: idents(&e.identifier),
            status: e.status.as_ref().to_owned(),
            class: e.class.as_ref().map(code),
            start: period
                .and_then(|p| p.start.as_ref())
                .and_then(|d| datetime_utc(d, self.tz)),
            end: period
                .and_then(|p| p.end.as_ref())
                .and_then(|d| period_end_utc(d, self.tz)),
            subject: e.subject.as_ref().map(reference),
            service_provider: e.service_provider.as_ref().map(reference),
            locations: e
                .location
                .iter()
                .flatten()
                .map(|l| reference(&l.location))
                .collect(),
            // STU3 has no serviceType; CareConnect carries the specialty in
            // `type`, which is also the encounter type: left unread.
            specialty: None,
        })
    }

    fn document_reference(&self, v: &str) -> Result<DocRefView, serde_json::Error> {
        let d: DocumentReference = model(v, self.tz, &self.local)?;
        Ok(DocRefView {
            meta: meta(&d.id, &d.meta),
            master_identifier: d.master_identifier.as_ref().map(ident),
            identifiers: idents(&d.identifier),
            status: d.status.as_ref().to_owned(),
            doc_status: d.doc_status.as_ref().map(|s| s.as_ref().to_owned()),
            types: codes(&d.r#type),
            date: instant_utc(&d.indexed),
            created: d.created.as_ref().and_then(|c| datetime_utc(c, self.tz)),
            attachment_created: d
                .content
                .iter()
                .flatten()
                .find_map(|c| c.attachment.creation.as_ref())
                .and_then(|c| datetime_utc(c, self.tz)),
            subject: d.subject.as_ref().map(reference),
            encounters: d
                .context
                .as_ref()
                .and_then(|c| c.encounter.as_ref())
                .map(reference)
                .into_iter()
                .collect(),
            relates_to: d
                .relates_to
                .iter()
                .flatten()
                .map(|r| (r.code.as_ref().to_owned(), reference(&r.target)))
                .collect(),
            custodian: d.custodian.as_ref().map(reference),
        })
    }

    fn composition(&self, v: &str) -> Result<CompositionView, serde_json::Error> {
        let c: Composition = model(v, self.tz, &self.local)?;
        Ok(CompositionView {
            meta: meta(&c.id, &c.meta),
            identifier: c.identifier.as_ref().map(ident),
            status: c.status.as_ref().to_owned(),
            types: codes(&c.r#type),
            subject: Some(reference(&c.subject)),
            encounter: c.encounter.as_ref().map(reference),
            date: datetime_utc(&c.date, self.tz),
            custodian: c.custodian.as_ref().map(reference),
            authors: refs(&c.author),
            replaces: c.relates_to.iter().flatten().find_map(|r| {
                (r.code.as_ref() == "replaces").then(|| match &r.target {
                    CompositionRelatesToTarget::Reference(t) => reference(t),
                    CompositionRelatesToTarget::Identifier(i) => crate::view::Ref {
                        reference: None,
                        identifier: Some(ident(i)),
                    },
                })
            }),
        })
    }

    fn message_header(&self, v: &str) -> Result<MessageHeaderView, serde_json::Error> {
        let m: MessageHeader = model(v, self.tz, &self.local)?;
        Ok(MessageHeaderView {
            meta: meta(&m.id, &m.meta),
            event: Some(code(&m.event)),
            timestamp: instant_utc(&m.timestamp),
            receivers: m.receiver.as_ref().map(reference).into_iter().collect(),
            destination_endpoints: m
                .destination
                .iter()
                .flatten()
                .map(|d| d.endpoint.clone())
                .collect(),
            sender: m.sender.as_ref().map(reference),
            source_endpoint: Some(m.source.endpoint.clone()),
            response: m
                .response
                .as_ref()
                .map(|r| (r.identifier.clone(), r.code.as_ref().to_owned())),
            response_details: m
                .response
                .as_ref()
                .and_then(|r| r.details.as_ref())
                .map(reference),
            focus: refs(&m.focus),
        })
    }

    fn patient(&self, v: &str) -> Result<PatientView, serde_json::Error> {
        let p: Patient = model(v, self.tz, &self.local)?;
        Ok(PatientView {
            identifiers: idents(&p.identifier),
            general_practitioners: refs(&p.general_practitioner),
        })
    }

    fn organization(&self, v: &str) -> Result<OrganizationView, serde_json::Error> {
        let o: Organization = model(v, self.tz, &self.local)?;
        Ok(OrganizationView {
            identifiers: idents(&o.identifier),
        })
    }

    fn bundle(&self, v: &str) -> Result<BundleView, serde_json::Error> {
        let b: Bundle = model(v, self.tz, &self.local)?;
        Ok(BundleView {
            meta: meta(&b.id, &b.meta),
            identifier: b.identifier.as_ref().map(ident),
            bundle_type: b.r#type.as_ref().to_owned(),
            // STU3 bundles have no timestamp.
            timestamp: None,
        })
    }
}
