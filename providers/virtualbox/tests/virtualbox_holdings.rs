//! `holdings`: what `envctl gc` and `up`'s repair of lost state see of VirtualBox, and
//! that a spec made from it alone removes everything.

mod support;

use envctl_provider::{EnvironmentId, Provider};
use envctl_virtualbox::HostOnlyKind;
use support::{example, Fake, Phases, V7};

#[tokio::test]
async fn virtualbox_holdings_name_the_owner_and_everything_it_made() {
    let fake = Fake::new("holdings", V7);
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.preflight(&env, &machines).await.unwrap();
    provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap();
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();

    let holdings = provider.holdings().await.unwrap();
    assert_eq!(holdings.len(), 1, "{holdings:?}");
    let holding = &holdings[0];
    assert_eq!(holding.owner.env, env.name);
    assert_eq!(holding.owner.env_id, env.id);
    assert_eq!(holding.owner.project_dir.as_ref(), Some(&env.project_dir));
    assert!(
        holding.resources.contains(&"VM example-web1".to_string()),
        "{holding:?}"
    );
    assert!(
        holding
            .resources
            .iter()
            .any(|r| r.starts_with("VM example--box-")),
        "{holding:?}"
    );
    assert!(
        holding
            .resources
            .iter()
            .any(|r| r.starts_with("host-only network ")),
        "{holding:?}"
    );

    // What gc does with it: a spec from the owner alone finds and removes it all.
    let spec = EnvironmentId::of_owner(&holding.owner);
    for machine in provider.status(&spec).await.unwrap() {
        provider.destroy(&spec, &machine.name).await.unwrap();
    }
    provider.teardown(&spec).await.unwrap();
    assert_eq!(provider.holdings().await.unwrap(), []);
    assert!(fake.vm_names().is_empty(), "{:?}", fake.vm_names());
    fake.cleanup();
}
