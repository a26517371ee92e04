//! The volumes on disk and `minc volume create|ls|inspect|rm|prune`.
//!
//! `DATA_ROOT/volumes/NAME/` (mode 0700) holds `volume.json` (name, creation time, whether
//! it is anonymous) and `_data`, what containers see. Which containers use a volume is read
//! from their records (`Record::volumes`), so a volume in use is never removed unless
//! asked to with `-f`. Changes are made under `volumes/.lock`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::containers::{ago, new_id, Containers};
use super::format;
use super::volumes::{valid_volume_name, Used};

/// The volumes on disk.
pub struct VolumeStore {
    dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub created: u64,
    pub anonymous: bool,
}

impl VolumeStore {
    pub fn new(data_root: &Path) -> VolumeStore {
        VolumeStore {
            dir: data_root.join("volumes"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.path(name).join("_data")
    }

    fn lock(&self) -> Result<sysops::lock::Lock> {
        sysops::private_dir::ensure_private(&self.dir, 0o700)
            .with_context(|| format!("{}", self.dir.display()))?;
        let p = self.dir.join(".lock");
        sysops::lock::Lock::acquire(&p).with_context(|| format!("lock {}", p.display()))
    }

    /// Makes the volume (or finds it); returns it and whether it was made now.
    pub fn create(&self, name: &str, anonymous: bool) -> Result<(Volume, bool)> {
        if !valid_volume_name(name) {
            bail!("volume name {name:?} is invalid: letters, digits, '_', '.', '-'");
        }
        let _lock = self.lock()?;
        if let Ok(v) = self.get(name) {
            return Ok((v, false));
        }
        let dir = self.path(name);
        if sysops::explain::enabled() {
            sysops::explain::Cmd::new("mkdir")
                .args(["-p", "-m", "0755"])
                .arg(self.data(name))
                .note(format!("volume {name}; chmod 0700 {}", dir.display()))
                .emit();
        }
        sysops::private_dir::ensure_private(&dir, 0o700)
            .with_context(|| format!("{}", dir.display()))?;
        let data = self.data(name);
        match fs::create_dir(&data) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| format!("{}", data.display()))
            }
            _ => {}
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755))?;
        let v = Volume {
            name: name.to_string(),
            created: crate::state::now(),
            anonymous,
        };
        let meta = dir.join("volume.json");
        let tmp = dir.join("volume.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&v)?)?;
        fs::rename(&tmp, &meta)?;
        Ok((v, true))
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_volume_name(name) {
            bail!("no such volume: {name:?}");
        }
        let p = self.path(name).join("volume.json");
        let data = fs::read(&p).map_err(|_| anyhow!("no such volume: {name}"))?;
        serde_json::from_slice(&data).with_context(|| format!("{}", p.display()))
    }

    pub fn is_empty(&self, name: &str) -> Result<bool> {
        let d = self.data(name);
        Ok(fs::read_dir(&d)
            .with_context(|| format!("{}", d.display()))?
            .next()
            .is_none())
    }

    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out: Vec<Volume> = super::containers::names_in(&self.dir)?
            .iter()
            .filter_map(|n| self.get(n).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a volume and its data (never following a symlink in it).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let _lock = self.lock()?;
        let root = sysops::inroot::Root::open(&self.dir)?.dir(Path::new(""))?;
        root.remove_all(std::ffi::OsStr::new(name))
            .with_context(|| format!("remove volume {name}"))
    }
}

/// Which containers use each volume (by container name).
fn users(data_root: &Path) -> Result<Vec<(String, Used)>> {
    Ok(Containers::new(data_root)
        .all()?
        .into_iter()
        .map(|r| (r.name, r.volumes))
        .collect())
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a named volume (prints its name)
    Create { name: Option<String> },
    /// List volumes
    Ls {
        /// Only names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show volumes as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (-f: also ones in use by a container)
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (-a: named ones too)
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Accepted for Docker compatibility (minc does not ask)
        #[arg(short, long)]
        force: bool,
    },
}

pub fn dispatch(data_root: &Path, c: &VolumeCommand) -> Result<()> {
    let store = VolumeStore::new(data_root);
    let in_use = |name: &str| -> Result<Vec<String>> {
        Ok(users(data_root)?
            .into_iter()
            .filter(|(_, u)| u.named.iter().chain(&u.anonymous).any(|v| v == name))
            .map(|(c, _)| c)
            .collect())
    };
    match c {
        VolumeCommand::Create { name } => {
            let name = name.clone().unwrap_or_else(new_id);
            let (v, _) = store.create(&name, false)?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls { quiet } => {
            let vols = store.list()?;
            if *quiet {
                for v in vols {
                    println!("{}", v.name);
                }
                return Ok(());
            }
            let rows: Vec<Vec<String>> = vols
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        if v.anonymous { "anonymous" } else { "named" }.into(),
                        ago(v.created),
                    ]
                })
                .collect();
            print!(
                "{}",
                format::table(&["VOLUME NAME", "KIND", "CREATED"], &rows)
            );
        }
        VolumeCommand::Inspect { names } => {
            let mut out = Vec::new();
            for n in names {
                let v = store.get(n)?;
                out.push(json!({
                    "Name": v.name,
                    "Driver": "local",
                    "Mountpoint": store.data(&v.name),
                    "CreatedAt": format::rfc3339_secs(v.created),
                    "Anonymous": v.anonymous,
                    "UsedBy": in_use(&v.name)?,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCommand::Rm { force, names } => {
            for n in names {
                store.get(n)?;
                let users = in_use(n)?;
                if !users.is_empty() && !force {
                    bail!(
                        "volume {n} is in use by container {} (rm -f to remove it anyway)",
                        users.join(", ")
                    );
                }
                store.remove(n)?;
                println!("{n}");
            }
        }
        VolumeCommand::Prune { all, .. } => {
            let used: Vec<String> = users(data_root)?
                .into_iter()
                .flat_map(|(_, u)| u.named.into_iter().chain(u.anonymous))
                .collect();
            for v in store.list()? {
                if (v.anonymous || *all) && !used.contains(&v.name) {
                    store.remove(&v.name)?;
                    println!("{}", v.name);
                }
            }
        }
    }
    Ok(())
}
