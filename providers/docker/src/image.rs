//! Machine images: the tag that names a recipe's contents, the build context as a tar held
//! in memory, and the build itself.

use std::collections::{HashMap, VecDeque};
use std::io;

use bollard::body_full;
use bollard::query_parameters::BuildImageOptionsBuilder;
use envctl_provider::{
    BuildRecipe, ImageSource, MachineSpec, Phase, ProviderError, ProviderKind, Report,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::engine::{describe, is_not_found, unreachable};
use crate::{labels, DockerProvider};

/// How many lines of build output an error shows.
const BUILD_TAIL_LINES: usize = 20;

/// The image a recipe builds: `envctl-<name>:<first 12 hex digits of a sha256 over its files>`.
/// A changed file changes the tag, so a recipe is rebuilt exactly when it changes.
pub fn image_tag(recipe: &BuildRecipe) -> String {
    format!("envctl-{}:{}", recipe.name, recipe_hash(recipe))
}

/// The image a machine runs.
pub(crate) fn image_name(source: &ImageSource) -> Result<String, ProviderError> {
    match source {
        ImageSource::DockerImage(name) => Ok(name.clone()),
        ImageSource::DockerBuild(recipe) => Ok(image_tag(recipe)),
        ImageSource::Box(image) => Err(ProviderError::Unsupported {
            provider: ProviderKind::Docker,
            what: format!(
                "boot the vagrant box `{}`; give the machine a docker image or recipe",
                image.name
            ),
        }),
    }
}

/// Hashes each file's path and contents, each preceded by its length so no two different
/// recipes hash the same bytes, in path order so the order files were listed in does not
/// matter to the build and does not matter here either.
fn recipe_hash(recipe: &BuildRecipe) -> String {
    let mut files: Vec<&(String, Vec<u8>)> = recipe.files.iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (path, contents) in files {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(contents);
    }
    hasher.finalize()[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The build context: every file of the recipe, owned by root, with a fixed time so the same
/// recipe always makes the same tar. Scripts (`#!`) are executable so a `COPY`ed script runs.
pub(crate) fn context_tar(recipe: &BuildRecipe) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in &recipe.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(if contents.starts_with(b"#!") {
            0o755
        } else {
            0o644
        });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, contents.as_slice())?;
    }
    builder.into_inner()
}

impl DockerProvider {
    /// Fails unless every named image is in the engine: nothing can be pulled by envctl.
    pub(crate) async fn check_images(&self, machines: &[MachineSpec]) -> Result<(), ProviderError> {
        for machine in machines {
            let name = match &machine.image {
                ImageSource::DockerImage(name) => name,
                // Recipes are built by `prepare`; `image_name` refuses what is not an image.
                other => {
                    image_name(other)?;
                    continue;
                }
            };
            match self.docker.inspect_image(name).await {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => {
                    return Err(ProviderError::Image {
                        image: name.clone(),
                        reason: missing_image_hint(name),
                    })
                }
                Err(err) => {
                    return Err(self.machine_error(
                        &machine.name,
                        format!("looking for image `{name}`"),
                        err,
                    ))
                }
            }
        }
        Ok(())
    }

    /// Builds each distinct recipe once, unless an image with its tag exists already.
    pub(crate) async fn build_images(
        &self,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        let mut recipes: Vec<&BuildRecipe> = Vec::new();
        for machine in machines {
            if let ImageSource::DockerBuild(recipe) = &machine.image {
                if !recipes.contains(&recipe) {
                    recipes.push(recipe);
                }
            }
        }
        for recipe in recipes {
            let tag = image_tag(recipe);
            if self.image_exists(&tag).await? {
                continue;
            }
            let users = machines
                .iter()
                .filter(|machine| machine.image == ImageSource::DockerBuild(recipe.clone()));
            for machine in users {
                report.phase(&machine.name, Phase::BuildingImage);
            }
            self.build(recipe, &tag).await?;
        }
        Ok(())
    }

    async fn image_exists(&self, name: &str) -> Result<bool, ProviderError> {
        match self.docker.inspect_image(name).await {
            Ok(_) => Ok(true),
            Err(err) if is_not_found(&err) => Ok(false),
            Err(err) => Err(self.backend_error(format!("inspecting image `{name}`"), err)),
        }
    }

    async fn build(&self, recipe: &BuildRecipe, tag: &str) -> Result<(), ProviderError> {
        let context = context_tar(recipe).map_err(|err| ProviderError::Image {
            image: tag.to_string(),
            reason: format!(
                "packing the build context of recipe `{}`: {err}",
                recipe.name
            ),
        })?;
        let options = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .labels(&HashMap::from([(labels::RECIPE, recipe.name.as_str())]))
            .build();
        let mut output = BuildOutput::default();
        let mut stream = self
            .docker
            .build_image(options, None, Some(body_full(context.into())));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    output.push(info.stream.as_deref().or(info.status.as_deref()));
                }
                // bollard turns a stream item with `errorDetail` into this error.
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    output.push(Some(&error));
                    return Err(output.failure(tag, "the build failed"));
                }
                Err(err) => {
                    if let Some(reason) = unreachable(&err) {
                        return Err(self.unavailable(reason));
                    }
                    let what = format!("the build stopped: {}", describe(&err));
                    return Err(output.failure(tag, &what));
                }
            }
        }
        // A build can end without an error item yet without an image (an engine bug or a
        // dropped connection); the tag is what later steps rely on.
        if !self.image_exists(tag).await? {
            return Err(output.failure(tag, "the build ended without making the image"));
        }
        Ok(())
    }
}

