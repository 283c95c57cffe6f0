//! `/api/v1` of a real gateway over SQLite and PostgreSQL, after a ward's
//! traffic: filters, cursor paging, 400s that name the parameter, bearer
//! authentication, the compliance report as JSON and CSV with the same
//! figures as `tocsin replay`, and every response checked against
//! `schemas/openapi.json`.

mod common;
mod observability_support;

use std::process::Command;

use common::{Gateway, Tuning, WAIT, World, poll};
use observability_support::openapi::OpenApi;
use observability_support::traffic::{Ward, ward};
use observability_support::{Response, Scrape, get, request};
use serde_json::Value;

const TOKEN: &str = "tok-7d1f0c2a-obs";
const AUTH: (&str, &str) = ("Authorization", "Bearer tok-7d1f0c2a-obs");

async fn feed(world: &World, gateway: &mut Gateway, w: &Ward) {
    gateway.wait_ready().await;
    let messages: Vec<_> = w
        .messages
        .iter()
        .map(|m| common::input(&m.id, m.content_type, m.body.clone()))
        .collect();
    world.publish(&messages).await;
    let port = world.port;
    let total = messages.len() as f64;
    poll("the traffic to be processed and judged", WAIT, || async {
        let s = Scrape::parse(&get(port, "/metrics", &[]).body);
        let received = s.sum("tocsin_messages_received_total", &[]);
        let overdue = s.sum("tocsin_expectations_overdue", &[]);
        let committed = s.committed_inputs();
        if received == total && committed == total && overdue == 1.0 {
            Ok(())
        } else {
            Err(format!(
                "{received} received, {committed} committed, {overdue} overdue"
            ))
        }
    })
    .await;
}

/// `GET /api/v1{path}` with the token; checks the status and, for JSON,
/// the body against the OpenAPI document.
fn api(port: u16, doc: &OpenApi, path: &str, status: u16) -> Response {
    let r = get(port, &format!("/api/v1{path}"), &[AUTH]);
    assert_eq!(r.status, status, "GET /api/v1{path}: {}", r.body);
    let route = doc.route_for(&format!("/api/v1{}", path.split('?').next().unwrap()));
    if r.header("content-type") == Some("application/json") {
        let errors = doc.errors(
            doc.response_schema(&route, status, "application/json"),
            &r.json(),
        );
        assert!(
            errors.is_empty(),
            "GET /api/v1{path} breaks its schema: {errors:#?}"
        );
    }
    r
}

fn items(r: &Response) -> Vec<Value> {
    r.json()["items"].as_array().expect("items").clone()
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} in {v}"))
}

/// A 400 naming `parameter`, in the documented error shape.
fn bad(port: u16, doc: &OpenApi, path: &str, parameter: &str) {
    let r = api(port, doc, path, 400);
    let body = r.json();
    assert_eq!(body["error"], "bad_parameter", "{path}: {body}");
    assert_eq!(body["parameter"], parameter, "{path}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.len() > 20),
        "{path}: a reason, not just a code: {body}"
    );
}

