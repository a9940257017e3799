//! Shell completion end to end: the scripts `crimg completions` prints, loaded into real
//! bash, zsh and fish, completing subcommands, `-o` values and the image references of a
//! real containerd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::run::crimg;
use crate::support::sys::wait_bounded;
use crate::support::terminal::Terminal;
use crate::support::{FixtureImage, Node};

const WEB_1: &str = "docker.io/library/web:1.0";
const WEB_2: &str = "docker.io/library/web:2.0";
const PAUSE: &str = "registry.k8s.io/pause:3.9";
const APP: &str = "reg.local:5000/team/app:v1";

/// A shell's view of the machine: `crimg` on PATH, the node's runtime in the environment,
/// and the completion script of each shell written where that shell loads it.
struct Shells {
    dir: tempfile::TempDir,
    path: String,
    endpoint: String,
}

impl Shells {
    fn new(endpoint: &str) -> Shells {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_crimg"), bin.join("crimg"))
            .expect("crimg on PATH");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let shells = Shells {
            dir,
            path,
            endpoint: endpoint.to_string(),
        };
        // Where each shell looks: zsh autoloads `_crimg` from a directory on `fpath` and fish
        // `crimg.fish` from one on `fish_complete_path`, at the first completion of crimg.
        for (shell, file) in [
            ("bash", "crimg.bash"),
            ("zsh", "zfunc/_crimg"),
            ("fish", "fishc/crimg.fish"),
        ] {
            let out = shells
                .command("crimg")
                .args(["completions", shell])
                .output()
                .expect("crimg completions");
            assert!(out.status.success(), "crimg completions {shell}: {out:?}");
            let path = shells.file(file);
            std::fs::create_dir_all(path.parent().unwrap()).expect("script dir");
            std::fs::write(path, &out.stdout).expect("write script");
        }
        std::fs::write(
            shells.file(".zshrc"),
            format!(
                "fpath=({} $fpath)\nautoload -U compinit\ncompinit -u -d {}\nPS1='$ '\n",
                shells.file("zfunc").display(),
                shells.file(".zcompdump").display()
            ),
        )
        .expect("write .zshrc");
        shells
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `program` with only what a completion needs from the environment.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.dir.path())
            .env("TERM", "xterm")
            .env("CONTAINER_RUNTIME_ENDPOINT", &self.endpoint)
            .env("CRIMG_STATE_DIR", self.dir.path().join("state"))
            // A busy test machine may take longer than an idle node's 1.5 s to answer.
            .env("CRIMG_COMPLETE_TIMEOUT", "20s");
        cmd
    }

    /// What bash's completion function puts in COMPREPLY for `line` with the cursor at
    /// its end, called as bash calls it: with the word bash completes as its second
    /// argument, cut at the default `COMP_WORDBREAKS` (blanks and `"'@><=;|&(:`).
    fn bash_replies(&self, line: &str) -> Vec<String> {
        let word = line.rsplit(|c| " \t\n\"'@><=;|&(:".contains(c)).next();
        self.bash_replies_with_word(line, word.unwrap_or_default())
    }

    /// The same, with `word` as bash's word (as `COMP_WORDBREAKS` without `=` or `:` gives).
    fn bash_replies_with_word(&self, line: &str, word: &str) -> Vec<String> {
        let script = format!(
            "source {}\nCOMP_LINE=\"$1\" COMP_POINT=${{#1}} COMP_TYPE=9\n\
             COMPREPLY=()\n_crimg_complete crimg \"$2\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            self.file("crimg.bash").display()
        );
        let out = self
            .command("bash")
            .args(["--norc", "--noprofile", "-c", &script, "bash", line, word])
            .output()
            .expect("bash");
        assert!(out.status.success(), "bash for {line:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// crimg asked, as bash's script asks it, to complete the last of `words`.
    fn ask_crimg(&self, words: &[&str]) -> Command {
        let mut cmd = self.command("crimg");
        cmd.arg("--")
            .args(words)
            .env("CRIMG_COMPLETE", "bash")
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string());
        cmd
    }

    /// What fish offers for `line`.
    fn fish_replies(&self, line: &str) -> Vec<String> {
        let script = format!(
            "set fish_complete_path {} $fish_complete_path; complete -C $argv[1]",
            self.file("fishc").display()
        );
        let out = self
            .command("fish")
            .args(["--no-config", "-c", &script, line])
            .output()
            .expect("fish");
        assert!(out.status.success(), "fish for {line:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    }

    /// Types `typed` into an interactive `shell` in a terminal, presses Tab, and returns
    /// the prompt line as the shell left it.
    fn typed_then_tab(&self, shell: &[&str], typed: &str) -> String {
        let tmux = || {
            let mut cmd = self.command("tmux");
            cmd.env("ZDOTDIR", self.dir.path());
            cmd
        };
        let terminal = Terminal::start(tmux, 200, 20, shell);
        terminal.wait_for(&format!("{}'s prompt", shell[0]), |s| {
            s.lines().any(|l| l.trim_end() == "$")
        });
        terminal.type_text(typed);
        let before = format!("$ {typed}");
        terminal.wait_for(&format!("{} with the typed line", shell[0]), |s| {
            s.lines().any(|l| l.trim_end() == before)
        });
        terminal.press("Tab");
        terminal.wait_for(&format!("{} completing", shell[0]), |s| {
            s.lines()
                .any(|l| l.starts_with("$ ") && l.trim_end().len() > before.len())
        });
        // A mark after the completion shows whether the shell added a space (the screen
        // keeps no trailing blanks).
        terminal.type_text("#");
        let marked = |l: &&str| l.starts_with("$ ") && l.trim_end().ends_with('#');
        let screen = terminal.wait_for(&format!("{} with the mark", shell[0]), |s| {
            s.lines().any(|l| marked(&l))
        });
        screen
            .lines()
            .find(marked)
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }
}

fn node_with_images() -> (Node, [FixtureImage; 4]) {
    let node = Node::start();
    let images = [WEB_1, WEB_2, PAUSE, APP].map(FixtureImage::new);
    for image in &images {
        node.import(image);
    }
    (node, images)
}

#[test]
fn bash_completes_subcommands_formats_and_the_runtimes_images() {
    let (node, images) = node_with_images();
    let shells = Shells::new(&node.endpoint());

    assert_eq!(shells.bash_replies("crimg li"), ["list"]);
    // bash cuts words at ':' and '=': the reply carries on from the last cut.
    assert_eq!(
        shells.bash_replies("crimg pin reg.local:5000/te"),
        ["5000/team/app:v1"]
    );
    assert_eq!(shells.bash_replies("crimg pin web:"), ["1.0", "2.0"]);
    assert_eq!(
        shells.bash_replies("crimg prune --exclude regis"),
        ["registry.k8s.io/pause:3.9"]
    );
    assert_eq!(
        shells.bash_replies("crimg prune --exclude=regis"),
        ["registry.k8s.io/pause:3.9"]
    );
    // Whatever COMP_WORDBREAKS holds (some shells' setups drop `=` or `:` from it), the
    // reply replaces exactly bash's word.
    assert_eq!(
        shells.bash_replies_with_word("crimg prune --exclude=regis", "--exclude=regis"),
        ["--exclude=registry.k8s.io/pause:3.9"]
    );
    assert_eq!(
        shells.bash_replies_with_word("crimg pin reg.local:5000/te", "reg.local:5000/te"),
        [APP]
    );
    assert_eq!(
        shells.bash_replies("crimg export -O /tmp/x.tar docker.io/library/w"),
        [WEB_1, WEB_2]
    );
    // Quotes are the shell's, not the word's: inside an open quote bash's word starts
    // after the quote (bash closes it); after a closed one, at the last word break.
    for quote in ["'", "\""] {
        assert_eq!(
            shells.bash_replies_with_word(&format!("crimg pin {quote}web:"), "web:"),
            ["web:1.0", "web:2.0"],
            "{quote}"
        );
    }
    assert_eq!(
        shells.bash_replies_with_word("crimg pin \"web:\"1", "\"web:\"1"),
        ["web:1.0"]
    );
    // A reply goes back quoted for the shell unless bash is inside an open quote: a path
    // with a blank stays one word.
    let spaced = shells.file("my dir");
    std::fs::create_dir(&spaced).unwrap();
    std::fs::write(spaced.join("x.tar"), "").unwrap();
    let typed = format!("{}/my\\ dir/x", shells.dir.path().display());
    assert_eq!(
        shells.bash_replies_with_word(&format!("crimg import {typed}"), &typed),
        [format!("{}/my\\ dir/x.tar", shells.dir.path().display())]
    );
    let open = format!("{}/my d", shells.dir.path().display());
    assert_eq!(
        shells.bash_replies_with_word(&format!("crimg import '{open}"), &open),
        [format!("{}/my dir/", shells.dir.path().display())]
    );
    let every = shells.bash_replies("crimg unpin ");
    // An empty word: every tag, then the options.
    assert!(every.len() > 4, "{every:?}");
    assert_eq!(every[..4], [WEB_1, WEB_2, APP, PAUSE], "{every:?}");
    assert!(every[4..].iter().all(|w| w.starts_with('-')), "{every:?}");
    // An ID prefix completes to the short ID list prints.
    let id = images[0].config_digest();
    let hex = id.trim_start_matches("sha256:");
    assert_eq!(
        shells.bash_replies(&format!("crimg check {}", &hex[..8])),
        [&hex[..12]]
    );

    // -o offers what the command prints: pin has no wide table, list has.
    assert_eq!(
        shells.bash_replies("crimg pin -o "),
        ["table", "json", "name"]
    );
    assert_eq!(
        shells.bash_replies("crimg list -o "),
        ["table", "wide", "json", "name"]
    );
    assert_eq!(shells.bash_replies("crimg export -o "), ["table", "json"]);

    // And takes only what it offers: a format the command does not print is a usage error,
    // after the subcommand (clap's check) and before it (crimg's own), before any work.
    let out = node.dir().join("never.tar");
    let out = out.to_str().unwrap();
    for (args, says) in [
        (
            &["export", "-o", "wide", "-O", out, WEB_1][..],
            "[possible values: table, json]",
        ),
        (
            &["-o", "wide", "export", "-O", out, WEB_1],
            "crimg export has no -o wide; it prints table, json",
        ),
        (
            &["-o", "json", "completions", "bash"],
            "crimg completions prints no records: -o json does not apply",
        ),
    ] {
        let run = crimg(node.crimg(), args).expect_code(2);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(!Path::new(out).exists(), "{args:?} wrote {out}");
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    crimg(node.crimg(), &["-o", "json", "export", "-O", out, WEB_1]).expect_code(0);
    assert!(Path::new(out).is_file());
}

#[test]
fn interactive_bash_zsh_and_fish_complete_image_references() {
    let (node, _images) = node_with_images();
    let shells = Shells::new(&node.endpoint());
    let bashrc = shells.file("crimg.bash");
    let bash_rc = shells.file("bashrc");
    std::fs::write(&bash_rc, format!("source {}\nPS1='$ '\n", bashrc.display())).unwrap();
    let rc = bash_rc.to_str().unwrap();

    let line = shells.typed_then_tab(
        &["bash", "--noprofile", "--rcfile", rc, "-i"],
        "crimg pin reg.local:5000/te",
    );
    // The space before the mark: a whole reference ends the word.
    assert_eq!(line, format!("$ crimg pin {APP} #"), "bash");
    let line = shells.typed_then_tab(
        &["bash", "--noprofile", "--rcfile", rc, "-i"],
        "crimg pin 'reg.local:5000/te",
    );
    assert_eq!(line, format!("$ crimg pin '{APP}' #"), "bash, quoted");
    // A user's `set -e` survives a Tab.
    let strict_rc = shells.file("bashrc-e");
    std::fs::write(
        &strict_rc,
        format!("set -e\nsource {}\n", bash_rc.display()),
    )
    .unwrap();
    let line = shells.typed_then_tab(
        &[
            "bash",
            "--noprofile",
            "--rcfile",
            strict_rc.to_str().unwrap(),
            "-i",
        ],
        "crimg pin reg.local:5000/te",
    );
    assert_eq!(line, format!("$ crimg pin {APP} #"), "bash, set -e");

    let line = shells.typed_then_tab(&["zsh", "-i"], "crimg pin reg.local:5000/te");
    assert_eq!(line, format!("$ crimg pin {APP} #"), "zsh");

    let line = shells.typed_then_tab(&["zsh", "-i"], "crimg prune --why regis");
    assert_eq!(line, format!("$ crimg prune --why {PAUSE} #"), "zsh");
    let line = shells.typed_then_tab(&["zsh", "-i"], "crimg pin \"reg.local:5000/te");
    assert_eq!(line, format!("$ crimg pin \"{APP}\" #"), "zsh, quoted");
    let line = shells.typed_then_tab(&["zsh", "-i"], "crimg pin reg.local:'5000/te");
    assert_eq!(line, format!("$ crimg pin {APP} #"), "zsh, quoted mid-word");

    assert_eq!(
        shells.fish_replies("crimg pin web:"),
        ["web:1.0", "web:2.0"]
    );
    assert_eq!(shells.fish_replies("crimg pin reg.local:5000/te"), [APP]);
    assert_eq!(
        shells.fish_replies("crimg pin 'web:"),
        ["web:1.0", "web:2.0"],
        "fish, quoted"
    );
    let formats = shells.fish_replies("crimg unpin -o ");
    assert_eq!(formats, ["table", "json", "name"], "{formats:?}");
    // A token fish cannot unescape is asked for as typed, still as the word after -o.
    let bad = shells.fish_replies("crimg unpin -o \\");
    assert!(bad.is_empty(), "{bad:?}");
}

/// Without a runtime, completion offers no image and prints nothing: no error may land in
/// the user's prompt, and it does not fail.
#[test]
fn completion_without_a_runtime_offers_nothing_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let shells = Shells::new(&format!(
        "unix://{}",
        dir.path().join("absent.sock").display()
    ));
    let out = shells
        .ask_crimg(&["crimg", "pin", "w"])
        .output()
        .expect("crimg");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    // Subcommands still complete.
    assert_eq!(shells.bash_replies("crimg imp"), ["import"]);
}

/// A runtime socket that takes the connection and never answers (a hung containerd) holds
/// the prompt no longer than completion's deadline (1.5 s), then offers nothing.
#[test]
fn completion_gives_up_on_a_runtime_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hung.sock");
    // Bound, listening and never accepted: connecting succeeds, no reply ever comes.
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    listener.set_nonblocking(true).unwrap();
    let shells = Shells::new(&format!("unix://{}", socket.display()));
    let connected = || match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    };

    // An option is clap's to complete: the runtime is not even asked.
    assert_eq!(shells.bash_replies("crimg pin --dr"), ["--dry-run"]);
    assert!(
        !connected(),
        "completing an option connected to the runtime"
    );
    let mut ask = shells.ask_crimg(&["crimg", "pin", "w"]);
    // The default wait, as an operator's shell has it.
    ask.env_remove("CRIMG_COMPLETE_TIMEOUT");
    let started = Instant::now();
    let out = ask.output().expect("crimg");
    let took = started.elapsed();
    assert!(
        connected(),
        "completing a reference never asked the runtime"
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    assert!(
        took < Duration::from_secs(3),
        "completion waited {took:?} on a runtime that never answers"
    );
}

/// crictl's config read before connecting is covered by the deadline too: a
/// `CRI_CONFIG_FILE` that never yields its contents (a FIFO here, a hung mount on a node)
/// holds the prompt no longer than the deadline.
#[test]
fn completion_gives_up_on_a_config_file_that_never_reads() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("crictl.yaml");
    crate::support::sys::mkfifo(&fifo);
    let shells = Shells::new("");
    let mut ask = shells.ask_crimg(&["crimg", "pin", "w"]);
    ask.env_remove("CONTAINER_RUNTIME_ENDPOINT")
        .env_remove("CRIMG_COMPLETE_TIMEOUT")
        .env("CRI_CONFIG_FILE", &fifo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let mut child = ask.spawn().expect("crimg");
    // Waited for with a limit of its own: a completion stuck on the FIFO must fail this
    // test, not hang the suite.
    let waited = wait_bounded(&mut child, Duration::from_secs(10));
    let took = started.elapsed();
    assert!(
        waited.is_some(),
        "completion still waiting on {} after 10 s",
        fifo.display()
    );
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    assert!(took < Duration::from_secs(3), "completion waited {took:?}");
}
