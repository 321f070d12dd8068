//! End to end on the real Docker Engine and the real `ansible-playbook`: what a machine
//! and `.envctl/` let other people do. One machine of the example environment's playbook,
//! on a subnet of its own (10.231.2.0/24) so it never meets the other end-to-end tests.

mod common;

use common::{
    assert_only_environment_key, assert_private_tree, assert_sshd_hardened, require_ansible,
    require_docker, TestEnv,
};

const MACHINEFILE: &str = "\
name: security
network:
  subnet: 10.231.2.0/24
  gateway: 10.231.2.1
machines:
  - name: web1
    ip: 10.231.2.11
    hostname: web1.security.test
    groups: [web]
    vars:
      http_port: 8080
provision:
  playbook: playbook.yml
  extra_vars:
    greeting: hello from the security test
";

#[test]
fn docker_machine_takes_only_the_environment_key_and_state_stays_private() {
    require_docker();
    require_ansible();
    let env = TestEnv::copy_of("example", |_| MACHINEFILE.to_string());

    // `up` with the playbook: every file envctl writes, extra_vars.json included.
    env.ok(&["up"]);
    assert!(env.state_dir().join("extra_vars.json").is_file());
    assert_private_tree(&env.state_dir());

    assert_sshd_hardened(&env, "web1");
    assert_only_environment_key(&env, "web1");
}
