//! A VBoxManage call that fails midway leaves nothing behind: not the machine's VM, not its
//! fixed DHCP address, not a half-made base VM or host-only interface. The stand-in is told
//! which call to fail with FAKE_VBOX_FAIL_ON (the Kth call of a subcommand) or
//! FAKE_VBOX_FAIL_CALL (the Nth call of all).

mod support;

use envctl_provider::{Provider, ProviderError};
use envctl_virtualbox::HostOnlyKind;
use support::{bind, example, Fake, Phases, V6, V7};

/// Preflight and prepare with a stand-in that does not fail.
async fn prepared(fake: &Fake, host_only: HostOnlyKind) {
    let (env, machines) = example(fake);
    let provider = fake.provider(host_only).await;
    provider
        .preflight(&env, &machines)
        .await
        .expect("preflight");
    provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .expect("prepare");
}

fn fixed_addresses(fake: &Fake) -> serde_json::Value {
    fake.state()["dhcpservers"][0]["fixed"].clone()
}

#[tokio::test]
async fn virtualbox_failed_startvm_removes_only_that_machine() {
    let mut fake = Fake::new("fail-startvm", V7);
    prepared(&fake, HostOnlyKind::Interface).await;
    fake.set("FAKE_VBOX_FAIL_ON", "startvm:2");
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .expect("web1 comes up");
    let err = provider
        .up(&env, &machines[1], &Phases::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Machine { machine, .. } if machine == "web2"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("setting up VM `example-web2`"),
        "{err}"
    );

    assert_eq!(
        fake.vm_names(),
        [
            "example--box-debian-bookworm64-12.20240503.1",
            "example-web1"
        ]
    );
    assert_eq!(
        fixed_addresses(&fake),
        serde_json::json!({"08:00:27:a8:38:0b": "192.168.56.11"})
    );
    let tail: Vec<String> = fake
        .transcript()
        .lines()
        .rev()
        .take(3)
        .map(String::from)
        .collect();
    assert_eq!(
        tail,
        [
            "VBoxManage unregistervm example-web2 --delete",
            "VBoxManage dhcpserver modify --interface vboxnet0 --mac-address 08:00:27:a8:38:0c --remove-config",
            "VBoxManage startvm example-web2 --type headless",
        ]
    );
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_failed_modifyvm_leaves_no_vm() {
    let mut fake = Fake::new("fail-modifyvm", V6);
    prepared(&fake, HostOnlyKind::Interface).await;
    fake.set("FAKE_VBOX_FAIL_ON", "modifyvm");
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider
        .up(&env, &machines[2], &Phases::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("example-db1"), "{err}");
    assert!(fake.vm("example-db1").is_none());
    assert_eq!(fixed_addresses(&fake), serde_json::json!({}));
    fake.cleanup();
}

/// Every call of a machine's `up` in turn fails; each time nothing of the machine is left,
/// and the next `up` without failures works.
#[tokio::test]
async fn virtualbox_failure_at_any_call_of_up_leaves_nothing() {
    for nth in 1.. {
        let mut fake = Fake::new(&format!("fail-call-{nth}"), V7);
        prepared(&fake, HostOnlyKind::Interface).await;
        // The new provider's `--version` is the next call; `up` starts after it.
        let first_of_up = fake.calls() + 2;
        fake.set("FAKE_VBOX_FAIL_CALL", &(first_of_up + nth - 1).to_string());
        let (env, mut machines) = example(&fake);
        // Its shared folders too: their calls are some of those that fail.
        machines[0].binds = vec![bind(&fake, "envctl0", "a"), bind(&fake, "envctl1", "b")];
        let provider = fake.provider(HostOnlyKind::Interface).await;
        let result = provider.up(&env, &machines[0], &Phases::default()).await;
        if result.is_ok() {
            assert!(nth > 8, "up of web1 makes more than {} calls", nth - 1);
            fake.cleanup();
            break;
        }
        assert!(
            fake.vm("example-web1").is_none(),
            "call {nth} failed: web1's VM is left"
        );
        assert_eq!(
            fixed_addresses(&fake),
            serde_json::json!({}),
            "call {nth} failed: web1's DHCP address is left"
        );

        fake.unset("FAKE_VBOX_FAIL_CALL");
        let provider = fake.provider(HostOnlyKind::Interface).await;
        provider
            .up(&env, &machines[0], &Phases::default())
            .await
            .expect("up again");
        assert_eq!(fake.vm("example-web1").unwrap()["state"], "running");
        fake.cleanup();
    }
}

/// The error and all its causes, as `{:#}` prints them.
fn chain(err: &ProviderError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A share that cannot be added fails `up` with VBoxManage's words and the machine named;
/// a new VM is deleted again, an existing one is kept, stopped, for the next `up`.
#[tokio::test]
async fn virtualbox_failed_sharedfolder_names_the_machine_and_the_call() {
    let mut fake = Fake::new("fail-sharedfolder", V7);
    prepared(&fake, HostOnlyKind::Interface).await;
    let (env, mut machines) = example(&fake);
    machines[0].binds = vec![bind(&fake, "envctl0", "a")];
    fake.set("FAKE_VBOX_FAIL_ON", "sharedfolder");
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(text.contains("setting up VM `example-web1`"), "{text}");
    assert!(
        text.contains("`VBoxManage sharedfolder add example-web1 --name envctl0"),
        "{text}"
    );
    assert!(fake.vm("example-web1").is_none());

    fake.unset("FAKE_VBOX_FAIL_ON");
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .expect("up again");
    provider.halt(&env, "web1").await.unwrap();
    // A folder gone from the host: VirtualBox refuses it, the VM stays off.
    machines[0].binds.push(bind(&fake, "envctl1", "b"));
    std::fs::remove_dir(fake.root.join("shares/b")).unwrap();
    let err = provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(
        matches!(&err, ProviderError::Machine { machine, .. } if machine == "web1"),
        "{err:?}"
    );
    assert!(text.contains("configuring VM `example-web1`"), "{text}");
    assert!(
        text.contains("RTPathQueryInfo failed on shared folder path"),
        "{text}"
    );
    assert_eq!(fake.vm("example-web1").unwrap()["state"], "poweroff");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_failed_snapshot_leaves_no_base_vm() {
    let fake = Fake::new("fail-snapshot", V7).with("FAKE_VBOX_FAIL_ON", "snapshot");
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.preflight(&env, &machines).await.unwrap();
    let err = provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("preparing base VM `example--box-"),
        "{err}"
    );
    assert_eq!(fake.vm_names(), Vec::<String>::new());
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_failed_ipconfig_removes_the_new_interface() {
    // `hostonlyif create` is the first hostonlyif call, `ipconfig` the second.
    let fake = Fake::new("fail-ipconfig", V6).with("FAKE_VBOX_FAIL_ON", "hostonlyif:2");
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("giving host-only interface `vboxnet0` the address 192.168.56.1"),
        "{err}"
    );
    let state = fake.state();
    assert_eq!(state["hostonlyifs"], serde_json::json!([]));
    assert_eq!(state["global_extradata"], serde_json::json!({}));
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_failed_dhcp_server_removes_the_new_interface() {
    let fake = Fake::new("fail-dhcp", V7).with("FAKE_VBOX_FAIL_ON", "dhcpserver");
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap_err();
    let state = fake.state();
    assert_eq!(state["hostonlyifs"], serde_json::json!([]));
    assert_eq!(state["dhcpservers"], serde_json::json!([]));
    assert_eq!(state["global_extradata"], serde_json::json!({}));
    assert_eq!(
        fake.vm_names(),
        Vec::<String>::new(),
        "no base VM is imported after a failure"
    );
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_failed_hostonlynet_record_removes_the_new_network() {
    // The first setextradata of prepare records the new network.
    let fake = Fake::new("fail-net-record", V7)
        .with("FAKE_VBOX_VMNET", "1")
        .with("FAKE_VBOX_FAIL_ON", "setextradata");
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Network).await;
    provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap_err();
    assert_eq!(fake.state()["hostonlynets"], serde_json::json!([]));
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_failed_cleanup_says_what_is_left() {
    let mut fake = Fake::new("fail-undo", V7);
    prepared(&fake, HostOnlyKind::Interface).await;
    // A new provider: --version, then up of web1 looks up the host-only interface (list
    // hostonlyifs, list dhcpservers), then getextradata, clonevm, setextradata ×4, showvminfo,
    // modifyvm, dhcpserver, setextradata, startvm (fails), dhcpserver and unregistervm (the
    // cleanup, which fails too).
    let unregister = fake.calls() + 1 + 15;
    fake.set("FAKE_VBOX_FAIL_ON", "startvm");
    fake.set("FAKE_VBOX_FAIL_CALL", &unregister.to_string());
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    let err = provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("setting up VM `example-web1` (deleting it again failed too, so it is left"),
        "{err}"
    );
    assert!(fake
        .transcript()
        .ends_with("VBoxManage unregistervm example-web1 --delete\n"));
    assert!(fake.vm("example-web1").is_some());
    fake.cleanup();
}
