//! Image references as users type them: normalisation (Docker's rules), the patterns that
//! select images ([`pattern`]), and resolution against the node's images (tags, digests,
//! IDs and ID prefixes).

pub(crate) mod pattern;

use crate::error::CrimgError;
use crate::model::Image;
use pattern::RefPattern;

/// The shortest ID prefix accepted, as the contract says.
pub(crate) const MIN_ID_PREFIX: usize = 6;

/// Normalises a reference as Docker does: `nginx` → `docker.io/library/nginx:latest`.
///
/// Parsed by hand to the distribution grammar: the regex-based parsers cost tens of
/// milliseconds to build, on every run, for a grammar this small.
pub(crate) fn normalize(reference: &str) -> Result<String, String> {
    parse(reference.trim())
        .map_err(|why| format!("{reference:?} is not a valid image reference ({why})"))
}

fn parse(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            check_digest(d)?;
            (r, Some(d))
        }
        None => (s, None),
    };
    // A tag follows the last ':' after the last '/'; an earlier ':' is a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        check_tag(t)?;
    }
    if let Some(first) = explicit_domain(name) {
        check_domain(first)?;
    }
    let (domain, path) = expand_name(name);
    for component in path.split('/') {
        check_path_component(component)?;
    }
    if domain.len() + 1 + path.len() > 255 {
        return Err("repository name longer than 255 characters");
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), Some(d)) => out.push_str(&format!(":{t}@{d}")),
        (Some(t), None) => out.push_str(&format!(":{t}")),
        (None, Some(d)) => out.push_str(&format!("@{d}")),
        (None, None) => out.push_str(":latest"),
    }
    Ok(out)
}

/// The registry part of a name, when it names one: a first component with a `.` or `:`,
/// `localhost`, or an upper-case letter (which a repository path cannot hold).
fn explicit_domain(name: &str) -> Option<&str> {
    let (first, _) = name.split_once('/')?;
    let is_domain = first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase());
    is_domain.then_some(first)
}

/// Docker's implicit parts of a name (a reference or a pattern without its tag mattering):
/// the registry `docker.io` (which `index.docker.io` also means), and `library/` before a
/// one-component Docker Hub path. References and patterns both go through here so that
/// `docker.io/x`, `index.docker.io/library/x` and `x` mean one image everywhere. A
/// component holding `**` may span several, so it gets no `library/`.
pub(crate) fn expand_name(name: &str) -> (&str, String) {
    let (domain, path) = match explicit_domain(name) {
        Some(first) => (first, &name[first.len() + 1..]),
        None => ("docker.io", name),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') && !path.contains("**") {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    (domain, path)
}

/// A normalised reference as Docker writes it: `docker.io/library/nginx:1.25` is
/// `nginx:1.25`, `docker.io/team/tool:2` is `team/tool:2`; any other registry stays. The
/// short form normalises back to the same reference.
pub(crate) fn familiar(normalized: &str) -> &str {
    let Some(rest) = normalized.strip_prefix("docker.io/") else {
        return normalized;
    };
    if explicit_domain(rest).is_some() {
        return normalized;
    }
    match rest.strip_prefix("library/") {
        Some(name) if !name.contains('/') => name,
        _ => rest,
    }
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn check_path_component(c: &str) -> Result<(), &'static str> {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(
            "repository path components are lowercase letters and digits, with separators inside",
        );
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        let sep_end = match b {
            b'.' => i + 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => i + 2,
            b'_' => i + 1,
            b'-' => i + bytes[i..].iter().take_while(|&&x| x == b'-').count(),
            _ => {
                return Err("repository path has a character other than a-z, 0-9, '.', '_' or '-'");
            }
        };
        if !bytes.get(sep_end).copied().is_some_and(alnum) {
            return Err("repository path has two separators in a row");
        }
        i = sep_end;
    }
    Ok(())
}

fn check_domain(d: &str) -> Result<(), &'static str> {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || d.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("registry port is not a number");
    }
    if host.starts_with('[') && host.ends_with(']') {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        });
    if ok { Ok(()) } else { Err("bad registry host") }
}

