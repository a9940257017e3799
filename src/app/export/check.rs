//! `crimg check`: whether each image is complete in the content store and unpacked,
//! what an export would lack, and where `export --fetch-missing` would fetch it from.
//! The walk is export's own pre-flight; nothing is fetched or changed.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::store::{Labels, walk_images};
use super::targets::resolve_targets;
use crate::app::{Outcome, Session, Settings, inventory};
use crate::cli::{CheckArgs, OutputFormat};
use crate::error::CrimgError;
use crate::model::Descriptor;
use crate::oci::gc;
use crate::plan::export::ImagePlan;
use crate::plan::platform::PlatformChoice;
use crate::registry;
use crate::registry::config::RegistryConfig;
use crate::render;

#[derive(Serialize)]
struct JsonCheck<'a> {
    runtime: &'a JsonRuntime,
    images: &'a [JsonImage],
    /// The names given that name no image, as given.
    not_found: &'a [String],
}

/// What runs the node, and the settings of it that decide what an export can find.
#[derive(Serialize)]
struct JsonRuntime {
    /// CRI `Version`: `containerd`, its version and CRI API version.
    name: String,
    version: String,
    api_version: String,
    /// containerd's configuration file read, when one was found.
    config: Option<String>,
    sandbox_image: Option<String>,
    snapshotter: String,
    /// As the configuration sets it; `null` when it does not say.
    discard_unpacked_layers: Option<bool>,
    /// Where mirrors are read from (`hosts.toml` files).
    registry_hosts_dir: String,
}

#[derive(Serialize)]
struct JsonImage {
    names: Vec<String>,
    digest: String,
    /// Every blob an export of the image's platforms needs is in the content store.
    complete: bool,
    snapshotter: String,
    platforms: Vec<JsonPlatform>,
    /// Platforms of the index the node never pulled (an export leaves them out).
    absent_platforms: Vec<String>,
    missing: Vec<JsonMissing>,
    /// Where `export --fetch-missing` would fetch the missing blobs, best first.
    fetch_from: Vec<JsonEndpoint>,
}

#[derive(Serialize)]
struct JsonPlatform {
    platform: String,
    manifest: String,
    config: String,
    complete: bool,
    unpacked: bool,
    /// Every snapshotter the image is unpacked into: a runtime handler with a snapshotter
    /// of its own (containerd 1.7+) unpacks there, beside CRI's default.
    unpacked_in: Vec<String>,
    layers: usize,
    missing_layers: usize,
}

#[derive(Serialize)]
struct JsonMissing {
    digest: String,
    what: String,
    size: i64,
}

#[derive(Serialize, Clone)]
struct JsonEndpoint {
    repository: String,
    endpoint: String,
    origin: String,
}

/// One line for the operator: `runtime containerd 2.1.9 (CRI v1), configuration FILE,
/// sandbox image REF, snapshotter overlayfs, discard_unpacked_layers = true`.
fn describe_runtime(r: &JsonRuntime) -> String {
    let mut line = format!("runtime {} {} (CRI {})", r.name, r.version, r.api_version);
    match &r.config {
        Some(c) => line.push_str(&format!(", configuration {c}")),
        None => line.push_str(", no configuration file found"),
    }
    if let Some(s) = &r.sandbox_image {
        line.push_str(&format!(", sandbox image {s}"));
    }
    line.push_str(&format!(", snapshotter {}", r.snapshotter));
    if let Some(d) = r.discard_unpacked_layers {
        line.push_str(&format!(", discard_unpacked_layers = {d}"));
    }
    line
}

/// Images to walk: their names and the target their records share.
type Targets = Vec<(Vec<String>, Descriptor)>;

