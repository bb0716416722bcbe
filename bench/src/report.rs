//! Combines the scenarios' results into `bench/results/<date>.json` and prints the markdown table
//! with each figure beside its target and the bare relay's reference from issue 4.
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use crate::{scenarios::ScenarioResult, stats::format_number};

/// How a figure is judged against its target.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    Below(f64),
    AtMost(f64),
    /// Shown for context; no target of its own.
    None,
}

struct Row {
    scenario: u8,
    figure: &'static str,
    label: &'static str,
    unit: &'static str,
    goal: Goal,
    target: &'static str,
    relay: &'static str,
}

const ROWS: &[Row] = &[
    row(1, "msgs_per_s", "throughput, ≤ 64 unacked per sender", "msg/s", Goal::AtLeast(150_000.0), "≥ 150,000", "~380,000"),
    row(1, "rx_p99_ms", "send → receive p99", "ms", Goal::Below(200.0), "< 200", "~130"),
    row(1, "lost", "lost + duplicated", "", Goal::AtMost(0.0), "0", "0"),
    row(1, "postgres_cpu_us_per_msg", "PostgreSQL CPU per message", "µs", Goal::None, "", ""),
    row(2, "msgs_per_s", "throughput, wait for each ack", "msg/s", Goal::AtLeast(25_000.0), "≥ 25,000", "~45,000"),
    row(2, "rx_p99_ms", "send → receive p99", "ms", Goal::None, "", ""),
    row(2, "postgres_cpu_us_per_msg", "PostgreSQL CPU per message", "µs", Goal::None, "", ""),
    row(3, "msgs_per_s", "delivered rate", "msg/s", Goal::AtLeast(0.99), "the asked rate (10,000)", ""),
    row(3, "rx_p50_ms", "send → receive p50", "ms", Goal::Below(1.0), "< 1", ""),
    row(3, "rx_p99_ms", "send → receive p99", "ms", Goal::Below(5.0), "< 5", "4.9 (at 20k msg/s)"),
    row(3, "postgres_cpu_us_per_msg", "PostgreSQL CPU per message", "µs", Goal::None, "", ""),
    row(4, "sockets", "idle authenticated sockets", "", Goal::None, "~19,000", ""),
    row(4, "rss_per_socket_kib", "server RSS per socket", "KiB", Goal::AtMost(8.0), "≤ 8", "~6 (poem, 4 KiB read buffer)"),
    row(4, "ping_p99_ms", "ping → pong p99", "ms", Goal::Below(5.0), "< 5", ""),
    row(5, "seeded_messages", "messages stored", "", Goal::AtLeast(10_000_000.0), "10,000,000", ""),
    row(5, "history_p99_ms", "newest page of 50, p99", "ms", Goal::Below(2.0), "< 2", ""),
    row(5, "history_deep_p99_ms", "page of 50 at a random id, p99", "ms", Goal::Below(2.0), "< 2", ""),
    row(6, "signins_per_s", "sign-ins/s (200 at once)", "/s", Goal::AtLeast(70.0), "≥ 70", "~80 (argon2 ~24 ms/core)"),
    row(6, "storm_rx_p99_ms", "chat p99 during the storm", "ms", Goal::None, "≤ 2× baseline", ""),
    row(6, "storm_p99_ratio", "storm p99 / baseline p99", "×", Goal::AtMost(2.0), "≤ 2", ""),
    row(7, "cold_start_empty_ms", "cold start, empty database", "ms", Goal::Below(100.0), "< 100", ""),
    row(7, "cold_start_seeded_ms", "cold start, seeded database", "ms", Goal::Below(100.0), "< 100", ""),
    row(8, "binary_mb", "release binary, UI embedded, stripped", "MB", Goal::AtMost(20.0), "≤ 20", ""),
    row(9, "deliveries_per_s", "room of 1,000: deliveries/s (100 msg/s)", "/s", Goal::AtLeast(99_000.0), "100,000", ""),
    row(9, "lost", "deliveries lost", "", Goal::AtMost(0.0), "0", ""),
    row(9, "rx_p50_ms", "send → receive p50", "ms", Goal::None, "", ""),
    row(9, "rx_p99_ms", "send → receive p99", "ms", Goal::Below(100.0), "< 100", ""),
    row(9, "server_cpu_us_per_delivery", "server CPU per delivery", "µs", Goal::None, "", ""),
    row(9, "postgres_cpu_us_per_delivery", "PostgreSQL CPU per delivery", "µs", Goal::None, "", ""),
];

const fn row(
    scenario: u8,
    figure: &'static str,
    label: &'static str,
    unit: &'static str,
    goal: Goal,
    target: &'static str,
    relay: &'static str,
) -> Row {
    Row { scenario, figure, label, unit, goal, target, relay }
}

/// What the scenarios ran against: the servers' storage and how many nodes.
pub struct Setup {
    pub backend: String,
    pub nodes: usize,
}

