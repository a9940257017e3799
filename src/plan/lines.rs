//! Line-oriented operator files (exclusion files, `.txt` reference lists): what a line may
//! hold before it is read as a pattern or a reference, and how it is shown in a message.
//!
//! Files saved by Windows editors are read as written: a UTF-8 byte order mark at the start
//! is dropped and a CR LF line end is a line end. A NUL or another control character, or a
//! line longer than any reference, is refused by its line number, and the message shows a
//! short, escaped excerpt of it, never the whole line.

/// The longest line read: far longer than any reference (a name is at most 255 bytes, a
/// tag 128, a digest 71) or any pattern that could match one.
pub(crate) const MAX_LINE: usize = 4096;

/// The largest file read whole.
pub(crate) const MAX_FILE: u64 = 4 << 20;

/// How much of a refused line a message shows.
const EXCERPT: usize = 64;

/// The text without a leading UTF-8 byte order mark.
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// The lines of `text`, numbered from 1: LF or CR LF ends, a leading BOM dropped.
pub(crate) fn numbered(text: &str) -> impl Iterator<Item = (usize, &str)> {
    strip_bom(text)
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
}

/// Refuses a line no pattern or reference can be: too long, or holding a control
/// character (a NUL, a lone CR, an escape).
pub(crate) fn check(line: &str) -> Result<(), String> {
    if line.len() > MAX_LINE {
        return Err(format!(
            "{} is {} bytes long; a line holds at most {MAX_LINE}",
            shown(line),
            line.len()
        ));
    }
    if let Some((at, c)) = line.char_indices().find(|(_, c)| c.is_control()) {
        let what = match c {
            '\0' => "a NUL byte".to_string(),
            '\r' => "a carriage return not followed by a line feed".to_string(),
            c => format!("the control character U+{:04X}", u32::from(c)),
        };
        return Err(format!("{} holds {what} at byte {}", shown(line), at + 1));
    }
    Ok(())
}

/// A line as a message shows it: quoted, escaped, and cut after [`EXCERPT`] characters.
pub(crate) fn shown(line: &str) -> String {
    match line.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{:?}…", &line[..cut]),
        None => format!("{line:?}"),
    }
}

/// Reads a file of lines whole, refusing one larger than [`MAX_FILE`] or not UTF-8.
pub(crate) fn read_capped(mut reader: impl std::io::Read) -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    (&mut reader)
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "it is larger than {} MiB; a file of lines is at most that",
            MAX_FILE >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        format!("line {line} is not UTF-8 text (byte {})", at + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_and_crlf_are_read_as_written() {
        let text = "\u{feff}docker.io/a:1\r\n# note\r\n\r\nquay.io/b:2\r\n";
        let lines: Vec<(usize, &str)> = numbered(text).collect();
        assert_eq!(
            lines,
            [
                (1, "docker.io/a:1"),
                (2, "# note"),
                (3, ""),
                (4, "quay.io/b:2")
            ]
        );
        assert!(lines.iter().all(|(_, l)| check(l).is_ok()));
        // Only a leading BOM is dropped; one elsewhere is a character like any other.
        assert_eq!(strip_bom("a\u{feff}"), "a\u{feff}");
    }

    #[test]
    fn control_characters_and_long_lines_are_refused_briefly() {
        let nul = check("docker.io/a\0:1").unwrap_err();
        assert_eq!(nul, "\"docker.io/a\\0:1\" holds a NUL byte at byte 12");
        let cr = check("a:1\rb:2").unwrap_err();
        assert!(
            cr.contains("carriage return not followed by a line feed"),
            "{cr}"
        );
        let esc = check("x\u{1b}[2J").unwrap_err();
        assert!(esc.contains("U+001B"), "{esc}");

        let long = "a".repeat(100_000);
        let e = check(&long).unwrap_err();
        assert!(
            e.ends_with("is 100000 bytes long; a line holds at most 4096"),
            "{e}"
        );
        assert!(
            e.len() < 200,
            "the message holds the whole line: {} bytes",
            e.len()
        );
        assert!(check(&"a".repeat(MAX_LINE)).is_ok());
        // The excerpt is cut on a character boundary.
        assert_eq!(shown(&"é".repeat(100)), format!("{:?}…", "é".repeat(64)));
    }

    #[test]
    fn files_are_capped_and_utf8() {
        assert_eq!(read_capped(&b"a\nb\n"[..]).unwrap(), "a\nb\n");
        let big = vec![b'a'; MAX_FILE as usize + 1];
        let e = read_capped(&big[..]).unwrap_err();
        assert!(e.contains("larger than 4 MiB"), "{e}");
        assert!(read_capped(&big[..MAX_FILE as usize]).is_ok());
        let e = read_capped(&b"ok\nbad \xff\n"[..]).unwrap_err();
        assert_eq!(e, "line 2 is not UTF-8 text (byte 8)");
    }
}
