//! Shell completion. `crimg completions SHELL` prints a small script that asks crimg itself
//! what to offer (clap_complete's protocol: `CRIMG_COMPLETE=<shell> crimg -- WORDS…`), so options,
//! subcommands and values come from the one clap definition, and image references from the
//! runtime: the tags and IDs CRI lists, fetched within [`deadline`], nothing at all when the
//! runtime cannot be reached (completion must never print errors into a prompt).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::time::Duration;

use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Elvish, EnvCompleter, Fish, Powershell, Shells};

use crate::runtime::connect::{self, EndpointArgs};

/// The environment variable that turns a run of crimg into a completion request; crimg's
/// own, so that a `COMPLETE` some other tool left in the environment cannot turn
/// `crimg prune` into a completion that does nothing.
const VAR: &str = "CRIMG_COMPLETE";

/// How long completion waits for the runtime by default before it offers no image at all.
const DEADLINE: Duration = Duration::from_millis(1500);

/// The variable that sets that wait (a slow node, a test on a busy machine): a duration as
/// `--timeout` takes it (`3s`, `500ms`), in the same range.
pub(crate) const TIMEOUT_VAR: &str = "CRIMG_COMPLETE_TIMEOUT";

/// How long completion waits for the runtime: [`TIMEOUT_VAR`] when set and valid, else
/// [`DEADLINE`] (a completion has nowhere to report a bad value).
fn deadline() -> Duration {
    deadline_of(std::env::var(TIMEOUT_VAR).ok().as_deref())
}

fn deadline_of(value: Option<&str>) -> Duration {
    value
        .and_then(|v| connect::parse_timeout(v).ok())
        .unwrap_or(DEADLINE)
}

/// The shells crimg completes for; bash, zsh and fish with crimg's own scripts (see
/// [`bash_script`], [`zsh_script`], [`fish_script`]).
const SHELLS: Shells<'static> = Shells(&[
    &OwnScript {
        shell: &clap_complete::env::Bash,
        script: bash_script,
    },
    &OwnScript {
        shell: &clap_complete::env::Zsh,
        script: zsh_script,
    },
    &OwnScript {
        shell: &Fish,
        script: fish_script,
    },
    &Elvish,
    &Powershell,
]);

/// Answers a completion request (`CRIMG_COMPLETE=<shell>` in the environment) and exits;
/// returns for an ordinary run.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(<crate::cli::Cli as clap::CommandFactory>::command)
        .var(VAR)
        .shells(SHELLS)
        .complete();
}

/// The registration script of `shell`: what `crimg completions SHELL` prints.
pub(crate) fn write_registration(
    shell: clap_complete::Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = shell.to_string();
    let completer = SHELLS
        .completer(&name)
        .ok_or_else(|| std::io::Error::other(format!("no completion for {name}")))?;
    completer.write_registration(VAR, "crimg", "crimg", "crimg", out)
}

/// Image references and IDs for the word being completed: each tag as crimg prints it
/// (`docker.io/library/nginx:1.25`) and, when the word is written that way, as Docker
/// writes it (`nginx:1.25`); image IDs when the word starts like one.
pub(crate) fn image_refs(current: &OsStr) -> Vec<CompletionCandidate> {
    // Options are clap's to offer; the runtime is asked only for a value.
    let Some(current) = current.to_str().filter(|c| !c.starts_with('-')) else {
        return Vec::new();
    };
    let images = match runtime_images() {
        Some(images) => images,
        None => return Vec::new(),
    };
    candidates(&images, current)
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// The offers for `current` among `images`, in list order, without repeats.
fn candidates(images: &[crate::model::CriImage], current: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut offer = |s: String| {
        if s.starts_with(current) && !out.contains(&s) {
            out.push(s);
        }
    };
    let mut tags: Vec<&str> = images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(String::as_str))
        .collect();
    tags.sort_unstable();
    for tag in &tags {
        offer(tag.to_string());
    }
    if !current.is_empty() {
        for tag in &tags {
            offer(crate::reference::familiar(tag).to_string());
        }
    }
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if current.starts_with("sha256:") || hex(current) {
        let mut ids: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
        ids.sort_unstable();
        for id in ids {
            if current.starts_with("sha256:") {
                offer(id.to_string());
            } else {
                offer(crate::model::short_id(id).to_string());
            }
        }
    }
    out
}

/// The runtime's images, found as an ordinary run without options finds the runtime (the
/// global options' environment variables, crictl's config, the default sockets); `None` when
/// that fails or takes longer than [`deadline`].
fn runtime_images() -> Option<Vec<crate::model::CriImage>> {
    let deadline = deadline();
    // On a thread of its own, so that the deadline also covers the blocking part: reading
    // crictl's config, which may sit on a hung mount or be a FIFO. A thread that overruns is
    // left behind; the completion process exits as soon as it has answered.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("complete-images".into())
        .spawn(move || {
            // The receiver is gone only when the deadline passed: nobody wants the answer.
            let _ = tx.send(ask_runtime(deadline));
        })
        .ok()?;
    rx.recv_timeout(deadline).ok().flatten()
}

