//! Splitting a resource into the parts that are read through fhir-sdk.
//!
//! fhir-sdk's `Bundle` reads every entry through its `Resource` enum, which
//! knows only its own version's resource types: an R4 bundle holding a type
//! R4B dropped (e.g. `MedicinalProduct`) would be rejected whole, as would one
//! odd entry tocsin never looks at. So bundles are taken apart here: the
//! bundle shell (without entry resources) goes to the model, and each entry
//! resource is kept as JSON and read through its own model only when tocsin
//! uses it. `contained` resources are split off the same way (and reachable
//! as `#id`).

use std::borrow::Cow;
use std::cell::OnceCell;

use serde_json::Value;

use crate::FhirError;
use crate::error::element_shaped;
use crate::loc::Loc;
use crate::raw::{self, Obj, Val};
use crate::time::tolerate_times;
use crate::view::{BundleView, Reader};

/// Resource types read through a model, each with the members its model is
/// given: those tocsin reads (R4 and STU3 names; see `r4.rs`, `stu3.rs`) and
/// those the model requires. Everything else (narrative, extensions,
/// names, addresses, sections, contained resources, which are split off:
/// see the module documentation) never reaches the model, so it costs one
/// scan of the input and nothing more, and cannot make a resource tocsin
/// can read be rejected. Other resource types are kept as JSON.
const MODELLED: &[(&str, &[&str])] = &[
    (
        "Encounter",
        &[
            "identifier",
            "status",
            "class",
            "period",
            "subject",
            "serviceProvider",
            "location",
            "serviceType",
        ],
    ),
    (
        "DocumentReference",
        &[
            "masterIdentifier",
            "identifier",
            "status",
            "docStatus",
            "type",
            "date",
            "indexed",
            "created",
            "subject",
            "context",
            "relatesTo",
            "custodian",
            "content",
        ],
    ),
    (
        "Composition",
        &[
            "identifier",
            "status",
            "type",
            "subject",
            "encounter",
            "date",
            "custodian",
            "author",
            "relatesTo",
            "title",
        ],
    ),
    (
        "MessageHeader",
        &[
            "event",
            "eventCoding",
            "eventUri",
            "timestamp",
            "destination",
            "receiver",
            "sender",
            "source",
            "response",
            "focus",
        ],
    ),
    ("Patient", &["identifier", "generalPractitioner"]),
    ("Organization", &["identifier"]),
];

/// Members every modelled resource's model is given.
const ALWAYS: &[&str] = &["resourceType", "id", "meta"];

/// The members a modelled resource type's model is given, if it is one.
fn modelled(rtype: &str) -> Option<&'static [&'static str]> {
    MODELLED
        .iter()
        .find(|(t, _)| *t == rtype)
        .map(|(_, keep)| *keep)
}

/// Whether member `key` (or `_key`, its primitive extension) reaches the
/// model of a resource whose own members to keep are `keep`.
fn kept(keep: &[&str], key: &str) -> bool {
    let name = key.strip_prefix('_').unwrap_or(key);
    ALWAYS.contains(&name) || keep.contains(&name)
}

/// Bundles nested deeper than this are rejected (a message holds a document:
/// two levels; a collection of messages: three).
const MAX_BUNDLE_DEPTH: usize = 6;

/// Most entries read in one bundle. Each costs about 2.4 KB while it is
/// read (the model's entry, its place, what is said of it), whatever its
/// size: an 8 MB bundle of 2.7 million empty entries, under the size
/// limit, took 6.6 GB. Documents and messages hold tens; a bulk export
/// belongs in NDJSON, which is read a line at a time.
const MAX_BUNDLE_ENTRIES: usize = 100_000;

/// One resource with its place in the input.
pub(crate) struct Entry<'a> {
    /// `Bundle.entry.fullUrl`, or `#id` for a contained resource.
    pub full_url: Option<Cow<'a, str>>,
    pub rtype: Cow<'a, str>,
    pub id: Option<Cow<'a, str>>,
    /// The resource as parsed.
    pub obj: &'a Obj<'a>,
    /// The JSON text a model reads: for a modelled resource, the members
    /// its model is given (see [`MODELLED`]); empty for others (see
    /// [`Entry::value`]) and for bundles, which are in `bundle`.
    pub text: String,
    /// A nested bundle, already taken apart.
    pub bundle: Option<Box<Prepared<'a>>>,
    /// Its contained resources.
    pub contained: Vec<Entry<'a>>,
    /// FHIR path, e.g. `Bundle.entry[2].resource`.
    pub loc: Loc<'a>,
    /// What `Env::ods_of` found in this entry as an Organization (its ODS
    /// code, and the warning when its model refused it), once read: one
    /// Organization is often named several times in a bundle (GP practice,
    /// custodian, service provider, sender, recipient), and is read through
    /// its model only the first time. Entries live for one normalisation,
    /// so the cache does too.
    pub ods: OnceCell<(Option<String>, Option<tocsin_event::Warning>)>,
}