fn check_tag(t: &str) -> Result<(), &'static str> {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty()
        || b.len() > 128
        || !word(b[0])
        || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
    {
        return Err("bad tag");
    }
    Ok(())
}

fn check_digest(d: &str) -> Result<(), &'static str> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err("digest has no algorithm");
    };
    let valid = match alg {
        "sha256" => {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        "sha512" => {
            hex.len() == 128
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        _ => {
            !alg.is_empty()
                && hex.len() >= 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
        }
    };
    if valid { Ok(()) } else { Err("bad digest") }
}

/// The repository part of a normalised reference (no tag, no digest).
pub(crate) fn repository_of(normalized: &str) -> &str {
    let without_digest = normalized.split('@').next().unwrap_or(normalized);
    // A tag follows the last ':' that comes after the last '/'; a ':' before it is a port.
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    }
}

/// The tag of a normalised reference, if it has one.
pub(crate) fn tag_of(normalized: &str) -> Option<&str> {
    let without_digest = normalized.split('@').next().unwrap_or(normalized);
    let repo = repository_of(without_digest);
    without_digest
        .get(repo.len() + 1..)
        .filter(|t| !t.is_empty())
}

/// `sha256:<hex>` or bare hex of at least `MIN_ID_PREFIX` characters: the hex part.
pub(crate) fn id_prefix(input: &str) -> Option<&str> {
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
pub(crate) fn resolve<'a>(images: &'a [Image], input: &str) -> Result<&'a Image, CrimgError> {
    // `sha256:` names an image ID; anything but an ID or ID prefix after it can name nothing.
    if input.starts_with("sha256:") && id_prefix(input).is_none() {
        return Err(CrimgError::Usage(format!(
            "{input:?} is not an image ID or ID prefix: sha256: is followed by \
             {MIN_ID_PREFIX} to 64 lowercase hex characters"
        )));
    }
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
            return Err(not_found(images, input));
        }
    }
    let wanted = normalize(input).map_err(CrimgError::Usage)?;
    images
        .iter()
        .find(|i| i.references().any(|r| same_reference(r, &wanted)))
        .ok_or_else(|| not_found(images, input))
}

/// Whether an argument is a glob rather than one reference: it holds `*`, `?` or `[`.
pub(crate) fn is_glob(input: &str) -> bool {
    input.contains(['*', '?', '['])
}

/// The images one argument names, for every command that takes image arguments: a glob
/// (as `list` takes) selects every image it matches, and must match one; anything else
/// names one image as [`resolve`] finds it (reference, image ID or ID prefix). A malformed
/// glob or reference is a usage error; one that names nothing is `NotFound` with the
/// nearest existing names.
pub(crate) fn select<'a>(images: &'a [Image], input: &str) -> Result<Vec<&'a Image>, CrimgError> {
    if !is_glob(input) {
        return resolve(images, input).map(|i| vec![i]);
    }
    let pattern = RefPattern::new(input).map_err(|e| CrimgError::Usage(format!("pattern {e}")))?;
    let hits: Vec<&Image> = images.iter().filter(|i| pattern.matches(i)).collect();
    if hits.is_empty() {
        return Err(not_found(images, input));
    }
    Ok(hits)
}

/// The error for an argument that names no image: its normalised form, and the existing
/// names nearest to it.
pub(crate) fn not_found(images: &[Image], input: &str) -> CrimgError {
    CrimgError::NotFound(no_match_message("image", images, input))
}

/// `image "pause" (docker.io/library/pause:latest) not found; did you mean
/// registry.k8s.io/pause:3.9?`: the words every command uses for an argument that names
/// nothing. `what` is `image` or `pattern`.
pub(crate) fn no_match_message(what: &str, images: &[Image], input: &str) -> String {
    let shown = shown_form(input, what == "pattern");
    let mut msg = match &shown {
        Some(n) if n != input.trim() => format!("{what} {input:?} ({n}) "),
        _ => format!("{what} {input:?} "),
    };
    msg.push_str(if what == "image" {
        "not found"
    } else {
        "matches no image"
    });
    let near = nearest(images, input);
    if !near.is_empty() {
        msg.push_str(&format!("; did you mean {}?", near.join(" or ")));
    }
    msg
}

