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

/// `sharedfolder` refuses and allows what VBoxManage 7.0 does, in the order of its checks,
/// and `showvminfo` prints the shares back in VirtualBox's keys and order. Each step is
/// (arguments, exit code, a part of stderr); the steps run in turn on one VM.
#[test]
fn virtualbox_fake_shared_folders_follow_vboxmanage() {
    let fake = Fake::new("fake-shares", V7);
    with_base(&fake);
    let a = fake.share_dir("a").display().to_string();
    let b = fake.share_dir("b").display().to_string();
    let a_slash = format!("--hostpath={a}/");
    let missing = fake.root.join("shares/none").display().to_string();
    let file = fake.root.join("box/box.ovf").display().to_string();
    let lines = |fake: &Fake| -> Vec<String> {
        let (_, out, _) = run(fake, &["showvminfo", "base", "--machinereadable"]);
        let root = fake.root.display().to_string();
        out.lines()
            .filter(|line| line.starts_with("SharedFolder"))
            .map(|line| line.replace(&root, "$TMP"))
            .collect()
    };
    let add = |name: &'static str, path: &str| {
        [
            "sharedfolder",
            "add",
            "base",
            "--name",
            name,
            "--hostpath",
            path,
        ]
        .map(String::from)
        .to_vec()
    };
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let transient = |mut step: Vec<String>| {
        step.push("--transient".to_string());
        step
    };
    let steps: Vec<(Vec<String>, i32, &str)> = vec![
        (args(&["sharedfolder"]), 2, "Not enough parameters"),
        (
            args(&["sharedfolder", "list", "base"]),
            2,
            "Invalid parameter 'list'",
        ),
        (
            args(&["sharedfolder", "add", "base", "--hostpath", &a]),
            2,
            "No shared folder name (--name) was given",
        ),
        (
            args(&["sharedfolder", "add", "base", "--name", "x"]),
            2,
            "No host path (--hostpath) was given",
        ),
        (
            args(&["sharedfolder", "add", "--name", "x", "--hostpath", &a]),
            2,
            "No machine was specified",
        ),
        (
            args(&[
                "sharedfolder",
                "add",
                "base",
                "other",
                "--name",
                "x",
                "--hostpath",
                &a,
            ]),
            2,
            "Machine name is given more than once: first 'base', then 'other'",
        ),
        (
            add("my share", &a),
            2,
            "Invalid shared folder name 'my share': contains space",
        ),
        (
            args(&[
                "sharedfolder",
                "add",
                "nope",
                "--name",
                "x",
                "--hostpath",
                &a,
            ]),
            1,
            "Could not find a registered machine named 'nope'",
        ),
        (
            add("x", &missing),
            1,
            "RTPathQueryInfo failed on shared folder path",
        ),
        (add("x", &file), 1, "is not a directory"),
        (
            transient(add("x", &a)),
            1,
            "VBoxManage: error: Machine 'base' is not currently running.\n",
        ),
        // RTGetOpt's `--opt=value`; the trailing slash is dropped.
        (
            args(&["sharedfolder", "add", "base", "--name=x", &a_slash]),
            0,
            "",
        ),
        (add("x", &b), 1, "Shared folder named 'x' already exists"),
        (
            args(&["sharedfolder", "remove", "base", "--name", "y"]),
            1,
            "Could not find a shared folder named 'y'.",
        ),
        (args(&["startvm", "base", "--type", "headless"]), 0, ""),
        (
            add("y", &a),
            1,
            "The machine 'base' is already locked for a session",
        ),
        (
            args(&["sharedfolder", "remove", "base", "--name", "x"]),
            1,
            "VBOX_E_INVALID_OBJECT_STATE",
        ),
        // Another scope: a transient share may carry a permanent one's name.
        (transient(add("x", &b)), 0, ""),
        (
            transient(add("x", &a)),
            1,
            "Shared folder named 'x' already exists",
        ),
        (transient(add("w", &a)), 0, ""),
    ];
    let (_, _, err) = run(
        &fake,
        &[
            "sharedfolder",
            "add",
            "base",
            "--name",
            "x",
            "--hostpath",
            &a,
            "--transient",
        ],
    );
    assert_eq!(
        err, "VBoxManage: error: Machine 'base' is not currently running.\n",
        "VBoxManage's own error has no details"
    );
    for (step, code, err_part) in &steps {
        let argv: Vec<&str> = step.iter().map(String::as_str).collect();
        let (got, _, err) = run(&fake, &argv);
        assert_eq!(got, *code, "{step:?}: {err}");
        assert!(err.contains(err_part), "{step:?}: {err}");
    }
    // Machine mappings in the order added, then transient ones by name.
    assert_eq!(
        lines(&fake),
        [
            "SharedFolderNameMachineMapping1=\"x\"",
            "SharedFolderPathMachineMapping1=\"$TMP/shares/a\"",
            "SharedFolderNameTransientMapping1=\"w\"",
            "SharedFolderPathTransientMapping1=\"$TMP/shares/a\"",
            "SharedFolderNameTransientMapping2=\"x\"",
            "SharedFolderPathTransientMapping2=\"$TMP/shares/b\"",
        ]
    );

    // A saved VM keeps its transient shares and is not mutable; powered off, they are gone.
    assert_eq!(run(&fake, &["controlvm", "base", "savestate"]).0, 0);
    let (code, _, err) = run(
        &fake,
        &[
            "sharedfolder",
            "add",
            "base",
            "--name",
            "z",
            "--hostpath",
            &a,
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("not mutable"), "{err}");
    assert_eq!(lines(&fake).len(), 6);
    assert_eq!(run(&fake, &["startvm", "base"]).0, 0);
    assert_eq!(run(&fake, &["controlvm", "base", "poweroff"]).0, 0);
    assert_eq!(lines(&fake).len(), 2, "{:?}", lines(&fake));
    assert_eq!(
        run(&fake, &["sharedfolder", "remove", "base", "--name", "x"]).0,
        0
    );
    assert_eq!(lines(&fake), Vec::<String>::new());
    fake.cleanup();
}
