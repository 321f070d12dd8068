//! The stand-in VBoxManage refuses what VBoxManage refuses, with its exit codes and its
//! `VBoxManage: error:` lines, so a test that passes against it is not passing on leniency.

mod support;

use support::{Fake, V6, V7};

/// Runs the stand-in and returns (exit code, stdout, stderr).
fn run(fake: &Fake, args: &[&str]) -> (i32, String, String) {
    let out = fake.vboxmanage(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_base(fake: &Fake) {
    let ovf = fake.root.join("box/box.ovf").display().to_string();
    assert_eq!(
        run(fake, &["import", &ovf, "--vsys", "0", "--vmname", "base"]).0,
        0
    );
    assert_eq!(run(fake, &["snapshot", "base", "take", "envctl-base"]).0, 0);
}

#[test]
fn virtualbox_fake_rejects_what_vboxmanage_rejects() {
    let fake = Fake::new("fake-rejects", V7);
    with_base(&fake);

    let (code, _, err) = run(&fake, &["modifyvm", "base", "--no-such-option", "1"]);
    assert_eq!(
        (code, err.trim()),
        (2, "VBoxManage: error: Unknown option: --no-such-option")
    );

    let (code, _, err) = run(&fake, &["showvminfo", "nope", "--machinereadable"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("VBoxManage: error: Could not find a registered machine named 'nope'\n"),
        "{err}"
    );
    assert!(err.contains("VBOX_E_OBJECT_NOT_FOUND"), "{err}");

    let (code, _, err) = run(
        &fake,
        &[
            "clonevm",
            "base",
            "--options",
            "link",
            "--name",
            "c",
            "--register",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("Linked clone can only be created from a snapshot"),
        "{err}"
    );

    let (code, _, err) = run(
        &fake,
        &[
            "clonevm",
            "base",
            "--snapshot",
            "nope",
            "--options",
            "link",
            "--register",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("Could not find a snapshot named 'nope'"),
        "{err}"
    );

    let ovf = fake.root.join("box/box.ovf").display().to_string();
    let (code, _, err) = run(&fake, &["import", &ovf, "--vmname", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("requires preceding --vsys argument"), "{err}");

    let (code, _, _) = run(
        &fake,
        &["modifyvm", "base", "--macaddress2", "08:00:27:a8:38:0b"],
    );
    assert_eq!(code, 1, "modifyvm wants 12 hex digits, no colons");
    let (code, _, _) = run(
        &fake,
        &["modifyvm", "base", "--macaddress2", "090027A8380B"],
    );
    assert_eq!(code, 1, "a multicast MAC is refused");
    let (code, _, _) = run(&fake, &["modifyvm", "base", "--nic9", "nat"]);
    assert_eq!(code, 2, "there are 8 NICs");
    let (code, _, err) = run(&fake, &["modifyvm", "base", "--natpf1", "delete", "nope"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = run(&fake, &["modifyvm", "base", "--nic2", "hostonlynet"]);
    assert_eq!(code, 1, "no host-only networks without vmnet");

    let (code, _, err) = run(&fake, &["hostonlynet", "add", "--name", "n"]);
    assert_eq!(
        (code, err.trim()),
        (2, "VBoxManage: error: Invalid command 'hostonlynet'")
    );
    let (code, _, _) = run(&fake, &["list", "hostonlynets"]);
    assert_eq!(code, 2);

    let (code, _, err) = run(
        &fake,
        &[
            "dhcpserver",
            "add",
            "--interface",
            "vboxnet7",
            "--server-ip",
            "1.2.3.4",
        ],
    );
    assert_eq!(code, 1, "no such interface: {err}");
    let (code, _, err) = run(
        &fake,
        &[
            "dhcpserver",
            "modify",
            "--network",
            "n",
            "--fixed-address",
            "1.2.3.4",
        ],
    );
    assert_eq!(code, 1, "no such server: {err}");

    let (code, _, _) = run(&fake, &["startvm", "base", "--type", "invisible"]);
    assert_eq!(code, 2);
    let (code, _, err) = run(&fake, &["controlvm", "base", "acpipowerbutton"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not currently running"), "{err}");
    let (code, _, _) = run(&fake, &["setextradata", "base"]);
    assert_eq!(code, 2);
    fake.cleanup();
}

#[test]
fn virtualbox_fake_speaks_each_versions_grammar() {
    let six = Fake::new("fake-six", V6);
    with_base(&six);
    let (code, _, err) = run(
        &six,
        &["modifyvm", "base", "--nat-pf1", "ssh,tcp,,2222,,22"],
    );
    assert_eq!(
        (code, err.trim()),
        (2, "VBoxManage: error: Unknown option: --nat-pf1")
    );
    assert_eq!(
        run(&six, &["modifyvm", "base", "--natpf1", "ssh,tcp,,2222,,22"]).0,
        0
    );
    assert_eq!(run(&six, &["--version"]).1, "6.1.50r161033\n");
    six.cleanup();

    let seven = Fake::new("fake-seven", V7).with("FAKE_VBOX_VMNET", "1");
    with_base(&seven);
    assert_eq!(
        run(
            &seven,
            &[
                "modifyvm",
                "base",
                "--nat-pf1",
                "a,tcp,,1,,2",
                "--natpf1",
                "b,udp,,3,,4"
            ]
        )
        .0,
        0
    );
    let add = [
        "hostonlynet",
        "add",
        "--name",
        "n",
        "--netmask",
        "255.255.255.0",
    ];
    let (code, _, err) = run(&seven, &add);
    assert_eq!(code, 2, "--lower-ip and --upper-ip are required: {err}");
    let mut add = add.to_vec();
    add.extend(["--lower-ip", "192.168.56.1", "--upper-ip", "192.168.56.254"]);
    assert_eq!(run(&seven, &add).0, 0);
    let (_, out, _) = run(&seven, &["list", "hostonlynets"]);
    assert!(out.contains("LowerIP:         192.168.56.1\n"), "{out}");
    assert_eq!(
        run(
            &seven,
            &[
                "modifyvm",
                "base",
                "--nic2",
                "hostonlynet",
                "--host-only-net2",
                "n"
            ]
        )
        .0,
        0
    );
    let (_, out, _) = run(&seven, &["showvminfo", "base", "--machinereadable"]);
    assert!(out.contains("hostonly-network2=\"n\"\n"), "{out}");
    assert!(out.contains("nic2=\"hostonlynetwork\"\n"), "{out}");
    seven.cleanup();
}

#[test]
fn virtualbox_fake_fails_on_request_and_records_every_call() {
    let fake = Fake::new("fake-fail", V7).with("FAKE_VBOX_FAIL_ON", "snapshot:2");
    with_base(&fake);
    let (code, _, err) = run(&fake, &["snapshot", "base", "take", "again"]);
    assert_eq!(code, 1);
    assert!(err.contains("injected failure"), "{err}");
    let vm = fake.vm("base").unwrap();
    assert_eq!(
        vm["snapshots"],
        serde_json::json!(["envctl-base"]),
        "the failed call changed nothing"
    );
    assert_eq!(fake.calls(), 3);
    assert_eq!(
        fake.transcript(),
        "VBoxManage import $TMP/box/box.ovf --vsys 0 --vmname base\n\
         VBoxManage snapshot base take envctl-base\n\
         VBoxManage snapshot base take again\n"
    );
    fake.cleanup();
}

#[test]
fn virtualbox_fake_honours_networks_conf() {
    let fake = Fake::new("fake-ranges", V7);
    assert_eq!(run(&fake, &["hostonlyif", "create"]).0, 0);
    let (code, _, err) = run(
        &fake,
        &[
            "hostonlyif",
            "ipconfig",
            "vboxnet0",
            "--ip",
            "10.0.0.1",
            "--netmask",
            "255.255.255.0",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("E_ACCESSDENIED"), "{err}");
    let conf = fake.root.join("networks.conf");
    std::fs::write(&conf, "* 10.0.0.0/8\n").unwrap();
    let fake = fake.with("FAKE_VBOX_NETWORKS_CONF", &conf.display().to_string());
    assert_eq!(
        run(
            &fake,
            &[
                "hostonlyif",
                "ipconfig",
                "vboxnet0",
                "--ip",
                "10.0.0.1",
                "--netmask",
                "255.255.255.0"
            ]
        )
        .0,
        0
    );
    let (code, _, _) = run(
        &fake,
        &["hostonlyif", "ipconfig", "vboxnet0", "--ip", "192.168.56.1"],
    );
    assert_eq!(code, 1, "the file replaces the default range");
    fake.cleanup();
}
