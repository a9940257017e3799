//! Image references as users type them: normalisation (Docker's rules) and resolution
//! against the node's images (tags, digests, IDs and ID prefixes).

use std::str::FromStr;

use oci_spec::distribution::Reference;

use crate::error::CrimgError;
use crate::model::Image;

/// The shortest ID prefix accepted, as the contract says.
pub const MIN_ID_PREFIX: usize = 6;

/// Normalises a reference as Docker does: `nginx` → `docker.io/library/nginx:latest`.
pub fn normalize(reference: &str) -> Result<String, String> {
    Reference::from_str(reference.trim())
        .map(|r| r.whole())
        .map_err(|e| format!("{reference:?} is not a valid image reference ({e})"))
}

/// The repository part of a normalised reference (no tag, no digest).
pub fn repository_of(normalized: &str) -> &str {
    let without_digest = normalized.split('@').next().unwrap_or(normalized);
    // A tag follows the last ':' that comes after the last '/'; a ':' before it is a port.
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    }
}

/// The tag of a normalised reference, if it has one.
pub fn tag_of(normalized: &str) -> Option<&str> {
    let without_digest = normalized.split('@').next().unwrap_or(normalized);
    let repo = repository_of(without_digest);
    without_digest
        .get(repo.len() + 1..)
        .filter(|t| !t.is_empty())
}

/// `sha256:<hex>` or bare hex of at least `MIN_ID_PREFIX` characters: the hex part.
pub fn id_prefix(input: &str) -> Option<&str> {
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    let ok = hex.len() >= MIN_ID_PREFIX
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// Finds the one image a user's reference names.
///
/// Order: a full or prefixed image ID (ambiguous prefixes are an error listing the
/// candidates), then the normalised reference against tags and digest references.
pub fn resolve<'a>(images: &'a [Image], input: &str) -> Result<&'a Image, CrimgError> {
    if let Some(hex) = id_prefix(input) {
        let hits: Vec<&Image> = images
            .iter()
            .filter(|i| {
                i.id.strip_prefix("sha256:")
                    .unwrap_or(&i.id)
                    .starts_with(hex)
            })
            .collect();
        match hits.len() {
            1 => return Ok(hits[0]),
            0 => {}
            _ => {
                return Err(CrimgError::Ambiguous {
                    prefix: input.to_string(),
                    candidates: hits
                        .iter()
                        .map(|i| format!("{} ({})", i.id, i.display_name()))
                        .collect(),
                });
            }
        }
        // A bare hex string may still be a repository name; an explicit sha256: may not.
        if input.starts_with("sha256:") {
            return Err(CrimgError::NotFound(input.to_string()));
        }
    }
    let wanted = normalize(input).map_err(CrimgError::Usage)?;
    images
        .iter()
        .find(|i| i.references().any(|r| same_reference(r, &wanted)))
        .ok_or_else(|| CrimgError::NotFound(input.to_string()))
}

fn same_reference(known: &str, wanted: &str) -> bool {
    known == wanted || normalize(known).is_ok_and(|k| k == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            (
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx:1.25",
            ),
            ("user/app", "docker.io/user/app:latest"),
            ("localhost/foo", "localhost/foo:latest"),
            ("reg.local:5000/team/app:v1", "reg.local:5000/team/app:v1"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
        assert!(normalize("Nginx").is_err());
        assert!(normalize("a:b:c").is_err());
    }

    #[test]
    fn repository_and_tag() {
        let d = "sha256:0123456789012345678901234567890123456789012345678901234567890123";
        let cases = [
            (
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx",
                Some("1.25"),
            ),
            ("reg.local:5000/app:v1", "reg.local:5000/app", Some("v1")),
            ("reg.local:5000/app", "reg.local:5000/app", None),
            (
                &*format!("reg.local:5000/app@{d}"),
                "reg.local:5000/app",
                None,
            ),
        ];
        for (input, repo, tag) in cases {
            assert_eq!(repository_of(input), repo, "{input}");
            assert_eq!(tag_of(input), tag, "{input}");
        }
    }

    fn img(id: &str, tags: &[&str]) -> Image {
        Image {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Image::default()
        }
    }

    #[test]
    fn resolution() {
        let a = format!("sha256:abcdef01{}", "1".repeat(56));
        let b = format!("sha256:abcdef02{}", "2".repeat(56));
        let c = format!("sha256:99{}", "3".repeat(62));
        let images = vec![
            img(&a, &["docker.io/library/nginx:1.25"]),
            img(&b, &["reg.local:5000/app:v1"]),
            img(&c, &["docker.io/library/abcdef:latest"]),
        ];
        let ok = [
            ("nginx:1.25", &a),
            ("docker.io/library/nginx:1.25", &a),
            (a.as_str(), &a),
            ("abcdef01", &a),
            ("sha256:abcdef02", &b),
            ("reg.local:5000/app:v1", &b),
            ("993333", &c),
        ];
        for (input, want) in ok {
            assert_eq!(&resolve(&images, input).unwrap().id, want, "{input}");
        }
        assert!(matches!(
            resolve(&images, "abcdef"),
            Err(CrimgError::Ambiguous { .. })
        ));
        assert!(matches!(
            resolve(&images, "nginx"),
            Err(CrimgError::NotFound(_))
        ));
        assert!(matches!(
            resolve(&images, "sha256:ffffff"),
            Err(CrimgError::NotFound(_))
        ));
        assert!(matches!(
            resolve(&images, "Bad:Ref:x"),
            Err(CrimgError::Usage(_))
        ));
    }
}