async fn exercise(world: World) {
    let doc = OpenApi::load();
    let mut gateway = world.start(&[("TOCSIN_API_TOKEN", TOKEN)]);
    let w = ward(if matches!(world.store, common::TestStore::Sqlite(_)) {
        "S"
    } else {
        "P"
    });
    feed(&world, &mut gateway, &w).await;
    let port = world.port;

    authentication(port, &doc);
    filters_and_paging(port, &doc);
    bad_parameters(port, &doc);
    alerts(port, &doc, &w);
    one_expectation(port, &doc);
    lookups(port, &doc);
    compliance(&world, port, &doc, &w);
    compliance_by_specialty_and_practice(port, &doc);

    // Every documented route answers (none is documented but missing), and
    // an unknown one is a JSON 404.
    // (A route with a path parameter is exercised above.)
    for path in doc.0["paths"].as_object().unwrap().keys() {
        if path.contains('{') {
            continue;
        }
        let r = get(port, path, &[AUTH]);
        assert_eq!(r.status, 200, "documented {path} answers {}", r.status);
        for p in doc.parameters(path) {
            let r = get(port, &format!("{path}?{p}="), &[AUTH]);
            assert_eq!(
                r.status, 200,
                "documented parameter {p} of {path}: {}",
                r.body
            );
        }
    }
    let r = get(port, "/api/v1/patients", &[AUTH]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    refusals_are_json(port, &doc);
}

/// Every refusal is the API's JSON error shape: a method a route does not
/// take is a 405 that keeps `Allow` (it was an empty body), and the API's
/// root, with or without its trailing slash, a 404 like any unknown path
/// (`/api/v1/` was an empty body).
fn refusals_are_json(port: u16, doc: &OpenApi) {
    let error = &doc.0["components"]["schemas"]["Error"];
    let id = field(
        &items(&api(port, doc, "/expectations?limit=1", 200))[0],
        &["id"],
    )
    .to_string();
    for (method, path) in [
        ("POST", "/api/v1/expectations".to_string()),
        ("DELETE", format!("/api/v1/expectations/{id}")),
        ("PUT", "/api/v1/alerts".to_string()),
        ("PATCH", "/api/v1/compliance".to_string()),
        ("OPTIONS", "/api/v1/compliance".to_string()),
    ] {
        let r = request(port, method, &path, &[AUTH]);
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
        assert_eq!(r.header("allow"), Some("GET,HEAD"), "{method} {path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["error"], "method_not_allowed", "{}", r.body);
        assert!(r.body.contains(method), "{}", r.body);
        let schema = doc.response_schema(&doc.route_for(&path), 405, "application/json");
        assert!(doc.errors(schema, &r.json()).is_empty(), "{}", r.body);
    }
    for (method, path) in [
        ("GET", "/api/v1/"),
        ("GET", "/api/v1"),
        ("GET", "/api/v1/expectations/"),
        ("POST", "/api/v1/patients"),
    ] {
        let r = request(port, method, path, &[AUTH]);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["error"], "not_found", "{}", r.body);
        assert!(doc.errors(error, &r.json()).is_empty(), "{}", r.body);
    }
}

fn authentication(port: u16, doc: &OpenApi) {
    let unauthorised = doc.response_schema("/api/v1/expectations", 401, "application/json");
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token")],
        vec![("Authorization", "Basic dG9jc2luOnRvY3Npbg==")],
        vec![("Authorization", "Bearer")],
        // Two, the right one first: a proxy reading the last would have
        // let through a request the gateway took as bearing the token.
        vec![
            ("Authorization", "Bearer tok-7d1f0c2a-obs"),
            ("Authorization", "Bearer wrong-token"),
        ],
    ] {
        for route in [
            "/api/v1/expectations",
            "/api/v1/alerts",
            "/api/v1/compliance",
        ] {
            let r = get(port, route, &headers);
            assert_eq!(r.status, 401, "{route} with {headers:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer realm=\"tocsin\"")
            );
            assert_eq!(r.json()["error"], "unauthorized");
            assert!(doc.errors(unauthorised, &r.json()).is_empty());
            // A refusal says nothing about the data.
            assert!(!r.body.contains("items"));
        }
    }
    // Anything under /api/v1, served or not and by any method, is the same
    // 401 without the token: no route can be probed for. (A path the API
    // does not serve answered 404 before the token was checked.)
    let refusal = get(port, "/api/v1/expectations", &[]);
    for (method, path) in [
        ("GET", "/api/v1/patients"),
        ("GET", "/api/v1/"),
        ("GET", "/api/v1"),
        ("GET", "/api/v1/expectations/x/y"),
        ("POST", "/api/v1/expectations"),
        ("DELETE", "/api/v1/alerts"),
        ("POST", "/api/v1/patients"),
    ] {
        for headers in [vec![], vec![("Authorization", "Bearer wrong-token")]] {
            let r = request(port, method, path, &headers);
            assert_eq!(
                r.status, 401,
                "{method} {path} with {headers:?}: {}",
                r.body
            );
            assert_eq!(r.json()["error"], "unauthorized", "{}", r.body);
            assert!(doc.errors(unauthorised, &r.json()).is_empty());
            assert_eq!(r.header("allow"), None, "{method} {path} names its methods");
            if headers.is_empty() {
                assert_eq!(r.body, refusal.body, "{method} {path}");
            }
        }
    }
    // The scheme name is case-insensitive.
    let r = get(
        port,
        "/api/v1/alerts",
        &[("Authorization", &format!("bearer {TOKEN}"))],
    );
    assert_eq!(r.status, 200);
    for open in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(port, open, &[]).status, 200, "{open} needs no token");
    }
}

fn filters_and_paging(port: u16, doc: &OpenApi) {
    let all = items(&api(port, doc, "/expectations?limit=1000", 200));
    assert_eq!(all.len(), 5);
    let count = |status: &str| all.iter().filter(|e| e["status"] == status).count();
    assert_eq!(
        [
            count("on_time"),
            count("late"),
            count("overdue"),
            count("open")
        ],
        [1, 1, 1, 2]
    );
    // Earliest deadline first.
    let deadlines: Vec<&str> = all.iter().map(|e| field(e, &["deadline"])).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        deadlines.iter().map(|d| d.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|p| p[0] <= p[1]), "{deadlines:?}");

    for (query, expect) in [
        ("status=overdue", 1),
        ("status=open", 2),
        ("document_kind=clinic_letter", 1),
        ("document_kind=discharge_summary", 4),
        ("encounter_kind=emergency", 1),
        ("site=RXX02", 2),
        ("status=open&site=RXX01", 1),
        ("status=cancelled", 0),
        ("site=NOWHERE", 0),
    ] {
        let got = items(&api(port, doc, &format!("/expectations?{query}"), 200));
        assert_eq!(got.len(), expect, "{query}");
        for e in &got {
            for pair in query.split('&') {
                let (k, v) = pair.split_once('=').unwrap();
                let actual = match k {
                    "status" => field(e, &["status"]),
                    "document_kind" => field(e, &["document_kind"]),
                    "encounter_kind" => field(e, &["encounter", "kind"]),
                    "site" => field(e, &["encounter", "site"]),
                    _ => unreachable!(),
                };
                assert_eq!(actual, v, "{query} returned {e}");
            }
        }
    }

    // By practice, specialty and site: each value the list holds selects
    // just its own expectations, in the list's order; an unknown one, none;
    // `(none)` (as the report names them) those that have no value.
    // (These messages name no specialty; the store's own suite filters
    // by both over varied values on both backends.)
    for (param, pointer) in [
        ("gp_practice", "/gp_practice"),
        ("specialty", "/encounter/specialty"),
        ("site", "/encounter/site"),
    ] {
        let of = |e: &Value| {
            e.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let values: std::collections::BTreeSet<String> = all.iter().filter_map(of).collect();
        for v in values
            .iter()
            .map(String::as_str)
            .chain(["NOWHERE", "(none)"])
        {
            let asked = v.replace('(', "%28").replace(')', "%29");
            let got = items(&api(
                port,
                doc,
                &format!("/expectations?{param}={asked}"),
                200,
            ));
            let want: Vec<Value> = all
                .iter()
                .filter(|e| match v {
                    "(none)" => of(e).is_none(),
                    _ => of(e).as_deref() == Some(v),
                })
                .cloned()
                .collect();
            assert_eq!(got, want, "{param}={v}");
        }
        if param == "specialty" {
            assert!(
                !all.is_empty(),
                "no specialty named: (none) selects them all"
            );
        }
    }

    // Pages of two: 2, 2, 1, in the same order as the whole list.
    let (paged, sizes) = follow_pages(port, doc, "/expectations?limit=2");
    assert_eq!(sizes, [2, 2, 1]);
    let ids = |v: &[Value]| v.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all));
    // A filter holds across pages too.
    let first = api(
        port,
        doc,
        "/expectations?document_kind=discharge_summary&limit=3",
        200,
    )
    .json();
    let c = first["next_cursor"].as_str().expect("a second page");
    let rest = items(&api(
        port,
        doc,
        &format!("/expectations?document_kind=discharge_summary&limit=3&cursor={c}"),
        200,
    ));
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["document_kind"], "discharge_summary");
    // Nor without the filter it was issued with: it is refused, not taken
    // as a place in the whole list (which skipped what lay before it).
    bad(
        port,
        doc,
        &format!("/expectations?limit=3&cursor={c}"),
        "cursor",
    );
    // A cursor of this list means nothing to the alerts.
    bad(port, doc, &format!("/alerts?cursor={c}"), "cursor");
}

