//! The command-line definition (clap derive only; no logic).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::model::parse_duration;
use crate::oci::Compression;
use crate::runtime::connect::{self, EndpointArgs, parse_timeout};

#[derive(Debug, Parser)]
#[command(
    name = "crimg",
    version,
    about = "Image lifecycle for Kubernetes nodes: list, pin, unpin, prune, import, export",
    long_about = format!(
        "crimg manages the container images of a Kubernetes node. It speaks the Kubernetes \
CRI to any CRI runtime, and containerd's own API where CRI is not enough (labels, records).\n\n{}",
        crate::exit::help_paragraph()
    ),
    propagate_version = true,
    after_help = crate::help::examples_help(None),
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments. After a missing argument clap's usage line lists every
    /// argument it was given, those taken from the environment (`CONTAINER_RUNTIME_ENDPOINT`,
    /// `CONTAINERD_ADDRESS`) included, so that they read as required; the error is then taken
    /// from the same parse without environment defaults, whose usage line shows what was typed.
    pub fn from_args() -> Result<Cli, clap::Error> {
        use clap::CommandFactory;
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let error = match Cli::try_parse_from(&args) {
            Ok(cli) => return Ok(cli),
            Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => e,
            Err(e) => return Err(e),
        };
        match without_env(Cli::command()).try_get_matches_from(&args) {
            Err(plain) if plain.kind() == error.kind() => Err(plain),
            _ => Err(error),
        }
    }
}

fn without_env(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| arg.env(None))
        .mut_subcommands(without_env)
}

#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// CRI runtime service: unix:///path or a bare path [default: crictl config, then the
    /// first socket that exists of containerd, K3s, CRI-O, cri-dockerd]
    #[arg(
        help_heading = "Global: runtime connection",
        short = 'r',
        long,
        env = connect::ENV_RUNTIME_ENDPOINT,
        value_name = "URI",
        global = true
    )]
    pub(crate) runtime_endpoint: Option<String>,

    /// CRI image service [default: the runtime endpoint]
    #[arg(
        help_heading = "Global: runtime connection",
        short = 'i',
        long,
        env = connect::ENV_IMAGE_ENDPOINT,
        value_name = "URI",
        global = true
    )]
    pub(crate) image_endpoint: Option<String>,

    /// containerd API socket [default: the CRI endpoint when the runtime is containerd,
    /// else /run/containerd/containerd.sock, then K3s's]
    #[arg(
        help_heading = "Global: runtime connection",
        short = 'a',
        long,
        env = connect::ENV_CONTAINERD_ADDRESS,
        value_name = "PATH",
        global = true
    )]
    pub(crate) address: Option<String>,

    /// containerd namespace
    #[arg(
        help_heading = "Global: runtime connection",
        short = 'n',
        long,
        env = "CONTAINERD_NAMESPACE",
        default_value = "k8s.io",
        value_parser = parse_namespace,
        global = true
    )]
    pub(crate) namespace: String,

    /// crictl's YAML config file (runtime-endpoint, image-endpoint, timeout)
    /// [default: /etc/crictl.yaml if it exists]
    #[arg(
        help_heading = "Global: runtime connection",
        short = 'c',
        long,
        env = connect::ENV_CRI_CONFIG,
        value_name = "FILE",
        global = true
    )]
    pub(crate) config: Option<PathBuf>,

    /// containerd's configuration file, for what CRI does not report on every version (the
    /// sandbox image on 2.x, discard_unpacked_layers, the registry hosts directory)
    /// [default: the --config the serving containerd was started with, else
    /// /etc/containerd/config.toml, K3s's, RKE2's]
    #[arg(
        help_heading = "Global: runtime connection",
        long,
        env = "CRIMG_CONTAINERD_CONFIG",
        value_name = "FILE",
        global = true
    )]
    pub(crate) containerd_config: Option<PathBuf>,

    /// Deadline for each short call (2s, 1m; from 100ms to 24h); transfers are not cut by it
    /// [default: 10s]
    #[arg(help_heading = "Global: runtime connection", long, value_name = "DURATION", value_parser = parse_timeout, global = true)]
    pub(crate) timeout: Option<Duration>,

    /// Output format where a command prints records
    #[arg(help_heading = "Global: output", short = 'o', long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub(crate) output: OutputFormat,

    /// Only errors on stderr; no progress
    #[arg(help_heading = "Global: output", short = 'q', long, global = true)]
    pub(crate) quiet: bool,

    /// Progress bars on stderr (auto: only when stderr is a terminal)
    #[arg(help_heading = "Global: output", long, value_enum, default_value_t = ProgressMode::Auto, value_name = "WHEN", global = true)]
    pub(crate) progress: ProgressMode,

    /// Diagnostics on stderr
    #[arg(help_heading = "Global: output", 
        short = 'v',
        long,
        env = "CRIMG_LOG",
        global = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub(crate) verbose: bool,
}

