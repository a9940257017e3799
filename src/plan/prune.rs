//! The prune plan: one decision per image with every reason. The same plan value drives
//! `--dry-run`, `--why` and the real run, so a dry run cannot say one thing and do another.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::Image;
use crate::plan::protect::{Protection, Reason};
use crate::reference::repository_of;

/// `--target-usage`: the kubelet's mode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetUsage {
    /// Target as the user wrote it, for reasons (`80%`).
    pub(crate) label: String,
    pub(crate) percent: f64,
    /// The image filesystem's size and the bytes used on it now.
    pub(crate) capacity: u64,
    pub(crate) used: u64,
}

impl TargetUsage {
    /// Bytes that must go to reach the target.
    pub(crate) fn excess(&self) -> u64 {
        let target = (self.capacity as f64 * self.percent / 100.0) as u64;
        self.used.saturating_sub(target)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PrunePolicy {
    /// Layers 1 to 4, exclusions included: the reasons `list` shows too.
    pub(crate) protection: Protection,
    /// `--older-than`, with the text the user gave.
    pub(crate) older_than: Option<(Duration, String)>,
    pub(crate) keep_last: Option<usize>,
    pub(crate) target: Option<TargetUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Remove,
    Keep,
}

#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub(crate) image: Image,
    pub(crate) action: Action,
    pub(crate) reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) decisions: Vec<Decision>,
}

impl Plan {
    pub(crate) fn removals(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.action == Action::Remove)
    }

    pub(crate) fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.action == Action::Keep)
    }

    /// Bytes the removals free, as the runtime counts image size.
    #[cfg(test)]
    pub(crate) fn reclaimable(&self) -> u64 {
        self.removals().map(|d| d.image.size).sum()
    }
}

/// Decides every image. `last_used` holds when crimg last saw each image in use; images
/// it never saw in use age from their creation.
pub(crate) fn plan(
    images: &[Image],
    policy: &PrunePolicy,
    now: SystemTime,
    last_used: &HashMap<String, SystemTime>,
) -> Plan {
    let keep_last = policy
        .keep_last
        .map(|n| newest_per_repository(images, n))
        .unwrap_or_default();
    let mut decisions: Vec<Decision> = images
        .iter()
        .map(|image| {
            let mut reasons = policy.protection.reasons(image);
            if let Some((min_age, label)) = &policy.older_than {
                // Unknown age (no containerd record) counts as new: never remove on a guess.
                let young = image
                    .created_at()
                    .is_none_or(|c| now.duration_since(c).unwrap_or_default() < *min_age);
                if young {
                    reasons.push(Reason::NewerThan(label.clone()));
                }
            }
            if keep_last.contains(image.id.as_str()) {
                reasons.push(Reason::KeepLast);
            }
            Decision {
                image: image.clone(),
                action: if reasons.is_empty() {
                    Action::Remove
                } else {
                    Action::Keep
                },
                reasons,
            }
        })
        .collect();
    if let Some(target) = &policy.target {
        apply_target(&mut decisions, target, last_used);
    }
    Plan { decisions }
}

/// Keeps removals only until the filesystem reaches the target, least recently used first.
fn apply_target(
    decisions: &mut [Decision],
    target: &TargetUsage,
    last_used: &HashMap<String, SystemTime>,
) {
    let mut candidates: Vec<usize> = (0..decisions.len())
        .filter(|&i| decisions[i].action == Action::Remove)
        .collect();
    let last = |d: &Decision| {
        last_used
            .get(&d.image.id)
            .copied()
            .or_else(|| d.image.created_at())
            .unwrap_or(UNIX_EPOCH)
    };
    candidates.sort_by(|&a, &b| {
        last(&decisions[a])
            .cmp(&last(&decisions[b]))
            .then_with(|| decisions[b].image.size.cmp(&decisions[a].image.size))
    });
    let mut to_free = target.excess();
    for i in candidates {
        if to_free == 0 {
            decisions[i].action = Action::Keep;
            decisions[i]
                .reasons
                .push(Reason::BelowTarget(target.label.clone()));
        } else {
            to_free = to_free.saturating_sub(decisions[i].image.size);
        }
    }
}

/// IDs of the `n` newest images of each repository (by the image's creation time).
fn newest_per_repository(images: &[Image], n: usize) -> HashSet<&str> {
    let mut by_repo: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    for image in images {
        let repos: HashSet<&str> = image.references().map(repository_of).collect();
        for repo in repos {
            by_repo.entry(repo).or_default().push(image);
        }
    }
    let mut keep = HashSet::new();
    for list in by_repo.values_mut() {
        list.sort_by(|a, b| {
            b.created_at()
                .cmp(&a.created_at())
                .then_with(|| a.id.cmp(&b.id))
        });
        keep.extend(list.iter().take(n).map(|i| i.id.as_str()));
    }
    keep
}

