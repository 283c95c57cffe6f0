//! Checks JSON values against the schemas of `schemas/openapi.json`: the
//! OpenAPI 3.0 subset the document uses (`$ref`, `allOf`, `anyOf`, `oneOf`,
//! `type`, `nullable`, `enum`, `properties`, `required`,
//! `additionalProperties`, `items`, `minimum`). Any other keyword fails the
//! check, so the document cannot quietly outgrow the checker; and an object
//! property the document does not list is an error, so the document cannot
//! quietly fall behind the code.

use serde_json::Value;

/// The OpenAPI document.
pub struct OpenApi(pub Value);

const KNOWN: [&str; 17] = [
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "type",
    "nullable",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "format",
    "description",
    "default",
    "example",
    "title",
];

impl OpenApi {
    /// Loads `schemas/openapi.json`.
    pub fn load() -> Self {
        let path = super::repo().join("schemas/openapi.json");
        let text = std::fs::read_to_string(&path).expect("read schemas/openapi.json");
        Self(serde_json::from_str(&text).expect("schemas/openapi.json is JSON"))
    }

    /// The response schema of `GET path` for `status` and `media` type.
    pub fn response_schema(&self, path: &str, status: u16, media: &str) -> &Value {
        let op = &self.0["paths"][path]["get"];
        assert!(op.is_object(), "GET {path} is not documented");
        let schema = &op["responses"][status.to_string()]["content"][media]["schema"];
        assert!(
            schema.is_object(),
            "GET {path} documents no {media} schema for {status}"
        );
        schema
    }

    /// The documented path that `path` is: itself, or a templated one
    /// whose `{name}` segments match any one segment.
    pub fn route_for(&self, path: &str) -> String {
        let paths = self.0["paths"].as_object().expect("paths");
        if paths.contains_key(path) {
            return path.to_string();
        }
        let segments: Vec<&str> = path.split('/').collect();
        paths
            .keys()
            .find(|t| {
                let ts: Vec<&str> = t.split('/').collect();
                ts.len() == segments.len()
                    && ts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
            })
            .cloned()
            .unwrap_or_else(|| path.to_string())
    }

    /// The documented query parameter names of `GET path`.
    pub fn parameters(&self, path: &str) -> Vec<String> {
        self.0["paths"][path]["get"]["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every way `value` breaks `schema`, with JSON-pointer-like locations.
    pub fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "$", &mut out);
        out
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unsupported $ref {r}"));
                let target = &self.0["components"]["schemas"][name];
                assert!(target.is_object(), "dangling $ref {r}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let obj = schema.as_object().expect("schema is an object");
        for k in obj.keys() {
            assert!(
                KNOWN.contains(&k.as_str()),
                "schema keyword {k} at {at} is not checked"
            );
        }
        if value.is_null() && obj.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, value, at, out);
            }
        }
        for (kw, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            if let Some(options) = obj.get(kw).and_then(Value::as_array) {
                let ok = options
                    .iter()
                    .filter(|s| {
                        let mut e = Vec::new();
                        self.check(s, value, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if ok == 0 || (exactly_one && ok > 1) {
                    out.push(format!("{at}: {value} matches {ok} of the {kw} options"));
                }
            }
        }
        if let Some(allowed) = obj.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            out.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                other => panic!("unknown type {other}"),
            };
            if !ok {
                out.push(format!("{at}: {value} is not of type {t}"));
                return;
            }
        }
        if let (Some(min), Some(v)) = (obj.get("minimum").and_then(Value::as_f64), value.as_f64())
            && v < min
        {
            out.push(format!("{at}: {v} is below {min}"));
        }
        if let Some(items) = obj.get("items")
            && let Some(array) = value.as_array()
        {
            for (i, v) in array.iter().enumerate() {
                self.check(items, v, &format!("{at}[{i}]"), out);
            }
        }
        if let Some(map) = value.as_object() {
            let props = obj.get("properties").and_then(Value::as_object);
            if let Some(required) = obj.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.push(format!("{at}: required property {r} is missing"));
                    }
                }
            }
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.check(s, v, &format!("{at}.{k}"), out),
                    None => match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            out.push(format!("{at}: property {k} is not documented"))
                        }
                        Some(s @ Value::Object(_)) => self.check(s, v, &format!("{at}.{k}"), out),
                        // Stricter than OpenAPI: a property the document
                        // does not list is drift between it and the code.
                        _ if props.is_some() => {
                            out.push(format!("{at}: property {k} is not documented"))
                        }
                        _ => {}
                    },
                }
            }
        }
    }
}
