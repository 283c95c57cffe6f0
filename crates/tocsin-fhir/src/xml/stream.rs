//! FHIR XML straight into FHIR JSON text, in one streaming pass (the fast
//! path; `convert` is the tree-building reference it falls back to).
//!
//! The rules are those of `convert` (hl7.org/fhir/xml.html run backwards),
//! but the JSON is written as the XML is read, into one `String`, with a
//! stack of open objects instead of a `serde_json::Value` tree. What makes
//! that possible is that FHIR XML keeps the repeats of an element together:
//! a repeating element opens a JSON array at its first occurrence, and the
//! array closes when a sibling of another name (or the parent's end) comes.
//! A repeating primitive's `_name` entries (its `id` and extensions) are
//! written where they occur, then moved into a side buffer of their array,
//! which is written, padded with `null`s, after the values (`"given": [..],
//! "_given": [null, {..}]`). A single primitive's `_name` object is simply
//! another member of its parent.
//!
//! What this pass does not handle it does not guess at: it gives up
//! ([`Bail`]) and the caller converts with `convert`, which gives the same
//! JSON (or the error) the slow way. That covers every error (malformed,
//! hostile or non-FHIR XML: DTDs, entity references, depth, text outside
//! narrative...), a repeat that is not next to its siblings, a single
//! element given twice, and the rare shapes `convert` decides only at an
//! element's end (R5's Coding holding codings). So hostile input is refused
//! exactly as before, by the same code, and this pass never expands nor
//! resolves anything either.
//!
//! The version (which tables to write with) is told in the same pass: while
//! the JSON is written, with the tables of a guessed version, the evidence
//! `crate::version` would read from the R4 form is collected (declared
//! profiles, and the members that exist in one version only, of the
//! resource and of bundle entries: which members the R4 form has is looked
//! up in the R4 table whatever tables are being written with). If that
//! evidence calls for the other version, the JSON is written again with its
//! tables. See [`Evidence`].

use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

use super::types::{Field, Kind, Table, TypeId};
use super::{FHIR_NS, declared_prefix};

/// How deep nested bundles are searched for version evidence (as
/// `crate::version`'s `MAX_DEPTH`).
const MAX_BUNDLE_DEPTH: u8 = 4;

/// This input is not for the fast path: convert it with `convert`, which
/// reads it the same way or gives the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

/// The JSON text of a FHIR XML resource (no byte-order mark), in the tables
/// of its version, or [`Bail`].
pub(crate) fn to_json_text(input: &[u8], max_depth: usize) -> Result<String, Bail> {
    let text = std::str::from_utf8(input).map_err(|_| Bail)?;
    let guess_stu3 = looks_stu3(text);
    let mut ev = Evidence::default();
    let json = Writer::new(text, table(guess_stu3), max_depth, true).run(&mut ev)?;
    if ev.stu3() == guess_stu3 {
        Ok(json)
    } else {
        Writer::new(text, table(ev.stu3()), max_depth, false).run(&mut Evidence::default())
    }
}

fn table(stu3: bool) -> &'static Table {
    if stu3 { Table::stu3() } else { Table::r4() }
}

/// How far into the input [`looks_stu3`] looks.
const GUESS_WINDOW: usize = 2048;

/// A guess at the version, for the tables of the first pass (a wrong guess
/// costs a second pass, nothing else): an STU3 profile (ITK3, CareConnect)
/// near the start, where the root's `meta` is.
fn looks_stu3(text: &str) -> bool {
    let mut end = text.len().min(GUESS_WINDOW);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    head.contains("/STU3/") || head.contains("CareConnect-")
}

/// The version evidence `crate::version::detect` finds in the R4 form (its
/// rules, in the same order of precedence): declared
/// profiles first, then members of one version only; anything of an
/// unsupported version means R4 (the JSON path then rejects it).
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    r4_profiles: usize,
    stu3_profiles: usize,
    r4_shapes: usize,
    stu3_shapes: usize,
    unsupported: bool,
}

impl Evidence {
    /// Whether the STU3 tables are to be used.
    pub(crate) fn stu3(&self) -> bool {
        if self.unsupported {
            false
        } else if self.stu3_profiles != self.r4_profiles {
            self.stu3_profiles > self.r4_profiles
        } else {
            self.stu3_shapes > 0 && self.r4_shapes == 0
        }
    }

    fn profile(&mut self, p: &str) {
        if p.contains("/R5/")
            || p.contains("hl7.org/fhir/5.0")
            || p.contains("/DSTU2/")
            || p.contains("hl7.org/fhir/1.0")
        {
            self.unsupported = true;
        } else if p.contains("/STU3/") || p.contains("CareConnect-") {
            self.stu3_profiles += 1;
        } else if p.contains("/StructureDefinition/UKCore-") || p.contains("/R4/") {
            self.r4_profiles += 1;
        }
    }
}

/// Resource types whose members are version evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rtype {
    MessageHeader,
    DocumentReference,
    Encounter,
    Composition,
    Patient,
    Bundle,
    Other,
}

impl Rtype {
    fn of(name: &str) -> Self {
        match name {
            "MessageHeader" => Self::MessageHeader,
            "DocumentReference" => Self::DocumentReference,
            "Encounter" => Self::Encounter,
            "Composition" => Self::Composition,
            "Patient" => Self::Patient,
            "Bundle" => Self::Bundle,
            _ => Self::Other,
        }
    }
}

/// What an element is to version detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    None,
    /// A resource `crate::version` examines (the root, bundle entries' at
    /// bundle depth `depth`), and whether its members so far are STU3- or
    /// R4-only.
    Examined {
        depth: u8,
        rtype: Rtype,
        /// The resource's type in the R4 table.
        r4_ctx: Option<TypeId>,
        stu3: bool,
        r4: bool,
    },
    /// An examined resource's `meta`.
    Meta,
    /// An examined bundle's `entry`, at the bundle's depth.
    Entry(u8),
    /// Such an entry's `resource` wrapper, at the resource's depth.
    EntryResource(u8),
}