/// The last moment before removal: images that became used since the plan was made are
/// kept, with the users now seen as reasons. `fresh` is a new inventory of the node.
pub(crate) fn recheck(plan: &mut Plan, fresh: &[Image]) -> usize {
    let users: HashMap<&str, &Image> = fresh.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut changed = 0;
    for d in plan
        .decisions
        .iter_mut()
        .filter(|d| d.action == Action::Remove)
    {
        if let Some(now) = users.get(d.image.id.as_str()).filter(|i| i.in_use()) {
            d.action = Action::Keep;
            d.reasons.extend(
                now.containers
                    .iter()
                    .map(|c| Reason::InUseContainer(c.clone())),
            );
            d.reasons.extend(
                now.sandboxes
                    .iter()
                    .map(|s| Reason::InUseSandbox(s.clone())),
            );
            changed += 1;
        }
    }
    changed
}

/// Records the images seen in use now, for `--target-usage`'s least-recently-used order.
pub(crate) fn mark_used(
    last_used: &mut HashMap<String, SystemTime>,
    images: &[Image],
    now: SystemTime,
) {
    for image in images.iter().filter(|i| i.in_use()) {
        last_used.insert(image.id.clone(), now);
    }
    // Forget images that no longer exist, so the state file does not grow forever.
    let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    last_used.retain(|id, _| present.contains(id.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageRecord, LABEL_CRI_PINNED};
    use crate::plan::exclude::{parse_cli, parse_file};

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn image(n: u8, tag: &str, age_hours: u64, size: u64) -> Image {
        Image {
            id: format!("sha256:{:064x}", n),
            repo_tags: vec![tag.into()],
            size,
            records: vec![ImageRecord {
                name: tag.into(),
                created_at: Some(now() - HOUR * age_hours as u32),
                ..ImageRecord::default()
            }],
            ..Image::default()
        }
    }

    fn policy() -> PrunePolicy {
        PrunePolicy {
            protection: Protection::new(true, Vec::new()),
            older_than: None,
            keep_last: None,
            target: None,
        }
    }

    fn summary(p: &Plan) -> Vec<(String, &'static str, Vec<String>)> {
        p.decisions
            .iter()
            .map(|d| {
                (
                    d.image.repo_tags[0].clone(),
                    if d.action == Action::Remove {
                        "remove"
                    } else {
                        "keep"
                    },
                    d.reasons.iter().map(ToString::to_string).collect(),
                )
            })
            .collect()
    }

    fn node() -> Vec<Image> {
        let mut used = image(1, "docker.io/library/web:1", 100, 10);
        used.containers = vec!["c1".into()];
        let mut exited = image(2, "docker.io/library/job:1", 100, 10);
        exited.containers = vec!["c2".into()];
        let mut pause = image(3, "registry.k8s.io/pause:3.9", 100, 1);
        pause.sandboxes = vec!["s1".into()];
        pause.sandbox_image = true;
        let mut pinned = image(4, "docker.io/library/pinned:1", 100, 10);
        pinned.records[0]
            .labels
            .insert(LABEL_CRI_PINNED.into(), "pinned".into());
        vec![
            used,
            exited,
            pause,
            pinned,
            image(5, "registry.k8s.io/kube-proxy:v1.30.0", 100, 10),
            image(6, "docker.io/library/excluded:1", 100, 10),
            image(7, "docker.io/library/cli-excluded:1", 100, 10),
            image(8, "docker.io/library/plain:1", 100, 100),
            image(9, "docker.io/library/plain:2", 1, 200),
        ]
    }

    #[test]
    fn every_layer_gives_its_reason() {
        let mut pol = policy();
        let mut excludes = parse_file("/etc/crimg/exclude.d/a.conf", "# x\nexcluded:*\n").unwrap();
        excludes.extend(parse_cli(&["cli-excluded".into()]).unwrap());
        pol.protection = Protection::new(true, excludes);
        let p = plan(&node(), &pol, now(), &HashMap::new());
        let want: Vec<(&str, &str, Vec<&str>)> = vec![
            (
                "docker.io/library/web:1",
                "keep",
                vec!["in-use:container:c1"],
            ),
            (
                "docker.io/library/job:1",
                "keep",
                vec!["in-use:container:c2"],
            ),
            (
                "registry.k8s.io/pause:3.9",
                "keep",
                vec![
                    "in-use:sandbox:s1",
                    "allowlist:sandbox-image",
                    "allowlist:builtin:**/pause",
                ],
            ),
            ("docker.io/library/pinned:1", "keep", vec!["pinned:user"]),
            (
                "registry.k8s.io/kube-proxy:v1.30.0",
                "keep",
                vec!["allowlist:builtin:**/kube-proxy"],
            ),
            (
                "docker.io/library/excluded:1",
                "keep",
                vec!["excluded:/etc/crimg/exclude.d/a.conf:2"],
            ),
            (
                "docker.io/library/cli-excluded:1",
                "keep",
                vec!["excluded:cli"],
            ),
            ("docker.io/library/plain:1", "remove", vec![]),
            ("docker.io/library/plain:2", "remove", vec![]),
        ];
        let summary = summary(&p);
        let got: Vec<(&str, &str, Vec<&str>)> = summary
            .iter()
            .map(|(tag, action, reasons)| {
                (
                    tag.as_str(),
                    *action,
                    reasons.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(p.reclaimable(), 300);
    }

    #[test]
    fn without_builtins_only_the_sandbox_image_stays_allowlisted() {
        let mut pol = policy();
        pol.protection = Protection::new(false, Vec::new());
        let mut images = node();
        images[2].sandboxes.clear();
        let p = plan(&images, &pol, now(), &HashMap::new());
        let s = summary(&p);
        assert_eq!(s[2].2, ["allowlist:sandbox-image"]);
        assert_eq!(s[4].1, "remove", "kube-proxy is no longer allowlisted");
    }

    #[test]
    fn older_than_and_keep_last() {
        let mut pol = policy();
        pol.older_than = Some((2 * HOUR, "2h".into()));
        let p = plan(&node(), &pol, now(), &HashMap::new());
        let s = summary(&p);
        assert_eq!(s[7].1, "remove");
        assert_eq!(
            s[8],
            (
                "docker.io/library/plain:2".into(),
                "keep",
                vec!["newer-than:2h".into()]
            )
        );

        let mut pol = policy();
        pol.keep_last = Some(1);
        let s = summary(&plan(&node(), &pol, now(), &HashMap::new()));
        assert_eq!(s[7].1, "remove", "older plain");
        assert_eq!(s[8].2, ["keep-last"], "newest plain");
        assert!(
            s[0].2.contains(&"keep-last".to_string()),
            "only image of its repository"
        );

        // Unknown age is never old enough.
        let mut unknown = image(10, "docker.io/library/unknown:1", 0, 1);
        unknown.records.clear();
        let mut pol = policy();
        pol.older_than = Some((HOUR, "1h".into()));
        let s = summary(&plan(&[unknown], &pol, now(), &HashMap::new()));
        assert_eq!(s[0].1, "keep");
    }

    #[test]
    fn target_usage_removes_least_recently_used_until_reached() {
        let images = vec![
            image(1, "docker.io/library/a:1", 10, 100),
            image(2, "docker.io/library/b:1", 20, 100),
            image(3, "docker.io/library/c:1", 30, 100),
            image(4, "docker.io/library/d:1", 40, 100),
        ];
        // d is the oldest but was used an hour ago.
        let last = HashMap::from([(images[3].id.clone(), now() - HOUR)]);
        let cases = [
            // (used, capacity, percent) -> removed tags
            (900u64, 1000u64, 80.0, vec!["docker.io/library/c:1"]),
            (
                950,
                1000,
                80.0,
                vec!["docker.io/library/b:1", "docker.io/library/c:1"],
            ),
            (700, 1000, 80.0, vec![]),
            (
                1000,
                1000,
                0.0,
                vec![
                    "docker.io/library/a:1",
                    "docker.io/library/b:1",
                    "docker.io/library/c:1",
                    "docker.io/library/d:1",
                ],
            ),
        ];
        for (used, capacity, percent, want) in cases {
            let mut pol = policy();
            pol.target = Some(TargetUsage {
                label: format!("{percent}%"),
                percent,
                capacity,
                used,
            });
            let p = plan(&images, &pol, now(), &last);
            let removed: Vec<&str> = p
                .removals()
                .map(|d| d.image.repo_tags[0].as_str())
                .collect();
            assert_eq!(removed, want, "used {used}");
            for d in p.kept() {
                assert_eq!(d.reasons.len(), 1);
                assert!(d.reasons[0].to_string().starts_with("target-usage:"));
            }
        }
    }

    #[test]
    fn recheck_keeps_images_that_became_used() {
        let images = node();
        let mut p = plan(&images, &policy(), now(), &HashMap::new());
        assert_eq!(p.removals().count(), 4);
        let mut fresh = images.clone();
        fresh[7].containers = vec!["new".into()];
        fresh[5].sandboxes = vec!["pod".into()];
        assert_eq!(recheck(&mut p, &fresh), 2);
        let s = summary(&p);
        assert_eq!(s[7].2, ["in-use:container:new"]);
        assert_eq!(s[5].2, ["in-use:sandbox:pod"]);
        assert_eq!(p.removals().count(), 2);
    }

    #[test]
    fn last_use_state() {
        let images = node();
        let mut last = HashMap::from([("sha256:gone".to_string(), now())]);
        mark_used(&mut last, &images, now());
        assert_eq!(
            last.len(),
            3,
            "web, job, pause; the vanished image is forgotten"
        );
    }
}
