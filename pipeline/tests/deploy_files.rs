//! The deploy files ask only for metrics gated and enrold export. Every metric name in the alert
//! rules (`deploy/prometheus/alerts.yml`), the series promtool's unit tests feed them
//! (`alerts.test.yml`) and the Grafana dashboard (`deploy/grafana/gate.json`) must be a series of
//! `pipeline::telemetry::names::ALL` (the table gated's recorder describes every metric from; its
//! own test checks that the exporter renders exactly those series), of `enrolment::metrics::ALL`
//! (enrold's, checked against its exporter by enrolment/tests/metrics.rs), or one Prometheus makes
//! itself.
//! Every expression goes through a PromQL parser, so a syntax error fails here too.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use pipeline::telemetry::names;
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};
use yaml_rust2::{Yaml, YamlLoader};

/// Series Prometheus adds to every scrape target.
const PROMETHEUS_MADE: &[&str] = &["up"];

fn deploy(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn exported() -> BTreeSet<String> {
    names::ALL
        .iter()
        .chain(enrolment::metrics::ALL)
        .flat_map(|m| m.series())
        .chain(PROMETHEUS_MADE.iter().map(|s| s.to_string()))
        .collect()
}

/// The metric names an expression selects; an error for a syntax error or a selector without a
/// literal name (one that cannot be checked).
fn selected(expr: &str) -> Result<Vec<String>, String> {
    struct Names(Vec<String>, Vec<String>);
    impl Names {
        fn take(&mut self, vs: &VectorSelector) {
            match &vs.name {
                Some(n) => self.0.push(n.clone()),
                None => self.1.push(vs.to_string()),
            }
        }
    }
    impl ExprVisitor for Names {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            match e {
                Expr::VectorSelector(vs) => self.take(vs),
                Expr::MatrixSelector(m) => self.take(&m.vs),
                _ => {}
            }
            Ok(true)
        }
    }
    let ast = parser::parse(expr)?;
    let mut names = Names(Vec::new(), Vec::new());
    let _ = walk_expr(&mut names, &ast);
    match names.1.is_empty() {
        true => Ok(names.0),
        false => Err(format!("selectors without a metric name: {:?}", names.1)),
    }
}

/// Checks every `(place, expression)`; returns one line per problem.
fn check(exprs: &[(String, String)]) -> Vec<String> {
    let known = exported();
    let mut problems = Vec::new();
    for (place, expr) in exprs {
        match selected(expr) {
            Ok(found) => {
                for name in found.iter().filter(|n| !known.contains(*n)) {
                    problems.push(format!(
                        "{place}: {name} is exported by neither gated nor enrold"
                    ));
                }
            }
            Err(e) => problems.push(format!("{place}: {e}\n    {expr}")),
        }
    }
    problems
}

fn yaml(path: &str) -> Yaml {
    YamlLoader::load_from_str(&deploy(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{path}: empty"))
}

#[test]
fn alert_rules_ask_only_for_exported_metrics() {
    let doc = yaml("prometheus/alerts.yml");
    let mut exprs = Vec::new();
    for group in doc["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let name = rule["alert"].as_str().or(rule["record"].as_str());
            let expr = rule["expr"].as_str();
            let (Some(name), Some(expr)) = (name, expr) else {
                panic!("a rule without a name or expr: {rule:?}");
            };
            exprs.push((format!("alerts.yml {name}"), expr.to_owned()));
        }
    }
    assert!(exprs.len() >= 10, "only {} rules read", exprs.len());
    let problems = check(&exprs);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn promtool_unit_tests_feed_exported_series() {
    let doc = yaml("prometheus/alerts.test.yml");
    let mut exprs = Vec::new();
    for (i, test) in doc["tests"].as_vec().expect("tests").iter().enumerate() {
        for s in test["input_series"].as_vec().expect("input_series") {
            let series = s["series"].as_str().expect("series");
            exprs.push((format!("alerts.test.yml test {i}"), series.to_owned()));
        }
    }
    assert!(!exprs.is_empty());
    let problems = check(&exprs);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Grafana's variables, replaced so that the expression parses: durations by a duration, the
/// others (used inside `=~"…"`) by a word.
fn without_variables(expr: &str) -> String {
    let mut s = expr.to_owned();
    for v in ["$__rate_interval", "$__interval", "$__range"] {
        s = s.replace(v, "5m");
    }
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let after = after
            .strip_prefix('{')
            .map_or(after, |a| a.split_once('}').map_or(a, |(_, tail)| tail));
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push('x');
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn dashboard_exprs(v: &serde_json::Value, place: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(o) => {
            let here = o
                .get("title")
                .or(o.get("name"))
                .and_then(|t| t.as_str())
                .map_or(place.to_owned(), |t| format!("gate.json {t:?}"));
            for (k, v) in o {
                match (k.as_str(), v.as_str()) {
                    ("expr", Some(e)) => out.push((here.clone(), without_variables(e))),
                    // A template variable's query: label_values(SELECTOR, label).
                    ("definition", Some(d)) => {
                        let selector = d
                            .strip_prefix("label_values(")
                            .and_then(|a| a.rsplit_once(','))
                            .map(|(sel, _)| sel)
                            .unwrap_or_else(|| panic!("{here}: unexpected query {d:?}"));
                        out.push((here.clone(), without_variables(selector)));
                    }
                    _ => dashboard_exprs(v, &here, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, place, out)),
        _ => {}
    }
}

#[test]
fn dashboard_asks_only_for_exported_metrics() {
    let dash: serde_json::Value =
        serde_json::from_str(&deploy("grafana/gate.json")).expect("gate.json is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dash, "gate.json", &mut exprs);
    assert!(exprs.len() >= 20, "only {} queries read", exprs.len());
    let problems = check(&exprs);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_catches_a_misspelt_metric() {
    let problems = check(&[
        ("good".into(), "rate(gate_frames_in_total[5m])".into()),
        ("typo".into(), "gate_door_modes == 1".into()),
        ("bucketless".into(), "gate_tick_faces_bucket".into()),
        ("syntax".into(), "sum by (lane (gate_lane_degraded)".into()),
    ]);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("typo: gate_door_modes "));
    assert!(problems[1].starts_with("bucketless: gate_tick_faces_bucket "));
    assert!(problems[2].starts_with("syntax: "));
    assert_eq!(
        without_variables(r#"rate(x{station=~"$station",lane=~"${lane}"}[$__rate_interval])"#),
        r#"rate(x{station=~"x",lane=~"x"}[5m])"#
    );
}
