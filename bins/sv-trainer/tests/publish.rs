//! `sv-trainer publish` as a real process against a loopback Hub (`sv_tests::hub_writer`):
//! the export's files arrive byte for byte with a README model card and a commit message
//! carrying the version and metrics; a card the validators would reject is refused before
//! anything is sent.

use std::path::Path;
use std::process::Command;

use sv_tests::fixture;
use sv_tests::hub_writer::fake_hub;

const HOTKEY: &str = "5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe";

fn export(dir: &Path) {
    std::fs::copy(
        fixture("convnext/hf_cls.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        fixture("convnext/hf_cls.config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    std::fs::copy(
        fixture("preprocess/convnext224.preprocessor_config.json"),
        dir.join("preprocessor_config.json"),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let card = serde_json::json!({"model_name": "roadwork-owl", "description": "cones",
        "version": "2.0.1", "submitted_by": HOTKEY, "submission_time": now});
    std::fs::write(dir.join("model_card.json"), card.to_string()).unwrap();
}

fn publish(base: &str, export: &Path, hotkey: &str, eval: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sv-trainer"))
        .args([
            "publish",
            "--hub-repo",
            "streetvision/owl",
            "--hotkey",
            hotkey,
            "--yes",
        ])
        .arg("--export")
        .arg(export)
        .arg("--eval")
        .arg(eval)
        .env("HF_ENDPOINT", base)
        .env("HF_TOKEN", "hf_test")
        .output()
        .unwrap()
}

#[test]
fn an_export_is_published_in_one_commit_and_a_foreign_card_is_refused() {
    let (base, store) = fake_hub();
    let dir = tempfile::tempdir().unwrap();
    export(dir.path());
    let eval = dir.path().join("eval.json");
    let report = sv_train::metrics::Report::of(&[(0.9, true), (0.1, false)]);
    std::fs::write(&eval, serde_json::to_vec(&report).unwrap()).unwrap();

    let other = "5DtDLm5rQHShDqojQpsvcN8tRXHVFaecfDoRet1SU6BFD9Fi";
    let out = publish(&base, dir.path(), other, &eval);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("submitted_by"), "{err}");
    assert!(
        store.lock().unwrap().repos.is_empty(),
        "nothing may be sent"
    );

    let out = publish(&base, dir.path(), HOTKEY, &eval);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = store.lock().unwrap();
    assert_eq!(st.repos, ["streetvision/owl"]);
    for f in [
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "model_card.json",
    ] {
        assert_eq!(
            st.files[f],
            std::fs::read(dir.path().join(f)).unwrap(),
            "{f}"
        );
    }
    let readme = String::from_utf8(st.files["README.md"].clone()).unwrap();
    assert!(
        readme.contains("roadwork-owl") && readme.contains(HOTKEY),
        "{readme}"
    );
    assert!(
        st.summary
            .starts_with("roadwork-owl 2.0.1: accuracy 1.0000, MCC 1.0000"),
        "{}",
        st.summary
    );
    assert!(st.unauthorised.is_empty());
}
