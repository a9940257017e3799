//! Endpoint resolution (flags, environment, crictl's config file, auto-detection) and
//! connecting to CRI and containerd.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use crate::error::{CrimgError, Tried};
use crate::runtime::containerd::Containerd;
use crate::runtime::cri::Cri;
use crate::runtime::transport::{connect_unix, socket_path};

/// Sockets tried, in order, when no runtime endpoint is configured.
pub(crate) const DEFAULT_RUNTIME_ENDPOINTS: &[&str] = &[
    "unix:///run/containerd/containerd.sock",
    "unix:///run/k3s/containerd/containerd.sock",
    "unix:///var/run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
];

/// containerd sockets tried when the CRI runtime is not containerd itself.
pub(crate) const DEFAULT_CONTAINERD_ADDRESSES: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
];

/// crictl's config file when none is named.
pub(crate) const DEFAULT_CRICTL_CONFIG: &str = "/etc/crictl.yaml";

/// The environment variables that name the runtime, as crictl and ctr read them: declared
/// once for the options, their help and the hints of connection errors.
pub(crate) const ENV_RUNTIME_ENDPOINT: &str = "CONTAINER_RUNTIME_ENDPOINT";
pub(crate) const ENV_IMAGE_ENDPOINT: &str = "IMAGE_SERVICE_ENDPOINT";
pub(crate) const ENV_CONTAINERD_ADDRESS: &str = "CONTAINERD_ADDRESS";
pub(crate) const ENV_CRI_CONFIG: &str = "CRI_CONFIG_FILE";

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect, as the user asked (flags and environment, already merged by clap).
#[derive(Debug, Clone, Default)]
pub(crate) struct EndpointArgs {
    pub(crate) runtime_endpoint: Option<String>,
    pub(crate) image_endpoint: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) namespace: String,
    pub(crate) config: Option<PathBuf>,
    pub(crate) timeout: Option<Duration>,
}

/// crictl's YAML config: the keys crimg honours.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct CrictlConfig {
    pub(crate) runtime_endpoint: Option<String>,
    pub(crate) image_endpoint: Option<String>,
    /// Seconds, as crictl writes it (an integer), or a duration string.
    pub(crate) timeout: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(crate) debug: bool,
}

impl CrictlConfig {
    pub(crate) fn parse(text: &str, file: &Path) -> Result<CrictlConfig, CrimgError> {
        if text.trim().is_empty() {
            return Ok(CrictlConfig::default());
        }
        serde_yaml_ng::from_str(text)
            .map_err(|e| CrimgError::Usage(format!("config file {}: {e}", file.display())))
    }

    /// The configured timeout, range-checked like `--timeout`. `0` means the default, as
    /// it does for crictl.
    pub(crate) fn timeout(&self, file: &Path) -> Result<Option<Duration>, CrimgError> {
        use serde_yaml_ng::Value;
        let bad =
            |e: String| CrimgError::Usage(format!("config file {}: timeout: {e}", file.display()));
        match &self.timeout {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(secs) => check_timeout(Duration::from_secs(secs), &n.to_string())
                    .map(Some)
                    .map_err(bad),
                None => Err(bad(format!(
                    "{n} is not a whole number of seconds or a duration like 10s"
                ))),
            },
            Some(Value::String(s)) => parse_timeout(s).map(Some).map_err(bad),
            Some(other) => Err(CrimgError::Usage(format!(
                "config file {}: timeout {other:?} is neither seconds nor a duration",
                file.display()
            ))),
        }
    }
}

/// The shortest timeout accepted: below it, even a healthy runtime on the node would
/// look unreachable.
pub(crate) const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest timeout accepted: a day. gRPC cannot carry much more, and no call needs it.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Parses a timeout (`--timeout`, crictl's `timeout`) and checks its range.
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    check_timeout(crate::model::parse_duration(s)?, s.trim())
}

