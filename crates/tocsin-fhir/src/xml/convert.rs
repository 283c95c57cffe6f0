//! FHIR XML into FHIR JSON, in one streaming pass.
//!
//! The rules of the FHIR XML representation (hl7.org/fhir/xml.html) run
//! backwards: a primitive's `value` attribute is its JSON value (a number or
//! boolean where the type says so), its `id` attribute and `extension`
//! children go to the `_name` sibling (aligned with `null`s for repeating
//! primitives); `id` and `url` attributes of complex elements are JSON
//! properties; an element that repeats is a JSON array even when it occurs
//! once; a resource sits inside a wrapper element (`contained`,
//! `entry.resource`) named for its place, and its root element names its
//! `resourceType`; `Narrative.div` is the XHTML markup as a string.
//! Elements the table does not know (another version's, or invalid) are kept
//! by shape, so that the JSON path rejects them as it would in JSON; a Coding
//! holding `coding` children (R5's `Encounter.class`) becomes a list, as in
//! R5 JSON.
//!
//! Every element must be in the FHIR namespace, as the root is, whether
//! declared on it or on an ancestor (the XHTML narrative aside): an element
//! of another vocabulary is refused, not read as the FHIR element of the
//! same local name.
//!
//! Hostile input is refused, never expanded: a DOCTYPE (hence any DTD,
//! external or expanding entity) is an error, entity references other than
//! the five predefined ones and character references are errors, and
//! elements nest at most `max_depth` deep.

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Number, Value};

use super::types::{Field, Kind, Table, TypeId};
use super::{FHIR_NS, XmlError, declared_prefix};

/// Whether elements whose shape tells FHIR versions apart in JSON but not in
/// XML are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Convert everything.
    Read,
    /// Leave out `DocumentReference.context.encounter` (a list in R4, one
    /// reference in STU3: a single XML element fits both), for telling the
    /// version from the rest.
    Detect,
}

/// The JSON form, and whether it holds an element [`Mode::Detect`] leaves out.
pub(crate) struct Converted {
    pub value: Value,
    pub ambiguous: bool,
}

/// What an open element is becoming.
enum Body {
    Object(Map<String, Value>),
    /// A primitive: its JSON value and its `_name` object (id, extensions).
    Primitive {
        value: Option<Value>,
        ext: Option<Map<String, Value>>,
    },
    /// A wrapper holding (at most) one resource.
    Wrapper(Option<Value>),
    /// Left out (detect mode), with everything inside.
    Skip,
}

struct Frame {
    name: String,
    /// How the element is declared in its parent's type (None: unknown).
    field: Option<Field>,
    /// The type of the children.
    ctx: Option<TypeId>,
    body: Body,
    /// An object with `_name` arrays that may need padding to their twin.
    underscores: bool,
}

/// A namespace declaration in scope, made by the element at `depth` of the
/// stack (`prefix` None: the default namespace).
struct Binding {
    depth: usize,
    prefix: Option<String>,
    ns: String,
}

/// The state of one conversion.
struct Conv<'a> {
    input: &'a [u8],
    reader: Reader<&'a [u8]>,
    table: &'static Table,
    mode: Mode,
    max_depth: usize,
    stack: Vec<Frame>,
    element_ctx: Option<TypeId>,
    ambiguous_ctx: Option<TypeId>,
    coding_ctx: Option<TypeId>,
    ambiguous: bool,
    root: Option<Value>,
    /// The namespace declarations of the open elements, innermost last.
    bindings: Vec<Binding>,
}

/// Converts one FHIR XML resource to its JSON form using `table`'s types.
pub(crate) fn convert(
    input: &[u8],
    table: &'static Table,
    mode: Mode,
    max_depth: usize,
) -> Result<Converted, XmlError> {
    let mut reader = Reader::from_reader(input);
    let cfg = reader.config_mut();
    cfg.expand_empty_elements = false;
    cfg.check_end_names = true;
    let mut c = Conv {
        input,
        reader,
        table,
        mode,
        max_depth,
        stack: Vec::with_capacity(32),
        element_ctx: table.get("Element"),
        ambiguous_ctx: table
            .get("DocumentReference.context")
            .or_else(|| table.get("DocumentReferenceContext")),
        coding_ctx: table.get("Coding"),
        ambiguous: false,
        root: None,
        bindings: Vec::new(),
    };
    c.run()?;
    match c.root {
        Some(value) => Ok(Converted {
            value,
            ambiguous: c.ambiguous,
        }),
        None => Err(c.not_fhir("no root element")),
    }
}

