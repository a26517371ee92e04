//! Which container a user means. Every verb that takes a container accepts its exact id;
//! a Docker-like container (one `minc run IMAGE` made, recorded under --data-root) is also
//! found by its name or a unique prefix of its id, and an ambiguous prefix is an error that
//! lists what it matches.
//!
//! Containers made from a bundle (`create`, `run -b`) are only ever named by their exact id,
//! as OCI clients expect: `delete --force test` of a container that is gone must never reach
//! a `test2` that shares its prefix.

use std::path::Path;

use anyhow::Result;

use super::containers::Containers;

/// The runtime id `key` names under `root`. A key that names nothing there comes back
/// unchanged, so the verb reports it in runc's words (`container X does not exist`), or, for
/// `delete --force`, succeeds as runc does.
pub fn id(root: &Path, data_root: &Path, key: &str) -> Result<String> {
    let exists = |id: &str| {
        crate::container::validate_id(id).is_ok() && root.join(id).join("state.json").exists()
    };
    if exists(key) {
        return Ok(key.to_string());
    }
    Ok(match Containers::new(data_root).lookup(key)? {
        Some(r) if exists(&r.id) => r.id,
        _ => key.to_string(),
    })
}