impl Entry<'_> {
    /// One member of the resource as sent, parsed as JSON: for what tocsin
    /// reads without a model (extensions, which the models are not given).
    pub fn member(&self, key: &str) -> Option<Value> {
        serde_json::from_str(self.obj.raw(key)?.get()).ok()
    }

    /// The resource as a JSON tree, for the few elements read without a
    /// model (times of `other` resources, a Location's ODS code, an
    /// OperationOutcome's text): modelled resources after the tolerant
    /// date-time pre-pass, as their model would see them.
    pub fn value(&self, tz: chrono_tz::Tz) -> Value {
        if modelled(&self.rtype).is_some() {
            let mut v = serde_json::from_str(&self.text).unwrap_or(Value::Null);
            tolerate_times(&mut v, tz);
            v
        } else {
            serde_json::from_str(&self.obj.to_json(&[], &[])).unwrap_or(Value::Null)
        }
    }
}

/// A bundle taken apart.
pub(crate) struct Prepared<'a> {
    pub view: BundleView,
    /// The entries that hold a resource (entries without one are skipped).
    pub entries: Vec<Entry<'a>>,
    /// Whether the bundle's first entry holds a resource: when it does not,
    /// `entries[0]` is not the first entry, which a document or message
    /// bundle must begin with.
    pub first_has_resource: bool,
    /// The entries without a resource that change something (a DELETE in
    /// a transaction or history bundle), so that they are not passed over
    /// in silence.
    pub resourceless: Vec<Resourceless>,
    pub loc: Loc<'a>,
    /// The entries by the keys a reference finds them by, in a large
    /// bundle only (see [`RefIndex`]).
    pub index: Option<RefIndex>,
}

/// Entries from which a bundle's references are looked up through an
/// index rather than by reading every entry: below it a scan is cheaper.
const INDEXED_FROM: usize = 64;

/// A large bundle's entries by the keys [`Scope::resolve`] matches on: the
/// exact `fullUrl`, an absolute `fullUrl` without its version, and the
/// `Type/id` of the resource and of its `fullUrl`. Looked up, it gives
/// every entry that may match, each then checked as a scan would, so the
/// first match is the same: a collection of thousands of Encounters naming
/// one Patient read every entry for each (51 s for 8,000 entries).
pub(crate) struct RefIndex(std::collections::HashMap<String, Vec<u32>>);

impl RefIndex {
    fn of(entries: &[Entry<'_>]) -> Option<Self> {
        if entries.len() < INDEXED_FROM {
            return None;
        }
        let mut map: std::collections::HashMap<String, Vec<u32>> =
            std::collections::HashMap::with_capacity(entries.len() * 2);
        for (i, e) in entries.iter().enumerate() {
            let i = u32::try_from(i).ok()?;
            let mut keys = Vec::with_capacity(4);
            if let Some(url) = e.full_url.as_deref() {
                keys.push(Self::exact(url));
                if is_absolute(url) {
                    keys.push(Self::absolute(url));
                }
                if let Some((t, id)) = relative_part(url) {
                    keys.push(Self::typed(t, id));
                }
            }
            if let Some(id) = e.id.as_deref() {
                keys.push(Self::typed(&e.rtype, id));
            }
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                map.entry(k).or_default().push(i);
            }
        }
        Some(Self(map))
    }

    fn exact(url: &str) -> String {
        format!("u {url}")
    }

    fn absolute(url: &str) -> String {
        format!("a {}", unversioned(url))
    }

    fn typed(rtype: &str, id: &str) -> String {
        format!("t {rtype}/{id}")
    }

