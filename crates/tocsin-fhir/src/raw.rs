//! A FHIR resource taken apart in one pass, borrowing from the input.
//!
//! The input is parsed once. A resource's members are kept as
//! [`RawValue`]s (text slices the parser has checked), except the members
//! that hold further resources, which are taken apart in the same pass: a
//! resource's `entry` (a bundle's entries, each with its `resource`) and
//! `contained`. So a bundle nested in a message is read once, not once per
//! level, and the members tocsin never reads (a narrative `div`, sections)
//! are skipped over once. Only the resources tocsin reads go through their
//! fhir-sdk model, from text rebuilt out of the kept slices ([`Obj::to_json`]);
//! no `serde_json::Value` tree is built on the way (see
//! [`crate::time::model`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

/// Which members of an object hold resources, and so are taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// A resource (or any object met where one may be): `entry` holds
    /// entries, `contained` resources.
    Resource,
    /// A bundle entry: `resource` holds a resource.
    Entry,
}

impl Ctx {
    /// The context of the member `key`, if it is taken apart.
    fn member(self, key: &str) -> Option<Ctx> {
        match (self, key) {
            (Ctx::Resource, "entry") => Some(Ctx::Entry),
            (Ctx::Resource, "contained") | (Ctx::Entry, "resource") => Some(Ctx::Resource),
            _ => None,
        }
    }
}

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

/// A member's value: text as sent, or, for members that hold resources,
/// taken apart.
#[derive(Debug)]
pub(crate) enum Val<'de> {
    /// Checked JSON text, not taken apart.
    Raw(&'de RawValue),
    /// An object taken apart.
    Obj(Obj<'de>),
    /// An array taken apart.
    List(Vec<Val<'de>>),
    /// A scalar where an object or array was expected, as JSON text.
    Scalar(String),
}

impl<'de> Val<'de> {
    /// The object, if this is one taken apart (see [`Ctx`]).
    pub fn as_obj(&self) -> Option<&Obj<'de>> {
        match self {
            Val::Obj(o) => Some(o),
            _ => None,
        }
    }

    /// The elements, if this is an array taken apart.
    pub fn as_list(&self) -> Option<&[Val<'de>]> {
        match self {
            Val::List(l) => Some(l),
            _ => None,
        }
    }

    /// The text, if this value was kept as sent.
    pub fn raw(&self) -> Option<&'de RawValue> {
        match self {
            Val::Raw(r) => Some(r),
            _ => None,
        }
    }

    /// What the value is.
    pub fn kind(&self) -> Kind {
        match self {
            Val::Raw(r) => kind(r),
            Val::Obj(_) => Kind::Object,
            Val::List(_) => Kind::Array,
            Val::Scalar(s) if s.starts_with('"') => Kind::String,
            Val::Scalar(_) => Kind::Other,
        }
    }

    /// Appends the value as JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Val::Raw(r) => out.push_str(r.get()),
            Val::Obj(o) => o.write(out, &[], &[]),
            Val::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Val::Scalar(s) => out.push_str(s),
        }
    }

    /// An upper bound guess of the text's length, to size buffers.
    fn len_hint(&self) -> usize {
        match self {
            Val::Raw(r) => r.get().len(),
            Val::Obj(o) => o.len_hint(),
            Val::List(items) => items.iter().map(|v| v.len_hint() + 1).sum::<usize>() + 2,
            Val::Scalar(s) => s.len(),
        }
    }
}

impl Clone for Val<'_> {
    fn clone(&self) -> Self {
        match self {
            Val::Raw(r) => Val::Raw(r),
            Val::Obj(o) => Val::Obj(o.clone()),
            Val::List(l) => Val::List(l.clone()),
            Val::Scalar(s) => Val::Scalar(s.clone()),
        }
    }
}