/// Follows `next_cursor` from `first` (a path with a `limit`) to the last
/// page: every item in order, and each page's size.
fn follow_pages(port: u16, doc: &OpenApi, first: &str) -> (Vec<Value>, Vec<usize>) {
    let mut cursor: Option<String> = None;
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let q = match &cursor {
            Some(c) => format!("{first}&cursor={c}"),
            None => first.to_string(),
        };
        let page = api(port, doc, &q, 200).json();
        let got = page["items"].as_array().unwrap().clone();
        sizes.push(got.len());
        paged.extend(got);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    (paged, sizes)
}

fn bad_parameters(port: u16, doc: &OpenApi) {
    for (path, parameter) in [
        ("/expectations?status=lost", "status"),
        ("/expectations?document_kind=letter", "document_kind"),
        ("/expectations?encounter_kind=ward", "encounter_kind"),
        ("/expectations?limit=0", "limit"),
        ("/expectations?limit=ten", "limit"),
        ("/expectations?limit=1001", "limit"),
        ("/expectations?cursor=zz", "cursor"),
        ("/expectations?cursor=6531", "cursor"),
        ("/expectations?colour=red", "colour"),
        ("/expectations?status=open&status=late", "status"),
        ("/alerts?since=yesterday", "since"),
        ("/alerts?kind=missing", "kind"),
        ("/alerts?document_kind=letter", "document_kind"),
        ("/alerts?encounter_kind=ward", "encounter_kind"),
        ("/alerts?limit=-1", "limit"),
        ("/alerts?cursor=zz", "cursor"),
        ("/alerts?order=newest", "order"),
        ("/alerts?site=R%00X", "site"),
        // Bytes that are not UTF-8 (decoded lossily, they searched for a
        // site named "\u{FFFD}\u{FFFD}").
        ("/alerts?site=%FF%FE", "site"),
        ("/alerts?%FF=1", "(query string)"),
        ("/expectations?gp_practice=B86%00", "gp_practice"),
        ("/compliance?group_by=month,ward", "group_by"),
        ("/compliance?from=2024-13-01", "from"),
        ("/compliance?from=2024-02-01&to=2024-01-01", "to"),
        ("/compliance?format=csv", "format"),
    ] {
        bad(port, doc, path, parameter);
    }
    times_outside_the_years_both_stores_hold(port, doc);
}

/// A time outside the years 0001 to 9999, given as a parameter or inside a
/// cursor, is a 400 naming it on both backends: PostgreSQL failed such a
/// query (a 500 and an ERROR in the log) where SQLite answered 200. Times
/// at the ends of the range are answered.
fn times_outside_the_years_both_stores_hold(port: u16, doc: &OpenApi) {
    let cursor = |list: &str, us: i64| hex::encode(format!("{list}|{us}|x"));
    let mut refused = vec![
        (
            "/expectations?ended_from=-5000-01-01".to_string(),
            "ended_from",
        ),
        (
            "/expectations?ended_to=%2B10000-01-01".to_string(),
            "ended_to",
        ),
        ("/alerts?since=-5000-01-01".to_string(), "since"),
        ("/alerts?since=0000-12-31T23:59:59Z".to_string(), "since"),
        ("/compliance?from=-5000-01-01".to_string(), "from"),
        ("/compliance?to=%2B10000-01-01".to_string(), "to"),
    ];
    for us in [-250_000_000_000_000_000, i64::MAX] {
        refused.push((
            format!("/expectations?cursor={}", cursor("e1", us)),
            "cursor",
        ));
        refused.push((format!("/alerts?cursor={}", cursor("a1", us)), "cursor"));
    }
    for (path, parameter) in &refused {
        bad(port, doc, path, parameter);
    }
    let (first, last) = ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z");
    let all = items(&api(port, doc, "/expectations?limit=1000", 200));
    let within = items(&api(
        port,
        doc,
        &format!("/expectations?ended_from={first}&ended_to={last}&limit=1000"),
        200,
    ));
    assert_eq!(within, all);
    api(port, doc, &format!("/alerts?since={first}"), 200);
    api(
        port,
        doc,
        &format!("/compliance?from={first}&to={last}"),
        200,
    );
    for us in [-62_135_596_800_000_000, 253_402_300_799_999_999] {
        api(
            port,
            doc,
            &format!("/expectations?cursor={}", cursor("e1", us)),
            200,
        );
        api(
            port,
            doc,
            &format!("/alerts?cursor={}", cursor("a1", us)),
            200,
        );
    }
}

