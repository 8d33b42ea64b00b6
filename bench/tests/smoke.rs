//! The benchmark at tiny sizes (`--smoke`), so that it cannot rot: every scenario runs against
//! its own throwaway cluster and reports numbers in the JSON shape `docs/benchmarks.md`
//! describes, and the counts that show the work was done right hold. No timing is asserted.

use std::process::Command;

use serde_json::Value;

fn results_of<'a>(document: &'a Value, scenario: &str) -> Vec<&'a Value> {
    document["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter(|r| r["scenario"] == scenario)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_scenario_runs_and_reports_its_numbers() {
    let output = Command::new(env!("CARGO_BIN_EXE_pgq-bench"))
        .args(["--smoke", "--json"])
        .output()
        .expect("pgq-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pgq-bench failed: {stderr}");
    let document: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(document["smoke"], Value::Bool(true));
    assert_eq!(document["postgresql"]["fsync"], "on", "durable settings");
    assert_eq!(document["postgresql"]["synchronous_commit"], "on");

    for scenario in [
        "enqueue",
        "drain",
        "drain (synchronous_commit off)",
        "drain (notify_completion)",
        "throughput",
        "latency",
        "backlog 1000",
        "backlog 1000 (limits)",
        "worker memory",
        "durability (durable)",
        "durability (balanced)",
        "durability (volatile)",
        "pinned xmin: before",
        "pinned xmin: during",
        "pinned xmin: after",
    ] {
        let results = results_of(&document, scenario);
        assert!(!results.is_empty(), "no result for {scenario}");
        for result in results {
            let value = result["value"].as_f64().unwrap_or(-1.0);
            assert!(value > 0.0, "{scenario}: {result}");
        }
    }

    let drain = results_of(&document, "drain")[0];
    assert!(drain["raw_sql"].as_f64().unwrap_or(0.0) > 0.0, "{drain}");
    assert!(drain["ratio"].as_f64().is_some(), "{drain}");
    // Every number with a raw-SQL baseline has the minimal queue's beside it (the baseline
    // functions fail the run unless they did all their work: every job claimed and logged).
    for scenario in [
        "enqueue",
        "drain",
        "drain (synchronous_commit off)",
        "throughput",
        "latency",
        "backlog 1000",
        "backlog 1000 (limits)",
    ] {
        for result in results_of(&document, scenario) {
            assert!(
                result["minimal_queue"].as_f64().unwrap_or(0.0) > 0.0
                    && result["minimal_ratio"].as_f64().is_some(),
                "{scenario}: {result}"
            );
        }
    }
    let minimal_throughput = &results_of(&document, "throughput")[0]["detail"]["minimal_queue"];
    assert_eq!(
        minimal_throughput["duplicate_log_rows"], 0,
        "{minimal_throughput}"
    );
    let backlog = &results_of(&document, "backlog 1000")[0]["detail"];
    assert!(
        backlog["minimal_claimed_per_claim"].as_f64() > Some(0.0)
            && backlog["minimal_claimed_per_claim"] == backlog["raw_claimed_per_claim"],
        "both baselines claim the same batches: {backlog}"
    );
    let detail = &drain["detail"];
    assert_eq!(
        (
            &detail["left"],
            &detail["log_rows"],
            &detail["duplicate_log_rows"]
        ),
        (&Value::from(0), &Value::from(500), &Value::from(0)),
        "every job ran once: {detail}"
    );

    let notified = &results_of(&document, "drain (notify_completion)")[0]["detail"];
    assert_eq!(
        (&notified["left"], &notified["log_rows"]),
        (&Value::from(0), &Value::from(500)),
        "{notified}"
    );

    let volatile = &results_of(&document, "durability (volatile)")[0]["detail"];
    assert_eq!(volatile["log_rows"], 500, "every job ran once: {volatile}");
    let pinned = &results_of(&document, "pinned xmin: before")[0]["detail"];
    assert_eq!(
        pinned["run"]["windows"].as_array().map(Vec::len),
        Some(30),
        "{pinned}"
    );

    let throughput = &results_of(&document, "throughput")[0]["detail"];
    assert_eq!(throughput["duplicate_log_rows"], 0, "{throughput}");

    let latency = results_of(&document, "latency");
    let metrics: Vec<&Value> = latency.iter().map(|r| &r["metric"]).collect();
    assert_eq!(metrics, ["p50", "p90", "p99", "max"]);
    assert_eq!(latency[0]["detail"]["jobs"], 10);

    let backlog = results_of(&document, "backlog 1000");
    assert_eq!(
        backlog[0]["detail"]["claimed_per_claim"], 100.0,
        "full batches: {}",
        backlog[0]
    );

    let memory = &results_of(&document, "worker memory")[0];
    assert_eq!(memory["unit"], "MiB");
    assert_eq!(memory["detail"]["log_rows"], 200, "{memory}");
    assert_eq!(memory["detail"]["left"], 0, "{memory}");
}
