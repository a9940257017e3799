//! Which platforms of a multi-platform image a command wants, and which of an index's
//! manifests that picks.

use crate::oci::Platform;

/// Which platforms of a multi-platform image a command wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlatformChoice {
    All,
    /// For each wanted platform, the best-matching manifest.
    These(Vec<Platform>),
}

impl PlatformChoice {
    /// From `--platform` values and `--all-platforms`; the host's when neither is given.
    pub(crate) fn from_args(platforms: &[Platform], all: bool) -> PlatformChoice {
        if all {
            PlatformChoice::All
        } else if platforms.is_empty() {
            PlatformChoice::These(vec![Platform::host()])
        } else {
            PlatformChoice::These(platforms.to_vec())
        }
    }

    /// Picks manifests from an index's entries (`None` platform = unknown, taken only when
    /// every platform is wanted or the index has a single entry). Returns entry positions.
    pub(crate) fn select(&self, entries: &[Option<Platform>]) -> Vec<usize> {
        match self {
            PlatformChoice::All => (0..entries.len()).collect(),
            PlatformChoice::These(wanted) => {
                let mut picked = Vec::new();
                for w in wanted {
                    let best = entries
                        .iter()
                        .enumerate()
                        .filter_map(|(i, p)| match p {
                            Some(p) => w.score(p).map(|s| (s, i)),
                            None if entries.len() == 1 => Some((0, i)),
                            None => None,
                        })
                        .max_by_key(|(s, i)| (*s, std::cmp::Reverse(*i)));
                    if let Some((_, i)) = best
                        && !picked.contains(&i)
                    {
                        picked.push(i);
                    }
                }
                picked.sort_unstable();
                picked
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn selection() {
        let entries = vec![
            Some(p("linux/amd64")),
            Some(p("linux/arm/v6")),
            Some(p("linux/arm/v7")),
            Some(p("linux/arm64")),
            Some(p("windows/amd64")),
            None,
        ];
        let cases: Vec<(PlatformChoice, Vec<usize>)> = vec![
            (PlatformChoice::These(vec![p("linux/amd64")]), vec![0]),
            (PlatformChoice::These(vec![p("linux/arm/v7")]), vec![2]),
            (PlatformChoice::These(vec![p("linux/arm/v6")]), vec![1]),
            (PlatformChoice::These(vec![p("linux/arm64/v8")]), vec![3]),
            (
                PlatformChoice::These(vec![p("linux/amd64"), p("linux/arm64")]),
                vec![0, 3],
            ),
            (PlatformChoice::These(vec![p("linux/s390x")]), vec![]),
            (PlatformChoice::All, vec![0, 1, 2, 3, 4, 5]),
        ];
        for (choice, want) in cases {
            assert_eq!(choice.select(&entries), want, "{choice:?}");
        }
        // An arm/v8 host... runs v7 when nothing better exists.
        let only_v6 = vec![Some(p("linux/arm/v6"))];
        assert_eq!(
            PlatformChoice::These(vec![p("linux/arm/v7")]).select(&only_v6),
            vec![0]
        );
        // A single manifest without a platform is taken.
        assert_eq!(
            PlatformChoice::These(vec![p("linux/amd64")]).select(&[None]),
            vec![0]
        );
    }
}
