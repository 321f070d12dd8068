//! Any bytes given as a Machinefile must come back as a `Manifest` or as a
//! `ManifestError` with at least one problem, never as a panic. The error is rendered
//! too, since rendering is where line numbers and paths meet the user's text.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Not UTF-8 cannot reach the parser (envctl reads the file as a String first), but a
    // lossy copy still exercises it with the replacement characters in place.
    let text = String::from_utf8_lossy(data);
    // In the example environment's folder, so a seed naming `playbook.yml` validates
    // and the successful path is fuzzed too.
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../environments/example/Machinefile"
    ));
    if let Err(err) = envctl::manifest::parse(path, &text) {
        assert!(!err.problems.is_empty(), "an error without a problem");
        let rendered = err.to_string();
        assert!(rendered.contains("Machinefile"));
    }
});
