//! sv-train's metrics against scikit-learn on the same predictions
//! (`tools/gen_train_fixtures.py metrics`): ties, a prediction exactly at 0.5, a set with
//! one class, inverted predictions.

use serde_json::Value;
use sv_tests::fixture;
use sv_train::metrics::Report;

#[test]
fn metrics_equal_scikit_learn() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("train/metrics.json")).unwrap())
            .unwrap();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let pairs: Vec<(f64, bool)> = case["p"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["y"].as_array().unwrap())
            .map(|(p, y)| (p.as_f64().unwrap(), y.as_i64().unwrap() == 1))
            .collect();
        let r = Report::of(&pairs);
        let close = |what: &str, got: f64, key: &str| {
            let want = case[key].as_f64().unwrap();
            assert!((got - want).abs() < 1e-12, "{name} {what}: {got} vs {want}");
        };
        close("accuracy", r.accuracy, "accuracy");
        close("mcc", r.mcc, "mcc");
        close("f1", r.f1, "f1");
        close("brier", r.brier, "brier");
        close("ece", r.ece, "ece");
        if case["balanced_accuracy"].is_f64() {
            close(
                "balanced accuracy",
                r.balanced_accuracy,
                "balanced_accuracy",
            );
        }
        match case["roc_auc"].as_f64() {
            Some(want) => {
                let got = r.roc_auc.unwrap();
                assert!(
                    (got - want).abs() < 1e-12,
                    "{name} roc_auc: {got} vs {want}"
                );
            }
            None => assert_eq!(r.roc_auc, None, "{name}: one class has no ROC-AUC"),
        }
        let c = &case["confusion"];
        assert_eq!(
            [
                r.confusion.tp,
                r.confusion.fp,
                r.confusion.tn,
                r.confusion.fn_
            ],
            ["tp", "fp", "tn", "fn"].map(|k| c[k].as_u64().unwrap()),
            "{name} confusion"
        );
    }
}
