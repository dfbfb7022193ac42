//! schemathesis (PyPI, pinned by `scripts/setup.sh --test-tools`) against a real node, with
//! the repository's `schemathesis.toml`, every check and a bounded number of examples per
//! operation: `/openapi.json` must say what the node enforces, and no input may get a
//! `500`.
//!
//! What the run may report, and nothing else: a schema-valid request refused with `400`
//! for a rule JSON Schema cannot state, which the document then names — in the
//! operation's `x-holdfast-rules` (rules between fields, e.g. `ends_at` not before
//! `starts_at`), or as a byte limit (`x-max-bytes`: JSON Schema's `maxLength` counts
//! characters), or as the document's rule for integers (its description: JSON Schema counts
//! `1.0` as an integer, the node takes integers written as such). And one artefact of
//! schemathesis itself: it unquotes a path parameter
//! before quoting it (`quote_all` in its `transport/serialization.py`, "to keep quoting
//! idempotent"), so a schema-valid id holding a literal escape such as `%07` goes out as
//! the character it escapes, which the node rightly refuses (`is_unquoted_path_escape`).
//! Every other failure (an undocumented status, a schema-violating request accepted, a
//! response that breaks its schema, a server error) fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use holdfast_tests::cluster::ProcessCluster;
use serde_json::{json, Value};

/// Examples per operation and phase: enough to reach every rule, bounded for CI.
const EXAMPLES: &str = "10";

fn schemathesis() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("HOLDFAST_SCHEMATHESIS") {
        return Ok(PathBuf::from(path));
    }
    let tools =
        std::env::var("HOLDFAST_TOOLS_DIR").unwrap_or_else(|_| "/var/tmp/holdfast-tools".into());
    let installed = Path::new(&tools).join("schemathesis/bin/schemathesis");
    if installed.is_file() {
        return Ok(installed);
    }
    bail!("schemathesis is missing: run ./scripts/setup.sh --test-tools")
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One failing test case of the run: the operation, the checks it failed and the error
/// body the node answered.
#[derive(Debug)]
struct Failure {
    operation: String,
    /// "METHOD /path" of the request as sent (its last `curl` line), if the case has one.
    sent: Option<String>,
    checks: Vec<String>,
    answer: Option<Value>,
    text: String,
}

