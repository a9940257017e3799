//! containerd's own configuration file: the few settings crimg needs that CRI does not
//! report on every version (the sandbox image, `discard_unpacked_layers`, the registry
//! hosts directory, the snapshotter), read where each config version keeps them.
//!
//! | setting | version 1 and 2 (`plugins."io.containerd.grpc.v1.cri"`, 1: `plugins.cri`) | version 3 and 4 (containerd 2.x) |
//! |---|---|---|
//! | sandbox image | `sandbox_image` | `plugins.'io.containerd.cri.v1.images'.pinned_images.sandbox` |
//! | discard | `containerd.discard_unpacked_layers` | `plugins.'io.containerd.cri.v1.images'.discard_unpacked_layers` |
//! | hosts dir | `registry.config_path` | `plugins.'io.containerd.cri.v1.images'.registry.config_path` |
//! | snapshotter | `containerd.snapshotter` | `plugins.'io.containerd.cri.v1.images'.snapshotter` |
//!
//! `imports` (paths or globs, relative to the importing file) are read after the file that
//! names them, breadth first, each in its own version, and a later file's setting wins,
//! as containerd merges them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

/// containerd's own default, used when nothing else names the file.
pub(crate) const DEFAULT_PATH: &str = "/etc/containerd/config.toml";
/// Where K3s and RKE2 write the configuration of the containerd they run.
pub(crate) const DISTRIBUTION_PATHS: [&str; 2] = [
    "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
    "/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
];
/// containerd's registry hosts directory when its configuration names none.
pub(crate) const DEFAULT_HOSTS_DIR: &str = "/etc/containerd/certs.d";
/// Imports nest; this many files is more than any real configuration has.
const MAX_FILES: usize = 64;

/// The settings read, with the file each came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContainerdConfig {
    /// The main file.
    pub(crate) path: PathBuf,
    pub(crate) sandbox_image: Option<String>,
    pub(crate) discard_unpacked_layers: Option<bool>,
    /// `config_path`: one or more hosts directories, `:`-separated.
    pub(crate) registry_config_path: Option<String>,
    pub(crate) snapshotter: Option<String>,
}

impl ContainerdConfig {
    /// The first hosts directory `config_path` names, as containerd reads it first.
    pub(crate) fn hosts_dir(&self) -> Option<PathBuf> {
        self.registry_config_path
            .as_deref()?
            .split(':')
            .find(|d| !d.is_empty())
            .map(PathBuf::from)
    }
}

/// Reads `path` and its imports. `Ok(None)` when `path` does not exist.
pub(crate) fn load(path: &Path) -> Result<Option<ContainerdConfig>> {
    let mut out = ContainerdConfig {
        path: path.to_path_buf(),
        ..ContainerdConfig::default()
    };
    let mut pending = vec![path.to_path_buf()];
    let mut seen = HashSet::new();
    let mut next = 0;
    while next < pending.len() {
        let file = pending[next].clone();
        next += 1;
        if !seen.insert(file.clone()) {
            continue;
        }
        if seen.len() > MAX_FILES {
            return Err(anyhow!(
                "{}: more than {MAX_FILES} files through `imports`",
                path.display()
            ));
        }
        let Some(text) = crate::files::read_text(&file, crate::files::MAX_CONFIG_SIZE)? else {
            if file == path {
                return Ok(None);
            }
            // containerd skips an import that names no file; so does crimg.
            continue;
        };
        let doc: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{}: not a containerd configuration", file.display()))?;
        out.overlay(settings_of(&doc));
        pending.extend(imports_of(&doc, &file)?);
    }
    Ok(Some(out))
}

impl ContainerdConfig {
    /// Takes every setting `later` has, as a later file overrides an earlier one.
    fn overlay(&mut self, later: ContainerdConfig) {
        let ContainerdConfig {
            path: _,
            sandbox_image,
            discard_unpacked_layers,
            registry_config_path,
            snapshotter,
        } = later;
        self.sandbox_image = sandbox_image.or(self.sandbox_image.take());
        self.discard_unpacked_layers = discard_unpacked_layers.or(self.discard_unpacked_layers);
        self.registry_config_path = registry_config_path.or(self.registry_config_path.take());
        self.snapshotter = snapshotter.or(self.snapshotter.take());
    }
}

