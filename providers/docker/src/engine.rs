//! Talking to the Docker engine: connecting at an API version it accepts, and turning its
//! errors into [`ProviderError`]s that say what was being done.

use std::fmt::Display;
use std::io;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use envctl_provider::{ProviderError, ProviderKind};

use crate::DockerProvider;

/// Where the engine listens when `DOCKER_HOST` is not set.
pub(crate) const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long the engine may take to answer the first call before it counts as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// bollard's limit for a response to begin; builds and logs keep streaming after it.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// The oldest API that has everything used here (`NanoCpus` came with 1.25).
const MIN_API: ClientVersion = version(1, 25);

/// The client versions `/version` is asked with, in turn, until the engine accepts one.
///
/// bollard puts its client version in every path (`/v1.53/version`) and an engine refuses a
/// version newer than its own ("client version 1.53 is too new", Docker 20.10) or older
/// than its minimum (1.24 since Docker 25, 1.44 since Docker 29). So
/// `Docker::negotiate_version`, which asks with bollard's own version, fails against any
/// engine older than bollard; asking with older versions finds one every engine accepts.
const PROBE_VERSIONS: [ClientVersion; 3] = [*API_DEFAULT_VERSION, version(1, 44), version(1, 24)];

/// Connects to `host` (`unix:///path`, a bare socket path, `tcp://` or `http://`) and
/// returns a client that speaks the newest API both sides know. The error says what
/// failed, for [`ProviderError::Unavailable`].
pub(crate) async fn connect(host: &str) -> Result<Docker, String> {
    let mut refused = String::new();
    for probe in PROBE_VERSIONS {
        let docker = client(host, &probe)?;
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, docker.version())
            .await
            .map_err(|_| format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))?;
        match answer {
            Ok(answer) => {
                let server = answer
                    .api_version
                    .as_deref()
                    .and_then(parse_version)
                    .ok_or("the engine did not say which API version it speaks")?;
                if server < MIN_API {
                    return Err(format!(
                        "the engine speaks API {server}, older than the {MIN_API} envctl needs"
                    ));
                }
                let chosen = if server < *API_DEFAULT_VERSION {
                    server
                } else {
                    *API_DEFAULT_VERSION
                };
                return client(host, &chosen);
            }
            // The engine refuses this client version; the next probe is older.
            Err(BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            }) => refused = message,
            Err(err) => return Err(describe(&err)),
        }
    }
    Err(format!(
        "the engine accepts none of the API versions tried: {refused}"
    ))
}

/// What went wrong, in words for a user: "connection refused" rather than a type name.
pub(crate) fn describe(err: &BollardError) -> String {
    unreachable(err).unwrap_or_else(|| lowercase_first(&err.to_string()))
}

/// Why the engine could not be reached at all, if that is what `err` says.
pub(crate) fn unreachable(err: &BollardError) -> Option<String> {
    if let BollardError::SocketNotFoundError(path) = err {
        return Some(format!("no socket at {path}"));
    }
    if let BollardError::RequestTimeoutError = err {
        return Some("the engine did not answer in time".to_string());
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some("connection refused".to_string()),
                io::ErrorKind::NotFound => return Some("no such socket".to_string()),
                io::ErrorKind::PermissionDenied => {
                    return Some("permission denied on the socket".to_string())
                }
                _ => {}
            }
        }
        cause = current.source();
    }
    None
}

/// Whether the engine said the object does not exist.
pub(crate) fn is_not_found(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerProvider {
    pub(crate) fn unavailable(&self, reason: impl Display) -> ProviderError {
        unavailable(&self.endpoint, reason)
    }

    /// A failed call that is not about one machine, or `Unavailable` if the engine is gone.
    pub(crate) fn backend_error(
        &self,
        action: impl Into<String>,
        err: BollardError,
    ) -> ProviderError {
        match unreachable(&err) {
            Some(reason) => self.unavailable(reason),
            None => ProviderError::backend(action, err),
        }
    }

    /// A failed call about `machine`, or `Unavailable` if the engine is gone.
    pub(crate) fn machine_error(
        &self,
        machine: &str,
        action: impl Into<String>,
        err: BollardError,
    ) -> ProviderError {
        match unreachable(&err) {
            Some(reason) => self.unavailable(reason),
            None => ProviderError::machine(machine, action, err),
        }
    }
}

pub(crate) fn unavailable(endpoint: &str, reason: impl Display) -> ProviderError {
    ProviderError::Unavailable {
        provider: ProviderKind::Docker,
        endpoint: endpoint.to_string(),
        reason: format!(
            "{reason}; start the Docker daemon (`systemctl start docker`, or `dockerd &`)"
        ),
    }
}

const fn version(major_version: usize, minor_version: usize) -> ClientVersion {
    ClientVersion {
        major_version,
        minor_version,
    }
}

fn client(host: &str, version: &ClientVersion) -> Result<Docker, String> {
    let client = if host.starts_with("unix://") || host.starts_with('/') {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, version)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, version)
    } else {
        return Err("unsupported address (envctl speaks unix:// and tcp://)".to_string());
    };
    client.map_err(|err| describe(&err))
}

fn parse_version(text: &str) -> Option<ClientVersion> {
    let (major, minor) = text.split_once('.')?;
    Some(version(major.parse().ok()?, minor.parse().ok()?))
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    fn expect_unavailable(result: Result<Docker, String>, wanted: &str) {
        match result {
            Ok(_) => panic!("connected to an engine that is not there"),
            Err(reason) => assert!(
                reason.contains(wanted),
                "reason `{reason}` lacks `{wanted}`"
            ),
        }
    }

    #[tokio::test]
    async fn a_missing_socket_is_named() {
        let path = std::env::temp_dir().join(format!("envctl-none-{}.sock", std::process::id()));
        let host = format!("unix://{}", path.display());
        expect_unavailable(
            connect(&host).await,
            &format!("no socket at {}", path.display()),
        );
    }

    #[tokio::test]
    async fn a_socket_nobody_listens_on_is_refused() {
        let path = std::env::temp_dir().join(format!("envctl-dead-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // Binding makes the socket file; dropping the listener leaves it with no one behind.
        drop(UnixListener::bind(&path).expect("bind a unix socket in the temp dir"));
        let result = connect(path.to_str().expect("utf-8 temp path")).await;
        let _ = std::fs::remove_file(&path);
        expect_unavailable(result, "connection refused");
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused() {
        expect_unavailable(connect("ssh://example.test").await, "unsupported address");
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(parse_version("1.41"), Some(version(1, 41)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("1.x"), None);
        assert!(version(1, 41) < version(1, 44));
        assert!(version(1, 9) < MIN_API);
        assert!(PROBE_VERSIONS.windows(2).all(|pair| pair[1] < pair[0]));
    }

    #[test]
    fn unavailable_says_how_to_start_docker() {
        let err = unavailable("/var/run/docker.sock", "connection refused");
        assert_eq!(
            err.to_string(),
            "docker is not available at /var/run/docker.sock: connection refused; \
             start the Docker daemon (`systemctl start docker`, or `dockerd &`)"
        );
    }
}
