//! One module per subcommand: gather, plan, apply, render. This module turns raw
//! arguments into settings and holds the connections a command needs.

pub(crate) mod exclude;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod inventory;
pub(crate) mod list;
pub(crate) mod metrics;
pub(crate) mod pin;
pub(crate) mod prune;
pub(crate) mod refs;
pub(crate) mod state;
pub(crate) mod unattended;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::{Cli, Command, GlobalArgs, OutputFormat, ProgressMode};
use crate::error::CrimgError;
use crate::runtime::config::{self, ContainerdConfig};
use crate::runtime::connect::{self, EndpointArgs, Resolved};
use crate::runtime::containerd::Containerd;
use crate::runtime::cri::Cri;

pub use crate::exit::Outcome;

/// Validated global settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) endpoints: EndpointArgs,
    pub(crate) output: OutputFormat,
    pub(crate) quiet: bool,
    pub(crate) progress: bool,
    pub(crate) verbose: bool,
    /// `--containerd-config`: the file the user named.
    pub(crate) containerd_config: Option<PathBuf>,
}

impl Settings {
    pub(crate) fn from_args(g: &GlobalArgs) -> Settings {
        let progress = !g.quiet
            && match g.progress {
                ProgressMode::Always => true,
                ProgressMode::Never => false,
                ProgressMode::Auto => std::io::stderr().is_terminal(),
            };
        Settings {
            endpoints: EndpointArgs::from(g),
            output: g.output,
            quiet: g.quiet,
            progress,
            verbose: g.verbose && !g.quiet,
            containerd_config: g.containerd_config.clone(),
        }
    }

    /// A warning on stderr, unless quiet.
    pub(crate) fn warn(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("crimg: warning: {msg}");
        }
    }

    /// A note on stderr, unless quiet.
    pub(crate) fn info(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("crimg: {msg}");
        }
    }

    /// A diagnostic on stderr, only with --verbose.
    pub(crate) fn debug(&self, msg: impl std::fmt::Display) {
        if self.verbose {
            eprintln!("crimg: {msg}");
        }
    }
}

/// The runtime connections of one run.
pub(crate) struct Session {
    pub(crate) settings: Settings,
    pub(crate) resolved: Resolved,
    pub(crate) cri: Cri,
    pub(crate) runtime: crate::model::RuntimeVersion,
    containerd: Option<Result<Containerd, CrimgError>>,
    /// containerd's configuration, read once on first use.
    containerd_config: std::sync::OnceLock<Option<ContainerdConfig>>,
}

impl Session {
    /// Connects to CRI (required for every image command) and asks its version.
    pub(crate) async fn connect(settings: Settings) -> Result<Session> {
        // A file the user named is checked before anything else, whether or not this
        // run comes to need it.
        if let Some(path) = &settings.containerd_config {
            load_named_config(path)?;
        }
        let resolved = connect::resolve(&settings.endpoints)?;
        let cri = connect::connect_cri(&resolved).await?;
        let runtime = cri.version().await.map_err(|e| CrimgError::Unreachable {
            what: "container runtime (CRI)",
            tried: vec![crate::error::Tried {
                endpoint: cri.runtime_endpoint.clone(),
                problem: format!("does not answer CRI v1 Version: {}", status_text(&e)),
            }],
            hint: "is this the socket of a CRI runtime with the CRI plugin enabled?".into(),
        })?;
        settings.debug(format_args!(
            "runtime {} {} (CRI {}) at {}",
            runtime.runtime_name,
            runtime.runtime_version,
            runtime.runtime_api_version,
            cri.runtime_endpoint
        ));
        Ok(Session {
            settings,
            resolved,
            cri,
            runtime,
            containerd: None,
            containerd_config: std::sync::OnceLock::new(),
        })
    }

    /// containerd's API, connected on first use.
    pub(crate) async fn containerd(&mut self) -> Result<&Containerd, CrimgError> {
        if self.containerd.is_none() {
            let candidates = connect::containerd_candidates(
                &self.resolved,
                &self.cri.runtime_endpoint,
                &self.runtime.runtime_name,
            );
            let c = connect::connect_containerd(
                &candidates,
                &self.settings.endpoints.namespace,
                self.resolved.timeout,
            )
            .await;
            if let Ok(c) = &c {
                self.settings
                    .debug(format_args!("containerd API at {}", c.address));
            }
            self.containerd = Some(c);
        }
        match self.containerd.as_ref().expect("set above") {
            Ok(c) => Ok(c),
            Err(e) => Err(e.clone()),
        }
    }