/// The settings one file sets, read where its version keeps them.
fn settings_of(doc: &toml::Table) -> ContainerdConfig {
    let version = doc
        .get("version")
        .and_then(toml::Value::as_integer)
        .unwrap_or(1);
    let plugins = doc.get("plugins");
    let at = |root: Option<&toml::Value>, path: &[&str]| -> Option<toml::Value> {
        path.iter().try_fold(root?, |v, key| v.get(key)).cloned()
    };
    let string = |v: Option<toml::Value>| v.and_then(|v| v.as_str().map(str::to_string));
    let boolean = |v: Option<toml::Value>| v.and_then(|v| v.as_bool());
    if version >= 3 {
        let images = at(plugins, &["io.containerd.cri.v1.images"]);
        let images = images.as_ref();
        ContainerdConfig {
            sandbox_image: string(at(images, &["pinned_images", "sandbox"])),
            discard_unpacked_layers: boolean(at(images, &["discard_unpacked_layers"])),
            registry_config_path: string(at(images, &["registry", "config_path"])),
            snapshotter: string(at(images, &["snapshotter"])),
            ..ContainerdConfig::default()
        }
    } else {
        let name = if version == 2 {
            "io.containerd.grpc.v1.cri"
        } else {
            "cri"
        };
        let cri = at(plugins, &[name]);
        let cri = cri.as_ref();
        ContainerdConfig {
            sandbox_image: string(at(cri, &["sandbox_image"])),
            discard_unpacked_layers: boolean(at(cri, &["containerd", "discard_unpacked_layers"])),
            registry_config_path: string(at(cri, &["registry", "config_path"])),
            snapshotter: string(at(cri, &["containerd", "snapshotter"])),
            ..ContainerdConfig::default()
        }
    }
    .non_empty()
}

impl ContainerdConfig {
    /// An empty string is containerd's "not set".
    fn non_empty(mut self) -> ContainerdConfig {
        for s in [
            &mut self.sandbox_image,
            &mut self.registry_config_path,
            &mut self.snapshotter,
        ] {
            if s.as_deref() == Some("") {
                *s = None;
            }
        }
        self
    }
}

/// The files `imports` names, globs expanded (sorted), relative ones against `file`'s
/// directory.
fn imports_of(doc: &toml::Table, file: &Path) -> Result<Vec<PathBuf>> {
    let Some(list) = doc.get("imports") else {
        return Ok(Vec::new());
    };
    let entries = list
        .as_array()
        .ok_or_else(|| anyhow!("{}: `imports` must be a list of paths", file.display()))?;
    let base = file.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for entry in entries {
        let pattern = entry
            .as_str()
            .ok_or_else(|| anyhow!("{}: `imports` holds {entry}, not a path", file.display()))?;
        let full = base.join(pattern);
        let text = full.to_string_lossy();
        if text.contains(['*', '?', '[']) {
            let mut matched: Vec<PathBuf> = glob::glob(&text)
                .with_context(|| format!("{}: import {pattern:?}", file.display()))?
                .filter_map(Result::ok)
                .collect();
            matched.sort();
            out.extend(matched);
        } else {
            out.push(full);
        }
    }
    Ok(out)
}