/// Parses a value in a context: objects and arrays taken apart, anything
/// else kept as JSON text. It accepts every JSON value, so the only errors
/// it passes on are the parser's own (syntax, nesting limit).
struct Seed(Ctx);

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Val<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Val<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Val<'de>, A::Error> {
        ObjVisitor(self.0).visit_map(map).map(Val::Obj)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(8));
        while let Some(v) = seq.next_element_seed(Seed(self.0))? {
            items.push(v);
        }
        Ok(Val::List(items))
    }
    fn visit_str<E>(self, s: &str) -> Result<Val<'de>, E> {
        Ok(Val::Scalar(quote(s)))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Val<'de>, E> {
        Ok(Val::Scalar(b.to_string()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Val<'de>, E> {
        Ok(Val::Scalar(n.to_string()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Val<'de>, E> {
        Ok(Val::Scalar(n.to_string()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Val<'de>, E> {
        Ok(Val::Scalar(
            serde_json::Number::from_f64(n).map_or_else(|| "null".to_owned(), |n| n.to_string()),
        ))
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Scalar("null".to_owned()))
    }
}

/// The members of one JSON object, in input order (see the module
/// documentation for which are taken apart). A repeated key keeps its last
/// value, as `serde_json::Value` does, and the first key repeated is noted
/// ([`Obj::repeated`]): the resources and bundle entries tocsin reads are
/// refused for it (`prepare`), as FHIR XML giving one element twice is.
#[derive(Debug, Default, Clone)]
pub(crate) struct Obj<'de> {
    fields: Vec<(Cow<'de, str>, Val<'de>)>,
    repeated: Option<Cow<'de, str>>,
}

/// Reads an object's members in a context.
struct ObjVisitor(Ctx);

impl<'de> Visitor<'de> for ObjVisitor {
    type Value = Obj<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<'de>, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, Val<'de>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(16));
        // A one-word filter of the keys seen so far: a repeated key is
        // looked for among the members only when its bit is already set.
        let mut seen = 0u64;
        let mut repeated = None;
        while let Some(Key(k)) = map.next_key()? {
            let v = match self.0.member(&k) {
                Some(ctx) => map.next_value_seed(Seed(ctx))?,
                None => Val::Raw(map.next_value()?),
            };
            let bit = key_bit(&k);
            let slot = if seen & bit != 0 {
                fields.iter_mut().find(|(name, _)| *name == k)
            } else {
                None
            };
            seen |= bit;
            match slot {
                Some(slot) => {
                    if repeated.is_none() {
                        repeated = Some(k);
                    }
                    slot.1 = v;
                }
                None => fields.push((k, v)),
            }
        }
        Ok(Obj { fields, repeated })
    }
}

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjVisitor(Ctx::Resource))
    }
}

/// The bit of a key in [`ObjVisitor`]'s filter of keys seen (equal keys,
/// equal bits).
fn key_bit(k: &str) -> u64 {
    let b = k.as_bytes();
    let h = b.len()
        ^ usize::from(b.first().copied().unwrap_or(0)) << 2
        ^ usize::from(b.last().copied().unwrap_or(0)) << 1;
    1 << (h % 64)
}

/// Parses one whole input (a resource, or whatever JSON was sent) in one
/// pass; errors are serde_json's syntax errors only.
///
/// UTF-8 is checked once, up front (vectorised), so the parser need not
/// check each kept slice again; input that is not UTF-8 is parsed from the
/// bytes so that the error names the line and column where it goes wrong.
pub(crate) fn parse(text: &[u8]) -> Result<Val<'_>, serde_json::Error> {
    match std::str::from_utf8(text) {
        Ok(s) => parse_from(serde_json::Deserializer::from_str(s)),
        Err(_) => parse_from(serde_json::Deserializer::from_slice(text)),
    }
}

fn parse_from<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<Val<'de>, serde_json::Error> {
    let v = Seed(Ctx::Resource).deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// A string as a JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_key(&mut out, s);
    out
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

/// A raw string's value, if it is a string.
pub(crate) fn string(v: &RawValue) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct S<'a>(#[serde(borrow)] Cow<'a, str>);
    if kind(v) != Kind::String {
        return None;
    }
    // A string the parser has checked that holds no backslash holds no
    // escape: its value is the text between the quotes. Most do.
    let text = v.get();
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
        && !inner.contains('\\')
    {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<S>(text).ok().map(|s| s.0)
}

/// The string elements of the array member `key` of a raw object, in
/// order, other elements skipped: what [`obj`], then the member's elements
/// read as raw values, then [`string`] on each element give (the last of a
/// repeated member counts, as in [`Obj`]), but in one scan of the object's
/// text, building no [`Obj`]. `None` if `v` is not an object, lacks the member,
/// or the member is not an array. For `meta.profile`, read on every
/// resource by version detection.
pub(crate) fn member_strings<'a>(v: &'a RawValue, key: &str) -> Option<Vec<Cow<'a, str>>> {
    if kind(v) != Kind::Object {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(v.get());
    de.deserialize_map(MemberStrings(key)).ok().flatten()
}

