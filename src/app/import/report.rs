//! What one run imported and what failed, as a table, names or JSON.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::importer::ImportedImage;
use crate::app::Settings;
use crate::cli::OutputFormat;
use crate::render;

/// Everything one run did, for output.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) imported: Vec<(String, Vec<ImportedImage>)>,
    /// Each failure shows (`{:#}`) as `FILE: WHY`; kept as an error for its kind.
    pub(crate) failed: Vec<(String, anyhow::Error)>,
    pub(crate) written: u64,
}

#[derive(Serialize)]
struct JsonResult {
    schema: u32,
    imported: Vec<JsonFile>,
    failed: Vec<JsonFailure>,
}

#[derive(Serialize)]
struct JsonFile {
    file: String,
    images: Vec<JsonImage>,
}

#[derive(Serialize)]
struct JsonImage {
    name: String,
    id: String,
    digest: String,
    status: &'static str,
    /// The image the name pointed at before, when the import took it from another image.
    #[serde(skip_serializing_if = "Option::is_none")]
    was: Option<String>,
}

/// What happened to one name: `replaced` with the image it named before, or the image's
/// status.
fn name_status<'a>(image: &'a ImportedImage, name: &str) -> (&'static str, Option<&'a str>) {
    match image.replaced.iter().find(|r| r.name == name) {
        Some(r) => ("replaced", Some(r.was.as_str())),
        None => (image.status, None),
    }
}

/// An archive or list that failed, in import's and inspect's JSON.
#[derive(Serialize)]
pub(super) struct JsonFailure {
    pub(super) file: String,
    pub(super) error: String,
}

impl Report {
    pub(crate) fn render(&self, settings: &Settings, elapsed: Duration) -> Result<()> {
        let rows = || {
            self.imported.iter().flat_map(|(_, images)| {
                images
                    .iter()
                    .flat_map(|i| i.names.iter().map(move |n| (n, i)))
            })
        };
        match settings.output {
            OutputFormat::Json => render::print_json(&JsonResult {
                schema: render::json::SCHEMA,
                imported: self
                    .imported
                    .iter()
                    .map(|(file, images)| JsonFile {
                        file: file.clone(),
                        images: images
                            .iter()
                            .flat_map(|i| {
                                i.names.iter().map(|n| {
                                    let (status, was) = name_status(i, n);
                                    JsonImage {
                                        name: n.clone(),
                                        id: i.id.clone(),
                                        digest: i.digest.clone(),
                                        status,
                                        was: was.map(str::to_string),
                                    }
                                })
                            })
                            .collect(),
                    })
                    .collect(),
                failed: self
                    .failed
                    .iter()
                    .map(|(file, error)| JsonFailure {
                        file: file.clone(),
                        error: format!("{error:#}"),
                    })
                    .collect(),
            })?,
            OutputFormat::Name => render::print_lines(rows().map(|(n, _)| n))?,
            OutputFormat::Table | OutputFormat::Wide => {
                if rows().next().is_some() {
                    let wide = settings.output == OutputFormat::Wide;
                    let mut t = render::table(&["IMAGE", "ID", "PLATFORMS", "SIZE", "STATUS"]);
                    for (name, i) in rows() {
                        let id = if wide {
                            i.id.as_str()
                        } else {
                            crate::model::short_id(&i.id)
                        };
                        t.add_row(vec![
                            name.clone(),
                            id.to_string(),
                            if i.platforms.is_empty() {
                                "-".into()
                            } else {
                                i.platforms.join(",")
                            },
                            if i.size == 0 {
                                "-".into()
                            } else {
                                crate::model::human_size(i.size)
                            },
                            match name_status(i, name) {
                                (status, Some(was)) if wide => format!("{status} (was {was})"),
                                (status, Some(was)) => {
                                    format!("{status} (was {})", crate::model::short_id(was))
                                }
                                (status, None) => status.to_string(),
                            },
                        ]);
                    }
                    render::print_table(&t)?;
                }
            }
        }
        let images: usize = self.imported.iter().map(|(_, i)| i.len()).sum();
        // When nothing worked the error says it all.
        if images > 0 || self.failed.is_empty() {
            let mut what = format!(
                "imported {images} image(s) from {} item(s), {} written",
                self.imported.len(),
                crate::model::human_size(self.written),
            );
            if !self.failed.is_empty() {
                what.push_str(&format!("; {} failed", self.failed.len()));
            }
            render::summary::print(settings.quiet, &what, elapsed);
        }
        Ok(())
    }
}
