//! Machines that boot systemd as PID 1, on the real engine: they reach `running` with ssh
//! and cron active, unprivileged, with no host cgroup writable; `halt` shuts them down in
//! order and `up` boots them again with their services; and an image without systemd is
//! refused before anything is made.

mod common;

use std::time::{Duration, Instant};

use common::*;
use envctl_provider::{
    BuildRecipe, ImageSource, Init, MachineState, Provider, ProviderError, Silent,
};

/// A small image shaped like a VM's root file system: systemd, sshd, cron and the user.
fn systemd_recipe() -> BuildRecipe {
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\n\
         RUN apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv dbus \
         openssh-server cron && rm -f /etc/ssh/ssh_host_* && rm -rf /var/lib/apt/lists/*\n\
         RUN useradd --create-home --groups systemd-journal --shell /bin/bash {USER} \
         && usermod -p '*' {USER}\n"
    );
    BuildRecipe {
        name: "t-systemd".to_string(),
        files: vec![("Dockerfile".to_string(), dockerfile.into_bytes())],
    }
}

/// Until systemd says the boot is over; its answer.
async fn booted(
    env: &envctl_provider::EnvironmentSpec,
    machine: &envctl_provider::MachineSpec,
) -> String {
    ssh(
        env,
        machine,
        "timeout 30 systemctl is-system-running --wait || true",
    )
    .await
    .trim()
    .to_string()
}

#[tokio::test]
async fn docker_systemd_machine_boots_halts_in_order_and_boots_again() {
    let name = "envctl-t-systemd";
    let Rig {
        provider,
        docker,
        cleanup: _cleanup,
    } = rig(name).await;

    let env = env(name, "10.213.44.0/27");
    let mut m1 = machine(&env, "m1", 10, ImageSource::DockerBuild(systemd_recipe()));
    m1.init = Init::Systemd;
    let machines = [m1.clone()];
    provider
        .preflight(&env, &machines)
        .await
        .expect("preflight");
    {
        let _turn = BUILD_LOCK.lock().await;
        provider
            .prepare(&env, &machines, &Silent)
            .await
            .expect("prepare");
    }
    provider.up(&env, &m1, &Silent).await.expect("up");

    assert_eq!(booted(&env, &m1).await, "running");
    assert_eq!(ssh(&env, &m1, "ps -p 1 -o comm=").await.trim(), "systemd");
    assert_eq!(
        ssh(&env, &m1, "systemctl is-active ssh cron").await.trim(),
        "active\nactive"
    );
    // The journal is there, and its tail is what a failure would show.
    assert!(ssh(&env, &m1, "journalctl -u ssh --no-pager")
        .await
        .contains("ssh"));
    let tail = provider
        .log_tail(&env, "m1", 20)
        .await
        .expect("a journal tail");
    // Journal lines (host name, unit, pid), not PID 1's console.
    assert!(tail.contains(" m1 sshd["), "{tail}");

    // Unprivileged, and only its own cgroup subtree writable: no host hierarchy and no
    // `release_agent` (a way out of a v1 container) within reach.
    let container = docker
        .inspect_container(&env.resource_name("m1"), None)
        .await
        .expect("inspect");
    let host = container.host_config.expect("host config");
    assert_eq!(host.privileged, Some(false));
    assert!(host.cap_add.unwrap_or_default().is_empty());
    let probe = ssh(
        &env,
        &m1,
        "for d in /sys/fs/cgroup/pids /sys/fs/cgroup/memory /sys/fs/cgroup; do \
         mkdir $d/envctl-probe 2>/dev/null && echo WROTE $d; done; \
         ls /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/release_agent 2>/dev/null; true",
    )
    .await;
    assert_eq!(probe.trim(), "", "host cgroups reachable: {probe}");

    // halt: systemd's own shutdown, well before the engine would kill it.
    let started = Instant::now();
    provider.halt(&env, "m1").await.expect("halt");
    let took = started.elapsed();
    let state = docker
        .inspect_container(&env.resource_name("m1"), None)
        .await
        .expect("inspect")
        .state
        .expect("state");
    assert_ne!(state.exit_code, Some(137), "killed, not shut down");
    assert!(took < Duration::from_secs(25), "halt took {took:?}");
    assert_eq!(
        states(&provider, &env).await,
        vec![("m1".to_string(), MachineState::Stopped)]
    );

    // up boots it again; what is enabled starts by itself.
    let again = provider.up(&env, &m1, &Silent).await.expect("up again");
    assert!(again.changed);
    assert_eq!(booted(&env, &m1).await, "running");
    assert_eq!(
        ssh(&env, &m1, "systemctl is-active ssh cron").await.trim(),
        "active\nactive"
    );

    // A machine made for systemd is not started as something else: up says to remake it.
    let mut as_sshd = m1.clone();
    as_sshd.init = Init::Sshd;
    let err = provider
        .up(&env, &as_sshd, &Silent)
        .await
        .expect_err("another init needs a new container");
    let why = source_text(&err);
    assert!(
        why.contains("run systemd as PID 1") && why.contains("`envctl destroy m1`"),
        "{why}"
    );
    provider.destroy(&env, "m1").await.expect("destroy");
    provider.teardown(&env).await.expect("teardown");
}

#[tokio::test]
async fn docker_systemd_is_refused_for_an_image_without_it() {
    let name = "envctl-t-nosystemd";
    let Rig {
        provider,
        docker,
        cleanup: _cleanup,
    } = rig(name).await;

    let env = env(name, "10.213.44.32/27");
    let mut m1 = machine(&env, "m1", 10, ImageSource::DockerBuild(test_recipe()));
    m1.init = Init::Systemd;
    let err = {
        let _turn = BUILD_LOCK.lock().await;
        provider
            .prepare(&env, &[m1.clone()], &Silent)
            .await
            .expect_err("an image without systemd must be refused")
    };
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Image { .. }), "{err:?}");
    assert!(
        text.contains("/lib/systemd/systemd") && text.contains("init: sshd") && text.contains("m1"),
        "{text}"
    );
    // Nothing was made: no network, no container, and the probe is gone.
    assert!(docker
        .inspect_network(&env.network_name(), None)
        .await
        .is_err());
    assert!(states(&provider, &env).await.is_empty());
    let probes = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&std::collections::HashMap::from([(
                    "label",
                    vec!["envctl.probe".to_string()],
                )]))
                .build(),
        ))
        .await
        .expect("list");
    assert!(probes.is_empty(), "probe containers left: {probes:?}");
}
