//! Runs at the same time, two of them on the same workspace: each one's secret, variables,
//! setup output, logs, report, patch and network belong to it alone.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::harness::Test;
use crate::harness::{assert_run_gone, contains, Fixture};

const RUNS: usize = 8;

fn secret_value(i: usize) -> String {
    format!("kP9vQ2-run{i}-Zt7mW4xRbL")
}

#[test]
fn eight_runs_at_once_keep_their_secrets_variables_records_and_networks_apart() {
    let f = Fixture::new();
    // Runs 0..5 each have a workspace; runs 6 and 7 share one.
    let ws = |i: usize| -> PathBuf {
        let name = if i >= 6 {
            "ws-shared".to_string()
        } else {
            format!("ws{i}")
        };
        f.root.path().join(name)
    };
    for i in 0..RUNS {
        std::fs::create_dir_all(ws(i)).unwrap();
        std::fs::write(ws(i).join("common.txt"), "same in every workspace\n").unwrap();
        f.secret(&format!("SECRET_{i}"), secret_value(i).as_bytes());
        f.env(
            &format!("c{i}"),
            &format!(
                "image: tiny\nenv:\n  VAR_{i}: plain-{i}\nsecrets: [SECRET_{i}]\nsetup: |\n  echo setup-output-{i}\n  echo \"secret is $SECRET_{i}\"\n  echo CROSS_{i}=crossed-{i} >> $AIRLOCK_ENV\n  echo NET_{i}=$(ip route | awk '/default/ {{print $3}}') >> $AIRLOCK_ENV\nlimits:\n  setup_timeout: 2m\n  agent_timeout: 2m\n"
            ),
        );
    }
    let out = |i: usize| f.root.path().join(format!("out{i}"));
    // Every agent runs the same command: it writes what it sees into mine.txt.
    let handles: Vec<_> = (0..RUNS)
        .map(|i| {
            let test = Test::new()
                .root(&f.root)
                .env("AIRLOCK_IDENTITY", &f.identity)
                .args(["run", &format!("c{i}"), "-w"])
                .arg(ws(i))
                .arg("--out")
                .arg(out(i))
                .args([
                    "--",
                    "sh",
                    "-c",
                    &format!(
                        "env | grep -E '^(VAR|CROSS|NET|SECRET)_' | sort > mine.txt; echo agent-output-{i}; cat mine.txt"
                    ),
                ]);
            std::thread::spawn(move || test.run())
        })
        .collect();
    let outputs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let mut run_ids = BTreeSet::new();
    let mut gateways = BTreeSet::new();
    for (i, output) in outputs.into_iter().enumerate() {
        let output = output.success();
        for j in 0..RUNS {
            let output_ref = &output;
            assert!(
                !contains(&output_ref.stdout, secret_value(j).as_bytes())
                    && !contains(&output_ref.stderr, secret_value(j).as_bytes()),
                "run {i}'s output shows secret {j}"
            );
        }
        let stderr = output.stderr();
        let read = |name: &str| std::fs::read(out(i).join(name)).unwrap_or_default();
        let report: serde_json::Value = serde_json::from_slice(&read("report.json")).unwrap();
        let (setup_log, agent_log, patch) =
            (read("setup.log"), read("agent.log"), read("changes.patch"));

        assert_eq!(report["outcome"], "succeeded", "run {i}: {report:#}");
        assert_eq!(
            report["secrets"],
            serde_json::json!([format!("SECRET_{i}")])
        );
        assert_eq!(report["workspace"], ws(i).display().to_string());
        let crossed: BTreeSet<&str> = report["boundary"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let expected: BTreeSet<String> = ["VAR", "CROSS", "NET"]
            .iter()
            .map(|k| format!("{k}_{i}"))
            .collect();
        assert_eq!(
            crossed,
            expected.iter().map(String::as_str).collect(),
            "run {i}"
        );
        run_ids.insert(report["run_id"].as_str().unwrap().to_string());

        assert!(contains(
            &setup_log,
            format!("setup-output-{i}\n").as_bytes()
        ));
        assert!(contains(
            &setup_log,
            format!("secret is [redacted:SECRET_{i}]").as_bytes()
        ));
        assert!(contains(
            &agent_log,
            format!("agent-output-{i}\n").as_bytes()
        ));
        assert!(stderr.contains(&format!("agent | agent-output-{i}")));
        for line in [
            format!("VAR_{i}=plain-{i}"),
            format!("CROSS_{i}=crossed-{i}"),
        ] {
            assert!(contains(&agent_log, line.as_bytes()), "run {i}: {line}");
            assert!(
                contains(&patch, format!("+{line}\n").as_bytes()),
                "run {i}'s patch lacks {line}"
            );
        }
        assert!(contains(&patch, b"mine.txt"));
        assert!(!contains(&patch, b"SECRET_"), "a secret variable crossed");
        for j in (0..RUNS).filter(|&j| j != i) {
            for (what, data) in [
                ("setup.log", &setup_log),
                ("agent.log", &agent_log),
                ("changes.patch", &patch),
            ] {
                for theirs in [
                    format!("setup-output-{j}\n"),
                    format!("agent-output-{j}\n"),
                    format!("VAR_{j}"),
                    format!("CROSS_{j}"),
                    format!("NET_{j}"),
                ] {
                    assert!(
                        !contains(data, theirs.as_bytes()),
                        "run {i}'s {what} holds run {j}'s {theirs:?}"
                    );
                }
            }
        }
        for name in ["setup.log", "agent.log", "changes.patch", "report.json"] {
            for j in 0..RUNS {
                assert!(
                    !contains(&read(name), secret_value(j).as_bytes()),
                    "run {i}'s {name} holds secret {j}"
                );
            }
        }
        // The gateway of this run's setup network, as its setup saw it.
        let text = String::from_utf8_lossy(&agent_log).into_owned();
        let gw = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("NET_{i}=")))
            .unwrap_or_else(|| panic!("run {i} has no NET_{i}:\n{text}"));
        assert!(!gw.is_empty(), "run {i}'s setup saw no gateway");
        gateways.insert(gw.to_string());
        assert_run_gone(report["run_id"].as_str().unwrap());
    }
    assert_eq!(run_ids.len(), RUNS, "run ids: {run_ids:?}");
    assert_eq!(
        gateways.len(),
        RUNS,
        "the setup phases shared networks: {gateways:?}"
    );
    // No run wrote to a host workspace (nothing was applied).
    for i in 0..RUNS {
        assert!(!ws(i).join("mine.txt").exists());
    }
}
