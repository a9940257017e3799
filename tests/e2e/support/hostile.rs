//! Archives built to hurt an importer, made from a fixture's OCI layout: each of
//! [`hostile_tars`] must be refused cleanly, naming what is wrong with it.

use serde_json::json;

use super::archives::{self, Members};
use super::fixtures::{FixtureImage, digest};

/// A digest's hex part, `sha256:` stripped.
pub fn hex(d: &str) -> &str {
    d.trim_start_matches("sha256:")
}

/// Rewrites the manifest blob with `edit`, renames it to its new digest and points the
/// index at it.
fn edit_manifest(
    members: &Members,
    image: &FixtureImage,
    edit: impl Fn(&mut serde_json::Value),
) -> Members {
    let old = image.manifest_digest();
    let mut out = members.clone();
    let (path, data) = out
        .iter_mut()
        .find(|(p, _)| p.ends_with(hex(&old)))
        .expect("manifest member");
    let mut v: serde_json::Value = serde_json::from_slice(data).unwrap();
    edit(&mut v);
    *data = serde_json::to_vec(&v).unwrap();
    let new = digest(data);
    *path = format!("blobs/sha256/{}", hex(&new));
    let size = data.len();
    let (_, index) = out
        .iter_mut()
        .find(|(p, _)| p == "index.json")
        .expect("index.json");
    let mut v: serde_json::Value = serde_json::from_slice(index).unwrap();
    v["manifests"][0]["digest"] = json!(new);
    v["manifests"][0]["size"] = json!(size);
    *index = serde_json::to_vec(&v).unwrap();
    out
}

/// Replaces the config blob with what `edit` makes of its bytes, renamed to its new
/// digest, and points the manifest (and so the index) at it.
pub fn edit_config(
    members: &Members,
    image: &FixtureImage,
    edit: impl Fn(&[u8]) -> Vec<u8>,
) -> Members {
    let old = config_path(image);
    let bytes = edit(&members.iter().find(|(p, _)| *p == old).expect("config").1);
    let new = digest(&bytes);
    let size = bytes.len();
    let renamed: Members = members
        .iter()
        .map(|(p, d)| {
            if *p == old {
                (format!("blobs/sha256/{}", hex(&new)), bytes.clone())
            } else {
                (p.clone(), d.clone())
            }
        })
        .collect();
    edit_manifest(&renamed, image, |v| {
        v["config"]["digest"] = json!(new);
        v["config"]["size"] = json!(size);
    })
}

/// A config with one more field: `field` set to the raw JSON `value`.
pub fn add_config_field(config: &[u8], field: &str, value: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(config).expect("utf-8 config");
    let body = text.trim_end().strip_suffix('}').expect("a JSON object");
    [
        body.as_bytes(),
        format!(",\"{field}\":").as_bytes(),
        value,
        b"}",
    ]
    .concat()
}

/// The members, with `path`'s data replaced by `data`.
pub fn replace(members: &Members, path: &str, data: Vec<u8>) -> Members {
    members
        .iter()
        .map(|(p, d)| {
            if p == path {
                (p.clone(), data.clone())
            } else {
                (p.clone(), d.clone())
            }
        })
        .collect()
}

/// A tar whose member `link` is a symbolic or hard link to `target`.
fn tar_with_link(members: &Members, link: &str, target: &str, kind: tar::EntryType) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (path, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(0);
        if path == link {
            h.set_entry_type(kind);
            h.set_size(0);
            out.append_link(&mut h, path, target).unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            out.append_data(&mut h, path, &data[..]).unwrap();
        }
    }
    out.into_inner().unwrap()
}

/// Wraps index.json's first entry in `levels` nested OCI indexes (the top entry keeps its
/// annotations); `last` may rewrite the innermost index's entries first.
fn nest(members: &Members, levels: usize, last: impl Fn(&mut Vec<serde_json::Value>)) -> Members {
    let mut out = members.clone();
    let at = out.iter().position(|(p, _)| p == "index.json").unwrap();
    let mut index: serde_json::Value = serde_json::from_slice(&out[at].1).unwrap();
    let top = index["manifests"][0].clone();
    let mut child = top.clone();
    child.as_object_mut().unwrap().remove("annotations");
    for level in 0..levels {
        let mut entries = vec![child];
        if level == 0 {
            last(&mut entries);
        }
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .unwrap();
        let d = digest(&bytes);
        child = json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d,
            "size": bytes.len(),
        });
        out.push((format!("blobs/sha256/{}", hex(&d)), bytes));
    }
    let mut entry = child;
    entry["annotations"] = top["annotations"].clone();
    index["manifests"][0] = entry;
    out[at].1 = serde_json::to_vec(&index).unwrap();
    out
}

/// Makes one hostile tar from an image and its OCI layout members.
pub type Make = fn(&FixtureImage, &Members) -> Vec<u8>;

/// The path of the image's layer blob in its OCI layout.
pub fn layer_path(image: &FixtureImage) -> String {
    format!("blobs/sha256/{}", hex(&image.layer_digest()))
}

fn config_path(image: &FixtureImage) -> String {
    format!("blobs/sha256/{}", hex(&image.config_digest()))
}

const NOT_THE_CONFIG: &[u8] = b"{\"not\":\"the config\"}";

