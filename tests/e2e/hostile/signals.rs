//! Signals in the middle of work: SIGINT or SIGTERM during an import (streamed or of
//! 10 000 layers), an export or a `--fetch-missing` fetch says so, exits 130 or 143 and
//! undoes what it did: no image record, snapshot, lease or file left.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{node_state, s};
use crate::run::crimg;
use crate::support::Node;
use crate::support::archives::{self, big_archive};
use crate::support::content::{discarded_image, leases};
use crate::support::sys::wait_until;

/// Starts crimg with these arguments, waits (bounded) until `started` holds, sends it
/// `sig` (`INT`, `TERM`) with kill(1) and waits (bounded) for it to exit. Returns its
/// exit code and stderr.
fn interrupt(
    node: &Node,
    sig: &str,
    args: &[&str],
    started: impl FnMut() -> bool,
) -> (i32, String) {
    use std::process::Stdio;
    let child = node
        .crimg()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crimg");
    let underway = wait_until(Duration::from_secs(10), started);
    assert!(underway, "crimg never got underway: {args:?}");
    signal_and_wait(child, sig)
}

/// Sends a running crimg `sig` (`INT`, `TERM`) with kill(1) and waits (bounded) for it to
/// exit. Returns its exit code and stderr (piped).
fn signal_and_wait(mut child: std::process::Child, sig: &str) -> (i32, String) {
    use std::io::Read;
    assert!(
        child.try_wait().unwrap().is_none(),
        "crimg finished before it could be interrupted; make its work larger"
    );
    let sent = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{sig} failed");
    let status = crate::support::sys::wait_bounded(&mut child, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("crimg did not exit within 5 s of SIG{sig}"));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn sigint_during_import_undoes_it() {
    import_interrupted_by("INT", 130);
}

#[test]
fn sigterm_during_import_undoes_it() {
    import_interrupted_by("TERM", 143);
}

fn import_interrupted_by(sig: &str, exit: i32) {
    let node = Node::start();
    let dir = node.dir().join("big");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("big.tar");
    let name = big_archive(&archive);
    let before = node_state(&node);

    let ended = interrupt(&node, sig, &["import", s(&archive)], || {
        !leases(&node).trim().is_empty()
    });
    assert_import_undone(&node, (sig, exit), ended, &name, &before);
}

/// An import of `name` that `signal` (`INT`, 130) interrupted, by its exit code and
/// stderr: it says so, and nothing of it stays: no image record, no lease, the image
/// records and snapshots of `before` ([`node_state`]).
fn assert_import_undone(
    node: &Node,
    signal: (&str, i32),
    (code, stderr): (i32, String),
    name: &str,
    before: &(String, String, String, String),
) {
    let (sig, exit) = signal;
    assert_eq!(code, exit, "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by SIG{sig}")),
        "{stderr}"
    );
    assert!(
        !node.ctr_ok(&["images", "ls", "-q"]).contains(name),
        "an image record was left"
    );
    assert!(
        wait_until(Duration::from_secs(2), || leases(node).trim().is_empty()),
        "a lease was left: {}",
        leases(node)
    );
    let (images, _, snapshots, _) = node_state(node);
    assert_eq!((&images, &snapshots), (&before.0, &before.2));
}

