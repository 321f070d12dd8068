//! `envctl gc`: find what envctl made for environments that no longer exist (their folder
//! or `.envctl/` deleted, or rebuilt under a new id) and, when asked, remove it.

use anyhow::Result;
use envctl_provider::{Provider, ProviderError, ProviderKind};

use super::ownership::{judge, remove_holding, Verdict};
use crate::manifest::LibvirtOptions;
use crate::output;
use crate::providers::AnyProvider;

pub struct GcOptions {
    /// Only this backend; every one that answers when none.
    pub provider: Option<ProviderKind>,
    /// Remove what is found instead of only listing it.
    pub remove: bool,
}

pub async fn gc(opts: GcOptions) -> Result<()> {
    let kinds = match opts.provider {
        Some(kind) => vec![kind],
        None => ProviderKind::ALL.to_vec(),
    };
    let mut found = 0;
    for kind in kinds {
        let provider = match AnyProvider::connect_with(kind, &LibvirtOptions::default()).await {
            Ok(provider) => provider,
            // Looking everywhere: a backend that is not here has nothing to collect.
            Err(err @ (ProviderError::Unavailable { .. } | ProviderError::NotCompiled { .. }))
                if opts.provider.is_none() =>
            {
                output::verbose(&format!("skipping {kind}: {err}"));
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        for holding in provider.holdings().await? {
            let Verdict::Orphan(why) = judge(&holding.owner) else {
                continue;
            };
            found += 1;
            let mut text = format!(
                "{kind}: environment `{}` (id {}): {why}\n",
                holding.owner.env, holding.owner.env_id
            );
            for resource in &holding.resources {
                text.push_str(&format!("    {resource}\n"));
            }
            output::data(&text);
            if opts.remove {
                remove_holding(&provider, &holding).await?;
            }
        }
    }
    match (found, opts.remove) {
        (0, _) => output::status("Finished", "nothing left behind by a lost environment"),
        (n, true) => output::status("Removed", &format!("what {n} lost environments left")),
        (n, false) => output::status(
            "Found",
            &format!("{n} lost environments; `envctl gc --remove` removes what they left"),
        ),
    }
    Ok(())
}
