//! A real terminal for a test: a tmux server of its own running one program, whose screen
//! the test reads and into which it types.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One tmux server with one window of a given size; stopped when dropped.
pub struct Terminal<'a> {
    server: String,
    /// A `tmux` command with the environment the program is to see.
    tmux: Box<dyn Fn() -> Command + 'a>,
}

impl<'a> Terminal<'a> {
    /// Starts `program` (its words) in a `width` × `height` terminal. `tmux` makes the
    /// `tmux` command, with the environment the program is to see.
    pub fn start(
        tmux: impl Fn() -> Command + 'a,
        width: u16,
        height: u16,
        program: &[&str],
    ) -> Terminal<'a> {
        // A fresh server name every time: a name reused right after `kill-server` can meet
        // the old server still exiting.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let terminal = Terminal {
            server: format!(
                "crimg-e2e-{}-{}",
                std::process::id(),
                STARTED.fetch_add(1, Ordering::Relaxed)
            ),
            tmux: Box::new(tmux),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let mut args = vec!["new-session", "-d", "-x", &w, "-y", &h];
        args.extend_from_slice(program);
        terminal.run(&args);
        terminal
    }

    /// Runs a tmux command against this server; its standard output.
    fn run(&self, args: &[&str]) -> String {
        let out = (self.tmux)()
            .arg("-L")
            .arg(&self.server)
            .args(args)
            .output()
            .expect("tmux (scripts/test.sh installs it)");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` as it is.
    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-l", text]);
    }

    /// Presses `key` (tmux's key names: `Tab`, `Enter`).
    pub fn press(&self, key: &str) {
        self.run(&["send-keys", key]);
    }

    /// The screen once `done` holds for it, within 20 s; fails naming `what` otherwise.
    pub fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.run(&["capture-pane", "-p"]);
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Terminal<'_> {
    fn drop(&mut self) {
        // Also after a failed wait: the server and its program must not outlive the test.
        // Its result is not checked: a test that is already failing keeps its own message.
        let _ = (self.tmux)()
            .args(["-L", &self.server, "kill-server"])
            .output();
    }
}
