//! Writing image archives: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`) plus Docker's `manifest.json`, in one tar, optionally compressed
//! as a whole.
//!
//! Blobs are streamed: a tar header needs the entry's size up front, and the size is
//! known from the descriptor, so a blob's header is written first and its bytes follow
//! chunk by chunk as they arrive. The writer checks that exactly the declared number of
//! bytes was written for every entry, so a short read can never produce a tar whose
//! framing is wrong.

use std::io::{self, Write};

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::model::Descriptor;
use crate::oci::doc::{Desc, DockerEntry, DockerImage, Index, Layout};
use crate::oci::{ANNOTATION_NAME, ANNOTATION_REF_NAME, Compression, MT_OCI_INDEX, blob_path};
use crate::reference::oci_ref_name;

const BLOCK: usize = 512;
const ZEROES: [u8; BLOCK] = [0; BLOCK];

/// Counts bytes passing through a writer (the archive's size on disk).
pub(crate) struct Counting<W> {
    inner: W,
    pub(crate) count: u64,
}

impl<W: Write> Counting<W> {
    pub(crate) fn new(inner: W) -> Self {
        Counting { inner, count: 0 }
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that compresses (or not) everything written to it.
pub(crate) enum Compressor<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    pub(crate) fn new(out: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Compressor::Plain(out),
            // Level 6 is gzip's own default: the usual size/speed trade-off.
            Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
                // Compress on worker threads so compression keeps up with the reads.
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
                enc.multithread(workers.min(8) as u32)?;
                Compressor::Zstd(enc)
            }
            Compression::Bzip2 | Compression::Lz4 => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("writing {} archives", compression.name()),
                ));
            }
        })
    }

    /// Ends the compressed stream and returns the underlying writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Plain(w) => Ok(w),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Plain(w) => w.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Plain(w) => w.write_all(buf),
            Compressor::Gzip(e) => e.write_all(buf),
            Compressor::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Plain(w) => w.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

/// A tar stream written entry by entry, with file contents streamed in.
///
/// Entries get fixed owner (0:0), mode and modification time (0), so the same images
/// always give the same archive bytes.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    /// The entry being streamed: its path, declared size and bytes written so far.
    open: Option<(String, u64, u64)>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        TarWriter { out, open: None }
    }

    /// A directory entry.
    pub(crate) fn add_dir(&mut self, path: &str) -> Result<()> {
        self.ensure_closed()?;
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        set_path(&mut h, path)?;
        self.out.write_all(h.as_bytes())?;
        Ok(())
    }

    /// A regular file whose bytes are at hand.
    pub(crate) fn add_file(&mut self, path: &str, data: &[u8]) -> Result<()> {
        self.begin_file(path, data.len() as u64)?;
        self.write_data(data)?;
        self.end_file()
    }

    /// Starts a regular file of `size` bytes; its bytes follow through `write_data`.
    pub(crate) fn begin_file(&mut self, path: &str, size: u64) -> Result<()> {
        self.ensure_closed()?;
        let mut h = header(tar::EntryType::Regular, 0o644, size);
        set_path(&mut h, path)?;
        self.out.write_all(h.as_bytes())?;
        self.open = Some((path.to_string(), size, 0));
        Ok(())
    }

    /// Appends bytes to the open file; more than its declared size is an error.
    pub(crate) fn write_data(&mut self, data: &[u8]) -> Result<()> {
        let Some((path, size, written)) = &mut self.open else {
            bail!("tar writer: data written outside a file entry");
        };
        let after = *written + data.len() as u64;
        if after > *size {
            bail!("{path}: more bytes than its declared size {size}");
        }
        self.out.write_all(data)?;
        *written = after;
        Ok(())
    }

    /// Ends the open file: checks it got all its bytes and pads to a block boundary.
    pub(crate) fn end_file(&mut self) -> Result<()> {
        let Some((path, size, written)) = self.open.take() else {
            bail!("tar writer: no file entry to end");
        };
        if written != size {
            bail!("{path}: {written} bytes written, its declared size is {size}");
        }
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&ZEROES[..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Ends the archive (two zero blocks) and returns the writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.ensure_closed()?;
        self.out.write_all(&ZEROES)?;
        self.out.write_all(&ZEROES)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn ensure_closed(&self) -> Result<()> {
        match &self.open {
            Some((path, _, _)) => bail!("tar writer: entry {path} was not ended"),
            None => Ok(()),
        }
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    // Sizes past ustar's 8 GiB octal limit get the base-256 form every reader accepts.
    h.set_size(size);
    h
}

fn set_path(h: &mut tar::Header, path: &str) -> Result<()> {
    // Our paths are at most `blobs/sha512/<128 hex>`, which ustar's prefix+name holds.
    h.set_path(path)
        .map_err(|e| anyhow::anyhow!("tar path {path:?}: {e}"))?;
    h.set_cksum();
    Ok(())
}

/// One named image of the archive: an `index.json` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedTarget {
    /// The full normalised name (`docker.io/library/nginx:1.25`, or `repo@sha256:…`).
    pub(crate) name: String,
    /// The record's target: an index or a manifest.
    pub(crate) target: Descriptor,
}

/// The `oci-layout` file.
pub(crate) fn oci_layout_json() -> Vec<u8> {
    serde_json::to_vec(&Layout {
        image_layout_version: "1.0.0",
    })
    .unwrap_or_default()
}

/// `index.json`: one entry per name, annotated with the full name (containerd) and the
/// tag (OCI `ref.name`, what skopeo and others select by).
pub(crate) fn index_json(names: &[NamedTarget]) -> Vec<u8> {
    let manifests = names
        .iter()
        .map(|n| {
            let mut annotations = BTreeMap::new();
            annotations.insert(ANNOTATION_NAME.to_string(), n.name.clone());
            if let Some(tag) = oci_ref_name(&n.name) {
                annotations.insert(ANNOTATION_REF_NAME.to_string(), tag);
            }
            Desc {
                media_type: n.target.media_type.clone(),
                digest: n.target.digest.clone(),
                size: n.target.size,
                platform: None,
                annotations,
            }
        })
        .collect();
    serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: Some(MT_OCI_INDEX.to_string()),
        manifests,
    })
    .unwrap_or_default()
}

