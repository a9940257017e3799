//! Shell completions and man pages generated from the clap definition, and the README's
//! exit-code table generated from [`crate::exit::ExitStatus`]. The committed copies in
//! `completions/`, `man/` and `README.md` are checked against these by a test.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The shells whose completions are committed, with their file names.
#[cfg(test)]
pub(crate) const COMPLETION_FILES: &[(Shell, &str)] = &[
    (Shell::Bash, "crimg.bash"),
    (Shell::Zsh, "_crimg"),
    (Shell::Fish, "crimg.fish"),
];

pub(crate) fn write_completions(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "crimg", out);
    Ok(())
}

/// Every man page: `crimg.1` and one `crimg-<sub>.1` per subcommand.
#[cfg(test)]
pub(crate) fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    // `crimg help` is `--help` by another name: it gets no page, so no page names it.
    let cmd = Cli::command().disable_help_subcommand(true);
    let mut pages = Vec::new();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    pages.push(("crimg.1".to_string(), buf));
    for sub in cmd.get_subcommands() {
        let name = format!("crimg-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(name.clone())
            .bin_name(name.replace('-', " "));
        let mut buf = Vec::new();
        clap_mangen::Man::new(sub).render(&mut buf)?;
        pages.push((format!("{name}.1"), buf));
    }
    Ok(pages)
}

/// `readme` with the table under its "## Exit codes" heading replaced by the one
/// generated from [`crate::exit::ExitStatus`]; `None` when it has no such section.
#[cfg(test)]
pub(crate) fn readme_with_exit_codes(readme: &str) -> Option<String> {
    const HEADING: &str = "\n## Exit codes\n\n";
    let start = readme.find(HEADING)? + HEADING.len();
    let end = start + readme[start..].find("\n\n")?;
    let mut out = readme[..start].to_string();
    out.push_str(crate::exit::markdown_table().trim_end());
    out.push_str(&readme[end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `crimg-<sub>(1)` a page refers to is a page that is generated.
    #[test]
    fn man_pages_refer_only_to_pages_that_exist() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for (name, body) in &pages {
            let text = String::from_utf8_lossy(body);
            for (i, _) in text.match_indices("crimg\\-") {
                let rest = &text[i + "crimg\\-".len()..];
                let sub: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                if rest[sub.len()..].starts_with("(1)") {
                    let page = format!("crimg-{sub}.1");
                    assert!(names.contains(&page.as_str()), "{name} refers to {page}");
                }
            }
        }
    }
    use std::path::Path;

    /// Fails when the committed files differ from what the CLI generates now.
    /// `CRIMG_UPDATE_GENERATED=1 cargo test generated_files` rewrites them, and still fails
    /// that once, so a stale file never passes unnoticed (in CI with the variable set, say).
    #[test]
    fn generated_files_are_fresh() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut expected: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
        for (shell, file) in COMPLETION_FILES {
            let mut buf = Vec::new();
            write_completions(*shell, &mut buf).unwrap();
            expected.push((root.join("completions").join(file), buf));
        }
        for (file, buf) in man_pages().unwrap() {
            expected.push((root.join("man").join(file), buf));
        }
        let readme = root.join("README.md");
        let text = std::fs::read_to_string(&readme).unwrap();
        let fresh = readme_with_exit_codes(&text).expect("README.md has an Exit codes section");
        expected.push((readme, fresh.into_bytes()));
        let update = std::env::var_os("CRIMG_UPDATE_GENERATED").is_some();
        let mut stale = Vec::new();
        for (path, want) in &expected {
            if std::fs::read(path).ok().as_ref() != Some(want) {
                if update {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, want).unwrap();
                }
                stale.push(path.display().to_string());
            }
        }
        // Files left behind by a removed subcommand are stale too.
        for dir in ["completions", "man"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
                let path = entry.path();
                if !expected.iter().any(|(p, _)| *p == path) {
                    if update {
                        std::fs::remove_file(&path).unwrap();
                    }
                    stale.push(format!("{} (not generated any more)", path.display()));
                }
            }
        }
        if update {
            assert!(
                stale.is_empty(),
                "generated files were stale and are rewritten now: {stale:?}\nrun the test again"
            );
        }
        assert!(
            stale.is_empty(),
            "generated files are stale: {stale:?}\nrun: CRIMG_UPDATE_GENERATED=1 cargo test generated_files"
        );
    }

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
