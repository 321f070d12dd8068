//! The labels envctl puts on what it makes, so it can find its own things again and never
//! touch anyone else's.

use std::collections::HashMap;

use envctl_provider::EnvironmentId;

/// The environment's name.
pub const ENV: &str = "envctl.env";
/// The environment's random id: what makes a resource this environment's own.
pub const ENV_ID: &str = "envctl.env-id";
/// The folder of the Machinefile, to tell a user whose a resource is.
pub const PROJECT: &str = "envctl.project";
/// The machine a container backs.
pub const MACHINE: &str = "envctl.machine";
/// What the container runs as PID 1 (`systemd` or `sshd`), for its log and its halt.
pub const INIT: &str = "envctl.init";
/// The forwarded ports a container publishes (`guest/proto=ip:host,…`).
pub const PORTS: &str = "envctl.ports";
/// The live folders a container mounts and the ids its user took (`host=guest;…|uid:gid`).
pub const FOLDERS: &str = "envctl.folders";
/// The recipe an image was built from.
pub const RECIPE: &str = "envctl.recipe";

/// The labels of everything made for `env`.
pub(crate) fn env_labels(env: &EnvironmentId) -> HashMap<String, String> {
    HashMap::from([
        (ENV.to_string(), env.name.clone()),
        (ENV_ID.to_string(), env.id.clone()),
        (PROJECT.to_string(), env.project_dir.display().to_string()),
    ])
}

/// The labels of the container that backs `machine`.
pub(crate) fn machine_labels(env: &EnvironmentId, machine: &str) -> HashMap<String, String> {
    let mut labels = env_labels(env);
    labels.insert(MACHINE.to_string(), machine.to_string());
    labels
}

/// A Docker filter that selects what carries `env`'s id.
pub(crate) fn env_filter(env: &EnvironmentId) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![format!("{ENV_ID}={}", env.id)])])
}

/// Says whose a resource is, from its labels, for an error message.
pub(crate) fn describe_owner(labels: Option<&HashMap<String, String>>) -> String {
    let Some(labels) = labels else {
        return "was not made by envctl".to_string();
    };
    match (labels.get(ENV), labels.get(ENV_ID), labels.get(PROJECT)) {
        (Some(name), Some(id), Some(project)) => {
            format!("belongs to envctl environment `{name}` (id {id}) of {project}")
        }
        (_, Some(id), _) => format!("belongs to another envctl environment (id {id})"),
        _ => "was not made by envctl".to_string(),
    }
}