fn alerts(port: u16, doc: &OpenApi, w: &Ward) {
    let all = items(&api(port, doc, "/alerts", 200));
    let kinds: Vec<&str> = all.iter().map(|a| field(a, &["kind"])).collect();
    let mut sorted = kinds.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["late", "overdue", "overdue", "resolved"]);
    let raised: Vec<&str> = all.iter().map(|a| field(a, &["raised_at"])).collect();
    let mut in_order = raised.clone();
    in_order.sort_unstable();
    assert_eq!(raised, in_order, "alerts come oldest first");
    assert_eq!(items(&api(port, doc, "/alerts?kind=overdue", 200)).len(), 2);
    assert_eq!(
        items(&api(port, doc, "/alerts?kind=due_soon", 200)).len(),
        0
    );
    assert_eq!(items(&api(port, doc, "/alerts?limit=3", 200)).len(), 3);
    // By group, as an Alertmanager link asks: each alert's own kinds and
    // site select it with exactly the alerts that share them.
    for a in &all {
        let (kind, doc_kind, enc_kind, site) = (
            field(a, &["kind"]),
            field(a, &["document_kind"]),
            field(a, &["encounter", "kind"]),
            field(a, &["encounter", "site"]),
        );
        let got = items(&api(
            port,
            doc,
            &format!(
                "/alerts?kind={kind}&document_kind={doc_kind}&encounter_kind={enc_kind}&site={site}"
            ),
            200,
        ));
        let want: Vec<Value> = all
            .iter()
            .filter(|b| {
                (
                    &b["kind"],
                    &b["document_kind"],
                    &b["encounter"]["kind"],
                    &b["encounter"]["site"],
                ) == (
                    &a["kind"],
                    &a["document_kind"],
                    &a["encounter"]["kind"],
                    &a["encounter"]["site"],
                )
            })
            .cloned()
            .collect();
        assert!(want.contains(a));
        assert_eq!(got, want, "the group of {a}");
    }
    assert!(items(&api(port, doc, "/alerts?site=NOWHERE", 200)).is_empty());
    // By specialty, as a split Alertmanager group's link asks.
    let specialties: std::collections::BTreeSet<&str> = all
        .iter()
        .filter_map(|a| a["encounter"]["specialty"].as_str())
        .collect();
    assert!(
        !specialties.is_empty(),
        "the ward's alerts name a specialty: {all:?}"
    );
    for sp in specialties {
        let got = items(&api(port, doc, &format!("/alerts?specialty={sp}"), 200));
        let want: Vec<Value> = all
            .iter()
            .filter(|b| b["encounter"]["specialty"] == sp)
            .cloned()
            .collect();
        assert_eq!(got, want, "specialty {sp}");
    }
    assert!(items(&api(port, doc, "/alerts?specialty=NOWHERE", 200)).is_empty());
    // Pages of three: 3, 1, the whole list in order; and one page for all.
    let (paged, sizes) = follow_pages(port, doc, "/alerts?limit=3");
    assert_eq!(sizes, [3, 1]);
    let ids = |v: &[Value]| v.iter().map(|a| a["alert_id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all));
    assert!(api(port, doc, "/alerts", 200).json()["next_cursor"].is_null());
    // `since` is inclusive: from the last alert's own time, it and no
    // earlier one.
    let last = all.last().unwrap();
    let since = field(last, &["raised_at"]).replace('+', "%2B");
    let tail = items(&api(port, doc, &format!("/alerts?since={since}"), 200));
    assert!(tail.iter().any(|a| a["alert_id"] == last["alert_id"]));
    assert!(tail.len() < all.len());
    let later = (w.now + chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    assert!(items(&api(port, doc, &format!("/alerts?since={later}"), 200)).is_empty());
    let tomorrow = (w.now + chrono::TimeDelta::days(2)).format("%Y-%m-%d");
    assert!(items(&api(port, doc, &format!("/alerts?since={tomorrow}"), 200)).is_empty());
    // In the order recorded, as a poller reads: the same alerts, pages of
    // three, and a resume cursor that gives nothing more until something
    // new is recorded.
    let (recorded, sizes) = follow_pages(port, doc, "/alerts?order=recorded&limit=3");
    assert_eq!(sizes, [3, 1]);
    let mut want = ids(&all);
    let mut got = ids(&recorded);
    want.sort_by_key(|v| v.to_string());
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);
    let first = api(port, doc, "/alerts?order=recorded", 200).json();
    assert!(first["next_cursor"].is_null());
    let resume = first["resume_cursor"].as_str().expect("a resume cursor");
    let later = api(
        port,
        doc,
        &format!("/alerts?order=recorded&cursor={resume}"),
        200,
    )
    .json();
    assert_eq!(later["items"], serde_json::json!([]));
    assert_eq!(later["resume_cursor"].as_str(), Some(resume));
    assert!(
        api(port, doc, "/alerts", 200)
            .json()
            .get("resume_cursor")
            .is_none(),
        "only the recorded order resumes"
    );
    bad(port, doc, &format!("/alerts?cursor={resume}"), "cursor");
}

/// Each expectation by its id, with exactly the alerts the alert list
/// holds for it, in the order raised; an unknown id is a 404 and a query
/// parameter a 400.
fn one_expectation(port: u16, doc: &OpenApi) {
    let all = items(&api(port, doc, "/expectations?limit=1000", 200));
    let alerts = items(&api(port, doc, "/alerts?limit=1000", 200));
    let mut with_alerts = 0;
    for e in &all {
        let id = field(e, &["id"]);
        let detail = api(port, doc, &format!("/expectations/{id}"), 200).json();
        assert_eq!(&detail["expectation"], e);
        let want: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["expectation_id"] == id)
            .collect();
        let got: Vec<&Value> = detail["alerts"].as_array().unwrap().iter().collect();
        assert_eq!(got, want, "alerts of {id}");
        with_alerts += usize::from(!got.is_empty());
    }
    // The overdue one, and the late one (overdue, late, resolved).
    assert_eq!(with_alerts, 2);
    let r = api(
        port,
        doc,
        "/expectations/0123456789abcdef0123456789abcdef",
        404,
    );
    assert_eq!(r.json()["error"], "not_found", "{}", r.body);
    assert!(
        r.body.contains("0123456789abcdef0123456789abcdef"),
        "{}",
        r.body
    );
    let id = field(&all[0], &["id"]);
    bad(
        port,
        doc,
        &format!("/expectations/{id}?status=open"),
        "status",
    );
    // A path that does not decode is answered in the same shape.
    bad(port, doc, "/expectations/%FF", "(path)");
    // An id holding a NUL names nothing (PostgreSQL refused it: a 500).
    let r = api(port, doc, "/expectations/ab%00cd", 404);
    assert_eq!(r.json()["error"], "not_found", "{}", r.body);
}