/// The last lines of a build's output, kept to explain a failure.
#[derive(Default)]
struct BuildOutput {
    lines: VecDeque<String>,
}

impl BuildOutput {
    fn push(&mut self, text: Option<&str>) {
        for line in text.unwrap_or_default().lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if self.lines.len() == BUILD_TAIL_LINES {
                self.lines.pop_front();
            }
            self.lines.push_back(line.to_string());
        }
    }

    fn failure(&self, tag: &str, what: &str) -> ProviderError {
        let tail: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        ProviderError::Image {
            image: tag.to_string(),
            reason: format!("{what}; last lines of its output:\n{}", tail.join("\n")),
        }
    }
}

fn missing_image_hint(name: &str) -> String {
    let how = if name.starts_with("debian:") {
        "run images/docker-base/build".to_string()
    } else {
        format!("build it with `docker build -t {name} <dir>` or `docker load` it")
    };
    format!("it is not in the local docker engine and cannot be pulled here; {how}")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn recipe(files: &[(&str, &str)]) -> BuildRecipe {
        BuildRecipe {
            name: "debian".to_string(),
            files: files
                .iter()
                .map(|(path, text)| (path.to_string(), text.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn the_tag_is_stable_and_follows_the_files() {
        let base = recipe(&[
            ("Dockerfile", "FROM debian:bookworm\n"),
            ("sshd.conf", "PermitRootLogin no\n"),
        ]);
        let tag = image_tag(&base);
        assert_eq!(tag, image_tag(&base.clone()));
        let (name, hash) = tag.split_once(':').unwrap();
        assert_eq!(name, "envctl-debian");
        assert_eq!(hash.len(), 12);
        assert!(hash
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

        // The sha256 framing is part of the contract: a silent change would rebuild every image.
        assert_eq!(image_tag(&recipe(&[])), "envctl-debian:e3b0c44298fc");
        assert_eq!(
            image_tag(&recipe(&[("Dockerfile", "FROM debian:bookworm\n")])),
            "envctl-debian:f118be30b1d8"
        );

        let reordered = recipe(&[
            ("sshd.conf", "PermitRootLogin no\n"),
            ("Dockerfile", "FROM debian:bookworm\n"),
        ]);
        assert_eq!(image_tag(&reordered), tag);

        let changed = recipe(&[
            ("Dockerfile", "FROM debian:bookworm\n"),
            ("sshd.conf", "PermitRootLogin yes\n"),
        ]);
        assert_ne!(image_tag(&changed), tag);
        let renamed = recipe(&[
            ("Dockerfile", "FROM debian:bookworm\n"),
            ("sshd2.conf", "PermitRootLogin no\n"),
        ]);
        assert_ne!(image_tag(&renamed), tag);
        // Moving bytes between a path and its contents is a different recipe.
        assert_ne!(
            image_tag(&recipe(&[("ab", "c")])),
            image_tag(&recipe(&[("a", "bc")]))
        );
        let mut other_name = base.clone();
        other_name.name = "alpine".to_string();
        assert!(image_tag(&other_name).starts_with("envctl-alpine:"));
    }

    #[test]
    fn the_context_holds_every_file() {
        let recipe = recipe(&[
            ("Dockerfile", "FROM scratch\n"),
            ("files/setup.sh", "#!/bin/sh\ntrue\n"),
        ]);
        let tar = context_tar(&recipe).unwrap();
        assert_eq!(
            tar,
            context_tar(&recipe).unwrap(),
            "the same recipe makes the same tar"
        );
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            seen.push((path, mode, text));
        }
        assert_eq!(
            seen,
            vec![
                (
                    "Dockerfile".to_string(),
                    0o644,
                    "FROM scratch\n".to_string()
                ),
                (
                    "files/setup.sh".to_string(),
                    0o755,
                    "#!/bin/sh\ntrue\n".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_path_out_of_the_context_is_refused() {
        assert!(context_tar(&recipe(&[("../etc/passwd", "x")])).is_err());
    }

    #[test]
    fn build_output_keeps_the_last_lines() {
        let mut output = BuildOutput::default();
        for n in 0..30 {
            output.push(Some(&format!("line {n}\n\n")));
        }
        output.push(None);
        let err = output
            .failure("envctl-debian:0", "the build failed")
            .to_string();
        assert!(
            err.starts_with("image envctl-debian:0: the build failed; last lines"),
            "{err}"
        );
        assert!(
            err.contains("line 10\n") && err.ends_with("line 29"),
            "{err}"
        );
        assert!(!err.contains("line 9\n"), "{err}");
    }

    #[test]
    fn boxes_are_unsupported_and_images_are_named() {
        let named = ImageSource::DockerImage("debian:bookworm".to_string());
        assert_eq!(image_name(&named).unwrap(), "debian:bookworm");
        let built = recipe(&[("Dockerfile", "FROM debian:bookworm\n")]);
        assert_eq!(
            image_name(&ImageSource::DockerBuild(built.clone())).unwrap(),
            image_tag(&built)
        );
        let boxed = ImageSource::Box(envctl_provider::BoxImage {
            name: "debian/bookworm64".to_string(),
            version: "1".to_string(),
            dir: "/tmp".into(),
        });
        assert!(matches!(
            image_name(&boxed),
            Err(ProviderError::Unsupported { .. })
        ));
    }
}
