//! What the help and the man pages teach beyond the options: the examples of each command,
//! the files crimg reads and writes, and the environment it honours. `--help` shows the
//! examples; the man pages (see [`crate::docs`]) render all of it.

#[cfg(test)]
use crate::files::{
    DEFAULT_STATE_DIR, ENV_K3S_IMAGES_DIR, ENV_STATE_DIR, K3S_IMAGES_DIR, PRUNE_STATE_FILE,
    WATCH_STATE_FILE,
};

/// One example: the command line and what it does.
pub(crate) struct Example {
    pub(crate) line: &'static str,
    pub(crate) what: &'static str,
}

macro_rules! ex {
    ($line:expr, $what:expr $(,)?) => {
        Example {
            line: $line,
            what: $what,
        }
    };
}

/// The examples of `crimg` itself (`None`) or of one subcommand, by name.
pub(crate) fn examples(command: Option<&str>) -> &'static [Example] {
    match command {
        None => &[
            ex!(
                "crimg list",
                "every image with its tags, pins, users and protections"
            ),
            ex!(
                "crimg prune --dry-run",
                "what a prune would remove and why it keeps the rest"
            ),
            ex!(
                "crimg import --pin images/",
                "import every archive of a directory and pin what it holds",
            ),
            ex!(
                "crimg -r unix:///run/k3s/containerd/containerd.sock list",
                "the images of K3s's containerd",
            ),
        ],
        Some("list") => &[
            ex!(
                "crimg list",
                "every image with its tags, pins, users and protections"
            ),
            ex!(
                "crimg list --unused --unprotected -o name",
                "what a prune would remove, one tag per line",
            ),
            ex!(
                "crimg list 'docker.io/library/*' -o json",
                "the images of one namespace as JSON (schema: schemas/list.json)",
            ),
            ex!("crimg list --dangling", "images no tag names any more"),
        ],
        Some("pin") => &[
            ex!(
                "crimg pin app:1.0 registry.k8s.io/pause:3.9",
                "pin every tag and record of each image",
            ),
            ex!(
                "crimg pin 'reg.local/team/**'",
                "every image the glob selects"
            ),
            ex!(
                "crimg list --unused -o name | crimg pin --from-file -",
                "pin what the pipe names",
            ),
        ],
        Some("unpin") => &[
            ex!(
                "crimg unpin --dry-run app:1.0",
                "what would change, changing nothing"
            ),
            ex!("crimg unpin 83ad18e50958", "an image by its ID prefix"),
            ex!(
                "crimg unpin --from-file pins.txt -o json",
                "the images a file names"
            ),
        ],
        Some("prune") => &[
            ex!("crimg prune --dry-run", "decide and report, remove nothing",),
            ex!(
                "crimg prune --why nginx:1.25",
                "the decision and every reason for one image",
            ),
            ex!(
                "crimg prune --exclude 'reg.local/team/**' --older-than 7d --keep-last 2",
                "keep a registry's images, young images and the two newest of each repository",
            ),
            ex!(
                "crimg prune --every 1h --high-usage 85 --target-usage 70",
                "the kubelet's image GC, unattended: above 85 %, down to 70 %",
            ),
        ],
        Some("import") => &[
            ex!(
                "crimg import app.tar.zst /var/lib/rancher/k3s/agent/images/",
                "an archive and every archive of a directory",
            ),
            ex!(
                "ssh build 'docker save app:1.4 | zstd' | crimg import -",
                "an archive from standard input, any compression",
            ),
            ex!(
                "crimg import --pin -o json images/",
                "import and pin, report as JSON"
            ),
            ex!(
                "crimg import --watch --pin /srv/images",
                "keep a directory imported and pinned",
            ),
        ],
        Some("export") => &[
            ex!(
                "crimg export -O /srv/images.tar nginx:1.25 redis:7",
                "two images in one archive",
            ),
            ex!(
                "crimg export -O - --compress zstd app:v1 | ssh node2 'zstd -d | ctr -n k8s.io images import -'",
                "copy an image to another node",
            ),
            ex!(
                "crimg export -O app.tar.gz --fetch-missing reg.local:5000/team/app:v1",
                "gzip-compressed, with the layers containerd discarded fetched back",
            ),
        ],
        Some("inspect") => &[
            ex!(
                "crimg inspect bundle.tar.zst",
                "what an archive holds, every digest verified",
            ),
            ex!(
                "crimg inspect --no-verify -o json images/",
                "the metadata of every archive of a directory, as JSON",
            ),
        ],
        Some("check") => &[
            ex!(
                "crimg check registry.local/team/app:v1",
                "whether an image can be exported, and where missing layers would come from",
            ),
            ex!("crimg check -o name", "the names of every incomplete image"),
        ],
        Some("completions") => &[
            ex!(
                "crimg completions bash > /etc/bash_completion.d/crimg",
                "bash, for every user",
            ),
            ex!("crimg completions zsh > \"${fpath[1]}/_crimg\"", "zsh",),
            ex!(
                "crimg completions fish > ~/.config/fish/completions/crimg.fish",
                "fish",
            ),
        ],
        Some(_) => &[],
    }
}