fn check_timeout(d: Duration, text: &str) -> Result<Duration, String> {
    if d < MIN_TIMEOUT {
        Err(format!(
            "{text:?} is too short a timeout (at least {})",
            crate::model::human_duration(MIN_TIMEOUT)
        ))
    } else if d > MAX_TIMEOUT {
        Err(format!(
            "{text:?} is too long a timeout (at most {})",
            crate::model::human_duration(MAX_TIMEOUT)
        ))
    } else {
        Ok(d)
    }
}

/// The endpoints to use once flags, environment and the config file are merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resolved {
    /// Runtime endpoints to try in order (one when configured; the defaults that exist otherwise).
    pub(crate) runtime_candidates: Vec<String>,
    /// Whether the runtime endpoint was configured (so absence is an error, not a skip).
    pub(crate) runtime_configured: bool,
    pub(crate) image_endpoint: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) timeout: Duration,
}

/// Merges flags/environment with crictl's config file. A named config file that cannot be
/// read is an error; the default one is only read when it exists.
pub(crate) fn resolve(args: &EndpointArgs) -> Result<Resolved, CrimgError> {
    let (config, file) = match &args.config {
        Some(path) => {
            let text = match crate::files::read_text(path, crate::files::MAX_CONFIG_SIZE) {
                Ok(Some(text)) => text,
                Ok(None) => {
                    return Err(CrimgError::Usage(format!(
                        "config file {}: no such file",
                        path.display()
                    )));
                }
                Err(e) => return Err(CrimgError::Usage(format!("config file {e:#}"))),
            };
            (CrictlConfig::parse(&text, path)?, path.clone())
        }
        None => {
            let path = PathBuf::from(DEFAULT_CRICTL_CONFIG);
            match crate::files::read_text(&path, crate::files::MAX_CONFIG_SIZE) {
                Ok(Some(text)) => (CrictlConfig::parse(&text, &path)?, path),
                // Only a file the user named must be readable.
                Ok(None) | Err(_) => (CrictlConfig::default(), path),
            }
        }
    };
    let timeout = match args.timeout {
        Some(t) => t,
        None => config.timeout(&file)?.unwrap_or(DEFAULT_TIMEOUT),
    };
    let configured = args
        .runtime_endpoint
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| config.runtime_endpoint.clone().filter(|s| !s.is_empty()));
    let (runtime_candidates, runtime_configured) = match configured {
        Some(ep) => (vec![ep], true),
        None => (
            DEFAULT_RUNTIME_ENDPOINTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            false,
        ),
    };
    Ok(Resolved {
        runtime_candidates,
        runtime_configured,
        image_endpoint: args
            .image_endpoint
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| config.image_endpoint.clone().filter(|s| !s.is_empty())),
        address: args.address.clone().filter(|s| !s.is_empty()),
        timeout,
    })
}

fn runtime_hint() -> String {
    format!(
        "is the container runtime running? Name its socket with --runtime-endpoint (or \
         {ENV_RUNTIME_ENDPOINT}, or runtime-endpoint in {DEFAULT_CRICTL_CONFIG})"
    )
}

const PERMISSION_HINT: &str = "the socket admits only its owner and group: run crimg as \
     root (e.g. with sudo), or as a member of the socket's group";

/// Why connecting to `path` failed; for a permission problem, who may use the socket.
fn socket_problem(path: &Path, e: &std::io::Error) -> String {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if e.kind() != std::io::ErrorKind::PermissionDenied {
        return e.to_string();
    }
    // /proc/self belongs to the process's effective user and group.
    let me = match std::fs::metadata("/proc/self") {
        Ok(m) => format!("crimg runs as uid {} gid {}", m.uid(), m.gid()),
        Err(_) => "crimg is not root".into(),
    };
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "permission denied: the socket is owner {} group {} mode {:04o}, {me}",
            m.uid(),
            m.gid(),
            m.permissions().mode() & 0o7777
        ),
        // The socket itself cannot be looked at: a directory on the way is closed.
        Err(_) => format!("permission denied: a directory on the way to it is closed; {me}"),
    }
}

