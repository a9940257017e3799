//! What `pin` and `unpin` change: label edits per containerd record.

use crate::error::CrimgError;
use crate::model::{Image, ImageRecord, LABEL_CRI_PINNED, LABEL_K3S_PINNED, PINNED_VALUE};
use crate::reference::{is_glob, select};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinAction {
    Pin,
    Unpin,
}

/// A label edit on one containerd image record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelEdit {
    pub(crate) record: String,
    pub(crate) set: Vec<(String, String)>,
    pub(crate) remove: Vec<String>,
}

/// What happens to one reference the user named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinOutcome {
    Changed {
        image_id: String,
        edits: Vec<LabelEdit>,
        /// The image carried the K3s pin label before the change.
        had_k3s_pin: bool,
    },
    Unchanged {
        image_id: String,
    },
    NotFound {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinItem {
    pub(crate) input: String,
    pub(crate) outcome: PinOutcome,
}

/// Decides the edits for each named argument. `pin` sets the CRI pin label and drops the
/// K3s one on every record of the image (so K3s's restart-time unpin leaves it alone);
/// `unpin` drops both. A glob yields one item per image it selects, named by the image;
/// a malformed argument is an error for the whole command (nothing is changed).
pub(crate) fn plan(
    images: &[Image],
    inputs: &[String],
    action: PinAction,
) -> Result<Vec<PinItem>, CrimgError> {
    let mut items = Vec::new();
    for input in inputs {
        match select(images, input) {
            Ok(hits) if is_glob(input) => items.extend(hits.into_iter().map(|image| PinItem {
                input: image.display_name().to_string(),
                outcome: outcome_for(image, action),
            })),
            Ok(hits) => items.extend(hits.into_iter().map(|image| PinItem {
                input: input.clone(),
                outcome: outcome_for(image, action),
            })),
            Err(e @ (CrimgError::NotFound(_) | CrimgError::Ambiguous { .. })) => {
                items.push(PinItem {
                    input: input.clone(),
                    outcome: PinOutcome::NotFound {
                        error: e.to_string(),
                    },
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(items)
}

fn outcome_for(image: &Image, action: PinAction) -> PinOutcome {
    let had_k3s_pin = image
        .records
        .iter()
        .any(|r| r.labels.contains_key(LABEL_K3S_PINNED));
    let edits: Vec<LabelEdit> = image
        .records
        .iter()
        .filter_map(|r| {
            let cri = r.labels.get(LABEL_CRI_PINNED).map(String::as_str);
            let k3s = r.labels.contains_key(LABEL_K3S_PINNED);
            let mut edit = LabelEdit {
                record: r.name.clone(),
                set: Vec::new(),
                remove: Vec::new(),
            };
            match action {
                PinAction::Pin => {
                    if cri != Some(PINNED_VALUE) {
                        edit.set
                            .push((LABEL_CRI_PINNED.into(), PINNED_VALUE.into()));
                    }
                    if k3s {
                        edit.remove.push(LABEL_K3S_PINNED.into());
                    }
                }
                PinAction::Unpin => {
                    if cri.is_some() {
                        edit.remove.push(LABEL_CRI_PINNED.into());
                    }
                    if k3s {
                        edit.remove.push(LABEL_K3S_PINNED.into());
                    }
                }
            }
            (!edit.set.is_empty() || !edit.remove.is_empty()).then_some(edit)
        })
        .collect();
    if edits.is_empty() {
        PinOutcome::Unchanged {
            image_id: image.id.clone(),
        }
    } else {
        PinOutcome::Changed {
            image_id: image.id.clone(),
            edits,
            had_k3s_pin,
        }
    }
}

/// The pin labels a record carries (`io.cri-containerd.pinned` and K3s's), to carry over to
/// the records of the image a tag now names when an import moves a pinned tag.
pub(crate) fn pin_labels(record: &ImageRecord) -> Vec<(String, String)> {
    [LABEL_CRI_PINNED, LABEL_K3S_PINNED]
        .into_iter()
        .filter(|k| record.labels.get(*k).is_some_and(|v| v == PINNED_VALUE))
        .map(|k| (k.to_string(), PINNED_VALUE.to_string()))
        .collect()
}

/// A pin is on an image, written on every record that names it, so an import that points a
/// pinned tag at another image moves the pin with the tag. `remaining` are the records still
/// naming the old image afterwards: if none of them is a tag (only its ID and digest
/// records are left), its pin labels go, or the untagged image would stay pinned and no
/// prune would ever remove it. An old image that keeps a tag keeps its pin.
pub(crate) fn unpin_after_tag_moved(remaining: &[ImageRecord]) -> Vec<LabelEdit> {
    if remaining.iter().any(ImageRecord::is_tag) {
        return Vec::new();
    }
    let image = Image {
        records: remaining.to_vec(),
        ..Image::default()
    };
    match outcome_for(&image, PinAction::Unpin) {
        PinOutcome::Changed { edits, .. } => edits,
        PinOutcome::Unchanged { .. } | PinOutcome::NotFound { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, labels: &[(&str, &str)]) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ImageRecord::default()
        }
    }

    fn image(records: Vec<ImageRecord>) -> Image {
        Image {
            id: "sha256:abcdef0123456789".into(),
            repo_tags: vec!["docker.io/library/app:1".into()],
            records,
            ..Image::default()
        }
    }

    const CRI: (&str, &str) = (LABEL_CRI_PINNED, PINNED_VALUE);
    const K3S: (&str, &str) = (LABEL_K3S_PINNED, PINNED_VALUE);

    /// (name, records, action, expected edits as (record, labels set, labels removed))
    type Case = (
        &'static str,
        Vec<ImageRecord>,
        PinAction,
        Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)>,
    );

    #[test]
    fn pin_and_unpin_table() {
        let cases: Vec<Case> = vec![
            (
                "pin plain image: every record",
                vec![
                    rec("docker.io/library/app:1", &[]),
                    rec("sha256:abcdef0123456789", &[]),
                ],
                PinAction::Pin,
                vec![
                    ("docker.io/library/app:1", vec![LABEL_CRI_PINNED], vec![]),
                    ("sha256:abcdef0123456789", vec![LABEL_CRI_PINNED], vec![]),
                ],
            ),
            (
                "pin k3s image: drop k3s label, keep cri",
                vec![rec("docker.io/library/app:1", &[CRI, K3S])],
                PinAction::Pin,
                vec![("docker.io/library/app:1", vec![], vec![LABEL_K3S_PINNED])],
            ),
            (
                "pin pinned: nothing",
                vec![rec("docker.io/library/app:1", &[CRI])],
                PinAction::Pin,
                vec![],
            ),
            (
                "unpin k3s image: both",
                vec![rec("docker.io/library/app:1", &[CRI, K3S])],
                PinAction::Unpin,
                vec![(
                    "docker.io/library/app:1",
                    vec![],
                    vec![LABEL_CRI_PINNED, LABEL_K3S_PINNED],
                )],
            ),
            (
                "unpin unpinned: nothing",
                vec![rec("docker.io/library/app:1", &[])],
                PinAction::Unpin,
                vec![],
            ),
        ];
        for (name, records, action, want) in cases {
            let images = vec![image(records)];
            let items = plan(&images, &["app:1".to_string()], action).unwrap();
            let edits = match &items[0].outcome {
                PinOutcome::Changed { edits, .. } => edits.clone(),
                PinOutcome::Unchanged { .. } => vec![],
                PinOutcome::NotFound { error } => panic!("{name}: {error}"),
            };
            let got: Vec<(&str, Vec<&str>, Vec<&str>)> = edits
                .iter()
                .map(|e| {
                    (
                        e.record.as_str(),
                        e.set.iter().map(|(k, _)| k.as_str()).collect(),
                        e.remove.iter().map(String::as_str).collect(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn not_found_is_reported_per_item() {
        let images = vec![image(vec![rec("docker.io/library/app:1", &[])])];
        let items = plan(&images, &["nope:1".into(), "app:1".into()], PinAction::Pin).unwrap();
        assert!(matches!(items[0].outcome, PinOutcome::NotFound { .. }));
        assert!(matches!(items[1].outcome, PinOutcome::Changed { .. }));
        let items = plan(&images, &["docker.io/**".into()], PinAction::Pin).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].input, "docker.io/library/app:1");
        let items = plan(&images, &["nope:*".into()], PinAction::Pin).unwrap();
        assert!(matches!(items[0].outcome, PinOutcome::NotFound { .. }));
        for bad in ["app:[", "Bad:Ref:x", "a/**b"] {
            assert!(
                matches!(
                    plan(&images, &[bad.into()], PinAction::Pin),
                    Err(CrimgError::Usage(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_moved_tag_takes_the_pin_unless_the_old_image_keeps_a_tag() {
        let id = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let by_digest = "docker.io/library/old@sha256:2222222222222222222222222222222222222222222222222222222222222222";
        // (case, remaining records of the old image, records whose pins go)
        let cases: Vec<(&str, Vec<ImageRecord>, Vec<&str>)> = vec![
            (
                "only ID and digest records left, pinned: both unpinned",
                vec![rec(id, &[CRI]), rec(by_digest, &[CRI, K3S])],
                vec![id, by_digest],
            ),
            (
                "another tag still names it: stays pinned",
                vec![rec("docker.io/library/old:2", &[CRI]), rec(id, &[CRI])],
                vec![],
            ),
            (
                "not pinned: nothing to do",
                vec![rec(id, &[]), rec(by_digest, &[])],
                vec![],
            ),
            ("no record left: nothing to do", vec![], vec![]),
        ];
        for (case, remaining, want) in cases {
            let edits = unpin_after_tag_moved(&remaining);
            let got: Vec<&str> = edits.iter().map(|e| e.record.as_str()).collect();
            assert_eq!(got, want, "{case}");
            for e in &edits {
                assert!(e.set.is_empty(), "{case}: {e:?}");
                let had: Vec<String> = remaining
                    .iter()
                    .find(|r| r.name == e.record)
                    .map(|r| pin_labels(r).into_iter().map(|(k, _)| k).collect())
                    .unwrap_or_default();
                assert_eq!(e.remove, had, "{case}");
            }
        }
        assert_eq!(
            pin_labels(&rec(id, &[CRI, K3S, ("other", "x")])),
            vec![
                (LABEL_CRI_PINNED.to_string(), PINNED_VALUE.to_string()),
                (LABEL_K3S_PINNED.to_string(), PINNED_VALUE.to_string()),
            ]
        );
        assert!(pin_labels(&rec(id, &[(LABEL_CRI_PINNED, "no")])).is_empty());
    }
}
