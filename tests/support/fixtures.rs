//! Where the GuardDuty fixture documents are, for the tests and benches that read them.
//!
//! They live in the repository, in `tests/fixtures/guardduty` (with `SOURCES.md`: where each
//! document came from and under which licence), so a fresh clone's tests need nothing beside
//! it. `$HANKO_FIXTURES` may name another `fixtures` folder or its `guardduty` subfolder. A
//! missing folder fails the test with the fix; it never skips.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `guardduty` fixture folder (the one holding `api/`).
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HANKO_FIXTURES") {
        let dir = PathBuf::from(dir);
        for candidate in [dir.join("guardduty"), dir.clone()] {
            if candidate.join("api").is_dir() {
                return candidate;
            }
        }
        panic!(
            "HANKO_FIXTURES={} holds neither guardduty/api nor api; point it at a fixtures folder",
            dir.display()
        );
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guardduty");
    assert!(
        dir.join("api").is_dir(),
        "GuardDuty fixtures not found in {}; they are part of the repository (git checkout -- \
         tests/fixtures), or set HANKO_FIXTURES=/path/to/fixtures",
        dir.display()
    );
    dir
}

/// The text of the fixture at `rel` (e.g. `api/Backdoor_EC2_C_CActivity.B.json`).
pub fn read(rel: &str) -> String {
    let path = fixtures_dir().join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}