/// The "Examples:" paragraph after a command's help.
pub(crate) fn examples_help(command: Option<&str>) -> String {
    use clap::builder::styling::Style;
    let heading = Style::new().bold().underline();
    let mut out = format!("{heading}Examples:{heading:#}\n");
    for (i, e) in examples(command).iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("  # {}\n  {}\n", e.what, e.line));
    }
    out
}

/// A file crimg reads or writes, and the commands concerned.
#[cfg(test)]
pub(crate) struct File {
    pub(crate) path: String,
    pub(crate) what: &'static str,
    pub(crate) commands: &'static [&'static str],
}

/// Every file crimg reads or writes outside the paths the command line names.
#[cfg(test)]
pub(crate) fn files() -> Vec<File> {
    const RUNTIME: &[&str] = &["list", "pin", "unpin", "prune", "import", "export", "check"];
    vec![
        File {
            path: crate::runtime::connect::DEFAULT_CRICTL_CONFIG.into(),
            what: "crictl's configuration (runtime-endpoint, image-endpoint, timeout); \
                   another with --config or CRI_CONFIG_FILE",
            commands: RUNTIME,
        },
        File {
            path: crate::runtime::connect::DEFAULT_RUNTIME_ENDPOINTS
                .iter()
                .map(|e| e.trim_start_matches("unix://"))
                .collect::<Vec<_>>()
                .join(", "),
            what: "the runtime sockets tried, in this order, when no endpoint is given",
            commands: RUNTIME,
        },
        File {
            path: crate::plan::exclude::DEFAULT_EXCLUDE_DIR.into(),
            what: "every *.conf file in it is an exclusion file for prune (one pattern per \
                   line, # comments); another directory with --exclude-dir",
            commands: &["prune"],
        },
        File {
            path: format!("{DEFAULT_STATE_DIR}/{PRUNE_STATE_FILE}"),
            what: "when prune last saw each image in use, for --target-usage (the directory \
                   is $CRIMG_STATE_DIR when set; the file --state-file)",
            commands: &["prune"],
        },
        File {
            path: format!("{DEFAULT_STATE_DIR}/{WATCH_STATE_FILE}"),
            what: "what import --watch imported, by path, size, mtime and digest (the \
                   directory is $CRIMG_STATE_DIR when set; the file --state-file)",
            commands: &["import"],
        },
        File {
            path: crate::runtime::config::DEFAULT_HOSTS_DIR.into(),
            what: "containerd's registry hosts files (mirrors) for export --fetch-missing and \
                   check, unless containerd's configuration sets another registry config_path \
                   (--registry-config-dir)",
            commands: &["export", "check"],
        },
        File {
            path: crate::runtime::config::DEFAULT_PATH.into(),
            what: "containerd's configuration (version 1 to 3, with its imports): the sandbox \
                   image where CRI does not report it (containerd 2.x), the registry \
                   config_path; the file the serving containerd was started with comes \
                   first, K3s's and RKE2's are tried after it (--containerd-config)",
            commands: &["list", "prune", "check", "export"],
        },
        File {
            path: crate::registry::config::DEFAULT_REGISTRIES_YAML.into(),
            what: "K3s's registry mirrors, for export --fetch-missing and check \
                   (--registries-yaml)",
            commands: &["export", "check"],
        },
        File {
            path: K3S_IMAGES_DIR.into(),
            what: "K3s's air-gap images directory: unpin warns when an archive there will pin \
                   the image again at K3s's next start ($CRIMG_K3S_IMAGES_DIR overrides it)",
            commands: &["unpin"],
        },
    ]
}

