//! `minc images` and `minc image ls|inspect|rm|unpack|import`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::docker::Ctx;
use super::format;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    Ls,
    /// Print an image's config as JSON
    Inspect { name: String },
    /// Remove images (and the blobs and layers no other image uses); an image a container
    /// uses is refused unless -f
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Unpack an image's flattened rootfs into DIR
    Unpack { name: String, dir: PathBuf },
    /// Import an OCI layout (dir or tar), a docker-archive or a rootfs tarball
    Import {
        path: PathBuf,
        /// Name and tag to store it under (NAME[:TAG])
        #[arg(long)]
        name: Option<String>,
        /// Entrypoint for a plain rootfs tarball (which has no config)
        #[arg(long)]
        entrypoint: Option<String>,
        /// Command for a plain rootfs tarball
        #[arg(long)]
        cmd: Option<String>,
    },
}

fn store(ctx: &Ctx) -> Result<images::Store> {
    images::Store::open(&ctx.data_root)
        .with_context(|| format!("image store {}", ctx.data_root.display()))
}

/// `minc images`: REPOSITORY, TAG, IMAGE ID (the config digest, as Docker shows it),
/// CREATED, SIZE (compressed, as stored).
pub fn ls(ctx: &Ctx) -> Result<()> {
    let mut rows: Vec<Vec<String>> = store(ctx)?
        .list()?
        .into_iter()
        .map(|i| {
            let id = i.id.trim_start_matches("sha256:");
            let (repo, tag) = match images::ImageName::parse(&i.name) {
                Ok(n) => (
                    n.familiar_repository(),
                    n.tag.clone().unwrap_or_else(|| "<none>".into()),
                ),
                Err(_) => (i.name.clone(), "<none>".into()),
            };
            let created = i
                .created
                .as_deref()
                .and_then(crate::rfc3339::parse_secs)
                .map(super::containers::ago)
                .unwrap_or_else(|| "-".into());
            vec![
                repo,
                tag,
                id[..12.min(id.len())].to_string(),
                created,
                format!("{:.1}MB", i.size as f64 / 1e6),
            ]
        })
        .collect();
    rows.sort();
    print!(
        "{}",
        format::table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    );
    Ok(())
}

/// `minc tag SOURCE TARGET`.
pub fn tag(ctx: &Ctx, source: &str, target: &str) -> Result<()> {
    let r = store(ctx)?
        .add_name(source, target)
        .with_context(|| format!("tag {source} {target}"))?;
    println!("{}", r.name);
    Ok(())
}

/// `minc image rm [-f] NAME...`: an image that a container (running or not) was made from
/// stays unless -f, when that name is its last.
fn rm(ctx: &Ctx, names: &[String], force: bool) -> Result<()> {
    let s = store(ctx)?;
    for name in names {
        let img = s
            .resolve(name)
            .with_context(|| format!("image rm {name}"))?;
        // By name, only that name goes (the image stays while it has others); by id, the
        // image goes.
        use images::reference::normalize;
        let stored = normalize(&img.name);
        let by_name =
            normalize(name) == stored || normalize(&format!("localhost/{name}")) == stored;
        let last_name = !by_name || s.names_of(&img.digest)?.len() <= 1;
        if last_name && !force {
            let users: Vec<String> = super::containers::Containers::new(&ctx.data_root)
                .all()?
                .into_iter()
                .filter(|r| r.image_digest == img.digest)
                .map(|r| r.name)
                .collect();
            if !users.is_empty() {
                bail!(
                    "image rm {name}: in use by container {} (remove it first, or image rm -f)",
                    users.join(", ")
                );
            }
        }
        s.remove(name).with_context(|| format!("image rm {name}"))?;
        println!("{name}");
    }
    Ok(())
}

pub fn dispatch(ctx: &Ctx, c: &ImageCommand) -> Result<()> {
    match c {
        ImageCommand::Ls => ls(ctx)?,
        ImageCommand::Inspect { name } => {
            let img = store(ctx)?.resolve(name)?;
            println!("{}", serde_json::to_string_pretty(&img.config)?);
        }
        ImageCommand::Rm { force, names } => rm(ctx, names, *force)?,
        ImageCommand::Unpack { name, dir } => {
            let s = store(ctx)?;
            let img = s.resolve(name)?;
            s.unpack(&img, dir)
                .with_context(|| format!("unpack {name} into {}", dir.display()))?;
        }
        ImageCommand::Import {
            path,
            name,
            entrypoint,
            cmd,
        } => {
            let split = |s: &Option<String>| {
                s.as_ref()
                    .map(|s| s.split_whitespace().map(String::from).collect::<Vec<_>>())
            };
            let opts = images::ImportOptions {
                name: name.clone(),
                entrypoint: split(entrypoint),
                cmd: split(cmd),
                progress: true,
            };
            let r = store(ctx)?
                .import(path, &opts)
                .with_context(|| format!("import {}", path.display()))?;
            println!("{}", r.name);
        }
    }
    Ok(())
}