/// A patient's or an encounter's expectations in a window of encounter
/// ends: exactly those of the whole list that match; a lookup without a
/// bounded window, or with a malformed NHS number, is a 400.
fn lookups(port: u16, doc: &OpenApi) {
    let all = items(&api(port, doc, "/expectations?limit=1000", 200));
    let ended = |e: &Value| -> chrono::DateTime<chrono::Utc> {
        field(e, &["encounter", "ended_at"]).parse().unwrap()
    };
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let e = all
        .iter()
        .find(|e| e["patient"]["nhs_number"].is_string())
        .expect("an expectation with an NHS number");
    let nhs = field(e, &["patient", "nhs_number"]);
    let visit = field(e, &["encounter", "id"]);
    let (from, to) = (
        ended(e) - chrono::TimeDelta::days(1),
        ended(e) + chrono::TimeDelta::days(1),
    );
    let window = format!("ended_from={}&ended_to={}", stamp(from), stamp(to));
    let in_window = |x: &&Value| ended(x) >= from && ended(x) < to;
    let by_patient: Vec<Value> = all
        .iter()
        .filter(|x| x["patient"]["nhs_number"] == nhs)
        .filter(in_window)
        .cloned()
        .collect();
    let spaced = format!("{} {} {}", &nhs[..3], &nhs[3..6], &nhs[6..]).replace(' ', "%20");
    let hyphened = format!("{}-{}-{}", &nhs[..3], &nhs[3..6], &nhs[6..]);
    for given in [nhs.to_string(), spaced, hyphened] {
        let got = items(&api(
            port,
            doc,
            &format!("/expectations?nhs_number={given}&{window}"),
            200,
        ));
        assert_eq!(got, by_patient, "{given}");
    }
    let by_visit: Vec<Value> = all
        .iter()
        .filter(|x| x["encounter"]["id"] == visit)
        .filter(in_window)
        .cloned()
        .collect();
    assert!(!by_visit.is_empty());
    let got = items(&api(
        port,
        doc,
        &format!("/expectations?encounter_id={visit}&{window}"),
        200,
    ));
    assert_eq!(got, by_visit);
    // The window alone is a filter too.
    let got = items(&api(
        port,
        doc,
        &format!("/expectations?{window}&limit=1000"),
        200,
    ));
    let want: Vec<Value> = all.iter().filter(in_window).cloned().collect();
    assert_eq!(got, want);

    let last = nhs.as_bytes()[9] - b'0';
    let mistyped = format!("{}{}", &nhs[..9], (last + 1) % 10);
    let wide = format!(
        "ended_from={}&ended_to={}",
        stamp(from - chrono::TimeDelta::days(100)),
        stamp(to)
    );
    for (path, parameter) in [
        (format!("/expectations?nhs_number={nhs}"), "ended_from"),
        (
            format!("/expectations?nhs_number={nhs}&ended_from={}", stamp(from)),
            "ended_to",
        ),
        (format!("/expectations?nhs_number={nhs}&{wide}"), "ended_to"),
        (format!("/expectations?encounter_id={visit}"), "ended_from"),
        (
            format!("/expectations?nhs_number=94347&{window}"),
            "nhs_number",
        ),
        // One digit mistyped: the check digit fails, and it is said so
        // rather than answered with no expectations.
        (
            format!("/expectations?nhs_number={mistyped}&{window}"),
            "nhs_number",
        ),
        (
            format!(
                "/expectations?ended_from={}&ended_to={}",
                stamp(to),
                stamp(from)
            ),
            "ended_to",
        ),
    ] {
        bad(port, doc, &path, parameter);
    }
}