/// Finds a member of an object and reads it with [`Strings`]; every other
/// member is skipped (serde_json skips without recursion, so nesting is
/// no more limited than in [`parse`]).
struct MemberStrings<'k>(&'k str);

impl<'de> Visitor<'de> for MemberStrings<'_> {
    type Value = Option<Vec<Cow<'de, str>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Key(k)) = map.next_key()? {
            if k == self.0 {
                found = map.next_value_seed(Strings)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Visitor methods for values that are not what is looked for: `None`,
/// with objects and arrays skipped whole.
macro_rules! none_for_other_values {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

/// An array's string elements (see [`member_strings`]); `None` for any
/// other value.
struct Strings;

impl<'de> DeserializeSeed<'de> for Strings {
    type Value = Option<Vec<Cow<'de, str>>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strings {
    type Value = Option<Vec<Cow<'de, str>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        while let Some(s) = seq.next_element_seed(Element)? {
            out.extend(s);
        }
        Ok(Some(out))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    none_for_other_values!();
}

/// An array element: its text if it is a string, else `None`.
struct Element;

impl<'de> DeserializeSeed<'de> for Element {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(s.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    none_for_other_values!();
}

impl<'de> Obj<'de> {
    /// The value of a member.
    pub fn get(&self, key: &str) -> Option<&Val<'de>> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The name of the first member given more than once, if any (its
    /// last value is the one kept).
    pub fn repeated(&self) -> Option<&str> {
        self.repeated.as_deref()
    }

    /// The text of a member kept as sent.
    pub fn raw(&self, key: &str) -> Option<&'de RawValue> {
        self.get(key).and_then(Val::raw)
    }

    /// Whether the object has a member.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The string value of a member, if it is a string.
    pub fn str(&self, key: &str) -> Option<Cow<'de, str>> {
        self.raw(key).and_then(string)
    }

    /// The object as JSON text without the members named in `skip`, with
    /// `extra` members (already JSON) appended: the kept members' text is
    /// copied as sent, nothing is re-serialised.
    pub fn to_json(&self, skip: &[&str], extra: &[(&str, &str)]) -> String {
        let size = self.len_hint()
            + extra
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>();
        let mut out = String::with_capacity(size);
        self.write(&mut out, skip, extra);
        out
    }

    /// The object as JSON text with only the members `keep` accepts.
    pub fn to_json_keeping(&self, keep: &dyn Fn(&str) -> bool) -> String {
        let mut out = String::with_capacity(self.len_hint());
        self.write_with(&mut out, keep, &[]);
        out
    }

    /// Appends the object as JSON text (see [`Obj::to_json`]).
    fn write(&self, out: &mut String, skip: &[&str], extra: &[(&str, &str)]) {
        self.write_with(out, &|k| !skip.contains(&k), extra);
    }

    /// Appends the members `keep` accepts, then `extra`, as a JSON object.
    pub fn write_with(
        &self,
        out: &mut String,
        keep: &dyn Fn(&str) -> bool,
        extra: &[(&str, &str)],
    ) {
        out.push('{');
        let mut first = true;
        for (k, v) in self.fields.iter().filter(|(k, _)| keep(k)) {
            if !first {
                out.push(',');
            }
            first = false;
            push_key(out, k);
            out.push(':');
            v.write(out);
        }
        for (k, v) in extra {
            if !first {
                out.push(',');
            }
            first = false;
            push_key(out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
    }

    /// An upper bound guess of the text's length, to size buffers.
    fn len_hint(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, v)| k.len() + v.len_hint() + 4)
            .sum::<usize>()
            + 2
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
        assert_eq!(o.raw("a").unwrap().get(), r#"{"x":"y"}"#);
        assert_eq!(o.repeated(), Some("a"));
        assert_eq!(o.str("c").as_deref(), Some("d"));
        assert_eq!(o.get("b\n").unwrap().kind(), Kind::Array);
        let text = o.to_json(&["c"], &[("e", "[]")]);
        assert_eq!(text, r#"{"a":{"x":"y"},"b\n":[2, 3],"e":[]}"#);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["b\n"][1], 3);
    }

    #[test]
    fn every_repeated_key_keeps_its_last_value_among_many_keys() {
        // 200 members over 70 names: the seen-keys filter has 64 bits, so
        // names share bits and repeats are found through the member list.
        let members: Vec<String> = (0..200)
            .map(|i| format!("\"k{}\":{i}", (i * 7) % 70))
            .collect();
        let text = format!("{{{}}}", members.join(","));
        let o: Obj = serde_json::from_str(&text).unwrap();
        let tree: serde_json::Value = serde_json::from_str(&text).unwrap();
        let names = tree.as_object().unwrap();
        assert_eq!(o.fields.len(), names.len());
        // The first repeat: member 70 is the first of a name already seen.
        assert_eq!(o.repeated(), Some("k0"));
        for (name, value) in names {
            assert_eq!(o.raw(name).unwrap().get(), value.to_string(), "{name}");
        }
    }

    #[test]
    fn member_strings_are_what_the_object_and_array_reading_gives() {
        // The reading it replaces in version detection.
        fn array(v: &RawValue) -> Option<Vec<&RawValue>> {
            (kind(v) == Kind::Array)
                .then(|| serde_json::from_str(v.get()).ok())
                .flatten()
        }
        fn by_obj<'a>(v: &'a RawValue, key: &str) -> Option<Vec<Cow<'a, str>>> {
            obj(v)
                .and_then(|o| o.raw(key))
                .and_then(array)
                .map(|items| items.into_iter().filter_map(string).collect())
        }
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        let cases = [
            r#"{"profile":["a","b"]}"#.to_owned(),
            r#"{"versionId":"1","profile":["https://x/STU3/y"],"lastUpdated":"2024"}"#.to_owned(),
            r#"{"profile":[]}"#.to_owned(),
            r#"{"profile":"not a list"}"#.to_owned(),
            r#"{"profile":{"a":["b"]}}"#.to_owned(),
            r#"{"profile":null}"#.to_owned(),
            r#"{"tag":[{"profile":["x"]}]}"#.to_owned(),
            r#"{}"#.to_owned(),
            // Elements that are not strings are skipped, escapes undone.
            r#"{"profile":[1,"a\/b\u0041",null,{"x":["y"]},["z"],true,-2.5e3,"c"]}"#.to_owned(),
            // An escaped key is the same key; the last repeat counts.
            r#"{"pro\u0066ile":["a"]}"#.to_owned(),
            r#"{"profile":["a"],"profile":["b","c"]}"#.to_owned(),
            r#"{"profile":["a"],"profile":"b"}"#.to_owned(),
            r#"{"profile":"b","profile":["a"]}"#.to_owned(),
            // Nesting deeper than serde_json's recursion limit.
            format!(r#"{{"x":{deep},"profile":[{deep},"a"]}}"#),
            r#"["profile"]"#.to_owned(),
            r#""profile""#.to_owned(),
            r#"7"#.to_owned(),
        ];
        for text in &cases {
            let v: &RawValue = serde_json::from_str(text).unwrap();
            assert_eq!(member_strings(v, "profile"), by_obj(v, "profile"), "{text}");
        }
        let v: &RawValue = serde_json::from_str(&cases[8]).unwrap();
        assert_eq!(
            member_strings(v, "profile").unwrap(),
            ["a/bA", "c"].map(Cow::Borrowed)
        );
        let v: &RawValue = serde_json::from_str(&cases[10]).unwrap();
        assert_eq!(
            member_strings(v, "profile").unwrap(),
            ["b", "c"].map(Cow::Borrowed)
        );
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let v: &RawValue = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(string(v).as_deref(), Some("a\"b"));
        assert!(obj(v).is_none());
    }

    #[test]
    fn strings_read_as_serde_json_reads_them() {
        let cases = [
            r#""""#,
            r#""Patient""#,
            r#""urn:uuid:9a1b0000-0000-4000-8000-000000000002""#,
            r#""caf\u00e9 \n \\ \/ \"""#,
            r#""\\""#,
            r#""\ud83d\ude00 é 😀""#,
            r#""a\"""#,
            r#""\"""#,
        ];
        for text in cases {
            let v: &RawValue = serde_json::from_str(text).unwrap();
            let expected: String = serde_json::from_str(text).unwrap();
            let got = string(v).unwrap();
            assert_eq!(got, expected, "{text}");
            // Borrowed exactly when there is nothing to unescape.
            assert_eq!(
                matches!(got, Cow::Borrowed(_)),
                !text.contains('\\'),
                "{text}"
            );
        }
        for text in ["1", "null", "[\"a\"]", "{\"a\":\"b\"}", "true"] {
            let v: &RawValue = serde_json::from_str(text).unwrap();
            assert_eq!(string(v), None, "{text}");
        }
    }
}