impl GlobalArgs {
    /// The global options of a run that names none on its command line: what the
    /// environment and the defaults give, parsed by the same definition.
    pub(crate) fn from_environment() -> Result<GlobalArgs, clap::Error> {
        use clap::FromArgMatches as _;
        let cmd = GlobalArgs::augment_args(clap::Command::new("crimg"));
        GlobalArgs::from_arg_matches(&cmd.try_get_matches_from(["crimg"])?)
    }
}

impl From<&GlobalArgs> for EndpointArgs {
    fn from(g: &GlobalArgs) -> EndpointArgs {
        EndpointArgs {
            runtime_endpoint: g.runtime_endpoint.clone(),
            image_endpoint: g.image_endpoint.clone(),
            address: g.address.clone(),
            namespace: g.namespace.clone(),
            config: g.config.clone(),
            timeout: g.timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// A table that fits the terminal
    Table,
    /// A table with digests and creation times
    Wide,
    /// JSON on stdout
    Json,
    /// One reference per line
    Name,
}

impl OutputFormat {
    /// Commands that print records: every format.
    pub(crate) const ALL: &'static [OutputFormat] =
        &[Self::Table, Self::Wide, Self::Json, Self::Name];
    /// pin and unpin: what changed, as a table, JSON or names (no wider table).
    const CHANGES: &'static [OutputFormat] = &[Self::Table, Self::Json, Self::Name];
    /// export: the archive goes to its file; the report is a summary or JSON.
    const SUMMARY: &'static [OutputFormat] = &[Self::Table, Self::Json];
    /// completions: a script, no records (the default is accepted and means nothing).
    const NONE: &'static [OutputFormat] = &[Self::Table];

    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// The `-o` formats each subcommand prints: what its `-o` offers and what
/// [`Command::check_output`] accepts.
fn formats_of(command: &str) -> &'static [OutputFormat] {
    match command {
        "pin" | "unpin" => OutputFormat::CHANGES,
        "export" => OutputFormat::SUMMARY,
        "completions" => OutputFormat::NONE,
        _ => OutputFormat::ALL,
    }
}

/// The `-o` of one subcommand: the global option, offering only what `command` prints. The
/// value given before the subcommand (`crimg -o json list`) reaches the same setting;
/// [`Command::check_output`] refuses one the subcommand does not print.
fn output_arg(command: &str) -> clap::Arg {
    use clap::builder::TypedValueParser as _;
    let formats = formats_of(command);
    let values: Vec<clap::builder::PossibleValue> = formats
        .iter()
        .filter_map(|f| f.to_possible_value())
        .collect();
    let parser = clap::builder::PossibleValuesParser::new(values)
        .map(|name| OutputFormat::from_str(&name, false).unwrap_or(OutputFormat::Table));
    clap::Arg::new("output")
        .short('o')
        .long("output")
        .value_name("OUTPUT")
        .help("Output format")
        .help_heading("Global: output")
        .default_value("table")
        .value_parser(parser)
        .hide(formats.len() < 2)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressMode {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List images with their tags, size, pins, users and protections
    #[command(visible_alias = "ls", after_help = crate::help::examples_help(Some("list")), arg = output_arg("list"))]
    List(ListArgs),
    /// Pin images so that no garbage collection or prune removes them
    #[command(after_help = crate::help::examples_help(Some("pin")), arg = output_arg("pin"))]
    Pin(PinArgs),
    /// Remove the pins of images
    #[command(after_help = crate::help::examples_help(Some("unpin")), arg = output_arg("unpin"))]
    Unpin(PinArgs),
    /// Remove every image that nothing uses and nothing protects, saying why for each
    #[command(after_help = crate::help::examples_help(Some("prune")), arg = output_arg("prune"))]
    Prune(PruneArgs),
    /// Import image archives (OCI or docker save, any compression) into containerd
    #[command(after_help = crate::help::examples_help(Some("import")), arg = output_arg("import"))]
    Import(ImportArgs),
    /// Write images to one archive that ctr import and docker load both accept
    #[command(after_help = crate::help::examples_help(Some("export")), arg = output_arg("export"))]
    Export(ExportArgs),
    /// What archives hold and whether they are intact, read as import reads them (no runtime)
    #[command(after_help = crate::help::examples_help(Some("inspect")), arg = output_arg("inspect"))]
    Inspect(InspectArgs),
    /// Whether images are complete in the content store and unpacked, and what an export would fetch
    #[command(after_help = crate::help::examples_help(Some("check")), arg = output_arg("check"))]
    Check(CheckArgs),
    /// Print a shell completion script
    #[command(after_help = crate::help::examples_help(Some("completions")), arg = output_arg("completions"))]
    Completions(CompletionsArgs),
}

impl Command {
    /// The subcommand's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::List(_) => "list",
            Command::Pin(_) => "pin",
            Command::Unpin(_) => "unpin",
            Command::Prune(_) => "prune",
            Command::Import(_) => "import",
            Command::Export(_) => "export",
            Command::Inspect(_) => "inspect",
            Command::Check(_) => "check",
            Command::Completions(_) => "completions",
        }
    }

    /// A usage error when `-o` asks for a format this command does not print (given before
    /// the subcommand, where clap cannot know the command yet).
    pub(crate) fn check_output(&self, output: OutputFormat) -> Result<(), String> {
        let name = self.name();
        // --why explains one decision: it has a table and JSON, no list of names.
        if let Command::Prune(p) = self
            && p.why.is_some()
            && output == OutputFormat::Name
        {
            return Err(
                "crimg prune --why prints reasons, not names: -o name does not apply; \
                        use -o table or -o json"
                    .into(),
            );
        }
        let formats = formats_of(name);
        if formats.contains(&output) {
            return Ok(());
        }
        let offered: Vec<String> = formats.iter().map(|f| f.name()).collect();
        Err(if formats.len() < 2 {
            format!(
                "crimg {name} prints no records: -o {} does not apply",
                output.name()
            )
        } else {
            format!(
                "crimg {name} has no -o {}; it prints {}",
                output.name(),
                offered.join(", ")
            )
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Globs on normalised references (nginx:*, reg.local/team/**) or ID prefixes (sha256:ab12)
    #[arg(value_name = "PATTERN", add = clap_complete::engine::ArgValueCompleter::new(crate::complete::image_refs))]
    pub(crate) patterns: Vec<String>,
    /// Only pinned images
    #[arg(help_heading = "Selection", long, conflicts_with = "unpinned")]
    pub(crate) pinned: bool,
    /// Only images nobody pinned
    #[arg(help_heading = "Selection", long)]
    pub(crate) unpinned: bool,
    /// Only images a container or pod sandbox uses
    #[arg(help_heading = "Selection", long, conflicts_with = "unused")]
    pub(crate) in_use: bool,
    /// Only images no container or pod sandbox uses
    #[arg(help_heading = "Selection", long)]
    pub(crate) unused: bool,
    /// Only images a prune would keep
    #[arg(help_heading = "Selection", long, conflicts_with = "unprotected")]
    pub(crate) protected: bool,
    /// Only images a prune would remove
    #[arg(help_heading = "Selection", long)]
    pub unprotected: bool,
    /// Only images no tag names (digest references or none at all)
    #[arg(help_heading = "Selection", long)]
    pub dangling: bool,
    /// Print every cell in full, even when the table is wider than the terminal
    #[arg(help_heading = "Output", long)]
    pub no_trunc: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PinArgs {
    /// Images by reference (nginx:1.25), image ID, ID prefix (at least 6 hex) or a glob as
    /// `list` takes (nginx:*, reg.local/team/**)
    #[arg(value_name = "REF", required_unless_present = "from_file", add = clap_complete::engine::ArgValueCompleter::new(crate::complete::image_refs))]
    pub(crate) refs: Vec<String>,
    /// Also the images named in FILE, one per line (# comments), or `-` for stdin
    #[arg(help_heading = "Selection", long, value_name = "FILE")]
    pub(crate) from_file: Option<PathBuf>,
    /// Show what would change, change nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Decide and report, remove nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the decision and every reason for the images REF names (a reference, ID
    /// prefix or glob), remove nothing
    #[arg(long, value_name = "REF", add = clap_complete::engine::ArgValueCompleter::new(crate::complete::image_refs))]
    pub why: Option<String>,
    /// Print every cell in full, even when the table is wider than the terminal
    #[arg(help_heading = "Output", long)]
    pub no_trunc: bool,
    /// A file of exclusion patterns (one per line, # comments) or Eraser's JSON form (repeatable)
    #[arg(help_heading = "Protection", long, value_name = "FILE")]
    pub(crate) exclude_file: Vec<PathBuf>,
    /// Directory whose *.conf files are exclusion files [default: /etc/crimg/exclude.d, which
    /// may be absent; a directory named here must exist]
    #[arg(help_heading = "Protection", long, value_name = "DIR")]
    pub(crate) exclude_dir: Option<PathBuf>,
    /// Keep images matching this pattern: a glob on the normalised reference or a sha256: prefix (repeatable)
    #[arg(help_heading = "Protection", long, value_name = "PATTERN", add = clap_complete::engine::ArgValueCompleter::new(crate::complete::image_refs))]
    pub(crate) exclude: Vec<String>,
    /// Drop the built-in allowlist of pause and Kubernetes system images (the runtime's
    /// sandbox image stays protected)
    #[arg(help_heading = "Protection", long)]
    pub(crate) no_builtin_allowlist: bool,
    /// Keep images whose containerd record is younger than this (24h, 7d)
    #[arg(help_heading = "Protection", long, value_name = "DURATION", value_parser = parse_duration_text)]
    pub(crate) older_than: Option<DurationText>,
    /// Per repository, keep the N newest images
    #[arg(help_heading = "Protection", long, value_name = "N")]
    pub(crate) keep_last: Option<usize>,
    /// Concurrent removals
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) parallel: u16,
    /// Remove least recently used images only until the image filesystem is at or below
    /// PERCENT of its size: the low mark of the kubelet's image GC
    #[arg(help_heading = "Disk usage", long, visible_alias = "low-usage", value_name = "PERCENT", value_parser = parse_percent)]
    pub target_usage: Option<f64>,
    /// Prune only when the image filesystem is above PERCENT of its size, then down to
    /// --target-usage: the high mark of the kubelet's image GC
    #[arg(help_heading = "Disk usage", long, value_name = "PERCENT", value_parser = parse_percent, requires = "target_usage")]
    pub high_usage: Option<f64>,
    /// Keep running: prune every DURATION (plus up to 10% at random) until SIGTERM or
    /// SIGINT, one summary line per run on stderr instead of the table
    #[arg(help_heading = "Unattended", long, value_name = "DURATION", value_parser = parse_interval, conflicts_with = "why")]
    pub every: Option<Duration>,
    /// After each run, write Prometheus metrics to FILE (node_exporter's textfile format)
    #[arg(
        help_heading = "Unattended",
        long,
        value_name = "FILE",
        conflicts_with = "why"
    )]
    pub metrics_file: Option<PathBuf>,
    /// Where crimg remembers when it last saw each image in use
    #[arg(
        help_heading = "Unattended",
        long,
        value_name = "FILE",
        env = "CRIMG_STATE_FILE"
    )]
    pub(crate) state_file: Option<PathBuf>,
}

/// A containerd namespace as containerd accepts one: letters and digits, in parts joined
/// by one `.`, `_` or `-`.
fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.split(['.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a containerd namespace (letters and digits, parts joined by . _ or -; \
             CRI's is k8s.io)"
        ))
    }
}

/// A loop interval: a duration of at least one second.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?} is shorter than one second"));
    }
    Ok(d)
}

/// `80` or `80%`, from 0 to 100.
fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if (0.0..=100.0).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{s:?} is not between 0 and 100"))
    }
}

/// A duration and the text it was given as, so reasons can quote the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DurationText {
    pub(crate) duration: Duration,
    pub(crate) text: String,
}

/// The longest `--older-than`: a hundred years, far past any image's age.
const MAX_AGE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn parse_duration_text(s: &str) -> Result<DurationText, String> {
    let duration = parse_duration(s)?;
    if duration > MAX_AGE {
        return Err(format!("{:?} is longer than 100 years", s.trim()));
    }
    Ok(DurationText {
        duration,
        text: s.trim().to_string(),
    })
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Archives, directories of archives, `.txt` lists of references to pull, or `-` for stdin
    #[arg(value_name = "PATH", required = true)]
    pub(crate) paths: Vec<PathBuf>,
    /// Pin every imported image
    #[arg(long)]
    pub(crate) pin: bool,
    /// Import this platform (os/arch[/variant]; repeatable) [default: the host's]
    #[arg(help_heading = "Platforms", long, value_name = "PLATFORM")]
    pub(crate) platform: Vec<crate::oci::Platform>,
    /// Import every platform of multi-platform images
    #[arg(help_heading = "Platforms", long, conflicts_with = "platform")]
    pub(crate) all_platforms: bool,
    /// Store content only; do not unpack into a snapshotter
    #[arg(long)]
    pub(crate) no_unpack: bool,
    /// Snapshotter to unpack into [default: the CRI's]
    #[arg(long, value_name = "NAME")]
    pub(crate) snapshotter: Option<String>,
    /// Repository for OCI archives whose index names images by bare tags
    #[arg(long, value_name = "NAME")]
    pub(crate) base_name: Option<String>,
    /// Keep running and import archives that appear or change in the given directories
    #[arg(help_heading = "Watch", long)]
    pub watch: bool,
    /// With --watch: where to remember what was imported [default: $CRIMG_STATE_DIR/import-watch.json, else /var/lib/crimg/import-watch.json]
    #[arg(help_heading = "Watch", long, value_name = "FILE", requires = "watch")]
    pub(crate) state_file: Option<PathBuf>,
    /// With --watch --pin: how often to check that what the directories hold is still imported and pinned, and restore what is not (a deleted image is also restored on containerd's delete event)
    #[arg(help_heading = "Watch", long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s", requires = "watch")]
    pub(crate) recheck_interval: Duration,
    /// With --watch: when an archive leaves the directory, drop the pins crimg set on its images
    #[arg(help_heading = "Watch", long, requires = "watch")]
    pub(crate) unpin_removed: bool,
    /// With --watch: rescan the directories every 5s instead of waiting for inotify, for
    /// filesystems whose changes inotify does not see (NFS, CIFS, FUSE, a directory written
    /// from another host)
    #[arg(help_heading = "Watch", long, requires = "watch")]
    pub(crate) poll: bool,
    /// With --watch: after each import, write Prometheus metrics to FILE (node_exporter's
    /// textfile format)
    #[arg(help_heading = "Watch", long, value_name = "FILE", requires = "watch")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The archive to write (`-` for standard output)
    #[arg(
        short = 'O',
        long = "output-file",
        value_name = "FILE",
        required = true
    )]
    pub(crate) output_file: PathBuf,
    /// Images by reference, ID, ID prefix or a glob as `list` takes
    #[arg(value_name = "REF", required_unless_present = "from_file", add = clap_complete::engine::ArgValueCompleter::new(crate::complete::image_refs))]
    pub(crate) refs: Vec<String>,
    /// Also the images named in FILE, one per line (# comments), or `-` for stdin
    #[arg(help_heading = "Selection", long, value_name = "FILE")]
    pub(crate) from_file: Option<PathBuf>,
    /// Export this platform (os/arch[/variant]; repeatable) [default: the host's]
    #[arg(help_heading = "Selection", long, value_name = "PLATFORM")]
    pub(crate) platform: Vec<crate::oci::Platform>,
    /// Export every platform the content store holds
    #[arg(help_heading = "Selection", long, conflicts_with = "platform")]
    pub(crate) all_platforms: bool,
    /// Compress the whole archive [default: as FILE's name says: .tar.gz, .tgz, .tar.zst,
    /// .tzst; a name and --compress that disagree are refused]
    #[arg(long, value_name = "ALGORITHM", value_parser = compression_parser())]
    pub(crate) compress: Option<Compression>,
    /// Fetch blobs missing from the content store from the image's registry first
    #[arg(help_heading = "Fetching missing blobs", long)]
    pub(crate) fetch_missing: bool,
    /// Overwrite FILE if it exists
    #[arg(long)]
    pub(crate) force: bool,
    /// containerd's registry hosts directory (hosts.toml files), for --fetch-missing
    /// [default: containerd's registry config_path, else /etc/containerd/certs.d]
    #[arg(help_heading = "Fetching missing blobs", long, value_name = "DIR")]
    pub(crate) registry_config_dir: Option<PathBuf>,
    /// K3s's registries.yaml, for --fetch-missing
    #[arg(
        help_heading = "Fetching missing blobs",
        long,
        value_name = "FILE",
        default_value = crate::registry::config::DEFAULT_REGISTRIES_YAML
    )]
    pub(crate) registries_yaml: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Archives, layout directories, directories of archives, or `-` for stdin
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Read the metadata only: no blob is hashed (a plain tar: its headers only)
    #[arg(long)]
    pub no_verify: bool,
    /// Repository for OCI archives whose index names images by bare tags (as import)
    #[arg(long, value_name = "NAME")]
    pub base_name: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Images by reference, ID or ID prefix [default: every image]
    #[arg(value_name = "REF", add = clap_complete::engine::ArgValueCompleter::new(crate::complete::image_refs))]
    pub refs: Vec<String>,
    /// containerd's registry hosts directory, for where --fetch-missing would fetch from
    /// [default: containerd's registry config_path, else /etc/containerd/certs.d]
    #[arg(help_heading = "Fetching missing blobs", long, value_name = "DIR")]
    pub registry_config_dir: Option<PathBuf>,
    /// K3s's registries.yaml, for where --fetch-missing would fetch from
    #[arg(
        help_heading = "Fetching missing blobs",
        long,
        value_name = "FILE",
        default_value = crate::registry::config::DEFAULT_REGISTRIES_YAML
    )]
    pub registries_yaml: PathBuf,
}

/// The compressions `export --compress` writes, by their command-line names.
fn compression_parser() -> impl clap::builder::TypedValueParser<Value = Compression> {
    use clap::builder::TypedValueParser as _;
    const WRITTEN: [Compression; 2] = [Compression::Gzip, Compression::Zstd];
    clap::builder::PossibleValuesParser::new(WRITTEN.map(Compression::name)).map(|name| {
        // The parser admits only the names above.
        WRITTEN
            .into_iter()
            .find(|c| c.name() == name)
            .unwrap_or(Compression::None)
    })
}
