//! `minc exec`: runc's `exec` in full, for OCI clients (`exec --process FILE --detach
//! --pid-file F [--console-socket S] ID`), and Docker's (`exec [-it] [-d] [-e] [-u] [-w] NAME
//! CMD...`), as one verb.
//!
//! The faces differ in two places only, decided by the container: in one that `minc run
//! IMAGE` made, stdin is /dev/null unless `-i` (Docker), and `-u` may name a user of the
//! image; in a bundle's container stdin is ours (runc) and `-u` is `UID[:GID]`. As in runc,
//! everything after the container is the command (`exec c1 ls -l`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::containers::Containers;
use super::runc::check_preserved_fds;
use super::Cli;
use crate::container::Runtime;
use crate::exec::{process_with, ExecOptions, ProcessFlags};
use crate::relay::Stdin;
use crate::spec;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep stdin open (Docker's -i; a bundle's container always reads stdin)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the process a terminal (a pty of its own)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Return once the process runs
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set an environment variable (KEY=VALUE), repeatable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// User: UID[:GID], or for an image's container also NAME[:GROUP]
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(
        short = 'w',
        long = "cwd",
        visible_alias = "workdir",
        value_name = "DIR"
    )]
    pub cwd: Option<String>,
    /// The whole process as a process.json (runc); no command or process flags with it
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Send the pty master to the unix socket at PATH (with -d and a terminal)
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the process's PID to FILE
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// An additional group, repeatable
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_NET_ADMIN or NET_ADMIN), repeatable
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub caps: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass N extra file descriptors (3..3+N) to the process
    #[arg(long = "preserve-fds", value_name = "N")]
    pub preserve_fds: Option<u32>,
    /// SELinux label (not supported: only an empty one is accepted)
    #[arg(long = "process-label", value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile (not supported: only an empty one is accepted)
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// runc's sub-cgroup placement (not supported)
    #[arg(long = "cgroup", hide = true)]
    pub cgroup: Vec<String>,
    /// runc's pidfd socket (not supported)
    #[arg(long = "pidfd-socket", hide = true)]
    pub pidfd_socket: Option<PathBuf>,
    /// Exec into a paused container too: the process starts once it is resumed
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// The container (id; or name or id prefix of an image's container), then the command
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER [COMMAND]..."
    )]
    pub target: Vec<String>,
}

pub fn exec(cli: &Cli, a: &ExecArgs) -> Result<i32> {
    let (key, mut command) = a.target.split_first().expect("clap requires the container");
    // `exec ID -- CMD...`: the separator is not part of the command.
    if command.first().is_some_and(|c| c == "--") {
        command = &command[1..];
    }
    let id = super::resolve::id(&cli.root, &cli.data_root, key)?;
    let rt = Runtime::new(&cli.root);
    // runc's order: the container first (`does not exist`, `cannot exec in a stopped
    // container`: clients match those words), then the process.
    check_target(&rt, &id).with_context(|| format!("exec {key}"))?;
    let opts = options(cli, &rt, &id, key, command, a).with_context(|| format!("exec {key}"))?;
    rt.exec(&id, &opts).with_context(|| format!("exec {key}"))
}

/// The container must exist and not have stopped (runc's checks and wording).
fn check_target(rt: &Runtime, id: &str) -> Result<()> {
    let state = rt.load(id)?;
    if state.status() == crate::state::Status::Stopped {
        bail!("cannot exec in a stopped container");
    }
    Ok(())
}

fn options(
    cli: &Cli,
    rt: &Runtime,
    id: &str,
    key: &str,
    command: &[String],
    a: &ExecArgs,
) -> Result<ExecOptions> {
    for (flag, value) in [
        ("--process-label", &a.process_label),
        ("--apparmor", &a.apparmor),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            bail!("{flag} {v}: AppArmor and SELinux are not supported by minc");
        }
    }
    if !a.cgroup.is_empty() {
        bail!("--cgroup: sub-cgroups are not supported by minc");
    }
    if a.pidfd_socket.is_some() {
        bail!("--pidfd-socket: not supported by minc");
    }
    let preserve_fds = a.preserve_fds.unwrap_or(0);
    check_preserved_fds(preserve_fds)?;
    let image = Containers::new(&cli.data_root).load(id).ok();
    let process = match &a.process {
        Some(file) => {
            let extra = [
                (!command.is_empty(), "a command"),
                (!a.env.is_empty(), "--env"),
                (a.cwd.is_some(), "--cwd"),
                (a.user.is_some(), "--user"),
                (!a.additional_gids.is_empty(), "--additional-gids"),
                (!a.caps.is_empty(), "--cap"),
                (a.no_new_privs, "--no-new-privs"),
            ];
            if let Some((_, what)) = extra.iter().find(|(given, _)| *given) {
                bail!(
                    "--process {}: {what} cannot be combined with it (the file is the whole process)",
                    file.display()
                );
            }
            let p = spec::load_process(file)?;
            // Clients (conmon) repeat the file's terminal as --tty; a contradiction is an error.
            if a.tty && p.terminal() != Some(true) {
                bail!(
                    "--process {}: --tty, but the file's process.terminal is false",
                    file.display()
                );
            }
            p
        }
        None => {
            if command.is_empty() {
                bail!("no command given (minc exec {key} COMMAND...)");
            }
            for kv in &a.env {
                if !kv.contains('=') || kv.starts_with('=') {
                    bail!("-e {kv}: expected KEY=VALUE");
                }
            }
            let user = match &a.user {
                None => None,
                Some(u) => Some(parse_user(rt, id, u, image.is_some())?),
            };
            let (user, extra_gids) = match user {
                Some((uid, gid, gids)) => (Some((uid, gid)), gids),
                None => (None, Vec::new()),
            };
            let flags = ProcessFlags {
                args: command.to_vec(),
                env: a.env.clone(),
                cwd: a.cwd.clone(),
                user,
                additional_gids: extra_gids
                    .into_iter()
                    .chain(a.additional_gids.iter().copied())
                    .collect(),
                caps: a.caps.clone(),
                no_new_privs: a.no_new_privs.then_some(true),
                tty: a.tty,
            };
            let config = spec::load(&rt.dir(id), false)?;
            process_with(spec::process(&config), &flags)?
        }
    };
    let stdin = if image.is_some() && !a.interactive {
        Stdin::Null
    } else {
        Stdin::Ours
    };
    if process.terminal() == Some(true) && a.interactive && !a.detach && !crate::pty::is_terminal(0)
    {
        bail!("-it: the input device is not a terminal (drop -t to pipe input)");
    }
    Ok(ExecOptions {
        process,
        console_socket: a.console_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds,
        stdin,
        ignore_paused: a.ignore_paused,
    })
}

/// `--user`: `UID[:GID]` (runc); in an image's container also a name looked up in the
/// image's /etc/passwd and /etc/group (Docker). Returns (uid, gid if given, extra groups).
fn parse_user(
    rt: &Runtime,
    id: &str,
    user: &str,
    image: bool,
) -> Result<(u32, Option<u32>, Vec<u32>)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric = |s: &str| s.parse::<u32>().ok();
    if let (Some(uid), None | Some(Some(_))) = (numeric(u), g.map(numeric)) {
        return Ok((uid, g.and_then(numeric), Vec::new()));
    }
    if !image {
        bail!("--user {user}: expected UID[:GID] (numbers)");
    }
    let rootfs = rt.load(id)?.rootfs;
    let (uid, gid, groups) = images::lookup_user(&rootfs, user)?;
    Ok((uid, Some(gid), groups))
}
