//! The checks before anything is made (allowed ranges, conflicts, a missing VBoxManage), the
//! state mapping of `status`, and the paths the golden transcripts do not take.

mod support;

use std::path::PathBuf;

use envctl_provider::{MachineState, Provider, ProviderError, Silent};
use envctl_virtualbox::{HostOnlyKind, VirtualboxOptions, VirtualboxProvider};
use serde_json::json;
use support::{bind, example, example_in, Fake, Phases, ENV_ID, FAKE, V6, V7};

#[tokio::test]
async fn virtualbox_missing_vboxmanage_is_unavailable() {
    let fake = Fake::new("missing", V7);
    let empty = fake.root.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let opts = VirtualboxOptions {
        search_path: Some(empty.into_os_string()),
        ..VirtualboxOptions::default()
    };
    let err = VirtualboxProvider::new(opts)
        .await
        .err()
        .expect("no VBoxManage there");
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("install VirtualBox"), "{err}");

    let opts = VirtualboxOptions {
        vboxmanage: Some(fake.root.join("nowhere/VBoxManage")),
        ..VirtualboxOptions::default()
    };
    let err = VirtualboxProvider::new(opts)
        .await
        .err()
        .expect("no such file");
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    fake.cleanup();
}

#[cfg(unix)]
#[tokio::test]
async fn virtualbox_finds_vboxmanage_on_the_path_and_reads_its_version() {
    let fake = Fake::new("which", V6);
    let bin = fake.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(FAKE, bin.join("VBoxManage")).unwrap();
    let opts = VirtualboxOptions {
        search_path: Some(bin.clone().into_os_string()),
        env: fake.env.clone(),
        ..VirtualboxOptions::default()
    };
    let provider = VirtualboxProvider::new(opts)
        .await
        .expect("found on the path");
    assert_eq!(provider.version().to_string(), "6.1.50");
    assert_eq!(provider.vboxmanage(), bin.join("VBoxManage"));
    assert_eq!(provider.host_only_kind(), HostOnlyKind::Interface);

    let opts = fake.options(HostOnlyKind::Network);
    let err = VirtualboxProvider::new(opts)
        .await
        .err()
        .expect("6.x has no host-only networks");
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_default_range_allows_192_168_56_0_24() {
    let fake = Fake::new("range-ok", V7);
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider
        .preflight(&env, &machines)
        .await
        .expect("inside 192.168.56.0/21");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_default_range_refuses_10_0_0_0_24_before_any_change() {
    let fake = Fake::new("range-refused", V7);
    let (env, machines) = example_in(&fake, "10.0.0.0/24", [10, 0, 0]);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider.preflight(&env, &machines).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    let text = err.to_string();
    let conf = fake.root.join("networks.conf").display().to_string();
    assert!(text.contains("subnet 10.0.0.0/24"), "{text}");
    assert!(text.contains(&format!("create {conf}")), "{text}");
    assert!(text.contains("`* 192.168.56.0/21 10.0.0.0/24`"), "{text}");
    assert_eq!(
        fake.transcript(),
        "VBoxManage --version\n",
        "nothing is asked of VirtualBox"
    );
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_networks_conf_allows_what_it_lists() {
    let fake = Fake::new("range-conf", V6);
    let conf = fake.root.join("networks.conf");
    std::fs::write(
        &conf,
        "# envctl test\n* 10.0.0.0/8 192.168.0.0/16\n* 2001::/64\n",
    )
    .unwrap();
    let fake = fake.with("FAKE_VBOX_NETWORKS_CONF", &conf.display().to_string());
    let (env, machines) = example_in(&fake, "10.0.0.0/24", [10, 0, 0]);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider
        .preflight(&env, &machines)
        .await
        .expect("listed in networks.conf");
    provider
        .prepare(&env, &machines, &Silent)
        .await
        .expect("VirtualBox takes it too");
    assert_eq!(fake.state()["hostonlyifs"][0]["ip"], "10.0.0.1");

    // The file replaces the default: 172.16.0.0/24 is listed nowhere.
    let (env, machines) = example_in(&fake, "172.16.0.0/24", [172, 16, 0]);
    let err = provider.preflight(&env, &machines).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "add the line `* 172.16.0.0/24` to {}",
            conf.display()
        )),
        "{text}"
    );
    assert!(text.contains("(10.0.0.0/8, 192.168.0.0/16)"), "{text}");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_existing_interface_for_the_subnet_is_reused_and_kept() {
    let fake = Fake::new("reuse", V7);
    fake.seed(json!({
        "hostonlyifs": [{"name": "vboxnet0", "ip": "192.168.56.1", "mask": "255.255.255.0"}],
        "dhcpservers": [{"network": "HostInterfaceNetworking-vboxnet0", "server_ip": "192.168.56.100",
                         "mask": "255.255.255.0", "lower": "192.168.56.101", "upper": "192.168.56.254",
                         "enabled": true}],
    }));
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.preflight(&env, &machines).await.unwrap();
    provider.prepare(&env, &machines, &Silent).await.unwrap();
    provider.up(&env, &machines[0], &Silent).await.unwrap();
    let transcript = fake.transcript();
    assert!(!transcript.contains("hostonlyif create"), "{transcript}");
    assert!(!transcript.contains("dhcpserver add"), "{transcript}");
    assert_eq!(
        fake.state()["dhcpservers"][0]["fixed"],
        json!({"08:00:27:a8:38:0b": "192.168.56.11"})
    );

    provider.destroy(&env, "web1").await.unwrap();
    provider.teardown(&env).await.unwrap();
    let state = fake.state();
    assert_eq!(
        state["hostonlyifs"][0]["name"], "vboxnet0",
        "not envctl's, so not removed"
    );
    assert_eq!(state["dhcpservers"][0]["server_ip"], "192.168.56.100");
    assert_eq!(state["dhcpservers"][0]["fixed"], json!({}));
    assert_eq!(state["vms"], json!([]));
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_overlapping_or_foreign_networks_are_conflicts() {
    let fake = Fake::new("conflict", V7);
    fake.seed(json!({"hostonlyifs": [{"name": "vboxnet3", "ip": "192.168.56.1", "mask": "255.255.254.0"}]}));
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider.preflight(&env, &machines).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "subnet 192.168.56.0/24 overlaps host-only interface `vboxnet3` (192.168.56.1/23)"
    );

    fake.seed(json!({
        "hostonlyifs": [{"name": "vboxnet0", "ip": "192.168.56.1", "mask": "255.255.255.0"}],
        "global_extradata": {"envctl/hostonly/vboxnet0": "another-id"},
    }));
    let err = provider.preflight(&env, &machines).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::SubnetConflict { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("made by another envctl environment (id another-id)"),
        "{err}"
    );
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_vm_of_the_same_name_is_never_touched() {
    let fake = Fake::new("foreign-vm", V7);
    fake.seed(json!({"vms": [{"name": "example-web2", "uuid": "u-1", "registered": true, "state": "running",
                              "extradata": {"envctl/env-id": "another-id", "envctl/env": "example"}}]}));
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider.preflight(&env, &machines).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("checking that VM `example-web2` is free"),
        "{err}"
    );
    let source = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        source.contains("belongs to envctl environment `example` (id another-id)"),
        "{source}"
    );

    provider
        .halt(&env, "web2")
        .await
        .expect("not ours: nothing to do");
    provider
        .destroy(&env, "web2")
        .await
        .expect("not ours: nothing to do");
    assert_eq!(fake.vm("example-web2").unwrap()["state"], "running");
    assert!(provider.status(&env).await.unwrap().is_empty());
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_status_maps_states_and_lists_only_this_environment() {
    let fake = Fake::new("status", V7);
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.preflight(&env, &machines).await.unwrap();
    provider.prepare(&env, &machines, &Silent).await.unwrap();
    let ups = futures_join(&provider, &env, &machines).await;
    assert!(ups.iter().all(Result::is_ok), "{ups:?}");

    provider.halt(&env, "web2").await.unwrap();
    assert!(fake
        .vboxmanage(&["controlvm", "example-db1", "pause"])
        .status
        .success());
    // A VM of another environment with a name of this one's prefix.
    let seeded = fake.state();
    let mut state = seeded.clone();
    state["vms"].as_array_mut().unwrap().push(json!({
        "name": "example-web3", "uuid": "u-9", "registered": true, "state": "running",
        "extradata": {"envctl/env-id": "someone-else", "envctl/machine": "web3"}}));
    fake.seed(state);

    let statuses = provider.status(&env).await.unwrap();
    let seen: Vec<(&str, &MachineState)> = statuses
        .iter()
        .map(|s| (s.name.as_str(), &s.state))
        .collect();
    assert_eq!(
        seen,
        [
            ("db1", &MachineState::Other("paused".to_string())),
            ("web1", &MachineState::Running),
            ("web2", &MachineState::Stopped),
        ]
    );
    assert_eq!(
        statuses[1].id,
        fake.vm("example-web1").unwrap()["uuid"].as_str().unwrap()
    );
    fake.cleanup();
}

async fn futures_join(
    provider: &VirtualboxProvider,
    env: &envctl_provider::EnvironmentSpec,
    machines: &[envctl_provider::MachineSpec],
) -> Vec<Result<envctl_provider::MachineUp, ProviderError>> {
    // The three `up`s run at once, as envctl runs them.
    let (a, b, c) = tokio::join!(
        provider.up(env, &machines[0], &Silent),
        provider.up(env, &machines[1], &Silent),
        provider.up(env, &machines[2], &Silent),
    );
    vec![a, b, c]
}

#[tokio::test]
async fn virtualbox_halt_powers_off_a_guest_that_ignores_acpi() {
    let fake = Fake::new("acpi", V7).with("FAKE_VBOX_ACPI", "ignore");
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.prepare(&env, &machines, &Silent).await.unwrap();
    provider.up(&env, &machines[0], &Silent).await.unwrap();
    provider.halt(&env, "web1").await.unwrap();
    assert_eq!(fake.vm("example-web1").unwrap()["state"], "poweroff");
    let transcript = fake.transcript();
    let tail: Vec<&str> = transcript.lines().rev().take(2).collect();
    assert_eq!(tail[0], "VBoxManage controlvm example-web1 poweroff");
    assert_eq!(
        tail[1],
        "VBoxManage showvminfo example-web1 --machinereadable"
    );
    assert!(transcript.contains("controlvm example-web1 acpipowerbutton"));

    provider
        .halt(&env, "web1")
        .await
        .expect("a stopped machine is not an error");
    provider
        .halt(&env, "web9")
        .await
        .expect("a missing machine is not an error");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_up_after_halt_reconfigures_and_destroy_powers_off() {
    let fake = Fake::new("restart", V6);
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.prepare(&env, &machines, &Silent).await.unwrap();
    let first = provider.up(&env, &machines[1], &Silent).await.unwrap();
    provider.halt(&env, "web2").await.unwrap();

    let phases = Phases::default();
    let second = provider.up(&env, &machines[1], &phases).await.unwrap();
    assert!(second.changed);
    let vm = fake.vm("example-web2").unwrap();
    assert_eq!(vm["state"], "running");
    assert_eq!(
        vm["nics"][0]["rules"],
        json!([format!(
            "envctl-ssh,tcp,127.0.0.1,{},,22",
            second.endpoint.port
        )])
    );
    let transcript = fake.transcript();
    assert!(
        transcript
            .contains("--natpf1 delete envctl-ssh --natpf1 envctl-ssh,tcp,127.0.0.1,$PORT,,22"),
        "{transcript}"
    );
    assert_eq!(
        transcript.matches("dhcpserver modify --interface vboxnet0 --mac-address 08:00:27:a8:38:0c --fixed-address").count(),
        1,
        "the fixed address is recorded on the VM and not added twice"
    );
    assert_eq!(first.guest_address, second.guest_address);

    provider.destroy(&env, "web2").await.unwrap();
    assert!(fake
        .transcript()
        .contains("VBoxManage controlvm example-web2 poweroff\n"));
    assert!(fake.vm("example-web2").is_none());
    provider
        .destroy(&env, "web2")
        .await
        .expect("a missing machine is not an error");
    fake.cleanup();
}

/// A paused or saved VM is running again before it gets the shares it lacks, as transient
/// shares; a saved VM comes back with those it had, so they are read anew and not added
/// twice.
#[tokio::test]
async fn virtualbox_paused_or_saved_vm_gets_missing_shares_once_it_runs() {
    let fake = Fake::new("shares-paused-saved", V7);
    let (env, mut machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.prepare(&env, &machines, &Silent).await.unwrap();
    machines[0].binds = vec![bind(&fake, "envctl0", "a")];
    provider.up(&env, &machines[0], &Silent).await.unwrap();
    let control = |action: &str| {
        let out = fake.vboxmanage(&["controlvm", "example-web1", action]);
        assert!(out.status.success(), "{out:?}");
    };
    let transient = || fake.shares("example-web1", "transient_folders");
    let tail = |from: usize| -> Vec<String> {
        let transcript = fake.transcript();
        transcript.lines().skip(from).map(String::from).collect()
    };
    let add = |tag: &str, dir: &str| {
        format!(
            "VBoxManage sharedfolder add example-web1 --name {tag} --hostpath $TMP/shares/{dir} --transient"
        )
    };

    control("pause");
    machines[0].binds.push(bind(&fake, "envctl1", "b"));
    let from = fake.transcript().lines().count();
    provider.up(&env, &machines[0], &Silent).await.unwrap();
    let calls = tail(from);
    assert_eq!(calls.last(), Some(&add("envctl1", "b")), "{calls:?}");
    assert!(calls.contains(&"VBoxManage controlvm example-web1 resume".to_string()));
    assert_eq!(transient().len(), 1);

    control("savestate");
    machines[0].binds.push(bind(&fake, "envctl2", "c"));
    let from = fake.transcript().lines().count();
    provider.up(&env, &machines[0], &Silent).await.unwrap();
    let calls = tail(from);
    assert_eq!(
        calls[calls.len() - 3..],
        [
            "VBoxManage startvm example-web1 --type headless".to_string(),
            "VBoxManage showvminfo example-web1 --machinereadable".to_string(),
            add("envctl2", "c"),
        ],
        "only envctl2 is new: envctl1 came back with the saved state"
    );
    assert_eq!(fake.vm("example-web1").unwrap()["state"], "running");
    assert_eq!(
        transient(),
        [
            ("envctl1".to_string(), "$TMP/shares/b".to_string()),
            ("envctl2".to_string(), "$TMP/shares/c".to_string()),
        ]
    );
    provider.destroy(&env, "web1").await.unwrap();
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_teardown_refuses_while_a_machine_is_left() {
    let fake = Fake::new("teardown-early", V7);
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.prepare(&env, &machines, &Silent).await.unwrap();
    provider.up(&env, &machines[0], &Silent).await.unwrap();
    let err = provider.teardown(&env).await.unwrap_err();
    assert!(
        err.to_string().contains("deleting base VM `example--box-"),
        "{err}"
    );
    assert_eq!(fake.vm("example-web1").unwrap()["state"], "running");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_box_for_another_provider_is_refused() {
    let fake = Fake::new("wrong-box", V7);
    std::fs::write(
        fake.root.join("box/metadata.json"),
        r#"{"provider":"libvirt"}"#,
    )
    .unwrap();
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider.preflight(&env, &machines).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "image debian/bookworm64 12.20240503.1: is a box for libvirt, not virtualbox"
    );
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_log_tail_reads_the_serial_console() {
    let fake = Fake::new("log-tail", V7);
    let (env, _) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    assert_eq!(provider.log_tail(&env, "web1", 2).await, None);
    let console: PathBuf = env.console_dir.join("web1.log");
    std::fs::create_dir_all(&env.console_dir).unwrap();
    std::fs::write(&console, "booting\nsshd starting\nlogin:\n").unwrap();
    assert_eq!(
        provider.log_tail(&env, "web1", 2).await.as_deref(),
        Some("sshd starting\nlogin:")
    );
    assert_eq!(ENV_ID, env.id);
    fake.cleanup();
}
