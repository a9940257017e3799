//! What to export: the target file (checked before connecting) and the records each
//! reference names.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::archive::output::{self, Existing};
use crate::archive::sink::parent_dir;
use crate::cli::ExportArgs;
use crate::error::CrimgError;
use crate::model::{Descriptor, Image, ImageRecord};
use crate::oci::Compression;
use crate::reference::pattern::RefPattern;
use crate::reference::{id_prefix, is_glob, normalize, not_found, resolve};

/// Where the archive goes.
pub(super) enum Target {
    Stdout,
    File { path: PathBuf, force: bool },
}

pub(super) fn check_target(args: &ExportArgs) -> Result<Target> {
    if args.output_file.as_os_str() == "-" {
        if std::io::stdout().is_terminal() {
            return Err(CrimgError::Usage(
                "refusing to write an image archive to a terminal; redirect standard output or use -O FILE"
                    .into(),
            )
            .into());
        }
        // Rust's standard output swallows writes to a closed descriptor as if they landed:
        // an archive written there would be reported exported and be nowhere.
        if crate::files::stdout_was_closed() {
            return Err(CrimgError::Usage(
                "standard output is closed: the archive would go nowhere; redirect it to a \
                 file or use -O FILE"
                    .into(),
            )
            .into());
        }
        return Ok(Target::Stdout);
    }
    let path = args.output_file.clone();
    // A symlink (even a dangling one) is an existing target, and is never followed. With
    // --force the rename replaces the link itself.
    match output::existing(&path).with_context(|| format!("checking {}", path.display()))? {
        Existing::Special("a directory") => {
            return Err(CrimgError::Usage(format!(
                "{} is a directory; -O takes the archive's file name",
                path.display()
            ))
            .into());
        }
        Existing::Special(kind) => return Err(refuse_special(&path, kind).into()),
        Existing::File | Existing::Symlink if !args.force => {
            return Err(CrimgError::Usage(format!(
                "{} already exists; pass --force to replace it",
                path.display()
            ))
            .into());
        }
        Existing::File | Existing::Symlink | Existing::Nothing => {}
    }
    let dir = parent_dir(&path);
    if !dir.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(Target::File {
        path,
        force: args.force,
    })
}

/// The archive's compression: `--compress`, else what the file's name says (`.tar.gz`,
/// `.tgz`, `.tar.zst`, `.tzst`), else none. A name that says one compression and a
/// `--compress` that says another are refused.
pub(super) fn compression_for(args: &ExportArgs) -> Result<Compression, CrimgError> {
    let by_name = Compression::from_file_name(&args.output_file.to_string_lossy());
    match (args.compress, by_name) {
        (Some(c), Some(n)) if c != n => Err(CrimgError::Usage(format!(
            "--compress {} disagrees with {}, whose name says {}; rename the file or drop --compress",
            c.name(),
            args.output_file.display(),
            n.name()
        ))),
        (Some(c), _) => Ok(c),
        (None, n) => Ok(n.unwrap_or(Compression::None)),
    }
}

/// A device, FIFO or socket at `-O` is never replaced, `--force` or not.
pub(super) fn refuse_special(path: &Path, kind: &str) -> CrimgError {
    CrimgError::Usage(format!(
        "{} is {kind}; -O writes only regular files, even with --force (use -O - to write to a pipe)",
        path.display()
    ))
}

/// The names to export and the target each points at, grouped by target.
pub(super) fn resolve_targets(
    images: &[Image],
    records: &[ImageRecord],
    refs: &[String],
) -> Result<Vec<(Vec<String>, Descriptor)>> {
    let mut out: Vec<(Vec<String>, Descriptor)> = Vec::new();
    for r in refs {
        let chosen = if is_glob(r) {
            records_matching(images, records, r)?
        } else {
            records_for(images, records, r)?
        };
        for rec in chosen {
            if rec.target.digest.is_empty() {
                bail!("image record {} has no target", rec.name);
            }
            match out.iter_mut().find(|(_, t)| t.digest == rec.target.digest) {
                Some((names, _)) => {
                    if !names.contains(&rec.name) {
                        names.push(rec.name.clone());
                    }
                }
                None => out.push((vec![rec.name.clone()], rec.target.clone())),
            }
        }
    }
    Ok(out)
}

/// The containerd records whose names a glob matches (as `list` matches them); at least one.
fn records_matching<'a>(
    images: &[Image],
    records: &'a [ImageRecord],
    glob: &str,
) -> Result<Vec<&'a ImageRecord>> {
    let pattern = RefPattern::new(glob).map_err(|e| CrimgError::Usage(format!("pattern {e}")))?;
    let picked: Vec<&ImageRecord> = records
        .iter()
        .filter(|r| normalize(&r.name).is_ok_and(|n| pattern.matches_reference(&n)))
        .collect();
    if picked.is_empty() {
        return Err(not_found(images, glob).into());
    }
    Ok(picked)
}

