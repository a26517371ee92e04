//! The runc-compatible verbs: spec, create, start, state, kill, delete, run, list, ps, exec.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{format, Cli, Command};
use crate::container::{CreateOptions, Runtime};
use crate::exec::ExecOptions;
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
    /// Not supported yet: minc rejects process.terminal
    #[arg(long = "console-socket", hide = true)]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility
    #[arg(long = "no-pivot", hide = true)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility
    #[arg(long = "no-new-keyring", hide = true)]
    pub no_new_keyring: bool,
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

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Set an environment variable (KEY=VALUE), repeatable
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(long)]
    cwd: Option<String>,
    /// Write the process's PID to FILE
    #[arg(long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Container id
    id: String,
    /// The command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl CreateArgs {
    pub fn options(&self) -> Result<CreateOptions> {
        if self.flags.console_socket.is_some() {
            bail!("--console-socket: terminals are not supported yet");
        }
        Ok(CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.flags.pid_file.clone(),
            preserve_fds: self.flags.preserve_fds.unwrap_or(0),
            stdio: None,
            systemd_cgroup: self.systemd_cgroup,
        })
    }
}

/// Runs one of the runc-style verbs.
pub fn dispatch(cli: &Cli) -> Result<i32> {
    let rt = Runtime::new(&cli.root);
    match &cli.command {
        Command::Spec(a) => {
            let path = a.bundle.join("config.json");
            if path.exists() {
                bail!("spec: {} already exists", path.display());
            }
            std::fs::write(&path, DEFAULT_SPEC)
                .with_context(|| format!("spec: write {}", path.display()))?;
        }
        Command::Create(a) => {
            let mut opts = a.options().with_context(|| format!("create {}", a.id))?;
            opts.systemd_cgroup = cli.systemd_cgroup;
            rt.create(&a.id, &opts)
                .with_context(|| format!("create {}", a.id))?;
        }
        Command::Start(a) => {
            rt.start(&a.id).with_context(|| format!("start {}", a.id))?;
        }
        Command::State(a) => {
            let state = rt.state(&a.id).with_context(|| format!("state {}", a.id))?;
            println!("{}", serde_json::to_string_pretty(&state)?);
        }
        Command::Kill(a) => {
            let sig = sys::parse_signal(&a.signal)
                .ok_or_else(|| crate::Error::BadSignal(a.signal.clone()))
                .with_context(|| format!("kill {}", a.id))?;
            rt.kill(&a.id, sig, a.all)
                .with_context(|| format!("kill {}", a.id))?;
        }
        Command::Delete(a) => {
            rt.delete(&a.id, a.force)
                .with_context(|| format!("delete {}", a.id))?;
        }
        Command::List(a) => list(&rt, a)?,
        Command::Exec(a) => {
            let opts = ExecOptions {
                args: a.command.clone(),
                env: a.env.clone(),
                cwd: a.cwd.clone(),
                pid_file: a.pid_file.clone(),
            };
            return rt
                .exec(&a.id, &opts)
                .with_context(|| format!("exec {}", a.id));
        }
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

/// `run -b BUNDLE ID`: create, start, wait, delete.
pub fn run(rt: &Runtime, create: &CreateArgs, detach: bool) -> Result<i32> {
    let id = &create.id;
    let opts = create.options().with_context(|| format!("run {id}"))?;
    rt.run(id, &opts, detach)
        .with_context(|| format!("run {id}"))
}

fn list(rt: &Runtime, a: &ListArgs) -> Result<()> {
    let states = rt.list().context("list")?;
    if a.quiet {
        for s in &states {
            println!("{}", s.oci.id);
        }
    } else if a.format == "json" {
        let all: Vec<_> = states.iter().map(|s| s.current()).collect();
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
                    format::rfc3339_secs(s.created),
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
