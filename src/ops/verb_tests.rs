//! The verbs against the recording test provider: the order of what `up` asks a backend,
//! its repair of half-made machines, Ctrl-C at every step, a machine failing while the
//! others succeed, switching, and the failure reports of `halt` and `destroy`. The
//! end-to-end tests do the same on real engines; these reach the cases an engine will not
//! produce on demand.

use std::path::PathBuf;
use std::sync::Arc;

use envctl_provider::{MachineState, ProviderKind};

use super::{destroy, halt, up, UpOptions, Workspace};
use crate::interrupt::{self, Interrupted};
use crate::providers::fake::{Call, FakeProvider};
use crate::registry::Registry;

/// Ctrl-C is one flag for the whole process: these tests take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MACHINES: [&str; 3] = ["a", "b", "c"];

/// An environment of three machines in a folder of its own, on the fake backend.
struct Rig {
    ws: Workspace,
    fake: Arc<FakeProvider>,
    root: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let root = std::env::temp_dir().join(format!("envctl-verbs-{}", crate::keys::random_id()));
        std::fs::create_dir_all(&root).unwrap();
        let machinefile = root.join("Machinefile");
        std::fs::write(
            &machinefile,
            "name: verbs\nnetwork: {subnet: 10.99.0.0/24}\nmachines:\n  - {name: a, ip: 10.99.0.11}\n  \
             - {name: b, ip: 10.99.0.12}\n  - {name: c, ip: 10.99.0.13}\n",
        )
        .unwrap();
        let mut ws = Workspace::load(Some(&machinefile)).unwrap();
        let fake = Arc::new(FakeProvider::default());
        ws.fake = Some(fake.clone());
        ws.data_dir = root.join("data");
        Rig { ws, fake, root }
    }

    async fn up(&self) -> anyhow::Result<()> {
        self.up_under(None, false).await
    }

    async fn up_under(&self, provider: Option<ProviderKind>, switch: bool) -> anyhow::Result<()> {
        let opts = UpOptions {
            names: Vec::new(),
            provider,
            provision: None,
            switch,
        };
        up(&self.ws, opts).await
    }

    fn recorded(&self) -> Vec<String> {
        let state = self.ws.state_dir.load().unwrap();
        state.machines.keys().cloned().collect()
    }

    fn all_running(&self) -> bool {
        let states = self.fake.states();
        MACHINES
            .iter()
            .all(|name| states.get(*name) == Some(&MachineState::Running))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn ups() -> Vec<Call> {
    MACHINES.iter().map(|m| Call::Up(m.to_string())).collect()
}

#[tokio::test]
async fn up_checks_before_it_makes_then_brings_every_machine_up() {
    let _turn = TURN.lock().await;
    let rig = Rig::new();
    rig.up().await.unwrap();
    let mut expected = vec![Call::Holdings, Call::Preflight, Call::Status, Call::Prepare];
    expected.extend(ups());
    assert_eq!(rig.fake.calls(), expected);
    assert!(rig.all_running());
    let state = rig.ws.state_dir.load().unwrap();
    assert_eq!(state.provider, Some(ProviderKind::Docker));
    assert_eq!(rig.recorded(), MACHINES);
    assert!(rig.ws.state_dir.inventory().is_file());
    // The registry was written once, at the end, with every machine running.
    let entries = Registry::in_data_dir(&rig.ws.data_dir).entries().unwrap();
    assert_eq!(entries.len(), 1);
    let states: Vec<Option<&str>> = entries[0]
        .machines
        .iter()
        .map(|m| m.state.as_deref())
        .collect();
    assert_eq!(states, [Some("running"); 3]);
}

#[tokio::test]
async fn up_repairs_machines_stopped_or_removed_behind_its_back() {
    let _turn = TURN.lock().await;
    let rig = Rig::new();
    rig.up().await.unwrap();
    let first = rig.ws.state_dir.load().unwrap();
    rig.fake.set_state("b", Some(MachineState::Stopped));
    rig.fake.set_state("c", None);
    rig.fake.clear_calls();

    rig.up().await.unwrap();
    assert!(rig.all_running());
    let again = rig.ws.state_dir.load().unwrap();
    assert_eq!(again.machines["a"], first.machines["a"]);
    assert_eq!(again.machines["b"].id, first.machines["b"].id);
    assert_ne!(
        again.machines["c"].id, first.machines["c"].id,
        "c is made anew"
    );
    assert!(rig.fake.calls().ends_with(&ups()));
}

/// Ctrl-C during each backend call: the call finishes, nothing after it starts, the
/// command stops as interrupted, and the next `up` brings every machine up.
#[tokio::test]
async fn ctrl_c_at_every_step_is_finished_by_the_next_up() {
    let _turn = TURN.lock().await;
    let steps = [
        (Call::Holdings, 1),
        (Call::Preflight, 2),
        (Call::Status, 3),
        (Call::Prepare, 4),
        // Each machine's backend call is already under way when Ctrl-C comes; all three
        // finish and none is then waited for.
        (Call::Up("a".into()), 7),
        (Call::Up("c".into()), 7),
    ];
    for (step, calls_made) in steps {
        let rig = Rig::new();
        rig.fake.interrupt_at(step.clone());
        let err = rig.up().await.expect_err("interrupted");
        interrupt::set_requested(false);
        assert!(
            err.downcast_ref::<Interrupted>().is_some(),
            "{step:?}: {err:#}"
        );
        assert_eq!(
            rig.fake.calls().len(),
            calls_made,
            "{step:?}: {:?}",
            rig.fake.calls()
        );
        // The provider is recorded as soon as anything may exist.
        let provider = rig.ws.state_dir.load().unwrap().provider;
        assert_eq!(provider.is_some(), calls_made > 2, "{step:?}");

        rig.up()
            .await
            .unwrap_or_else(|err| panic!("{step:?}: {err:#}"));
        assert!(rig.all_running(), "{step:?}");
        assert_eq!(rig.recorded(), MACHINES, "{step:?}");
    }
}

#[tokio::test]
async fn a_machine_that_fails_is_named_with_its_cause_and_the_others_stay_up() {
    let _turn = TURN.lock().await;
    let rig = Rig::new();
    rig.fake
        .fail(Call::Up("b".into()), "no space left on device");
    let err = format!("{:#}", rig.up().await.expect_err("b fails"));
    assert_eq!(
        err,
        "could not bring up 1 of 3 machines:\n  b: up: no space left on device"
    );
    assert_eq!(rig.recorded(), ["a", "c"]);
    rig.up().await.unwrap();
    assert_eq!(rig.recorded(), MACHINES);
}

#[tokio::test]
async fn halt_and_destroy_name_each_failed_machine_once_with_its_cause() {
    let _turn = TURN.lock().await;
    let cases = [
        (
            Call::Halt("a".into()),
            "could not halt 1 of 3 machines:\n  a: halt: the engine went away",
        ),
        (
            Call::Destroy("a".into()),
            "could not destroy 1 of 3 machines:\n  a: destroy: the engine went away\n\
             run `envctl destroy` again to finish",
        ),
    ];
    for (call, expected) in cases {
        let rig = Rig::new();
        rig.up().await.unwrap();
        rig.fake.fail(call.clone(), "the engine went away");
        let result = match call {
            Call::Halt(_) => halt(&rig.ws, &[]).await,
            _ => destroy(&rig.ws, &[]).await,
        };
        assert_eq!(format!("{:#}", result.expect_err("fails")), expected);
        // The others were done all the same.
        let states = rig.fake.states();
        match call {
            Call::Halt(_) => assert_eq!(states["b"], MachineState::Stopped),
            _ => assert!(!states.contains_key("b")),
        }
    }
}

#[tokio::test]
async fn destroy_removes_everything_and_the_registry_forgets() {
    let _turn = TURN.lock().await;
    let rig = Rig::new();
    rig.up().await.unwrap();
    rig.fake.clear_calls();
    destroy(&rig.ws, &[]).await.unwrap();
    assert!(rig.fake.states().is_empty());
    assert_eq!(rig.fake.calls().last(), Some(&Call::Teardown));
    assert!(!rig.ws.state_dir.root.exists());
    assert!(Registry::in_data_dir(&rig.ws.data_dir)
        .entries()
        .unwrap()
        .is_empty());
}

/// Another provider needs `--switch`; with it, the machines go there first, then come up
/// here, keeping the environment's id.
#[tokio::test]
async fn switching_needs_the_flag_and_leaves_the_old_provider_first() {
    let _turn = TURN.lock().await;
    let rig = Rig::new();
    rig.up().await.unwrap();
    let mut state = rig.ws.state_dir.load().unwrap();
    state.provider = Some(ProviderKind::Virtualbox);
    rig.ws.state_dir.save(&state).unwrap();
    rig.fake.clear_calls();

    let refused = rig.up_under(Some(ProviderKind::Docker), false).await;
    let refused = format!("{:#}", refused.expect_err("refused"));
    assert!(refused.contains("--switch"), "{refused}");
    assert!(rig.fake.calls().is_empty(), "{:?}", rig.fake.calls());

    rig.up_under(Some(ProviderKind::Docker), true)
        .await
        .unwrap();
    let calls = rig.fake.calls();
    let mut left = vec![Call::Status];
    left.extend(MACHINES.iter().map(|m| Call::Destroy(m.to_string())));
    left.push(Call::Teardown);
    assert_eq!(calls[..left.len()], left[..], "{calls:?}");
    assert!(calls.ends_with(&ups()));
    let after = rig.ws.state_dir.load().unwrap();
    assert_eq!(after.env_id, state.env_id);
    assert_eq!(after.provider, Some(ProviderKind::Docker));
}

/// What an earlier `.envctl/` of this folder made is `up`'s to replace; another folder's
/// is never touched (that is `gc`'s to judge).
#[tokio::test]
async fn up_replaces_only_what_this_folder_lost() {
    let _turn = TURN.lock().await;
    for (same_folder, replaced) in [(true, true), (false, false)] {
        let rig = Rig::new();
        let folder = if same_folder {
            rig.ws.manifest.dir.clone()
        } else {
            rig.root.join("elsewhere")
        };
        let owner = envctl_provider::Owner {
            env: "verbs".into(),
            env_id: "an-earlier-id".into(),
            project_dir: Some(folder),
        };
        rig.fake.add_holding(owner, "container verbs-a");
        rig.up().await.unwrap();
        let mut expected = vec![Call::Holdings];
        if replaced {
            // Removal goes through the ordinary status, destroy and teardown.
            expected.extend([Call::Status, Call::Teardown]);
        }
        expected.extend([Call::Preflight, Call::Status, Call::Prepare]);
        expected.extend(ups());
        assert_eq!(rig.fake.calls(), expected, "same folder: {same_folder}");
    }
}
