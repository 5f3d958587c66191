//! `sv-trainer loop` as a user meets it: the example config it prints parses, `--dry-run`
//! from another directory resolves paths against the config file and shows the plan, a
//! production younger than `retrain_after_days` is not retrained, mistakes are named,
//! and the loop's systemd unit, timer and PM2 entry run command lines it accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trainer(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sv-trainer"))
        .args(args)
        .current_dir(cwd)
        .env_remove("HF_TOKEN")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

#[test]
fn the_example_config_drives_a_dry_run_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let example = trainer(&["loop", "--example-config"], d);
    assert!(example.status.success());
    let config_dir = d.join("etc");
    std::fs::create_dir_all(&config_dir).unwrap();
    let file = config_dir.join("loop.toml");
    std::fs::write(&file, &example.stdout).unwrap();
    let config = sv_loop::LoopConfig::load(&file).unwrap();
    assert_eq!(config.work_dir, config_dir.join("loop"));

    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = trainer(
        &["loop", "--dry-run", "--config", file.to_str().unwrap()],
        &elsewhere,
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("unknown age") && said.contains("cycle 1"),
        "{said}"
    );
    assert!(
        said.contains(&config_dir.join("loop/cycles/0001").display().to_string()),
        "{said}"
    );
    for step in sv_loop::Step::ALL {
        assert!(
            said.contains(step.name()),
            "{step} missing from the plan: {said}"
        );
    }
    assert!(
        !config_dir.join("loop").exists(),
        "a dry run writes nothing"
    );

    // A production published an hour ago is not due at retrain_after_days = 1.
    let run = config_dir.join("runs/base");
    std::fs::create_dir_all(&run).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        run.join("model_card.json"),
        format!(r#"{{"submission_time": {}}}"#, now - 3600),
    )
    .unwrap();
    let out = trainer(
        &["loop", "--dry-run", "--config", file.to_str().unwrap()],
        &elsewhere,
    );
    assert!(text(&out).contains("not due"), "{}", text(&out));
    let out = trainer(&["loop", "--config", file.to_str().unwrap()], &elsewhere);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
    let out = trainer(
        &["loop", "--json", "--config", file.to_str().unwrap()],
        &elsewhere,
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let age = v["not_due"]["age_days"].as_f64().unwrap();
    assert!(age > 0.0 && age < 0.1, "{v}");
    assert_eq!(v["not_due"]["retrain_after_days"], 1.0);
}

#[test]
fn mistakes_are_named_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = trainer(&["loop", "--config", "missing.toml"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("missing.toml"), "{}", text(&out));

    let example = String::from_utf8(trainer(&["loop", "--example-config"], d).stdout).unwrap();
    let file = d.join("loop.toml");
    std::fs::write(&file, example.replace("[train]", "[train]\nepoch = 3")).unwrap();
    let out = trainer(&["loop", "--dry-run", "--config", "loop.toml"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("epoch") && text(&out).contains("loop.toml"),
        "{}",
        text(&out)
    );

    // Without a Hub token the loop stops before any work, naming what is missing.
    let wallet = format!(
        "[wallet]\nname = \"fixture\"\nhotkey = \"phrase\"\npath = {:?}\n",
        sv_tests::fixture("axon/wallets")
    );
    let text_of = example
        .replace("retrain_after_days = 1", "retrain_after_days = 0")
        .replace(
            "[wallet]\nname = \"default\"\nhotkey = \"default\"\n",
            &wallet,
        );
    assert!(text_of.contains("fixture"));
    std::fs::write(&file, text_of).unwrap();
    let out = trainer(&["loop", "--config", "loop.toml"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("HF_TOKEN"), "{}", text(&out));
    assert!(!d.join("loop/cycles").exists(), "{}", text(&out));
}

/// `args` (after the program name) accepted by `sv-trainer`.
fn accepted(args: &str) {
    let words: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new(env!("CARGO_BIN_EXE_sv-trainer"))
        .args(&words)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args}: {}", text(&out));
}

#[test]
fn the_loop_unit_timer_and_pm2_entry_run_commands_sv_trainer_accepts() {
    let unit = std::fs::read_to_string(deploy("sv-loop.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let (program, args) = exec.split_once(' ').unwrap();
    assert!(program.ends_with("/sv-trainer"), "{program}");
    accepted(args);
    assert!(unit.contains("Type=oneshot"));
    assert!(
        unit.contains("SuccessExitStatus=1"),
        "a kept production is no failure"
    );
    let timer = std::fs::read_to_string(deploy("sv-loop.timer")).unwrap();
    assert!(timer.contains("OnCalendar=daily") && timer.contains("Persistent=true"));

    let pm2 = std::fs::read_to_string(deploy("ecosystem.config.js")).unwrap();
    let app = pm2
        .split("name: \"sv-loop\"")
        .nth(1)
        .expect("an sv-loop app");
    let args = app
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: \""))
        .and_then(|rest| rest.strip_suffix("\","))
        .expect("args line");
    assert!(app.contains("script: \"sv-trainer\"") && app.contains("cron_restart"));
    accepted(args);
}
