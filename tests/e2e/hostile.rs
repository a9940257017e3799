//! Hostile input and rude interruptions: archives built to hurt an importer, and
//! signals in the middle of an import or export. Each must fail cleanly, naming the
//! file, with nothing written outside containerd and containerd exactly as before.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::run::crimg;
use crate::support::archives::{self, Compress, Members, big_archive};
use crate::support::content::{discarded_image, leases};
use crate::support::hostile::{
    add_config_field, edit_config, hex, hostile_tars, layer_path, replace,
};
use crate::support::sys::wait_until;
use crate::support::{FixtureImage, Node, digest};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Everything an import could leave behind in containerd.
fn node_state(node: &Node) -> (String, String, String, String) {
    (
        node.ctr_ok(&["images", "ls", "-q"]),
        node.ctr_ok(&["content", "ls", "-q"]),
        node.ctr_ok(&["snapshots", "ls"]),
        node.ctr_ok(&["leases", "ls", "-q"]),
    )
}

/// Every path under the node dir except containerd's own dirs, its log and crimg's
/// state dir: where an escaping write would show.
fn files_outside_containerd(node: &Node) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.insert(p.clone());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(node.dir(), &mut out);
    let skip = ["root", "state", "crimg-state"].map(|d| node.dir().join(d));
    out.retain(|p| !skip.iter().any(|d| p.starts_with(d)));
    out
}

/// A gzip stream of a tar without holding the inflated tar in memory: the members,
/// then `bomb_path` holding `bomb_len` zero bytes.
fn gzip_bomb(members: &Members, bomb_path: &str, bomb_len: u64) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut out = tar::Builder::new(gz);
    let put = |out: &mut tar::Builder<_>, path: &str, len: u64, r: &mut dyn std::io::Read| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(len);
        out.append_data(&mut h, path, r).unwrap();
    };
    for (path, data) in members {
        if path != bomb_path {
            put(&mut out, path, data.len() as u64, &mut &data[..]);
        }
    }
    put(
        &mut out,
        bomb_path,
        bomb_len,
        &mut std::io::Read::take(std::io::repeat(0), bomb_len),
    );
    out.into_inner().unwrap().finish().unwrap()
}

#[test]
fn hostile_archives_fail_naming_the_file_and_leave_nothing() {
    let node = Node::start();
    let dir = node.dir().join("hostile");
    fs::create_dir_all(&dir).unwrap();

    // (file name, bytes, what the error must say). Every case has its own image, so no
    // blob of it is in the store already.
    // The files are named neutrally (`case-N`), so the cause the error must give can
    // only come from what crimg found, never from the echoed file name.
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    for (name, make, problems) in hostile_tars() {
        for (c, problem) in [Compress::None, Compress::Gzip].into_iter().zip(problems) {
            let file = format!(
                "case-{}{}",
                cases.len(),
                if c == Compress::Gzip {
                    ".tar.gz"
                } else {
                    ".tar"
                }
            );
            let image = FixtureImage::new(&format!("docker.io/library/{name}-{}:1", c.name()));
            let members = archives::oci_layout(&[&image], false);
            cases.push((
                file,
                archives::compress(c, &make(&image, &members)),
                problem,
            ));
        }
    }
    // A decompression bomb: the layer's tar entry inflates to 64 MiB of zeros where its
    // descriptor says about a KiB.
    let image = FixtureImage::new("docker.io/library/bomb:1");
    let members = archives::oci_layout(&[&image], false);
    cases.push((
        format!("case-{}.tar.gz", cases.len()),
        gzip_bomb(&members, &layer_path(&image), 64 << 20),
        "digest",
    ));

    let mut failures = Vec::new();
    for (name, bytes, problem) in &cases {
        let path = dir.join(name);
        archives::write(&path, bytes);
        let before = node_state(&node);
        let files_before = files_outside_containerd(&node);
        let started = Instant::now();
        let r = crimg(node.crimg(), &["import", s(&path)]);
        let took = started.elapsed();
        let line = r.stderr.trim();
        let mut wrong = Vec::new();
        if r.code != 1 {
            wrong.push(format!("exit {}", r.code));
        }
        // The cause is said after the file's path.
        match line.split_once(s(&path)) {
            None => wrong.push("the error does not name the file".into()),
            Some((_, cause)) if !cause.contains(problem) => {
                wrong.push(format!("the error does not say {problem:?}"));
            }
            Some(_) => {}
        }
        if line.lines().count() != 1 {
            wrong.push("not one line".into());
        }
        // A hang guard, not a speed target: generous enough for a loaded 2-core machine.
        if took > Duration::from_secs(60) {
            wrong.push(format!("took {took:?}, as if it hung"));
        }
        if node_state(&node) != before {
            wrong.push("containerd changed".into());
        }
        if files_outside_containerd(&node) != files_before {
            wrong.push("files appeared outside containerd".into());
        }
        if !wrong.is_empty() {
            failures.push(format!("{name}: {}\n  stderr: {line}", wrong.join(", ")));
        }
        fs::remove_file(&path).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

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

/// `node.crimg()` run under `umask 077`, through sh (the crate forbids unsafe code).
fn crimg_umask_077(node: &Node) -> std::process::Command {
    crimg_umask(node, "077")
}

/// `node.crimg()` run under `umask <mask>`.
fn crimg_umask(node: &Node, mask: &str) -> std::process::Command {
    let c = node.crimg();
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &format!("umask {mask}; exec \"$@\""), "sh"])
        .arg(c.get_program())
        .args(c.get_args())
        .stdin(std::process::Stdio::null());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

/// The archive's mode (0644) under a strict umask, and when --force replaces a 0600 file.
#[test]
fn export_mode_under_a_strict_umask() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/exp-mode:1");
    node.import(&img);
    let dir = node.dir().join("exports");
    fs::create_dir_all(&dir).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let fresh = dir.join("fresh.tar");
    crimg(
        crimg_umask_077(&node),
        &["export", "-O", s(&fresh), &img.name],
    )
    .expect_code(0);
    assert_eq!(
        mode(&fresh),
        0o600,
        "a new archive under umask 077: 0666 less the umask"
    );

    // 0666 less the umask, not a fixed mode.
    let group = dir.join("group.tar");
    crimg(
        crimg_umask(&node, "002"),
        &["export", "-O", s(&group), &img.name],
    )
    .expect_code(0);
    assert_eq!(mode(&group), 0o664, "a new archive under umask 002");
    fs::remove_file(&group).unwrap();

    let old = dir.join("old.tar");
    fs::write(&old, "old").unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o600)).unwrap();
    crimg(
        crimg_umask_077(&node),
        &["export", "--force", "-O", s(&old), &img.name],
    )
    .expect_code(0);
    assert_eq!(mode(&old), 0o600, "a replaced file gets a new one's mode");

    let names: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["fresh.tar", "old.tar"].map(String::from)),
        "no temp file left"
    );
}

