//! `sv-miner serve` answering validator-style challenges (the four augmentation levels,
//! 224×224 JPEG at quality 75, written by `tools/gen_model_zoo.py`) with models from the
//! zoo whose roadwork label is label 0 and label 1, DINOv2 and ConvNeXt-V2: every answer
//! must equal transformers' probability on the same bytes, decoded by PIL, within 1e-4.

mod common;

use common::*;
use serde_json::Value;
use sv_axon::dendrite::Dendrite;
use sv_tests::fixture;

fn zoo() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("zoo/expected.json")).unwrap()).unwrap()
}

#[test]
fn served_answers_equal_transformers_on_validator_challenges() {
    let meta = zoo();
    let challenges: Vec<&str> = meta["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|n| n.starts_with("challenge_"))
        .collect();
    assert_eq!(challenges.len(), 8);
    // One transformers model of each family with roadwork at 0, and one with it at 1.
    let mut picked = Vec::new();
    for family in ["dinov2_hf", "convnextv2_hf"] {
        for index in [0, 1] {
            if let Some(m) =
                meta["models"].as_array().unwrap().iter().find(|m| {
                    m["name"].as_str().unwrap().starts_with(family) && m["roadwork"] == index
                })
            {
                picked.push(m);
            }
        }
    }
    assert!(picked.len() >= 3, "the zoo lacks label orders");
    for m in picked {
        let dir = tempfile::tempdir().unwrap();
        let model = fixture(&format!("zoo/{}", m["name"].as_str().unwrap()));
        let miner = MinerProcess::start(
            dir.path(),
            &format!(
                "model = {model:?}\nallowlist = {:?}\n",
                allowlist(dir.path())
            ),
        );
        let d = Dendrite::new(validator());
        let index = m["roadwork"].as_u64().unwrap() as usize;
        for name in &challenges {
            let bytes = std::fs::read(fixture(&format!("zoo/images/{name}"))).unwrap();
            let a = d.call("ImageSynapse", image_fields(&bytes), &miner.target(), 30.0);
            assert_eq!(
                a.status,
                200,
                "{:?}\n{}",
                a.message,
                miner.log.lock().unwrap()
            );
            let got = a.prediction().unwrap();
            let want = m["probs"][name][index].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-4,
                "{} on {name}: served {got}, transformers {want}",
                m["name"]
            );
        }
    }
}
