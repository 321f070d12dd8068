//! Machines that boot systemd as PID 1, unprivileged.
//!
//! systemd needs a writable cgroup of its own, tmpfs on `/run` and `/run/lock`, and its own
//! shutdown signal. The cgroup is the hard part. The usual recipe, a read-only bind of the
//! host's `/sys/fs/cgroup`, only makes the top tmpfs read-only: on a cgroup v1 host every
//! hierarchy below it stays writable, root's `release_agent` included, which is a known
//! way out of a container. So each machine gets a cgroup parent of its own
//! ([`CgroupPlan`]) and only that subtree is bound writable; every other hierarchy keeps
//! Docker's read-only view.

use std::collections::HashMap;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigCgroupnsModeEnum};
use bollard::query_parameters::DownloadFromContainerOptionsBuilder;
use envctl_provider::{EnvironmentId, Init, MachineSpec, ProviderError};
use futures_util::StreamExt;

use crate::engine::is_not_found;
use crate::image::image_name;
use crate::DockerProvider;

/// The command that boots the machine. Every systemd distribution has it at this path
/// (through `/lib` → `/usr/lib` where `/usr` is merged).
pub(crate) const SYSTEMD: &str = "/lib/systemd/systemd";

/// systemd's signal for an orderly shutdown, which `docker stop` sends.
pub(crate) const SHUTDOWN_SIGNAL: &str = "SIGRTMIN+3";

/// Seconds `halt` gives systemd to stop every unit before the engine kills what is left.
pub(crate) const SHUTDOWN_SECS: i64 = 30;

/// What an image must hold to boot as a machine in systemd mode.
const REQUIRED: [&str; 2] = [SYSTEMD, "/usr/sbin/sshd"];

/// How the engine arranges cgroups, from `docker info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CgroupHost {
    pub version: CgroupVersion,
    /// The engine's cgroup driver is systemd's, not `cgroupfs`.
    pub systemd_driver: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CgroupVersion {
    V1,
    V2,
}

/// Where a machine's cgroup lives and how it reaches the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupPlan {
    /// The machine's own cgroup parent; the container's cgroup is made inside it.
    pub parent: String,
    pub namespace: HostConfigCgroupnsModeEnum,
    /// `host:container:rw`, the only writable cgroup mount.
    pub bind: String,
}

impl CgroupPlan {
    /// One parent per machine, so the writable subtree holds that machine alone.
    ///
    /// - v1 (run on this project's hosts): a private cgroup namespace, and the parent's
    ///   `name=systemd` directory bound over the container's; systemd sees it as its root.
    /// - v2 (not yet run on a real v2 host): the host's namespace, so the container's
    ///   cgroup path is the same inside and out, and the parent bound at that same path
    ///   over Docker's read-only cgroup2 mount, so systemd can write below its own cgroup
    ///   and nowhere else. A private namespace would be tidier, but Docker mounts cgroup2
    ///   read-only in it unless the container is privileged.
    pub(crate) fn new(host: CgroupHost, env: &EnvironmentId, machine: &str) -> CgroupPlan {
        let slug = format!("{}_{}", path_safe(&env.id), path_safe(machine));
        // The systemd driver wants a slice unit; a dash in its name would nest slices.
        let (parent, dir) = if host.systemd_driver {
            let slice = format!("envctl_{slug}.slice");
            (slice.clone(), slice)
        } else {
            let dir = format!("envctl_{slug}");
            (format!("/{dir}"), dir)
        };
        match host.version {
            CgroupVersion::V1 => CgroupPlan {
                parent,
                namespace: HostConfigCgroupnsModeEnum::PRIVATE,
                bind: format!("/sys/fs/cgroup/systemd/{dir}:/sys/fs/cgroup/systemd:rw"),
            },
            CgroupVersion::V2 => CgroupPlan {
                parent,
                namespace: HostConfigCgroupnsModeEnum::HOST,
                bind: format!("/sys/fs/cgroup/{dir}:/sys/fs/cgroup/{dir}:rw"),
            },
        }
    }
}

