//! The NATIX parquet reader on shards written by pyarrow in the dataset's schema
//! (`tools/gen_data_fixtures.py`): snappy and zstd, two rows per row group, an HF `Image`
//! struct column, and bad rows (label/description disagreements, truncated and empty
//! images, a duplicate).

use sv_data::{Label, Location, NatixOptions, SkipReason, Source, read_natix};
use sv_tests::fixture;

fn shards() -> Vec<std::path::PathBuf> {
    [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    .iter()
    .map(|n| fixture(&format!("data/natix/{n}")))
    .collect()
}

#[test]
fn rows_become_samples_or_counted_skips() {
    let (samples, report) = read_natix(&shards(), &NatixOptions::default()).unwrap();
    let text = std::fs::read_to_string(fixture("data/natix_expected.json")).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let kept: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| matches!(r["outcome"].as_str(), Some("roadwork" | "no_roadwork")))
        .collect();
    assert_eq!(samples.len(), kept.len());
    for (s, r) in samples.iter().zip(kept) {
        let Location::Parquet { path, row, column } = &s.location else {
            panic!("parquet samples point into the shard")
        };
        assert!(path.ends_with(r["file"].as_str().unwrap()));
        assert_eq!(*row, r["row"].as_u64().unwrap());
        assert_eq!(column, "image");
        assert_eq!(s.id, r["sha256"].as_str().unwrap());
        let label = if r["outcome"] == "roadwork" {
            Label::Roadwork
        } else {
            Label::NoRoadwork
        };
        assert_eq!(s.label, label);
        assert_eq!(s.source, Source::Natix);
        for key in ["weather", "captured_at", "speed_kmh"] {
            assert_eq!(s.metadata[key], r[key], "{key} of row {row}");
        }
        assert_eq!(s.metadata["scene_description"], r["description"]);
        match r["path"].as_str() {
            Some(p) => assert_eq!(s.metadata["image_path"], p),
            None => assert!(!s.metadata.contains_key("image_path")),
        }
        // The bytes read back through the location are the ones hashed.
        assert_eq!(sv_data::content_id(&s.location.read().unwrap()), s.id);
    }
    let counts: Vec<(SkipReason, usize)> = report.counts.clone().into_iter().collect();
    assert_eq!(
        counts,
        vec![
            (SkipReason::Empty, 1),
            (SkipReason::Truncated, 1),
            (SkipReason::Duplicate, 1),
            (SkipReason::Inconsistent, 2),
        ],
        "{report}"
    );
}

#[test]
fn a_file_that_is_not_parquet_is_an_error_naming_it() {
    let err = read_natix(
        &[fixture("data/natix_expected.json")],
        &NatixOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("natix_expected.json"), "{err}");
}