/// How an argument reads once normalised: a pattern's form (no implied tag) for a glob or
/// for `list`'s patterns, else a reference's full form.
fn shown_form(input: &str, as_pattern: bool) -> Option<String> {
    let input = input.trim();
    if input.starts_with("sha256:") || id_prefix(input).is_some() && !input.contains(['/', ':']) {
        return None;
    }
    if as_pattern || is_glob(input) {
        return Some(pattern::normalize_pattern(input));
    }
    normalize(input).ok()
}

/// The most suggestions a not-found message offers.
const MAX_SUGGESTIONS: usize = 3;

/// The existing tags nearest to what the user typed: first those whose repository's last
/// component is the one typed (`pause` → `registry.k8s.io/pause:3.9`), then those whose
/// normalised form is close in spelling.
pub(crate) fn nearest(images: &[Image], input: &str) -> Vec<String> {
    let input = input.trim();
    let typed = match shown_form(input, false) {
        Some(n) => n,
        None => return Vec::new(),
    };
    let typed_repo = repository_of(&typed).to_string();
    let typed_base = typed_repo
        .rsplit('/')
        .next()
        .unwrap_or(&typed_repo)
        .to_string();
    let typed_tag = tag_of(&typed).map(str::to_string);
    let plain = |s: &str| s.replace(['*', '?', '[', ']'], "");
    let mut scored: Vec<(f64, String)> = images
        .iter()
        .flat_map(|i| i.repo_tags.iter())
        .filter_map(|t| {
            let known = normalize(t).unwrap_or_else(|_| t.clone());
            let repo = repository_of(&known);
            let base = repo.rsplit('/').next().unwrap_or(repo);
            // Spelling is compared on the last component and tag: the registry and
            // `library/` that every short name shares would make any two names look alike.
            let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
            let mut score = strsim::jaro_winkler(&plain(&last(&typed)), &last(&known));
            let same_base = !plain(&typed_base).is_empty()
                && (base == typed_base || base.contains(&plain(&typed_base)));
            if same_base {
                score += 1.0;
                if typed_tag
                    .as_deref()
                    .is_some_and(|t| tag_of(&known) == Some(t))
                {
                    score += 0.5;
                }
            }
            (same_base || score >= 0.9).then_some((score, known))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, n)| n)
        .collect()
}

fn same_reference(known: &str, wanted: &str) -> bool {
    known == wanted || normalize(known).is_ok_and(|k| k == wanted)
}

/// The tag of a tagged name, as containerd's exporter writes `ref.name`; none for a
/// digest reference.
pub(crate) fn oci_ref_name(name: &str) -> Option<String> {
    if name.contains('@') {
        return None;
    }
    tag_of(name).map(str::to_string)
}

