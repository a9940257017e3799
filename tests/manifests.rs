//! The manifests in deploy/ as Kubernetes and systemd would read them: every object of
//! every kustomize overlay parses strictly as its kind (an unknown or misspelt field
//! fails), every crimg command line in them parses with crimg's own definition, and the
//! DaemonSet mounts what its arguments name.
//!
//! Needs `kubectl` (for `kubectl kustomize`, which renders the overlays offline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use crimg::cli::{Cli, Command as Sub};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, PodSpec};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde::de::DeserializeOwned;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Parses `value` as `T`, failing on any field `T` does not have.
fn strict<T: DeserializeOwned>(what: &str, value: serde_yaml_ng::Value) -> T {
    let mut unknown = Vec::new();
    let parsed: Result<T, _> = serde_ignored::deserialize(value, |path| {
        unknown.push(path.to_string());
    });
    let parsed = parsed.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(unknown.is_empty(), "{what}: unknown fields {unknown:?}");
    parsed
}

/// Every object an overlay renders to, typed.
#[derive(Default)]
struct Objects {
    daemonsets: Vec<DaemonSet>,
    configmaps: Vec<ConfigMap>,
    priority_classes: Vec<PriorityClass>,
    namespaces: Vec<Namespace>,
}

fn render(overlay: &Path) -> Objects {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(overlay)
        .output()
        .unwrap_or_else(|e| panic!("this test needs kubectl (kubectl kustomize): {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        overlay.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut objects = Objects::default();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: serde_yaml_ng::Value =
            serde::Deserialize::deserialize(doc).expect("a YAML document");
        let kind = value["kind"]
            .as_str()
            .expect("every object has a kind")
            .to_string();
        let what = format!("{} {kind}", overlay.display());
        match kind.as_str() {
            "DaemonSet" => objects.daemonsets.push(strict(&what, value)),
            "ConfigMap" => objects.configmaps.push(strict(&what, value)),
            "PriorityClass" => objects.priority_classes.push(strict(&what, value)),
            "Namespace" => objects.namespaces.push(strict(&what, value)),
            other => panic!("{what}: no test knows the kind {other}"),
        }
    }
    objects
}

fn overlays() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(deploy().join("overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert_eq!(v.len(), 2, "{v:?}");
    v
}

/// crimg's arguments in a container: its command must be the binary itself.
fn crimg_args(c: &Container) -> Vec<String> {
    let command = c.command.clone().unwrap_or_default();
    assert_eq!(command, ["/crimg"], "container {}", c.name);
    let mut argv = vec!["crimg".to_string()];
    argv.extend(c.args.clone().unwrap_or_default());
    argv
}

/// The value of `--name=VALUE` or `--name VALUE` in argv.
fn flag<'a>(argv: &'a [String], name: &str) -> &'a str {
    let eq = format!("{name}=");
    argv.iter()
        .enumerate()
        .find_map(|(i, a)| {
            a.strip_prefix(&eq)
                .or_else(|| (a == name).then(|| argv[i + 1].as_str()))
        })
        .unwrap_or_else(|| panic!("no {name} in {argv:?}"))
}

/// The mount that holds `path` inside the container, and the host path behind it.
fn mount_of<'a>(spec: &'a PodSpec, c: &'a Container, path: &str) -> (String, Option<String>) {
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let m = mounts
        .iter()
        .filter(|m| Path::new(path).starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .unwrap_or_else(|| panic!("nothing is mounted at {path} in {}", c.name));
    let volume = spec
        .volumes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|v| v.name == m.name)
        .unwrap_or_else(|| panic!("mount {} names no volume", m.name));
    (
        m.mount_path.clone(),
        volume.host_path.as_ref().map(|h| h.path.clone()),
    )
}