/// The configuration file of the containerd serving `socket`: the `--config` (`-c`) that
/// process was started with (its pid from the socket's peer credentials, its arguments
/// from `/proc`), else containerd's default file, else K3s's or RKE2's where they exist.
/// `None` when none of these exists.
pub(crate) fn locate(socket: &Path) -> Option<PathBuf> {
    if let Some(p) = config_of_peer(socket) {
        return Some(p);
    }
    std::iter::once(DEFAULT_PATH)
        .chain(DISTRIBUTION_PATHS)
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The `--config` of the process listening on `socket`, when it is visible (crimg in its
/// own pid namespace sees no peer) and was given one; containerd's default file when that
/// process is containerd started without one.
fn config_of_peer(socket: &Path) -> Option<PathBuf> {
    let stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    let pid = rustix::net::sockopt::socket_peercred(&stream).ok()?.pid;
    let pid = pid.as_raw_nonzero().get();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let given = config_argument(&args)?;
    let path = match given {
        Some(p) if Path::new(&p).is_relative() => {
            std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?.join(p)
        }
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(DEFAULT_PATH),
    };
    Some(path)
}

/// `Some(Some(path))` for `containerd --config PATH` (`-c PATH`, `--config=PATH`),
/// `Some(None)` for containerd without one, `None` when the program is not containerd.
fn config_argument(args: &[String]) -> Option<Option<String>> {
    let program = Path::new(args.first()?).file_name()?.to_str()?;
    if program != "containerd" {
        return None;
    }
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--config" || a == "-c" || a == "-config" {
            return Some(it.next().cloned());
        }
        for prefix in ["--config=", "-c=", "-config="] {
            if let Some(p) = a.strip_prefix(prefix) {
                return Some(Some(p.to_string()));
            }
        }
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn settings_by_version() {
        let cases = [
            (
                "version 3 (containerd 2.x, K3s 1.32+)",
                r#"version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  discard_unpacked_layers = true
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.k8s.io/pause:3.10"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "/etc/containerd/certs.d:/other"
[plugins.'io.containerd.grpc.v1.cri']
  sandbox_image = "ignored:1"
"#,
                (
                    Some("registry.k8s.io/pause:3.10"),
                    Some(true),
                    Some("/etc/containerd/certs.d:/other"),
                    Some("overlayfs"),
                ),
            ),
            (
                "version 4 (containerd 2.3: the CRI plugins as in version 3)",
                r#"version = 4
[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.k8s.io/pause:3.10.2"
"#,
                (Some("registry.k8s.io/pause:3.10.2"), None, None, None),
            ),
            (
                "version 2 (1.6, 1.7)",
                r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "rancher/mirrored-pause:3.6"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    discard_unpacked_layers = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/var/lib/rancher/k3s/agent/etc/containerd/certs.d"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "ignored:2"
"#,
                (
                    Some("rancher/mirrored-pause:3.6"),
                    Some(false),
                    Some("/var/lib/rancher/k3s/agent/etc/containerd/certs.d"),
                    Some("native"),
                ),
            ),
            (
                "version 1 (no version key)",
                r#"[plugins.cri]
  sandbox_image = "k8s.gcr.io/pause:3.2"
  [plugins.cri.containerd]
    discard_unpacked_layers = true
"#,
                (Some("k8s.gcr.io/pause:3.2"), Some(true), None, None),
            ),
            (
                "empty strings are unset",
                r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ""
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
"#,
                (None, None, None, None),
            ),
            ("nothing set", "version = 3\n", (None, None, None, None)),
        ];
        for (name, text, want) in cases {
            let doc: toml::Table = toml::from_str(text).unwrap();
            let got = settings_of(&doc);
            let got = (
                got.sandbox_image.as_deref(),
                got.discard_unpacked_layers,
                got.registry_config_path.as_deref(),
                got.snapshotter.as_deref(),
            );
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn imports_are_read_after_their_file_and_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "config.toml",
            r#"version = 3
imports = ["conf.d/*.toml", "/nonexistent/x.toml", "config.toml"]
[plugins.'io.containerd.cri.v1.images']
  discard_unpacked_layers = false
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.k8s.io/pause:3.10"
"#,
        );
        // A drop-in of another version, read in name order: b after a.
        write(
            dir.path(),
            "conf.d/a.toml",
            r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "reg.local/pause:a"
"#,
        );
        write(
            dir.path(),
            "conf.d/b.toml",
            r#"version = 3
imports = ["../nested.toml"]
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "reg.local/pause:b"
"#,
        );
        write(
            dir.path(),
            "nested.toml",
            r#"version = 3
[plugins.'io.containerd.cri.v1.images']
  discard_unpacked_layers = true
"#,
        );
        let c = load(&main).unwrap().unwrap();
        assert_eq!(c.path, main);
        assert_eq!(c.sandbox_image.as_deref(), Some("reg.local/pause:b"));
        assert_eq!(c.discard_unpacked_layers, Some(true));
        assert_eq!(load(&dir.path().join("none.toml")).unwrap(), None);
    }

    #[test]
    fn bad_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad.toml", "this is not toml");
        let e = format!("{:#}", load(&bad).unwrap_err());
        assert!(
            e.contains("bad.toml") && e.contains("not a containerd"),
            "{e}"
        );
        let imports = write(dir.path(), "imports.toml", "imports = \"x\"\n");
        let e = format!("{:#}", load(&imports).unwrap_err());
        assert!(
            e.contains("imports.toml") && e.contains("list of paths"),
            "{e}"
        );
        let fifo = dir.path().join("fifo.toml");
        crate::files::tests::fifo(&fifo);
        let e = format!("{:#}", load(&fifo).unwrap_err());
        assert!(e.contains("fifo.toml") && e.contains("a FIFO"), "{e}");
    }

    #[test]
    fn config_argument_of_containerd_only() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let k3s = "containerd -c /var/lib/rancher/k3s/agent/etc/containerd/config.toml -a /run/k3s/containerd/containerd.sock";
        let cases = [
            (
                k3s,
                Some(Some(
                    "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
                )),
            ),
            (
                "/usr/bin/containerd --config /x/c.toml",
                Some(Some("/x/c.toml")),
            ),
            (
                "/usr/bin/containerd --config=/y.toml",
                Some(Some("/y.toml")),
            ),
            ("/usr/bin/containerd", Some(None)),
            ("/usr/bin/containerd --log-level debug", Some(None)),
            ("/usr/bin/socat UNIX-LISTEN:x", None),
        ];
        for (line, want) in cases {
            let got = config_argument(&args(line));
            assert_eq!(got, want.map(|o| o.map(str::to_string)), "{line}");
        }
    }
}