impl Setup {
    fn ran(&self, result: &ScenarioResult) -> bool {
        result.backend == self.backend && result.nodes == self.nodes
    }
}

pub fn write(
    out: &Path,
    commit: &str,
    date: &str,
    command: &str,
    smoke: bool,
    setup: &Setup,
    files: &[PathBuf],
) -> anyhow::Result<()> {
    let provenance =
        json!({ "date": date, "commit": commit, "command": command, "backend": setup.backend, "nodes": setup.nodes });
    let mut results = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        // A scenario that crashed leaves an empty file; the table shows it as missing.
        if let Some(line) = text.lines().rev().find(|l| l.trim_start().starts_with('{')) {
            let mut result: ScenarioResult =
                serde_json::from_str(line).with_context(|| format!("bad result in {}", file.display()))?;
            result.provenance = Some(provenance.clone());
            result.backend = setup.backend.clone();
            // Scenarios that start their own server (7, 8) always run one.
            if !matches!(result.scenario, 7 | 8) {
                result.nodes = setup.nodes;
            }
            results.push(result);
        }
    }
    // Re-running some scenarios keeps the others' earlier results in the same file, and those of
    // other backends and node counts.
    let this_run = results.len();
    if let Ok(text) = std::fs::read_to_string(out) {
        let earlier: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("bad JSON in {}", out.display()))?;
        let earlier: Vec<ScenarioResult> = serde_json::from_value(earlier["scenarios"].clone()).unwrap_or_default();
        for mut result in earlier {
            let same = |r: &ScenarioResult| r.scenario == result.scenario && r.backend == result.backend && r.nodes == result.nodes;
            if !results[..this_run].iter().any(same) {
                result.provenance.get_or_insert_with(|| provenance.clone());
                results.push(result);
            }
        }
    }
    results.sort_by(|a, b| (a.backend != "sqlite", &a.backend, a.nodes, a.scenario).cmp(&(b.backend != "sqlite", &b.backend, b.nodes, b.scenario)));
    let combined = json!({
        "date": date,
        "commit": commit,
        "command": command,
        "backend": setup.backend,
        "nodes": setup.nodes,
        "smoke": smoke,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "scenarios": results,
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&combined)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    // The table shows this backend and node count only.
    let shown: Vec<ScenarioResult> = results.into_iter().filter(|r| setup.ran(r)).collect();
    if setup.backend != "sqlite" || setup.nodes != 1 {
        println!("{}, {} node{}:\n", setup.backend, setup.nodes, if setup.nodes == 1 { "" } else { "s" });
    }
    print!("{}", if smoke { smoke_table(&shown) } else { table(&shown) });
    Ok(())
}

/// A smoke run's counts are far too small to say anything about a target: it shows that every
/// scenario ran, and its figures, with nothing to compare them against.
fn smoke_table(results: &[ScenarioResult]) -> String {
    let mut text = String::from(
        "Smoke run: every scenario with small counts, to check that each one works. Its figures are not\n\
         comparable with the targets; `bench/run.sh` without --smoke measures those.\n\n\
         | # | figure | measured (smoke) |\n|---|---|---|\n",
    );
    for row in ROWS {
        let Some(result) = results.iter().find(|r| r.scenario == row.scenario) else { continue };
        if skipped(row, result) {
            continue;
        }
        let shown = figure(row, result).map_or_else(|| "—".to_owned(), |v| format!("{} {}", format_number(v), row.unit).trim_end().to_owned());
        text.push_str(&format!("| {} | {} | {} |\n", row.scenario, label(row, result), shown));
    }
    text.push_str(&failures(results));
    text
}

fn figure(row: &Row, result: &ScenarioResult) -> Option<f64> {
    match row.figure {
        "lost" => Some(result.figures.get("lost").unwrap_or(0.0) + result.figures.get("duplicates").unwrap_or(0.0)),
        figure => result.figures.get(figure),
    }
}

/// PostgreSQL's CPU is measured on that backend only: its rows are left out elsewhere.
fn skipped(row: &Row, result: &ScenarioResult) -> bool {
    row.figure.starts_with("postgres_") && result.figures.get(row.figure).is_none()
}

/// The binary-size row says what was measured: a server-only build is not the shipped binary.
fn label(row: &Row, result: &ScenarioResult) -> &'static str {
    match (row.figure, result.figures.get("ui_embedded")) {
        ("binary_mb", Some(embedded)) if embedded == 0.0 => "release binary, no web app (CHATD_SKIP_UI=1), stripped",
        _ => row.label,
    }
}

fn failures(results: &[ScenarioResult]) -> String {
    let mut text = String::new();
    for result in results.iter().filter(|r| !r.failures.is_empty()) {
        text.push_str(&format!("\nScenario {} failures: {}\n", result.scenario, result.failures.join("; ")));
    }
    text
}