    /// The entries `reference` may name, in entry order.
    fn candidates(&self, reference: &str) -> Vec<u32> {
        let mut keys = vec![Self::exact(reference)];
        if is_absolute(reference) {
            keys.push(Self::absolute(reference));
        }
        if let Some((t, id)) = relative_part(reference) {
            keys.push(Self::typed(t, id));
        }
        let mut found: Vec<u32> = keys
            .iter()
            .filter_map(|k| self.0.get(k))
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// A bundle entry without a resource whose request is not a read.
pub(crate) struct Resourceless {
    /// The entry's index in `Bundle.entry`.
    pub index: usize,
    /// `request.method`, e.g. `DELETE`, if given as an HTTP verb.
    pub method: Option<String>,
    /// The resource type `request.url` names, if it names one (never its
    /// id, which for a Patient may be an NHS number).
    pub rtype: Option<String>,
}

impl Resourceless {
    /// What a resourceless entry asks for, from its `request` (a raw
    /// member): `None` for a read (GET, HEAD), which changes nothing.
    fn of(index: usize, entry: &Obj<'_>) -> Option<Self> {
        let request = entry.raw("request").and_then(raw::obj);
        let method = request
            .as_ref()
            .and_then(|r| r.str("method"))
            .map(|m| m.into_owned())
            // An HTTP verb, or not told (it goes into a warning message).
            .filter(|m| m.len() <= 8 && m.chars().all(|c| c.is_ascii_uppercase()));
        if matches!(method.as_deref(), Some("GET" | "HEAD")) {
            return None;
        }
        let rtype = request
            .as_ref()
            .and_then(|r| r.str("url"))
            .and_then(|url| url_type(&url).map(str::to_owned));
        Some(Resourceless {
            index,
            method,
            rtype,
        })
    }
}

/// The resource type a request URL names: `Patient` in `Patient/1`,
/// `Patient/1/_history/2`, `https://x/fhir/Patient/1` and the conditional
/// `Patient?identifier=...`.
fn url_type(url: &str) -> Option<&str> {
    let path = url.split('?').next()?;
    let rtype = match relative_part(path) {
        Some((t, _)) => t,
        None => path.rsplit('/').next()?,
    };
    (rtype.starts_with(|c: char| c.is_ascii_uppercase())
        && rtype.chars().all(|c| c.is_ascii_alphanumeric()))
    .then_some(rtype)
}

/// Where references are looked up: a list of entries, then the enclosing
/// scope (a contained resource's parent bundle).
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub entries: &'a [Entry<'a>],
    pub parent: Option<&'a Scope<'a>>,
    /// Whether `entries` are a bundle's (else contained resources or none).
    pub from_bundle: bool,
    /// The entries indexed, when they are a large bundle's.
    pub index: Option<&'a RefIndex>,
}

impl<'a> Scope<'a> {
    /// The scope of an entry's contained resources, within `parent`.
    pub fn contained(entry: &'a Entry<'a>, parent: &'a Scope<'a>) -> Self {
        Scope {
            entries: &entry.contained,
            from_bundle: false,
            parent: Some(parent),
            index: None,
        }
    }

    /// The scope of a bundle's entries, within `parent`.
    pub fn bundle(bundle: &'a Prepared<'a>, parent: &'a Scope<'a>) -> Self {
        Scope {
            entries: &bundle.entries,
            from_bundle: true,
            parent: Some(parent),
            index: bundle.index.as_ref(),
        }
    }

    /// Whether this scope lies within a bundle, where every reference is
    /// expected to resolve (a document bundle is self-contained).
    pub fn in_bundle(&self) -> bool {
        self.from_bundle || self.parent.is_some_and(|p| p.in_bundle())
    }

    /// Finds the entry a literal reference points at: by `fullUrl`
    /// (`urn:uuid:` included), by `#id` for contained resources, or by
    /// `Type/id` (also as the tail of an absolute URL).
    pub fn resolve(&self, reference: &str) -> Option<&'a Entry<'a>> {
        let relative = relative_part(reference);
        let names = |e: &&Entry<'_>| {
            if e.full_url.as_deref() == Some(reference) {
                return true;
            }
            // An absolute reference names one server: an entry whose
            // fullUrl is on another server is not it, whatever its type and
            // id (it picked another server's encounter).
            if let Some(url) = e.full_url.as_deref()
                && is_absolute(reference)
                && is_absolute(url)
            {
                return unversioned(url) == unversioned(reference);
            }
            relative.is_some_and(|(t, id)| {
                e.rtype == t && e.id.as_deref() == Some(id)
                    || e.full_url
                        .as_deref()
                        .and_then(relative_part)
                        .is_some_and(|(ft, fid)| ft == t && fid == id)
            })
        };
        let found = match self.index {
            Some(index) => index
                .candidates(reference)
                .into_iter()
                .filter_map(|i| self.entries.get(i as usize))
                .find(names),
            None => self.entries.iter().find(names),
        };
        found.or_else(|| self.parent.and_then(|p| p.resolve(reference)))
    }
}

