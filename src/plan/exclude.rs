//! Exclusion rules for prune: files of patterns (one per line, `#` comments), Eraser's
//! JSON form, and `--exclude` patterns from the command line. Which files are read, and
//! reading them, is [`crate::app::exclude`]'s.

use std::fmt;

use crate::model::Image;
use crate::plan::lines;
use crate::plan::protect::Reason;
use crate::reference::pattern::RefPattern;

/// Exclusion files read by default: every `*.conf` here.
pub(crate) const DEFAULT_EXCLUDE_DIR: &str = "/etc/crimg/exclude.d";

/// Where a rule came from, for the reason it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    File { file: String, line: usize },
    Cli,
}

#[derive(Debug, Clone)]
pub(crate) struct ExcludeRule {
    pub(crate) pattern: RefPattern,
    pub(crate) source: Source,
}

impl ExcludeRule {
    pub(crate) fn reason(&self) -> Reason {
        match &self.source {
            Source::File { file, line } => Reason::Excluded {
                file: file.clone(),
                line: *line,
            },
            Source::Cli => Reason::ExcludedCli,
        }
    }

    pub(crate) fn matches(&self, image: &Image) -> bool {
        self.pattern.matches(image)
    }
}

/// A problem with an exclusion file or pattern, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExcludeError {
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

impl fmt::Display for ExcludeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => {
                write!(f, "exclusion file {file}, line {line}: {}", self.message)
            }
            (Some(file), None) => write!(f, "exclusion file {file}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ExcludeError {}

/// Characters a pattern may hold: those of references, plus glob syntax.
fn valid_chars(p: &str) -> bool {
    p.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/:@*?[]{},!".contains(c))
}

fn compile(text: &str) -> Result<RefPattern, String> {
    lines::check(text)?;
    if !valid_chars(text) {
        return Err(format!(
            "{} is not a pattern (one reference glob or sha256: prefix per line; no spaces)",
            lines::shown(text)
        ));
    }
    RefPattern::new(text)
}

/// Parses the text of one exclusion file. Eraser's JSON form (`{"excluded": [...]}`) is
/// recognised by its leading `{`.
pub(crate) fn parse_file(file: &str, text: &str) -> Result<Vec<ExcludeRule>, ExcludeError> {
    let text = lines::strip_bom(text);
    if text.trim_start().starts_with('{') {
        return parse_eraser_json(file, text);
    }
    let mut rules = Vec::new();
    for (n, raw) in lines::numbered(text) {
        let err = |message| ExcludeError {
            file: Some(file.to_string()),
            line: Some(n),
            message,
        };
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let pattern = compile(line).map_err(err)?;
        rules.push(ExcludeRule {
            pattern,
            source: Source::File {
                file: file.to_string(),
                line: n,
            },
        });
    }
    Ok(rules)
}

fn parse_eraser_json(file: &str, text: &str) -> Result<Vec<ExcludeRule>, ExcludeError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Eraser {
        excluded: Vec<String>,
    }
    let err = |line: Option<usize>, message: String| ExcludeError {
        file: Some(file.to_string()),
        line,
        message,
    };
    let doc: Eraser = serde_json::from_str(text).map_err(|e| {
        err(
            Some(e.line()),
            format!("not Eraser's JSON form {{\"excluded\": [\"pattern\", ...]}}: {e}"),
        )
    })?;
    // Each entry's line is where its quoted text first appears after the previous one.
    let mut from = 0;
    let mut rules = Vec::new();
    for entry in doc.excluded {
        let quoted = format!("\"{entry}\"");
        // An entry written with escapes is not found verbatim: it gets the line where the
        // search stands, which does not move (moving by its length could land inside a
        // multi-byte character).
        let (at, next) = match text[from..].find(&quoted) {
            Some(i) => (from + i, from + i + quoted.len()),
            None => (from, from),
        };
        let line = text[..at].matches('\n').count() + 1;
        from = next;
        let pattern = compile(entry.trim()).map_err(|m| err(Some(line), m))?;
        rules.push(ExcludeRule {
            pattern,
            source: Source::File {
                file: file.to_string(),
                line,
            },
        });
    }
    Ok(rules)
}