/// The containerd records a user's reference names: a tag or digest reference names its
/// record; an image ID or ID prefix names every tag of the image (else its digest
/// references, else the ID record CRI keeps).
fn records_for<'a>(
    images: &'a [Image],
    records: &'a [ImageRecord],
    input: &str,
) -> Result<Vec<&'a ImageRecord>> {
    let same = |a: &str, b: &str| a == b || normalize(a).is_ok_and(|n| n == b);
    let image = match resolve(images, input) {
        Ok(i) => i,
        Err(CrimgError::NotFound(_)) => {
            // Not a CRI image (another namespace, or not yet seen by CRI): containerd's
            // records by name.
            let wanted = normalize(input).unwrap_or_else(|_| input.to_string());
            return match records
                .iter()
                .find(|r| r.name == input || same(&r.name, &wanted))
            {
                Some(r) => Ok(vec![r]),
                None => Err(not_found(images, input).into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let by_id = id_prefix(input).is_some_and(|hex| {
        image
            .id
            .strip_prefix("sha256:")
            .unwrap_or(&image.id)
            .starts_with(hex)
    });
    let own: Vec<&ImageRecord> = if image.records.is_empty() {
        // The inventory had no containerd view of it; match the records ourselves.
        records
            .iter()
            .filter(|r| r.name == image.id || image.references().any(|n| same(n, &r.name)))
            .collect()
    } else {
        image.records.iter().collect()
    };
    let picked: Vec<&ImageRecord> = if by_id {
        let tagged: Vec<&ImageRecord> = own
            .iter()
            .copied()
            .filter(|r| {
                image
                    .repo_tags
                    .iter()
                    .any(|t| same(t, &r.name) || *t == r.name)
            })
            .collect();
        let digests: Vec<&ImageRecord> = own
            .iter()
            .copied()
            .filter(|r| r.name.contains('@'))
            .collect();
        if !tagged.is_empty() {
            tagged
        } else if !digests.is_empty() {
            digests
        } else {
            own.iter().copied().filter(|r| r.name == image.id).collect()
        }
    } else {
        let wanted = normalize(input).map_err(CrimgError::Usage)?;
        own.iter()
            .copied()
            .filter(|r| r.name == wanted || same(&r.name, &wanted))
            .collect()
    };
    if picked.is_empty() {
        bail!(
            "{input} ({}) has no containerd image record in this namespace to export; \
             export needs containerd (check --address and --namespace)",
            image.display_name()
        );
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, digest: char) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            target: Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: format!("sha256:{}", digest.to_string().repeat(64)),
                size: 10,
            },
            ..ImageRecord::default()
        }
    }

    #[test]
    fn references_pick_records() {
        let id = format!("sha256:ab12cd{}", "0".repeat(58));
        let records = vec![
            rec("docker.io/library/a:1", '1'),
            rec("docker.io/library/a:2", '1'),
            rec(
                &format!("docker.io/library/a@sha256:{}", "1".repeat(64)),
                '1',
            ),
            rec(&id, '1'),
            rec("docker.io/library/other:1", '2'),
        ];
        let images = vec![Image {
            id: id.clone(),
            repo_tags: vec![
                "docker.io/library/a:1".into(),
                "docker.io/library/a:2".into(),
            ],
            repo_digests: vec![format!("docker.io/library/a@sha256:{}", "1".repeat(64))],
            records: records[..4].to_vec(),
            ..Image::default()
        }];
        let names = |input: &str| -> Vec<String> {
            records_for(&images, &records, input)
                .unwrap()
                .into_iter()
                .map(|r| r.name.clone())
                .collect()
        };
        assert_eq!(names("a:2"), vec!["docker.io/library/a:2"]);
        assert_eq!(
            names("ab12cd"),
            vec!["docker.io/library/a:1", "docker.io/library/a:2"]
        );
        // Not a CRI image, but a containerd record.
        assert_eq!(names("other:1"), vec!["docker.io/library/other:1"]);
        assert!(records_for(&images, &records, "nope:1").is_err());

        let grouped = resolve_targets(
            &images,
            &records,
            &["a:1".into(), "ab12cd".into(), "other:1".into()],
        )
        .unwrap();
        assert_eq!(grouped.len(), 2);
        assert_eq!(
            grouped[0].0,
            vec!["docker.io/library/a:1", "docker.io/library/a:2"]
        );
    }
}
