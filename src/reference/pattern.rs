//! Patterns that select images: globs on normalised references, or ID / digest prefixes.
//! Used by `list PATTERN`, the built-in allowlist and exclusion rules.

use glob::{MatchOptions, Pattern};

use super::{expand_name, repository_of};
use crate::model::Image;

/// One compiled pattern and the text it came from.
#[derive(Debug, Clone)]
pub(crate) struct RefPattern {
    pub(crate) text: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `sha256:<hex prefix>`: matches image IDs and the digests of digest references.
    Digest(String),
    Glob(Pattern),
    /// Bare hex of at least six characters: an image ID prefix (as `pin` takes it), or a
    /// repository of that name.
    IdOrGlob(String, Pattern),
}

/// `*` and `?` stay within a path component; `**` crosses them.
const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl RefPattern {
    /// Compiles a pattern. Short names normalise like references: `nginx:*` means
    /// `docker.io/library/nginx:*`. `*` stays within one path component; `**` crosses them.
    pub(crate) fn new(text: &str) -> Result<RefPattern, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        if let Some(hex) = text.strip_prefix("sha256:") {
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() > 64 {
                return Err(format!(
                    "{text:?}: a digest prefix is sha256: followed by hex"
                ));
            }
            return Ok(RefPattern {
                text: text.into(),
                kind: Kind::Digest(hex.to_ascii_lowercase()),
            });
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text:?}: a pattern has no spaces"));
        }
        // A pattern no reference could match (`KEEPME`, `keepme:`, `/keepme`,
        // `keepme@sha256:abc`) would select nothing, silently: refuse it as a reference
        // like it would be refused.
        if let Err(why) = crate::reference::normalize(&glob_probe(text)) {
            return Err(format!(
                "{text:?} cannot match any image reference: {}",
                why.rsplit_once(" (")
                    .map_or(why.as_str(), |(_, w)| w.trim_end_matches(')'))
            ));
        }
        // A glob compiles to a small matcher here, not a regex: patterns are compiled on
        // every run (the built-in allowlist among them) and must cost next to nothing.
        let full = normalize_pattern(text);
        let glob = Pattern::new(&full).map_err(|e| format!("{text:?}: {}", e.msg))?;
        let kind = match crate::reference::id_prefix(text) {
            Some(hex) => Kind::IdOrGlob(hex.to_string(), glob),
            None => Kind::Glob(glob),
        };
        Ok(RefPattern {
            text: text.into(),
            kind,
        })
    }

    /// Whether the pattern selects this image: any of its references, or the repository
    /// of any of them (so a pattern without a tag covers every tag), or its ID.
    pub(crate) fn matches(&self, image: &Image) -> bool {
        match &self.kind {
            Kind::Digest(hex) => {
                let id = image.id.strip_prefix("sha256:").unwrap_or(&image.id);
                id.starts_with(hex.as_str())
                    || image.repo_digests.iter().any(|d| {
                        d.split_once("@sha256:")
                            .is_some_and(|(_, h)| h.starts_with(hex.as_str()))
                    })
            }
            Kind::Glob(g) => image.references().any(|r| glob_match(g, r)),
            Kind::IdOrGlob(hex, g) => {
                image
                    .id
                    .strip_prefix("sha256:")
                    .unwrap_or(&image.id)
                    .starts_with(hex.as_str())
                    || image.references().any(|r| glob_match(g, r))
            }
        }
    }

    pub(crate) fn matches_reference(&self, normalized: &str) -> bool {
        match &self.kind {
            Kind::Digest(hex) => normalized
                .split_once("@sha256:")
                .is_some_and(|(_, h)| h.starts_with(hex.as_str())),
            Kind::Glob(g) | Kind::IdOrGlob(_, g) => glob_match(g, normalized),
        }
    }
}

