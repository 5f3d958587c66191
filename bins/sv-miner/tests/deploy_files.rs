//! The files in `deploy/` stay in step with the program: the example config parses
//! with every key known, and the command lines of the systemd unit and the PM2 file
//! are accepted by `sv-miner` (checked with `--help`, which parses every flag first).

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

/// `args` (after the program name) accepted by `sv-miner`, with the config path
/// pointed at the repository's example.
fn accepted(args: &str) {
    let example = deploy("miner.toml");
    let mut words: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    if let Some(i) = words.iter().position(|w| w == "--config") {
        words[i + 1] = example.display().to_string();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sv-miner"))
        .args(&words)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_config_parses_with_every_key_known() {
    let config = sv_serve::MinerConfig::load(Some(&deploy("miner.toml"))).unwrap();
    assert_eq!(config.netuid, 72);
    assert_eq!(config.hub_poll_seconds, 300);
    assert!(config.model.as_deref().unwrap().starts_with("hf://"));
}

#[test]
fn the_systemd_unit_and_the_pm2_file_run_commands_sv_miner_accepts() {
    let unit = std::fs::read_to_string(deploy("sv-miner.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let (program, args) = exec.split_once(' ').unwrap();
    assert!(program.ends_with("/sv-miner"), "{program}");
    accepted(args);
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("Restart=always"));

    let pm2 = std::fs::read_to_string(deploy("ecosystem.config.js")).unwrap();
    let args = pm2
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: \""))
        .and_then(|rest| rest.strip_suffix("\","))
        .expect("args line");
    assert!(pm2.contains("script: \"sv-miner\""));
    accepted(args);
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_miner_exports() {
    use sv_serve::metrics::Metrics;
    let text = std::fs::read_to_string(deploy("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    // A miner's metrics with every family present: a request, a batch, a model with an
    // age, the chain link.
    let m = Metrics::default();
    m.request(
        200,
        Some("5Validator"),
        std::time::Duration::from_millis(20),
    );
    m.batch(2, std::time::Duration::from_millis(10));
    m.model_loaded("1.0.0+abc", Some(1), true);
    m.swap_failed();
    m.chain_refreshed(100, 5);
    m.chain_registered(true);
    m.axon_served(true);
    m.chain_failed();
    let exported = m.render();
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("sv_miner_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                queried.push(name);
            }
        }
    }
    assert!(queried.len() >= 12, "{queried:?}");
    for name in queried {
        assert!(
            exported
                .lines()
                .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{"))),
            "the dashboard queries {name}, which /metrics does not export:\n{exported}"
        );
    }
}