impl<'a> Conv<'a> {
    fn run(&mut self) -> Result<(), XmlError> {
        loop {
            let start = self.reader.buffer_position() as usize;
            let event = self.reader.read_event().map_err(|e| self.xml_error(e))?;
            match event {
                Event::Start(e) => self.open(&e, start, false)?,
                Event::Empty(e) => self.open(&e, start, true)?,
                Event::End(_) => self.close()?,
                Event::Text(t) => {
                    if !t.bytes().all(|b| b.is_ascii_whitespace()) {
                        return Err(self.not_fhir("text outside an XHTML narrative"));
                    }
                }
                Event::CData(_) => return Err(self.not_fhir("CDATA outside an XHTML narrative")),
                Event::GeneralRef(r) => {
                    self.check_ref(&r, start)?;
                    return Err(self.not_fhir("text outside an XHTML narrative"));
                }
                Event::DocType(_) => return Err(self.refused(XmlRefusal::Dtd, start)),
                Event::Decl(d) => {
                    if let Some(Ok(enc)) = d.encoding()
                        && !enc.eq_ignore_ascii_case("utf-8")
                    {
                        return Err(self.not_fhir("only UTF-8 is read"));
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => {
                    if !self.stack.is_empty() {
                        return Err(self.malformed("the document ends inside an element"));
                    }
                    return Ok(());
                }
            }
        }
    }

    /// An element starts (`empty`: and ends at once).
    fn open(&mut self, e: &BytesStart<'_>, start: usize, empty: bool) -> Result<(), XmlError> {
        if self.stack.len() >= self.max_depth {
            return Err(self.refused(XmlRefusal::Depth(self.max_depth), start));
        }
        let name = e.local_name().into_inner().to_owned();
        let mut attrs = self.attributes(e)?;
        let decls = std::mem::take(&mut attrs.decls);
        let prefix = e.name().prefix().map(|p| p.into_inner());
        let in_fhir = self.namespace_of(prefix, &decls) == Some(FHIR_NS);
        let frame = match self.stack.last() {
            None => {
                if self.root.is_some() {
                    return Err(self.malformed("content after the root element"));
                }
                if !in_fhir {
                    return Err(self.not_fhir("the root element is not in the FHIR namespace"));
                }
                self.resource_frame(name)
            }
            Some(parent) => match &parent.body {
                Body::Skip => self.skip_frame(name),
                Body::Wrapper(Some(_)) => {
                    return Err(self.not_fhir("a resource wrapper holds more than one resource"));
                }
                Body::Wrapper(None) if !in_fhir => return Err(self.foreign(&name)),
                Body::Wrapper(None) => self.resource_frame(name),
                Body::Object(_) | Body::Primitive { .. } => {
                    let field = parent
                        .ctx
                        .and_then(|c| self.table.def(c).field(&name))
                        .copied();
                    if parent.ctx.is_some()
                        && parent.ctx == self.ambiguous_ctx
                        && name == "encounter"
                    {
                        self.ambiguous = true;
                        if self.mode == Mode::Detect {
                            return self.skip_or_push(self.skip_frame(name), decls, empty);
                        }
                    }
                    match field {
                        // The narrative is XHTML, in its own namespace.
                        Some(f) if f.kind == Kind::Xhtml => {
                            let div = self.xhtml(start, empty)?;
                            return self.insert(name, Some(f), div, None);
                        }
                        _ if !in_fhir => return Err(self.foreign(&name)),
                        Some(f) => self.field_frame(name, f, attrs)?,
                        None => generic_frame(name, attrs),
                    }
                }
            },
        };
        self.skip_or_push(frame, decls, empty)
    }

    /// The namespace of an element with `prefix` that makes the declarations
    /// `decls`: its own, else the innermost open element's.
    fn namespace_of<'s>(
        &'s self,
        prefix: Option<&str>,
        decls: &'s [(Option<String>, String)],
    ) -> Option<&'s str> {
        let own = decls
            .iter()
            .find(|(p, _)| p.as_deref() == prefix)
            .map(|(_, ns)| ns.as_str());
        own.or_else(|| {
            self.bindings
                .iter()
                .rev()
                .find(|b| b.prefix.as_deref() == prefix)
                .map(|b| b.ns.as_str())
        })
    }