/// Every image record, grouped by target (names first, the ID record only when alone).
fn all_targets(records: &[crate::model::ImageRecord]) -> Targets {
    let mut out: Vec<(Vec<String>, Descriptor)> = Vec::new();
    for rec in records.iter().filter(|r| !r.target.digest.is_empty()) {
        match out.iter_mut().find(|(_, t)| t.digest == rec.target.digest) {
            Some((names, _)) => names.push(rec.name.clone()),
            None => out.push((vec![rec.name.clone()], rec.target.clone())),
        }
    }
    for (names, _) in &mut out {
        if names.iter().any(|n| !n.starts_with("sha256:")) {
            names.retain(|n| !n.starts_with("sha256:"));
        }
        names.sort();
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub(crate) async fn run(settings: Settings, args: CheckArgs) -> Result<Outcome> {
    let mut session = Session::connect(settings).await?;
    let c = session.containerd().await?.clone();
    let snapshotter = session.snapshotter().await?;
    let inv = inventory::gather(&mut session).await?;
    let hosts_dir = session.registry_hosts_dir(args.registry_config_dir.as_deref())?;
    let containerd_config = session.containerd_config()?;
    let runtime = JsonRuntime {
        name: session.runtime.runtime_name.clone(),
        version: session.runtime.runtime_version.clone(),
        api_version: session.runtime.runtime_api_version.clone(),
        config: containerd_config
            .as_ref()
            .map(|c| c.path.display().to_string()),
        sandbox_image: inv.sandbox_image.clone(),
        snapshotter: snapshotter.clone(),
        discard_unpacked_layers: containerd_config
            .as_ref()
            .and_then(|c| c.discard_unpacked_layers),
        registry_hosts_dir: hosts_dir.display().to_string(),
    };
    let settings = session.settings.clone();
    let records = c.list_images().await?;
    let (wanted, not_found) = wanted(&settings, &inv.images, &records, &args.refs)?;
    let config = RegistryConfig::load(&hosts_dir, &args.registries_yaml)?;
    let (plans, labels) = walk_images(&c, wanted, &PlatformChoice::All, None).await?;
    let images = plans
        .iter()
        .map(|p| checked(p, &labels, &snapshotter, &config))
        .collect::<Result<Vec<_>>>()?;
    if !settings.quiet {
        render_check(&settings, &runtime, &images, &not_found)?;
    }
    Ok(
        if images.iter().all(|i| i.complete) && not_found.is_empty() {
            Outcome::Done
        } else {
            Outcome::Partial
        },
    )
}

/// `yes` or `no` for CRI's snapshotter, followed by the other snapshotters the image is
/// unpacked into (`yes, native`; `no, native`).
fn unpacked_cell(p: &JsonPlatform, snapshotter: &str) -> String {
    let mut cell = String::from(if p.unpacked { "yes" } else { "no" });
    for other in p.unpacked_in.iter().filter(|s| *s != snapshotter) {
        cell.push_str(", ");
        cell.push_str(other);
    }
    cell
}

/// The images to check: every record's target, or those the names select. Every name is
/// looked up on its own: those not found are reported beside what was checked (exit 4),
/// as `pin` reports them, rather than ending the check.
fn wanted(
    settings: &Settings,
    images: &[crate::model::Image],
    records: &[crate::model::ImageRecord],
    refs: &[String],
) -> Result<(Targets, Vec<String>)> {
    if refs.is_empty() {
        return Ok((all_targets(records), Vec::new()));
    }
    let mut found = Vec::new();
    let mut not_found = Vec::new();
    for r in refs {
        match resolve_targets(images, records, std::slice::from_ref(r)) {
            Ok(_) => found.push(r.clone()),
            Err(e) => match e.downcast_ref::<CrimgError>() {
                Some(CrimgError::NotFound(why)) => {
                    settings.warn(format_args!("{why}"));
                    not_found.push(r.clone());
                }
                _ => return Err(e),
            },
        }
    }
    Ok((resolve_targets(images, records, &found)?, not_found))
}

/// What one image holds and lacks, per platform, and where its missing blobs would come from.
fn checked(
    p: &ImagePlan,
    labels: &Labels,
    snapshotter: &str,
    config: &RegistryConfig,
) -> Result<JsonImage> {
    let missing: Vec<JsonMissing> = p
        .missing()
        .map(|b| JsonMissing {
            digest: b.desc.digest.clone(),
            what: b.describe(),
            size: b.desc.size,
        })
        .collect();
    let platforms = p
        .manifests
        .iter()
        .map(|m| {
            let absent = |d: &str| {
                p.blobs
                    .iter()
                    .any(|b| b.desc.digest == d && b.required && !b.present)
            };
            let missing_layers = m.layers.iter().filter(|l| absent(l)).count();
            let unpacked_in = labels
                .get(&m.config)
                .map(|l| gc::unpacked_in(l.keys()))
                .unwrap_or_default();
            JsonPlatform {
                platform: m
                    .platform
                    .as_ref()
                    .map_or("unknown".into(), ToString::to_string),
                manifest: m.digest.clone(),
                config: m.config.clone(),
                complete: missing_layers == 0 && !absent(&m.config) && !absent(&m.digest),
                unpacked: unpacked_in.iter().any(|s| s == snapshotter),
                unpacked_in,
                layers: m.layers.len(),
                missing_layers,
            }
        })
        .collect();
    let mut fetch_from = Vec::new();
    if !missing.is_empty() {
        let digests: Vec<&String> = p.blobs.iter().map(|b| &b.desc.digest).collect();
        let label_sets: Vec<&BTreeMap<String, String>> =
            digests.iter().filter_map(|d| labels.get(*d)).collect();
        for source in registry::sources(&label_sets, &p.names) {
            for e in config.endpoints(&source.host)? {
                fetch_from.push(JsonEndpoint {
                    repository: source.repository.clone(),
                    endpoint: crate::registry::config::redact(&e.base),
                    origin: e.origin.clone(),
                });
            }
        }
    }
    Ok(JsonImage {
        names: p.names.clone(),
        digest: p.target.digest.clone(),
        complete: missing.is_empty(),
        snapshotter: snapshotter.to_string(),
        platforms,
        absent_platforms: p.skipped_platforms.clone(),
        missing,
        fetch_from,
    })
}

fn render_check(
    settings: &Settings,
    runtime: &JsonRuntime,
    images: &[JsonImage],
    not_found: &[String],
) -> Result<()> {
    match settings.output {
        OutputFormat::Json => render::print_json(&JsonCheck {
            runtime,
            images,
            not_found,
        })?,
        OutputFormat::Name => {
            render::print_lines(images.iter().filter(|i| !i.complete).flat_map(|i| &i.names))?
        }
        OutputFormat::Table | OutputFormat::Wide => {
            settings.info(describe_runtime(runtime));
            let mut t = render::table(&[
                "NAME",
                "PLATFORM",
                "COMPLETE",
                "UNPACKED",
                "MISSING",
                "FETCH FROM",
            ]);
            for i in images {
                let name = i.names.first().cloned().unwrap_or_else(|| i.digest.clone());
                let from: Vec<String> = i
                    .fetch_from
                    .iter()
                    .map(|e| format!("{}/{}", e.endpoint, e.repository))
                    .collect();
                for p in &i.platforms {
                    let missing: Vec<String> = i
                        .missing
                        .iter()
                        .filter(|m| {
                            m.digest == p.config
                                || m.digest == p.manifest
                                || m.what.contains(&p.manifest)
                        })
                        .map(|m| {
                            if settings.output == OutputFormat::Wide {
                                m.digest.clone()
                            } else {
                                crate::model::short_id(&m.digest).to_string()
                            }
                        })
                        .collect();
                    t.add_row(vec![
                        name.clone(),
                        p.platform.clone(),
                        if p.complete { "yes" } else { "no" }.into(),
                        unpacked_cell(p, &i.snapshotter),
                        if missing.is_empty() {
                            "-".into()
                        } else {
                            missing.join(" ")
                        },
                        if from.is_empty() || p.complete {
                            "-".into()
                        } else {
                            from.join(" ")
                        },
                    ]);
                }
            }
            render::print_table(&t)?;
            for i in images {
                if !i.absent_platforms.is_empty() {
                    settings.info(format_args!(
                        "{}: platforms this node never pulled: {}",
                        i.names.first().unwrap_or(&i.digest),
                        i.absent_platforms.join(", ")
                    ));
                }
            }
        }
    }
    Ok(())
}
