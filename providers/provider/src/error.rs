use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::ProviderKind;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a backend can fail with. Messages are lowercase and name what failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The backend was compiled out of this build of envctl.
    #[error("the {provider} provider is not compiled into this envctl; {hint}")]
    NotCompiled {
        provider: ProviderKind,
        hint: &'static str,
    },
    /// The backend's service or tool does not answer.
    #[error("{provider} is not available at {endpoint}: {reason}")]
    Unavailable {
        provider: ProviderKind,
        endpoint: String,
        reason: String,
    },
    /// The environment's subnet collides with something that already exists.
    #[error("subnet {subnet} overlaps {other}")]
    SubnetConflict { subnet: Ipv4Network, other: String },
    /// An address the environment wants is already taken by something else.
    #[error("address {ip} is already used by {holder}")]
    AddressInUse { ip: Ipv4Addr, holder: String },
    /// The backend cannot do what was asked of it.
    #[error("the {provider} provider cannot {what}")]
    Unsupported {
        provider: ProviderKind,
        what: String,
    },
    /// An image, recipe or box is missing or broken.
    #[error("image {image}: {reason}")]
    Image { image: String, reason: String },
    /// One machine failed; `source` says how.
    #[error("machine {machine}: {action}")]
    Machine {
        machine: String,
        action: String,
        #[source]
        source: BoxError,
    },
    /// A call to the backend that is not about one machine failed.
    #[error("{action}")]
    Backend {
        action: String,
        #[source]
        source: BoxError,
    },
}

impl ProviderError {
    pub fn machine(
        machine: &str,
        action: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> ProviderError {
        ProviderError::Machine {
            machine: machine.to_string(),
            action: action.into(),
            source: source.into(),
        }
    }

    pub fn backend(action: impl Into<String>, source: impl Into<BoxError>) -> ProviderError {
        ProviderError::Backend {
            action: action.into(),
            source: source.into(),
        }
    }
}
