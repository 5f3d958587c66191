//! One command-line convention across `sv-miner`, `sv-trainer` and `sv-curator`, each
//! run as a real process on the mistakes people make: every error is one line,
//! `<program>: error: …`, with exit 2 (usage errors from clap included); a check that ran
//! and failed exits 1; `--help` and `--version` exit 0; an old flag spelling still works
//! with a note naming the new one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use sv_tests::fixture;

/// A binary of this workspace (the other two are built beside `sv-miner` by `cargo test
/// --workspace`).
fn bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_sv-miner")).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p {name}`",
        path.display()
    );
    path
}

fn run(program: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(bin(program))
        .args(args)
        .current_dir(cwd)
        .env_remove("HF_TOKEN")
        .env_remove("WALLET_NAME")
        .env_remove("WALLET_HOTKEY")
        .env_remove("SUBTENSOR_CHAIN_ENDPOINT")
        .env_remove("SUBTENSOR_NETWORK")
        .env("HF_HUB_OFFLINE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// `program args` fails with exit 2 and exactly one error line naming `needle`.
fn refused(program: &str, args: &[&str], cwd: &Path, needle: &str) {
    let out = run(program, args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{program} {args:?}: {stderr}");
    let prefix = format!("{program}: error: ");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(errors.len(), 1, "{program} {args:?}: {stderr}");
    assert!(
        errors[0].contains(needle),
        "{program} {args:?}: expected {needle:?} in {stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("error:")),
        "clap's own format leaked: {stderr}"
    );
    // A cause is quoted once, not again by its parent.
    let parts: Vec<&str> = errors[0][prefix.len()..].split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            p.len() < 8 || !parts[i + 1..].contains(p),
            "{p:?} repeated in {}",
            errors[0]
        );
    }
}

#[test]
fn every_binary_reports_bad_input_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for program in ["sv-miner", "sv-trainer", "sv-curator"] {
        // Usage errors.
        refused(
            program,
            &["--no-such-flag"],
            d,
            "unexpected argument '--no-such-flag'",
        );
        refused(program, &["no-such-command"], d, "unrecognized subcommand");
        // Help and version.
        for flag in ["--help", "--version"] {
            let out = run(program, &[flag], d);
            assert!(out.status.success(), "{program} {flag}");
        }
    }
    // Missing required flags, bad values, missing files: named, exit 2.
    refused(
        "sv-trainer",
        &["eval"],
        d,
        "required arguments were not provided",
    );
    refused(
        "sv-trainer",
        &[
            "finetune",
            "--manifest",
            "m.jsonl",
            "--run-dir",
            "r",
            "--epochs",
            "x",
        ],
        d,
        "invalid value 'x' for '--epochs",
    );
    refused(
        "sv-trainer",
        &["eval", "--model", "missing-run", "--manifest", "m.jsonl"],
        d,
        "missing-run",
    );
    refused(
        "sv-trainer",
        &["loop", "--config", "missing.toml"],
        d,
        "missing.toml",
    );
    refused(
        "sv-curator",
        &["mix", "--manifest", "missing.jsonl", "--out", "o.jsonl"],
        d,
        "missing.jsonl",
    );
    refused(
        "sv-curator",
        &["ingest", "--out", "o.jsonl", "--log-dir", "no-such-log"],
        d,
        "no-such-log",
    );
    refused(
        "sv-curator",
        &[
            "mix",
            "--manifest",
            "m.jsonl",
            "--out",
            "o",
            "--policy",
            "sideways",
        ],
        d,
        "--policy",
    );
    refused(
        "sv-miner",
        &["classify", "--checkpoint", "missing.safetensors", "x.png"],
        d,
        "missing.safetensors",
    );
    // Without a wallet the key file is named; with one, the model.
    refused(
        "sv-miner",
        &[
            "serve",
            "--model",
            "missing-model",
            "--allowlist",
            "a.txt",
            "--wallet-path",
            "w",
        ],
        d,
        "w/default/hotkeys/default",
    );
    let wallets = wallets();
    refused(
        "sv-miner",
        &[
            "serve",
            "--model",
            "missing-model",
            "--allowlist",
            "a.txt",
            "--wallet-path",
            wallets.to_str().unwrap(),
            "--wallet-name",
            "fixture",
            "--wallet-hotkey",
            "phrase",
        ],
        d,
        "missing-model",
    );
    refused(
        "sv-miner",
        &[
            "register-model",
            "--uid",
            "1",
            "--hub-repo",
            "noslash",
            "--yes",
        ],
        d,
        "noslash",
    );
}

