//! Fails when `docs/errors.md` no longer matches the error catalog in `ErrorCode::ALL`.
//!
//! Regenerate the file with `PORTAL_BLESS=1 cargo test -p portal-core --test errors_doc`.

use std::path::PathBuf;

#[test]
fn docs_errors_md_matches_the_catalog() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
    let expected = portal_core::error::error_catalog_markdown();
    if std::env::var_os("PORTAL_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/errors.md");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/errors.md is stale: run `PORTAL_BLESS=1 cargo test -p portal-core --test errors_doc` and commit it"
    );
}
