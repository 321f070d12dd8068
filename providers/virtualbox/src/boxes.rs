//! Boxes and base VMs: a box must be an unpacked VirtualBox box; it is imported once per
//! environment into a base VM named `<env>--box-<box>-<version>`, marked with the
//! environment's id and given the snapshot machines are linked clones of.

use std::collections::HashSet;
use std::path::PathBuf;

use envctl_provider::{
    BoxImage, EnvironmentId, ImageSource, MachineSpec, Phase, ProviderError, ProviderKind, Report,
};

use crate::vm::{describe_owner, Owner, SNAPSHOT};
use crate::{keys, VirtualboxProvider};

/// The base VM `image` is imported into for `env`. Machine names cannot start with a dash,
/// so `<env>--box-…` never names a machine.
pub(crate) fn base_name(env: &EnvironmentId, image: &BoxImage) -> String {
    format!(
        "{}--box-{}-{}",
        env.name,
        slug(&image.name),
        slug(&image.version)
    )
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The box of `machine`.
pub(crate) fn box_of(machine: &MachineSpec) -> Result<&BoxImage, ProviderError> {
    match &machine.image {
        ImageSource::Box(image) => Ok(image),
        _ => Err(ProviderError::Unsupported {
            provider: ProviderKind::Virtualbox,
            what: format!("boot machine `{}` from a Docker image", machine.name),
        }),
    }
}

/// Checks that `image` is an unpacked VirtualBox box and returns its `box.ovf`.
pub(crate) fn check_box(image: &BoxImage) -> Result<PathBuf, ProviderError> {
    let fail = |reason: String| ProviderError::Image {
        image: format!("{} {}", image.name, image.version),
        reason,
    };
    let metadata = image.dir.join("metadata.json");
    let text = std::fs::read_to_string(&metadata)
        .map_err(|err| fail(format!("cannot read {}: {err}", metadata.display())))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| fail(format!("{} is not JSON: {err}", metadata.display())))?;
    match value.get("provider").and_then(|p| p.as_str()) {
        Some("virtualbox") => {}
        Some(other) => return Err(fail(format!("is a box for {other}, not virtualbox"))),
        None => return Err(fail(format!("{} names no provider", metadata.display()))),
    }
    let ovf = image.dir.join("box.ovf");
    if !ovf.is_file() {
        return Err(fail(format!("{} does not exist", ovf.display())));
    }
    Ok(ovf)
}

impl VirtualboxProvider {
    /// Preflight: no VM that `up` would make is someone else's already.
    pub(crate) async fn check_names(
        &self,
        env: &EnvironmentId,
        machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        let mut wanted: HashSet<String> = HashSet::new();
        for machine in machines {
            wanted.insert(env.resource_name(&machine.name));
            wanted.insert(base_name(env, box_of(machine)?));
        }
        for (name, _) in self.list_vms().await? {
            if !wanted.contains(&name) {
                continue;
            }
            let owner = self.owner(env, &name).await.map_err(|err| {
                self.backend_error(format!("reading the extradata of VM `{name}`"), err)
            })?;
            if let Owner::Other(extra) = owner {
                return Err(ProviderError::backend(
                    format!("checking that VM `{name}` is free"),
                    format!(
                        "a VirtualBox VM of that name exists and {}",
                        describe_owner(&extra)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Prepare: imports each box the machines use into its base VM, once.
    pub(crate) async fn ensure_bases(
        &self,
        env: &EnvironmentId,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        let existing: HashSet<String> =
            self.list_vms().await?.into_iter().map(|(n, _)| n).collect();
        let mut done: HashSet<String> = HashSet::new();
        for machine in machines {
            let image = box_of(machine)?;
            let base = base_name(env, image);
            if !done.insert(base.clone()) {
                continue;
            }
            if existing.contains(&base) && self.finish_base(env, &base).await? {
                continue;
            }
            for user in machines.iter().filter(|m| box_of(m).ok() == Some(image)) {
                report.phase(&user.name, Phase::BuildingImage);
            }
            self.import_base(env, image, &base).await?;
        }
        Ok(())
    }

    /// Checks an existing base VM and takes its snapshot if an earlier `up` stopped short of
    /// it. False when the VM vanished meanwhile.
    async fn finish_base(&self, env: &EnvironmentId, base: &str) -> Result<bool, ProviderError> {
        let action = format!("checking base VM `{base}`");
        match self
            .owner(env, base)
            .await
            .map_err(|err| self.backend_error(&action, err))?
        {
            Owner::Missing => Ok(false),
            Owner::Other(extra) => Err(ProviderError::backend(
                action,
                format!(
                    "a VirtualBox VM of that name exists and {}",
                    describe_owner(&extra)
                ),
            )),
            Owner::Ours(_) => {
                if !self
                    .vm_info(base)
                    .await
                    .map_err(|err| self.backend_error(&action, err))?
                    .has_snapshot(SNAPSHOT)
                {
                    self.vbox
                        .run(["snapshot", base, "take", SNAPSHOT])
                        .await
                        .map_err(|err| {
                            self.backend_error(format!("taking a snapshot of `{base}`"), err)
                        })?;
                }
                Ok(true)
            }
        }
    }

    /// Imports `image` as `base`, marks it as the environment's and takes its snapshot; a
    /// failure after the import removes the VM again.
    async fn import_base(
        &self,
        env: &EnvironmentId,
        image: &BoxImage,
        base: &str,
    ) -> Result<(), ProviderError> {
        let ovf = check_box(image)?.display().to_string();
        self.vbox
            .run(["import", ovf.as_str(), "--vsys", "0", "--vmname", base])
            .await
            .map_err(|err| {
                self.backend_error(
                    format!("importing box {} {} as `{base}`", image.name, image.version),
                    err,
                )
            })?;
        let finish = async {
            self.set_extradata(base, keys::ENV_ID, &env.id).await?;
            self.set_extradata(base, keys::ENV, &env.name).await?;
            self.set_extradata(base, keys::PROJECT, &env.project_dir.display().to_string())
                .await?;
            self.vbox.run(["snapshot", base, "take", SNAPSHOT]).await
        };
        let Err(err) = finish.await else {
            return Ok(());
        };
        let action = format!("preparing base VM `{base}`");
        match self.vbox.run(["unregistervm", base, "--delete"]).await {
            Ok(_) => Err(self.backend_error(action, err)),
            Err(undo) => Err(self.backend_error(
                format!("{action} (deleting it again failed too, so it is left: {undo})"),
                err,
            )),
        }
    }
}