/// Letters, digits and underscores only: the id and name come from files a user can edit,
/// and end up in a host path.
fn path_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Turns a plain container into one that boots systemd: its command, signal, grace
/// period, the tmpfs it expects, and its cgroup. No capability is added and the container
/// stays unprivileged.
pub(crate) fn apply(body: &mut ContainerCreateBody, plan: &CgroupPlan) {
    body.cmd = Some(vec![SYSTEMD.to_string()]);
    body.stop_signal = Some(SHUTDOWN_SIGNAL.to_string());
    body.stop_timeout = Some(SHUTDOWN_SECS);
    // systemd's documented way to learn it runs in a container.
    body.env = Some(vec!["container=docker".to_string()]);
    let host = body.host_config.get_or_insert_with(HostConfig::default);
    host.tmpfs = Some(HashMap::from([
        ("/run".to_string(), "rw,nosuid,nodev,mode=755".to_string()),
        (
            "/run/lock".to_string(),
            "rw,nosuid,nodev,noexec,mode=1777".to_string(),
        ),
    ]));
    host.cgroup_parent = Some(plan.parent.clone());
    host.cgroupns_mode = Some(plan.namespace);
    host.binds = Some(vec![plan.bind.clone()]);
}

impl DockerProvider {
    /// The engine's cgroup version and driver, asked once per connection.
    pub(crate) async fn cgroup_host(&self) -> Result<CgroupHost, ProviderError> {
        let host = self
            .cgroup_host
            .get_or_try_init(|| async {
                let info = self.docker.info().await.map_err(|err| {
                    self.backend_error("asking the docker engine how it runs cgroups", err)
                })?;
                let version = match info.cgroup_version.map(|v| v.to_string()).as_deref() {
                    Some("2") => CgroupVersion::V2,
                    // Engines older than API 1.40 do not say, and ran v1 only.
                    _ => CgroupVersion::V1,
                };
                Ok::<_, ProviderError>(CgroupHost {
                    version,
                    systemd_driver: info.cgroup_driver.map(|d| d.to_string()).as_deref()
                        == Some("systemd"),
                })
            })
            .await?;
        Ok(*host)
    }

