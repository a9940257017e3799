//! The committed generated files, checked by a test (compiled only for tests): shell
//! completions and man pages generated from the clap definition, and the exit-code table
//! of `docs/output.md` generated from [`crate::exit::ExitStatus`]. The committed copies in
//! `completions/`, `man/` and `docs/output.md` are checked against these.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The shells whose completions are committed, with their file names.
pub(crate) const COMPLETION_FILES: &[(Shell, &str)] = &[
    (Shell::Bash, "crimg.bash"),
    (Shell::Zsh, "_crimg"),
    (Shell::Fish, "crimg.fish"),
];

/// Every man page: `crimg.1` and one `crimg-<sub>.1` per subcommand.
pub(crate) fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    // `crimg help` is `--help` by another name: it gets no page, so no page names it.
    let cmd = Cli::command().disable_help_subcommand(true);
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut pages = vec![("crimg.1".to_string(), man_page(&cmd, None, &subs)?)];
    for sub in &subs {
        pages.push((format!("crimg-{sub}.1"), man_page(&cmd, Some(sub), &subs)?));
    }
    Ok(pages)
}

/// The page of `crimg` (`sub` `None`) or of one subcommand: clap's sections, then
/// EXAMPLES, EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO, each generated from the one
/// place that defines it.
fn man_page(top: &clap::Command, sub: Option<&str>, subs: &[String]) -> std::io::Result<Vec<u8>> {
    use roff::{Roff, bold, italic, roman};

    let page = match sub {
        None => top.clone(),
        Some(name) => {
            let full = format!("crimg-{name}");
            top.find_subcommand(name)
                .expect("a subcommand of crimg")
                .clone()
                .name(full.clone())
                .bin_name(full.replace('-', " "))
        }
    };
    let man = clap_mangen::Man::new(page.clone());
    let mut out = Vec::new();
    // Each part comes with roff's two-line preamble; the page needs it once.
    let mut part = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        render(&mut buf)?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let body = if out.is_empty() {
            text.as_str()
        } else {
            text.splitn(3, '\n').nth(2).unwrap_or("")
        };
        out.extend_from_slice(body.as_bytes());
        std::io::Result::Ok(())
    };
    part(&|w| man.render_title(w))?;
    part(&|w| man.render_name_section(w))?;
    part(&|w| man.render_synopsis_section(w))?;
    part(&|w| man.render_description_section(w))?;
    part(&|w| man.render_options_section(w))?;
    if sub.is_none() {
        part(&|w| man.render_subcommands_section(w))?;
    }

    let concerns = |commands: &[&str]| sub.is_none_or(|s| commands.contains(&s));
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for e in crate::help::examples(sub) {
        roff.control("TP", [])
            .text([bold(e.line)])
            .text([roman(e.what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (codes, meaning) in crate::exit::man_rows() {
        roff.control("TP", [])
            .text([bold(codes)])
            .text([roman(meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    // The variables options stand for, from the definition: the global ones on every page.
    let mut vars: Vec<(String, String)> = Vec::new();
    let own: Vec<&clap::Arg> = page.get_arguments().collect();
    let global = top.get_arguments().filter(|a| a.is_global_set());
    for arg in own.iter().copied().chain(global) {
        if let Some(var) = arg.get_env() {
            let var = var.to_string_lossy().into_owned();
            if !vars.iter().any(|(v, _)| *v == var) {
                let flag = format!("--{}", arg.get_long().unwrap_or_default());
                vars.push((var, format!("as {flag}")));
            }
        }
    }
    for (var, what, commands) in crate::help::environment() {
        if concerns(commands) {
            vars.push((var.to_string(), what.to_string()));
        }
    }
    for (var, what) in vars {
        roff.control("TP", []).text([bold(var)]).text([roman(what)]);
    }
    let files: Vec<_> = crate::help::files()
        .into_iter()
        .filter(|f| concerns(f.commands))
        .collect();
    if !files.is_empty() {
        roff.control("SH", ["FILES"]);
        for f in files {
            roff.control("TP", [])
                .text([italic(f.path.as_str())])
                .text([roman(f.what)]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = Vec::new();
    if sub.is_some() {
        see.push("crimg(1) (the global options)".to_string());
    }
    see.extend(
        subs.iter()
            .filter(|s| Some(s.as_str()) != sub)
            .map(|s| format!("crimg-{s}(1)")),
    );
    roff.text([roman(see.join(", "))]);
    let tail = roff.render();
    part(&|w| w.write_all(tail.as_bytes()))?;
    if page.get_version().is_some() {
        part(&|w| man.render_version_section(w))?;
    }
    Ok(out)
}

/// The page that holds the exit-code table, from the repository's root.
pub(crate) const EXIT_CODES_PAGE: &str = "docs/output.md";

/// `page` with the table under its "## Exit codes" heading replaced by the one
/// generated from [`crate::exit::ExitStatus`]; `None` when it has no such section.
pub(crate) fn page_with_exit_codes(page: &str) -> Option<String> {
    const HEADING: &str = "\n## Exit codes\n\n";
    let start = page.find(HEADING)? + HEADING.len();
    let end = start + page[start..].find("\n\n")?;
    let mut out = page[..start].to_string();
    out.push_str(crate::exit::markdown_table().trim_end());
    out.push_str(&page[end..]);
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
    /// Every page teaches beyond the options: examples, every exit status from
    /// `ExitStatus`, the environment, the files where the command has any, other pages.
    #[test]
    fn man_pages_have_the_sections_of_a_manual() {
        for (name, body) in man_pages().unwrap() {
            let text = String::from_utf8(body).unwrap();
            let sections: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix(".SH "))
                .collect();
            for want in [
                "NAME",
                "SYNOPSIS",
                "EXAMPLES",
                "\"EXIT STATUS\"",
                "ENVIRONMENT",
            ] {
                assert!(
                    sections.contains(&want),
                    "{name} lacks {want}: {sections:?}"
                );
            }
            assert!(sections.contains(&"\"SEE ALSO\""), "{name}: {sections:?}");
            assert_eq!(text.matches(".ie \\n(.g").count(), 1, "{name}");
            let exit =
                &text[text.find("EXIT STATUS").unwrap()..text.find(".SH ENVIRONMENT").unwrap()];
            for s in crate::exit::ExitStatus::ALL {
                assert!(exit.contains(&s.code().to_string()), "{name}: {exit}");
            }
            assert!(text.contains("CONTAINER_RUNTIME_ENDPOINT"), "{name}");
            if name == "crimg.1" || name == "crimg-prune.1" {
                assert!(sections.contains(&"FILES"), "{name}: {sections:?}");
                assert!(text.contains("/etc/crimg/exclude.d"), "{name}");
            }
        }
    }

    /// Options come under headings, the global ones apart from the command's own.
    #[test]
    fn help_groups_options_under_headings() {
        let mut cmd = Cli::command();
        cmd.build();
        let list = cmd
            .find_subcommand_mut("list")
            .unwrap()
            .render_help()
            .to_string();
        let prune = cmd
            .find_subcommand_mut("prune")
            .unwrap()
            .render_help()
            .to_string();
        let at = |help: &str, what: &str| {
            help.find(what)
                .unwrap_or_else(|| panic!("no {what:?} in {help}"))
        };
        for help in [&list, &prune] {
            let options = at(help, "\nOptions:");
            let runtime = at(help, "\nGlobal: runtime connection:");
            let output = at(help, "\nGlobal: output:");
            // Each global option sits under its heading, after the command's own options.
            for (flag, heading) in [("--runtime-endpoint", runtime), ("--output", output)] {
                let pos = at(help, flag);
                assert!(pos > heading && heading > options, "{flag}: {help}");
            }
            assert!(at(help, "\nOutput:") < runtime, "{help}");
            assert!(at(help, "--no-trunc") < runtime, "{help}");
        }
        assert!(at(&list, "\nSelection:") < at(&list, "--unused"), "{list}");
        assert!(
            at(&prune, "\nProtection:") < at(&prune, "--exclude-file"),
            "{prune}"
        );
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
            crate::complete::write_registration(*shell, &mut buf).unwrap();
            expected.push((root.join("completions").join(file), buf));
        }
        for (file, buf) in man_pages().unwrap() {
            expected.push((root.join("man").join(file), buf));
        }
        let page = root.join(EXIT_CODES_PAGE);
        let text = std::fs::read_to_string(&page).unwrap();
        let fresh = page_with_exit_codes(&text)
            .unwrap_or_else(|| panic!("{EXIT_CODES_PAGE} has no Exit codes section"));
        expected.push((page, fresh.into_bytes()));
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