/// `crimg import -` interrupted while its stream is still coming in, after the chain it
/// found in the stream was unpacked ahead of the archive's index: the undo takes those
/// snapshots too.
#[test]
fn sigint_during_a_streamed_import_undoes_its_early_snapshots() {
    use std::io::Write;
    use std::process::Stdio;
    let node = Node::start();
    let layers: Vec<Vec<u8>> = (0..3)
        .map(|i| archives::noise_layer(0x5eed_0071 + i, 8, &format!("l{i}")))
        .collect();
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let name = "docker.io/library/streamed:1";
    let (members, _) = archives::docker_legacy_layered(name, "/l0", &refs);
    let plain = archives::tar(&members);
    // Everything before manifest.json (the index, last): the layers and the config.
    let cut = archives::find(&plain, b"manifest.json");
    assert_eq!(cut % 512, 0, "manifest.json's header is not at {cut}");
    let before = node_state(&node);
    let committed_before = node.committed_snapshots();

    let mut child = node
        .crimg()
        .args(["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crimg");
    let mut stdin = child.stdin.take().unwrap();
    let head = plain[..cut].to_vec();
    // Written on a thread (a pipe holds 64 KiB); the pipe stays open after it.
    let writer = std::thread::spawn(move || stdin.write_all(&head).map(|()| stdin));
    let unpacked = wait_until(Duration::from_secs(30), || {
        node.committed_snapshots() >= committed_before + layers.len()
    });
    assert!(
        unpacked,
        "the chain was not unpacked from the stream: {}",
        node.ctr_ok(&["snapshots", "ls"])
    );
    // The stream stays open until crimg has exited: its end would fail the import.
    let stdin = writer.join().unwrap().expect("write the archive's head");
    let ended = signal_and_wait(child, "INT");
    drop(stdin);
    assert_import_undone(&node, ("INT", 130), ended, name, &before);
}

#[test]
fn sigint_during_export_leaves_no_file() {
    export_interrupted_by("INT", 130);
}

#[test]
fn sigterm_during_export_leaves_no_file() {
    export_interrupted_by("TERM", 143);
}

fn export_interrupted_by(sig: &str, exit: i32) {
    let node = Node::start();
    let dir = node.dir().join("big");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("big.tar");
    let name = big_archive(&archive);
    crimg(node.crimg(), &["import", "--no-unpack", s(&archive)]).expect_code(0);
    fs::remove_file(&archive).unwrap();
    let out = node.dir().join("out");
    fs::create_dir_all(&out).unwrap();
    let target = out.join("big.tar");

    let (code, stderr) = interrupt(&node, sig, &["export", "-O", s(&target), &name], || {
        fs::read_dir(&out).unwrap().next().is_some()
    });
    assert_eq!(code, exit, "{stderr}");
    assert!(
        stderr.contains(&format!("interrupted by SIG{sig}")),
        "{stderr}"
    );
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "files left beside the target: {left:?}");
}

/// A TCP port that accepts connections and never answers: a registry that hangs.
fn hanging_endpoint() -> (u16, std::sync::mpsc::Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
            let _ = tx.send(());
        }
    });
    (port, rx)
}

/// `export --fetch-missing` interrupted by SIGINT, then by SIGTERM, while it fetches a
/// missing layer under its lease (from a mirror that never answers): exit 130 or 143,
/// the lease deleted, no file left.
#[test]
fn signals_during_fetch_missing_release_the_lease() {
    let (node, _registry, img) = discarded_image();
    let (port, connected) = hanging_endpoint();
    let yaml = node.dir().join("registries.yaml");
    fs::write(
        &yaml,
        format!("mirrors:\n  \"*\":\n    endpoint:\n      - \"http://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let no_certs = node.dir().join("no-certs.d");
    let out = node.dir().join("out");
    fs::create_dir_all(&out).unwrap();
    let target = out.join("app.tar");
    for (sig, exit) in [("INT", 130), ("TERM", 143)] {
        let args = [
            "export",
            "--fetch-missing",
            "--registries-yaml",
            s(&yaml),
            "--registry-config-dir",
            s(&no_certs),
            "-O",
            s(&target),
            &img.name,
        ];
        let (code, stderr) = interrupt(&node, sig, &args, || {
            leases(&node).starts_with("crimg-export-") && connected.try_recv().is_ok()
        });
        assert_eq!(code, exit, "{stderr}");
        assert!(
            stderr.contains(&format!("interrupted by SIG{sig}")),
            "{stderr}"
        );
        assert!(
            wait_until(Duration::from_secs(2), || leases(&node).trim().is_empty()),
            "SIG{sig}: a lease was left: {}",
            leases(&node)
        );
        let left: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "SIG{sig}: files left: {left:?}");
    }
}

/// Writes an archive of one image of `n` tiny distinct layers. Returns its name.
fn many_layers_archive(path: &Path, n: usize) -> String {
    let layers: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut layer = tar::Builder::new(Vec::new());
            let body = i.to_string();
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_size(body.len() as u64);
            layer
                .append_data(&mut h, format!("f{i}"), body.as_bytes())
                .unwrap();
            layer.into_inner().unwrap()
        })
        .collect();
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let name = "docker.io/library/layers:10000";
    archives::write_layered_oci(path, name, "/f0", &refs);
    name.to_string()
}

/// A manifest of 10 000 layers: crimg plans and writes it in time and memory linear in
/// the layers, and SIGTERM while it works undoes it.
#[test]
fn ten_thousand_layers_then_sigterm() {
    let node = Node::start();
    let dir = node.dir().join("layers");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("layers.tar");
    let name = many_layers_archive(&archive, 10_000);
    let before = node_state(&node);

    let ended = interrupt(&node, "TERM", &["import", s(&archive)], || {
        // Underway: its lease is there and it has written some of the layers.
        !leases(&node).trim().is_empty()
            && node.ctr_ok(&["content", "ls", "-q"]).lines().count() > 100
    });
    assert_import_undone(&node, ("TERM", 143), ended, &name, &before);
}
