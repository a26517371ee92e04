//! The runc-compatible verbs: spec, create, start, state, kill, delete, run, list, ps, exec.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{format, Cli, Command};
use crate::container::{CreateOptions, Runtime};
use crate::spec::DEFAULT_SPEC;
use crate::sys;

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Bundle directory to write config.json into
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
}

/// The options runc's `create` and `run` share.
#[derive(Args, Debug, Default, Clone)]
pub struct BundleFlags {
    /// Write the container's init PID to FILE
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Pass N extra file descriptors (3..3+N) to the container
    #[arg(long = "preserve-fds", value_name = "N")]
    pub preserve_fds: Option<u32>,
    /// Send the pty master of a process.terminal container to the unix socket at PATH
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility
    #[arg(long = "no-pivot", hide = true)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (minc never gives a container a session keyring of
    /// its own)
    #[arg(long = "no-new-keyring", hide = true)]
    pub no_new_keyring: bool,
    /// runc's pidfd socket: not supported (an error, so a client does not wait for it)
    #[arg(long = "pidfd-socket", hide = true, value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
}

impl BundleFlags {
    /// Whether any runc-only option was given (they mark `run` as a bundle run).
    pub fn any(&self) -> bool {
        self.pid_file.is_some() || self.preserve_fds.is_some() || self.console_socket.is_some()
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Bundle directory (config.json + rootfs); default the current directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub flags: BundleFlags,
    /// Container id
    pub id: String,
    /// The global --systemd-cgroup (set by the dispatcher).
    #[arg(skip)]
    pub systemd_cgroup: bool,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// Container id
    id: String,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Send the signal to every process of the container
    #[arg(short, long)]
    all: bool,
    /// Container id
    id: String,
    /// Signal name (TERM, SIGKILL) or number
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill the container first if it is running
    #[arg(short, long)]
    force: bool,
    /// Container id
    id: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Print only ids
    #[arg(short, long)]
    quiet: bool,
}

impl CreateArgs {
    pub fn options(&self, strict: bool) -> Result<CreateOptions> {
        if let Some(p) = &self.flags.pidfd_socket {
            bail!("--pidfd-socket {}: not supported by minc", p.display());
        }
        let preserve_fds = self.flags.preserve_fds.unwrap_or(0);
        check_preserved_fds(preserve_fds)?;
        Ok(CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.flags.pid_file.clone(),
            preserve_fds,
            stdio: None,
            strict,
            console_socket: self.flags.console_socket.clone(),
            console_size: None,
            systemd_cgroup: self.systemd_cgroup,
        })
    }
}

/// `--preserve-fds N` hands fds 3..3+N to the container: each must really be open here (a
/// typo such as 1000000 is refused instead of silently passing whatever happens to be open).
pub fn check_preserved_fds(n: u32) -> Result<()> {
    for fd in 3..3u64 + u64::from(n) {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if fd > i32::MAX as u64 || unsafe { libc::fcntl(fd as i32, libc::F_GETFD) } < 0 {
            bail!("--preserve-fds {n}: file descriptor {fd} is not open");
        }
    }
    Ok(())
}

/// Runs one of the runc-style verbs. A container is named by its exact id, or, for a
/// Docker-like container, by its name or a unique id prefix (see `resolve`).
pub fn dispatch(cli: &Cli) -> Result<i32> {
    let rt = Runtime::new(&cli.root);
    let id = |key: &str| super::resolve::id(&cli.root, &cli.data_root, key);
    match &cli.command {
        Command::Spec(a) => {
            let path = a.bundle.join("config.json");
            if path.exists() {
                bail!("spec: {} already exists", path.display());
            }
            // `spec --rootless` (the global runc option): a spec for running without root,
            // as `runc spec --rootless` writes it.
            let text = if cli.rootless.as_deref().is_some_and(|v| v != "false") {
                crate::spec::rootless_spec()
            } else {
                DEFAULT_SPEC.to_string()
            };
            std::fs::write(&path, text)
                .with_context(|| format!("spec: write {}", path.display()))?;
        }
        Command::Create(a) => {
            let mut opts = a
                .options(cli.strict)
                .with_context(|| format!("create {}", a.id))?;
            opts.systemd_cgroup = cli.systemd_cgroup;
            rt.create(&a.id, &opts)
                .with_context(|| format!("create {}", a.id))?;
        }
        Command::Start(a) => {
            let id = id(&a.id)?;
            rt.start(&id).with_context(|| format!("start {id}"))?;
        }
        Command::State(a) => {
            let id = id(&a.id)?;
            let state = rt.report(&id).with_context(|| format!("state {id}"))?;
            println!("{}", serde_json::to_string_pretty(&state)?);
        }
        Command::Kill(a) => {
            let id = id(&a.id)?;
            // Signal 0 checks the process exists, as kill(2) and runc's `kill ID 0`.
            let sig = (a.signal == "0")
                .then_some(0)
                .or_else(|| sys::parse_signal(&a.signal))
                .ok_or_else(|| crate::Error::BadSignal(a.signal.clone()))
                .with_context(|| format!("kill {id}"))?;
            rt.kill(&id, sig, a.all)
                .with_context(|| format!("kill {id}"))?;
        }
        Command::Delete(a) => {
            let id = id(&a.id)?;
            rt.delete(&id, a.force)
                .with_context(|| format!("delete {id}"))?;
        }
        Command::List(a) => list(&rt, a)?,
        Command::Features => super::features::print()?,
        _ => unreachable!("not a runc-style verb"),
    }
    Ok(0)
}

/// `ps ID`: the container's processes, as runc prints them.
pub fn ps(rt: &Runtime, id: &str, json: bool) -> Result<()> {
    let state = rt.load(id).with_context(|| format!("ps {id}"))?;
    let pids = rt.pids(&state);
    if json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = pids
        .iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            vec![p.to_string(), cmd.trim_end().to_string()]
        })
        .collect();
    print!("{}", format::table(&["PID", "CMD"], &rows));
    Ok(())
}

/// `run -b BUNDLE ID`: create, start, wait, delete (not with `keep`, runc's --keep).
pub fn run(
    rt: &Runtime,
    create: &CreateArgs,
    detach: bool,
    keep: bool,
    strict: bool,
) -> Result<i32> {
    let id = &create.id;
    let opts = create
        .options(strict)
        .with_context(|| format!("run {id}"))?;
    rt.run(id, &opts, detach, keep)
        .with_context(|| format!("run {id}"))
}

fn list(rt: &Runtime, a: &ListArgs) -> Result<()> {
    let states = rt.list().context("list")?;
    if a.quiet {
        for s in &states {
            println!("{}", s.oci.id);
        }
    } else if a.format == "json" {
        let all: Vec<_> = states
            .iter()
            .map(|s| s.report(&rt.dir(&s.oci.id), true))
            .collect();
        println!("{}", serde_json::to_string(&all)?);
    } else {
        let rows: Vec<Vec<String>> = states
            .iter()
            .map(|s| {
                let cur = s.current();
                vec![
                    cur.id,
                    cur.pid.to_string(),
                    cur.status.as_str().to_string(),
                    cur.bundle.display().to_string(),
                    s.created.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            format::table(&["ID", "PID", "STATUS", "BUNDLE", "CREATED"], &rows)
        );
    }
    Ok(())
}
