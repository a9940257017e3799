//! The command: gather, check, write, then say what was written.

use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::store::{FetchState, gather_and_fetch};
use super::targets::{Target, check_target, compression_for, resolve_targets};
use super::writer::{write_archive, write_file};
use crate::app::{Outcome, Session, Settings, inventory};
use crate::archive::write::{NamedTarget, docker_manifest_json, index_json, oci_layout_json};
use crate::cli::{ExportArgs, OutputFormat};
use crate::error::CrimgError;
use crate::error::WritingArchive;
use crate::model::Descriptor;
use crate::oci::Compression;
use crate::plan::export::{docker_images, unique_blobs};
use crate::plan::platform::PlatformChoice;
use crate::registry::config::RegistryConfig;
use crate::registry::fetch::Fetcher;
use crate::runtime::containerd::Containerd;
use crate::runtime::leases::HeldLeases;

/// What `-o json` prints after writing a file.
#[derive(Debug, Serialize)]
struct ExportResult {
    schema: u32,
    file: String,
    images: Vec<String>,
    blobs: usize,
    bytes: u64,
    fetched: Vec<String>,
}

pub(crate) async fn run(settings: Settings, args: ExportArgs) -> Result<Outcome> {
    // Checked before connecting: a refused target should not wait on the runtime.
    let target = check_target(&args)?;
    let compression = compression_for(&args)?;
    let refs = crate::app::refs::gather(&args.refs, args.from_file.as_deref())?;
    let args = ExportArgs {
        refs,
        from_file: None,
        ..args
    };
    let lease = HeldLeases::default();
    let work = export(settings, args, target, compression, lease.clone());
    tokio::select! {
        r = work => r,
        // Dropping `work` drops the temp file, which removes it: no partial file stays.
        // The fetch's lease goes now too, and with it whatever was fetched.
        signal = crate::error::interrupted() => {
            for (c, id) in lease.take() {
                let _ = c.delete_lease(&id, false).await;
            }
            Err(CrimgError::Interrupted {
                signal,
                what: "no archive was written".into(),
            }
            .into())
        }
    }
}

async fn export(
    settings: Settings,
    args: ExportArgs,
    target: Target,
    compression: Compression,
    held: HeldLeases,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut session = Session::connect(settings).await?;
    let containerd = session.containerd().await?.clone();
    let inv = inventory::gather(&mut session).await?;
    let settings = session.settings.clone();
    let records = containerd.list_images().await?;
    let wanted = resolve_targets(&inv.images, &records, &args.refs)?;
    let choice = PlatformChoice::from_args(&args.platform, args.all_platforms);

    let mut fetch = start_fetch(&session, &containerd, &args, &held).await?;

    let result = gather_and_fetch(&containerd, &settings, wanted, &choice, fetch.as_mut()).await;
    // The fetch's lease, and one a failed renewal left, go now.
    for (c, id) in held.take() {
        if let Err(e) = c.delete_lease(&id, false).await {
            settings.warn(format_args!("{e:#}"));
        }
    }
    let plans = result?;
    let fetched = fetch.map(|f| f.fetched).unwrap_or_default();

    for p in &plans {
        if !p.skipped_platforms.is_empty() {
            settings.warn(format_args!(
                "{}: left out platforms this node never pulled: {}",
                p.display_name(),
                p.skipped_platforms.join(", ")
            ));
        }
    }

    // Everything is known: now write.
    let names: Vec<NamedTarget> = plans
        .iter()
        .flat_map(|p| {
            p.names.iter().map(|n| NamedTarget {
                name: n.clone(),
                target: p.target.clone(),
            })
        })
        .collect();
    let blobs = unique_blobs(&plans);
    let docker = docker_manifest_json(&docker_images(&plans, &choice))?;
    let files = vec![
        ("oci-layout".to_string(), oci_layout_json()),
        ("index.json".to_string(), index_json(&names)),
        ("manifest.json".to_string(), docker),
    ];

    let total: u64 = blobs.iter().map(|b| b.size.max(0) as u64).sum();
    let bar = progress(&settings, total, "writing");
    let (bytes, shown) =
        write_target(&containerd, &target, compression, &files, &blobs, &bar).await?;
    bar.finish_and_clear();

    let image_names: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
    let what = format!(
        "exported {} image(s), {} blob(s), {} to {shown}{}",
        image_names.len(),
        blobs.len(),
        crate::model::human_size(bytes),
        if fetched.is_empty() {
            String::new()
        } else {
            format!(
                " ({} blob(s) fetched from the registry and stored back)",
                fetched.len()
            )
        }
    );
    crate::render::summary::print(settings.quiet, &what, started.elapsed());
    if let (OutputFormat::Json, Target::File { path, .. }) = (settings.output, &target) {
        crate::render::print_json(&ExportResult {
            schema: crate::render::json::SCHEMA,
            file: path.display().to_string(),
            images: image_names,
            blobs: blobs.len(),
            bytes,
            fetched,
        })?;
    }
    Ok(Outcome::Done)
}

/// With `--fetch-missing`: the fetcher over the node's registry configuration, and the
/// lease that holds what it fetches. Fetched content is held by this lease until the GC
/// labels of its parents hold it; a crash leaves a lease that expires by itself, or that
/// the next import or export releases. Those earlier runs left go first.
async fn start_fetch(
    session: &Session,
    containerd: &Containerd,
    args: &ExportArgs,
    held: &HeldLeases,
) -> Result<Option<FetchState>> {
    if !args.fetch_missing {
        return Ok(None);
    }
    let settings = &session.settings;
    let config = RegistryConfig::load(
        &session.registry_hosts_dir(args.registry_config_dir.as_deref())?,
        &args.registries_yaml,
    )?;
    let warn_settings = settings.clone();
    let debug_settings = settings.clone();
    let fetcher = Fetcher::new(
        config,
        Box::new(move |m| warn_settings.warn(m)),
        Box::new(move |m| debug_settings.debug(m)),
    );
    crate::app::release_stale_leases(containerd, settings).await;
    let lease = containerd
        .create_held_lease(held, "export", std::time::Duration::from_secs(3600))
        .await?;
    let leased = containerd.with_lease(&lease)?;
    Ok(Some(FetchState {
        fetcher,
        lease,
        leased,
        fetched: Vec::new(),
        held: held.clone(),
    }))
}

/// Writes the archive to its target; returns the bytes written and the target's name.
async fn write_target(
    containerd: &Containerd,
    target: &Target,
    compression: Compression,
    files: &[(String, Vec<u8>)],
    blobs: &[Descriptor],
    bar: &ProgressBar,
) -> Result<(u64, String)> {
    Ok(match target {
        Target::Stdout => {
            let (_, bytes) = write_archive(
                containerd,
                std::io::stdout(),
                compression,
                files,
                blobs,
                bar,
            )
            .await
            .context(WritingArchive("standard output".into()))?;
            (bytes, "standard output".to_string())
        }
        Target::File { path, force } => {
            let bytes =
                write_file(containerd, path, *force, compression, files, blobs, bar).await?;
            (bytes, path.display().to_string())
        }
    })
}

pub(super) fn progress(settings: &Settings, total: u64, what: &str) -> ProgressBar {
    if !settings.progress || total == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(total),
        crate::render::progress::target(settings.progress),
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