/// What an open element is becoming.
enum Body {
    /// A JSON object (a resource or a complex element), written as it goes.
    Object,
    /// A primitive, whose value (if any) is written; children go into its
    /// `_name` object, opened at the first (`ext_open`): a member of the
    /// parent if the primitive is single, else at `ext_start` in the output,
    /// to be moved into the parent's `_name` array buffer at the end.
    Primitive {
        multi: bool,
        has_value: bool,
        ext_open: bool,
        ext_start: usize,
    },
    /// A wrapper holding one resource, and whether it has it yet.
    Wrapper { filled: bool },
    /// An element the tables do not know, kept by shape: written at its
    /// first child (`opened`, as an object) or at its end (its `value`
    /// alone if it has nothing else), so its attributes wait here.
    Generic {
        value: Option<String>,
        id: Option<String>,
        url: Option<String>,
        opened: bool,
    },
}

/// A repeating element's JSON array, open while its occurrences follow one
/// another.
struct Run<'a> {
    name: &'a str,
    /// `[` written (the first occurrence that gives a value has come).
    open: bool,
    /// Items in the array.
    count: usize,
    /// The `_name` array's items so far (comma-separated JSON), and how many.
    under: String,
    under_items: usize,
}

struct Frame<'a> {
    name: &'a str,
    body: Body,
    /// The type of the children.
    ctx: Option<TypeId>,
    /// No member written yet to this element's object.
    first: bool,
    /// Where this element's member names start in `Writer::seen`.
    seen_base: usize,
    run: Option<Run<'a>>,
    role: Role,
}

/// The state of one pass.
struct Writer<'a> {
    text: &'a str,
    reader: Reader<&'a [u8]>,
    table: &'static Table,
    max_depth: usize,
    detect: bool,
    out: String,
    stack: Vec<Frame<'a>>,
    /// Member names given so far in each open object (see `Frame::seen_base`).
    seen: Vec<&'a str>,
    element_ctx: Option<TypeId>,
    coding_ctx: Option<TypeId>,
    root_done: bool,
    /// The root element's namespace prefix (None: the default namespace).
    root_prefix: Option<&'a str>,
}

/// The `value`, `id` and `url` attributes, and the namespace declaration.
#[derive(Default)]
struct Attrs<'e> {
    ns: Option<std::borrow::Cow<'e, str>>,
    /// Whether the element declares a namespace other than FHIR's.
    foreign: bool,
    value: Option<std::borrow::Cow<'e, str>>,
    id: Option<std::borrow::Cow<'e, str>>,
    url: Option<std::borrow::Cow<'e, str>>,
}

impl<'a> Writer<'a> {
    fn new(text: &'a str, table: &'static Table, max_depth: usize, detect: bool) -> Self {
        let mut reader = Reader::from_reader(text.as_bytes());
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = false;
        cfg.check_end_names = true;
        Writer {
            text,
            reader,
            table,
            max_depth,
            detect,
            out: String::with_capacity(text.len()),
            stack: Vec::with_capacity(32),
            seen: Vec::with_capacity(128),
            element_ctx: table.get("Element"),
            coding_ctx: table.get("Coding"),
            root_done: false,
            root_prefix: None,
        }
    }