/// The report by specialty and GP practice counts each expectation of the
/// list in its group (unknown ones under `(none)`), in the documented
/// shape, columns in the report's order.
fn compliance_by_specialty_and_practice(port: u16, doc: &OpenApi) {
    let report = api(port, doc, "/compliance?group_by=gp_practice,specialty", 200).json();
    assert_eq!(
        report["group_by"],
        serde_json::json!(["specialty", "gp_practice"])
    );
    let all = items(&api(port, doc, "/expectations?limit=1000", 200));
    let text = |v: &Value| v.as_str().unwrap_or("(none)").to_string();
    let mut want: std::collections::BTreeMap<(String, String), [u64; 4]> = Default::default();
    for e in &all {
        let key = (text(&e["encounter"]["specialty"]), text(&e["gp_practice"]));
        let counts = want.entry(key).or_default();
        let slot = match field(e, &["status"]) {
            "on_time" => 0,
            "late" => 1,
            "overdue" => 2,
            "open" => 3,
            other => panic!("{other}"),
        };
        counts[slot] += 1;
    }
    let got: std::collections::BTreeMap<(String, String), [u64; 4]> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                (text(&r["specialty"]), text(&r["gp_practice"])),
                [n("on_time"), n("late"), n("missing"), n("pending")],
            )
        })
        .collect();
    assert_eq!(got, want, "{report}");
    let csv = get(
        port,
        "/api/v1/compliance?group_by=gp_practice,specialty",
        &[AUTH, ("Accept", "text/csv")],
    );
    assert!(
        csv.body.starts_with("specialty,gp_practice,expected,"),
        "{}",
        csv.body
    );
}

fn compliance(world: &World, port: u16, doc: &OpenApi, w: &Ward) {
    let report = api(port, doc, "/compliance?group_by=document_kind", 200).json();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(report["group_by"], serde_json::json!(["document_kind"]));
    let row = |kind: &str| {
        rows.iter()
            .find(|r| r["document_kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} row in {report}"))
    };
    let ds = row("discharge_summary");
    assert_eq!(
        [
            &ds["expected"],
            &ds["on_time"],
            &ds["late"],
            &ds["missing"],
            &ds["pending"]
        ],
        [4, 1, 1, 1, 1]
    );
    assert_eq!(ds["median_delay_seconds"], 2 * 3600);
    assert_eq!(ds["p90_delay_seconds"], 60 * 3600);
    assert_eq!(row("clinic_letter")["pending"], 1);

    // A range that holds none of the encounters.
    let later = (w.now + chrono::TimeDelta::days(1)).format("%Y-%m-%d");
    let empty = api(port, doc, &format!("/compliance?from={later}"), 200).json();
    assert_eq!(empty["rows"], serde_json::json!([]));
    // Only the encounters that ended in the last 40 hours (1, 4, 5).
    let from = (w.now - chrono::TimeDelta::hours(40)).format("%Y-%m-%dT%H:%M:%SZ");
    let recent = api(
        port,
        doc,
        &format!("/compliance?from={from}&group_by=site"),
        200,
    )
    .json();
    let expected: u64 = recent["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["expected"].as_u64().unwrap())
        .sum();
    assert_eq!(expected, 3);

    // The default report, JSON and CSV, is what `tocsin replay` says of
    // the same traffic judged at the same time.
    let (replay_json, replay_csv) = replay(world, w);
    let live = api(port, doc, "/compliance", 200).json();
    assert_eq!(live["rows"], replay_json["rows"], "API and replay disagree");
    let csv = get(port, "/api/v1/compliance", &[AUTH, ("Accept", "text/csv")]);
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    // Both representations say they follow `Accept`, so a cache keeps them
    // apart (neither did).
    assert_eq!(csv.header("vary"), Some("Accept"));
    let json = get(port, "/api/v1/compliance", &[AUTH]);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.header("vary"), Some("Accept"));
    assert_eq!(csv.body, replay_csv);
    assert!(
        csv.body
            .starts_with("month,document_kind,encounter_kind,site,expected,")
    );
    let narrow = get(
        port,
        "/api/v1/compliance?group_by=encounter_kind",
        &[AUTH, ("Accept", "text/csv")],
    );
    let lines: Vec<&str> = narrow.body.lines().collect();
    assert!(
        lines[0].starts_with("encounter_kind,expected,"),
        "{}",
        narrow.body
    );
    // inpatient, emergency, outpatient.
    assert_eq!(lines.len(), 4, "{}", narrow.body);
}

