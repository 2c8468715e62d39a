//! Where the GuardDuty fixture documents are, for the tests and benches that read them.
//!
//! `$HANKO_FIXTURES` names the `fixtures` folder or its `guardduty` subfolder; without it, the
//! folder is `shared/fixtures/guardduty` beside the repository (or beside one of its parent
//! folders, for a git worktree). A missing folder fails the test with the fix; it never skips.

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
            "HANKO_FIXTURES={} holds neither guardduty/api nor api; point it at shared/fixtures",
            dir.display()
        );
    }
    let tried: Vec<PathBuf> = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .skip(1)
        .take(3)
        .map(|a| a.join("shared/fixtures/guardduty"))
        .collect();
    tried
        .iter()
        .find(|candidate| candidate.join("api").is_dir())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "GuardDuty fixtures not found (looked in {tried:?}); check out shared/ beside the \
                 repository or set HANKO_FIXTURES=/path/to/shared/fixtures"
            )
        })
}

/// The text of the fixture at `rel` (e.g. `api/Backdoor_EC2_C_CActivity.B.json`).
pub fn read(rel: &str) -> String {
    let path = fixtures_dir().join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}