/// Hostile tars (each imported plain and gzip-compressed) and what the error must say
/// after the file's path, for the plain and the gzip-compressed one.
pub fn hostile_tars() -> Vec<(&'static str, Make, [&'static str; 2])> {
    vec![
        // Several MiB of junk, and JSON nested far deeper than any index.
        (
            "junk-index",
            |_, m| {
                let junk = [&b"{\"manifests\": ["[..], &b"x".repeat(6 << 20)].concat();
                archives::tar(&replace(m, "index.json", junk))
            },
            ["index.json", "index.json"],
        ),
        (
            "deep-index",
            |_, m| {
                let deep = [b"[".repeat(200_000), b"]".repeat(200_000)].concat();
                archives::tar(&replace(m, "index.json", deep))
            },
            ["index.json", "index.json"],
        ),
        // A config nested 10 000 deep in a field crimg does not read (containerd's CRI
        // parses it with Go's encoding/json, which stops at 10 000).
        (
            "deep-config",
            |i, m| {
                let deep = [b"[".repeat(10_000), b"]".repeat(10_000)].concat();
                archives::tar(&edit_config(m, i, |c| add_config_field(c, "x", &deep)))
            },
            [
                "nests arrays and objects more than 64 deep",
                "nests arrays and objects more than 64 deep",
            ],
        ),
        // Links out of the archive, in place of a blob.
        (
            "symlink-out",
            |i, m| tar_with_link(m, &layer_path(i), "/etc/passwd", tar::EntryType::Symlink),
            ["unsafe", "unsafe"],
        ),
        (
            "hardlink-out",
            |i, m| {
                tar_with_link(
                    m,
                    &layer_path(i),
                    "../../../../etc/passwd",
                    tar::EntryType::Link,
                )
            },
            ["unsafe", "unsafe"],
        ),
        // The same blob path twice, the good body first or last. A plain tar is read at
        // will and the second copy refused as a duplicate; streamed (gzip), a bad body
        // first fails its digest.
        (
            "dup-bad-last",
            |i, m| {
                let mut m = m.clone();
                m.push((config_path(i), NOT_THE_CONFIG.to_vec()));
                archives::tar(&m)
            },
            [
                "the archive holds this path twice",
                "the archive holds this path twice",
            ],
        ),
        (
            "dup-bad-first",
            |i, m| {
                let mut m = m.clone();
                let at = m.iter().position(|(p, _)| *p == config_path(i)).unwrap();
                m.insert(at, (config_path(i), NOT_THE_CONFIG.to_vec()));
                archives::tar(&m)
            },
            ["the archive holds this path twice", "content has digest"],
        ),
        // The layer's descriptor says one byte more than the blob holds.
        (
            "size-mismatch",
            |i, m| {
                archives::tar(&edit_manifest(m, i, |v| {
                    let n = v["layers"][0]["size"].as_u64().unwrap();
                    v["layers"][0]["size"] = json!(n + 1);
                }))
            },
            ["descriptor says", "descriptor says"],
        ),
        // Descriptor sizes no int64 holds, below zero, or not whole.
        (
            "size-2^64-1",
            |i, m| {
                archives::tar(&edit_manifest(m, i, |v| {
                    v["layers"][0]["size"] = json!(u64::MAX);
                }))
            },
            ["expected i64", "expected i64"],
        ),
        (
            "size-negative",
            |i, m| {
                archives::tar(&edit_manifest(m, i, |v| {
                    v["layers"][0]["size"] = json!(-1);
                }))
            },
            ["descriptor says -1", "descriptor says -1"],
        ),
        (
            "size-float",
            |i, m| {
                archives::tar(&edit_manifest(m, i, |v| {
                    let n = v["layers"][0]["size"].as_u64().unwrap();
                    v["layers"][0]["size"] = json!(n as f64 + 0.5);
                }))
            },
            ["floating point", "floating point"],
        ),
        // Nested indexes: five deep; and one that lists, as an index, a blob stored under
        // its own digest (a loop only a corrupt archive can hold).
        (
            "index-deep",
            |_, m| archives::tar(&nest(m, 5, |_| {})),
            ["nested deeper than 4", "nested deeper than 4"],
        ),
        (
            "index-loop",
            |_, m| {
                let looped = format!("sha256:{}", "e".repeat(64));
                let mut m = nest(m, 2, |entries| {
                    entries.insert(
                        0,
                        json!({
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "digest": looped,
                            "size": 200,
                        }),
                    );
                });
                // The looped blob holds the innermost index itself.
                let inner = m[m.len() - 2].1.clone();
                m.push((format!("blobs/sha256/{}", "e".repeat(64)), inner));
                archives::tar(&m)
            },
            ["content has digest", "content has digest"],
        ),
        // The config blob is not in the archive.
        (
            "missing-blob",
            |i, m| {
                let c = config_path(i);
                archives::tar(&m.iter().filter(|(p, _)| *p != c).cloned().collect())
            },
            ["missing", "missing"],
        ),
        // The index gives the manifest a media type nobody knows.
        (
            "wrong-media-type",
            |_, m| {
                let mut m = m.clone();
                let (_, index) = m.iter_mut().find(|(p, _)| p == "index.json").unwrap();
                let mut v: serde_json::Value = serde_json::from_slice(index).unwrap();
                v["manifests"][0]["mediaType"] = json!("application/vnd.example.weird");
                *index = serde_json::to_vec(&v).unwrap();
                archives::tar(&m)
            },
            ["media type", "media type"],
        ),
    ]
}