/// Compiles `--exclude` patterns.
pub(crate) fn parse_cli(patterns: &[String]) -> Result<Vec<ExcludeRule>, ExcludeError> {
    patterns
        .iter()
        .map(|p| {
            compile(p.trim())
                .map(|pattern| ExcludeRule {
                    pattern,
                    source: Source::Cli,
                })
                .map_err(|message| ExcludeError {
                    file: None,
                    line: None,
                    message: format!("--exclude: {message}"),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tag: &str) -> Image {
        Image {
            id: "sha256:abcdef0123".into(),
            repo_tags: vec![tag.into()],
            ..Image::default()
        }
    }

    #[test]
    fn line_format() {
        let text = "# keep these\n\nnginx:*   # web\nreg.local/team/**\n  sha256:abcdef\n";
        let rules = parse_file("/etc/crimg/exclude.d/a.conf", text).unwrap();
        let lines: Vec<String> = rules.iter().map(|r| r.reason().to_string()).collect();
        assert_eq!(
            lines,
            [
                "excluded:/etc/crimg/exclude.d/a.conf:3",
                "excluded:/etc/crimg/exclude.d/a.conf:4",
                "excluded:/etc/crimg/exclude.d/a.conf:5"
            ]
        );
        assert!(rules[0].matches(&image("docker.io/library/nginx:1.25")));
        assert!(rules[1].matches(&image("reg.local/team/x/y:1")));
        assert!(
            rules[2].matches(&image("docker.io/library/other:1")),
            "ID prefix"
        );
        assert!(!rules[0].matches(&image("docker.io/library/redis:7")));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases = [
            ("ok:1\nnginx latest\n", 2),
            ("sha256:nothex\n", 1),
            ("a\nb\n[unclosed\n", 3),
            ("ok\n\"quoted\"\n", 2),
        ];
        for (text, line) in cases {
            let e = parse_file("f.conf", text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("exclusion file f.conf, line {line}:")),
                "{e}"
            );
        }
    }

    #[test]
    fn windows_files_and_hostile_lines() {
        // CR LF ends and a byte order mark, as Notepad saves them: read as written.
        let rules = parse_file("w.conf", "\u{feff}nginx:*\r\n# web\r\nquay.io/x:1\r\n").unwrap();
        let reasons: Vec<String> = rules.iter().map(|r| r.reason().to_string()).collect();
        assert_eq!(reasons, ["excluded:w.conf:1", "excluded:w.conf:3"]);
        assert!(rules[0].matches(&image("docker.io/library/nginx:1.25")));
        assert!(rules[1].matches(&image("quay.io/x:1")));
        // Eraser's JSON behind a byte order mark is still Eraser's JSON.
        let rules = parse_file("e.json", "\u{feff}{\"excluded\": [\"nginx:*\"]}\r\n").unwrap();
        assert_eq!(rules.len(), 1);

        // A 100 kB line: refused by its line, the message shows an excerpt.
        let text = format!("ok:1\r\n{}\r\n", "a".repeat(100_000));
        let e = parse_file("long.conf", &text).unwrap_err();
        let shown = e.to_string();
        assert_eq!(e.line, Some(2), "{shown}");
        assert!(shown.contains("100000 bytes long"), "{shown}");
        assert!(shown.len() < 300, "the message holds the whole line");
        // So is one in Eraser's form and on the command line.
        let json = format!("{{\"excluded\": [\"{}\"]}}", "a".repeat(100_000));
        let e = parse_file("long.json", &json).unwrap_err().to_string();
        assert!(e.contains("100000 bytes long") && e.len() < 300, "{e}");
        let e = parse_cli(&["b".repeat(100_000)]).unwrap_err().to_string();
        assert!(e.contains("100000 bytes long") && e.len() < 300, "{e}");
        // A NUL byte, and a lone CR, name the line and what they are.
        let e = parse_file("nul.conf", "ok\nngi\0nx\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().contains("a NUL byte"), "{e}");
        let e = parse_file("cr.conf", "a:1\rb:1\n").unwrap_err();
        assert!(e.to_string().contains("carriage return"), "{e}");
    }

    #[test]
    fn eraser_json() {
        let text =
            "{\n  \"excluded\": [\n    \"docker.io/library/*\",\n    \"quay.io/x:*\"\n  ]\n}\n";
        let rules = parse_file("eraser.json", text).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].reason().to_string(), "excluded:eraser.json:3");
        assert_eq!(rules[1].reason().to_string(), "excluded:eraser.json:4");
        assert!(rules[0].matches(&image("docker.io/library/nginx:1")));
        assert!(rules[1].matches(&image("quay.io/x:v2")));
        assert!(parse_file("e.json", "{\"excluded\": 3}").is_err());
        assert!(parse_file("e.json", "{\"excluded\": [\"a b\"]}").is_err());
        assert!(parse_file("e.json", "{\"other\": []}").is_err());
    }

    #[test]
    fn eraser_json_escaped_entries() {
        // `\u0078` is not found verbatim, so its line is looked for at the later "x"; "y"
        // is then not found either, and looking past it must not stop inside the
        // two-byte no-break space that trimming allows in the last entry.
        let text = "{\"excluded\": [\"\\u0078\",\n\"y\",\n\"x\",\"\u{a0}z\"]}";
        let rules = parse_file("e.json", text).unwrap();
        let patterns: Vec<&str> = rules.iter().map(|r| r.pattern.text.as_str()).collect();
        assert_eq!(patterns, ["x", "y", "x", "z"]);
    }

    #[test]
    fn cli_patterns() {
        let rules = parse_cli(&["redis".into()]).unwrap();
        assert_eq!(rules[0].reason().to_string(), "excluded:cli");
        assert!(rules[0].matches(&image("docker.io/library/redis:7")));
        let e = parse_cli(&["bad pattern".into()]).unwrap_err();
        assert!(e.to_string().starts_with("--exclude:"), "{e}");
    }
}