fn table(results: &[ScenarioResult]) -> String {
    let mut text = String::from("| # | figure | measured (median) | target | met | bare relay |\n|---|---|---|---|---|---|\n");
    for row in ROWS {
        let Some(result) = results.iter().find(|r| r.scenario == row.scenario) else { continue };
        if skipped(row, result) {
            continue;
        }
        let value = figure(row, result);
        // The steady rate is met when (nearly) all of the asked rate was delivered; a binary
        // without the web app cannot meet or miss the shipped binary's target.
        let goal = match (row.scenario, row.figure, result.params.get("rate").and_then(|r| r.as_f64())) {
            (3, "msgs_per_s", Some(rate)) => Goal::AtLeast(0.99 * rate),
            (8, _, _) if result.figures.get("ui_embedded") == Some(0.0) => Goal::None,
            _ => row.goal,
        };
        let (shown, met) = match value {
            Some(v) => (format!("{} {}", format_number(v), row.unit).trim_end().to_owned(), judge(goal, v)),
            None => ("—".to_owned(), ""),
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.scenario,
            label(row, result),
            shown,
            row.target,
            met,
            row.relay
        ));
    }
    text.push_str(&failures(results));
    text
}

fn judge(goal: Goal, value: f64) -> &'static str {
    let met = match goal {
        Goal::AtLeast(t) => value >= t,
        Goal::Below(t) => value < t,
        Goal::AtMost(t) => value <= t,
        Goal::None => return "",
    };
    if met { "yes" } else { "**no**" }
}

/// Thousands separators for big numbers, three decimals for small ones.

#[cfg(test)]
mod tests {
    use super::*;

    fn result(scenario: u8, figures: &[(&str, f64)]) -> ScenarioResult {
        let mut result = ScenarioResult::new(scenario, "test", json!({}));
        let mut run = crate::stats::Figures::default();
        for (name, value) in figures {
            run.set(name, *value);
        }
        result.add_run(run, Vec::new());
        result.finish()
    }

    #[test]
    fn a_smoke_table_says_so_and_judges_nothing() {
        let results =
            [result(1, &[("msgs_per_s", 1234.0), ("rx_p99_ms", 250.0)]), result(8, &[("binary_mb", 7.5), ("ui_embedded", 0.0)])];
        let smoke = smoke_table(&results);
        assert!(smoke.starts_with("Smoke run:"), "{smoke}");
        assert!(!smoke.contains("yes") && !smoke.contains("no**") && !smoke.contains("≥ 150,000"), "{smoke}");
        assert!(smoke.contains("| 1 | throughput, ≤ 64 unacked per sender | 1,234 msg/s |"), "{smoke}");
        assert!(smoke.contains("| 8 | release binary, no web app (CHATD_SKIP_UI=1), stripped | 7.5 MB |"), "{smoke}");

        let full = table(&results);
        assert!(full.contains("| 1 | send → receive p99 | 250 ms | < 200 | **no** |"), "{full}");
        assert!(full.contains("| 8 | release binary, no web app (CHATD_SKIP_UI=1), stripped | 7.5 MB | ≤ 20 |  |"), "{full}");
        let embedded = table(&[result(8, &[("binary_mb", 9.1), ("ui_embedded", 1.0)])]);
        assert!(embedded.contains("| 8 | release binary, UI embedded, stripped | 9.1 MB | ≤ 20 | yes |"), "{embedded}");
    }

    #[test]
    fn each_backend_and_node_count_keeps_its_own_results_in_the_file() {
        let dir = std::env::temp_dir().join(format!("chatd-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (out, input) = (dir.join("results.json"), dir.join("scenario-1.json"));
        let write_run = |backend: &str, nodes: usize, rate: f64| {
            let line = serde_json::to_string(&result(1, &[("msgs_per_s", rate)])).unwrap();
            std::fs::write(&input, line + "\n").unwrap();
            let setup = Setup { backend: backend.to_owned(), nodes };
            write(&out, "abc", "2026-12-10", "bench/run.sh", false, &setup, std::slice::from_ref(&input)).unwrap();
        };
        write_run("sqlite", 1, 100.0);
        write_run("postgres", 2, 50.0);
        write_run("postgres", 2, 60.0);
        write_run("postgres", 3, 40.0);
        let combined: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let kept: Vec<(String, u64, f64)> = combined["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["backend"].as_str().unwrap().to_owned(), r["nodes"].as_u64().unwrap(), r["figures"]["msgs_per_s"].as_f64().unwrap()))
            .collect();
        assert_eq!(kept, [("sqlite".into(), 1, 100.0), ("postgres".into(), 2, 60.0), ("postgres".into(), 3, 40.0)]);
        assert_eq!((combined["backend"].as_str(), combined["nodes"].as_u64()), (Some("postgres"), Some(3)));
        assert_eq!(combined["scenarios"][1]["provenance"]["nodes"], 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_number(152_345.4), "152,345");
        assert_eq!(format_number(4.5), "4.5");
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(123.4), "123");
    }
}