/// Connects to the CRI runtime and image services.
pub(crate) async fn connect_cri(r: &Resolved) -> Result<Cri, CrimgError> {
    let mut tried = Vec::new();
    let mut denied = false;
    let mut runtime = None;
    for ep in &r.runtime_candidates {
        let path = socket_path(ep).map_err(CrimgError::Usage)?;
        if !r.runtime_configured && !path.exists() {
            tried.push(Tried {
                endpoint: ep.clone(),
                problem: "no such socket".into(),
            });
            continue;
        }
        match connect_unix(&path, r.timeout).await {
            Ok(ch) => {
                runtime = Some((ep.clone(), ch));
                break;
            }
            Err(e) => {
                denied |= e.kind() == std::io::ErrorKind::PermissionDenied;
                tried.push(Tried {
                    endpoint: ep.clone(),
                    problem: socket_problem(&path, &e),
                })
            }
        }
    }
    let Some((runtime_ep, runtime_ch)) = runtime else {
        return Err(CrimgError::Unreachable {
            what: "container runtime (CRI)",
            tried,
            hint: if denied {
                PERMISSION_HINT.into()
            } else {
                runtime_hint()
            },
        });
    };
    let (image_ep, image_ch) =
        match &r.image_endpoint {
            Some(ep) if ep != &runtime_ep => {
                let path = socket_path(ep).map_err(CrimgError::Usage)?;
                let ch = connect_unix(&path, r.timeout).await.map_err(|e| CrimgError::Unreachable {
                what: "CRI image service",
                tried: vec![Tried {
                    endpoint: ep.clone(),
                    problem: socket_problem(&path, &e),
                }],
                hint: if e.kind() == std::io::ErrorKind::PermissionDenied {
                    PERMISSION_HINT.into()
                } else {
                    format!(
                        "check --image-endpoint (or {ENV_IMAGE_ENDPOINT}, or image-endpoint in \
                         the config file)"
                    )
                },
            })?;
                (ep.clone(), ch)
            }
            _ => (runtime_ep.clone(), runtime_ch.clone()),
        };
    Ok(Cri::new(
        runtime_ch, image_ch, r.timeout, runtime_ep, image_ep,
    ))
}

/// The containerd sockets to try: the configured address; else the CRI endpoint when the
/// runtime is containerd; else the usual containerd and K3s sockets.
pub(crate) fn containerd_candidates(
    r: &Resolved,
    cri_endpoint: &str,
    runtime_name: &str,
) -> Vec<String> {
    if let Some(a) = &r.address {
        return vec![a.clone()];
    }
    let mut out = Vec::new();
    if runtime_name == "containerd"
        && let Ok(p) = socket_path(cri_endpoint)
    {
        out.push(p.display().to_string());
    }
    for d in DEFAULT_CONTAINERD_ADDRESSES {
        if !out.iter().any(|o| o == d) {
            out.push(d.to_string());
        }
    }
    out
}