#[test]
fn every_overlay_renders_strictly_typed_objects_crimg_can_run() {
    for overlay in overlays() {
        let o = render(&overlay);
        let here = overlay.display().to_string();
        assert_eq!(o.daemonsets.len(), 1, "{here}");
        assert_eq!(o.namespaces.len(), 1, "{here}");
        assert_eq!(o.priority_classes.len(), 1, "{here}");
        assert_eq!(o.configmaps.len(), 1, "{here}");
        let ds = &o.daemonsets[0];
        let spec = ds.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();

        // No Kubernetes API access at all.
        assert_eq!(pod.automount_service_account_token, Some(false), "{here}");
        // On every node: one toleration of every taint.
        let tolerations = pod.tolerations.as_deref().unwrap_or_default();
        assert!(
            tolerations
                .iter()
                .any(|t| t.operator.as_deref() == Some("Exists")
                    && t.key.is_none()
                    && t.effect.is_none()),
            "{here}: {tolerations:?}"
        );
        assert_eq!(
            pod.priority_class_name.as_deref(),
            o.priority_classes[0].metadata.name.as_deref(),
            "{here}"
        );
        assert_eq!(pod.containers.len(), 1, "{here}");
        let c = &pod.containers[0];
        let resources = c.resources.as_ref().unwrap();
        for part in [&resources.requests, &resources.limits] {
            let part = part.as_ref().unwrap();
            assert!(
                part.contains_key("cpu") && part.contains_key("memory"),
                "{here}"
            );
        }
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{here}");
        assert_eq!(sc.privileged, Some(false), "{here}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{here}");
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..]),
            "{here}"
        );

        // The command line is crimg's.
        let argv = crimg_args(c);
        let cli = Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{here}: {argv:?} does not parse: {e}"));
        let Sub::Prune(prune) = &cli.command else {
            panic!("{here}: not prune: {argv:?}")
        };
        assert!(
            prune.every.is_some() && prune.high_usage.is_some(),
            "{here}"
        );
        assert!(prune.high_usage > prune.target_usage, "{here}");

        // Everything it names is mounted, host paths where the host's are meant.
        let env: BTreeMap<String, String> = c
            .env
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        let endpoint = &env["CONTAINER_RUNTIME_ENDPOINT"];
        let socket = endpoint.strip_prefix("unix://").unwrap();
        let (at, host) = mount_of(pod, c, socket);
        assert_eq!(host.as_deref(), Some(at.as_str()), "{here}: {socket}");
        for (name, file) in [
            ("--metrics-file", true),
            ("--state-file", true),
            ("--exclude-dir", false),
        ] {
            let path = flag(&argv, name);
            let dir = if file {
                Path::new(path).parent().unwrap().to_str().unwrap()
            } else {
                path
            };
            let (at, _) = mount_of(pod, c, dir);
            assert_eq!(at, dir, "{here}: {name}");
        }
        // The exclusion directory is the ConfigMap, and it holds .conf files.
        let exclude = flag(&argv, "--exclude-dir");
        let mounts = c.volume_mounts.as_deref().unwrap();
        let m = mounts.iter().find(|m| m.mount_path == exclude).unwrap();
        let v = pod
            .volumes
            .as_deref()
            .unwrap()
            .iter()
            .find(|v| v.name == m.name)
            .unwrap();
        assert_eq!(
            v.config_map.as_ref().map(|c| c.name.as_str()),
            o.configmaps[0].metadata.name.as_deref(),
            "{here}"
        );
        let data = o.configmaps[0].data.as_ref().unwrap();
        assert!(
            data.keys().all(|k| k.ends_with(".conf")),
            "{here}: {data:?}"
        );
        // The image filesystem is mounted at the host's own path (crimg measures it
        // where CRI says it is), and so is the runtime's socket directory.
        for m in mounts {
            let v = pod
                .volumes
                .as_deref()
                .unwrap()
                .iter()
                .find(|v| v.name == m.name)
                .unwrap_or_else(|| panic!("{here}: mount {} names no volume", m.name));
            if let Some(h) = &v.host_path {
                assert_eq!(h.path, m.mount_path, "{here}: {}", m.name);
            }
        }
    }
}

#[test]
fn overlays_differ_only_where_the_runtimes_do() {
    let sockets: Vec<String> = overlays()
        .iter()
        .map(|o| {
            let ds = render(o).daemonsets.remove(0);
            let pod = ds.spec.unwrap().template.spec.unwrap();
            let env = pod.containers[0].env.clone().unwrap();
            env.iter()
                .find(|e| e.name == "CONTAINER_RUNTIME_ENDPOINT")
                .and_then(|e| e.value.clone())
                .unwrap()
        })
        .collect();
    assert_eq!(
        sockets,
        [
            "unix:///run/containerd/containerd.sock",
            "unix:///run/k3s/containerd/containerd.sock"
        ]
    );
}

/// `ExecStart=` of a unit, continuation lines joined, split into words.
fn exec_start(unit: &str) -> Vec<String> {
    let text = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
    let joined = text.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{unit}: no ExecStart"));
    assert!(
        !line.contains(['"', '\'', '$', '%']),
        "{unit}: keep it unquoted"
    );
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn systemd_units_run_command_lines_crimg_accepts() {
    let mut units: Vec<String> = std::fs::read_dir(deploy().join("systemd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    units.sort();
    assert_eq!(
        units,
        [
            "crimg-import-watch.service",
            "crimg-prune.service",
            "crimg-prune.timer"
        ]
    );
    let prune = exec_start("crimg-prune.service");
    assert_eq!(prune[0], "/usr/local/bin/crimg");
    let cli = Cli::try_parse_from(&prune).unwrap_or_else(|e| panic!("{prune:?}: {e}"));
    assert!(
        matches!(cli.command, Sub::Prune(ref p) if p.every.is_none() && p.metrics_file.is_some())
    );
    let watch = exec_start("crimg-import-watch.service");
    let cli = Cli::try_parse_from(&watch).unwrap_or_else(|e| panic!("{watch:?}: {e}"));
    assert!(matches!(cli.command, Sub::Import(ref i) if i.watch && i.metrics_file.is_some()));
}
