//! The deploy assets, checked with the tools that exist here: promtool
//! (rules, rule unit tests, scrape configuration, and `/metrics` of a real
//! gateway), amtool, systemd-analyze; the Grafana dashboard and the rules
//! against a real scrape; the compose file and Dockerfile for consistency.
//! No Docker engine runs here, so the image is not built and the compose
//! file not started (see deploy/README.md).

mod common;
mod observability_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Tuning, WAIT, World, poll};
use observability_support::traffic::ward;
use observability_support::{Scrape, assert_promtool_ok, get, repo, run_promtool};
use serde_json::Value;

fn deploy(rel: &str) -> PathBuf {
    repo().join("deploy").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// A tool these tests need: fail, not skip, when it is missing.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} is not installed; install Debian's `{package}` (scripts/test.sh does)")
        })
}

/// Names after `- alert:` in the rules file.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

/// `tocsin_*` metric names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("tocsin_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if before_ok {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn alerting_rules_pass_promtool_and_every_alert_has_a_unit_test() {
    let out = run_promtool(&["check", "rules", "deploy/prometheus/alerts.yml"], None);
    assert_promtool_ok("check rules", &out);
    let out = run_promtool(
        &["test", "rules", "deploy/prometheus/alerts.test.yml"],
        None,
    );
    assert_promtool_ok("test rules", &out);

    let names = alert_names(&read("prometheus/alerts.yml"));
    for required in [
        "TocsinDischargeSummariesOverdue",
        "TocsinClinicLettersOverdue",
        "TocsinGatewayDown",
        "TocsinInputLagging",
        "TocsinDeadLettersGrowing",
        "TocsinBrokerDisconnected",
    ] {
        assert!(names.iter().any(|n| n == required), "no {required} rule");
    }
    let tests = read("prometheus/alerts.test.yml");
    for n in &names {
        // Shown firing: a test case for it with expected alerts.
        let firing = tests.split("alertname: ").skip(1).any(|case| {
            case.starts_with(&format!("{n}\n"))
                && case
                    .lines()
                    .nth(1)
                    .is_some_and(|l| l.trim() == "exp_alerts:")
        });
        assert!(firing, "{n} is never shown firing in alerts.test.yml");
    }
}

#[test]
fn scrape_configuration_passes_promtool_and_matches_the_rules() {
    let out = run_promtool(
        &["check", "config", "deploy/prometheus/prometheus.yml"],
        None,
    );
    assert_promtool_ok("check config", &out);
    let config = read("prometheus/prometheus.yml");
    assert!(config.contains("job_name: tocsin"));
    assert!(config.contains("metrics_path: /metrics"));
    // The gateway-down rule names the job the configuration scrapes.
    assert!(read("prometheus/alerts.yml").contains("up{job=\"tocsin\"}"));
}