/// A reference or fullUrl without its `/_history/` version.
fn unversioned(reference: &str) -> &str {
    reference.split("/_history/").next().unwrap_or(reference)
}

/// Whether a reference or fullUrl is an absolute URL (`https://...`), not
/// `Type/id`, `urn:uuid:` or `#id`.
fn is_absolute(s: &str) -> bool {
    s.contains("://")
}

/// `(Type, id)` of a `Type/id` reference or URL tail (`_history` dropped).
pub(crate) fn relative_part(reference: &str) -> Option<(&str, &str)> {
    // Without a `/` there is no `Type/id` (and no `/_history/`): so it is
    // for `urn:uuid:` and `#id`, which are most references in a bundle.
    if !reference.contains('/') {
        return None;
    }
    let path = unversioned(reference);
    let mut parts = path.rsplitn(3, '/');
    let id = parts.next()?;
    let rtype = parts.next()?;
    (rtype.starts_with(|c: char| c.is_ascii_uppercase()) && !id.is_empty()).then_some((rtype, id))
}

/// A value that should be a resource, as an object with its `resourceType`.
pub(crate) fn resource<'v, 'de>(
    v: &'v Val<'de>,
    loc: &dyn std::fmt::Display,
) -> Result<(&'v Obj<'de>, Cow<'de, str>), FhirError> {
    let not_fhir = |reason: &str| FhirError::NotFhir {
        reason: reason.to_owned(),
        location: Some(loc.to_string()),
    };
    let obj = v
        .as_obj()
        .ok_or_else(|| not_fhir("a resource must be a JSON object"))?;
    let rt = obj
        .get("resourceType")
        .ok_or_else(|| not_fhir("no resourceType"))?;
    let rt = rt
        .raw()
        .and_then(raw::string)
        .ok_or_else(|| not_fhir("resourceType is not a string"))?;
    if rt.is_empty()
        || !rt.starts_with(|c: char| c.is_ascii_uppercase())
        || !rt.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(not_fhir("resourceType is not a FHIR resource type name"));
    }
    Ok((obj, rt))
}

/// Prepares one resource (see the module documentation).
pub(crate) fn entry<'a>(
    value: &'a Val<'a>,
    full_url: Option<Cow<'a, str>>,
    loc: Loc<'a>,
    reader: &dyn Reader,
    depth: usize,
) -> Result<Entry<'a>, FhirError> {
    let (obj, rtype) = resource(value, &loc)?;
    entry_of(obj, rtype, full_url, loc, reader, depth)
}

/// Prepares one resource already split into its members.
pub(crate) fn entry_of<'a>(
    obj: &'a Obj<'a>,
    rtype: Cow<'a, str>,
    full_url: Option<Cow<'a, str>>,
    loc: Loc<'a>,
    reader: &dyn Reader,
    depth: usize,
) -> Result<Entry<'a>, FhirError> {
    refuse_repeats(obj, &rtype, &loc)?;
    let id = obj.str("id");
    if rtype == "Bundle" {
        let prepared = bundle(obj, loc.clone(), reader, depth + 1)?;
        return Ok(Entry {
            obj,
            full_url,
            rtype,
            id,
            text: String::new(),
            bundle: Some(Box::new(prepared)),
            contained: Vec::new(),
            loc,
            ods: OnceCell::new(),
        });
    }
    let mut contained = Vec::new();
    let text = if let Some(keep) = modelled(&rtype) {
        if let Some(items) = obj.get("contained").and_then(Val::as_list) {
            for (i, c) in items.iter().enumerate() {
                let cid = c
                    .as_obj()
                    .and_then(|o| o.str("id").map(|s| Cow::Owned(format!("#{s}"))));
                let cloc = loc.contained(i);
                let mut e = entry(c, cid, cloc, reader, depth + 1)?;
                // Contained resources do not nest further.
                e.contained.clear();
                contained.push(e);
            }
        }
        obj.to_json_keeping(&|k| kept(keep, k))
    } else {
        String::new()
    };
    Ok(Entry {
        obj,
        full_url,
        rtype,
        id,
        text,
        bundle: None,
        contained,
        loc,
        ods: OnceCell::new(),
    })
}

