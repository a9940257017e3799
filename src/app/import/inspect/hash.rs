//! Hashing a blob as inspect reads it: its own digest and, for a layer, the digest of
//! what it decompresses to, in one pass.

use std::io::{self, BufRead, BufReader, Read};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::archive::read::CHUNK;
use crate::oci::sha256_digest;

/// What hashing a blob found: its digest and, when it decompresses to something, the
/// digest and length of what it decompresses to.
#[derive(Debug, Clone)]
pub(super) struct BlobFacts {
    pub(super) digest: String,
    pub(super) size: u64,
    pub(super) layer: std::result::Result<Unpacked, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unpacked {
    pub(super) diff_id: String,
    pub(super) size: u64,
}

/// A reader that hashes and counts what passes through it.
pub(super) struct Hashing<R> {
    pub(super) inner: R,
    pub(super) sha: Sha256,
    pub(super) n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Hashes a blob in one pass: its own digest, and (when it is a layer in any compression
/// import reads) the digest of its decompressed bytes. Memory stays at one buffer.
pub(super) fn hash_blob(r: impl Read + Send) -> io::Result<BlobFacts> {
    let mut br = BufReader::with_capacity(
        CHUNK,
        Hashing {
            inner: r,
            sha: Sha256::new(),
            n: 0,
        },
    );
    let head = br.fill_buf()?.to_vec();
    let layer = match crate::oci::compression::detect(&head) {
        Err(e) => Err(e.to_string()),
        Ok(c) => match crate::archive::compression::decoder(c, &mut br) {
            Err(e) => Err(e.to_string()),
            Ok(mut d) => {
                let mut h = Hashing {
                    inner: &mut d,
                    sha: Sha256::new(),
                    n: 0,
                };
                match io::copy(&mut h, &mut io::sink()) {
                    Ok(_) => Ok(Unpacked {
                        diff_id: sha256_digest(h.sha),
                        size: h.n,
                    }),
                    Err(e) => Err(format!("{} decompression: {e}", c.name())),
                }
            }
        },
    };
    // Whatever the decoder left unread still counts toward the blob's digest.
    io::copy(&mut br, &mut io::sink())?;
    let h = br.into_inner();
    Ok(BlobFacts {
        digest: sha256_digest(h.sha),
        size: h.n,
        layer,
    })
}

/// A member body (chunks from the reading thread) as a blocking reader.
pub(super) struct Body(mpsc::Receiver<io::Result<Bytes>>, Bytes);

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.1.is_empty() {
            match self.0.blocking_recv() {
                Some(chunk) => self.1 = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1.split_to(n));
        Ok(n)
    }
}

pub(super) async fn hash_body(
    body: mpsc::Receiver<io::Result<Bytes>>,
    size: u64,
) -> Result<BlobFacts> {
    let facts = tokio::task::spawn_blocking(move || hash_blob(Body(body, Bytes::new())))
        .await
        .map_err(|e| anyhow!("reading task: {e}"))??;
    if facts.size != size {
        bail!("archive ends early (truncated?)");
    }
    Ok(facts)
}
