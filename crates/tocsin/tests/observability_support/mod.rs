//! Helpers for the observability and deploy tests: an HTTP client that
//! returns status, headers and body, a Prometheus text-format reader, a
//! ward's worth of HL7 traffic with known identifiers, `promtool`, and a
//! small OpenAPI 3.0 schema checker for real responses.
#![allow(dead_code)]

pub mod openapi;
pub mod traffic;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Response {
    /// The body as JSON, panicking with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// `GET path` on 127.0.0.1:`port` with extra request headers (HTTP/1.0,
/// so the server closes the connection after the body).
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    request(port, "GET", path, headers)
}

/// `method path` on 127.0.0.1:`port` with extra request headers and no
/// body, as [`get`].
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if method != "GET" && method != "HEAD" {
        req.push_str("Content-Length: 0\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One sample of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples, `# HELP` and `# TYPE` lines of a scrape.
#[derive(Debug)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Reads the text format (as the prometheus crate writes it: label
    /// values escaped with backslashes, no timestamps).
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        let mut help = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (n, h) = rest.split_once(' ').unwrap_or((rest, ""));
                help.insert(n.to_string(), h.to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (n, t) = rest.split_once(' ').expect("TYPE line");
                types.insert(n.to_string(), t.to_string());
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample(line));
        }
        Self {
            text: text.to_string(),
            samples,
            help,
            types,
        }
    }

    /// The value of the one sample named `name` whose labels include
    /// `labels`; panics when there is none or several.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }

    /// The sum over samples named `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Inputs committed to the store (the sum of the batch-size histogram,
    /// observed after each commit). Waiting on messages received is not
    /// enough before reading the store: a message is counted received when
    /// it is processed, before its batch commits.
    pub fn committed_inputs(&self) -> f64 {
        self.sum("tocsin_batch_size_sum", &[])
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The metric family a sample belongs to (histogram suffixes removed
    /// when the family is a histogram).
    pub fn family_of<'a>(&self, sample: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && self.types.get(base).map(String::as_str) == Some("histogram")
            {
                return base;
            }
        }
        sample
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name_labels, value) = line.rsplit_once(' ').expect("sample value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
    };
    let Some((name, rest)) = name_labels.split_once('{') else {
        return Sample {
            name: name_labels.to_string(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest.strip_suffix('}').expect("closing brace");
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "quote in {line:?}");
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(o) => v.push(o),
                    None => break,
                },
                '"' => break,
                o => v.push(o),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), v);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `promtool`: these tests fail, not skip, without it.
pub fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "promtool is not installed; these tests need it and do not skip. \
             Install it with `apt-get install -y prometheus` (scripts/test.sh does)."
        )
    })
}

/// Runs `promtool args...` (stdin from `input` when given).
pub fn run_promtool(args: &[&str], input: Option<&str>) -> Output {
    let mut cmd = Command::new(promtool());
    cmd.args(args)
        .current_dir(repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run promtool");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).expect("write to promtool");
        }
    }
    child.wait_with_output().expect("promtool output")
}

/// Asserts a promtool run succeeded, showing what it said otherwise.
pub fn assert_promtool_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "promtool {what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The repository root.
pub fn repo() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