/// Every subcommand with extreme values of every numeric and duration option, from the
/// command line and from crictl's config file: a clear answer each time, never a panic.
#[test]
fn extreme_numbers_and_durations_never_panic() {
    let node = Node::start();
    let img = FixtureImage::new("docker.io/library/extreme:1");
    node.import(&img);
    let dir = node.dir().join("extreme");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.tar");
    let missing = dir.join("missing.tar");
    let commands: Vec<Vec<&str>> = vec![
        vec!["list"],
        vec!["pin", "extreme:1"],
        vec!["unpin", "extreme:1"],
        vec!["prune", "--dry-run"],
        vec!["import", s(&missing)],
        vec!["export", "--force", "-O", s(&out), "extreme:1"],
        vec!["completions", "bash"],
    ];
    let values = [
        "0",
        "0s",
        "-1",
        "-1s",
        "1ns",
        "9999999999999",
        "9999999999999s",
        "18446744073709551616",
        "99999999999999999999999999y",
        "1e400",
        "NaN",
        "",
    ];
    let mut runs = Vec::new();
    for cmd in &commands {
        for v in values {
            let flag = format!("--timeout={v}");
            let mut args = vec![flag.as_str()];
            args.extend(cmd.iter().copied());
            runs.push((args.join(" "), crimg(node.crimg(), &args)));

            let config = dir.join("crictl.yaml");
            fs::write(&config, format!("timeout: {v}\n")).unwrap();
            let mut args = vec!["--config", s(&config)];
            args.extend(cmd.iter().copied());
            runs.push((
                format!("config timeout {v:?}: {}", cmd.join(" ")),
                crimg(node.crimg(), &args),
            ));
        }
    }
    for opt in [
        "--older-than",
        "--keep-last",
        "--parallel",
        "--target-usage",
    ] {
        for v in values
            .iter()
            .chain(&["100", "101", "100%", "1e-300", "inf"])
        {
            let flag = format!("{opt}={v}");
            let args = ["prune", "--dry-run", flag.as_str()];
            runs.push((args.join(" "), crimg(node.crimg(), &args)));
        }
    }
    assert!(runs.len() > 200, "{} runs", runs.len());
    let mut failures = Vec::new();
    for (what, run) in &runs {
        if run.code == 101 || run.code < 0 || run.stderr.contains("panicked") {
            failures.push(format!("{what}: exit {}\n{}", run.code, run.stderr));
        }
        if run.code == 2 && !run.stderr.contains("error") {
            failures.push(format!("{what}: exit 2 without saying why\n{}", run.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The ones the range checks answer, with what they say.
    let cases: &[(&[&str], &str)] = &[
        (&["--timeout", "0s", "list"], "too short"),
        (&["--timeout", "9999999999999s", "list"], "too long"),
        (
            &["prune", "--older-than", "9999999999999s"],
            "longer than 100 years",
        ),
    ];
    for (args, says) in cases {
        let run = crimg(node.crimg(), args).expect_code(2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    let config = dir.join("crictl.yaml");
    fs::write(&config, "timeout: 9999999999999\n").unwrap();
    let run = crimg(node.crimg(), &["--config", s(&config), "list"]).expect_code(2);
    assert!(
        run.stderr.contains(s(&config)) && run.stderr.contains("too long"),
        "{}",
        run.stderr
    );
}

/// Runs a tool the test needs, failing with what it said.
fn tool(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entry types of a plain tar, read header by header (no sparse expansion).
fn entry_types(tar: &Path) -> Vec<tar::EntryType> {
    let mut archive = tar::Archive::new(fs::File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().header().entry_type())
        .collect()
}

/// Archives written by GNU tar with `--sparse`: the GNU format's sparse members are read
/// (holes filled with zeros, digests right); the PAX format's are refused by name and
/// nothing is left. A gzip archive cut before its trailer is refused like truncated
/// zstd: the CRC and length are checked.
#[test]
fn sparse_members_and_gzip_trailers() {
    let node = Node::start();
    let dir = node.dir().join("sparse");
    let layout = dir.join("layout");
    fs::create_dir_all(&layout).unwrap();

    // A layer that is mostly zeros, so a sparse copy of its blob has holes.
    let mut data = vec![0u8; 4 << 20];
    data[..5].copy_from_slice(b"start");
    let end = data.len() - 3;
    data[end..].copy_from_slice(b"end");
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    layer.append_data(&mut h, "zeros", &data[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let layer_digest = digest(&layer);
    let plain = dir.join("plain.tar");
    let name = "docker.io/library/sparse:1";
    archives::write_layered_oci(&plain, name, "/x", &[&layer]);
    tool(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(&plain)
            .arg("-C")
            .arg(&layout),
    );
    let blob = layout.join("blobs/sha256").join(hex(&layer_digest));
    let holey = dir.join("holey");
    tool(
        std::process::Command::new("cp")
            .arg("--sparse=always")
            .arg(&blob)
            .arg(&holey),
    );
    fs::rename(&holey, &blob).unwrap();

    // PAX format: refused, naming the member, nothing left (first, so that no blob of
    // the image is in the store yet).
    let pax = dir.join("pax-sparse.tar");
    tool(
        std::process::Command::new("tar")
            .args(["--sparse", "--format=pax", "-cf"])
            .arg(&pax)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    let before = node_state(&node);
    let r = crimg(node.crimg(), &["import", "--no-unpack", s(&pax)]).expect_code(1);
    assert!(
        r.stderr.contains(hex(&layer_digest)) && r.stderr.contains("PAX sparse member"),
        "{}",
        r.stderr
    );
    assert_eq!(node_state(&node), before, "nothing left");

    // GNU format: read.
    let gnu = dir.join("gnu-sparse.tar");
    tool(
        std::process::Command::new("tar")
            .args(["--sparse", "--format=gnu", "-cf"])
            .arg(&gnu)
            .arg("-C")
            .arg(&layout)
            .arg("."),
    );
    assert!(
        entry_types(&gnu).contains(&tar::EntryType::GNUSparse),
        "tar --sparse wrote a sparse member"
    );
    let r = crimg(node.crimg(), &["import", "--no-unpack", s(&gnu)]).expect_code(0);
    assert!(r.stderr.contains("imported"), "{}", r.stderr);
    let stored = node.ctr_ok(&["content", "ls", "-q"]);
    assert!(stored.contains(&layer_digest), "{stored}");
    node.ctr_ok(&["images", "rm", name]);

    // gzip without its trailer (CRC and length), or with half of it: refused.
    let whole = dir.join("whole.tar.gz");
    let gz = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(gz.status.success());
    fs::write(&whole, &gz.stdout).unwrap();
    for cut in [8, 4] {
        let cut_file = dir.join(format!("cut{cut}.tar.gz"));
        fs::write(&cut_file, &gz.stdout[..gz.stdout.len() - cut]).unwrap();
        let before = node_state(&node);
        let r = crimg(node.crimg(), &["import", "--no-unpack", s(&cut_file)]).expect_code(1);
        assert!(
            r.stderr.contains(s(&cut_file))
                && r.stderr.contains("gzip stream is truncated or corrupt"),
            "{}",
            r.stderr
        );
        assert_eq!(node_state(&node), before, "nothing left");
    }
    // A damaged CRC too.
    let mut bad_crc = gz.stdout.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    let bad = dir.join("badcrc.tar.gz");
    fs::write(&bad, &bad_crc).unwrap();
    crimg(node.crimg(), &["import", "--no-unpack", s(&bad)]).expect_code(1);
    // The whole file imports.
    crimg(node.crimg(), &["import", "--no-unpack", s(&whole)]).expect_code(0);
}

/// An image whose config crimg accepts but containerd's CRI does not (`created` that is
/// no time): its records are removed and it fails; the other archive's image stays.
#[test]
fn an_image_cri_does_not_list_is_rolled_back() {
    let node = Node::start();
    let dir = node.dir().join("cri-refuses");
    fs::create_dir_all(&dir).unwrap();
    let good = FixtureImage::new("docker.io/library/cri-good:1");
    let bad = FixtureImage::new("docker.io/library/cri-refused:1");
    let good_path = dir.join("one.tar");
    archives::write(
        &good_path,
        &archives::tar(&archives::oci_layout(&[&good], false)),
    );
    let bad_path = dir.join("two.tar");
    let members = archives::oci_layout(&[&bad], false);
    archives::write(
        &bad_path,
        &archives::tar(&edit_config(&members, &bad, |c| {
            add_config_field(c, "created", b"\"not a time\"")
        })),
    );
    let before = node_state(&node);
    let r = crimg(node.crimg(), &["import", s(&good_path), s(&bad_path)]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains(s(&bad_path)))
        .unwrap_or_else(|| panic!("no error naming {}: {}", bad_path.display(), r.stderr));
    assert!(
        line.contains(&format!(
            "{}: containerd stored the image but CRI does not list it",
            bad.name
        )) && line.contains("containerd's log"),
        "{line}"
    );
    assert!(
        node.cri_image_status(&good.name)
            .is_some_and(|i| i.id == good.config_digest()),
        "{} not listed",
        good.name
    );
    let images = node.ctr_ok(&["images", "ls", "-q"]);
    assert!(!images.contains(&bad.name), "{images}");
    assert!(!images.contains(&bad.config_digest()), "{images}");
    let content = node.ctr_ok(&["content", "ls", "-q"]);
    assert!(!content.contains(&bad.layer_digest()), "{content}");
    assert_eq!(
        node.ctr_ok(&["leases", "ls", "-q"]),
        before.3,
        "a lease left"
    );

    // Alone: exit 1, containerd exactly as before.
    let before = node_state(&node);
    let r = crimg(node.crimg(), &["import", s(&bad_path)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("CRI does not list it"), "{}", r.stderr);
    assert_eq!(node_state(&node), before);
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

/// An index that claims a size its manifest does not have (2^62 bytes), for a manifest
/// already in the content store: import refuses it as inspect does, and the existing
/// image record, size included, is left as it was, so it still exports.
#[test]
fn a_descriptor_that_lies_about_its_size_is_refused_and_changes_nothing() {
    let node = Node::start();
    let image = FixtureImage::new("docker.io/library/sized:1");
    node.import(&image);
    let before = node_state(&node);
    let record_before = node.ctr_ok(&["images", "ls"]);

    let members = archives::oci_layout(&[&image], false);
    let index: serde_json::Value =
        serde_json::from_slice(&members.iter().find(|(p, _)| p == "index.json").unwrap().1)
            .unwrap();
    let mut lying = index.clone();
    lying["manifests"][0]["size"] = json!(1u64 << 62);
    let members = replace(&members, "index.json", serde_json::to_vec(&lying).unwrap());
    let file = node.dir().join("lying.tar");
    archives::write(&file, &archives::tar(&members));

    for cmd in ["inspect", "import"] {
        let r = crimg(node.crimg(), &[cmd, s(&file)]).expect_code(1);
        assert!(
            r.stderr.contains(&image.manifest_digest()),
            "{cmd}: {}",
            r.stderr
        );
    }
    // Records, snapshots and leases as before, every blob of the image still there (a
    // blob nothing referenced, as `ctr import` leaves its index, may be collected).
    let after = node_state(&node);
    assert_eq!(
        (&after.0, &after.2, &after.3),
        (&before.0, &before.2, &before.3)
    );
    for d in image.blobs().keys() {
        assert!(after.1.contains(d.as_str()), "{d} gone: {}", after.1);
    }
    assert_eq!(node.ctr_ok(&["images", "ls"]), record_before);
    let out = node.dir().join("out.tar");
    crimg(node.crimg(), &["export", "-O", s(&out), &image.name]).expect_code(0);
}