/// A reference the pattern would match if any can: `**` stands for two path components,
/// `*`, `?` and a `[...]` class for one letter each.
fn glob_probe(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str("a/a");
            rest = r;
        } else if c == '*' || c == '?' {
            out.push('a');
            rest = &rest[1..];
        } else if c == '['
            && let Some(end) = rest.find(']')
        {
            out.push('a');
            rest = &rest[end + 1..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn glob_match(g: &Pattern, reference: &str) -> bool {
    g.matches_with(reference, OPTIONS) || g.matches_with(repository_of(reference), OPTIONS)
}

/// Adds Docker's implicit registry and `library/` to a pattern that lacks them, exactly as
/// references are normalised (`docker.io/x`, `index.docker.io/x` and `x` all mean
/// `docker.io/library/x`). Tags and glob characters are left alone: a pattern without a
/// tag matches the repository. A pattern whose first component is a glob (`**/pause`,
/// `*/x`) names no registry and stays as written.
pub(crate) fn normalize_pattern(p: &str) -> String {
    let first = p.split('/').next().unwrap_or(p);
    if p.starts_with("**") || (p.contains('/') && first.contains(['*', '?', '['])) {
        return p.to_string();
    }
    let (domain, path) = expand_name(p);
    format!("{domain}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, refs: &[&str]) -> Image {
        let (digests, tags): (Vec<&&str>, Vec<&&str>) = refs.iter().partition(|r| r.contains('@'));
        Image {
            id: id.into(),
            repo_tags: tags.into_iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.into_iter().map(|s| s.to_string()).collect(),
            ..Image::default()
        }
    }

    #[test]
    fn pattern_table() {
        let h = "ab".repeat(32);
        let nginx = img("sha256:1234567890ab", &["docker.io/library/nginx:1.25"]);
        let team = img(
            "sha256:feedbeef0000",
            &[
                "reg.local/team/sub/app:v1",
                &format!("reg.local/team/sub/app@sha256:{h}"),
            ],
        );
        let pause = img("sha256:0000", &["registry.k8s.io/pause:3.9"]);
        let cases: &[(&str, &Image, bool)] = &[
            ("nginx:*", &nginx, true),
            ("nginx", &nginx, true),
            ("nginx:1.2*", &nginx, true),
            ("nginx:1.24", &nginx, false),
            ("docker.io/library/*", &nginx, true),
            ("library/nginx", &nginx, true),
            ("*", &nginx, true),
            ("reg.local/team/**", &team, true),
            ("reg.local/team/*", &team, false),
            ("reg.local/team/*/app:v1", &team, true),
            ("sha256:feedbe", &team, true),
            ("sha256:abab", &team, true),
            ("sha256:1234", &nginx, true),
            ("sha256:9999", &nginx, false),
            ("**/pause", &pause, true),
            ("**/pause", &nginx, false),
            ("registry.k8s.io/pause:*", &pause, true),
            ("123456", &nginx, true),
            ("feedbe", &team, true),
            ("feedbe", &nginx, false),
            ("12345", &nginx, false),
        ];
        for (pat, image, want) in cases {
            let p = RefPattern::new(pat).unwrap();
            assert_eq!(p.matches(image), *want, "{pat} vs {:?}", image.repo_tags);
        }
    }

    /// The forms users write for one image all normalise to what its reference does.
    #[test]
    fn patterns_normalise_like_references() {
        let cases: &[(&str, &str)] = &[
            ("keepme", "docker.io/library/keepme"),
            ("keepme:1", "docker.io/library/keepme:1"),
            ("keepme:*", "docker.io/library/keepme:*"),
            ("docker.io/keepme", "docker.io/library/keepme"),
            ("docker.io/keepme:*", "docker.io/library/keepme:*"),
            ("docker.io/library/keepme", "docker.io/library/keepme"),
            ("index.docker.io/keepme:1", "docker.io/library/keepme:1"),
            ("index.docker.io/library/keepme", "docker.io/library/keepme"),
            ("index.docker.io/team/app", "docker.io/team/app"),
            ("library/keepme", "docker.io/library/keepme"),
            ("team/app:v?", "docker.io/team/app:v?"),
            ("docker.io/*", "docker.io/library/*"),
            ("docker.io/**", "docker.io/**"),
            ("docker.io/team/**", "docker.io/team/**"),
            ("*", "docker.io/library/*"),
            ("**", "**"),
            ("**/pause", "**/pause"),
            ("*/app", "*/app"),
            ("*.example.com/app", "*.example.com/app"),
            ("reg.local:5000/app:[0-9]*", "reg.local:5000/app:[0-9]*"),
            ("localhost/app", "localhost/app"),
        ];
        for (pattern, want) in cases {
            assert_eq!(normalize_pattern(pattern), *want, "{pattern}");
        }
        let keepme = img("sha256:abcdef", &["docker.io/library/keepme:1"]);
        for pattern in [
            "docker.io/keepme",
            "docker.io/keepme:*",
            "index.docker.io/keepme:1",
            "index.docker.io/library/keepme:1",
            "keepme",
        ] {
            let p = RefPattern::new(pattern).unwrap();
            assert!(p.matches(&keepme), "{pattern}");
            let reference = crate::reference::normalize(pattern.trim_end_matches(":*")).unwrap();
            assert!(p.matches_reference(&reference), "{pattern} vs {reference}");
        }
    }

    #[test]
    fn bad_patterns() {
        for bad in ["", "sha256:xyz", "a b", "nginx:[", "sha256:", "a/**b"] {
            assert!(RefPattern::new(bad).is_err(), "{bad:?}");
        }
    }

    /// Patterns that no normalised reference could match are refused, as `pin` refuses
    /// them as references; globs that could match are not.
    #[test]
    fn patterns_that_cannot_match_are_refused() {
        for bad in [
            "KEEPME",
            "KEEPME:1",
            "docker.io/Library/keepme",
            "keepme,plain:1",
            "keepme!",
            "keepme:",
            "keepme@",
            "keepme@sha256:abc",
            "keepme//x",
            "/keepme",
            "keepme:1:2",
            "keepme:*:2",
            "*/Keep*",
        ] {
            let e = RefPattern::new(bad).expect_err(bad);
            assert!(e.contains("cannot match any image reference"), "{bad}: {e}");
        }
        for good in [
            "keepme",
            "nginx:*",
            "**/pause",
            "**/pause-*",
            "reg.local:5000/team/**",
            "docker.io/library/*:1.?",
            "app:v[0-9]*",
            "*pause*",
            "reg.local/team/app@sha256:0123456789012345678901234567890123456789012345678901234567890123",
            "abcdef12",
            "app:V1",
        ] {
            assert!(RefPattern::new(good).is_ok(), "{good}");
        }
    }
}