/// Connects to containerd's API, trying candidates in order.
pub async fn connect_containerd(
    candidates: &[String],
    namespace: &str,
    timeout: Duration,
) -> Result<Containerd, CrimgError> {
    let mut tried = Vec::new();
    let mut denied = false;
    for c in candidates {
        let path = socket_path(c).map_err(CrimgError::Usage)?;
        match connect_unix(&path, timeout).await {
            Ok(ch) => {
                let client = Containerd::new(ch, namespace, timeout, path.display().to_string())
                    .map_err(|e| CrimgError::Usage(format!("{e:#}")))?;
                match client.version().await {
                    Ok(_) => return Ok(client),
                    Err(e) => tried.push(Tried {
                        endpoint: c.clone(),
                        problem: format!(
                            "not containerd's API: {}",
                            crate::runtime::status_text(&e)
                        ),
                    }),
                }
            }
            Err(e) => {
                denied |= e.kind() == std::io::ErrorKind::PermissionDenied;
                tried.push(Tried {
                    endpoint: c.clone(),
                    problem: socket_problem(&path, &e),
                })
            }
        }
    }
    Err(CrimgError::Unreachable {
        what: "containerd API",
        tried,
        hint: if denied {
            PERMISSION_HINT.into()
        } else {
            format!(
                "this command needs containerd's own API; name its socket with --address (or \
                 {ENV_CONTAINERD_ADDRESS})"
            )
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crictl_config_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crictl.yaml");
        std::fs::write(
            &file,
            "runtime-endpoint: unix:///run/a.sock\nimage-endpoint: unix:///run/b.sock\ntimeout: 3\ndebug: false\n",
        )
        .unwrap();
        let args = EndpointArgs {
            config: Some(file.clone()),
            namespace: "k8s.io".into(),
            ..EndpointArgs::default()
        };
        let r = resolve(&args).unwrap();
        assert_eq!(r.runtime_candidates, ["unix:///run/a.sock"]);
        assert!(r.runtime_configured);
        assert_eq!(r.image_endpoint.as_deref(), Some("unix:///run/b.sock"));
        assert_eq!(r.timeout, Duration::from_secs(3));

        let flags = EndpointArgs {
            runtime_endpoint: Some("/run/c.sock".into()),
            timeout: Some(Duration::from_secs(1)),
            ..args.clone()
        };
        let r = resolve(&flags).unwrap();
        assert_eq!(r.runtime_candidates, ["/run/c.sock"]);
        assert_eq!(r.timeout, Duration::from_secs(1));

        let missing = EndpointArgs {
            config: Some(dir.path().join("nope.yaml")),
            ..EndpointArgs::default()
        };
        assert!(matches!(resolve(&missing), Err(CrimgError::Usage(_))));

        std::fs::write(&file, "runtime-endpoint: [unclosed\n").unwrap();
        assert!(matches!(resolve(&args), Err(CrimgError::Usage(_))));
    }

    #[test]
    fn containerd_candidate_order() {
        let r = Resolved {
            runtime_candidates: vec![],
            runtime_configured: true,
            image_endpoint: None,
            address: None,
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(
            containerd_candidates(&r, "unix:///tmp/x.sock", "containerd"),
            [
                "/tmp/x.sock",
                "/run/containerd/containerd.sock",
                "/run/k3s/containerd/containerd.sock"
            ]
        );
        assert_eq!(
            containerd_candidates(&r, "unix:///var/run/crio/crio.sock", "cri-o"),
            [
                "/run/containerd/containerd.sock",
                "/run/k3s/containerd/containerd.sock"
            ]
        );
        let with = Resolved {
            address: Some("/a.sock".into()),
            ..r
        };
        assert_eq!(
            containerd_candidates(&with, "unix:///tmp/x.sock", "containerd"),
            ["/a.sock"]
        );
    }

    #[test]
    fn timeouts_are_range_checked() {
        let cases: &[(&str, Result<Duration, &str>)] = &[
            ("10s", Ok(Duration::from_secs(10))),
            ("100ms", Ok(MIN_TIMEOUT)),
            ("24h", Ok(MAX_TIMEOUT)),
            ("3", Err("no unit")),
            ("0s", Err("too short")),
            ("0", Err("no unit")),
            ("99ms", Err("too short")),
            ("25h", Err("too long")),
            ("9999999999999s", Err("too long")),
            ("18446744073709551615", Err("no unit")),
            ("99999999999999999999999s", Err("not a duration")),
            ("-1s", Err("not a duration")),
        ];
        for (text, want) in cases {
            match (parse_timeout(text), want) {
                (Ok(d), Ok(w)) => assert_eq!(d, *w, "{text}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, _) => panic!("{text}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn config_timeouts_are_range_checked() {
        let file = Path::new("/etc/crictl.yaml");
        let timeout = |yaml: &str| CrictlConfig::parse(yaml, file).unwrap().timeout(file);
        assert_eq!(timeout("timeout: 0\n").unwrap(), None, "0 is the default");
        assert_eq!(
            timeout("timeout: 5\n").unwrap(),
            Some(Duration::from_secs(5))
        );
        for bad in [
            "timeout: 9999999999999\n",
            "timeout: \"9999999999999s\"\n",
            "timeout: -1\n",
            "timeout: 1.5\n",
            "timeout: 0s\n",
        ] {
            let e = timeout(bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("config file /etc/crictl.yaml: timeout:"),
                "{bad}: {e}"
            );
            assert_eq!(e.exit_status(), crate::exit::ExitStatus::Usage, "{bad}");
        }
    }
}