/// Docker's `manifest.json`: paths of each image's config and layers inside the archive.
pub(crate) fn docker_manifest_json(images: &[DockerImage]) -> Result<Vec<u8>> {
    let entries = images
        .iter()
        .map(|i| {
            Ok(DockerEntry {
                config: blob_path(&i.config)?,
                repo_tags: Some(i.repo_tags.clone()),
                layers: i
                    .layers
                    .iter()
                    .map(|l| Ok(blob_path(l)?))
                    .collect::<Result<_>>()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::to_vec(&entries)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn desc(media: &str, digest: &str, size: i64) -> Descriptor {
        Descriptor {
            media_type: media.into(),
            digest: digest.into(),
            size,
        }
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn index_json_shape() {
        let m = desc("application/vnd.oci.image.manifest.v1+json", &d('1'), 123);
        let names = vec![
            NamedTarget {
                name: "docker.io/library/a:1".into(),
                target: m.clone(),
            },
            NamedTarget {
                name: format!("docker.io/library/a@{}", d('1')),
                target: m,
            },
        ];
        let v: serde_json::Value = serde_json::from_slice(&index_json(&names)).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], MT_OCI_INDEX);
        let e = &v["manifests"][0];
        assert_eq!(e["digest"], d('1'));
        assert_eq!(e["size"], 123);
        assert_eq!(e["annotations"][ANNOTATION_NAME], "docker.io/library/a:1");
        assert_eq!(e["annotations"][ANNOTATION_REF_NAME], "1");
        assert!(v["manifests"][1]["annotations"][ANNOTATION_REF_NAME].is_null());
    }

    #[test]
    fn docker_manifest_shape() {
        let images = vec![
            DockerImage {
                config: d('c'),
                repo_tags: vec![
                    "docker.io/library/a:1".into(),
                    "docker.io/library/a:2".into(),
                ],
                layers: vec![d('1'), d('2')],
            },
            DockerImage {
                config: d('e'),
                repo_tags: vec![],
                layers: vec![d('1')],
            },
        ];
        let v: serde_json::Value =
            serde_json::from_slice(&docker_manifest_json(&images).unwrap()).unwrap();
        let want = serde_json::json!([
            {
                "Config": format!("blobs/sha256/{}", "c".repeat(64)),
                "RepoTags": ["docker.io/library/a:1", "docker.io/library/a:2"],
                "Layers": [
                    format!("blobs/sha256/{}", "1".repeat(64)),
                    format!("blobs/sha256/{}", "2".repeat(64)),
                ],
            },
            {
                "Config": format!("blobs/sha256/{}", "e".repeat(64)),
                "RepoTags": [],
                "Layers": [format!("blobs/sha256/{}", "1".repeat(64))],
            },
        ]);
        assert_eq!(v, want);
        let bad = vec![DockerImage {
            config: "sha256:../x".into(),
            repo_tags: vec![],
            layers: vec![],
        }];
        assert!(docker_manifest_json(&bad).is_err());
    }

    #[test]
    fn tar_round_trip_and_size_checks() {
        let mut w = TarWriter::new(Vec::new());
        w.add_file("oci-layout", &oci_layout_json()).unwrap();
        w.add_dir("blobs/").unwrap();
        let big: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
        w.begin_file("blobs/sha256/x", big.len() as u64).unwrap();
        for chunk in big.chunks(700) {
            w.write_data(chunk).unwrap();
        }
        w.end_file().unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((path, data));
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].1, br#"{"imageLayoutVersion":"1.0.0"}"#);
        assert_eq!(seen[1].0, "blobs/");
        assert_eq!(seen[2].1, big);

        // Too many bytes, too few bytes, an unended entry: errors, never a bad tar.
        let mut w = TarWriter::new(Vec::new());
        w.begin_file("f", 3).unwrap();
        assert!(w.write_data(b"abcd").is_err());
        w.write_data(b"ab").unwrap();
        assert!(w.end_file().is_err());
        let mut w = TarWriter::new(Vec::new());
        w.begin_file("f", 3).unwrap();
        assert!(w.add_file("g", b"x").is_err());
        assert!(w.finish().is_err());
    }

    #[test]
    fn compressors_round_trip() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut w = Compressor::new(Vec::new(), c).unwrap();
            w.write_all(&b"hello ".repeat(1000)).unwrap();
            let out = w.finish().unwrap();
            let plain = match c {
                Compression::None => out,
                Compression::Gzip => {
                    let mut s = Vec::new();
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut s)
                        .unwrap();
                    s
                }
                Compression::Zstd => zstd::decode_all(&out[..]).unwrap(),
                Compression::Bzip2 | Compression::Lz4 => unreachable!(),
            };
            assert_eq!(plain, b"hello ".repeat(1000), "{c:?}");
        }
    }
}
