//! `envctl gc`: find what envctl made for environments that no longer exist (their folder
//! or `.envctl/` deleted, or rebuilt under a new id) and, when asked, remove it. What
//! belongs to an environment whose state cannot be read is listed as unknown and kept.

use anyhow::Result;
use envctl_provider::{Holding, Provider, ProviderError, ProviderKind};

use super::ownership::{holding_liveness, remove_holding};
use crate::liveness::{Liveness, Orphaned};
use crate::manifest::LibvirtOptions;
use crate::output;
use crate::providers::AnyProvider;

pub struct GcOptions {
    /// Only this backend; every one that answers when none.
    pub provider: Option<ProviderKind>,
    /// Remove what is found instead of only listing it.
    pub remove: bool,
}

/// One backend's holdings that no living environment claims, sorted by what is known.
#[derive(Debug, Default)]
struct Sweep {
    /// Proven lost: `--remove` removes these, and only these.
    orphaned: Vec<(Holding, Orphaned)>,
    /// Their state could not be read: listed, never removed.
    unknown: Vec<(Holding, String)>,
}

pub async fn gc(opts: GcOptions) -> Result<()> {
    let kinds = match opts.provider {
        Some(kind) => vec![kind],
        None => ProviderKind::ALL.to_vec(),
    };
    let (mut orphaned, mut unknown) = (0, 0);
    for kind in kinds {
        let Some(provider) = connect(kind, opts.provider.is_none()).await? else {
            continue;
        };
        let sweep = sweep(provider.holdings().await?);
        unknown += sweep.unknown.len();
        for (holding, why) in &sweep.unknown {
            list(kind, holding, &format!("unknown: {why}; kept"));
        }
        orphaned += sweep.orphaned.len();
        for (holding, why) in &sweep.orphaned {
            list(kind, holding, &why.to_string());
            if opts.remove {
                remove_holding(&provider, holding).await?;
            }
        }
    }
    summarize(orphaned, unknown, opts.remove);
    Ok(())
}

/// The backend `kind`, or None when looking everywhere and it is not here: a backend
/// that is not here has nothing to collect.
async fn connect(kind: ProviderKind, everywhere: bool) -> Result<Option<AnyProvider>> {
    match AnyProvider::connect_with(kind, &LibvirtOptions::default()).await {
        Ok(provider) => Ok(Some(provider)),
        Err(err @ (ProviderError::Unavailable { .. } | ProviderError::NotCompiled { .. }))
            if everywhere =>
        {
            output::verbose(&format!("skipping {kind}: {err}"));
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

fn sweep(holdings: Vec<Holding>) -> Sweep {
    let mut sweep = Sweep::default();
    for holding in holdings {
        match holding_liveness(&holding) {
            Liveness::Alive => {}
            Liveness::Orphaned(why) => sweep.orphaned.push((holding, why)),
            Liveness::Unknown(why) => sweep.unknown.push((holding, why)),
        }
    }
    sweep
}

fn list(kind: ProviderKind, holding: &Holding, why: &str) {
    let owner = &holding.owner;
    let folder = match &owner.project_dir {
        Some(dir) => format!(" in {}", dir.display()),
        None => String::new(),
    };
    let mut text = format!(
        "{kind}: environment `{}` (id {}){folder}: {why}\n",
        owner.env, owner.env_id
    );
    for resource in &holding.resources {
        text.push_str(&format!("    {resource}\n"));
    }
    output::data(&text);
}

fn summarize(orphaned: usize, unknown: usize, removed: bool) {
    if unknown > 0 {
        output::status(
            "Kept",
            &format!(
                "what {unknown} environments hold whose .envctl/state.json cannot be read: \
                 repair the file (or remove its folder's .envctl/) and run gc again"
            ),
        );
    }
    match (orphaned, removed) {
        (0, _) => output::status("Finished", "nothing left behind by a lost environment"),
        (n, true) => output::status("Removed", &format!("what {n} lost environments left")),
        (n, false) => output::status(
            "Found",
            &format!("{n} lost environments; `envctl gc --remove` removes what they left"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use envctl_provider::Owner;

    use super::*;

    fn holding(id: &str, project: &Path) -> Holding {
        Holding {
            owner: Owner {
                env: "demo".into(),
                env_id: id.into(),
                project_dir: Some(project.to_path_buf()),
            },
            resources: vec![format!("container demo-web1 ({id})")],
        }
    }

    fn project(root: &Path, name: &str, state: Option<&str>) -> PathBuf {
        let dir = root.join(name);
        fs::create_dir_all(dir.join(".envctl")).unwrap();
        if let Some(state) = state {
            fs::write(dir.join(".envctl/state.json"), state).unwrap();
        }
        dir
    }

    #[test]
    fn a_damaged_state_is_kept_and_only_proven_orphans_are_removable() {
        let root = std::env::temp_dir().join(format!("envctl-gc-{}", crate::keys::random_id()));
        let live = project(&root, "live", Some(r#"{"env_id": "live"}"#));
        let damaged = project(&root, "damaged", Some(r#"{"env_id": "dam"#));
        let empty = project(&root, "empty", Some(""));
        let stateless = project(&root, "stateless", None);
        let rebuilt = project(&root, "rebuilt", Some(r#"{"env_id": "new"}"#));
        let sweep = sweep(vec![
            holding("live", &live),
            holding("damaged", &damaged),
            holding("empty", &empty),
            holding("stateless", &stateless),
            holding("old", &rebuilt),
            holding("moved", &root.join("moved")),
        ]);
        let ids = |found: Vec<&Holding>| -> Vec<String> {
            found.iter().map(|h| h.owner.env_id.clone()).collect()
        };
        assert_eq!(
            ids(sweep.orphaned.iter().map(|(h, _)| h).collect()),
            ["stateless", "old", "moved"]
        );
        assert_eq!(
            ids(sweep.unknown.iter().map(|(h, _)| h).collect()),
            ["damaged", "empty"]
        );
        assert!(
            sweep.unknown[0].1.contains("state.json is damaged"),
            "{sweep:?}"
        );
        fs::remove_dir_all(root).unwrap();
    }
}
