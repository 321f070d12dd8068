//! Docker image references (`[HOST[:PORT]/]PATH[:TAG][@DIGEST]`), checked by the grammar
//! the engine itself applies, so a Machinefile's `docker.image` is refused by `validate`
//! with the rule rather than by the engine halfway through `up`.

use std::sync::LazyLock;

use regex::Regex;

/// What a reference looks like, for messages.
pub const IMAGE_RULE: &str = "an image reference is [HOST[:PORT]/]PATH[:TAG][@DIGEST]: PATH is \
    `/`-separated parts of lowercase letters and digits joined by `.`, `_`, `__` or dashes; \
    TAG is up to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`; DIGEST is \
    ALGORITHM:HEX";

/// Whether `text` is a valid image reference.
pub fn is_image_reference(text: &str) -> bool {
    static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
        let host_part = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let host = format!(r"(?:{host_part}(?:\.{host_part})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?");
        let path_part = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
        Regex::new(&format!(
            r"^(?:(?P<host>{host})/)?(?P<path>{path_part}(?:/{path_part})*)(?::{tag})?(?:@{digest})?$"
        ))
        .expect("the image reference pattern")
    });
    let Some(found) = REFERENCE.captures(text) else {
        return false;
    };
    // The engine caps the name (host and path) at 255 characters.
    let name_len = found.name("host").map_or(0, |host| host.len() + 1) + found["path"].len();
    name_len <= 255
}

#[cfg(test)]
mod tests {
    use super::is_image_reference;

    #[test]
    fn references_follow_the_engines_grammar() {
        for good in [
            "debian",
            "debian:bookworm",
            "library/debian:12.5-slim",
            "registry.example.com:5000/team/app_x__y:v1",
            "localhost/app",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_image_reference(good), "{good}");
        }
        for bad in [
            "",
            "Debian",
            "-v",
            "debian:",
            "debian:.hidden",
            "a//b",
            "debian bookworm",
            "team/App",
            "app@sha256:short",
            "app:tag:again",
        ] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }
}