#[test]
fn alertmanager_configuration_passes_amtool() {
    let out = Command::new(tool("amtool", "prometheus-alertmanager"))
        .args(["check-config"])
        .arg(deploy("alertmanager/alertmanager.yml"))
        .output()
        .expect("run amtool");
    assert!(
        out.status.success(),
        "amtool check-config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // tocsin's own alerts, which carry no team label, reach the clinical
    // teams; the integration team's go to operations.
    for (labels, receiver) in [
        (
            &[
                "alertname=TocsinDocumentOverdue",
                "document_kind=clinic_letter",
            ][..],
            "clinical-systems",
        ),
        (&["alertname=TocsinDeliveryFailed"][..], "clinical-systems"),
        (
            &["alertname=TocsinStoreDown", "team=integration"][..],
            "operations",
        ),
    ] {
        let out = Command::new(tool("amtool", "prometheus-alertmanager"))
            .args(["config", "routes", "test", "--config.file"])
            .arg(deploy("alertmanager/alertmanager.yml"))
            .args(labels)
            .output()
            .expect("run amtool");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            receiver,
            "{labels:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Routes match the team labels the rules set.
    let am = read("alertmanager/alertmanager.yml");
    for team in ["clinical-systems", "integration"] {
        assert!(read("prometheus/alerts.yml").contains(&format!("team: {team}")));
        if team != "integration" {
            assert!(
                am.contains(&format!("team=\"{team}\"")),
                "{team} not routed"
            );
        }
    }
}

/// A running gateway's `/metrics` after real traffic: promtool accepts it,
/// and every metric the dashboard and the rules query is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_query_only_metrics_a_real_gateway_exports() {
    let world = World::sqlite("deploy-scrape", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let w = ward("D");
    let messages: Vec<_> = w
        .messages
        .iter()
        .map(|m| common::input(&m.id, m.content_type, m.body.clone()))
        .collect();
    world.publish(&messages).await;
    let port = world.port;
    let total = messages.len() as f64;
    let scrape = poll("the traffic to be processed", WAIT, || async {
        let s = Scrape::parse(&get(port, "/metrics", &[]).body);
        let received = s.sum("tocsin_messages_received_total", &[]);
        let committed = s.committed_inputs();
        if received == total
            && committed == total
            && s.sum("tocsin_expectations_overdue", &[]) == 1.0
        {
            Ok(s)
        } else {
            Err(format!("{received} received, {committed} committed"))
        }
    })
    .await;

    let out = run_promtool(&["check", "metrics"], Some(&scrape.text));
    assert_promtool_ok("check metrics", &out);
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics complains: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let exported: BTreeSet<String> = scrape.samples.iter().map(|s| s.name.clone()).collect();
    let dashboard: Value = serde_json::from_str(&read("grafana/dashboards/tocsin.json"))
        .expect("the dashboard is JSON");
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 15, "{exprs:?}");
    let mut queried = BTreeSet::new();
    for e in &exprs {
        queried.extend(metric_names(e));
    }
    queried.extend(metric_names(&read("prometheus/alerts.yml")));
    // Exported, series by subscriber, only by a gateway with [[webhooks]]
    // (this one has none): tocsin-delivery's own tests check its series.
    const WITH_WEBHOOKS: [&str; 3] = [
        "tocsin_webhook_deliveries_total",
        "tocsin_webhook_pending",
        "tocsin_webhook_oldest_pending_timestamp_seconds",
    ];
    for m in &queried {
        assert!(
            exported.contains(m) || WITH_WEBHOOKS.contains(&m.as_str()),
            "{m} is queried but the gateway does not export it"
        );
    }
    // The dashboard covers what the issue asks for.
    let titles: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str().map(str::to_lowercase))
        .collect();
    for topic in [
        "received", "open", "overdue", "on time", "delay", "alerts", "lag",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }
    promql_parses(&exprs);
}

/// Every query of every panel.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        if p["type"] == "row" {
            continue;
        }
        assert!(
            p["gridPos"].is_object(),
            "panel {} has no position",
            p["title"]
        );
        for t in p["targets"].as_array().expect("targets") {
            assert!(t["refId"].is_string());
            out.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    out
}

/// promtool parses each dashboard query, as recording rules with Grafana's
/// variables filled in.
fn promql_parses(exprs: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__range", "1h")
            .replace("$job", ".*")
            .replace('\'', "''");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: '{e}'\n"
        ));
    }
    let path = dir.path().join("dashboard-queries.yml");
    std::fs::write(&path, rules).unwrap();
    let out = run_promtool(&["check", "rules", path.to_str().unwrap()], None);
    assert_promtool_ok("check rules (dashboard queries)", &out);
}

/// The compose file as JSON (read with Python's YAML parser: no Docker
/// engine, and no `docker compose`, here).
fn compose() -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(deploy("compose.yaml"))
        .output()
        .expect("run python3 (with PyYAML) to read deploy/compose.yaml");
    assert!(
        out.status.success(),
        "reading deploy/compose.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python3")
}

