//! Which logit of a classifier head means "roadwork", read from an HF `config.json`'s
//! `id2label`, by one rule shared by every command that answers with a probability.
//!
//! A label is the roadwork label when its name, ignoring case, separators (space, `_`,
//! `-`, `.`, `/`) and a plural `s`, is exactly `roadwork`: `Roadwork`, `road_work`,
//! `ROADWORKS` match; `no_roadwork`, `not roadwork`, `non-roadwork`, `None` and
//! `background` do not. Two such labels are an error. With none, a two-label head whose
//! other label negates roadwork (`no_roadwork`, `None`, `background`, …) takes the
//! other one; any other two-label head takes label 1 (the convention of every trainer
//! in this project and of the subnet's base miner); a head of any other width is an
//! error naming the file and its labels.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ModelError, Result};

/// The normalised form of a label name: lower case, without separators or a plural `s`.
fn normalise(name: &str) -> String {
    let mut s: String = name
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.' | '/' | '\t'))
        .flat_map(char::to_lowercase)
        .collect();
    if s.len() > 1 && s.ends_with('s') {
        s.pop();
    }
    s
}

/// Whether a label name is the roadwork label.
pub fn is_roadwork_label(name: &str) -> bool {
    normalise(name) == "roadwork"
}

/// Whether a label name says "not roadwork" (`no_roadwork`, `not roadwork`, `None`,
/// `background`, `negative`, `clean`, `other`).
pub fn is_negative_label(name: &str) -> bool {
    let n = normalise(name);
    matches!(
        n.as_str(),
        "none" | "no" | "background" | "negative" | "clean" | "other" | "normal" | "0" | "false"
    ) || ["no", "not", "non", "without"]
        .iter()
        .any(|p| n.strip_prefix(p).is_some_and(is_roadwork_label))
}

/// The `id2label` of an HF `config.json`, by numeric id. `Ok(None)` when the config has
/// none; an error when it is not JSON or an id is not a number.
pub fn id2label(config_text: &str, file: &Path) -> Result<Option<BTreeMap<usize, String>>> {
    let v: serde_json::Value = serde_json::from_str(config_text)
        .map_err(|e| ModelError::Config(format!("{}: {e}", file.display())))?;
    let Some(map) = v.get("id2label").and_then(|m| m.as_object()) else {
        return Ok(None);
    };
    let mut out = BTreeMap::new();
    for (id, label) in map {
        let i: usize = id.trim().parse().map_err(|_| {
            ModelError::Config(format!(
                "{}: id2label key `{id}` is not a label index",
                file.display()
            ))
        })?;
        let name = match label {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.insert(i, name);
    }
    Ok(Some(out))
}

/// The roadwork index among `labels` (an `id2label`) of a head with `num_labels` outputs;
/// `file` names the config in errors. See the module documentation for the rule.
pub fn roadwork_index(
    labels: Option<&BTreeMap<usize, String>>,
    num_labels: usize,
    file: &Path,
) -> Result<usize> {
    let shown = || match labels {
        Some(l) => format!("{l:?}"),
        None => "no id2label".to_string(),
    };
    if let Some(labels) = labels {
        let matches: Vec<usize> = labels
            .iter()
            .filter(|(_, name)| is_roadwork_label(name))
            .map(|(&i, _)| i)
            .collect();
        match matches.as_slice() {
            [i] if *i < num_labels => return Ok(*i),
            [i] => {
                return Err(ModelError::Config(format!(
                    "{}: the roadwork label has index {i}, but the head has {num_labels} outputs ({})",
                    file.display(),
                    shown()
                )));
            }
            [] => {}
            _ => {
                return Err(ModelError::Config(format!(
                    "{}: more than one label names roadwork ({}); keep one, or pass the index \
                     (--roadwork-index)",
                    file.display(),
                    shown()
                )));
            }
        }
        if num_labels == 2 {
            let negative: Vec<usize> = (0..2)
                .filter(|i| labels.get(i).is_some_and(|n| is_negative_label(n)))
                .collect();
            if let [i] = negative.as_slice() {
                return Ok(1 - i);
            }
        }
    }
    if num_labels == 2 {
        return Ok(1);
    }
    Err(ModelError::Config(format!(
        "{}: the head has {num_labels} labels and none is named roadwork ({}); \
         pass the index (--roadwork-index)",
        file.display(),
        shown()
    )))
}

/// The roadwork index from the text of a `config.json` (see [`roadwork_index`]).
pub fn roadwork_index_from_config(text: &str, num_labels: usize, file: &Path) -> Result<usize> {
    roadwork_index(id2label(text, file)?.as_ref(), num_labels, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(pairs: &[(usize, &str)], n: usize) -> Result<usize> {
        let map: BTreeMap<usize, String> = pairs.iter().map(|(i, s)| (*i, s.to_string())).collect();
        roadwork_index(Some(&map), n, Path::new("config.json"))
    }

    #[test]
    fn spellings_of_roadwork_match() {
        for name in [
            "roadwork",
            "Roadwork",
            "ROADWORK",
            "road_work",
            "Road Work",
            "road-works",
            "Roadworks",
        ] {
            assert!(is_roadwork_label(name), "{name}");
            assert_eq!(idx(&[(0, name), (1, "x")], 2).unwrap(), 0, "{name}");
        }
    }

    #[test]
    fn negations_never_match() {
        for name in [
            "no_roadwork",
            "not roadwork",
            "non-roadwork",
            "NoRoadwork",
            "none",
            "background",
            "without_roadwork",
            "roadwork_free",
        ] {
            assert!(!is_roadwork_label(name), "{name}");
        }
        // The inverted-answer case: index 1 is roadwork although label 0 contains it.
        assert_eq!(idx(&[(0, "no_roadwork"), (1, "roadwork")], 2).unwrap(), 1);
        assert_eq!(idx(&[(0, "Roadwork"), (1, "None")], 2).unwrap(), 0);
    }

    #[test]
    fn a_negative_label_points_at_the_other() {
        assert_eq!(
            idx(&[(0, "construction"), (1, "no_roadwork")], 2).unwrap(),
            0
        );
        assert_eq!(idx(&[(0, "background"), (1, "cones")], 2).unwrap(), 1);
        assert_eq!(idx(&[(0, "LABEL_0"), (1, "LABEL_1")], 2).unwrap(), 1);
    }

    #[test]
    fn ambiguity_and_wide_heads_are_errors_naming_the_file() {
        let e = idx(&[(0, "roadwork"), (1, "Road Works")], 2).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
        assert!(e.to_string().contains("more than one"), "{e}");
        let e = idx(&[(0, "a"), (1, "b"), (2, "c")], 3).unwrap_err();
        assert!(e.to_string().contains("none is named roadwork"), "{e}");
        assert_eq!(idx(&[(0, "a"), (1, "b"), (2, "roadwork")], 3).unwrap(), 2);
        assert!(roadwork_index(None, 3, Path::new("c.json")).is_err());
        assert_eq!(roadwork_index(None, 2, Path::new("c.json")).unwrap(), 1);
    }

    #[test]
    fn config_text_is_read() {
        let cfg = r#"{"id2label": {"0": "no_roadwork", "1": "roadwork"}}"#;
        assert_eq!(
            roadwork_index_from_config(cfg, 2, Path::new("config.json")).unwrap(),
            1
        );
        let bad = r#"{"id2label": {"x": "roadwork"}}"#;
        assert!(roadwork_index_from_config(bad, 2, Path::new("config.json")).is_err());
    }
}
