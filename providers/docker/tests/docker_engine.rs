//! The Docker provider against a real Docker engine.
//!
//! These tests need the engine: when it does not answer they fail with a message that says
//! to run scripts/ensure-docker; they never skip. They need the local image debian:bookworm
//! (made by images/docker-base/build, which they run when it is missing) and a Debian mirror
//! for the first build of the test image.
//!
//! Each test uses its own environment name and a /27 of 10.213.40.0/24, removes what an
//! earlier run of it left behind when it starts, and again when it ends, pass or fail.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use envctl_docker::{image_tag, labels, DockerProvider};
use envctl_provider::{
    Access, BoxImage, BuildRecipe, ImageSource, MachineSpec, MachineState, Phase, Provider,
    ProviderError, Silent,
};

use common::*;

#[tokio::test]
async fn docker_connect_negotiates_api_version() {
    let provider = provider().await;
    let server = server_api_version().await;
    // The newest version both sides know: the engine's, unless bollard's is older.
    let expected =
        if version_tuple(&server) < version_tuple(&bollard::API_DEFAULT_VERSION.to_string()) {
            server
        } else {
            bollard::API_DEFAULT_VERSION.to_string()
        };
    assert_eq!(provider.api_version(), expected);
    // A versioned call works: bollard's own default would be refused by an older engine.
    let env = env("envctl-t-connect", "10.213.40.224/28");
    assert_eq!(
        provider
            .status(&env)
            .await
            .expect("status of an empty environment"),
        vec![]
    );
}