/// Environment variables crimg reads that no option stands for (those of options are
/// taken from the command-line definition), and the commands concerned.
#[cfg(test)]
pub(crate) fn environment() -> Vec<(&'static str, String, &'static [&'static str])> {
    vec![
        (
            ENV_STATE_DIR,
            format!("the directory of crimg's state files [default: {DEFAULT_STATE_DIR}]"),
            &["prune", "import"],
        ),
        (
            ENV_K3S_IMAGES_DIR,
            format!(
                "K3s's air-gap images directory, for unpin's warning [default: {K3S_IMAGES_DIR}]"
            ),
            &["unpin"],
        ),
        (
            crate::complete::TIMEOUT_VAR,
            "how long shell completion waits for the runtime's images, as --timeout \
             takes it (3s, 500ms) [default: 1500ms]"
                .into(),
            &["completions"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, Parser};

    /// The words of a command line as a POSIX shell splits them (the subset the examples
    /// use: single and double quotes).
    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quote = None;
        let mut any = false;
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    any = true;
                }
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => {
                    if any {
                        out.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                (_, c) => {
                    cur.push(c);
                    any = true;
                }
            }
        }
        if any {
            out.push(cur);
        }
        out
    }

    /// The crimg invocations of an example line: the pipeline stages that start with
    /// `crimg`, up to a redirection.
    fn invocations(line: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut stage: Vec<String> = Vec::new();
        for w in words(line).into_iter().chain(["|".to_string()]) {
            if w == "|" {
                if stage.first().is_some_and(|w| w == "crimg") {
                    let end = stage.iter().position(|w| w == ">").unwrap_or(stage.len());
                    out.push(stage[..end].to_vec());
                }
                stage.clear();
            } else {
                stage.push(w);
            }
        }
        out
    }

    /// Every command has two to four examples, each a command line crimg accepts as it
    /// stands; they show in its --help.
    #[test]
    fn every_command_has_examples_that_parse() {
        let cmd = Cli::command();
        let names: Vec<Option<&str>> = std::iter::once(None)
            .chain(cmd.get_subcommands().map(|s| Some(s.get_name())))
            .collect();
        for name in names {
            let examples = examples(name);
            assert!(
                (2..=4).contains(&examples.len()),
                "{name:?} has {} examples",
                examples.len()
            );
            for e in examples {
                let runs = invocations(e.line);
                assert!(!runs.is_empty(), "{name:?}: no crimg in {:?}", e.line);
                if let Some(name) = name {
                    assert!(
                        runs.iter().any(|argv| argv[1] == name),
                        "{name}: {:?} does not run it",
                        e.line
                    );
                }
                for argv in runs {
                    if let Err(err) = Cli::try_parse_from(&argv) {
                        panic!("{:?} does not parse: {err}", e.line);
                    }
                }
            }
            let mut sub = match name {
                None => cmd.clone(),
                Some(n) => cmd.find_subcommand(n).unwrap().clone(),
            };
            let help = sub.render_long_help().to_string();
            let at = help
                .find("Examples:")
                .unwrap_or_else(|| panic!("{name:?}: {help}"));
            for e in examples {
                assert!(help[at..].contains(e.line), "{name:?}: {help}");
            }
        }
    }

    #[test]
    fn words_split_as_a_shell_does() {
        assert_eq!(
            words(r#"crimg list 'a b' "c" d''"#),
            ["crimg", "list", "a b", "c", "d"]
        );
        assert_eq!(
            invocations("ssh x 'a | b' | crimg import - > f"),
            [vec!["crimg", "import", "-"]]
        );
    }
}
