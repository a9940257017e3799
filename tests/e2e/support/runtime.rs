//! Which containerd the tests run: the first `containerd` on PATH. `scripts/test.sh` runs
//! the end-to-end tests once per containerd the README claims (1.6 from the host, 1.7 and
//! 2.x extracted from Debian packages) by putting that one's directory first on PATH.
//!
//! Where a behaviour truly differs by version, a test asks [`containerd`] and asserts what
//! that version does; it never skips.

use std::process::Command;
use std::sync::OnceLock;

/// A containerd release: its major and minor version and what `containerd --version` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerd {
    pub major: u32,
    pub minor: u32,
    /// The version as containerd prints it (`1.7.24~ds1`, `2.1.9~ds1`).
    pub text: String,
}

impl Containerd {
    /// containerd 2.0 and later: config version 3, the sandbox image pinned by containerd
    /// itself and no longer in CRI `Status`, image volumes.
    pub fn is_v2(&self) -> bool {
        self.major >= 2
    }

    /// Whether this is `major.minor` or later.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// Whether the runtime pins its own sandbox image: containerd 1.7 and 2.x label it
    /// `io.cri-containerd.pinned=pinned` as CRI sees it arrive, 1.6.20 does not.
    pub fn pins_sandbox_image(&self) -> bool {
        self.at_least(1, 7)
    }

    /// Why a pod's running sandbox image is kept, in crimg's order: the sandbox (`pod`, a
    /// full or short ID), the runtime's own pin where it makes one, the configured sandbox
    /// image. Built-in patterns are the caller's to add.
    pub fn sandbox_image_reasons(&self, pod: &str) -> Vec<String> {
        let mut reasons = vec![format!("in-use:sandbox:{pod}")];
        if self.pins_sandbox_image() {
            reasons.push("pinned:cri".into());
        }
        reasons.push("allowlist:sandbox-image".into());
        reasons
    }
}

/// The containerd the tests start, asked once per test process.
pub fn containerd() -> &'static Containerd {
    static VERSION: OnceLock<Containerd> = OnceLock::new();
    VERSION.get_or_init(|| {
        let out = Command::new("containerd")
            .arg("--version")
            .env("PATH", super::node::path_with_sbin())
            .output()
            .expect("run containerd --version (is it installed?)");
        let text = String::from_utf8_lossy(&out.stdout);
        parse_version(&text)
            .unwrap_or_else(|| panic!("cannot read a version from `containerd --version`: {text}"))
    })
}

/// `containerd github.com/containerd/containerd/v2 2.1.9~ds1 <commit>`: the third word.
fn parse_version(line: &str) -> Option<Containerd> {
    let text = line.split_whitespace().nth(2)?.to_string();
    let mut parts = text.trim_start_matches('v').split(['.', '~', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(Containerd { major, minor, text })
}

#[test]
fn versions_as_debian_and_upstream_print_them() {
    let cases = [
        (
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1",
            Some((1, 6, "1.6.20~ds1")),
        ),
        (
            "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6",
            Some((1, 7, "1.7.24~ds1")),
        ),
        (
            "containerd github.com/containerd/containerd/v2 2.1.9~ds1 2.1.9~ds1-1",
            Some((2, 1, "2.1.9~ds1")),
        ),
        (
            "containerd containerd.io v2.2.0 1c4457e00facac03ce1d75f7b6777a7a851e5c41",
            Some((2, 2, "v2.2.0")),
        ),
        ("containerd", None),
        ("containerd x y.z", None),
    ];
    for (line, want) in cases {
        let got = parse_version(line).map(|c| (c.major, c.minor, c.text));
        let want = want.map(|(a, b, t)| (a, b, t.to_string()));
        assert_eq!(got, want, "{line}");
    }
}