/// `tocsin replay` of the ward's HL7 messages, clock advanced to now: the
/// report as JSON and as CSV.
fn replay(world: &World, w: &Ward) -> (Value, String) {
    let dir = world.dir.path().join("replay");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, m) in w.messages.iter().enumerate() {
        if m.content_type.is_some() {
            std::fs::write(dir.join(format!("{i:02}.hl7")), &m.body).unwrap();
        }
    }
    let until = chrono::Utc::now().to_rfc3339();
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .arg("--config")
            .arg(&world.config_path)
            .args(["replay", "--until", &until, "--format", format, "--alerts"])
            .arg(world.dir.path().join(format!("alerts-{format}.ndjson")))
            .arg(&dir)
            .env_remove("TOCSIN_STORE_URL")
            .output()
            .expect("run tocsin replay");
        assert!(
            out.status.success(),
            "replay failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json["rejected"], serde_json::json!([]));
    (json, run("csv"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_sqlite() {
    exercise(World::sqlite("obs-api-sqlite", Tuning::default()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_postgres() {
    exercise(World::postgres("obs-api-pg", Tuning::default()).await).await;
}

/// No token in the environment: the API answers anyone, and the gateway
/// warned about it once, at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_without_a_token_is_open_and_says_so_once() {
    let world = World::sqlite("obs-api-open", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let r = get(world.port, "/api/v1/expectations", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"], serde_json::json!([]));
    let r = get(
        world.port,
        "/api/v1/alerts",
        &[("Authorization", "Bearer anything")],
    );
    assert_eq!(r.status, 200);
    let warnings: Vec<_> = gateway
        .log_json()
        .into_iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no API token"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{}", gateway.log());
    assert_eq!(warnings[0]["fields"]["env"], "TOCSIN_API_TOKEN");
    // The token never reaches the log when there is one.
    drop(gateway);
    let gateway = world.start(&[("TOCSIN_API_TOKEN", TOKEN)]);
    let mut gateway = gateway;
    gateway.wait_ready().await;
    assert!(!gateway.log().contains(TOKEN));
    assert!(gateway.log_messages("no API token").is_empty());
}

/// An API read that waits (here on a lock, as a long report would on its
/// work) holds back nothing of the pipeline: inputs are committed beside
/// it, on the pipeline's own store connection, and the read then answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_read_that_waits_holds_back_no_commit() {
    let world = World::postgres("api-own-connection", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let lock = world.store.lock_table("alerts");
    let port = world.port;
    let read = std::thread::spawn(move || get(port, "/api/v1/alerts?limit=10", &[]));
    commit_beside_a_waiting_read(&world, &mut gateway, "the API's read").await;
    assert!(
        !read.is_finished(),
        "the read waited on the lock throughout"
    );
    drop(lock);
    let answered = read.join().unwrap();
    assert_eq!(answered.status, 200, "{}", answered.body);
}

/// PostgreSQL's connections terminated (a server restart, a failover):
/// the first API request after it answers, the API's dead connection made
/// again at once. It was a 503 quoting the server's "terminating
/// connection due to administrator command", and only the next succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_api_read_after_the_connections_are_cut_answers() {
    let world = World::postgres("api-reconnect", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    for path in ["/api/v1/expectations?limit=1", "/api/v1/alerts?limit=1"] {
        // The API's connection is open (its first read made sure), then cut.
        assert_eq!(get(world.port, path, &[]).status, 200);
        assert!(world.store.terminate_connections().await > 0);
        let r = get(world.port, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}

/// Waits until `reader` waits on a lock the test holds, then sees an
/// acknowledgement of nothing tocsin sent committed beside it (its input
/// record only: no alert or expectation written).
async fn commit_beside_a_waiting_read(world: &World, gateway: &mut common::Gateway, reader: &str) {
    world.store.wait_for_lock_waiter(reader).await;
    world
        .publish(&[common::input(
            &format!("beside-{}", world.port),
            Some(common::HL7),
            common::fixture("hl7/ack_aa.hl7"),
        )])
        .await;
    world.committed_at_least(gateway, 1).await;
}

/// Alert delivery reads on a connection of its own: an Alertmanager poll
/// that waits (here on a lock; in life, reading a standing backlog of
/// overdue expectations) holds back no commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_delivery_read_that_waits_holds_back_no_commit() {
    let world = World::postgres("delivery-own-connection", Tuning::default()).await;
    // Nothing listens there: the poll never gets as far as posting.
    world
        .append_config("[alertmanager]\nurl = \"http://127.0.0.1:9\"\npoll_interval_secs = 0.05\n");
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let lock = world.store.lock_table("expectations");
    commit_beside_a_waiting_read(&world, &mut gateway, "the Alertmanager poll").await;
    drop(lock);
}

/// Clients that open connections, send half a request's headers and wait
/// (a scanner, a slow-loris) take no more than the listener's connection
/// limit: the gateway's file descriptors stay bounded while far more are
/// held open (unbounded, they took every descriptor and the store, broker
/// and webhook connections failed with them); none is answered; and
/// `/healthz` and `/metrics` answer while they are still held, each new
/// connection closing the one idle longest (held back behind them, probes
/// failed until the held ones timed out, and a reconnecting client kept
/// them failing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_hold_no_more_than_the_connection_limit() {
    use std::io::{Read, Write};

    let world = World::sqlite("http-limits", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let pid = gateway.pid();
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let before = descriptors();
    // More than the limit, fewer than it and the backlog together.
    let held: Vec<std::net::TcpStream> = (0..600)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", world.port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // Every connection the listener took is counted once it is accepted;
    // the rest wait in the kernel's backlog, holding none of the gateway's.
    let g = &gateway;
    let taken = poll("the listener to fill", WAIT, || async {
        let n = descriptors();
        if n >= before + 256 {
            Ok(n)
        } else {
            // Who listens on the port, should another process hold it.
            let listening = std::process::Command::new("ss")
                .args(["-tlnp", &format!("sport = :{}", world.port)])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            Err(format!(
                "{n} descriptors, {before} before (gateway {pid}); listening:\n{listening}\n{}",
                g.log()
            ))
        }
    })
    .await;
    // Far fewer than the connections held (the gateway's own may vary by a
    // few: a store or broker connection made meanwhile).
    assert!(
        taken <= before + 256 + 32,
        "{taken} descriptors with 600 connections held, {before} before"
    );
    // Held connections are closed by the gateway once their headers are
    // overdue, never answered.
    for s in &held {
        s.set_nonblocking(true).unwrap();
    }
    let mut held = held;
    poll("a held connection to be closed", WAIT, || {
        let mut closed = 0;
        for s in &mut held {
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => closed += 1,
                Ok(n) => panic!("answered: {}", String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // Reset by the peer: closed too.
                Err(_) => closed += 1,
            }
        }
        std::future::ready(if closed > 0 {
            Ok(())
        } else {
            Err("none closed yet".to_string())
        })
    })
    .await;
    // The listener serves while they are held: every connection beyond the
    // limit closed the one idle longest, the held ones among them.
    gateway.wait_status("/healthz", 200).await;
    let scrape = Scrape::parse(&get(world.port, "/metrics", &[]).body);
    let shed = scrape.value(
        "tocsin_http_connections_shed_total",
        &[("reason", "idle_at_limit")],
    );
    assert!(
        shed >= (held.len() - 256) as f64,
        "{shed} idle connections closed for {} held beyond the limit",
        held.len() - 256
    );
    drop(held);
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
}

/// A client reading a large answer slowly keeps its connection while a
/// flood of idle connections takes every other place, each new one closing
/// the one idle longest: an answer still being written is never taken for
/// idle. (Taken for idle once its body was handed to be written, it was
/// cut off part-way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_keeps_its_connection_through_a_flood() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};

    let world = World::sqlite("http-slow-reader", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let port = world.port;
    // Answers far larger than the socket buffers: 200 scrapes, pipelined.
    const ASKED: usize = 200;
    let mut reader = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    reader
        .write_all(&b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(ASKED))
        .unwrap();
    // The flood: 600 connections that ask nothing, each reopened as soon as
    // the gateway closes it, until the reading ends.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flood = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let open = || {
                let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            };
            let mut held: Vec<_> = (0..600).map(|_| open()).collect();
            let mut reopened = 0usize;
            while !stop.load(Ordering::Acquire) {
                for s in &mut held {
                    let mut b = [0u8; 16];
                    let closed = match s.read(&mut b) {
                        Ok(n) => n == 0,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    };
                    if closed {
                        *s = open();
                        reopened += 1;
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            reopened
        }
    });
    // Read every answer whole, slowly: 16 KB at a time, 20 ms apart.
    let mut got = Vec::new();
    let mut answers = 0;
    let mut buf = [0u8; 16 * 1024];
    reader
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    while answers < ASKED {
        let n = reader
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("cut off after {answers} whole answers: {e}"));
        assert!(n > 0, "closed after {answers} whole answers");
        got.extend_from_slice(&buf[..n]);
        // Count the answers now whole, by their Content-Length.
        while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .expect("a Content-Length");
            if got.len() < end + 4 + length {
                break;
            }
            assert!(head.starts_with("http/1.1 200"), "{head}");
            got.drain(..end + 4 + length);
            answers += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, Ordering::Release);
    let reopened = flood.join().unwrap();
    // The flood did take the places while the answers were read.
    assert!(reopened > 0, "the flood was never closed");
    let scrape = Scrape::parse(&get(port, "/metrics", &[]).body);
    let shed = scrape.value(
        "tocsin_http_connections_shed_total",
        &[("reason", "idle_at_limit")],
    );
    assert!(shed > 0.0, "{shed} shed, {reopened} reopened");
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
}

/// With `[http] ops_addr` set, a second listener serves `/healthz`,
/// `/readyz` and `/metrics` (not the API) with connections of its own:
/// probes there answer while clients that ask and never read hold every
/// place of the main listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_listener_answers_probes_whatever_holds_the_main_one() {
    use std::io::Write;

    let world = World::sqlite("http-ops", Tuning::default()).await;
    let ops_port = common::free_port();
    let ops = format!("127.0.0.1:{ops_port}");
    let mut gateway = world.start(&[("TOCSIN_HTTP_OPS_ADDR", ops.as_str())]);
    gateway.wait_ready().await;
    // Every place of the main listener held by a client that asks for
    // scrapes and never reads them, more waiting in its backlog.
    let held: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", world.port)).unwrap();
            s.write_all(&b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200))
                .unwrap();
            s
        })
        .collect();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = get(ops_port, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    assert!(
        get(ops_port, "/metrics", &[])
            .body
            .contains("tocsin_http_connections_shed_total")
    );
    // The API is not served there.
    let r = get(ops_port, "/api/v1/alerts", &[]);
    assert_eq!(r.status, 404, "{}", r.body);
    drop(held);
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
    assert!(
        gateway.log().contains("[http] ops_addr"),
        "the second listener is said at start: {}",
        gateway.log()
    );
}

/// A client that pipelines requests and never reads the answers holds its
/// connection only until a write to it has made no progress for the write
/// timeout (30 s): then the connection is closed and counted. Before, it
/// held one of the listener's places for good, without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_once_writes_stall() {
    use std::io::{Read, Write};

    let world = World::sqlite("http-write-stall", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let one = get(world.port, "/metrics", &[]).body.len().max(1);
    // Answers enough to fill any loopback socket buffers several times.
    let requests = (64 << 20) / one + 1;
    let stream = std::net::TcpStream::connect(("127.0.0.1", world.port)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    // The requests may fill the buffers too once the gateway stops reading
    // them: sent from a thread, which the close ends.
    let sender = std::thread::spawn(move || {
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for _ in 0..requests {
            if writer.write_all(request).is_err() {
                break;
            }
        }
    });
    let port = world.port;
    poll("the stalled connection to be closed", WAIT, || async move {
        let scrape = Scrape::parse(&get(port, "/metrics", &[]).body);
        let stalled = scrape.value(
            "tocsin_http_connections_shed_total",
            &[("reason", "write_stalled")],
        );
        if stalled == 1.0 {
            Ok(())
        } else {
            Err(format!("{stalled} write_stalled"))
        }
    })
    .await;
    // Closed by the gateway: what it had written drains, then the end (or a
    // reset, for requests it never read).
    let mut stream = stream;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset,
            "the connection is still open after {} bytes: {e}",
            sink.len()
        ),
    }
    sender.join().unwrap();
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
}
