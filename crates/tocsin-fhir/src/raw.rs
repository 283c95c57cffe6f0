//! JSON objects taken apart one level at a time, borrowing from the input.
//!
//! The input is parsed once into [`RawValue`]s (text slices the parser has
//! checked); a resource's top-level object becomes an [`Obj`] of keys and
//! raw values. Only the resources tocsin reads go through their fhir-sdk
//! model, straight from the text, and only with the elements tocsin may
//! read: no `serde_json::Value` tree is built on the way (see
//! [`Obj::to_json`] and [`crate::time::model`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object key, borrowed unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of one JSON object, in input order, each value still text.
/// A repeated key keeps its last value, as `serde_json::Value` does.
#[derive(Debug, Default)]
pub(crate) struct Obj<'de> {
    fields: Vec<(Cow<'de, str>, &'de RawValue)>,
}

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<'de>, A::Error> {
                let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Key(k)) = map.next_key()? {
                    let v: &'de RawValue = map.next_value()?;
                    match fields.iter_mut().find(|(name, _)| *name == k) {
                        Some(slot) => slot.1 = v,
                        None => fields.push((k, v)),
                    }
                }
                Ok(Obj { fields })
            }
        }
        d.deserialize_map(V)
    }
}

/// What a raw value is, from its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Other,
}

/// The kind of a raw value (the parser has already checked its syntax).
pub(crate) fn kind(v: &RawValue) -> Kind {
    match v.get().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        _ => Kind::Other,
    }
}

/// A raw value as an object, if it is one.
pub(crate) fn obj(v: &RawValue) -> Option<Obj<'_>> {
    (kind(v) == Kind::Object)
        .then(|| serde_json::from_str(v.get()).ok())
        .flatten()
}

/// The elements of a raw array, if it is one.
pub(crate) fn array(v: &RawValue) -> Option<Vec<&RawValue>> {
    (kind(v) == Kind::Array)
        .then(|| serde_json::from_str(v.get()).ok())
        .flatten()
}

/// A raw string's value, if it is a string.
pub(crate) fn string(v: &RawValue) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct S<'a>(#[serde(borrow)] Cow<'a, str>);
    (kind(v) == Kind::String)
        .then(|| serde_json::from_str::<S>(v.get()).ok().map(|s| s.0))
        .flatten()
}

impl<'de> Obj<'de> {
    /// The value of a member.
    pub fn get(&self, key: &str) -> Option<&'de RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Whether the object has a member.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The string value of a member, if it is a string.
    pub fn str(&self, key: &str) -> Option<Cow<'de, str>> {
        self.get(key).and_then(string)
    }

    /// Whether any member is among `keys`.
    pub fn has_any(&self, keys: &[&str]) -> bool {
        self.fields.iter().any(|(k, _)| keys.contains(&k.as_ref()))
    }

    /// The object as JSON text without the members named in `skip`, with
    /// `extra` members (already JSON) appended: the kept members' text is
    /// copied as sent, nothing is re-serialised.
    pub fn to_json(&self, skip: &[&str], extra: &[(&str, &str)]) -> String {
        let size = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
            + extra
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>();
        let mut out = String::with_capacity(size + 2);
        out.push('{');
        let kept = self
            .fields
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_ref()))
            .map(|(k, v)| (k.as_ref(), v.get()));
        for (k, v) in kept.chain(extra.iter().copied()) {
            if out.len() > 1 {
                out.push(',');
            }
            push_key(&mut out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

/// Writes a key as a JSON string (escaped if it needs to be).
fn push_key(out: &mut String, k: &str) {
    if k.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(k);
        out.push('"');
    } else {
        // Escaping a str cannot fail.
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_order_last_duplicate_and_skip_members() {
        let o: Obj = serde_json::from_str(r#"{"a":1,"b\n":[2, 3],"a":{"x":"y"},"c":"d"}"#).unwrap();
        assert_eq!(o.get("a").unwrap().get(), r#"{"x":"y"}"#);
        assert_eq!(o.str("c").as_deref(), Some("d"));
        assert_eq!(kind(o.get("b\n").unwrap()), Kind::Array);
        let text = o.to_json(&["c"], &[("e", "[]")]);
        assert_eq!(text, r#"{"a":{"x":"y"},"b\n":[2, 3],"e":[]}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["b\n"][1], 3);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let v: &RawValue = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(string(v).as_deref(), Some("a\"b"));
        assert!(obj(v).is_none());
    }
}