    /// The paths of [`REQUIRED`] that `image` lacks, found in a container that is created
    /// to be looked at, never started, and removed again.
    pub(crate) async fn missing_for_systemd(
        &self,
        image: &str,
    ) -> Result<Vec<&'static str>, ProviderError> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec![SYSTEMD.to_string()]),
            labels: Some(HashMap::from([(
                "envctl.probe".to_string(),
                "systemd".to_string(),
            )])),
            network_disabled: Some(true),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(|err| {
                self.backend_error(format!("looking inside image `{image}` for systemd"), err)
            })?;
        let mut missing = Vec::new();
        for path in REQUIRED {
            if !self.has_path(&created.id, path).await? {
                missing.push(path);
            }
        }
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
            .force(true)
            .build();
        // A probe left behind is harmless and labelled; the answer matters more.
        let _ = self
            .docker
            .remove_container(&created.id, Some(options))
            .await;
        Ok(missing)
    }

    async fn has_path(&self, container: &str, path: &str) -> Result<bool, ProviderError> {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self
            .docker
            .download_from_container(container, Some(options));
        // The first chunk says whether the path is there; the rest is not needed.
        match stream.next().await {
            Some(Ok(_)) | None => Ok(true),
            Some(Err(err)) if is_not_found(&err) => Ok(false),
            Some(Err(err)) => {
                Err(self.backend_error(format!("looking for {path} in an image"), err))
            }
        }
    }

    /// Fails, before anything is made, if a machine is to boot systemd from an image that
    /// cannot: a user's image asked for `init: systemd` without systemd or sshd in it.
    pub(crate) async fn check_systemd_images(
        &self,
        machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        let mut checked: Vec<String> = Vec::new();
        for machine in machines.iter().filter(|m| m.init == Init::Systemd) {
            let image = image_name(&machine.image)?;
            if checked.contains(&image) {
                continue;
            }
            let missing = self.missing_for_systemd(&image).await?;
            if !missing.is_empty() {
                return Err(ProviderError::Image {
                    image,
                    reason: format!(
                        "machine `{}` is to boot systemd (`docker: {{init: systemd}}`), but the \
                         image has no {}: install systemd and openssh-server in it, or use \
                         `init: sshd` to run sshd alone",
                        machine.name,
                        missing.join(" and no ")
                    ),
                });
            }
            checked.push(image);
        }
        Ok(())
    }

    /// The last lines of a running systemd machine's journal, which says far more than
    /// PID 1's own output. None when the machine is not running or has no journal.
    pub(crate) async fn journal_tail(&self, container: &str, lines: usize) -> Option<String> {
        let lines = lines.to_string();
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(vec!["journalctl", "--no-pager", "-b", "-n", &lines]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .ok()?;
        let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.ok()?
        else {
            return None;
        };
        let mut text = String::new();
        while let Some(chunk) = output.next().await {
            text.push_str(&chunk.ok()?.to_string());
        }
        (!text.trim().is_empty()).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use envctl_provider::EnvironmentSpec;
    use std::path::PathBuf;

    use envctl_provider::NetworkSpec;

    use super::*;

    fn env(id: &str) -> EnvironmentSpec {
        EnvironmentSpec {
            who: EnvironmentId {
                name: "demo".to_string(),
                id: id.to_string(),
                project_dir: PathBuf::from("/src/demo"),
                console_dir: PathBuf::new(),
            },
            network: NetworkSpec {
                subnet: "10.1.0.0/24".parse().unwrap(),
                gateway: "10.1.0.1".parse().unwrap(),
            },
        }
    }

    #[test]
    fn each_machine_gets_a_cgroup_subtree_of_its_own() {
        use CgroupVersion::{V1, V2};
        use HostConfigCgroupnsModeEnum::{HOST, PRIVATE};
        let cases = [
            (
                V1,
                false,
                "/envctl_0123abcd_web_1",
                PRIVATE,
                "/sys/fs/cgroup/systemd/envctl_0123abcd_web_1:/sys/fs/cgroup/systemd:rw",
            ),
            (
                V1,
                true,
                "envctl_0123abcd_web_1.slice",
                PRIVATE,
                "/sys/fs/cgroup/systemd/envctl_0123abcd_web_1.slice:/sys/fs/cgroup/systemd:rw",
            ),
            (
                V2,
                false,
                "/envctl_0123abcd_web_1",
                HOST,
                "/sys/fs/cgroup/envctl_0123abcd_web_1:/sys/fs/cgroup/envctl_0123abcd_web_1:rw",
            ),
            (
                V2,
                true,
                "envctl_0123abcd_web_1.slice",
                HOST,
                "/sys/fs/cgroup/envctl_0123abcd_web_1.slice:/sys/fs/cgroup/envctl_0123abcd_web_1.slice:rw",
            ),
        ];
        for (version, systemd_driver, parent, namespace, bind) in cases {
            let host = CgroupHost {
                version,
                systemd_driver,
            };
            let plan = CgroupPlan::new(host, &env("0123abcd"), "web-1");
            assert_eq!(
                plan,
                CgroupPlan {
                    parent: parent.to_string(),
                    namespace,
                    bind: bind.to_string()
                },
                "{host:?}"
            );
        }
    }

    /// An id from an edited state file cannot climb out of the cgroup tree.
    #[test]
    fn ids_and_names_cannot_make_a_path() {
        let host = CgroupHost {
            version: CgroupVersion::V1,
            systemd_driver: false,
        };
        let plan = CgroupPlan::new(host, &env("../../x/y"), "a/b");
        assert_eq!(plan.parent, "/envctl_______x_y_a_b");
        assert!(!plan.bind.contains(".."), "{}", plan.bind);
    }
}
