//! What `crimg inspect` prints: the stable JSON schema (documented in `docs/inspecting.md`)
//! and the table.

use anyhow::Result;
use serde::Serialize;

use crate::app::Settings;
use crate::cli::OutputFormat;
use crate::render;

use super::Inspected;
use crate::app::import::report::JsonFailure;

#[derive(Serialize)]
pub(super) struct JsonArchive {
    pub(super) file: String,
    pub(super) format: &'static str,
    pub(super) compression: &'static str,
    pub(super) size: u64,
    pub(super) verified: bool,
    pub(super) images: Vec<JsonImage>,
    pub(super) notes: Vec<String>,
}

#[derive(Serialize)]
pub(super) struct JsonImage {
    pub(super) names: Vec<String>,
    pub(super) digest: String,
    pub(super) media_type: String,
    pub(super) id: String,
    pub(super) size: u64,
    pub(super) platforms: Vec<JsonPlatform>,
}

#[derive(Serialize)]
pub(super) struct JsonPlatform {
    pub(super) platform: String,
    pub(super) manifest: String,
    pub(super) id: String,
    pub(super) unpack: bool,
    pub(super) size: u64,
    pub(super) unpacked_size: Option<u64>,
    pub(super) layers: Vec<JsonLayer>,
}

#[derive(Serialize)]
pub(super) struct JsonLayer {
    pub(super) digest: String,
    pub(super) size: u64,
    pub(super) diff_id: String,
    pub(super) unpacked_size: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct JsonResult<'a> {
    pub(super) archives: &'a [JsonArchive],
    pub(super) failed: &'a [JsonFailure],
}

pub(super) fn to_json(file: &str, i: &Inspected) -> JsonArchive {
    let images = i
        .all
        .images
        .iter()
        .map(|image| {
            let host = i
                .host
                .images
                .iter()
                .find(|h| h.target.digest == image.target.digest);
            let platforms = image
                .manifests
                .iter()
                .map(|m| {
                    let layers: Vec<JsonLayer> = m
                        .layers
                        .iter()
                        .zip(&m.diff_ids)
                        .map(|(l, d)| JsonLayer {
                            digest: l.digest.clone(),
                            size: l.size.max(0) as u64,
                            diff_id: d.clone(),
                            unpacked_size: i.layers.get(&l.digest).map(|u| u.size),
                        })
                        .collect();
                    let unpacked = layers.iter().map(|l| l.unpacked_size).sum::<Option<u64>>();
                    JsonPlatform {
                        platform: m
                            .platform
                            .as_ref()
                            .map_or("unknown".into(), ToString::to_string),
                        manifest: m.digest.clone(),
                        id: m.config.digest.clone(),
                        unpack: host.is_some_and(|h| {
                            h.manifests
                                .iter()
                                .any(|hm| hm.digest == m.digest && hm.unpack)
                        }),
                        size: layers.iter().map(|l| l.size).sum::<u64>()
                            + m.config.size.max(0) as u64,
                        unpacked_size: unpacked,
                        layers,
                    }
                })
                .collect();
            JsonImage {
                names: image.names.clone(),
                digest: image.target.digest.clone(),
                media_type: image.target.media_type.clone(),
                id: host.map_or(image.id.clone(), |h| h.id.clone()),
                size: i.all.image_size(image),
                platforms,
            }
        })
        .collect();
    let mut notes: Vec<String> = Vec::new();
    for n in i.host.notes.iter().chain(&i.all.notes) {
        if !notes.contains(n) {
            notes.push(n.clone());
        }
    }
    JsonArchive {
        file: file.to_string(),
        format: i.format,
        compression: i.compression,
        size: i.size,
        verified: i.verified,
        images,
        notes,
    }
}

pub(super) fn render(
    settings: &Settings,
    archives: &[JsonArchive],
    failed: &[JsonFailure],
) -> Result<()> {
    let size = |n: Option<u64>| n.map_or("-".to_string(), crate::model::human_size);
    match settings.output {
        OutputFormat::Json => render::print_json(&JsonResult { archives, failed })?,
        OutputFormat::Name => render::print_lines(
            archives
                .iter()
                .flat_map(|a| &a.images)
                .flat_map(|i| &i.names),
        )?,
        OutputFormat::Table => {
            let mut t = render::table(&[
                "FILE",
                "NAME",
                "ID",
                "PLATFORMS",
                "LAYERS",
                "SIZE",
                "UNPACKED",
            ]);
            for a in archives {
                for i in &a.images {
                    let platforms: Vec<String> = i
                        .platforms
                        .iter()
                        .map(|p| {
                            if p.unpack {
                                format!("{}*", p.platform)
                            } else {
                                p.platform.clone()
                            }
                        })
                        .collect();
                    let unpacked = i
                        .platforms
                        .iter()
                        .find(|p| p.id == i.id)
                        .and_then(|p| p.unpacked_size);
                    let layers = i
                        .platforms
                        .iter()
                        .find(|p| p.id == i.id)
                        .map_or(0, |p| p.layers.len());
                    let names = if i.names.is_empty() {
                        "<none>".to_string()
                    } else {
                        i.names.join(" ")
                    };
                    t.add_row(vec![
                        a.file.clone(),
                        names,
                        i.id.clone(),
                        platforms.join(","),
                        layers.to_string(),
                        crate::model::human_size(i.size),
                        size(unpacked),
                    ]);
                }
            }
            render::print_table(&t)?;
        }
        OutputFormat::Wide => {
            let mut t = render::table(&[
                "FILE", "NAME", "PLATFORM", "UNPACK", "MANIFEST", "ID", "LAYER", "SIZE", "UNPACKED",
            ]);
            for a in archives {
                for i in &a.images {
                    let names = if i.names.is_empty() {
                        "<none>".to_string()
                    } else {
                        i.names.join(" ")
                    };
                    for p in &i.platforms {
                        for l in &p.layers {
                            t.add_row(vec![
                                a.file.clone(),
                                names.clone(),
                                p.platform.clone(),
                                if p.unpack { "yes" } else { "no" }.into(),
                                p.manifest.clone(),
                                p.id.clone(),
                                l.digest.clone(),
                                crate::model::human_size(l.size),
                                size(l.unpacked_size),
                            ]);
                        }
                    }
                }
            }
            render::print_table(&t)?;
        }
    }
    if settings.output != OutputFormat::Json {
        for a in archives {
            for n in &a.notes {
                settings.info(format_args!("{}: {n}", a.file));
            }
            let images = a.images.len();
            settings.info(format_args!(
                "{}: {images} image(s), {} {} archive of {}{}",
                a.file,
                a.format,
                a.compression,
                crate::model::human_size(a.size),
                if a.verified {
                    ", verified"
                } else {
                    ", not verified"
                }
            ));
        }
    }
    Ok(())
}