#[tokio::test]
async fn docker_preflight_checks_subnet_and_images() {
    let name = "envctl-t-preflight";
    let Rig {
        provider,
        docker,
        cleanup: _cleanup,
    } = rig(name).await;

    // Someone else's network in the middle of the subnet the environment wants.
    let blocker = format!("{name}-blocker");
    docker
        .create_network(NetworkCreateRequest {
            name: blocker.clone(),
            driver: Some("bridge".to_string()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some("10.213.40.48/28".to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(HashMap::from([(labels::ENV.to_string(), name.to_string())])),
            ..Default::default()
        })
        .await
        .expect("create the blocking network");

    let named = ImageSource::DockerImage(BASE_IMAGE.to_string());
    let crowded = env(name, "10.213.40.32/27");
    let machines = [machine(&crowded, "m1", 10, named.clone())];
    match provider.preflight(&crowded, &machines).await {
        Err(ProviderError::SubnetConflict { subnet, other }) => {
            assert_eq!(subnet, crowded.network.subnet);
            assert!(
                other.contains(&blocker),
                "the conflict names `{other}`, not {blocker}"
            );
        }
        other => panic!("preflight let an overlapping subnet through: {other:?}"),
    }

    let free = env(name, "10.213.40.64/28");
    let machines = [machine(&free, "m1", 10, named)];
    provider
        .preflight(&free, &machines)
        .await
        .expect("preflight of a free subnet");

    let missing = [machine(
        &free,
        "m1",
        10,
        ImageSource::DockerImage("envctl-no-such-image:1".into()),
    )];
    match provider.preflight(&free, &missing).await {
        Err(ProviderError::Image { image, reason }) => {
            assert_eq!(image, "envctl-no-such-image:1");
            assert!(reason.contains("cannot be pulled"), "{reason}");
        }
        other => panic!("preflight accepted a missing image: {other:?}"),
    }

    let boxed = ImageSource::Box(BoxImage {
        name: "debian/bookworm64".to_string(),
        version: "12".to_string(),
        dir: PathBuf::from("/nonexistent"),
    });
    let boxed = [machine(&free, "m1", 10, boxed)];
    assert!(matches!(
        provider.preflight(&free, &boxed).await,
        Err(ProviderError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn docker_prepare_builds_once_and_makes_the_network() {
    let provider = provider().await;
    let docker = raw(&provider);
    let name = "envctl-t-prepare";
    let recipe_name = "t-prepare-nonce";
    let _cleanup = Cleanup::new(&docker, name, &[], &[recipe_name]).await;
    ensure_base_image(&docker).await;

    // A recipe no earlier run has built, on top of the shared test image.
    let base = test_recipe();
    let nonce = BuildRecipe {
        name: recipe_name.to_string(),
        files: vec![
            (
                "Dockerfile".to_string(),
                format!("FROM {}\nCOPY nonce /etc/envctl-nonce\n", image_tag(&base)).into_bytes(),
            ),
            ("nonce".to_string(), unique().into_bytes()),
        ],
    };
    let env = env(name, "10.213.40.96/27");
    let machines = [
        machine(&env, "base", 10, ImageSource::DockerBuild(base)),
        machine(&env, "m1", 11, ImageSource::DockerBuild(nonce.clone())),
        machine(&env, "m2", 12, ImageSource::DockerBuild(nonce.clone())),
    ];
    let tag = image_tag(&nonce);

    let first = Recorder::default();
    {
        let _turn = BUILD_LOCK.lock().await;
        provider
            .prepare(&env, &machines, &first)
            .await
            .expect("first prepare");
    }
    assert!(first.saw("m1", Phase::BuildingImage) && first.saw("m2", Phase::BuildingImage));
    assert!(
        first.saw("base", Phase::CreatingNetwork),
        "{:?}",
        first.phases()
    );
    let built = docker
        .inspect_image(&tag)
        .await
        .expect("the recipe's image exists");
    let image_labels = built
        .config
        .and_then(|config| config.labels)
        .unwrap_or_default();
    assert_eq!(
        image_labels.get(labels::RECIPE).map(String::as_str),
        Some(recipe_name)
    );

    let second = Recorder::default();
    provider
        .prepare(&env, &machines, &second)
        .await
        .expect("second prepare");
    assert_eq!(second.phases(), vec![], "the second prepare did something");
    let again = docker
        .inspect_image(&tag)
        .await
        .expect("the image is still there");
    assert_eq!(again.id, built.id, "the second prepare rebuilt the image");

    let network = docker
        .inspect_network(&env.network_name(), None)
        .await
        .expect("prepare made the network");
    let net_labels = network.labels.unwrap_or_default();
    assert_eq!(net_labels[labels::ENV], env.name);
    assert_eq!(net_labels[labels::ENV_ID], env.id);
    assert_eq!(
        net_labels[labels::PROJECT],
        env.project_dir.display().to_string()
    );
    assert_eq!(network.driver.as_deref(), Some("bridge"));
    assert_eq!(network.internal, Some(false));
    let pools = network
        .ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default();
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].subnet.as_deref(), Some("10.213.40.96/27"));
    assert_eq!(pools[0].gateway.as_deref(), Some("10.213.40.97"));

    // The environment's own network does not conflict with its own subnet.
    provider
        .preflight(&env, &machines)
        .await
        .expect("preflight with our own network");

    // Another environment of the same name (another id) is refused, naming the network.
    let mut impostor = env.clone();
    impostor.who.id = format!("{}-other", env.id);
    let err = provider
        .preflight(&impostor, &machines)
        .await
        .expect_err("another id");
    assert!(err.to_string().contains(&env.network_name()), "{err}");
    assert!(provider
        .prepare(&impostor, &machines, &Recorder::default())
        .await
        .is_err());

    // Our network with other addresses than the Machinefile now wants.
    let mut moved = env.clone();
    moved.network = network_spec("10.213.40.240/28");
    let err = provider
        .preflight(&moved, &[])
        .await
        .expect_err("moved subnet");
    let text = format!("{err}: {}", source_text(&err));
    assert!(
        text.contains("has subnet 10.213.40.96/27") && text.contains("envctl destroy"),
        "{text}"
    );

    provider.teardown(&env).await.expect("teardown");
    assert!(docker
        .inspect_network(&env.network_name(), None)
        .await
        .is_err());
}

#[tokio::test]
async fn docker_build_failure_shows_the_output() {
    let provider = provider().await;
    let docker = raw(&provider);
    let name = "envctl-t-buildfail";
    let recipe_name = "t-build-fail";
    let _cleanup = Cleanup::new(&docker, name, &[], &[recipe_name]).await;
    ensure_base_image(&docker).await;

    let recipe = BuildRecipe {
        name: recipe_name.to_string(),
        files: vec![(
            "Dockerfile".to_string(),
            format!(
                "FROM {BASE_IMAGE}\n# {}\nRUN echo envctl-marker-line && exit 3\n",
                unique()
            )
            .into_bytes(),
        )],
    };
    let env = env(name, "10.213.40.192/28");
    let machines = [machine(
        &env,
        "m1",
        10,
        ImageSource::DockerBuild(recipe.clone()),
    )];
    match provider
        .prepare(&env, &machines, &Recorder::default())
        .await
    {
        Err(ProviderError::Image { image, reason }) => {
            assert_eq!(image, image_tag(&recipe));
            assert!(reason.contains("envctl-marker-line"), "{reason}");
            assert!(reason.contains("non-zero code: 3"), "{reason}");
        }
        other => panic!("a failing build was not an image error: {other:?}"),
    }
    assert!(docker.inspect_image(&image_tag(&recipe)).await.is_err());
    assert!(docker
        .inspect_network(&env.network_name(), None)
        .await
        .is_err());
}

#[tokio::test]
async fn docker_machine_lifecycle() {
    let name = "envctl-t-lifecycle";
    let Rig {
        provider,
        docker,
        cleanup: _cleanup,
    } = rig(name).await;

    let env = env(name, "10.213.40.0/27");
    let image = ImageSource::DockerBuild(test_recipe());
    let m1 = machine(&env, "m1", 10, image.clone());
    let m2 = machine(&env, "m2", 11, image);
    let machines = [m1.clone(), m2.clone()];
    provider
        .preflight(&env, &machines)
        .await
        .expect("preflight");
    {
        let _turn = BUILD_LOCK.lock().await;
        provider
            .prepare(&env, &machines, &Recorder::default())
            .await
            .expect("prepare");
    }

    let report = Recorder::default();
    let up1 = provider.up(&env, &m1, &report).await.expect("up m1");
    assert!(up1.changed);
    assert_eq!(up1.access, Access::Ready);
    assert_eq!(
        up1.guest_address, None,
        "docker hands out the address itself"
    );
    assert_eq!(
        (up1.endpoint.host.as_str(), up1.endpoint.port),
        ("10.213.40.10", 22)
    );
    assert_eq!(
        report.phases(),
        vec![
            ("m1".into(), Phase::Creating),
            ("m1".into(), Phase::Starting)
        ]
    );
    provider
        .up(&env, &m2, &Recorder::default())
        .await
        .expect("up m2");

    // What the engine made.
    let container = docker
        .inspect_container(&env.resource_name("m1"), None)
        .await
        .expect("inspect m1");
    assert_eq!(container.id.as_deref(), Some(up1.id.as_str()));
    assert!(
        !format!("{container:?}").contains("PRIVATE KEY"),
        "key material in the container spec"
    );
    let config = container.config.expect("config");
    assert_eq!(config.hostname.as_deref(), Some("m1"));
    assert_eq!(config.domainname.as_deref(), Some(&*format!("{name}.test")));
    let container_labels = config.labels.unwrap_or_default();
    assert_eq!(container_labels[labels::MACHINE], "m1");
    assert_eq!(container_labels[labels::ENV_ID], env.id);
    assert_eq!(container_labels[labels::ENV], env.name);
    assert_eq!(
        container_labels[labels::PROJECT],
        env.project_dir.display().to_string()
    );
    let host = container.host_config.expect("host config");
    assert_eq!(host.privileged, Some(false));
    assert_eq!(host.memory, Some(256 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert!(host.binds.unwrap_or_default().is_empty());
    assert!(host.port_bindings.unwrap_or_default().is_empty());
    assert!(container.mounts.unwrap_or_default().is_empty());
    let networks = container
        .network_settings
        .and_then(|s| s.networks)
        .unwrap_or_default();
    assert_eq!(
        networks.keys().collect::<Vec<_>>(),
        vec![&env.network_name()]
    );
    let endpoint = &networks[&env.network_name()];
    assert_eq!(endpoint.ip_address.as_deref(), Some("10.213.40.10"));
    let aliases = endpoint.aliases.clone().unwrap_or_default();
    for alias in &m1.aliases {
        assert!(
            aliases.contains(alias),
            "alias {alias} missing from {aliases:?}"
        );
    }

    // The keys, as sshd sees them.
    let key = download(
        &docker,
        &env.resource_name("m1"),
        "/etc/ssh/ssh_host_ed25519_key",
    )
    .await;
    assert_eq!(key[0].0, "ssh_host_ed25519_key");
    assert_eq!((key[0].1, key[0].2), (0o600, 0), "host key mode and owner");
    assert_eq!(key[0].3, HOST_KEY);
    let public = download(
        &docker,
        &env.resource_name("m1"),
        "/etc/ssh/ssh_host_ed25519_key.pub",
    )
    .await;
    assert_eq!(public[0].3, format!("{HOST_KEY_PUB}\n"));
    let authorized = download(
        &docker,
        &env.resource_name("m1"),
        &format!("/etc/ssh/authorized_keys/{USER}"),
    )
    .await;
    assert_eq!((authorized[0].1, authorized[0].2), (0o644, 0));
    assert_eq!(authorized[0].3, format!("{USER_KEY_PUB}\n"));
    let etc_ssh = download(&docker, &env.resource_name("m1"), "/etc/ssh").await;
    let dir = etc_ssh
        .iter()
        .find(|entry| entry.0 == "ssh/")
        .expect("/etc/ssh itself");
    assert_eq!(
        (dir.1, dir.2),
        (0o755, 0),
        "the image's /etc/ssh was changed"
    );
    let keys_dir = etc_ssh
        .iter()
        .find(|e| e.0 == "ssh/authorized_keys/")
        .expect("keys dir");
    assert_eq!((keys_dir.1, keys_dir.2), (0o755, 0));

    // sshd answers with the key envctl gave it, and the names resolve.
    let output = ssh(&env, &m1, "hostname -f && getent hosts m2").await;
    let mut lines = output.lines();
    assert_eq!(
        lines.next(),
        Some(&*m1.hostname),
        "hostname -f printed {output}"
    );
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("10.213.40.11 "),
        "m2 resolves: {output}"
    );

    // Idempotent up.
    let report = Recorder::default();
    let again = provider.up(&env, &m1, &report).await.expect("second up");
    assert!(!again.changed);
    assert_eq!(again.id, up1.id);
    assert_eq!(report.phases(), vec![("m1".into(), Phase::AlreadyRunning)]);

    // Halt, status, up again.
    provider.halt(&env, "m1").await.expect("halt m1");
    provider
        .halt(&env, "m1")
        .await
        .expect("halt a stopped machine");
    assert_eq!(
        states(&provider, &env).await,
        vec![
            ("m1".into(), MachineState::Stopped),
            ("m2".into(), MachineState::Running)
        ]
    );
    let report = Recorder::default();
    let restarted = provider
        .up(&env, &m1, &report)
        .await
        .expect("up after halt");
    assert!(restarted.changed);
    assert_eq!(restarted.id, up1.id, "up after halt made a new container");
    assert_eq!(report.phases(), vec![("m1".into(), Phase::Starting)]);
    assert_eq!(
        states(&provider, &env).await,
        vec![
            ("m1".into(), MachineState::Running),
            ("m2".into(), MachineState::Running)
        ]
    );
    ssh(&env, &m1, "true").await;

    let log = provider
        .log_tail(&env, "m1", 20)
        .await
        .expect("m1 has logs");
    assert!(log.contains("Server listening"), "sshd log: {log}");
    assert!(!log.contains("PRIVATE KEY"));
    assert_eq!(provider.log_tail(&env, "nobody", 20).await, None);

    // Destroy and teardown leave nothing behind; doing it twice is fine.
    for machine in ["m1", "m2", "m1"] {
        provider.destroy(&env, machine).await.expect("destroy");
    }
    provider
        .halt(&env, "m1")
        .await
        .expect("halt a destroyed machine");
    provider.teardown(&env).await.expect("teardown");
    provider.teardown(&env).await.expect("second teardown");
    assert_eq!(provider.status(&env).await.expect("status"), vec![]);
    let by_id = HashMap::from([("label", vec![format!("{}={}", labels::ENV_ID, env.id)])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&by_id)
                .build(),
        ))
        .await
        .expect("list containers");
    assert!(containers.is_empty(), "containers left: {containers:?}");
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&by_id).build(),
        ))
        .await
        .expect("list networks");
    assert!(networks.is_empty(), "networks left: {networks:?}");
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::new().filters(&by_id).build(),
        ))
        .await
        .expect("list volumes");
    assert!(
        volumes.volumes.unwrap_or_default().is_empty(),
        "volumes left"
    );
}