#[test]
fn old_spellings_work_with_a_note_and_a_failed_check_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `--repo` is now `--hub-repo`: parsed (the export is what fails), with a note.
    let out = run(
        "sv-trainer",
        &[
            "publish",
            "--repo",
            "a/b",
            "--export",
            "no-export",
            "--hotkey",
            "x",
            "--yes",
        ],
        d,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sv-trainer: note: --repo is now --hub-repo"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-export"), "{stderr}");
    let out = run(
        "sv-curator",
        &["ingest", "--out", "o.jsonl", "--miner-log", "no-such-log"],
        d,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sv-curator: note: --miner-log is now --log-dir"),
        "{stderr}"
    );
    assert!(stderr.contains("sv-curator: error: ") && stderr.contains("no-such-log"));

    // `--model` names any model source: the same answer as the file given as
    // `--checkpoint`.
    let ckpt = fixture("dinov2/hf_mlp.safetensors");
    let image = fixture("images/chelsea.png");
    let probability = |flag: &str| -> f64 {
        let out = run(
            "sv-miner",
            &[
                "classify",
                flag,
                ckpt.to_str().unwrap(),
                "--json",
                image.to_str().unwrap(),
            ],
            d,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value =
            serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
        line["roadwork_probability"].as_f64().unwrap()
    };
    assert_eq!(probability("--model"), probability("--checkpoint"));

    // A challenge nobody answers is a check that failed: exit 1.
    for (label, file) in [
        ("roadwork", "chelsea.png"),
        ("no_roadwork", "camera_grey.png"),
    ] {
        let folder = d.join("images").join(label);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(fixture(&format!("images/{file}")), folder.join(file)).unwrap();
    }
    let out = Command::new(bin("sv-miner"))
        .args(["challenge", "--miner", "127.0.0.1:9", "--timeout", "1"])
        .args(["--miner-hotkey", &miner_key().ss58])
        .arg("--folder")
        .arg(d.join("images"))
        .arg("--wallet-path")
        .arg(wallets())
        .env("CHALLENGE_WALLET_NAME", "fixture")
        .env("CHALLENGE_WALLET_HOTKEY", "seeded")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("below --min-answered"), "{stderr}");
}

/// Every command that prints a result takes `--json`; with it, standard output is one
/// JSON document a script can read, and the lines for people go to standard error.
#[test]
fn every_result_is_available_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let commands: &[(&str, &[&str])] = &[
        (
            "sv-miner",
            &[
                "classify",
                "challenge",
                "register",
                "register-model",
                "new-hotkey",
            ],
        ),
        (
            "sv-trainer",
            &[
                "finetune",
                "probe",
                "eval",
                "ab",
                "fit-ensemble",
                "export",
                "publish",
                "quickstart",
                "loop",
            ],
        ),
        (
            "sv-curator",
            &["ingest", "embed", "dedup", "mine", "autolabel", "mix"],
        ),
    ];
    for (program, subcommands) in commands {
        for sub in *subcommands {
            let out = run(program, &[sub, "--help"], d);
            let help = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{program} {sub} --help");
            assert!(
                help.contains("--json"),
                "{program} {sub} has no --json:\n{help}"
            );
        }
    }

    // new-hotkey: the address, files and mnemonic as JSON; the files are there.
    let wallets = d.join("wallets");
    let out = run(
        "sv-miner",
        &[
            "new-hotkey",
            "--wallet-path",
            wallets.to_str().unwrap(),
            "--wallet-name",
            "w",
            "--wallet-hotkey",
            "h",
            "--json",
        ],
        d,
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(Path::new(v["file"].as_str().unwrap()).is_file(), "{v}");
    assert!(
        Path::new(v["public_file"].as_str().unwrap()).is_file(),
        "{v}"
    );
    assert_eq!(v["mnemonic"].as_str().unwrap().split(' ').count(), 12);
    assert!(v["ss58"].as_str().unwrap().starts_with('5'));

    // ingest then mix: counts as JSON, the human lines on standard error.
    for (label, file) in [
        ("roadwork", "chelsea.png"),
        ("no_roadwork", "camera_grey.png"),
    ] {
        let folder = d.join("pool").join(label);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(fixture(&format!("images/{file}")), folder.join(file)).unwrap();
    }
    let out = run(
        "sv-curator",
        &["ingest", "--folder", "pool", "--out", "all.jsonl", "--json"],
        d,
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["samples"], 2, "{v}");
    assert_eq!(v["report"]["sources"]["folder"]["kept"], 2, "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 samples written"));
    let out = run(
        "sv-curator",
        &[
            "mix",
            "--manifest",
            "all.jsonl",
            "--out",
            "mixed.jsonl",
            "--ratios",
            "folder=1",
            "--json",
        ],
        d,
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["out"], "mixed.jsonl", "{v}");
    assert!(v["samples"].as_u64().unwrap() >= 2, "{v}");
}