    /// An element below the root in another namespace (or none).
    fn foreign(&self, name: &str) -> XmlError {
        self.not_fhir(&format!("element `{name}` is not in the FHIR namespace"))
    }

    fn skip_or_push(
        &mut self,
        frame: Frame,
        decls: Vec<(Option<String>, String)>,
        empty: bool,
    ) -> Result<(), XmlError> {
        let depth = self.stack.len();
        self.bindings.extend(
            decls
                .into_iter()
                .map(|(prefix, ns)| Binding { depth, prefix, ns }),
        );
        self.stack.push(frame);
        if empty { self.close() } else { Ok(()) }
    }

    fn resource_frame(&self, name: String) -> Frame {
        let mut map = Map::new();
        map.insert("resourceType".into(), Value::String(name.clone()));
        Frame {
            ctx: self.table.get(&name),
            name,
            field: None,
            body: Body::Object(map),
            underscores: false,
        }
    }

    fn skip_frame(&self, name: String) -> Frame {
        Frame {
            name,
            field: None,
            ctx: None,
            body: Body::Skip,
            underscores: false,
        }
    }

    /// A declared element: object, primitive or resource wrapper.
    fn field_frame(&self, name: String, f: Field, attrs: Attrs) -> Result<Frame, XmlError> {
        let body = match f.kind {
            // A complex element with a value attribute is not of this
            // version (e.g. DSTU2 `Encounter.class`): kept by shape.
            Kind::Object if attrs.value.is_some() => return Ok(generic_frame(name, attrs)),
            Kind::Object => Body::Object(attrs.object()),
            Kind::Resource => Body::Wrapper(None),
            Kind::String | Kind::Number | Kind::Boolean | Kind::Xhtml => {
                let value = attrs.value.map(|v| primitive(f.kind, v));
                let ext = attrs.id.map(|id| {
                    let mut m = Map::new();
                    m.insert("id".into(), Value::String(id));
                    m
                });
                Body::Primitive { value, ext }
            }
        };
        let ctx = match f.kind {
            Kind::Object => f.ctx,
            _ => self.element_ctx,
        };
        Ok(Frame {
            name,
            field: Some(f),
            ctx,
            body,
            underscores: false,
        })
    }