#[tokio::test]
async fn docker_foreign_containers_are_left_alone() {
    let provider = provider().await;
    let docker = raw(&provider);
    let name = "envctl-t-foreign";
    let env = env(name, "10.213.40.128/27");
    let squatter = env.resource_name("m1");
    let stray = format!("{name}-stray");
    let _cleanup = Cleanup::new(&docker, name, &[&squatter, &stray], &[]).await;
    ensure_base_image(&docker).await;

    let image = ImageSource::DockerImage(BASE_IMAGE.to_string());
    let m1 = machine(&env, "m1", 10, image.clone());
    let m2 = machine(&env, "m2", 11, image);

    // A container with the machine's name that envctl did not make.
    create_plain(&docker, &squatter, HashMap::new(), None).await;
    let err = provider
        .up(&env, &m1, &Recorder::default())
        .await
        .expect_err("up over a squatter");
    let text = format!("{err}: {}", source_text(&err));
    assert!(
        text.contains(&squatter) && text.contains("was not made by envctl"),
        "{text}"
    );
    assert!(
        provider.destroy(&env, "m1").await.is_err(),
        "destroy removed a foreign container"
    );
    assert!(provider.halt(&env, "m1").await.is_err());
    docker
        .inspect_container(&squatter, None)
        .await
        .expect("the squatter is untouched");
    remove_container(&docker, &squatter).await;

    // One made by another environment of the same name.
    let theirs = HashMap::from([
        (labels::ENV.to_string(), name.to_string()),
        (labels::ENV_ID.to_string(), "someone-else".to_string()),
        (labels::PROJECT.to_string(), "/elsewhere".to_string()),
    ]);
    create_plain(&docker, &squatter, theirs, None).await;
    let err = provider
        .up(&env, &m1, &Recorder::default())
        .await
        .expect_err("up over theirs");
    let text = format!("{err}: {}", source_text(&err));
    assert!(
        text.contains("id someone-else") && text.contains("/elsewhere"),
        "{text}"
    );
    remove_container(&docker, &squatter).await;

    // A container on our network holding a machine's address.
    provider
        .prepare(&env, &[m1.clone(), m2.clone()], &Recorder::default())
        .await
        .expect("prepare");
    let stray_labels = HashMap::from([(labels::ENV.to_string(), name.to_string())]);
    create_plain(
        &docker,
        &stray,
        stray_labels,
        Some((&env.network_name(), m2.ip)),
    )
    .await;
    // Docker gives a container its address when it starts.
    docker
        .start_container(&stray, None)
        .await
        .expect("start the stray container");
    match provider.preflight(&env, &[m1, m2.clone()]).await {
        Err(ProviderError::AddressInUse { ip, holder }) => {
            assert_eq!(ip, m2.ip);
            assert!(holder.contains(&stray), "{holder}");
        }
        other => panic!("preflight missed a taken address: {other:?}"),
    }
    remove_container(&docker, &stray).await;
    provider.teardown(&env).await.expect("teardown");
}