/// Refuses an object (a resource or a bundle entry) that gives a member
/// more than once: which value the sender meant is unknown, and FHIR XML
/// giving one element twice is refused too (as `invalid_resource`). The
/// error names the member only when it is shaped like a FHIR element name
/// (`fullUrl`, `_status`: lower camel case), never a value: the member's
/// name is the sender's text, a broken or hostile one may put a patient's
/// name there (`PRIVAZOOK`, `Smith`), and the reason and location are
/// logged at warn.
fn refuse_repeats(
    obj: &Obj<'_>,
    rtype: &str,
    loc: &dyn std::fmt::Display,
) -> Result<(), FhirError> {
    match obj.repeated() {
        Some(key) if element_shaped(key.strip_prefix('_').unwrap_or(key)) => {
            Err(FhirError::InvalidResource {
                resource_type: rtype.to_owned(),
                location: format!("{loc}.{key}"),
                message: format!("member `{key}` is given more than once"),
            })
        }
        Some(_) => Err(FhirError::InvalidResource {
            resource_type: rtype.to_owned(),
            location: loc.to_string(),
            message: "a member (its name not shown) is given more than once".to_owned(),
        }),
        None => Ok(()),
    }
}

/// Takes a bundle apart: the shell (its entries without their resources)
/// through the model, then the entries' resources one by one.
pub(crate) fn bundle<'a>(
    obj: &'a Obj<'a>,
    loc: Loc<'a>,
    reader: &dyn Reader,
    depth: usize,
) -> Result<Prepared<'a>, FhirError> {
    if depth > MAX_BUNDLE_DEPTH {
        return Err(FhirError::InvalidResource {
            resource_type: "Bundle".into(),
            location: loc.to_string(),
            message: format!("bundles nested more than {MAX_BUNDLE_DEPTH} deep"),
        });
    }
    let mut resources = Vec::new();
    let mut resourceless = Vec::new();
    // The shell is written straight into one buffer: the bundle's members
    // but `entry`, then each entry without its `resource`.
    let shell = match obj.get("entry").and_then(Val::as_list) {
        Some(entries) if entries.len() > MAX_BUNDLE_ENTRIES => {
            return Err(FhirError::InvalidResource {
                resource_type: "Bundle".into(),
                location: loc.to_string(),
                message: format!(
                    "{} entries, over the {MAX_BUNDLE_ENTRIES} read in one bundle: split it, or \
                     send a bulk export as NDJSON (read a line at a time)",
                    entries.len()
                ),
            });
        }
        Some(entries) => {
            resources.reserve_exact(entries.len());
            let mut out = String::with_capacity(256 + 128 * entries.len());
            obj.write_with(&mut out, &|k| k != "entry", &[]);
            out.pop(); // the closing brace
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str("\"entry\":[");
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match e.as_obj() {
                    Some(o) => {
                        // The entries borrow `fullUrl` from the input; the
                        // model reads the same member (rejecting a bundle
                        // whose `fullUrl` is neither a string nor null).
                        // An entry giving a member twice is refused.
                        refuse_repeats(o, "Bundle", &format_args!("{loc}.entry[{i}]"))?;
                        let r = o.get("resource");
                        if r.is_none() {
                            resourceless.extend(Resourceless::of(i, o));
                        }
                        resources.push(r.map(|r| (r, o.str("fullUrl"))));
                        o.write_with(&mut out, &|k| k != "resource", &[]);
                    }
                    None => {
                        resources.push(None);
                        e.write(&mut out);
                    }
                }
            }
            out.push_str("]}");
            out
        }
        None => obj.to_json(&[], &[]),
    };
    let view = reader
        .bundle(&shell)
        .map_err(|e| FhirError::invalid("Bundle", &loc, &e))?;
    let first_has_resource = resources.first().is_some_and(Option::is_some);
    let mut entries = Vec::with_capacity(resources.len());
    for (i, r) in resources.into_iter().enumerate() {
        let Some((r, full_url)) = r else { continue };
        entries.push(entry(r, full_url, loc.entry(i), reader, depth)?);
    }
    let index = RefIndex::of(&entries);
    Ok(Prepared {
        view,
        entries,
        first_has_resource,
        resourceless,
        loc,
        index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_references() {
        assert_eq!(relative_part("Patient/1"), Some(("Patient", "1")));
        assert_eq!(
            relative_part("https://x.nhs.uk/fhir/Patient/1/_history/2"),
            Some(("Patient", "1"))
        );
        assert_eq!(relative_part("urn:uuid:abc"), None);
        assert_eq!(relative_part("#c1"), None);
        assert_eq!(relative_part("Patient"), None);
        assert_eq!(relative_part("Patient/"), None);
        assert_eq!(relative_part("patient/1"), None);
        assert_eq!(relative_part("/1"), None);
        assert_eq!(relative_part("Patient/1/_history/"), Some(("Patient", "1")));
        assert_eq!(relative_part("a/Patient/1"), Some(("Patient", "1")));
    }

    #[test]
    fn request_urls_name_their_resource_type() {
        for url in [
            "Patient/9434765919",
            "Patient/9434765919/_history/2",
            "https://x.nhs.uk/fhir/Patient/9434765919",
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919",
            "Patient",
        ] {
            assert_eq!(url_type(url), Some("Patient"), "{url}");
        }
        for url in ["", "9434765919", "patient/1", "?x=1", "Patient-1/"] {
            assert_eq!(url_type(url), None, "{url}");
        }
    }

    /// A large bundle's references are found through its index, and what
    /// they find is what reading every entry in order finds: the first
    /// match, whichever key matched (exact fullUrl, an absolute one of
    /// another version, `Type/id` of the resource or of its fullUrl), with
    /// ids repeated and absolute URLs of other servers in between.
    #[test]
    fn an_indexed_bundle_resolves_as_a_scan_does() {
        let mut entries = Vec::new();
        for i in 0..100 {
            let (url, id) = match i % 5 {
                0 => (format!("urn:uuid:{i}"), format!("p{}", i % 7)),
                1 => (
                    format!("https://a.nhs.uk/fhir/Patient/p{}", i % 7),
                    format!("x{i}"),
                ),
                2 => (
                    format!("https://b.nhs.uk/fhir/Patient/p{}/_history/2", i % 7),
                    format!("p{}", i % 7),
                ),
                3 => (format!("Patient/p{}", i % 3), format!("q{i}")),
                _ => (String::new(), format!("p{}", i % 7)),
            };
            let full = if url.is_empty() {
                String::new()
            } else {
                format!(r#""fullUrl":"{url}","#)
            };
            entries.push(format!(
                r#"{{{full}"resource":{{"resourceType":"Patient","id":"{id}"}}}}"#
            ));
        }
        let text = format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
            entries.join(",")
        );
        let reader = crate::r4::R4 {
            tz: chrono_tz::Europe::London,
            local: Default::default(),
        };
        let root = raw::parse(text.as_bytes()).unwrap();
        let (obj, rtype) = resource(&root, &"$").unwrap();
        let e = entry_of(
            obj,
            rtype,
            None,
            Loc::root(Cow::Borrowed("Bundle")),
            &reader,
            0,
        )
        .unwrap();
        let b = e.bundle.as_deref().unwrap();
        assert!(b.index.is_some(), "a bundle of 100 entries is indexed");
        let scope = |index| Scope {
            entries: &b.entries,
            from_bundle: true,
            parent: None,
            index,
        };
        let (indexed, scanned) = (scope(b.index.as_ref()), scope(None));
        let mut references = vec![
            "urn:uuid:0".to_owned(),
            "urn:uuid:1".to_owned(),
            "#x".to_owned(),
        ];
        for n in 0..8 {
            references.push(format!("Patient/p{n}"));
            references.push(format!("Patient/q{n}"));
            references.push(format!("Observation/p{n}"));
            references.push(format!("https://a.nhs.uk/fhir/Patient/p{n}"));
            references.push(format!("https://a.nhs.uk/fhir/Patient/p{n}/_history/9"));
            references.push(format!("https://b.nhs.uk/fhir/Patient/p{n}"));
            references.push(format!("https://c.nhs.uk/fhir/Patient/p{n}"));
        }
        let mut found = 0;
        for r in &references {
            let at = |s: &Scope<'_>| s.resolve(r).map(|e| e.loc.to_string());
            assert_eq!(at(&indexed), at(&scanned), "{r}");
            found += usize::from(at(&scanned).is_some());
        }
        assert!(
            found > references.len() / 2,
            "most references resolve: {found}"
        );
    }
}
