//! The command line as a user meets it: `tocsin normalise`, `tocsin replay`
//! and `tocsin check-config`, run as real processes on the project's
//! fixtures.

use serde_json::Value;
use std::process::Command;

mod cli_support;

use cli_support::{
    assert_private, fixture, replay_json, replay_json_exiting, root, shipped_config,
    shipped_config_with_policy, tocsin,
};

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn normalise_prints_one_json_line_per_event_and_exits_0() {
    let a03 = fixture("hl7/adt_a03_discharge.hl7");
    let several = fixture("hl7/framing_several_messages.hl7");
    let out = tocsin(&[
        "normalise",
        a03.to_str().unwrap(),
        several.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&out.stdout);
    assert!(events.len() >= 3);
    assert_eq!(events[0]["type"], "encounter_ended");
    assert_eq!(events[0]["source"]["message_id"], "MSG-A03");
    assert!(out.stderr.is_empty());
    // Deterministic: the same input gives the same ids.
    let again = json_lines(&tocsin(&["normalise", a03.to_str().unwrap()]).stdout);
    assert_eq!(again[0]["event_id"], events[0]["event_id"]);
}

#[test]
fn normalise_reports_rejections_on_stderr_keeps_going_and_exits_1() {
    let bad = fixture("hl7/reject_truncated_msh.hl7");
    let good = fixture("hl7/adt_a03_discharge.hl7");
    let json = fixture("fhir/r4/encounter-finished-inpatient.json");
    let out = tocsin(&[
        "normalise",
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let events = json_lines(&out.stdout);
    assert_eq!(
        events.len(),
        2,
        "the inputs after the bad one still normalise"
    );
    assert_eq!(events[1]["source"]["format"], "fhir-r4");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("reject_truncated_msh.hl7: message 1 (byte 0): "),
        "{stderr}"
    );
    assert!(stderr.contains("MSH"), "{stderr}");
}

#[test]
fn normalise_usage_errors_exit_2() {
    assert_eq!(tocsin(&["normalise"]).status.code(), Some(2));
    assert_eq!(
        tocsin(&["normalise", "--no-such-flag", "x"]).status.code(),
        Some(2)
    );
    let missing = tocsin(&["normalise", "/nonexistent/file.hl7"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/file.hl7"));
}

#[test]
fn normalise_reads_directories_in_file_name_order() {
    let out = tocsin(&["normalise", fixture("scenarios/late").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let types: Vec<String> = json_lines(&out.stdout)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["encounter_ended", "document_issued"]);
}

#[test]
fn check_config_accepts_the_shipped_configuration_and_names_the_line_of_a_bad_one() {
    let ok = tocsin(&["check-config", "--config", "config/tocsin.toml"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("tocsin.toml");
    let text = shipped_config();
    std::fs::write(
        &bad,
        format!("{text}\n[ingest]\nmax_input_bytes = \"lots\"\n"),
    )
    .unwrap();
    let out = tocsin(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tocsin.toml") && stderr.contains("line"),
        "{stderr}"
    );
    // Numbers that parse but can never work are refused, each named.
    for (from, to, says) in [
        (
            "max_input_bytes = 67108864",
            "max_input_bytes = 0",
            "[ingest] max_input_bytes must be at least 1",
        ),
        (
            "api_max_limit = 1000",
            "api_max_limit = 0",
            "[http] api_max_limit must be at least 1",
        ),
        (
            "duplicate_horizon = \"30d\"",
            "duplicate_horizon = \"0s\"",
            "[tracker] duplicate_horizon (0s) must be at least allowed_lateness (5m)",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let edited = text.replace(from, to);
        std::fs::write(&bad, &edited).unwrap();
        let out = tocsin(&["check-config", "--config", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{to}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{to}: {stderr}");
        // ... at the line of the key it names.
        let line = edited.lines().position(|l| l == to).unwrap() + 1;
        assert!(
            stderr.contains(&format!("tocsin.toml: line {line}: ")),
            "{to}: {stderr}"
        );
    }
    // A file it names that cannot be read is blamed on the key naming it.
    std::fs::write(
        &bad,
        text.replace(
            &format!("mappings = {:?}", root().join("config/mappings.toml")),
            "mappings = \"nope.toml\"",
        ),
    )
    .unwrap();
    let out = tocsin(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tocsin.toml: mappings = ") && stderr.contains("nope.toml"),
        "{stderr}"
    );
}

/// A mappings file is checked as tocsin.toml is: a syntax or type error is
/// told on one line naming the line and column (it quoted the source over
/// several lines, the prefix doubled), and a limit that refuses every
/// message is refused, naming the mappings file.
#[test]
fn check_config_refuses_mappings_that_cannot_work_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(root().join("config/mappings.toml")).unwrap();
    let mappings = dir.path().join("mappings.toml");
    let config = dir.path().join("tocsin.toml");
    std::fs::write(
        &config,
        shipped_config().replace(
            &format!("mappings = {:?}", root().join("config/mappings.toml")),
            &format!("mappings = {mappings:?}"),
        ),
    )
    .unwrap();
    for (from, to, says) in [
        (
            "max_message_bytes = 8388608",
            "max_message_bytes = 0",
            "[hl7] max_message_bytes must be at least 1",
        ),
        (
            "supported_versions = [\"2.3\", \"2.3.1\", \"2.4\", \"2.5\", \"2.5.1\", \"2.6\"]",
            "supported_versions = []",
            "[hl7] supported_versions is empty",
        ),
        (
            "max_resource_bytes = 8388608",
            "max_resource_bytes = 0",
            "[fhir] max_resource_bytes must be at least 1",
        ),
        (
            "xml_max_bytes = 16777216",
            "xml_max_bytes = 0",
            "[fhir] xml_max_bytes must be at least 1",
        ),
        ("I = \"inpatient\"", "I = inpatient", "line "),
    ] {
        assert!(shipped.contains(from), "{from}");
        std::fs::write(&mappings, shipped.replace(from, to)).unwrap();
        let out = tocsin(&["check-config", "--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{to}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("mappings.toml: ") && stderr.contains(says),
            "{to}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{to}: {stderr}");
        // Each names the line of the value at fault.
        let edited = shipped.replace(from, to);
        let line = edited.lines().position(|l| l == to).unwrap() + 1;
        assert!(stderr.contains(&format!("line {line}")), "{to}: {stderr}");
    }
}

/// Valid, but maybe not meant: a policy whose clinic-letter rule ends with
/// none after it, an exclusion of every outpatient (so the clinic-letter
/// rules can make nothing), and an HL7 zone other than the policy's.
/// check-config accepts it (exit 0) and says each; the shipped
/// configuration says nothing of the kind.
#[test]
fn check_config_notes_a_period_no_rule_covers_a_dead_rule_and_differing_zones() {
    let ok = tocsin(&["check-config", "--config", "config/tocsin.toml"]);
    assert!(!String::from_utf8_lossy(&ok.stderr).contains("note:"));
    let dir = tempfile::tempdir().unwrap();
    let policy =
        std::fs::read_to_string(root().join("config/policies/nhs-standard-contract.toml")).unwrap();
    let cut = "effective_from = 2019-04-01\n";
    assert!(policy.contains(cut), "the 7-day rule starts 1 April 2019");
    std::fs::write(
        dir.path().join("policy.toml"),
        policy.replacen(cut, &format!("{cut}effective_to = 2030-01-01\n"), 1)
            + "\n[[exclusion]]\nreason = \"no outpatients\"\nencounter_kinds = [\"outpatient\"]\n",
    )
    .unwrap();
    let mappings = std::fs::read_to_string(root().join("config/mappings.toml")).unwrap();
    let zone = "timezone = \"Europe/London\"";
    assert!(mappings.contains(zone));
    std::fs::write(
        dir.path().join("mappings.toml"),
        mappings.replacen(zone, "timezone = \"Europe/Dublin\"", 1),
    )
    .unwrap();
    let config = dir.path().join("tocsin.toml");
    let text = std::fs::read_to_string(root().join("config/tocsin.toml"))
        .unwrap()
        .replace(
            "policy = \"policies/nhs-standard-contract.toml\"",
            "policy = \"policy.toml\"",
        );
    std::fs::write(&config, text).unwrap();
    let out = tocsin(&["check-config", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "note: no rule expects a clinic_letter after outpatient encounters ending from 2030-01-01 on"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: the time zones differ ([hl7] timezone Europe/Dublin"),
        "{stderr}"
    );
    for rule in ["clinic-letter-14d", "clinic-letter-10d", "clinic-letter-7d"] {
        assert!(
            stderr.contains(&format!(
                "note: rule {rule} can create no expectation: every encounter kind it covers \
                 is excluded outright (exclusion \"no outpatients\")"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn check_config_refuses_a_store_url_or_log_level_that_can_never_work() {
    for (env, value, says) in [
        (
            "TOCSIN_STORE_URL",
            "mysql://tocsin:s3cret@db/tocsin",
            "[store] url",
        ),
        (
            "TOCSIN_STORE_URL",
            "sqlite://t.db?synchronous=sometimes",
            "synchronous",
        ),
        ("TOCSIN_LOG", "tocsin=[", "[log] level"),
        // A bare word that is no level names a target: nothing else, its
        // errors included, would be logged.
        ("TOCSIN_LOG", "warning", "`warning` is not a level"),
        ("TOCSIN_LOG", "info,infoo", "`infoo` is not a level"),
        ("TOCSIN_HTTP_ADDR", "localhost9860", "[http] addr"),
        ("TOCSIN_HTTP_ADDR", "127.0.0.1:http", "[http] addr"),
        ("TOCSIN_HTTP_OPS_ADDR", "localhost9861", "[http] ops_addr"),
        // The main listener's own address (the shipped file's).
        (
            "TOCSIN_HTTP_OPS_ADDR",
            "127.0.0.1:9860",
            "give it another port",
        ),
        (
            "TOCSIN_ALERTMANAGER_URL",
            "http://alertmanager:9093/api/v2/alerts",
            "[alertmanager] url",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["check-config", "--config", "config/tocsin.toml"])
            .current_dir(root())
            .env(env, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{value}: {stderr}");
        assert!(stderr.contains(says), "{value}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
        // The variable is blamed, not the file that does not hold it.
        assert!(
            stderr.contains(&format!(
                "{env} (environment, overriding config/tocsin.toml)"
            )),
            "{value}: {stderr}"
        );
    }
    // A good override is said, so no one wonders why the file's value is
    // not the one in force.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check-config", "--config", "config/tocsin.toml"])
        .current_dir(root())
        .env("TOCSIN_LOG", "warn")
        .env_remove("TOCSIN_AMQP_URL")
        .env_remove("TOCSIN_STORE_URL")
        .env_remove("TOCSIN_HTTP_ADDR")
        .env_remove("TOCSIN_EVENTS_PUBLISH")
        .env_remove("TOCSIN_EVENTS_FORMAT")
        .env("TOCSIN_ALERTMANAGER_URL", "http://alertmanager:9093")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configuration OK: config/tocsin.toml, with TOCSIN_LOG, TOCSIN_ALERTMANAGER_URL from the environment\n"
    );
}

/// A bulk export is read a piece at a time (the reader hands the tracker
/// at most 1,024 units at once, so that a million-line file is not held as
/// a million units' events): every line of a 2,500-line NDJSON file is
/// applied in order across the pieces, and each junk line is reported at
/// its own line number.
#[test]
fn replay_reads_a_bulk_export_across_pieces_in_order() {
    let template: Value = serde_json::from_slice(
        &std::fs::read(fixture("fhir/r4/encounter-finished-inpatient.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 1..=2500 {
        if [1, 1025, 2500].contains(&i) {
            lines.push(format!("not a resource ({i})"));
            continue;
        }
        let mut e = template.clone();
        e["id"] = Value::from(format!("enc-{i}"));
        e["identifier"][0]["value"] = Value::from(format!("VB{i:05}"));
        lines.push(e.to_string());
    }
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let events = dir.path().join("events.jsonl");
    let r = replay_json(
        &file,
        "2024-06-01T00:00:00Z",
        &["--events", events.to_str().unwrap()],
    );
    let rejected: Vec<(&str, &str)> = r.report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["position"].as_str().unwrap(),
                x["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            ("line 1", "malformed_json"),
            ("line 1025", "malformed_json"),
            ("line 2500", "malformed_json")
        ]
    );
    let visits: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["encounter"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (2..2500)
        .filter(|i| *i != 1025)
        .map(|i| format!("VB{i:05}"))
        .collect();
    assert_eq!(visits, want, "every line applied once, in order");
}

/// A listening port another process holds (an old gateway still stopping)
/// is worth a later start: exit 1, which the systemd unit restarts, not 2
/// (a configuration no restart mends, which it does not restart). A
/// listening address that cannot be parsed stays exit 2.
#[test]
fn run_exits_1_when_its_port_is_taken() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("s.sqlite").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["run", "--config", "config/tocsin.toml"])
        .current_dir(root())
        .env("TOCSIN_HTTP_ADDR", &addr)
        .env("TOCSIN_STORE_URL", &store)
        .env("TOCSIN_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(
        !dir.path().join("s.sqlite").exists(),
        "stopped before opening the store"
    );
}

/// A token pasted into `[http] api_token_env` instead of the name of the
/// variable holding it is refused by check-config, and not repeated: it
/// was accepted, and `run` then logged it at WARN as the name of an unset
/// variable.
#[test]
fn check_config_refuses_a_token_in_place_of_the_variable_name_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("config/tocsin.toml")).unwrap();
    let path = dir.path().join("tocsin.toml");
    for token in [
        "Zm9vYmFyLXNlY3JldC10b2tlbg==",
        "7f3c2a10-9b1e-4c55-a0f2-c0ffee123456",
    ] {
        let config = text
            .replace(
                "api_token_env = \"TOCSIN_API_TOKEN\"",
                &format!("api_token_env = \"{token}\""),
            )
            .replace(
                "mappings = \"mappings.toml\"",
                &format!("mappings = {:?}", root().join("config/mappings.toml")),
            )
            .replace(
                "policy = \"policies/",
                &format!("policy = \"{}/config/policies/", root().display()),
            );
        assert!(
            config.contains(token),
            "the shipped file names the variable"
        );
        std::fs::write(&path, config).unwrap();
        let out = tocsin(&["check-config", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("[http] api_token_env must name"),
            "{stderr}"
        );
        assert!(!stderr.contains(token), "{stderr}");
    }
}

/// Replays one scenario directory; returns the alerts, the JSON report and
/// stderr.
fn replay(scenario: &str, until: &str) -> (Vec<Value>, Value, String) {
    let r = replay_json(&fixture(&format!("scenarios/{scenario}")), until, &[]);
    (json_lines(r.alerts.as_bytes()), r.report, r.stderr)
}

fn kinds(alerts: &[Value]) -> Vec<&str> {
    alerts.iter().map(|a| a["kind"].as_str().unwrap()).collect()
}

fn only_row(report: &Value) -> &Value {
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    &rows[0]
}

#[test]
fn replay_on_time_summary_raises_nothing_and_counts_on_time() {
    let (alerts, report, _) = replay("on-time", "2024-06-01T00:00:00Z");
    assert!(alerts.is_empty(), "{alerts:?}");
    let row = only_row(&report);
    assert_eq!(
        (row["expected"].as_u64(), row["on_time"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(row["month"], "2024-01");
}

#[test]
fn replay_missing_summary_is_overdue_once_the_clock_passes_the_deadline() {
    let (alerts, report, _) = replay("missing", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue"]);
    assert_eq!(alerts[0]["deadline"], "2024-01-16T14:00:00Z");
    // Raised as of the deadline, not of --until: a live gateway would have
    // raised the same alert.
    assert_eq!(alerts[0]["raised_at"], "2024-01-16T14:00:00Z");
    assert_eq!(alerts[0]["rule"]["id"], "discharge-summary-24h");
    assert_eq!(alerts[0]["patient"]["nhs_number"], "9434765919");
    assert_eq!(only_row(&report)["missing"], 1);
    // Before the deadline nothing is due yet.
    let (alerts, _, _) = replay("missing", "2024-01-16T13:00:00Z");
    assert!(alerts.is_empty(), "{alerts:?}");
}

/// An alerts file that cannot be written (a full disk) fails the run with
/// the writer's own error, naming `--alerts` and the cause: the message
/// was "replay writer stopped", with no cause.
#[test]
fn replay_says_why_its_alerts_could_not_be_written() {
    // Enough discharges without a summary that the writer fails while the
    // tracker still sends to it (a few alerts fail only at the last flush,
    // which was always told).
    let a03 = std::fs::read_to_string(fixture("scenarios/missing/01-a03.hl7")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..400 {
        let one = a03
            .replace("|MS-1|", &format!("|MS-{i}|"))
            .replace("|V3^^^RXX^VN|", &format!("|V3-{i}^^^RXX^VN|"));
        assert_ne!(one, a03);
        std::fs::write(dir.path().join(format!("{i:03}.hl7")), one).unwrap();
    }
    let out = tocsin(&[
        "replay",
        "--until",
        "2024-06-01T00:00:00Z",
        "--alerts",
        "/dev/full",
        "--progress",
        "never",
        dir.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("No space left on device") && !stderr.contains("writer stopped"),
        "{stderr}"
    );
}

/// A file of thousands of junk units lists its first thousand, then one
/// entry counting the rest by reason: each was kept for the report (a
/// gzip of 4 million took 2 GB), while the run's total counts them all.
#[test]
fn replay_lists_a_files_first_thousand_rejections_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.hl7"), "MSH|\r".repeat(2_500)).unwrap();
    let run = replay_json(dir.path(), "2024-06-01T00:00:00Z", &[]);
    let rejected = run.report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1_001);
    let last = &rejected[1_000];
    assert_eq!(last["reason"], "more_rejected");
    // The count is in the position too, which the CSV report carries.
    assert_eq!(last["position"], "rest of file: 1500 more");
    let message = last["message"].as_str().unwrap();
    assert!(
        message.starts_with("1500 more rejected unit(s)"),
        "{message}"
    );
    assert!(
        rejected[..1_000]
            .iter()
            .all(|r| r["reason"] != "more_rejected")
    );
    assert!(
        run.stderr.contains("2500 rejected input(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.contains("junk.hl7"))
            .count(),
        1_001
    );
    // The table's heading counts the units, as stderr does, not the entries.
    let table = dir.path().join("report.txt");
    let out = tocsin(&[
        "replay",
        "--until",
        "2024-06-01T00:00:00Z",
        "--alerts",
        "/dev/null",
        "--report",
        table.to_str().unwrap(),
        "--format",
        "table",
        "--progress",
        "never",
        dir.path().join("junk.hl7").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let table = std::fs::read_to_string(&table).unwrap();
    assert!(table.contains("Rejected inputs (2500):"), "{table}");
}

/// While one input keeps the run waiting, a progress line names it every
/// few seconds (lines came only between files, so a slow or stuck file
/// looked like a hang). The input is a pipe whose writer holds back until
/// that line is seen.
#[test]
fn replay_progress_names_the_file_it_waits_for() {
    use std::io::{BufRead, Write};

    let dir = tempfile::tempdir().unwrap();
    let pipe = dir.path().join("slow.hl7");
    let made = Command::new("mkfifo").arg(&pipe).status().unwrap();
    assert!(made.success());
    // Read and write: a writer is there before the replay opens it.
    let mut writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pipe)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args([
            "replay",
            "--until",
            "2024-06-01T00:00:00Z",
            "--alerts",
            "/dev/null",
            "--progress",
            "always",
        ])
        .arg(&pipe)
        .current_dir(cli_support::root())
        .env_remove("TOCSIN_CONFIG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("reading") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "stderr ended first"
        );
    }
    assert!(line.contains("slow.hl7 for "), "{line}");
    let a03 = std::fs::read(fixture("scenarios/missing/01-a03.hl7")).unwrap();
    writer.write_all(&a03).unwrap();
    drop(writer);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("0 rejected input(s)"), "{rest}");
}

/// A file's name cannot forge a line of the run's stderr nor drive the
/// terminal: its control characters are escaped where it is named, as the
/// table report escapes them.
#[test]
fn a_file_name_with_a_line_feed_is_escaped_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let name = "junk\nforged: whole input: looks real\x1b[31m.hl7";
    std::fs::write(dir.path().join(name), "not a message").unwrap();
    for command in [
        vec!["normalise", dir.path().to_str().unwrap()],
        vec![
            "replay",
            "--until",
            "2024-06-01T00:00:00Z",
            "--alerts",
            "/dev/null",
            "--progress",
            "never",
            dir.path().to_str().unwrap(),
        ],
    ] {
        let out = tocsin(&command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("junk\\nforged"), "{stderr}");
        assert!(
            !stderr.lines().any(|l| l.starts_with("forged")) && !stderr.contains('\x1b'),
            "{stderr}"
        );
    }
}

#[test]
fn replay_late_summary_meets_the_overdue_already_raised_then_late_and_resolved() {
    let (alerts, report, _) = replay("late", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue", "late", "resolved"]);
    assert_eq!(alerts[1]["delay_seconds"], 158_400);
    assert_eq!(alerts[0]["raised_at"], "2024-01-16T14:00:00Z");
    assert_eq!(alerts[1]["raised_at"], "2024-01-17T10:00:00Z");
    assert_eq!(alerts[1]["document"]["id"], "DOC-LT");
    assert_eq!(alerts[1]["document"]["matched_by"], "encounter_id");
    assert_eq!(only_row(&report)["late"], 1);
}

/// A summary sent as an ORU result: preliminary (OBR-25 `P`) before the
/// deadline, final after it. The preliminary one is no transmission, so the
/// summary is late, not on time.
#[test]
fn replay_judges_a_result_letter_by_its_final_not_its_preliminary() {
    let (alerts, report, _) = replay("preliminary-result", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue", "late", "resolved"]);
    assert_eq!(alerts[1]["document"]["id"], "DOC-PR");
    assert_eq!(alerts[1]["raised_at"], "2024-01-17T10:00:00Z");
    let row = only_row(&report);
    assert_eq!(
        (row["late"].as_u64(), row["on_time"].as_u64()),
        (Some(1), Some(0))
    );
}

/// A visit renumbered after discharge (A50): the expectation follows the new
/// number, and the summary naming it matches by visit number, not by the
/// weaker patient-and-window fallback.
#[test]
fn replay_follows_a_renumbered_visit() {
    let (alerts, _, _) = replay("visit-renumbered", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue", "late", "resolved"]);
    assert_eq!(alerts[1]["encounter"]["id"], "V11B");
    assert_eq!(alerts[1]["document"]["matched_by"], "encounter_id");
}

/// `--until` takes a date too, meaning its midnight in the policy's time
/// zone (as the API's dates do): an auditor judging "as at 17 January".
#[test]
fn replay_until_a_date_is_its_midnight() {
    let (alerts, _, _) = replay("missing", "2024-01-16");
    assert!(alerts.is_empty(), "before the deadline: {alerts:?}");
    let (alerts, _, _) = replay("missing", "2024-01-17");
    assert_eq!(kinds(&alerts), ["overdue"]);
}

/// The report is as at `--until`: a summary sent after it had not been
/// sent by then, so the discharge is missing, not late, and the summary is
/// counted as `after_until` rather than applied.
#[test]
fn replay_judges_as_at_until_and_leaves_later_inputs_unapplied() {
    let (alerts, report, stderr) = replay("late", "2024-01-17T09:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue"]);
    let row = only_row(&report);
    assert_eq!(
        (row["missing"].as_u64(), row["late"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(report["notices"]["after_until"], 1, "{report}");
    assert!(stderr.contains("after_until=1"), "{stderr}");
}

/// Paths given out of time order (by site or format, not by period): the
/// later path's older traffic is stale when read and not applied. The
/// replay says so, with what to do, not only in the notice counts.
#[test]
fn replay_warns_when_inputs_out_of_time_order_were_not_applied() {
    // 2024's traffic first (the extra path goes before the input), then
    // 2018 to 2020's.
    let r = replay_json(
        &fixture("scenarios/clinic-letter-periods"),
        "2024-06-01T00:00:00Z",
        &[fixture("scenarios/cancelled").to_str().unwrap()],
    );
    assert!(
        r.report["notices"]["stale_event"].as_u64().unwrap() > 0,
        "{}",
        r.report
    );
    assert!(
        r.stderr.contains("replay: warning: ") && r.stderr.contains("in time order"),
        "{}",
        r.stderr
    );
    let r = replay_json(&fixture("scenarios/late"), "2024-06-01T00:00:00Z", &[]);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

#[test]
fn replay_into_a_kept_store_judges_alike_and_keeps_what_a_gateway_needs() {
    // Within the 30-day duplicate horizon, so the duplicate keys are kept.
    const UNTIL: &str = "2024-01-20T00:00:00Z";
    let (scratch_alerts, scratch_report, _) = replay("late", UNTIL);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kept.sqlite");
    let url = format!("sqlite://{}", db.display());
    let kept = replay_json(&fixture("scenarios/late"), UNTIL, &["--store", &url]);
    let kept_alerts = json_lines(kept.alerts.as_bytes());
    assert_eq!(
        kept_alerts, scratch_alerts,
        "the store does not change the judgement"
    );
    assert_eq!(kept.report, scratch_report);
    assert_eq!(kinds(&kept_alerts), ["overdue", "late", "resolved"]);
    // Built aside as `kept.sqlite.partial`, renamed once complete.
    assert!(db.exists());
    assert_private(&db);
    assert!(!dir.path().join("kept.sqlite.partial").exists());

    // The kept store holds the alerts and the tracker's state (a duplicate
    // key for each tracked message, one that remembers the settled
    // expectation and one its settling document), not only the
    // expectations.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM alerts"),
        kept_alerts.len() as i64
    );
    assert_eq!(count("SELECT count(*) FROM expectations"), 1);
    assert_eq!(
        count("SELECT count(*) FROM state WHERE namespace = 'seen'"),
        4
    );
    assert_eq!(
        count("SELECT count(*) FROM state WHERE namespace = 'clock'"),
        1
    );
}

#[test]
fn replay_of_generated_traffic_reports_alike_from_final_states_and_a_kept_store() {
    // The scratch store is given only each expectation's final state (the
    // unsettled ones at the end); a kept store every change as it happens.
    // Cut off while letters are still due, some overdue, some settled and
    // acknowledged, the two must report the same figures and alerts.
    let dir = tempfile::tempdir().unwrap();
    let traffic = dir.path().join("traffic");
    let out = tocsin(&[
        "loadgen",
        "--seed",
        "11",
        "--days",
        "6",
        "--discharges-per-day",
        "15",
        "--attendances-per-day",
        "25",
        "--late-share",
        "0.2",
        "--missing-share",
        "0.1",
        "--pack-seconds",
        "300",
        "--out",
        traffic.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second run into the same directory would mix its files with the
    // first's: refused, the first's left as they were.
    let files = std::fs::read_dir(&traffic).unwrap().count();
    let again = tocsin(&[
        "loadgen",
        "--seed",
        "12",
        "--days",
        "1",
        "--out",
        traffic.to_str().unwrap(),
    ]);
    assert_ne!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(std::fs::read_dir(&traffic).unwrap().count(), files);
    // A count too small to reach any encounter's end says so.
    let few = dir.path().join("few");
    let out = tocsin(&["loadgen", "--count", "50", "--out", few.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("encounters=0")
            && String::from_utf8_lossy(&out.stderr)
                .contains("none of the 50 message(s) ended an encounter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    const UNTIL: &str = "2025-01-12T12:00:00Z";
    let scratch = replay_json(&traffic, UNTIL, &[]);
    let built = dir.path().join("kept.sqlite");
    let url = format!("sqlite://{}", built.display());
    let kept = replay_json(&traffic, UNTIL, &["--store", &url]);
    assert_eq!(kept.report, scratch.report);
    assert_eq!(kept.alerts, scratch.alerts);

    // A new store is built aside, from final states only; an existing one
    // takes every change in place. Both must end holding the same rows.
    let existing = dir.path().join("existing.sqlite");
    let existing_url = format!("sqlite://{}", existing.display());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    replay_json(&empty, "2024-01-01T00:00:00Z", &["--store", &existing_url]);
    let in_place = replay_json(&traffic, UNTIL, &["--store", &existing_url]);
    // The store's clock stood a year before the traffic: its first event
    // was held until the second confirmed the jump, and said so.
    let mut report = in_place.report.clone();
    assert_eq!(report["notices"]["clock_jump_held"], 1, "{report}");
    report["notices"]["clock_jump_held"] = 0.into();
    assert_eq!(report, scratch.report);
    assert_eq!(in_place.alerts, scratch.alerts);
    let rows = |db: &std::path::Path, sql: &str| -> Vec<Vec<String>> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut st = conn.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    for sql in [
        "SELECT * FROM expectations ORDER BY id",
        "SELECT * FROM alerts ORDER BY alert_id",
        "SELECT * FROM state ORDER BY namespace, key",
    ] {
        let (a, b) = (rows(&built, sql), rows(&existing, sql));
        assert!(!a.is_empty(), "{sql}: nothing stored");
        assert_eq!(a, b, "{sql}");
    }
    // Cut off within the horizons: duplicate keys and transmissions
    // awaiting acknowledgement are still held.
    let namespaces = rows(&built, "SELECT DISTINCT namespace FROM state ORDER BY 1");
    for ns in ["clock", "seen", "transmission"] {
        assert!(
            namespaces.iter().any(|r| r[0] == format!("Text({ns:?})")),
            "{ns} in {namespaces:?}"
        );
    }
    let total = |field: &str| -> u64 {
        scratch.report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[field].as_u64().unwrap())
            .sum()
    };
    for field in ["on_time", "late", "missing", "pending", "delivery_failed"] {
        assert!(total(field) > 0, "no {field} in {}", scratch.report);
    }
    assert!(kinds(&json_lines(scratch.alerts.as_bytes())).contains(&"resolved"));

    // By every dimension, asked in another order: the same rows in memory
    // and from a kept store's columns, every row grouped by all six, and
    // the figures adding up to the usual report's.
    let every = [
        "--group-by",
        "gp_practice,specialty,site,encounter_kind,document_kind,month",
    ];
    let scratch_all = replay_json(&traffic, UNTIL, &every);
    let all_store = dir.path().join("all.sqlite");
    let all_url = format!("sqlite://{}", all_store.display());
    let kept_all = replay_json(
        &traffic,
        UNTIL,
        &[&every[..], &["--store", &all_url]].concat(),
    );
    assert_eq!(kept_all.report, scratch_all.report);
    let rows = scratch_all.report["rows"].as_array().unwrap();
    for row in rows {
        for dimension in [
            "month",
            "document_kind",
            "encounter_kind",
            "site",
            "specialty",
            "gp_practice",
        ] {
            assert!(row[dimension].is_string(), "{dimension} in {row}");
        }
    }
    let distinct = |field: &str| -> std::collections::BTreeSet<&str> {
        rows.iter().map(|r| r[field].as_str().unwrap()).collect()
    };
    assert!(
        distinct("gp_practice").len() > 1,
        "{:?}",
        distinct("gp_practice")
    );
    assert!(
        distinct("specialty").len() > 1,
        "{:?}",
        distinct("specialty")
    );
    assert!(!distinct("gp_practice").contains("(none)"));
    for field in [
        "expected",
        "on_time",
        "late",
        "missing",
        "pending",
        "cancelled",
    ] {
        let sum = |report: &Value| -> u64 {
            report["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[field].as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum(&scratch_all.report), sum(&scratch.report), "{field}");
    }
}

#[test]
fn replay_cancelled_discharge_raises_nothing() {
    let (alerts, report, _) = replay("cancelled", "2024-06-01T00:00:00Z");
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(only_row(&report)["cancelled"], 1);
}

#[test]
fn replay_judges_clinic_letters_by_the_rule_in_force_at_the_attendance() {
    // Letters 9 days after attendances: within 14 days (2018), 10 days
    // (2019), but not 7 days (2020).
    let (alerts, report, _) = replay("clinic-letter-periods", "2024-06-01T00:00:00Z");
    let rows = report["rows"].as_array().unwrap();
    let by_month: Vec<(String, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["month"].as_str().unwrap().to_string(),
                r["on_time"].as_u64().unwrap(),
                r["late"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_month,
        [
            ("2018-03".to_string(), 1, 0),
            ("2019-03".to_string(), 1, 0),
            ("2020-03".to_string(), 0, 1)
        ]
    );
    assert!(
        alerts.iter().all(|a| a["encounter"]["id"] == "OP2020"),
        "{alerts:?}"
    );
    assert_eq!(kinds(&alerts), ["overdue", "late", "resolved"]);
}

#[test]
fn replay_counts_24_real_hours_across_the_change_to_summer_time() {
    // Discharge 12:00 GMT on 30 March 2024; the summary at 12:30 BST on 31
    // March is 23.5 real hours later: on time.
    let (alerts, report, _) = replay("summer-time", "2024-06-01T00:00:00Z");
    assert!(alerts.is_empty(), "{alerts:?}");
    let row = only_row(&report);
    assert_eq!(row["on_time"], 1);
    assert_eq!(row["median_delay_seconds"], 84_600);
}

#[test]
fn replay_settles_an_hl7_discharge_with_a_fhir_document() {
    let (alerts, report, _) = replay("hl7-discharge-fhir-document", "2024-06-01T00:00:00Z");
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(only_row(&report)["on_time"], 1);
}

#[test]
fn replay_reports_junk_and_carries_on() {
    let (alerts, report, stderr) = replay("junk-in-the-middle", "2024-06-01T00:00:00Z");
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(only_row(&report)["on_time"], 1);
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("02-junk.hl7")
    );
    assert_eq!(rejected[0]["reason"], "unrecognised_format");
    assert!(stderr.contains("02-junk.hl7"), "{stderr}");
}

#[test]
fn replay_reads_each_file_once_says_what_it_passed_over_and_lists_an_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let year = archive.join("2024");
    std::fs::create_dir_all(&year).unwrap();
    for name in ["01-a03.hl7", "02-mdm.hl7"] {
        std::fs::copy(fixture(&format!("scenarios/late/{name}")), year.join(name)).unwrap();
    }
    // A file removed after it was linked: found, and cannot be read.
    std::os::unix::fs::symlink(year.join("gone.hl7"), year.join("03-gone.hl7")).unwrap();
    // What an archive collects besides messages.
    std::fs::write(year.join(".DS_Store"), b"\0\0\0\x01Bud1").unwrap();
    std::os::unix::fs::symlink("..", year.join("loop")).unwrap();
    std::os::unix::fs::symlink("2024", archive.join("current")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(year.join("ctl.sock")).unwrap();
    // The last run's alerts, kept in the archive and written again now.
    let alerts = archive.join("alerts.jsonl");
    std::fs::write(&alerts, b"{\"not\": \"an input\"}\n").unwrap();
    let report = dir.path().join("report.json");

    let out = tocsin(&[
        "replay",
        "--until",
        "2024-06-01T00:00:00Z",
        "--alerts",
        alerts.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--format",
        "json",
        archive.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The run finished and said a file could not be read.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 file(s) could not be read"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{report}");
    assert_eq!(rejected[0]["reason"], "unreadable");
    assert!(
        rejected[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("2024/03-gone.hl7"),
        "{report}"
    );
    // The rest was judged as the scenario alone is, each file once: the
    // links to the year read nothing twice.
    let alerts = json_lines(&std::fs::read(&alerts).unwrap());
    assert_eq!(kinds(&alerts), ["overdue", "late", "resolved"]);
    assert_eq!(report["notices"]["duplicate"], 0, "{report}");
    assert_eq!(only_row(&report)["late"], 1, "{report}");
    // Everything passed over is said.
    for said in [
        "replay: skipped 1 hidden entry (names starting with '.')",
        "2024/loop: already read by another path",
        "archive/current: already read by another path",
        "2024/ctl.sock: not a regular file",
        "archive/alerts.jsonl: an output of this run",
    ] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
    // ...and listed in the report, each with its reason.
    let mut skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let path = k["path"].as_str().unwrap();
            let under = path.strip_prefix(archive.to_str().unwrap()).unwrap();
            (under.to_string(), k["reason"].as_str().unwrap().to_string())
        })
        .collect();
    skipped.sort();
    let expected = [
        ("/2024/.DS_Store", "hidden"),
        ("/2024/ctl.sock", "not_a_file"),
        ("/2024/loop", "already_read"),
        ("/alerts.jsonl", "output"),
        ("/current", "already_read"),
    ];
    assert_eq!(
        skipped,
        expected.map(|(p, r)| (p.to_string(), r.to_string())),
        "{report}"
    );
}

/// `bytes` as one gzip member.
fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn replay_reads_gzip_archives_as_the_files_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let a03 = std::fs::read(fixture("scenarios/late/01-a03.hl7")).unwrap();
    let mdm = std::fs::read(fixture("scenarios/late/02-mdm.hl7")).unwrap();
    std::fs::write(archive.join("01-a03.hl7.gz"), gz(&a03)).unwrap();
    // Two members, as `cat a.gz b.gz` makes, then the NUL padding a tape
    // or backup tool leaves, under an upper-case ending: read as one file,
    // as zcat reads it.
    let (first, second) = mdm.split_at(mdm.len() / 2);
    let padded = [gz(first), gz(second), vec![0; 512]].concat();
    std::fs::write(archive.join("02-mdm.hl7.GZ"), padded).unwrap();
    let packed = replay_json(&archive, "2024-06-01T00:00:00Z", &[]);
    let plain = replay_json(&fixture("scenarios/late"), "2024-06-01T00:00:00Z", &[]);
    assert_eq!(
        kinds(&json_lines(packed.alerts.as_bytes())),
        ["overdue", "late", "resolved"]
    );
    assert_eq!(packed.alerts, plain.alerts);
    assert_eq!(packed.report["rows"], plain.report["rows"]);

    // A corrupt one is listed, not the end of the run.
    let mut cut = gz(&a03);
    cut.truncate(cut.len() / 2);
    std::fs::write(archive.join("03-cut.hl7.gz"), cut).unwrap();
    let report = replay_json_exiting(1, &archive, "2024-06-01T00:00:00Z", &[]).report;
    let rejected = &report["rejected"][0];
    assert_eq!(rejected["reason"], "unreadable", "{report}");
    assert!(
        rejected["message"].as_str().unwrap().contains("gzip"),
        "{report}"
    );
    assert_eq!(report["rows"], plain.report["rows"]);
}

/// An archive cut short (a copy interrupted, a disk filled) gives up only
/// what it lost: the discharges before the cut are judged, and the cut is
/// listed as unreadable (exit 1). Refused whole, a year's archive cut in
/// its last block lost every message it held. `send` still refuses it
/// whole, and `normalise` says the cut after the events it could read.
#[test]
fn a_cut_gzip_archive_gives_the_messages_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let a03 = std::fs::read(fixture("scenarios/late/01-a03.hl7")).unwrap();
    let mdm = std::fs::read(fixture("scenarios/late/02-mdm.hl7")).unwrap();
    // As `cat` of two archives makes it, the second cut in its last bytes.
    let mut cut = [gz(&a03), gz(&mdm)].concat();
    cut.truncate(cut.len() - 12);
    std::fs::write(archive.join("late.hl7.gz"), cut).unwrap();
    let run = replay_json_exiting(1, &archive, "2024-06-01T00:00:00Z", &[]);
    // The discharge was read; its summary, lost in the cut, never came.
    let alerts = json_lines(run.alerts.as_bytes());
    assert_eq!(kinds(&alerts), ["overdue"], "{}", run.stderr);
    let rejected = run.report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{}", run.report);
    assert_eq!(rejected[0]["reason"], "unreadable");
    assert_eq!(rejected[0]["position"], "rest of file");
    let message = rejected[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("from byte {} on is lost", a03.len())),
        "{message}"
    );

    let out = tocsin(&["normalise", archive.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(json_lines(&out.stdout).len(), 1, "{stderr}");
    assert!(
        stderr.contains("late.hl7.gz: cannot read: gzip: "),
        "{stderr}"
    );

    let out = tocsin(&["send", archive.join("late.hl7.gz").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cannot read: gzip: "), "{stderr}");
}

/// A directory under an archive that cannot be listed is reported as
/// unreadable and everything else is read (exit 1), by `normalise` and
/// `replay` alike: it used to stop the run before anything was read. Run
/// as root (who reads any directory), the command runs without the
/// capabilities that let it.
#[test]
fn a_directory_that_cannot_be_listed_is_reported_and_the_rest_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(archive.join("a")).unwrap();
    std::fs::create_dir_all(archive.join("b")).unwrap();
    std::fs::copy(
        fixture("scenarios/late/01-a03.hl7"),
        archive.join("a/01-a03.hl7"),
    )
    .unwrap();
    std::fs::set_permissions(archive.join("b"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = if root.trim() == "0" {
            let mut c = Command::new("setpriv");
            c.args(["--bounding-set", "-dac_override,-dac_read_search"])
                .arg(env!("CARGO_BIN_EXE_tocsin"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_tocsin"))
        };
        cmd.args(args).env_remove("TOCSIN_CONFIG").output().unwrap()
    };
    let arch = archive.to_str().unwrap();
    let out = run(&["normalise", arch]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(json_lines(&out.stdout).len(), 1, "{stderr}");
    assert!(stderr.contains("b: cannot read the directory"), "{stderr}");

    let alerts = dir.path().join("a.jsonl");
    let report = dir.path().join("r.json");
    let out = run(&[
        "replay",
        "--until",
        "2024-06-01T00:00:00Z",
        "--alerts",
        alerts.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--format",
        "json",
        arch,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["rejected"][0]["reason"], "unreadable", "{report}");
    assert!(
        report["rejected"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("b"),
        "{report}"
    );
    assert_eq!(report["rows"][0]["missing"], 1, "{report}");
    std::fs::set_permissions(archive.join("b"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn replay_prints_progress_when_asked_and_not_into_a_pipe_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let r = replay_json(
        &fixture("scenarios/junk-in-the-middle"),
        "2024-06-01T00:00:00Z",
        &["--progress", "always", "--events", events.to_str().unwrap()],
    );
    let applied = std::fs::read_to_string(&events).unwrap().lines().count();
    assert!(applied >= 2, "the discharge and its summary");
    // Once the input is read (a run this short prints no earlier line):
    // every file, every event applied, the junk file rejected.
    let want = format!(
        "replay: read 3 of 3 file(s), {applied} event(s), 1 rejected input(s), clock at 20"
    );
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("replay: read "))
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(lines[0].starts_with(&want), "{}", r.stderr);
    assert!(lines[0].ends_with(" event(s) a second"), "{}", r.stderr);

    // stderr is a pipe here: `auto` prints none.
    let (_, _, stderr) = replay("junk-in-the-middle", "2024-06-01T00:00:00Z");
    assert!(!stderr.contains("replay: read "), "{stderr}");
    assert!(stderr.contains("02-junk.hl7"), "{stderr}");
}

#[test]
fn replay_ignores_exact_duplicates() {
    let (alerts, report, stderr) = replay("duplicates", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue", "late", "resolved"]);
    // Ignored, and said so: the report and the summary count them.
    assert_eq!(report["notices"]["duplicate"], 2, "{report}");
    assert_eq!(report["notices"]["stale_event"], 0, "{report}");
    assert!(
        stderr.contains("replay: tracker notices: duplicate=2\n"),
        "{stderr}"
    );
    let (_, on_time, stderr) = replay("on-time", "2024-06-01T00:00:00Z");
    assert_eq!(on_time["notices"]["duplicate"], 0, "{on_time}");
    assert!(!stderr.contains("tracker notices"), "{stderr}");
}

/// A discharge cancelled after its summary went overdue: `overdue`, then
/// `cancelled` at the A13's time, and the report counts it cancelled.
#[test]
fn replay_raises_cancelled_for_a_discharge_withdrawn_after_overdue() {
    let (alerts, report, _) = replay("cancelled-after-overdue", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue", "cancelled"]);
    assert_eq!(alerts[1]["raised_at"], "2024-01-17T09:00:00Z");
    assert_eq!(alerts[1]["document"], serde_json::Value::Null);
    assert_eq!(only_row(&report)["cancelled"], 1);
}

#[test]
fn replay_raises_delivery_failed_when_the_gp_system_refuses() {
    let (alerts, report, _) = replay("delivery-failure", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["delivery_failed"]);
    // Sent on time, and counted so, but not received.
    assert_eq!(only_row(&report)["on_time"], 1);
    assert_eq!(only_row(&report)["delivery_failed"], 1);
}

/// Refused, sent again by the engine under a new message id and accepted:
/// one `delivery_failed`, the resend counted as such (not a repeat), and
/// its acceptance reaches it (no unmatched acknowledgement).
#[test]
fn replay_takes_a_summary_sent_again_after_a_refusal_as_its_resend() {
    let (alerts, report, stderr) = replay("delivery-resent", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["delivery_failed"]);
    assert_eq!(only_row(&report)["on_time"], 1);
    assert_eq!(
        only_row(&report)["delivery_failed"],
        0,
        "received in the end"
    );
    let notices = &report["notices"];
    assert_eq!(notices["delivery_resent"], 1, "{report}");
    assert_eq!(notices["document_repeated"], 0, "{report}");
    assert_eq!(notices["ack_unmatched"], 0, "{report}");
    assert!(stderr.contains("delivery_resent=1"), "{stderr}");
}

/// Refused, sent again under the same message id (dropped as an exact
/// duplicate) and accepted after the refusal: one `delivery_failed`, the
/// acceptance counted as the resend's, not unmatched.
#[test]
fn replay_takes_an_acceptance_after_a_refusal_of_the_same_message_as_its_resend() {
    let (alerts, report, _) = replay("delivery-resent-same-id", "2024-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["delivery_failed"]);
    assert_eq!(
        only_row(&report)["delivery_failed"],
        0,
        "received in the end"
    );
    let notices = &report["notices"];
    assert_eq!(notices["delivery_resent"], 1, "{report}");
    assert_eq!(notices["duplicate"], 1, "{report}");
    assert_eq!(notices["ack_unmatched"], 0, "{report}");
}

/// A discharge whose year was mistyped among the day's traffic: before, it
/// moved the clock a year on, raised `overdue` for the other discharge and
/// made its summary stale (reported missing). It is held now, and said so.
#[test]
fn replay_is_not_thrown_a_year_ahead_by_one_mistyped_message() {
    let (alerts, report, stderr) = replay("mistyped-year", "2025-06-01T00:00:00Z");
    assert_eq!(kinds(&alerts), ["overdue"], "only the mistyped discharge");
    assert_eq!(alerts[0]["deadline"], "2025-01-16T15:00:00Z");
    let notices = &report["notices"];
    assert_eq!(notices["clock_jump_held"], 1, "{report}");
    assert_eq!(notices["stale_event"], 0, "{report}");
    let on_time: u64 = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["on_time"].as_u64().unwrap())
        .sum();
    assert_eq!(on_time, 1, "{report}");
    assert!(stderr.contains("clock_jump_held=1"), "{stderr}");
}

/// A store carried on from was judged as at its clock: a replay into it
/// with an earlier --until wrote the later report and said it was as at
/// --until. Refused (exit 2), the last run's outputs left as they were; the
/// same --until again is carrying on, and allowed.
#[test]
fn replay_into_a_store_refuses_an_until_before_its_clock() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kept.sqlite").display());
    let scenario = fixture("scenarios/late");
    replay_json(&scenario, "2024-06-01T00:00:00Z", &["--store", &url]);
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(&alerts, "last run's\n").unwrap();
    let out = tocsin(&[
        "replay",
        "--until",
        "2024-01-16T00:00:00Z",
        "--alerts",
        alerts.to_str().unwrap(),
        "--store",
        &url,
        scenario.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--until 2024-01-16T00:00:00+00:00 is before the clock of the store"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&alerts).unwrap(), "last run's\n");
    replay_json(&scenario, "2024-06-01T00:00:00Z", &["--store", &url]);
}

/// A rule edited in place between two replays into one store: the open
/// expectation made under the old rule keeps its deadline (a restore never
/// moves one), and the replay carrying on says so, naming the rule, rather
/// than judging by a policy the trust no longer has without a word.
#[test]
fn replay_into_a_store_says_which_rules_its_open_expectations_keep() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = std::fs::read_to_string(root().join("config/policies/nhs-standard-contract.toml"))
        .unwrap()
        .replacen("due_after = \"24h\"", "due_after = \"48h\"", 1);
    std::fs::write(&policy, text).unwrap();
    let config = dir.path().join("tocsin.toml");
    std::fs::write(&config, shipped_config_with_policy(&policy)).unwrap();
    let url = format!("sqlite://{}", dir.path().join("kept.sqlite").display());
    let scenario = fixture("scenarios/late");
    // Discharged 15 January 14:00 under the trust's 48 hours; the summary
    // (17 January 10:00) not yet sent at --until.
    let first = replay_json(
        &scenario,
        "2024-01-16T00:00:00Z",
        &["--store", &url, "--config", config.to_str().unwrap()],
    );
    assert!(!first.stderr.contains("keep rule"), "{}", first.stderr);
    // The trust goes back to the contract's 24 hours.
    let carried = replay_json(&scenario, "2024-06-01T00:00:00Z", &["--store", &url]);
    assert!(
        carried.stderr.contains(
            "1 open expectation(s) keep rule discharge-summary-24h as it was when they were made"
        ),
        "{}",
        carried.stderr
    );
    let row = only_row(&carried.report);
    assert_eq!(
        (row["on_time"].as_u64(), row["late"].as_u64()),
        (Some(1), Some(0))
    );
}

#[test]
fn replay_matches_a_summary_without_visit_number_by_patient_and_window() {
    let (alerts, report, _) = replay("patient-window", "2024-06-01T00:00:00Z");
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(only_row(&report)["on_time"], 1);
}

#[test]
fn replay_refuses_a_new_store_another_run_is_building() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kept.sqlite");
    // Another run's build in progress: its partial file, locked.
    let partial = dir.path().join("kept.sqlite.partial");
    std::fs::write(&partial, b"another run's build").unwrap();
    let held = std::fs::File::open(&partial).unwrap();
    held.lock().unwrap();

    let alerts = dir.path().join("a.jsonl");
    let url = format!("sqlite://{}", db.display());
    let out = tocsin(&[
        "replay",
        "--until",
        "2024-01-20T00:00:00Z",
        "--alerts",
        alerts.to_str().unwrap(),
        "--store",
        &url,
        fixture("scenarios/late").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("being built by another run"), "{stderr}");
    // The other run's file is untouched, and nothing took the name.
    assert_eq!(std::fs::read(&partial).unwrap(), b"another run's build");
    assert!(!db.exists());
}

/// A replay into a store a gateway is writing (the writer's lock held) is
/// refused before it writes anything: the two would each track half the
/// traffic. Once the writer has let go, the same replay goes in.
#[test]
fn replay_refuses_a_store_another_writer_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.sqlite");
    let mut gateway = tocsin_store::SqliteStore::open(&db).unwrap();
    tocsin_store::Store::claim_writer(&mut gateway).unwrap();

    let alerts = dir.path().join("a.jsonl");
    // The last run's alerts, which a refused run must leave as they were.
    std::fs::write(&alerts, "{\"last\":\"run\"}\n").unwrap();
    let url = format!("sqlite://{}", db.display());
    let replay_into_it = || {
        tocsin(&[
            "replay",
            "--until",
            "2024-01-20T00:00:00Z",
            "--alerts",
            alerts.to_str().unwrap(),
            "--store",
            &url,
            fixture("scenarios/late").to_str().unwrap(),
        ])
    };
    let out = replay_into_it();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use by another writer"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&alerts).unwrap(),
        "{\"last\":\"run\"}\n",
        "the last run's alerts are kept"
    );
    let expectations = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM expectations", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(expectations(), 0, "nothing written");
    drop(gateway);
    let out = replay_into_it();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(expectations() > 0);
}

#[test]
fn replay_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("a.jsonl");
    let bad_time = tocsin(&[
        "replay",
        "--until",
        "yesterday",
        "--alerts",
        alerts.to_str().unwrap(),
        "x",
    ]);
    assert_eq!(bad_time.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_time.stderr).contains("RFC 3339"));
    let missing = tocsin(&[
        "replay",
        "--until",
        "2024-01-01T00:00:00Z",
        "--alerts",
        alerts.to_str().unwrap(),
        "/nonexistent",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    let bad_group = tocsin(&[
        "replay",
        "--until",
        "2024-01-01T00:00:00Z",
        "--alerts",
        alerts.to_str().unwrap(),
        "--group-by",
        "month,ward",
        "x",
    ]);
    assert_eq!(bad_group.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_group.stderr);
    assert!(
        stderr.contains("`ward`") && stderr.contains("gp_practice"),
        "{stderr}"
    );
}

#[test]
fn replay_csv_and_table_reports_carry_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("a.jsonl");
    let run_with = |scenario: &str, format: &str, extra: &[&str]| {
        let path = fixture(&format!("scenarios/{scenario}"));
        let mut args = vec![
            "replay",
            "--until",
            "2024-06-01T00:00:00Z",
            "--alerts",
            alerts.to_str().unwrap(),
            "--format",
            format,
        ];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        let out = tocsin(&args);
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let run_on = |scenario: &str, format: &str| run_with(scenario, format, &[]);
    let run = |format: &str| run_on("junk-in-the-middle", format);
    let csv = run("csv");
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("month,document_kind,encounter_kind,site,expected,on_time,late")
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("2024-01,discharge_summary,inpatient,RXX01,1,1,0")
    );
    assert!(csv.contains("\nfile,position,reason,location\n"));
    let by_practice = run_with(
        "junk-in-the-middle",
        "csv",
        &["--group-by", "gp_practice,document_kind"],
    );
    let mut lines = by_practice.lines();
    assert_eq!(
        lines.next(),
        Some(
            "document_kind,gp_practice,expected,on_time,late,missing,pending,cancelled,pct_on_time,median_delay_seconds,p90_delay_seconds,delivery_failed"
        )
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("discharge_summary,B86001,1,1,0,"),
        "{by_practice}"
    );
    let table = run("table");
    assert!(
        table.contains("discharge_summary") && table.contains("Rejected inputs (1)"),
        "{table}"
    );
    assert!(!csv.contains("notice") && !table.contains("notices"));
    // The tracker's notices follow, only those that happened.
    let csv = run_on("duplicates", "csv");
    assert!(csv.ends_with("\nnotice,count\nduplicate,2\n"), "{csv}");
    let table = run_on("duplicates", "table");
    assert!(
        table.ends_with("\nTracker notices (counted, not acted on):\n  duplicate: 2\n"),
        "{table}"
    );
}

/// A one-shot command that cannot reach the broker says what to do about
/// the failure it met, not "Is RabbitMQ running?" for every one: a wrong
/// password, a vhost that does not exist.
#[test]
fn send_says_what_to_do_about_the_broker_error_it_met() {
    for (url, says) in [
        (
            "amqp://guest:not-the-password@127.0.0.1:5672/%2f",
            "check the user and password",
        ),
        (
            "amqp://guest:guest@127.0.0.1:5672/tocsin-no-such-vhost",
            "check that the vhost in the URL exists",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["send", "tests/fixtures/hl7/adt_a03_discharge.hl7"])
            .current_dir(root())
            .env_remove("TOCSIN_CONFIG")
            .env("TOCSIN_AMQP_URL", url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(!stderr.contains("Is RabbitMQ running"), "{stderr}");
        assert!(!stderr.contains("not-the-password"), "{stderr}");
    }
}

/// `password_file` (broker and store) is relative to the configuration
/// file's directory, as the file's header says and as the mappings and
/// policy are: checked from elsewhere (a service's working directory), the
/// same configuration finds its secrets.
#[test]
fn password_files_are_found_beside_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let text = shipped_config()
        .replace("[amqp]\n", "[amqp]\npassword_file = \"amqp-password\"\n")
        .replace("[store]\n", "[store]\npassword_file = \"store-password\"\n");
    let config = dir.path().join("tocsin.toml");
    std::fs::write(&config, text).unwrap();
    std::fs::write(dir.path().join("amqp-password"), "guest\n").unwrap();
    std::fs::write(dir.path().join("store-password"), "s3cret\n").unwrap();
    // Run from the repository root, not the configuration's directory.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check-config", "--config", config.to_str().unwrap()])
        .current_dir(root())
        .env_remove("TOCSIN_CONFIG")
        .env(
            "TOCSIN_STORE_URL",
            "postgres://tocsin@127.0.0.1:5432/tocsin",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// A configuration holding a webhook's signing secret inline, readable by
/// others on the host, is said to be by check-config (naming the key, never
/// the secret); made private, it is not.
#[test]
fn check_config_says_when_others_can_read_secrets_in_the_file() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tocsin.toml");
    let config = shipped_config()
        + "\n[[webhooks]]\nname = \"ward\"\nurl = \"https://hooks.example.nhs.uk/tocsin\"\n\
           secret = \"s3cr3t-signing-value\"\n";
    std::fs::write(&path, config).unwrap();
    let check = |mode: u32| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = tocsin(&["check-config", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("s3cr3t-signing-value"), "{stderr}");
        stderr
    };
    let said = check(0o644);
    assert!(
        said.contains("holds secrets others on this host can read ([[webhooks]] ward secret)"),
        "{said}"
    );
    let said = check(0o640);
    assert!(!said.contains("others on this host"), "{said}");
}

/// A broker password in the URL of a file others can read is named as the
/// store's is (RabbitMQ's default guest account, loopback only, is not);
/// and a `[metrics]` label turned on with nothing listed, which gives
/// every value `other`, is said.
#[test]
fn check_config_names_an_amqp_password_and_an_empty_label_list() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tocsin.toml");
    let check = |config: String| {
        std::fs::write(&path, config).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = tocsin(&["check-config", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
    };
    let shipped = shipped_config();
    let said = check(shipped.clone());
    assert!(
        !said.contains("[amqp] url") && !said.contains("[metrics]"),
        "the shipped file (guest on loopback, no labels) is not named: {said}"
    );
    let said = check(shipped.replace(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        "amqp://tocsin:br0ker-pw@mq.trust.example:5672/%2f",
    ));
    assert!(
        said.contains("holds secrets others on this host can read ([amqp] url (its password))"),
        "{said}"
    );
    assert!(!said.contains("br0ker-pw"), "{said}");
    let said = check(shipped.replace("site_label = false", "site_label = true"));
    assert!(
        said.contains("note: [metrics] site_label is on but sites lists none"),
        "{said}"
    );
}