    /// containerd when reachable; `None` (with a diagnostic) when the runtime is not
    /// containerd and no containerd answers.
    pub(crate) async fn containerd_optional(&mut self) -> Result<Option<Containerd>, CrimgError> {
        let must = self.runtime.runtime_name == "containerd" || self.resolved.address.is_some();
        match self.containerd().await {
            Ok(c) => Ok(Some(c.clone())),
            Err(e) if !must => {
                self.settings.debug(format_args!("no containerd API: {e}"));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

impl Session {
    /// containerd's configuration: the file `--containerd-config` names (an error when it
    /// cannot be read), else the one [`config::locate`] finds for the runtime's socket (a
    /// warning when it cannot be read). `None` when the runtime is not containerd or no
    /// file is found.
    pub(crate) fn containerd_config(&self) -> Result<Option<ContainerdConfig>> {
        if let Some(c) = self.containerd_config.get() {
            return Ok(c.clone());
        }
        let found = self.find_containerd_config()?;
        Ok(self.containerd_config.get_or_init(|| found).clone())
    }

    fn find_containerd_config(&self) -> Result<Option<ContainerdConfig>> {
        if let Some(path) = &self.settings.containerd_config {
            return load_named_config(path).map(Some);
        }
        if self.runtime.runtime_name != "containerd" {
            return Ok(None);
        }
        let Ok(socket) = crate::runtime::transport::socket_path(&self.cri.runtime_endpoint) else {
            return Ok(None);
        };
        let Some(path) = config::locate(&socket) else {
            self.settings
                .debug(format_args!("no containerd configuration file found"));
            return Ok(None);
        };
        match config::load(&path) {
            Ok(c) => {
                self.settings
                    .debug(format_args!("containerd configuration {}", path.display()));
                Ok(c)
            }
            Err(e) => {
                self.settings
                    .warn(format_args!("ignoring containerd's configuration: {e:#}"));
                Ok(None)
            }
        }
    }
}

impl Session {
    /// The snapshotter CRI unpacks into: what CRI `Status` says (1.x), else containerd's
    /// configuration (2.x keeps it in its images plugin), else containerd's default.
    pub(crate) async fn snapshotter(&self) -> Result<String> {
        match self.cri.snapshotter().await {
            Ok(Some(s)) => return Ok(s),
            Ok(None) => {}
            Err(e) => self.settings.debug(format_args!(
                "runtime status does not say its snapshotter ({e:#})"
            )),
        }
        let configured = self.containerd_config()?.and_then(|c| c.snapshotter);
        Ok(configured.unwrap_or_else(|| DEFAULT_SNAPSHOTTER.to_string()))
    }
}

/// containerd's snapshotter when nothing names another.
const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// The containerd configuration the user named: a usage error naming it when it is
/// missing or unreadable.
fn load_named_config(path: &Path) -> Result<ContainerdConfig> {
    match config::load(path) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(CrimgError::Usage(format!(
            "--containerd-config {}: no such file",
            path.display()
        ))
        .into()),
        Err(e) => Err(CrimgError::Usage(format!("--containerd-config: {e:#}")).into()),
    }
}

impl Session {
    /// The registry hosts directory: the one the user named, else the `config_path` of
    /// containerd's configuration (K3s and RKE2 set their own), else containerd's default.
    pub(crate) fn registry_hosts_dir(&self, given: Option<&Path>) -> Result<PathBuf> {
        if let Some(dir) = given {
            return Ok(dir.to_path_buf());
        }
        let configured = self.containerd_config()?.and_then(|c| c.hosts_dir());
        Ok(configured.unwrap_or_else(|| PathBuf::from(config::DEFAULT_HOSTS_DIR)))
    }
}

pub(crate) use crate::runtime::status_text;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<Outcome> {
    cli.command
        .check_output(cli.global.output)
        .map_err(CrimgError::Usage)?;
    let settings = Settings::from_args(&cli.global);
    crate::render::set_quiet(settings.quiet);
    match cli.command {
        Command::Completions(args) => {
            crate::complete::write_registration(args.shell, &mut std::io::stdout())?;
            Ok(Outcome::Done)
        }
        Command::List(args) => list::run(settings, args).await,
        Command::Pin(args) => pin::run(settings, args, crate::plan::pin::PinAction::Pin).await,
        Command::Unpin(args) => pin::run(settings, args, crate::plan::pin::PinAction::Unpin).await,
        Command::Prune(args) => prune::run(settings, args).await,
        Command::Import(args) => import::run(settings, args).await,
        Command::Export(args) => export::run(settings, args).await,
        Command::Inspect(args) => import::inspect(settings, args).await,
        Command::Check(args) => export::check(settings, args).await,
    }
}

/// How long a command waits for containerd to collect what stale leases held.
const STALE_COLLECT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Releases the leases of crimg runs that were killed before they could (see
/// [`Containerd::release_stale_leases`]), so their half-written content goes now. Said
/// only with --verbose; a failure here stops nothing (the command's own calls will say
/// if containerd is gone).
pub(crate) async fn release_stale_leases(c: &Containerd, settings: &Settings) {
    match c.release_stale_leases(STALE_COLLECT_WAIT).await {
        Ok(released) => {
            for (id, gone) in released {
                settings.debug(format_args!("released stale lease {id} ({gone})"));
            }
        }
        Err(e) => settings.debug(format_args!(
            "could not release stale leases: {}",
            status_text(&e)
        )),
    }
}