    /// The element ends: its JSON goes into its parent.
    fn close(&mut self) -> Result<(), XmlError> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.malformed("an end tag without a start tag"));
        };
        while self
            .bindings
            .last()
            .is_some_and(|b| b.depth >= self.stack.len())
        {
            self.bindings.pop();
        }
        let (value, ext) = match frame.body {
            Body::Skip => return Ok(()),
            Body::Object(mut map) => {
                if frame.underscores {
                    pad_underscores(&mut map);
                }
                if frame.field.is_none() && map.len() == 1 && map.contains_key("value") {
                    (map.remove("value"), None)
                } else {
                    (Some(Value::Object(map)), None)
                }
            }
            Body::Primitive { value, ext } => (value, ext.map(Value::Object)),
            Body::Wrapper(Some(resource)) => (Some(resource), None),
            Body::Wrapper(None) => {
                return Err(self.not_fhir("a resource wrapper holds no resource"));
            }
        };
        if value.is_none() && ext.is_none() {
            return Ok(());
        }
        let mut field = frame.field;
        if let Some(f) = &mut field
            && frame.ctx.is_some()
            && frame.ctx == self.coding_ctx
            && matches!(&value, Some(Value::Object(m)) if m.contains_key("coding"))
        {
            // A Coding holding codings is R5's CodeableConcept (Encounter.class
            // repeats there): kept as the list R5 JSON has, which the JSON
            // path rejects as R5.
            f.multi = true;
        }
        self.insert(frame.name, field, value.unwrap_or(Value::Null), ext)
    }

    /// Puts a finished element into its parent (or makes it the root).
    fn insert(
        &mut self,
        name: String,
        field: Option<Field>,
        value: Value,
        ext: Option<Value>,
    ) -> Result<(), XmlError> {
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        let map = match &mut parent.body {
            Body::Wrapper(slot) => {
                *slot = Some(value);
                return Ok(());
            }
            Body::Skip => return Ok(()),
            Body::Object(map) => map,
            Body::Primitive { ext: pext, .. } => pext.get_or_insert_with(Map::new),
        };
        if field.is_some_and(|f| f.multi) {
            let slot = map
                .entry(name.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            let index = match slot {
                Value::Array(list) => {
                    list.push(value);
                    list.len() - 1
                }
                single => {
                    *single = Value::Array(vec![single.take(), value]);
                    1
                }
            };
            let key = format!("_{name}");
            if ext.is_some() || map.contains_key(&key) {
                parent.underscores = true;
                if let Value::Array(under) =
                    map.entry(key).or_insert_with(|| Value::Array(Vec::new()))
                {
                    under.resize(index, Value::Null);
                    under.push(ext.unwrap_or(Value::Null));
                }
            }
        } else {
            if let Some(ext) = ext {
                push_or_set(map, format!("_{name}"), ext);
            }
            if !value.is_null() {
                push_or_set(map, name, value);
            }
        }
        Ok(())
    }

    /// Captures an XHTML `div` as its markup, skipping its content.
    fn xhtml(&mut self, start: usize, empty: bool) -> Result<Value, XmlError> {
        let mut depth = 0usize;
        if !empty {
            loop {
                let at = self.reader.buffer_position() as usize;
                let event = self.reader.read_event().map_err(|e| self.xml_error(e))?;
                match event {
                    Event::Start(_) => {
                        depth += 1;
                        if self.stack.len() + depth >= self.max_depth {
                            return Err(self.refused(XmlRefusal::Depth(self.max_depth), at));
                        }
                    }
                    Event::End(_) if depth == 0 => break,
                    Event::End(_) => depth -= 1,
                    Event::GeneralRef(r) => self.check_ref(&r, at)?,
                    Event::DocType(_) => return Err(self.refused(XmlRefusal::Dtd, at)),
                    Event::Eof => {
                        return Err(self.malformed("the document ends inside a narrative"));
                    }
                    _ => {}
                }
            }
        }
        let end = self.reader.buffer_position() as usize;
        let markup = self
            .input
            .get(start..end)
            .and_then(|m| std::str::from_utf8(m).ok())
            .ok_or_else(|| self.malformed("the narrative is not UTF-8"))?;
        Ok(Value::String(markup.to_owned()))
    }

    /// Only character references and the five predefined entities are read.
    fn check_ref(&self, r: &quick_xml::events::BytesRef<'_>, at: usize) -> Result<(), XmlError> {
        if r.is_char_ref() || matches!(&**r, "lt" | "gt" | "amp" | "apos" | "quot") {
            Ok(())
        } else {
            Err(self.refused(XmlRefusal::Entity, at))
        }
    }

    /// The attributes FHIR XML uses: `value`, `id`, `url`, and the
    /// namespace declarations.
    fn attributes(&self, e: &BytesStart<'_>) -> Result<Attrs, XmlError> {
        let mut out = Attrs::default();
        for a in e.attributes() {
            let a = a.map_err(|err| self.xml_error(err.into()))?;
            let key = a.key.into_inner();
            if let Some(declared) = declared_prefix(key) {
                out.decls
                    .push((declared.map(str::to_owned), a.value.into_owned()));
                continue;
            }
            let slot = match key {
                "value" => &mut out.value,
                "id" => &mut out.id,
                "url" => &mut out.url,
                _ => continue,
            };
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| self.xml_error(err))?;
            *slot = Some(v.into_owned());
        }
        Ok(out)
    }

    fn position(&self, offset: u64) -> (usize, usize) {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.input.len());
        let before = &self.input[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = offset
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        (line, column)
    }

    fn xml_error(&self, e: quick_xml::Error) -> XmlError {
        match e {
            quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(..)) => {
                self.refused(XmlRefusal::Entity, self.reader.buffer_position() as usize)
            }
            other => self.malformed(&unquote(&crate::error::redact(&other.to_string()))),
        }
    }

    fn malformed(&self, message: &str) -> XmlError {
        let (line, column) = self.position(self.reader.error_position().max(1) - 1);
        XmlError::Malformed {
            line,
            column,
            message: message.to_owned(),
        }
    }

    fn not_fhir(&self, reason: &str) -> XmlError {
        let (line, column) = self.position(self.reader.buffer_position());
        XmlError::NotFhir {
            reason: reason.to_owned(),
            line,
            column,
        }
    }

    /// A refusal of the construct starting at `offset`.
    fn refused(&self, what: XmlRefusal, offset: usize) -> XmlError {
        let (line, column) = self.position(offset as u64);
        match what {
            XmlRefusal::Dtd => XmlError::DtdRefused { line, column },
            XmlRefusal::Entity => XmlError::EntityRefused { line, column },
            XmlRefusal::Depth(limit) => XmlError::TooDeep {
                limit,
                line,
                column,
            },
        }
    }
}

