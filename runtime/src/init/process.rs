//! What the container's process is made of, read from the spec: its identity (user, groups,
//! capabilities), rlimits, environment and the program to run. The privileged steps that
//! apply them are in `ops::process`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ops::process::{cap_mask, Identity, Rlimit};
use crate::spec::{self, Process};

/// The PATH a container gets when its spec and image say nothing (Docker's and runc's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The value of a variable in an `env` list (`KEY=value`).
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Finds the program to run in the (already pivoted) root, like execvp would, so that a
/// missing or non-executable binary fails `create` with a clear message instead of failing
/// later, unseen, after `start`.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let check_file = |p: &Path| -> std::result::Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => e.to_string(),
        })?;
        if meta.is_dir() {
            return Err("is a directory".into());
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("permission denied (not executable)".into());
        }
        Ok(())
    };
    let fail = |program: &str, reason: String| Error::Exec {
        program: program.to_string(),
        not_found: reason.starts_with("no such") || reason.contains("not found"),
        reason,
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return check_file(&p).map(|_| p).map_err(|why| fail(arg0, why));
    }
    let path = env_get(env, "PATH").unwrap_or(DEFAULT_PATH);
    let mut first_err = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        match check_file(&p) {
            Ok(()) => return Ok(p),
            Err(why) if p.exists() && first_err.is_none() => {
                first_err = Some(fail(&p.display().to_string(), why))
            }
            Err(_) => {}
        }
    }
    Err(first_err.unwrap_or_else(|| {
        fail(
            &format!("{arg0:?}"),
            "executable file not found in $PATH".into(),
        )
    }))
}

/// The process identity the spec asks for.
pub fn identity(p: &Process) -> Result<Identity> {
    let u = p.user();
    let mut id = Identity {
        uid: u.uid(),
        gid: u.gid(),
        groups: u.additional_gids().clone().unwrap_or_default(),
        umask: u.umask(),
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        ..Default::default()
    };
    if let Some(c) = p.capabilities() {
        let mask = |set: &Option<oci_spec::runtime::Capabilities>| -> Result<u64> {
            let names: Vec<String> = set.iter().flatten().map(|c| format!("CAP_{c}")).collect();
            cap_mask(names.iter().map(String::as_str))
        };
        id.bounding = mask(c.bounding())?;
        id.effective = mask(c.effective())?;
        id.permitted = mask(c.permitted())?;
        id.inheritable = mask(c.inheritable())?;
        id.ambient = mask(c.ambient())?;
    }
    Ok(id)
}

/// The spec's rlimits.
pub fn rlimits(p: &Process) -> Result<Vec<Rlimit>> {
    p.rlimits()
        .iter()
        .flatten()
        .map(|r| Rlimit::new(&r.typ().to_string(), r.soft(), r.hard()))
        .collect()
}

/// Sets `KEY=value` in an environment list, replacing an earlier value of KEY.
pub fn env_set(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or(kv);
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}

/// The environment the process gets: the spec's, plus HOME when it is missing (from the
/// container's /etc/passwd, else `/`), as runc does.
pub fn environment(p: &Process) -> Vec<String> {
    let mut env = spec::env(p).to_vec();
    if env_get(&env, "HOME").is_none() {
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| {
                passwd.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 5 && f[2].parse() == Ok(p.user().uid())).then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

/// Undoes what the Rust runtime and the parent set up that must not leak into the container:
/// ignored signals (std ignores SIGPIPE; `nohup` or a shell may have ignored SIGHUP, SIGINT,
/// SIGQUIT; an ignored disposition survives execve) and the blocked signal mask. The
/// program starts with every signal at its default, as in a fresh login.
pub fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of this thread.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Marks every inherited descriptor above stderr (plus `preserve` more) close-on-exec, so
/// nothing of minc's leaks into the container.
pub fn close_fds_on_exec(preserve: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + preserve,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lookup_uses_last_value() {
        let env = vec!["PATH=/a".to_string(), "X=1".into(), "PATH=/b".into()];
        assert_eq!(env_get(&env, "PATH"), Some("/b"));
        assert_eq!(env_get(&env, "PAT"), None);
    }

    #[test]
    fn executable_lookup() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_executable("sh", &env).is_ok());
        let e = find_executable("no-such-binary-xyz", &env).unwrap_err();
        assert!(e.to_string().contains("executable file not found"), "{e}");
        let e = find_executable("/etc/passwd", &env).unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
    }

    #[test]
    fn env_set_replaces() {
        let mut env = vec!["A=1".to_string(), "B=2".into()];
        env_set(&mut env, "A=3");
        assert_eq!(env, ["B=2", "A=3"]);
    }
}
