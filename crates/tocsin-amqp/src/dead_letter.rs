//! The properties of a dead-lettered copy: everything the original had, so
//! an operator can replay it as it came, minus the two properties that would
//! make the broker refuse or drop the copy. Kept apart from the consumer so
//! the rule is in one place and testable without a broker.

use crate::publisher::long_string;
use lapin::BasicProperties;
use lapin::types::FieldTable;

/// Header naming why tocsin dead-lettered a message.
pub const ERROR_HEADER: &str = "x-tocsin-error";
/// Header naming where in the message the error is, when known.
pub const ERROR_LOCATION_HEADER: &str = "x-tocsin-error-location";
/// Header keeping the exchange the message originally came through.
pub const ORIGINAL_EXCHANGE_HEADER: &str = "x-tocsin-original-exchange";
/// Header keeping the routing key the message was originally published with.
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-tocsin-original-routing-key";
/// Header keeping the original `expiration`, which the copy does not carry.
pub const ORIGINAL_EXPIRATION_HEADER: &str = "x-tocsin-original-expiration";
/// Header keeping the original `user_id`, which the copy does not carry.
pub const ORIGINAL_USER_ID_HEADER: &str = "x-tocsin-original-user-id";

/// Where the message came from and why it is being dead-lettered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection<'a> {
    pub(crate) reason: &'a str,
    pub(crate) location: Option<&'a str>,
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
}

/// The copy's properties: the original's, persistent, with the original
/// headers plus ours. `expiration` is moved to a header (as RabbitMQ's own
/// dead-lettering does) so the copy cannot expire in the dead-letter queue,
/// and `user_id` too, since the broker refuses a publish whose `user_id` is
/// not the publishing user's.
pub(crate) fn dead_letter_properties(
    original: &BasicProperties,
    why: Rejection<'_>,
) -> BasicProperties {
    let mut headers: FieldTable = original.headers().clone().unwrap_or_default();
    headers.insert(ERROR_HEADER.into(), long_string(why.reason));
    if let Some(location) = why.location {
        headers.insert(ERROR_LOCATION_HEADER.into(), long_string(location));
    }
    headers.insert(ORIGINAL_EXCHANGE_HEADER.into(), long_string(why.exchange));
    headers.insert(
        ORIGINAL_ROUTING_KEY_HEADER.into(),
        long_string(why.routing_key),
    );
    if let Some(expiration) = original.expiration() {
        headers.insert(
            ORIGINAL_EXPIRATION_HEADER.into(),
            long_string(expiration.as_str()),
        );
    }
    if let Some(user) = original.user_id() {
        headers.insert(ORIGINAL_USER_ID_HEADER.into(), long_string(user.as_str()));
    }

    let mut p = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(2);
    macro_rules! copy {
        ($($get:ident => $set:ident),* $(,)?) => {
            $(if let Some(v) = original.$get() { p = p.$set(v.clone()); })*
        };
    }
    copy!(
        content_type => with_content_type,
        content_encoding => with_content_encoding,
        priority => with_priority,
        correlation_id => with_correlation_id,
        reply_to => with_reply_to,
        message_id => with_message_id,
        timestamp => with_timestamp,
        kind => with_type,
        app_id => with_app_id,
        cluster_id => with_cluster_id,
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::AMQPValue;

    fn text(h: &FieldTable, k: &str) -> String {
        match h.inner().get(k) {
            Some(AMQPValue::LongString(s)) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
            other => panic!("{k}: {other:?}"),
        }
    }

    #[test]
    fn keeps_the_original_and_adds_the_reason() {
        let mut headers = FieldTable::default();
        headers.insert("x-trust".into(), long_string("RX1"));
        let original = BasicProperties::default()
            .with_content_type("application/fhir+json".into())
            .with_message_id("m-1".into())
            .with_correlation_id("c-1".into())
            .with_priority(3)
            .with_timestamp(1_700_000_000)
            .with_type("document".into())
            .with_app_id("engine".into())
            .with_delivery_mode(1)
            .with_expiration("60000".into())
            .with_user_id("engine-user".into())
            .with_headers(headers);
        let why = Rejection {
            reason: "Bundle has no Composition",
            location: Some("Bundle.entry[0]"),
            exchange: "engine.docs",
            routing_key: "itk.document",
        };
        let p = dead_letter_properties(&original, why);
        assert_eq!(p.content_type(), original.content_type());
        assert_eq!(p.message_id(), original.message_id());
        assert_eq!(p.correlation_id(), original.correlation_id());
        assert_eq!(p.priority(), &Some(3));
        assert_eq!(p.timestamp(), &Some(1_700_000_000));
        assert_eq!(p.kind(), original.kind());
        assert_eq!(p.app_id(), original.app_id());
        assert_eq!(p.delivery_mode(), &Some(2), "made persistent");
        assert_eq!(
            p.expiration(),
            &None,
            "must not expire in the dead-letter queue"
        );
        assert_eq!(
            p.user_id(),
            &None,
            "the broker would refuse another user's id"
        );
        let h = p.headers().as_ref().unwrap();
        assert_eq!(text(h, "x-trust"), "RX1");
        assert_eq!(text(h, ERROR_HEADER), "Bundle has no Composition");
        assert_eq!(text(h, ERROR_LOCATION_HEADER), "Bundle.entry[0]");
        assert_eq!(text(h, ORIGINAL_EXCHANGE_HEADER), "engine.docs");
        assert_eq!(text(h, ORIGINAL_ROUTING_KEY_HEADER), "itk.document");
        assert_eq!(text(h, ORIGINAL_EXPIRATION_HEADER), "60000");
        assert_eq!(text(h, ORIGINAL_USER_ID_HEADER), "engine-user");
    }

    #[test]
    fn no_location_means_no_location_header() {
        let why = Rejection {
            reason: "not HL7, FHIR JSON or NDJSON",
            location: None,
            exchange: "",
            routing_key: "tocsin.inbound",
        };
        let p = dead_letter_properties(&BasicProperties::default(), why);
        let h = p.headers().as_ref().unwrap();
        assert!(!h.contains_key(ERROR_LOCATION_HEADER));
        assert_eq!(text(h, ERROR_HEADER), "not HL7, FHIR JSON or NDJSON");
    }
}
