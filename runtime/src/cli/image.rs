//! `minc images` and `minc image ls|inspect|rm|unpack|import`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::docker::Ctx;
use super::format;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    Ls,
    /// Print an image's config as JSON
    Inspect { name: String },
    /// Remove an image (and the blobs and layers no other image uses)
    Rm { name: String },
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

pub fn ls(ctx: &Ctx) -> Result<()> {
    let rows: Vec<Vec<String>> = store(ctx)?
        .list()?
        .into_iter()
        .map(|i| {
            let digest = i.digest.trim_start_matches("sha256:");
            vec![
                i.name,
                digest[..12.min(digest.len())].to_string(),
                format!("{:.1}MB", i.size as f64 / 1e6),
            ]
        })
        .collect();
    print!("{}", format::table(&["IMAGE", "DIGEST", "SIZE"], &rows));
    Ok(())
}

pub fn dispatch(ctx: &Ctx, c: &ImageCommand) -> Result<()> {
    match c {
        ImageCommand::Ls => ls(ctx)?,
        ImageCommand::Inspect { name } => {
            let img = store(ctx)?.resolve(name)?;
            println!("{}", serde_json::to_string_pretty(&img.config)?);
        }
        ImageCommand::Rm { name } => {
            store(ctx)?
                .remove(name)
                .with_context(|| format!("image rm {name}"))?;
            println!("{name}");
        }
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