#[test]
fn compose_wires_the_six_services_together() {
    let c = compose();
    let services = c["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "rabbitmq",
            "postgres",
            "tocsin",
            "prometheus",
            "alertmanager",
            "grafana"
        ])
    );
    let tocsin = &services["tocsin"];
    for dep in ["rabbitmq", "postgres"] {
        assert_eq!(tocsin["depends_on"][dep]["condition"], "service_healthy");
        assert!(
            services[dep]["healthcheck"].is_object(),
            "{dep} healthcheck"
        );
    }
    let env = &tocsin["environment"];
    assert!(
        env["TOCSIN_AMQP_URL"]
            .as_str()
            .unwrap()
            .contains("@rabbitmq:5672/")
    );
    assert!(
        env["TOCSIN_STORE_URL"]
            .as_str()
            .unwrap()
            .contains("@postgres:5432/")
    );
    // Alertmanager is told of overdue documents and failed deliveries: the
    // image's configuration names none, so the environment does.
    let port = services["alertmanager"]["ports"][0].as_str().unwrap();
    assert!(port.ends_with(":9093"), "{port}");
    assert_eq!(env["TOCSIN_ALERTMANAGER_URL"], "http://alertmanager:9093");
    // The API serves NHS numbers: compose refuses to start without a token
    // (`${VAR:?message}`), and publishes the port on loopback only.
    assert!(
        env["TOCSIN_API_TOKEN"]
            .as_str()
            .unwrap()
            .starts_with("${TOCSIN_API_TOKEN:?"),
        "{env:?}"
    );
    assert_eq!(tocsin["ports"], serde_json::json!(["127.0.0.1:9860:9860"]));
    // So is every other service's: the broker's management UI shows message
    // bodies (patient data), and the passwords here are for a laptop.
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(port.starts_with("127.0.0.1:"), "{name} publishes {port}");
        }
    }
    let addr = env["TOCSIN_HTTP_ADDR"].as_str().unwrap();
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(tocsin["build"]["dockerfile"], "deploy/Dockerfile");
    // Prometheus scrapes tocsin where compose puts it, and alerts go to
    // the Alertmanager service.
    let prom = read("prometheus/prometheus.yml");
    assert!(
        prom.contains(&format!("\"tocsin:{port}\"")),
        "scrape target"
    );
    assert!(prom.contains("\"alertmanager:9093\""));
    assert!(
        read("grafana/provisioning/datasources/prometheus.yml").contains("http://prometheus:9090")
    );
    // Every file mounted from the repository exists.
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let v = v.as_str().unwrap();
            if let Some(rel) = v.strip_prefix("./") {
                let src = rel.split(':').next().unwrap();
                assert!(deploy(src).exists(), "{name} mounts missing deploy/{src}");
            }
        }
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_copies_what_exists() {
    let text = read("Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    // The builder's toolchain is the workspace's rust-version.
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        froms[0].contains(&format!("rust:{version}")),
        "{}",
        froms[0]
    );
    // The last stage runs as a numeric non-root user.
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    let user = last_stage
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric uid");
    assert_ne!(uid, 0);
    assert!(last_stage.contains("COPY --from=builder"));
    assert!(text.contains("EXPOSE 9860"));
    // Everything the build copies from the context exists and is let
    // through by the context filter.
    let ignore = read("Dockerfile.dockerignore");
    for l in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(repo().join(src).exists(), "COPY {src}: missing");
            let keep = format!("!{}", src.trim_end_matches('/'));
            assert!(
                ignore.lines().any(|i| i.trim_end_matches('/') == keep),
                "{src} is filtered out of the build context"
            );
        }
    }
}

#[test]
fn systemd_unit_verifies_and_its_commands_run() {
    let analyze = tool("systemd-analyze", "systemd");
    let bin = env!("CARGO_BIN_EXE_tocsin");
    let dir = tempfile::tempdir().unwrap();
    // The unit as installed, pointed at the binary just built.
    let unit = read("systemd/tocsin.service").replace("/usr/local/bin/tocsin", bin);
    let path = dir.path().join("tocsin.service");
    std::fs::write(&path, &unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    // ExecStartPre's command, against the checked-in configuration.
    let pre = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStartPre="))
        .expect("ExecStartPre");
    let args: Vec<&str> = pre.split_whitespace().collect();
    let config: &Path = &repo().join("config/tocsin.toml");
    let args: Vec<String> = args[1..]
        .iter()
        .map(|a| {
            if *a == "/etc/tocsin/tocsin.toml" {
                config.display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let out = Command::new(args_bin(pre))
        .args(&args)
        .output()
        .expect("run ExecStartPre");
    assert!(
        out.status.success(),
        "{pre}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn args_bin(cmd: &str) -> &str {
    cmd.split_whitespace().next().unwrap()
}
