//! The connection to libvirt: opening it, running its blocking calls on tokio's blocking
//! threads, and turning its errors into words that say what was being done.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use envctl_provider::{BoxError, ProviderError, ProviderKind};
use virt::connect::Connect;
use virt::error::{Error as VirtError, ErrorNumber};

/// The URI used when neither `LIBVIRT_DEFAULT_URI` nor the Machinefile names one.
pub(crate) const DEFAULT_URI: &str = "qemu:///system";

/// How long opening the connection may take before libvirt counts as not answering.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

const START_HINT: &str =
    "start libvirtd (`systemctl start libvirtd`, or `libvirtd -d`; it comes with the libvirt-daemon-system package)";

/// One connection, shared by every call: libvirt's connections are thread-safe.
#[derive(Clone)]
pub(crate) struct Conn {
    connect: Arc<Connect>,
    uri: Arc<str>,
}

impl Conn {
    pub(crate) async fn open(uri: &str) -> Result<Conn, ProviderError> {
        // libvirt prints every error to stderr unless told not to; a backend never prints.
        virt::error::clear_error_callback();
        let owned = uri.to_string();
        let task = tokio::task::spawn_blocking(move || Connect::open(Some(&owned)));
        let connect = match tokio::time::timeout(OPEN_TIMEOUT, task).await {
            Err(_) => {
                let reason = format!("no answer within {} s", OPEN_TIMEOUT.as_secs());
                return Err(unavailable(uri, reason));
            }
            Ok(Err(join)) => return Err(unavailable(uri, join.to_string())),
            Ok(Ok(Err(err))) => return Err(unavailable(uri, describe(&err))),
            Ok(Ok(Ok(connect))) => connect,
        };
        Ok(Conn {
            connect: Arc::new(connect),
            uri: Arc::from(uri),
        })
    }

    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether libvirt runs on this host, so local paths (console logs, /proc) mean its.
    pub(crate) fn is_local(&self) -> bool {
        is_local_uri(&self.uri)
    }

    /// Runs `call` on a blocking thread: every libvirt call waits on the daemon.
    pub(crate) async fn run<T, F>(&self, call: F) -> Result<T, ProviderError>
    where
        F: FnOnce(&Connect) -> Result<T, ProviderError> + Send + 'static,
        T: Send + 'static,
    {
        let connect = Arc::clone(&self.connect);
        tokio::task::spawn_blocking(move || call(&connect))
            .await
            .map_err(|err| ProviderError::backend("running a libvirt call", err))?
    }

    /// Checks that the daemon still answers.
    pub(crate) async fn ping(&self) -> Result<(), ProviderError> {
        let uri = self.uri.to_string();
        self.run(move |connect| match connect.is_alive() {
            Ok(true) => Ok(()),
            Ok(false) => Err(unavailable(&uri, "the connection is closed".to_string())),
            Err(err) => Err(unavailable(&uri, describe(&err))),
        })
        .await
    }
}

/// libvirt's error, in its own words, without the codes its `Display` appends.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

pub(crate) fn failure(err: VirtError) -> BoxError {
    Box::new(Failure(describe(&err)))
}

/// A backend error about `action`, from libvirt's error.
pub(crate) fn backend_error(action: impl Into<String>, err: VirtError) -> ProviderError {
    ProviderError::backend(action, failure(err))
}

/// An error about one machine's `action`, from libvirt's error.
pub(crate) fn machine_error(
    name: &str,
    action: impl Into<String>,
    err: VirtError,
) -> ProviderError {
    ProviderError::machine(name, action, failure(err))
}

/// Whether libvirt said the domain, network, pool, volume or metadata does not exist.
pub(crate) fn is_missing(err: &VirtError) -> bool {
    [
        ErrorNumber::NoDomain,
        ErrorNumber::NoNetwork,
        ErrorNumber::NoStoragePool,
        ErrorNumber::NoStorageVolume,
        ErrorNumber::NoDomainMetadata,
    ]
    .into_iter()
    .any(|code| err.code().is(code))
}

/// `Ok(None)` for what libvirt says does not exist.
pub(crate) fn found<T>(result: Result<T, VirtError>) -> Result<Option<T>, VirtError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if is_missing(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

pub(crate) fn unavailable(uri: &str, reason: String) -> ProviderError {
    ProviderError::Unavailable {
        provider: ProviderKind::Libvirt,
        endpoint: uri.to_string(),
        reason: format!("{reason}; {START_HINT}"),
    }
}

/// libvirt's message, lowercased at the start and without a final period.
pub(crate) fn describe(err: &VirtError) -> String {
    let message = err.message().trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "libvirt gave no reason".to_string(),
    }
}

/// `qemu:///system`, `qemu+unix:///system`: the daemon runs here. Anything with a host or
/// a network transport (`qemu+ssh://host/system`) may run elsewhere.
pub(crate) fn is_local_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let transport = scheme.split_once('+').map(|(_, transport)| transport);
    let host = rest.split('/').next().unwrap_or_default();
    matches!(transport, None | Some("unix")) && host.is_empty()
}

#[cfg(test)]
mod tests {
    use super::is_local_uri;

    #[test]
    fn local_uris_are_those_without_host_or_network_transport() {
        let cases = [
            ("qemu:///system", true),
            ("qemu:///session", true),
            ("qemu+unix:///system", true),
            ("qemu+ssh://root@host/system", false),
            ("qemu+tcp://localhost/system", false),
            ("qemu://host/system", false),
            ("test:///default", true),
            ("nonsense", false),
        ];
        for (uri, local) in cases {
            assert_eq!(is_local_uri(uri), local, "{uri}");
        }
    }
}
