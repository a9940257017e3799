//! Image arguments from the command line and from `--from-file FILE|-`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::CrimgError;

/// The arguments, then the names in `file` (one per line; blank lines and `#` comments
/// skipped). A file that names nothing is a usage error: a script that fed it an empty
/// list meant something.
pub(crate) fn gather(args: &[String], file: Option<&Path>) -> Result<Vec<String>> {
    let mut out = args.to_vec();
    let Some(path) = file else {
        return Ok(out);
    };
    let (text, shown) = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading image names from standard input")?;
        (buf, "standard input".to_string())
    } else {
        // A name a line: a list of every image a node could hold is far below this.
        const MAX_NAMES: u64 = 64 << 20;
        let text = match crate::files::read_text(path, MAX_NAMES) {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Err(CrimgError::Usage(format!(
                    "--from-file {}: no such file",
                    path.display()
                ))
                .into());
            }
            Err(e) => {
                return Err(CrimgError::Usage(format!(
                    "--from-file takes a file of image names: {e:#}"
                ))
                .into());
            }
        };
        (text.into_bytes(), path.display().to_string())
    };
    let names = parse(&text).map_err(|e| CrimgError::Usage(format!("{shown}: {e}")))?;
    if names.is_empty() {
        return Err(CrimgError::Usage(format!("{shown} names no image")).into());
    }
    out.extend(names);
    Ok(out)
}

/// One name per line; `#` starts a comment; blank lines are skipped.
fn parse(bytes: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!("line {line}: not UTF-8 text")
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.contains(char::is_whitespace) {
            return Err(format!(
                "line {}: {line:?} is more than one name (one per line)",
                n + 1
            ));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse;

    /// A file's bytes and the names (or the error) read from them.
    type Case<'a> = (&'a [u8], Result<Vec<&'a str>, &'a str>);

    #[test]
    fn name_files() {
        let cases: &[Case] = &[
            (
                b"nginx:1\n\n# c\n  app:* # keep\n",
                Ok(vec!["nginx:1", "app:*"]),
            ),
            (b"", Ok(vec![])),
            (b"a\r\nb\r\n", Ok(vec!["a", "b"])),
            (
                b"a\nb c\n",
                Err("line 2: \"b c\" is more than one name (one per line)"),
            ),
            (b"a\n\xff\n", Err("line 2: not UTF-8 text")),
        ];
        for (input, want) in cases {
            let got = parse(input);
            let want = want
                .clone()
                .map(|v| v.iter().map(|s| s.to_string()).collect());
            assert_eq!(got, want.map_err(str::to_string), "{input:?}");
        }
    }
}
