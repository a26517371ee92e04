//! Idmapped mounts: a bind mount through which the files' owners are translated.
//!
//! mount_setattr(2) with MOUNT_ATTR_IDMAP gives a *detached* mount (a copy made with
//! open_tree(2) OPEN_TREE_CLONE) the mappings of a user namespace: a file owned by id N on
//! disk shows as owned by what N maps to there. So a directory owned by host root, mounted
//! with the container's own mappings (`0 100000 65536`), belongs to root of a user-namespaced
//! container, with no chown. The runtime spec asks for it with the mount options `idmap`
//! (`ridmap`: submounts too), and optionally the mount's own `uidMappings`/`gidMappings`
//! (else the container's user namespace's).
//!
//! Making one needs CAP_SYS_ADMIN over the source mount, which a container's init, root
//! only in its own user namespace, does not have: `create` prepares every idmapped tree
//! before the clone (as runc 1.2 does from the host side) and the init inherits the fds and
//! moves each into place (move_mount(2)) when it reaches that mount. The mappings only
//! matter, not the namespace, so a throwaway user namespace with them is used (the
//! container's own does not exist yet).
//! Man pages: mount_setattr(2), open_tree(2), move_mount(2), user_namespaces(7).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use sysops::explain;

use crate::error::{Error, Result};
use crate::ops::mount::{self, Idmapped};
use crate::spec::{Mount, Spec};
use crate::userns::Maps;

/// Whether a mount asks to be idmapped (an `idmap`/`ridmap` option, or mappings of its
/// own), and how: (with its submounts: `rbind`; every submount idmapped too: `ridmap`, or
/// an rbind with mappings and neither option).
fn wanted(m: &Mount) -> Option<(bool, bool)> {
    let o = crate::init::mount_options(m.options().as_deref().unwrap_or(&[]));
    let own = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    (o.idmap || own).then_some((
        o.recursive,
        o.recursive_idmap || (own && !o.idmap && o.recursive),
    ))
}

/// What the spec's idmapped mounts need, checked at load: bind mounts, both mappings or
/// neither, and mappings to use.
pub fn validate(spec: &Spec) -> std::result::Result<(), String> {
    for m in spec.mounts().iter().flatten() {
        if wanted(m).is_none() {
            continue;
        }
        let dest = m.destination().display();
        let o = crate::init::mount_options(m.options().as_deref().unwrap_or(&[]));
        if !(o.bind || m.typ().as_deref() == Some("bind")) {
            return Err(format!(
                "mounts: {dest}: idmapped mounts are bind mounts (add \"rbind\" or \"bind\")"
            ));
        }
        let own = Maps {
            uid: m.uid_mappings().clone().unwrap_or_default(),
            gid: m.gid_mappings().clone().unwrap_or_default(),
        };
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            own.validate()
                .map_err(|e| format!("mounts: {dest}: {}", e.replace("linux.", "")))?;
        } else if !crate::userns::in_userns(spec) {
            return Err(format!(
                "mounts: {dest}: idmap without uidMappings/gidMappings takes the container's user namespace, and it has none"
            ));
        }
    }
    Ok(())
}

/// Prepares the idmapped trees of the spec's mounts, by mount index (run by `create`
/// before the clone; bind sources relative to `bundle`).
pub fn prepare(spec: &Spec, bundle: &Path) -> Result<Vec<Option<Idmapped>>> {
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let mut out = Vec::with_capacity(mounts.len());
    // One throwaway user namespace per distinct mapping.
    let mut namespaces: HashMap<String, OwnedFd> = HashMap::new();
    let mut joined: Option<OwnedFd> = None;
    for m in mounts {
        let Some((rbind, recursive)) = wanted(m) else {
            out.push(None);
            continue;
        };
        let own = m.uid_mappings().is_some() || m.gid_mappings().is_some();
        let maps = if own {
            Some(Maps {
                uid: m.uid_mappings().clone().unwrap_or_default(),
                gid: m.gid_mappings().clone().unwrap_or_default(),
            })
        } else if crate::userns::new_userns(spec) {
            Some(Maps::of(spec))
        } else {
            None
        };
        let (map_text, userns) = match &maps {
            Some(maps) => {
                let text = maps.idmap_option();
                if !namespaces.contains_key(&text) {
                    namespaces.insert(text.clone(), maps.namespace()?);
                }
                (text.clone(), namespaces[&text].as_fd())
            }
            None => {
                // The container joins a user namespace by path: its mappings.
                let path = crate::userns::joined(spec).ok_or_else(|| {
                    Error::Init("idmap: the container has no user namespace".into())
                })?;
                if joined.is_none() {
                    joined = Some(
                        std::fs::File::open(path)
                            .map_err(|e| Error::io(path, e))?
                            .into(),
                    );
                }
                let map = format!("(the mappings of {})", path.display());
                (map, joined.as_ref().expect("just set").as_fd())
            }
        };
        let source = m.source().clone().unwrap_or_default();
        let source = if source.is_relative() {
            bundle.join(source)
        } else {
            source
        };
        explain::comment(&format!(
            "create: an idmapped copy of {} ({map_text}) for {}, put in place by the init",
            source.display(),
            m.destination().display()
        ));
        let tree =
            mount::idmapped_tree(&source, userns, rbind, recursive).map_err(|e| match e {
                Error::Sys { what, err } => Error::Sys {
                    what: format!("mounts: {}: {what}", m.destination().display()),
                    err,
                },
                e => e,
            })?;
        out.push(Some(Idmapped {
            tree,
            source,
            map: map_text,
            recursive: rbind,
        }));
    }
    Ok(out)
}