    fn run(mut self, ev: &mut Evidence) -> Result<String, Bail> {
        loop {
            let start = self.reader.buffer_position() as usize;
            match self.reader.read_event().map_err(|_| Bail)? {
                Event::Start(e) => self.open(&e, start, false, ev)?,
                Event::Empty(e) => self.open(&e, start, true, ev)?,
                Event::End(_) => self.close(ev)?,
                Event::Text(t) => {
                    if !t.bytes().all(|b| b.is_ascii_whitespace()) {
                        return Err(Bail);
                    }
                }
                Event::Decl(d) => {
                    if let Some(Ok(enc)) = d.encoding()
                        && !enc.eq_ignore_ascii_case("utf-8")
                    {
                        return Err(Bail);
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::CData(_) | Event::GeneralRef(_) | Event::DocType(_) => return Err(Bail),
                Event::Eof => {
                    return match self.stack.is_empty() && self.root_done {
                        true => Ok(self.out),
                        false => Err(Bail),
                    };
                }
            }
        }
    }

    /// The element's namespace prefix, if any, and its local name, as they
    /// stand in the input (so borrowed for `'a`).
    fn name_of(
        &self,
        e: &BytesStart<'_>,
        start: usize,
    ) -> Result<(Option<&'a str>, &'a str), Bail> {
        let len = e.name().into_inner().len();
        let text: &'a str = self.text;
        let qname = text.get(start + 1..start + 1 + len).ok_or(Bail)?;
        if qname != e.name().into_inner() {
            return Err(Bail);
        }
        Ok(match qname.rsplit_once(':') {
            Some((prefix, local)) => (Some(prefix), local),
            None => (None, qname),
        })
    }

    /// An element starts (`empty`: and ends at once).
    fn open(
        &mut self,
        e: &BytesStart<'_>,
        start: usize,
        empty: bool,
        ev: &mut Evidence,
    ) -> Result<(), Bail> {
        if self.stack.len() >= self.max_depth {
            return Err(Bail);
        }
        let (prefix, name) = self.name_of(e, start)?;
        let attrs = attributes(e)?;
        // Below the root, an element that may be in another namespace goes
        // to the tree converter, which follows the declarations' scopes and
        // refuses it (the XHTML narrative aside, checked below).
        let foreign = attrs.foreign || prefix != self.root_prefix;
        let Some(parent) = self.stack.last_mut() else {
            if self.root_done || attrs.ns.as_deref() != Some(FHIR_NS) {
                return Err(Bail);
            }
            self.root_prefix = prefix;
            let role = match self.detect {
                true => examined(0, name),
                false => Role::None,
            };
            self.resource(name, role);
            return self.end_if(empty, ev);
        };
        match &mut parent.body {
            Body::Wrapper { filled: true } => return Err(Bail),
            Body::Wrapper { .. } | Body::Generic { .. } if foreign => return Err(Bail),
            Body::Wrapper { filled } => {
                *filled = true;
                let role = match parent.role {
                    Role::EntryResource(d) => examined(d, name),
                    _ => Role::None,
                };
                self.resource(name, role);
                return self.end_if(empty, ev);
            }
            Body::Generic { .. } => {
                self.open_generic(self.stack.len() - 1);
                return self.generic(name, attrs, empty, ev);
            }
            Body::Object | Body::Primitive { .. } => {}
        }
        let (ctx, prole) = (parent.ctx, parent.role);
        if let Role::Examined { .. } = prole {
            self.evidence(name, &attrs, empty, ev)?;
        }
        if ctx.is_some() && ctx == self.coding_ctx && name == "coding" {
            // A Coding holding codings (R5's Encounter.class): `convert`
            // makes it a list at its end.
            return Err(Bail);
        }
        let field = ctx.and_then(|c| self.table.def(c).field(name)).copied();
        if foreign && !field.is_some_and(|f| f.kind == Kind::Xhtml) {
            return Err(Bail);
        }
        let f = match field {
            None => return self.generic(name, attrs, empty, ev),
            Some(f) if f.kind == Kind::Object && attrs.value.is_some() => {
                return self.generic(name, attrs, empty, ev);
            }
            Some(f) => f,
        };
        let top = self.stack.len() - 1;
        self.sibling(top, name, f.multi)?;
        match f.kind {
            Kind::Object => {
                self.item_or_key(top, name, f);
                self.out.push('{');
                let role = match prole {
                    Role::Examined { .. } if name == "meta" => Role::Meta,
                    Role::Examined {
                        depth,
                        rtype: Rtype::Bundle,
                        ..
                    } if name == "entry" && depth < MAX_BUNDLE_DEPTH => Role::Entry(depth),
                    _ => Role::None,
                };
                self.push(name, Body::Object, f.ctx, role);
                if let Some(id) = attrs.id {
                    self.member(top + 1, "id");
                    write_str(&mut self.out, &id);
                    self.seen.push("id");
                }
                if let Some(url) = attrs.url {
                    self.member(top + 1, "url");
                    write_str(&mut self.out, &url);
                    self.seen.push("url");
                }
            }
            Kind::Resource => {
                self.item_or_key(top, name, f);
                let role = match prole {
                    Role::Entry(d) if name == "resource" => Role::EntryResource(d + 1),
                    _ => Role::None,
                };
                self.push(name, Body::Wrapper { filled: false }, None, role);
            }
            Kind::Xhtml => {
                if f.multi {
                    return Err(Bail);
                }
                let markup = self.xhtml(start, empty)?;
                self.member(top, name);
                write_str(&mut self.out, markup);
                return Ok(());
            }
            Kind::String | Kind::Number | Kind::Boolean => {
                if let Some(v) = &attrs.value {
                    if prole == Role::Meta && name == "profile" && f.multi {
                        ev.profile(v);
                    }
                    self.item_or_key(top, name, f);
                    write_primitive(&mut self.out, f.kind, v);
                }
                let body = Body::Primitive {
                    multi: f.multi,
                    has_value: attrs.value.is_some(),
                    ext_open: false,
                    ext_start: 0,
                };
                self.push(name, body, self.element_ctx, Role::None);
                if let Some(id) = attrs.id {
                    self.member(top + 1, "id");
                    write_str(&mut self.out, &id);
                    self.seen.push("id");
                }
            }
        }
        self.end_if(empty, ev)
    }

    /// Element `name` of the examined resource on top of the stack, as
    /// version evidence: whether the R4 form has the member (the R4 table
    /// says, whatever tables are being written with), by `version`'s rules.
    fn evidence(
        &mut self,
        name: &str,
        attrs: &Attrs<'_>,
        empty: bool,
        ev: &mut Evidence,
    ) -> Result<(), Bail> {
        let Some(Frame {
            role:
                Role::Examined {
                    rtype,
                    r4_ctx,
                    stu3,
                    r4,
                    ..
                },
            ..
        }) = self.stack.last_mut()
        else {
            return Ok(());
        };
        let table = Table::r4();
        let field = r4_ctx.and_then(|c| table.def(c).field(name));
        let generic = field.is_none_or(|f| f.kind == Kind::Object && attrs.value.is_some());
        if generic {
            match (*rtype, name) {
                // DocumentReference.context is evidence by its shape inside.
                (Rtype::DocumentReference, "context") => return Err(Bail),
                // Encounter.class as a code (a string in JSON) is DSTU2.
                (Rtype::Encounter, "class") if attrs.id.is_none() && attrs.url.is_none() => {
                    if attrs.value.is_some() && empty {
                        ev.unsupported = true;
                    } else if attrs.value.is_some() {
                        return Err(Bail);
                    }
                }
                _ => {}
            }
        }
        // A primitive is a member by its value (else it is `_name`, or
        // nothing); objects, resources, narrative and unknown elements are
        // members whatever they hold. (None of the members the rules name
        // is a repeating primitive in R4, whose extensions alone would make
        // it a member: see the tests.)
        let present = match field {
            Some(f)
                if !generic && matches!(f.kind, Kind::String | Kind::Number | Kind::Boolean) =>
            {
                attrs.value.is_some()
            }
            _ => true,
        };
        if present {
            shape(ev, *rtype, name, stu3, r4);
        }
        Ok(())
    }

    fn end_if(&mut self, empty: bool, ev: &mut Evidence) -> Result<(), Bail> {
        if empty { self.close(ev) } else { Ok(()) }
    }

    fn push(&mut self, name: &'a str, body: Body, ctx: Option<TypeId>, role: Role) {
        self.stack.push(Frame {
            name,
            body,
            ctx,
            first: true,
            seen_base: self.seen.len(),
            run: None,
            role,
        });
    }

    /// A resource's object opens (at the root or in its wrapper).
    fn resource(&mut self, name: &'a str, role: Role) {
        self.out.push_str("{\"resourceType\":");
        write_str(&mut self.out, name);
        self.push(name, Body::Object, self.table.get(name), role);
        if let Some(f) = self.stack.last_mut() {
            f.first = false;
        }
        self.seen.push("resourceType");
    }

    /// An element named `name` comes in the frame at `idx`: closes the
    /// array of the previous one, if it was another, and gives up on a name
    /// already given (a repeat apart from its siblings, or a single element
    /// twice: `convert` makes lists of those at their end).
    fn sibling(&mut self, idx: usize, name: &'a str, multi: bool) -> Result<(), Bail> {
        if self.stack[idx].run.as_ref().is_some_and(|r| r.name == name) {
            // Another of the repeats (a generic element of the same name is
            // not one: `convert` mixes it into the list at its end).
            return if multi { Ok(()) } else { Err(Bail) };
        }
        self.close_run(idx);
        let base = self.stack[idx].seen_base;
        if self.seen[base..].contains(&name) {
            return Err(Bail);
        }
        self.seen.push(name);
        if multi {
            self.stack[idx].run = Some(Run {
                name,
                open: false,
                count: 0,
                under: String::new(),
                under_items: 0,
            });
        }
        Ok(())
    }

    /// Starts the value of element `name` in the frame at `idx`: its member
    /// name, or the next item of its array.
    fn item_or_key(&mut self, idx: usize, name: &'a str, f: Field) {
        if f.multi {
            self.item(idx);
        } else {
            self.member(idx, name);
        }
    }

    /// The next item of the open run of the frame at `idx`.
    fn item(&mut self, idx: usize) {
        let Some(run) = self.stack[idx].run.as_ref() else {
            return;
        };
        if run.open {
            self.out.push(',');
        } else {
            let name = run.name;
            self.member(idx, name);
            self.out.push('[');
        }
        if let Some(run) = self.stack[idx].run.as_mut() {
            run.open = true;
            run.count += 1;
        }
    }

    /// Writes `"key":` into the object of the frame at `idx` (opening a
    /// primitive's `_name` object or a generic element first), and notes
    /// it as version evidence.
    fn member(&mut self, idx: usize, key: &str) {
        match self.stack[idx].body {
            Body::Primitive {
                ext_open: false, ..
            } => self.open_ext(idx),
            Body::Generic { opened: false, .. } => self.open_generic(idx),
            _ => {}
        }
        let frame = &mut self.stack[idx];
        if !std::mem::replace(&mut frame.first, false) {
            self.out.push(',');
        }
        write_str(&mut self.out, key);
        self.out.push(':');
    }

    /// Opens the `_name` object of the primitive at `idx`.
    fn open_ext(&mut self, idx: usize) {
        let Body::Primitive { multi, .. } = self.stack[idx].body else {
            return;
        };
        if multi {
            let at = self.out.len();
            if let Body::Primitive { ext_start, .. } = &mut self.stack[idx].body {
                *ext_start = at;
            }
        } else if idx > 0 {
            let name = self.stack[idx].name;
            let frame = &mut self.stack[idx - 1];
            if !std::mem::replace(&mut frame.first, false) {
                self.out.push(',');
            }
            self.out.push_str("\"_");
            self.out.push_str(name);
            self.out.push_str("\":");
        }
        self.out.push('{');
        let frame = &mut self.stack[idx];
        frame.first = true;
        if let Body::Primitive { ext_open, .. } = &mut frame.body {
            *ext_open = true;
        }
    }

    /// Writes the generic element at `idx` as an object, at its first child.
    fn open_generic(&mut self, idx: usize) {
        let Body::Generic {
            opened: false,
            value,
            id,
            url,
        } = &mut self.stack[idx].body
        else {
            return;
        };
        let (value, id, url) = (value.take(), id.take(), url.take());
        if let Body::Generic { opened, .. } = &mut self.stack[idx].body {
            *opened = true;
        }
        let name = self.stack[idx].name;
        if idx > 0 {
            self.member(idx - 1, name);
        }
        self.generic_object(idx, id.as_deref(), url.as_deref(), value.as_deref());
    }

    /// `{` and the attributes of a generic element, as members.
    fn generic_object(
        &mut self,
        idx: usize,
        id: Option<&str>,
        url: Option<&str>,
        value: Option<&str>,
    ) {
        self.out.push('{');
        let mut first = true;
        for (k, v) in [("id", id), ("url", url), ("value", value)] {
            if let Some(v) = v {
                if !std::mem::replace(&mut first, false) {
                    self.out.push(',');
                }
                write_str(&mut self.out, k);
                self.out.push(':');
                write_str(&mut self.out, v);
                self.seen.push(k);
            }
        }
        if let Some(frame) = self.stack.get_mut(idx) {
            frame.first = first;
        }
    }

    /// An element the tables do not know: kept by shape, as `convert` does.
    fn generic(
        &mut self,
        name: &'a str,
        attrs: Attrs<'_>,
        empty: bool,
        ev: &mut Evidence,
    ) -> Result<(), Bail> {
        let top = self.stack.len() - 1;
        self.sibling(top, name, false)?;
        let body = Body::Generic {
            value: attrs.value.map(|v| v.into_owned()),
            id: attrs.id.map(|v| v.into_owned()),
            url: attrs.url.map(|v| v.into_owned()),
            opened: false,
        };
        self.push(name, body, None, Role::None);
        self.end_if(empty, ev)
    }

    /// The element ends: closes its JSON.
    fn close(&mut self, ev: &mut Evidence) -> Result<(), Bail> {
        let idx = self.stack.len().checked_sub(1).ok_or(Bail)?;
        self.close_run(idx);
        let Some(frame) = self.stack.pop() else {
            return Err(Bail);
        };
        self.seen.truncate(frame.seen_base);
        match frame.body {
            Body::Object => {
                self.out.push('}');
                if let Role::Examined { stu3, r4, .. } = frame.role {
                    ev.stu3_shapes += usize::from(stu3);
                    ev.r4_shapes += usize::from(r4);
                }
            }
            Body::Wrapper { filled } => {
                if !filled {
                    return Err(Bail);
                }
            }
            Body::Primitive {
                multi,
                has_value,
                ext_open,
                ext_start,
            } => {
                if ext_open {
                    self.out.push('}');
                }
                if multi && ext_open {
                    let ext = self.out.split_off(ext_start);
                    let parent = self.stack.len().checked_sub(1).ok_or(Bail)?;
                    if !has_value {
                        self.item(parent);
                        self.out.push_str("null");
                    }
                    if let Some(run) = self.stack[parent].run.as_mut() {
                        let index = run.count.saturating_sub(1);
                        pad(run, index);
                        if run.under_items > 0 {
                            run.under.push(',');
                        }
                        run.under.push_str(&ext);
                        run.under_items += 1;
                    }
                }
            }
            Body::Generic {
                opened: true,
                value: _,
                ..
            } => self.out.push('}'),
            Body::Generic {
                opened: false,
                value,
                id,
                url,
            } => {
                let parent = self.stack.len().checked_sub(1).ok_or(Bail)?;
                self.member(parent, frame.name);
                match (&value, &id, &url) {
                    (Some(v), None, None) => write_str(&mut self.out, v),
                    _ => {
                        // Its members' names are not needed after it.
                        let base = self.seen.len();
                        self.generic_object(
                            usize::MAX,
                            id.as_deref(),
                            url.as_deref(),
                            value.as_deref(),
                        );
                        self.seen.truncate(base);
                        self.out.push('}');
                    }
                }
            }
        }
        if self.stack.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    /// Closes the open array of the frame at `idx`, and writes its `_name`
    /// array after it.
    fn close_run(&mut self, idx: usize) {
        let Some(mut run) = self.stack[idx].run.take() else {
            return;
        };
        if !run.open {
            return;
        }
        self.out.push(']');
        if run.under_items > 0 {
            let count = run.count;
            pad(&mut run, count);
            self.out.push_str(",\"_");
            self.out.push_str(run.name);
            self.out.push_str("\":[");
            self.out.push_str(&run.under);
            self.out.push(']');
        }
    }

    /// Captures an XHTML `div` as its markup (as `convert` does).
    fn xhtml(&mut self, start: usize, empty: bool) -> Result<&'a str, Bail> {
        let mut depth = 0usize;
        if !empty {
            loop {
                match self.reader.read_event().map_err(|_| Bail)? {
                    Event::Start(_) => {
                        depth += 1;
                        if self.stack.len() + depth >= self.max_depth {
                            return Err(Bail);
                        }
                    }
                    Event::End(_) if depth == 0 => break,
                    Event::End(_) => depth -= 1,
                    Event::GeneralRef(r)
                        if !(r.is_char_ref()
                            || matches!(&*r, "lt" | "gt" | "amp" | "apos" | "quot")) =>
                    {
                        return Err(Bail);
                    }
                    Event::DocType(_) | Event::Eof => return Err(Bail),
                    _ => {}
                }
            }
        }
        let end = self.reader.buffer_position() as usize;
        let text: &'a str = self.text;
        text.get(start..end).ok_or(Bail)
    }
}

/// The `_name` array of a run, padded with `null`s to `len` items.
fn pad(run: &mut Run<'_>, len: usize) {
    while run.under_items < len {
        if run.under_items > 0 {
            run.under.push(',');
        }
        run.under.push_str("null");
        run.under_items += 1;
    }
}

/// The role of a resource at bundle depth `depth`.
fn examined(depth: u8, name: &str) -> Role {
    Role::Examined {
        depth,
        rtype: Rtype::of(name),
        r4_ctx: Table::r4().get(name),
        stu3: false,
        r4: false,
    }
}

/// `crate::version`'s rules on the members of an examined resource.
fn shape(ev: &mut Evidence, rtype: Rtype, key: &str, stu3: &mut bool, r4: &mut bool) {
    match (rtype, key) {
        (Rtype::MessageHeader, "eventCanonical" | "data")
        | (Rtype::Encounter, "actualPeriod" | "patient")
        | (Rtype::Patient, "careProvider") => ev.unsupported = true,
        (Rtype::MessageHeader, "event" | "timestamp")
        | (Rtype::DocumentReference, "indexed" | "class")
        | (Rtype::Encounter, "reason" | "incomingReferral")
        | (Rtype::Composition, "class") => *stu3 = true,
        (Rtype::MessageHeader, "eventCoding" | "eventUri")
        | (Rtype::DocumentReference, "date")
        | (Rtype::Encounter, "reasonCode" | "basedOn" | "serviceType")
        | (Rtype::Bundle, "timestamp") => *r4 = true,
        _ => {}
    }
}

/// The attributes FHIR XML uses: `value`, `id`, `url`, and the namespace.
fn attributes<'e>(e: &'e BytesStart<'_>) -> Result<Attrs<'e>, Bail> {
    let mut out = Attrs::default();
    let prefix = e.name().prefix().map(|p| p.into_inner());
    // Duplicate names are checked here rather than by quick-xml, whose
    // check allocates for every element; more than a few attributes, or a
    // duplicate, go to the tree converter (which reports the duplicate).
    let mut keys: [&str; 8] = [""; 8];
    for (n, a) in e.attributes().with_checks(false).enumerate() {
        let a = a.map_err(|_| Bail)?;
        let key = a.key.into_inner();
        if n == keys.len() || keys[..n].contains(&key) {
            return Err(Bail);
        }
        keys[n] = key;
        if let Some(declared) = declared_prefix(key) {
            out.foreign |= *a.value != *FHIR_NS;
            if declared == prefix {
                out.ns = Some(a.value);
            }
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
            .map_err(|_| Bail)?;
        *slot = Some(v);
    }
    Ok(out)
}

/// A primitive's `value` attribute as the JSON its type calls for (as
/// `convert::primitive`, printed as serde_json prints it).
fn write_primitive(out: &mut String, kind: Kind, v: &str) {
    match kind {
        Kind::Boolean if v == "true" || v == "false" => out.push_str(v),
        Kind::Number => {
            if let Ok(i) = v.parse::<i64>() {
                let _ = write!(out, "{i}");
            } else if let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                let _ = write!(out, "{n}");
            } else {
                write_str(out, v);
            }
        }
        _ => write_str(out, v),
    }
}

/// `s` as a JSON string (quotes, backslashes and control characters
/// escaped; everything else, non-ASCII included, as it is).
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[from..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FhirConfig;
    use crate::version::{self, Version};
    use crate::xml::convert::{Mode, convert};
    use serde_json::{Value, json};

    /// The streaming pass's JSON, parsed (None: it gives up).
    fn fast(xml: &str) -> Option<Value> {
        let text = to_json_text(xml.as_bytes(), 100).ok()?;
        Some(serde_json::from_str(&text).expect("the streaming pass writes valid JSON"))
    }

    /// The tree converter's JSON (the reference).
    fn tree(xml: &str) -> Value {
        crate::xml::to_json(xml.as_bytes(), &FhirConfig::default()).expect("converts")
    }

    /// Both agree, and the streaming pass did not give up.
    fn same(xml: &str) -> Value {
        let f = fast(xml).expect("the streaming pass reads it");
        assert_eq!(f, tree(xml), "{xml}");
        f
    }

    /// The tree converter's choice of STU3 (see `to_json`).
    fn tree_says_stu3(xml: &[u8]) -> bool {
        let Ok(r4) = convert(xml, Table::r4(), Mode::Read, 100) else {
            return false;
        };
        let detect = match r4.ambiguous {
            true => convert(xml, Table::r4(), Mode::Detect, 100)
                .ok()
                .map(|c| c.value),
            false => None,
        };
        let ev = detect.as_ref().unwrap_or(&r4.value);
        let root = ev
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("$");
        matches!(version::detect(ev, root), Ok(Version::Stu3))
    }

    /// The streaming pass's choice of STU3, the same whichever tables it
    /// writes with.
    fn fast_says_stu3(xml: &[u8]) -> Option<bool> {
        let text = std::str::from_utf8(xml).ok()?;
        let mut by_r4 = Evidence::default();
        let r4 = Writer::new(text, Table::r4(), 100, true).run(&mut by_r4);
        let mut by_stu3 = Evidence::default();
        let stu3 = Writer::new(text, Table::stu3(), 100, true).run(&mut by_stu3);
        match (r4, stu3) {
            (Ok(_), Ok(_)) => {
                assert_eq!(by_r4.stu3(), by_stu3.stu3(), "{text}");
                Some(by_r4.stu3())
            }
            (Ok(_), Err(_)) => Some(by_r4.stu3()),
            (Err(_), Ok(_)) => Some(by_stu3.stu3()),
            (Err(_), Err(_)) => None,
        }
    }

    #[test]
    fn what_the_evidence_relies_on_is_the_same_in_both_tables() {
        for (t, entry) in [
            (Table::r4(), "Bundle.entry"),
            (Table::stu3(), "BundleEntry"),
        ] {
            let field = |ty: &str, name: &str| *t.def(t.get(ty).unwrap()).field(name).unwrap();
            let meta = field("Encounter", "meta");
            assert_eq!((meta.kind, meta.multi), (Kind::Object, false));
            let profile = field("Meta", "profile");
            assert_eq!((profile.kind, profile.multi), (Kind::String, true));
            let e = field("Bundle", "entry");
            assert_eq!((e.kind, e.multi, e.ctx), (Kind::Object, true, t.get(entry)));
            assert_eq!(field(entry, "resource").kind, Kind::Resource);
        }
        // No member the rules name is a repeating primitive in R4 (whose
        // extensions alone would make it a member).
        let r4 = Table::r4();
        for (ty, names) in [
            (
                "MessageHeader",
                &[
                    "eventCanonical",
                    "data",
                    "event",
                    "timestamp",
                    "eventCoding",
                    "eventUri",
                ][..],
            ),
            (
                "DocumentReference",
                &["indexed", "class", "date", "context"],
            ),
            (
                "Encounter",
                &[
                    "actualPeriod",
                    "patient",
                    "class",
                    "reason",
                    "incomingReferral",
                    "reasonCode",
                    "basedOn",
                    "serviceType",
                ],
            ),
            ("Composition", &["class"]),
            ("Patient", &["careProvider"]),
            ("Bundle", &["timestamp", "entry"]),
        ] {
            for name in names {
                if let Some(f) = r4.def(r4.get(ty).unwrap()).field(name) {
                    assert!(
                        !(f.multi && matches!(f.kind, Kind::String | Kind::Number | Kind::Boolean)),
                        "{ty}.{name}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_first_pass_guesses_stu3_from_profiles_near_the_start() {
        assert!(looks_stu3(
            r#"<Bundle xmlns="http://hl7.org/fhir"><meta><profile value="https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1"/></meta></Bundle>"#
        ));
        assert!(!looks_stu3(
            r#"<Bundle xmlns="http://hl7.org/fhir"><meta><profile value="https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"/></meta></Bundle>"#
        ));
        // A multi-byte character across the window's end.
        let long = format!("{}é/STU3/", "x".repeat(GUESS_WINDOW - 1));
        assert!(!looks_stu3(&long));
    }

    fn fixtures() -> Vec<std::path::PathBuf> {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fhir/xml");
        let mut out = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("fixture directory") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "xml") {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_xml_fixture_streams_to_the_tree_converters_json_and_version() {
        let files = fixtures();
        assert!(files.len() >= 29, "{files:?}");
        let mut streamed = 0;
        for path in &files {
            let bytes = std::fs::read(path).expect("fixture");
            let xml = std::str::from_utf8(&bytes).expect("UTF-8 fixture");
            let name = path.display().to_string();
            let Some(f) = fast(xml) else {
                // Only the R5 fixture holds a shape the pass leaves to the
                // tree converter (a Coding holding codings).
                assert!(name.ends_with("r5-encounter.xml"), "{name} gave up");
                continue;
            };
            assert_eq!(f, tree(xml), "{name}");
            assert_eq!(
                fast_says_stu3(&bytes),
                Some(tree_says_stu3(&bytes)),
                "{name}"
            );
            streamed += 1;
        }
        assert!(streamed >= 28, "{streamed}");
    }

    #[test]
    fn repeated_primitives_keep_their_extensions_in_line() {
        let v = same(
            r#"<Patient xmlns="http://hl7.org/fhir"><name>
                <given value="A"/>
                <given id="g2"><extension url="u"><valueString value="absent"/></extension></given>
                <given value="C"><extension url="v"><valueInteger value="3"/></extension></given>
                <given value="D"/>
                <family value="F"/>
              </name></Patient>"#,
        );
        assert_eq!(v["name"][0]["given"], json!(["A", null, "C", "D"]));
        assert_eq!(
            v["name"][0]["_given"],
            json!([null,
                   {"id": "g2", "extension": [{"url": "u", "valueString": "absent"}]},
                   {"extension": [{"url": "v", "valueInteger": 3}]},
                   null])
        );
        // An extension on the first only; a primitive with neither is left out.
        let v = same(
            r#"<Patient xmlns="http://hl7.org/fhir"><name>
                <given value="A"><extension url="u"><valueBoolean value="true"/></extension></given>
                <given/><given value="B"/></name></Patient>"#,
        );
        assert_eq!(v["name"][0]["given"], json!(["A", "B"]));
        assert_eq!(
            v["name"][0]["_given"],
            json!([{"extension": [{"url": "u", "valueBoolean": true}]}, null])
        );
        // Single primitives: the `_name` sibling, with or without a value.
        let v = same(
            r#"<Patient xmlns="http://hl7.org/fhir"><gender id="x" value="male"/>
               <birthDate><extension url="a"><valueCode value="unknown"/></extension></birthDate>
               <active/></Patient>"#,
        );
        assert_eq!(v["gender"], json!("male"));
        assert_eq!(v["_gender"], json!({"id": "x"}));
        assert_eq!(v.get("birthDate"), None);
        assert_eq!(
            v["_birthDate"]["extension"][0]["valueCode"],
            json!("unknown")
        );
        assert_eq!(v.get("active"), None);
    }

    #[test]
    fn repeats_apart_from_their_siblings_go_to_the_tree_converter() {
        let xml = r#"<Patient xmlns="http://hl7.org/fhir">
            <identifier><value value="1"/></identifier><active value="true"/>
            <identifier><value value="2"/></identifier></Patient>"#;
        assert_eq!(fast(xml), None);
        // ... which still makes one list of them, so the result is right.
        let v = tree(xml);
        assert_eq!(v["identifier"], json!([{"value": "1"}, {"value": "2"}]));
        let events =
            crate::normalise_xml(xml.as_bytes(), &FhirConfig::default()).expect("normalises");
        assert_eq!(events.len(), 1);
        // A single element twice, and a repeated primitive apart.
        for xml in [
            r#"<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><gender value="female"/></Patient>"#,
            r#"<Patient xmlns="http://hl7.org/fhir"><name><given value="A"/><family value="F"/><given value="B"/></name></Patient>"#,
            r#"<Patient xmlns="http://hl7.org/fhir"><name id="a"><id value="b"/></name></Patient>"#,
        ] {
            assert_eq!(fast(xml), None, "{xml}");
        }
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let v = same(
            "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"a&quot;b\\c&#9;d&#1;e&#x7f;\"/>\
             <name><family value=\"O&apos;Brien &lt;&amp;&gt; Ærø 名前 😀\"/>\
             <given value=\"line1&#10;line2&#13;\"/><given value=\"tab\tnew\nline\"/></name>\
             <text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">\
             <p class=\"q\">\"quoted\" \\ back &amp; Ærø\ttab</p></div></text></Patient>",
        );
        assert_eq!(v["id"], json!("a\"b\\c\td\u{1}e\u{7f}"));
        assert_eq!(v["name"][0]["family"], json!("O'Brien <&> Ærø 名前 😀"));
        // Character references are kept; literal tabs and newlines in an
        // attribute are normalised to spaces (XML 1.0).
        assert_eq!(
            v["name"][0]["given"],
            json!(["line1\nline2\r", "tab new line"])
        );
        assert_eq!(
            v["text"]["div"],
            json!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p class=\"q\">\"quoted\" \\ back &amp; Ærø\ttab</p></div>"
            )
        );
        let mut out = String::new();
        write_str(&mut out, "\u{0}\u{8}\u{c}\u{1f} \"\\/é");
        assert_eq!(out, r#""\u0000\b\f\u001f \"\\/é""#);
    }

    #[test]
    fn numbers_and_booleans_follow_the_tree_converter() {
        let v = same(
            r#"<Observation xmlns="http://hl7.org/fhir"><status value="final"/>
               <valueQuantity><value value="1.50"/></valueQuantity>
               <component><valueInteger value="007"/></component>
               <component><valueInteger value="1e3"/></component>
               <component><valueInteger value="NaN"/></component>
               <component><valueBoolean value="yes"/></component>
               <component><valueBoolean value="false"/></component></Observation>"#,
        );
        assert_eq!(v["valueQuantity"]["value"], json!(1.5));
        assert_eq!(v["component"][0]["valueInteger"], json!(7));
        assert_eq!(v["component"][1]["valueInteger"], json!(1000.0));
        assert_eq!(v["component"][2]["valueInteger"], json!("NaN"));
        assert_eq!(v["component"][3]["valueBoolean"], json!("yes"));
        assert_eq!(v["component"][4]["valueBoolean"], json!(false));
    }

    #[test]
    fn unknown_elements_are_kept_by_shape() {
        let v = same(
            r#"<Encounter xmlns="http://hl7.org/fhir"><status value="finished"/>
               <class><system value="s"/><code value="IMP"/></class>
               <patient><reference value="Patient/1"/></patient>
               <oddity value="x"></oddity><other id="i" value="v"/><empty/>
               <nested value="n"><inner value="1"/><inner2><deeper value="d"/></inner2></nested>
               </Encounter>"#,
        );
        assert_eq!(v["patient"], json!({"reference": "Patient/1"}));
        assert_eq!(v["oddity"], json!("x"));
        assert_eq!(v["other"], json!({"id": "i", "value": "v"}));
        assert_eq!(v["empty"], json!({}));
        assert_eq!(
            v["nested"],
            json!({"value": "n", "inner": "1", "inner2": {"deeper": "d"}})
        );
    }

    #[test]
    fn the_version_is_told_as_the_json_path_tells_it() {
        let cases = [
            // ITK3 message header: STU3.
            (
                r#"<Bundle xmlns="http://hl7.org/fhir"><type value="message"/><entry><resource><MessageHeader><event><code value="ITK008M"/></event></MessageHeader></resource></entry></Bundle>"#,
                true,
            ),
            // The same with Bundle.timestamp (R4 only): R4.
            (
                r#"<Bundle xmlns="http://hl7.org/fhir"><timestamp value="2024-01-01T00:00:00Z"/><entry><resource><MessageHeader><event><code value="ITK008M"/></event></MessageHeader></resource></entry></Bundle>"#,
                false,
            ),
            // Profiles decide before shapes.
            (
                r#"<Encounter xmlns="http://hl7.org/fhir"><meta><profile value="https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Encounter-1"/></meta><reasonCode><text value="x"/></reasonCode></Encounter>"#,
                true,
            ),
            (
                r#"<Encounter xmlns="http://hl7.org/fhir"><meta><profile value="https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter"/><profile value="https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Encounter-1"/></meta><reason><text value="x"/></reason></Encounter>"#,
                true,
            ),
            // A profile on a primitive extension only is no profile.
            (
                r#"<Encounter xmlns="http://hl7.org/fhir"><meta><profile><extension url="u"><valueString value="CareConnect-"/></extension></profile></meta></Encounter>"#,
                false,
            ),
            // DocumentReference: indexed means STU3, date R4; encounter is no evidence.
            (
                r#"<DocumentReference xmlns="http://hl7.org/fhir"><indexed value="2024-01-01T00:00:00Z"/><context><encounter><reference value="Encounter/1"/></encounter></context></DocumentReference>"#,
                true,
            ),
            (
                r#"<DocumentReference xmlns="http://hl7.org/fhir"><context><encounter><reference value="Encounter/1"/></encounter></context></DocumentReference>"#,
                false,
            ),
            // A date with an extension and no value is no R4 evidence.
            (
                r#"<DocumentReference xmlns="http://hl7.org/fhir"><indexed value="2024-01-01T00:00:00Z"/><date><extension url="u"><valueCode value="unknown"/></extension></date></DocumentReference>"#,
                true,
            ),
            // Unsupported (DSTU2 patient) next to STU3 shapes: R4 (rejected later).
            (
                r#"<Encounter xmlns="http://hl7.org/fhir"><reason><text value="x"/></reason><patient><reference value="Patient/1"/></patient></Encounter>"#,
                false,
            ),
            (
                r#"<Encounter xmlns="http://hl7.org/fhir"><reason><text value="x"/></reason><class value="inpatient"/></Encounter>"#,
                false,
            ),
            // Contained resources are no evidence.
            (
                r#"<Encounter xmlns="http://hl7.org/fhir"><contained><MessageHeader><event><code value="x"/></event></MessageHeader></contained></Encounter>"#,
                false,
            ),
            // Nested bundles are searched four deep, no deeper.
            (&nested(4), true),
            (&nested(5), false),
        ];
        for (xml, stu3) in cases {
            assert_eq!(tree_says_stu3(xml.as_bytes()), stu3, "reference: {xml}");
            assert_eq!(fast_says_stu3(xml.as_bytes()), Some(stu3), "{xml}");
            same(xml);
        }
    }

    /// A MessageHeader (STU3 `event`) inside `depth` bundles' entries.
    fn nested(depth: usize) -> String {
        let mut xml = String::from(r#"<Bundle xmlns="http://hl7.org/fhir">"#);
        for _ in 1..depth {
            xml.push_str("<entry><resource><Bundle>");
        }
        xml.push_str("<entry><resource><MessageHeader><event><code value=\"x\"/></event></MessageHeader></resource></entry>");
        for _ in 1..depth {
            xml.push_str("</Bundle></resource></entry>");
        }
        xml.push_str("</Bundle>");
        xml
    }

    #[test]
    fn elements_of_another_namespace_are_refused_by_the_tree_converter() {
        for xml in [
            // Declared on the element, or on an ancestor for a prefix.
            r#"<Encounter xmlns="http://hl7.org/fhir"><status xmlns="urn:other" value="finished"/></Encounter>"#,
            r#"<Encounter xmlns="http://hl7.org/fhir" xmlns:o="urn:other"><o:status value="finished"/></Encounter>"#,
            // Inherited: the children of an element in another namespace.
            r#"<Encounter xmlns="http://hl7.org/fhir"><meta xmlns="urn:other"><versionId value="1"/></meta></Encounter>"#,
            // No namespace at all under a prefixed FHIR root.
            r#"<f:Encounter xmlns:f="http://hl7.org/fhir"><status value="finished"/></f:Encounter>"#,
            // A bundle entry's resource.
            r#"<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/><entry><resource><Encounter xmlns="urn:other"><status value="finished"/></Encounter></resource></entry></Bundle>"#,
        ] {
            assert_eq!(fast(xml), None, "{xml}");
            let e = crate::xml::to_json(xml.as_bytes(), &FhirConfig::default()).unwrap_err();
            assert_eq!(e.reason_code(), "not_fhir", "{xml}");
            assert!(
                e.to_string().contains("is not in the FHIR namespace"),
                "{xml}: {e}"
            );
        }
        // FHIR's namespace however it is declared: by a prefix, again on an
        // entry's resource, beside an unused one.
        for xml in [
            r#"<f:Encounter xmlns:f="http://hl7.org/fhir"><f:status value="finished"/></f:Encounter>"#,
            r#"<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/><entry><resource><Encounter xmlns="http://hl7.org/fhir"><status value="finished"/></Encounter></resource></entry></Bundle>"#,
            r#"<Encounter xmlns="http://hl7.org/fhir" xmlns:o="urn:other"><status value="finished"/></Encounter>"#,
        ] {
            let v = same(xml);
            let status = match v["resourceType"].as_str() {
                Some("Bundle") => &v["entry"][0]["resource"]["status"],
                _ => &v["status"],
            };
            assert_eq!(*status, json!("finished"), "{xml}");
        }
    }

    #[test]
    fn errors_and_hostile_input_are_left_to_the_tree_converter() {
        for xml in [
            "<!DOCTYPE x [<!ENTITY a \"b\">]><Patient xmlns=\"http://hl7.org/fhir\"/>",
            "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"&a;\"/></Patient>",
            "<Patient xmlns=\"http://hl7.org/fhir\"><text><div xmlns=\"http://www.w3.org/1999/xhtml\">&a;</div></text></Patient>",
            "<Patient xmlns=\"http://hl7.org/fhir\">text</Patient>",
            "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"a\"></Patient>",
            "<Patient><id value=\"a\"/></Patient>",
            "<Patient xmlns=\"http://hl7.org/fhir\"/><Patient xmlns=\"http://hl7.org/fhir\"/>",
            "<Patient xmlns=\"http://hl7.org/fhir\"><contained/></Patient>",
            "",
        ] {
            assert_eq!(fast(xml), None, "{xml}");
        }
        let deep = format!(
            "<Patient xmlns=\"http://hl7.org/fhir\">{}",
            "<extension url=\"x\">".repeat(200)
        );
        assert_eq!(fast(&deep), None);
        // A duplicate attribute is the tree converter's error to give.
        let dup = r#"<Patient xmlns="http://hl7.org/fhir"><id value="a" value="b"/></Patient>"#;
        assert_eq!(fast(dup), None);
        let e = crate::xml::to_json(dup.as_bytes(), &FhirConfig::default()).unwrap_err();
        assert_eq!(e.reason_code(), "malformed_xml");
        let many = r#"<Patient xmlns="http://hl7.org/fhir"><id a="1" b="2" c="3" d="4" e="5" f="6" g="7" value="p"/></Patient>"#;
        assert_eq!(same(many)["id"], json!("p"));
        assert!(to_json_text(b"<a>\xff</a>", 100).is_err());
    }
}