/// A name Docker accepts in `RepoTags` (`repo:tag`); digest references have none.
pub(crate) fn docker_repo_tag(name: &str) -> Option<String> {
    if name.contains('@') {
        return None;
    }
    tag_of(name).map(|_| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short form is Docker's and means the same image again.
    #[test]
    fn familiar_forms_normalise_back() {
        for (full, short) in [
            ("docker.io/library/nginx:1.25", "nginx:1.25"),
            ("docker.io/team/tool:2", "team/tool:2"),
            ("docker.io/library/a/b:1", "library/a/b:1"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
        ] {
            assert_eq!(familiar(full), short);
            assert_eq!(normalize(short).unwrap(), full);
        }
    }

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
        let d = format!("sha256:{}", "ab".repeat(32));
        let more = [
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest".to_string(),
            ),
            (
                "docker.io/nginx",
                "docker.io/library/nginx:latest".to_string(),
            ),
            (
                "127.0.0.1:5000/a/b",
                "127.0.0.1:5000/a/b:latest".to_string(),
            ),
            (
                "a__b/c-d.e--f:V1.0_x",
                "docker.io/a__b/c-d.e--f:V1.0_x".to_string(),
            ),
            (
                &*format!("reg.local:5000/app@{d}"),
                format!("reg.local:5000/app@{d}"),
            ),
            (
                &*format!("nginx:1.25@{d}"),
                format!("docker.io/library/nginx:1.25@{d}"),
            ),
            ("[::1]:5000/app:v1", "[::1]:5000/app:v1".to_string()),
        ];
        for (input, want) in more {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
        for bad in [
            "Nginx",
            "a:b:c",
            "",
            "nginx:",
            "-nginx",
            "nginx-",
            "a//b",
            "a/b/",
            "nginx@sha256:abc",
            "nginx:bad tag",
            "reg.local:port/app",
            "a..b/c",
            "app@md5",
            "nginx:-x",
            "ex ample",
        ] {
            assert!(
                normalize(bad).is_err(),
                "{bad:?} accepted as {:?}",
                normalize(bad)
            );
        }
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

    /// What a name that matches nothing suggests: same last component first, then close
    /// spellings; nothing for an ID or a name unlike any.
    #[test]
    fn suggestions() {
        let images = vec![
            img("sha256:aa", &["registry.k8s.io/pause:3.9"]),
            img("sha256:bb", &["registry.k8s.io/coredns/coredns:v1.11.1"]),
            img("sha256:cc", &["docker.io/library/nginx:1.25"]),
            img("sha256:dd", &["docker.io/library/nginx:1.27"]),
        ];
        let cases: &[(&str, &[&str])] = &[
            ("pause", &["registry.k8s.io/pause:3.9"]),
            ("pause:3.9", &["registry.k8s.io/pause:3.9"]),
            ("coredns", &["registry.k8s.io/coredns/coredns:v1.11.1"]),
            (
                "nginx:1.27",
                &[
                    "docker.io/library/nginx:1.27",
                    "docker.io/library/nginx:1.25",
                ],
            ),
            (
                "ngin:1.25",
                &[
                    "docker.io/library/nginx:1.25",
                    "docker.io/library/nginx:1.27",
                ],
            ),
            (
                "docker.io/library/nginx:1.26",
                &[
                    "docker.io/library/nginx:1.25",
                    "docker.io/library/nginx:1.27",
                ],
            ),
            ("pau*", &["registry.k8s.io/pause:3.9"]),
            ("9ef138", &[]),
            ("sha256:9ef138", &[]),
            ("zzzzzz/qqqq", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(nearest(&images, input), *want, "{input}");
        }
        assert_eq!(
            not_found(&images, "pause").to_string(),
            "image \"pause\" (docker.io/library/pause:latest) not found; did you mean registry.k8s.io/pause:3.9?"
        );
        assert_eq!(
            no_match_message("pattern", &images, "9ef138"),
            "pattern \"9ef138\" matches no image"
        );
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
        // After sha256: only an ID or ID prefix; anything else is a usage error, as the
        // same text is as a pattern.
        for input in ["sha256:", "sha256:zz", "sha256:abc", "sha256:ABCDEF01"] {
            assert!(
                matches!(resolve(&images, input), Err(CrimgError::Usage(_))),
                "{input}"
            );
        }
    }

    #[test]
    fn names_in_index_and_docker_manifest() {
        let cases = [
            (
                "docker.io/library/nginx:1.25",
                Some("1.25"),
                Some("docker.io/library/nginx:1.25"),
            ),
            (
                "127.0.0.1:5000/team/app:v1",
                Some("v1"),
                Some("127.0.0.1:5000/team/app:v1"),
            ),
            ("127.0.0.1:5000/team/app@sha256:abc", None, None),
            ("127.0.0.1:5000/team/app", None, None),
        ];
        for (name, tag, repo_tag) in cases {
            assert_eq!(oci_ref_name(name).as_deref(), tag, "{name}");
            assert_eq!(docker_repo_tag(name).as_deref(), repo_tag, "{name}");
        }
    }
}
