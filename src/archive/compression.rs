//! Reading a compressed archive (its compression recognised by
//! [`crate::oci::compression::detect`]), and telling a tar header.

use std::io::{BufRead, Read};

use crate::oci::Compression;

/// A decompressing reader over `input`. Multi-member gzip and concatenated zstd, bzip2
/// and lz4 frames are read to the end, as their command-line tools do.
pub(crate) fn decoder<'a, R: BufRead + Send + 'a>(
    compression: Compression,
    input: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
    })
}

/// Whether a 512-byte block is a tar header: the `ustar` magic, or a valid checksum
/// (old v7 archives have no magic).
pub(crate) fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == Some(sum) && block[0] != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::compression::detect;
    use std::io::Write;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        match c {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
            Compression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Lz4,
        ] {
            let packed = compress(c, &data);
            assert_eq!(detect(&packed).unwrap(), c);
            let mut out = Vec::new();
            decoder(c, &packed[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert!(out == data, "{c:?}");
        }
    }

    #[test]
    fn tar_headers() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(1);
        h.set_cksum();
        b.append_data(&mut h, "a", &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        assert!(is_tar_header(&bytes[..512]));
        let mut old = tar::Header::new_old();
        old.set_path("a").unwrap();
        old.set_cksum();
        assert!(is_tar_header(old.as_bytes()));
        assert!(!is_tar_header(&[0u8; 512]));
        assert!(!is_tar_header(&[b'{'; 512]));
    }
}