enum XmlRefusal {
    Dtd,
    Entity,
    Depth(usize),
}

#[derive(Default)]
struct Attrs {
    /// Every namespace declaration the element makes, as (prefix, name).
    decls: Vec<(Option<String>, String)>,
    value: Option<String>,
    id: Option<String>,
    url: Option<String>,
}

impl Attrs {
    /// A complex element's attributes as JSON properties.
    fn object(self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(id) = self.id {
            m.insert("id".into(), Value::String(id));
        }
        if let Some(url) = self.url {
            m.insert("url".into(), Value::String(url));
        }
        m
    }
}

/// An element the table does not know: an object, or its `value` alone.
fn generic_frame(name: String, attrs: Attrs) -> Frame {
    let value = attrs.value.clone();
    let mut map = attrs.object();
    if let Some(v) = value {
        map.insert("value".into(), Value::String(v));
    }
    Frame {
        name,
        field: None,
        ctx: None,
        body: Body::Object(map),
        underscores: false,
    }
}

/// A primitive's `value` attribute as the JSON its type calls for; a value
/// that does not fit stays a string, for the model to reject as in JSON.
fn primitive(kind: Kind, v: String) -> Value {
    match kind {
        Kind::Boolean => match v.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(v),
        },
        Kind::Number => v
            .parse::<i64>()
            .ok()
            .map(Number::from)
            .or_else(|| v.parse::<f64>().ok().and_then(Number::from_f64))
            .map_or(Value::String(v), Value::Number),
        _ => Value::String(v),
    }
}

/// Sets a single element; a second occurrence makes a list (which the model
/// then rejects, as it would the same JSON).
fn push_or_set(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        None => {
            map.insert(key, value);
        }
        Some(Value::Array(list)) => list.push(value),
        Some(old) => {
            let first = old.take();
            *old = Value::Array(vec![first, value]);
        }
    }
}

/// `_name` arrays as long as their `name` twin (JSON requires it).
fn pad_underscores(map: &mut Map<String, Value>) {
    let lens: Vec<(String, usize)> = map
        .iter()
        .filter_map(|(k, v)| {
            let twin = k.strip_prefix('_')?;
            let Some(Value::Array(values)) = map.get(twin) else {
                return None;
            };
            matches!(v, Value::Array(u) if u.len() < values.len())
                .then(|| (k.clone(), values.len()))
        })
        .collect();
    for (k, len) in lens {
        if let Some(Value::Array(u)) = map.get_mut(&k) {
            u.resize(len, Value::Null);
        }
    }
}

/// The parser's message with each `quoted` span that is not an element
/// name shaped like FHIR's (`</status>`, `<valueString>`: lower camel case)
/// replaced by `…`: quick-xml quotes names and text from the input
/// (`expected </X>, but </Y> was found`), and the input is the sender's, a
/// patient's name or number possibly among it. The position is enough to
/// find the rest.
fn unquote(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else {
            out.push_str("`…");
            return out;
        };
        let span = &after[..close];
        let name = span
            .trim_start_matches("</")
            .trim_start_matches('<')
            .trim_end_matches("/>")
            .trim_end_matches('>');
        out.push('`');
        out.push_str(if crate::error::element_shaped(name) {
            span
        } else {
            "…"
        });
        out.push('`');
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod unquote_tests {
    use super::unquote;

    #[test]
    fn only_element_shaped_names_stay_quoted() {
        assert_eq!(
            unquote("expected `</status>`, but `</Encounter>` was found"),
            "expected `</status>`, but `…` was found"
        );
        assert_eq!(
            unquote("expected `</PRIVAZOOK>`, but `</4873219051x>` was found"),
            "expected `…`, but `…` was found"
        );
        assert_eq!(unquote("no quotes at all"), "no quotes at all");
        assert_eq!(unquote("unclosed `9434765919"), "unclosed `…");
    }
}