/// The runtime's images, or `None`; each call to the runtime is cut at `deadline`.
fn ask_runtime(deadline: Duration) -> Option<Vec<crate::model::CriImage>> {
    let mut args = EndpointArgs::from(&crate::cli::GlobalArgs::from_environment().ok()?);
    args.timeout = Some(deadline);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let resolved = connect::resolve(&args).ok()?;
        let cri = connect::connect_cri(&resolved).await.ok()?;
        cri.list_images().await.ok()
    })
}

/// A shell whose answers are clap_complete's and whose registration script is crimg's.
struct OwnScript {
    shell: &'static dyn EnvCompleter,
    /// Writes the script: (var, name, bin, completer, out), as
    /// [`EnvCompleter::write_registration`] takes them.
    script: fn(&str, &str, &str, &str, &mut dyn Write) -> std::io::Result<()>,
}

impl EnvCompleter for OwnScript {
    fn name(&self) -> &'static str {
        self.shell.name()
    }

    fn is(&self, name: &str) -> bool {
        self.shell.is(name)
    }

    fn write_registration(
        &self,
        var: &str,
        name: &str,
        bin: &str,
        completer: &str,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        (self.script)(var, name, bin, completer, buf)
    }

    fn write_complete(
        &self,
        cmd: &mut clap::Command,
        args: Vec<OsString>,
        current_dir: Option<&std::path::Path>,
        buf: &mut dyn Write,
    ) -> std::io::Result<()> {
        self.shell.write_complete(cmd, args, current_dir, buf)
    }
}

/// Bash's registration script, with the words [`bash_script`] fills in: `NAME` (the
/// command's name as a shell identifier), `BIN`, `COMPLETER` and `VAR`.
const BASH_SCRIPT: &str = include_str!("complete/register.bash");

/// Bash, by crimg's own script rather than clap_complete's: bash splits the words it
/// hands a completion function at `:` and `=` (`COMP_WORDBREAKS`), which cuts every image
/// reference with a tag in two; and its words keep their quotes, so `'web:` would be asked
/// for as is. This script splits the line up to the cursor as the shell will run it (at
/// blanks outside quotes, quotes removed), asks crimg with the words whole, and gives bash
/// back each reply without what precedes bash's own word (its second argument, `$2`),
/// whatever `COMP_WORDBREAKS` holds. Inside an open quote, bash's word starts after the
/// quote, and bash closes the quote itself.
fn bash_script(
    var: &str,
    name: &str,
    bin: &str,
    completer: &str,
    buf: &mut dyn Write,
) -> std::io::Result<()> {
    let script = BASH_SCRIPT
        .replace("NAME", &name.replace('-', "_"))
        .replace("BIN", bin)
        .replace("COMPLETER", completer)
        .replace("VAR", var);
    buf.write_all(script.as_bytes())
}

/// clap_complete's registration script for `shell`, as text to patch.
fn clap_script(
    shell: &dyn EnvCompleter,
    var: &str,
    name: &str,
    bin: &str,
    completer: &str,
) -> std::io::Result<String> {
    let mut script = Vec::new();
    shell.write_registration(var, name, bin, completer, &mut script)?;
    String::from_utf8(script).map_err(std::io::Error::other)
}

/// `script` with `from` replaced by `to`, or an error naming the shell when clap_complete's
/// script no longer holds `from`.
fn patched(shell: &str, script: &str, from: &str, to: &str) -> std::io::Result<String> {
    if !script.contains(from) {
        return Err(std::io::Error::other(format!(
            "clap_complete's {shell} script no longer holds `{from}`"
        )));
    }
    Ok(script.replacen(from, to, 1))
}