fn unescape_xml(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The failures of a schemathesis JUnit report: `<testcase name="METHOD /path">` holds
/// `<failure>` elements, each with numbered test cases ("1. Test Case ID: ..."), their
/// checks ("- ST202 ...") and the answer's body in backticks.
fn failures(report: &str) -> Vec<Failure> {
    let mut found = Vec::new();
    for testcase in report.split("<testcase ").skip(1) {
        let operation = testcase
            .split_once("name=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| unescape_xml(name))
            .unwrap_or_default();
        for failure in testcase.split("<failure").skip(1) {
            let body = failure
                .split_once('>')
                .map(|(_, rest)| rest.split("</failure>").next().unwrap_or(""))
                .unwrap_or("");
            let body = unescape_xml(body);
            for case in body.split("Test Case ID:").skip(1) {
                let checks = case
                    .lines()
                    .filter_map(|line| line.trim().strip_prefix("- "))
                    .filter(|line| line.starts_with("ST"))
                    .map(|line| line.split_whitespace().next().unwrap_or("").to_string())
                    .collect();
                let answer = case.lines().find_map(|line| {
                    let line = line.trim();
                    let inner = line.strip_prefix('`')?.strip_suffix('`')?;
                    serde_json::from_str::<Value>(inner).ok()
                });
                // Stateful sequences are reported under "Stateful tests", with one `curl`
                // line per step in the order they ran: the failing call is the last.
                let sent = case
                    .lines()
                    .rev()
                    .find_map(|line| curl_operation(line.trim()));
                let operation = if operation.contains(' ') && operation.contains('/') {
                    operation.clone()
                } else {
                    sent.clone().unwrap_or_else(|| operation.clone())
                };
                found.push(Failure {
                    operation,
                    sent,
                    checks,
                    answer,
                    text: case.chars().take(1500).collect(),
                });
            }
        }
    }
    found
}

/// "METHOD /path" of a `curl -X METHOD ... 'http://host/path?query'` line (the path as sent,
/// not its template; [`stated_rules`] is looked up with [`template_of`]).
fn curl_operation(line: &str) -> Option<String> {
    let rest = line.strip_prefix("curl -X ")?;
    let method = rest.split_whitespace().next()?;
    let url = &rest[rest.rfind("http://")? + "http://".len()..];
    let path = &url[url.find('/')?..];
    let path = path.split(['?', '\'', ' ', '"']).next().unwrap_or(path);
    Some(format!("{method} {path}"))
}

/// The operation ("METHOD /template") that "METHOD /path" calls, among `rules`' keys.
fn template_of(operation: &str, rules: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    let (method, path) = operation.split_once(' ')?;
    let segments: Vec<&str> = path.split('/').collect();
    rules
        .keys()
        .find(|key| {
            let Some((key_method, template)) = key.split_once(' ') else {
                return false;
            };
            let parts: Vec<&str> = template.split('/').collect();
            key_method == method
                && parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
        })
        .cloned()
}

/// The fields each operation's `x-holdfast-rules` names, by "METHOD /path".
fn stated_rules(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut rules = BTreeMap::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let fields = operation["x-holdfast-rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|rule| rule["field"].as_str().map(str::to_string))
                .collect();
            rules.insert(format!("{} {path}", method.to_uppercase()), fields);
        }
    }
    rules
}

/// What the document's description says of integers written with a fraction or exponent.
const INTEGER_RULE: &str = "a number written with a fraction or an exponent";

/// Whether `failure` is a refusal the document states but JSON Schema cannot express.
/// `integers_stated`: the document's description states [`INTEGER_RULE`].
fn is_stated_refusal(
    failure: &Failure,
    rules: &BTreeMap<String, BTreeSet<String>>,
    integers_stated: bool,
) -> bool {
    let Some((field, reason)) = refused_field(failure) else {
        return false;
    };
    // `seat_blocks[0].rows` → `seat_blocks`: rules name the top-level field.
    let top = field.split(['[', '.']).next().unwrap_or(field);
    let stated = rules
        .get(&failure.operation)
        .or_else(|| rules.get(&template_of(&failure.operation, rules)?))
        .is_some_and(|fields| fields.contains(top));
    let whole_float = reason.starts_with("invalid type: floating point");
    stated || reason.contains(" bytes") || (integers_stated && whole_float)
}

/// The field and reason of `failure` when it is only a schema-valid request refused with
/// `400 INVALID_FIELD` (ST202 alone).
fn refused_field(failure: &Failure) -> Option<(&str, &str)> {
    if failure.checks.is_empty() || failure.checks.iter().any(|check| check != "ST202") {
        return None;
    }
    let details = &failure.answer.as_ref()?["error"];
    if details["code"] != "INVALID_FIELD" {
        return None;
    }
    let field = details["details"]["field"].as_str().unwrap_or("");
    let reason = details["details"]["reason"].as_str().unwrap_or("");
    Some((field, reason))
}

/// Whether `failure` is schemathesis sending a schema-valid id that holds a literal escape
/// (`%07`) as the character it escapes (see the module documentation): the node refused an
/// id for a character the document forbids (a control character, white space or `/`), and
/// the path as sent holds an escape of one.
fn is_unquoted_path_escape(failure: &Failure) -> bool {
    if !refused_field(failure).is_some_and(|(_, reason)| reason.contains("control characters")) {
        return false;
    }
    let Some((_, path)) = failure
        .sent
        .as_deref()
        .and_then(|sent| sent.split_once(' '))
    else {
        return false;
    };
    path.split('%').skip(1).any(|after| {
        after
            .get(..2)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .is_some_and(|byte| byte <= b' ' || byte == b'/' || byte == 0x7F)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_state() -> Result<()> {
    let schemathesis = schemathesis()?;
    let cluster = ProcessCluster::start(1).await?;
    // Data for the fuzzer to find: a seated event and a general-admission one.
    cluster
        .create_event(
            0,
            json!({"event_id": "fuzz-cinema", "name": "Fuzz", "currency": "EUR",
                   "category": "movie", "starts_at": "2027-01-01T20:00:00Z",
                   "seat_blocks": [{"section": "S", "rows": ["A", "B"], "seats_per_row": 10, "price": 900}]}),
        )
        .await?;
    cluster
        .create_event(
            0,
            json!({"event_id": "fuzz-concert", "name": "Fuzz GA", "currency": "EUR",
                   "category": "event", "pools": [{"id": "GA", "capacity": 500, "price": 4000}]}),
        )
        .await?;
    let document = cluster.get(0, "/openapi.json").await?.body;
    let rules = stated_rules(&document);
    let integers_stated = document["info"]["description"]
        .as_str()
        .is_some_and(|description| description.contains(INTEGER_RULE));
    ensure!(integers_stated, "the document states no rule for integers");

    let reports = tempfile::tempdir()?;
    // Run in a scratch directory: schemathesis keeps a cache where it runs.
    let output = Command::new(&schemathesis)
        .current_dir(reports.path())
        .arg("--config-file")
        .arg(repository_root().join("schemathesis.toml"))
        .args(["run", &cluster.nodes[0].url("/openapi.json")])
        .args(["--checks", "all", "--max-examples", EXAMPLES])
        // Byte limits are exact for ASCII (see the module docs).
        .args(["--generation-codec", "ascii"])
        // `/changes` is a stream that stays open; it has its own tests.
        .args(["--exclude-path", "/changes"])
        .args(["--request-timeout", "30", "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(reports.path().join("report"))
        .output()
        .context("running schemathesis")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: String = stdout
        .lines()
        .skip_while(|line| !line.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    let report = std::fs::read_dir(reports.path().join("report"))?
        .filter_map(|entry| entry.ok())
        .find(|entry| entry.path().extension().is_some_and(|ext| ext == "xml"))
        .map(|entry| std::fs::read_to_string(entry.path()))
        .transpose()?
        .with_context(|| {
            format!(
                "schemathesis wrote no report ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    ensure!(
        report.contains("<testcase "),
        "the report lists no operation:\n{summary}"
    );
    let found = failures(&report);
    let unexpected: Vec<&Failure> = found
        .iter()
        .filter(|failure| {
            !is_stated_refusal(failure, &rules, integers_stated)
                && !is_unquoted_path_escape(failure)
        })
        .collect();
    ensure!(
        unexpected.is_empty(),
        "schemathesis found {} failure(s) the document does not state:\n{}\n\n{summary}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|failure| format!(
                "{} {:?}\n{}",
                failure.operation, failure.checks, failure.text
            ))
            .collect::<Vec<_>>()
            .join("\n----\n")
    );
    // The node took all of it.
    let health = cluster.get(0, "/healthz").await?;
    ensure!(health.status == 200, "after the run: {}", health.body);
    Ok(())
}

#[test]
fn the_report_parser_reads_schemathesis_junit() {
    let report = r#"<testsuites><testsuite>
    <testcase name="POST /admin/events" time="1"><failure type="failure" message="ST202">1. Test Case ID: a

- ST202 Schema-valid request rejected

[400] Bad Request:

    `{"error":{"code":"INVALID_FIELD","message":"m","details":{"field":"seat_blocks[0].rows","reason":"must be 1 to 64 bytes"}}}`

2. Test Case ID: b

- ST103 Undocumented status code

[418] I'm a teapot:

    `{"error":{"code":"X","message":"&lt;m&gt;","details":{}}}`
</failure></testcase>
    <testcase name="GET /events" time="1"/>
    <testcase name="Stateful tests" time="1"><failure type="failure" message="ST202">1. Test Case ID: c

- ST202 Schema-valid request rejected

[400] Bad Request:

    `{"error":{"code":"INVALID_FIELD","message":"m","details":{"field":"ends_at","reason":"must not be before starts_at"}}}`

Reproduce with:

    curl -X POST -H 'Content-Type: application/json' -d '{"seats": []}' http://127.0.0.1:9/admin/events/0/seats
    curl -X PATCH -H 'Content-Type: application/json' -d '{"starts_at": "2030-01-01T00:00:00Z"}' http://127.0.0.1:9/admin/events/0
</failure></testcase>
    </testsuite></testsuites>"#;
    let found = failures(report);
    assert_eq!(found.len(), 3);
    // A stateful sequence's failure is its last step's.
    assert_eq!(found[2].operation, "PATCH /admin/events/0");
    assert_eq!(found[0].operation, "POST /admin/events");
    assert_eq!(found[0].checks, ["ST202"]);
    assert_eq!(found[1].checks, ["ST103"]);
    assert_eq!(found[1].answer.as_ref().unwrap()["error"]["message"], "<m>");
    let rules = BTreeMap::from([(
        "POST /admin/events".to_string(),
        BTreeSet::from(["ends_at".to_string()]),
    )]);
    assert!(is_stated_refusal(&found[0], &rules, false), "a byte limit");
    assert_eq!(
        curl_operation(
            "curl -X PATCH -H 'Idempotency-Key: k' -d '{}' 'http://127.0.0.1:9/admin/events/E?x=1'"
        ),
        Some("PATCH /admin/events/E".to_string())
    );
    let templates = BTreeMap::from([(
        "PATCH /admin/events/{event_id}".to_string(),
        BTreeSet::from(["ends_at".to_string()]),
    )]);
    assert_eq!(
        template_of("PATCH /admin/events/E", &templates).as_deref(),
        Some("PATCH /admin/events/{event_id}")
    );
    assert_eq!(
        template_of("PATCH /admin/events/E/cancel", &templates),
        None
    );
    assert!(!is_stated_refusal(&found[1], &rules, false));
    assert!(
        is_stated_refusal(&found[2], &templates, false),
        "a stated rule"
    );
}

#[test]
fn an_id_sent_with_its_literal_escape_decoded_is_schemathesis_own() {
    let case = |path: &str, reason: &str| {
        format!(
            r#"<testsuites><testsuite><testcase name="POST /admin/events/{{event_id}}/pools" time="1"><failure type="failure" message="ST202">1. Test Case ID: a

- ST202 Schema-valid request rejected

[400] Bad Request:

    `{{"error":{{"code":"INVALID_FIELD","message":"m","details":{{"field":"event_id","reason":"{reason}"}}}}}}`

Reproduce with:

    curl -X POST -H 'Content-Type: application/json' -d '{{}}' 'http://127.0.0.1:9{path}'
</failure></testcase></testsuite></testsuites>"#
        )
    };
    let forbidden = "must not contain spaces, control characters or '/'";
    let found = failures(&case("/admin/events/Z%3F.WP%07/pools", forbidden));
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].sent.as_deref(),
        Some("POST /admin/events/Z%3F.WP%07/pools")
    );
    assert!(
        is_unquoted_path_escape(&found[0]),
        "%07 is a control character"
    );
    // A printable escape, or another refusal, is not this artefact.
    let printable = failures(&case("/admin/events/Z%3F.WP/pools", forbidden));
    assert!(!is_unquoted_path_escape(&printable[0]));
    let other = failures(&case("/admin/events/Z%07/pools", "must be 1 to 64 bytes"));
    assert!(!is_unquoted_path_escape(&other[0]));
}

#[test]
fn a_whole_number_written_as_a_float_is_refused_only_as_the_document_states() {
    let report = r#"<testsuites><testsuite><testcase name="POST /cluster/leader" time="1"><failure type="failure" message="ST202">1. Test Case ID: a

- ST202 Schema-valid request rejected

[400] Bad Request:

    `{"error":{"code":"INVALID_FIELD","message":"m","details":{"field":"node_id","reason":"invalid type: floating point `3961625881632918`, expected u64"}}}`
</failure></testcase></testsuite></testsuites>"#;
    let found = failures(report);
    assert_eq!(found.len(), 1);
    let rules = BTreeMap::new();
    assert!(is_stated_refusal(&found[0], &rules, true));
    assert!(
        !is_stated_refusal(&found[0], &rules, false),
        "only when the document states it"
    );
}