#[tokio::test]
async fn docker_status_of_ten_machines_is_fast() {
    let name = "envctl-t-status";
    let Rig {
        provider,
        docker: _,
        cleanup: _cleanup,
    } = rig(name).await;

    let env = env(name, "10.213.40.160/27");
    let image = ImageSource::DockerBuild(test_recipe());
    let machines: Vec<MachineSpec> = (0..10)
        .map(|n| machine(&env, &format!("m{n:02}"), 10 + n, image.clone()))
        .collect();
    {
        let _turn = BUILD_LOCK.lock().await;
        provider
            .prepare(&env, &machines, &Recorder::default())
            .await
            .expect("prepare");
    }
    let ups = machines
        .iter()
        .map(|machine| provider.up(&env, machine, &Silent));
    for up in futures_util::future::join_all(ups).await {
        up.expect("up");
    }

    // What `envctl status` does: connect, then one call.
    let started = Instant::now();
    let fresh = DockerProvider::connect().await.expect("connect");
    let statuses = fresh.status(&env).await.expect("status");
    let took = started.elapsed();
    eprintln!("connect + status of 10 machines took {took:?}");
    assert!(
        took < Duration::from_millis(150),
        "connect + status took {took:?}"
    );
    let names: Vec<&str> = statuses.iter().map(|status| status.name.as_str()).collect();
    let expected: Vec<String> = (0..10).map(|n| format!("m{n:02}")).collect();
    assert_eq!(names, expected);
    assert!(
        statuses
            .iter()
            .all(|status| status.state == MachineState::Running),
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|status| status.id.len() == 64));

    for machine in &machines {
        provider
            .destroy(&env, &machine.name)
            .await
            .expect("destroy");
    }
    provider.teardown(&env).await.expect("teardown");
}