/// Zsh, by clap_complete's script with two changes.
/// - Its words are passed dequoted: zsh's `words` keep the quotes as typed, so `'js` was
///   asked for as is. The current word is zsh's `PREFIX` and `SUFFIX`, which leave out an
///   open quote (also one opened mid-word, `web:'1`), dequoted unless inside single
///   quotes; zsh closes the quote itself.
/// - Another last line. Installed on `fpath` as `_crimg`, the file is autoloaded as the
///   body of `_crimg` at the first completion; clap's script only registers its function
///   there (`compdef`), so that first Tab offered nothing. Run as `_crimg`, it now
///   completes at once; sourced, it registers as before.
fn zsh_script(
    var: &str,
    name: &str,
    bin: &str,
    completer: &str,
    buf: &mut dyn Write,
) -> std::io::Result<()> {
    let script = clap_script(&clap_complete::env::Zsh, var, name, bin, completer)?;
    let script = patched(
        "zsh",
        &script,
        "    local _CLAP_IFS=$'\\n'\n",
        "    local _CLAP_IFS=$'\\n'\n    local -a args=(\"${(Q)words[@]}\")\n    \
         if [[ $compstate[quote] == \"'\" ]]; then\n        \
         args[CURRENT]=$PREFIX$SUFFIX\n    \
         else\n        \
         args[CURRENT]=${(Q)PREFIX}${(Q)SUFFIX}\n    \
         fi\n",
    )?;
    let script = patched(
        "zsh",
        &script,
        &format!("{completer} -- \"${{words[@]}}\""),
        &format!("{completer} -- \"${{args[@]}}\""),
    )?;
    let function = format!("_clap_dynamic_completer_{}", name.replace('-', "_"));
    let register = format!("compdef {function} {bin}");
    let Some(body) = script.trim_end().strip_suffix(&register) else {
        return Err(std::io::Error::other(format!(
            "clap_complete's zsh script no longer ends with `{register}`"
        )));
    };
    write!(
        buf,
        "{body}if [[ ${{funcstack[1]}} == _{bin} ]]; then\n    {function} \"$@\"\nelse\n    {register}\nfi\n"
    )
}

/// Fish, by clap_complete's script with the word being completed unquoted (`string
/// unescape`; as typed when that fails, on a bad escape): fish's current token keeps the
/// quotes as typed, while the tokens before it come unquoted. It stays one argument
/// (`string collect`), empty or not. Fish closes an open quote itself.
fn fish_script(
    var: &str,
    name: &str,
    bin: &str,
    completer: &str,
    buf: &mut dyn Write,
) -> std::io::Result<()> {
    let script = clap_script(&Fish, var, name, bin, completer)?;
    let script = patched(
        "fish",
        &script,
        "(commandline --current-token)",
        "(begin; commandline --current-token | string unescape; \
         or commandline --current-token; end | string collect)",
    )?;
    buf.write_all(script.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CriImage;

    fn image(id: &str, tags: &[&str]) -> CriImage {
        CriImage {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: Vec::new(),
            size: 0,
            pinned: false,
        }
    }

    #[test]
    fn references_complete_as_written_and_ids_by_prefix() {
        let a = format!("sha256:{}", "ab12".repeat(16));
        let b = format!("sha256:{}", "cd34".repeat(16));
        let images = [
            image(
                &a,
                &[
                    "docker.io/library/nginx:1.25",
                    "docker.io/library/nginx:latest",
                ],
            ),
            image(&b, &["registry.k8s.io/pause:3.9", "docker.io/team/tool:2"]),
        ];
        assert_eq!(
            candidates(&images, ""),
            [
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx:latest",
                "docker.io/team/tool:2",
                "registry.k8s.io/pause:3.9",
            ]
        );
        assert_eq!(candidates(&images, "ngin"), ["nginx:1.25", "nginx:latest"]);
        assert_eq!(
            candidates(&images, "docker.io/library/nginx:l"),
            ["docker.io/library/nginx:latest"]
        );
        assert_eq!(candidates(&images, "team/"), ["team/tool:2"]);
        assert_eq!(candidates(&images, "reg"), ["registry.k8s.io/pause:3.9"]);
        assert_eq!(candidates(&images, "cd3"), ["cd34cd34cd34"]);
        assert_eq!(candidates(&images, "sha256:ab"), [a.as_str()]);
        assert!(candidates(&images, "zzz").is_empty());
    }

    /// The wait is read as `--timeout` reads its value, within the same range; a value
    /// out of it (which the runtime client would refuse) is the default.
    #[test]
    fn completion_wait_reads_like_timeout() {
        assert_eq!(deadline_of(Some("3s")), Duration::from_secs(3));
        assert_eq!(deadline_of(Some("500ms")), Duration::from_millis(500));
        for bad in [
            None,
            Some(""),
            Some("abc"),
            Some("0"),
            Some("18446744073709551615"),
        ] {
            assert_eq!(deadline_of(bad), DEADLINE, "{bad:?}");
        }
    }

    /// Every shell `crimg completions` names has a script, and bash's is crimg's own.
    #[test]
    fn every_shell_registers() {
        use clap::ValueEnum as _;
        for shell in clap_complete::Shell::value_variants() {
            let mut out = Vec::new();
            write_registration(*shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect();
            assert!(
                code.iter().any(|l| l.contains("CRIMG_COMPLETE")),
                "{shell}: {text}"
            );
            assert!(
                code.iter().any(|l| l.contains("crimg --")),
                "{shell}: {text}"
            );
        }
        let mut out = Vec::new();
        write_registration(clap_complete::Shell::Bash, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("_crimg_complete"));
    }
}
