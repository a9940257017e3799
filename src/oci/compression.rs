//! Outer compression of an archive or a layer, recognised by its magic bytes, never by
//! its name.

use super::Compression;

/// How many leading bytes [`detect`] needs to decide.
pub(crate) const MAGIC_LEN: usize = 6;

/// A format crimg recognises but cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} compression is not supported (gzip, zstd, bzip2 and lz4 are)")]
pub(crate) struct Unsupported(pub &'static str);

/// Recognises the compression from the first bytes of a stream. Anything without a known
/// magic is taken as uncompressed; whether that is a tar is checked later.
pub(crate) fn detect(head: &[u8]) -> Result<Compression, Unsupported> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if starts(b"BZh") && head.get(3).is_some_and(|d| (b'1'..=b'9').contains(d)) {
        Ok(Compression::Bzip2)
    } else if starts(&[0x04, 0x22, 0x4d, 0x18]) {
        Ok(Compression::Lz4)
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Err(Unsupported("xz"))
    } else if starts(&[0x5d, 0x00, 0x00]) {
        Err(Unsupported("lzma"))
    } else if starts(&[0x02, 0x21, 0x4c, 0x18]) {
        Err(Unsupported("legacy lz4"))
    } else {
        Ok(Compression::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_magic() {
        let cases: &[(&[u8], Result<Compression, Unsupported>)] = &[
            (&[0x1f, 0x8b, 8, 0], Ok(Compression::Gzip)),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0], Ok(Compression::Zstd)),
            (b"BZh91AY", Ok(Compression::Bzip2)),
            (b"BZhx", Ok(Compression::None)),
            (&[0x04, 0x22, 0x4d, 0x18, 0x64], Ok(Compression::Lz4)),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0], Err(Unsupported("xz"))),
            (b"oci-layout\0\0", Ok(Compression::None)),
            (b"", Ok(Compression::None)),
        ];
        for (head, want) in cases {
            assert_eq!(&detect(head), want, "{head:?}");
        }
    }
}
