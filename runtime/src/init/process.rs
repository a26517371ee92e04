//! The last steps before `execve`: rlimits, the executable lookup, user and groups,
//! capabilities and no_new_privs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::Capability;

use crate::error::{check, Error, Result};
use crate::explain;
use crate::spec::{Capabilities, Process, Rlimit};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// Applies the spec's rlimits. Raising a hard limit needs CAP_SYS_RESOURCE in the host's user
/// namespace; without it the error says so instead of a bare EPERM.
pub fn set_rlimits(rlimits: &[Rlimit]) -> Result<()> {
    for r in rlimits {
        let res = rlimit_resource(&r.kind)
            .ok_or_else(|| Error::Init(format!("unknown rlimit type {:?}", r.kind)))?;
        explain!(
            "prlimit --pid $$ --{}={}:{}",
            prlimit_name(&r.kind),
            r.soft,
            r.hard
        );
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: valid rlimit struct.
        if unsafe { libc::setrlimit(res, &lim) } < 0 {
            let err = std::io::Error::last_os_error();
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: valid out-pointer.
            unsafe { libc::getrlimit(res, &mut cur) };
            if err.raw_os_error() == Some(libc::EPERM) && r.hard > cur.rlim_max {
                return Err(Error::Init(format!(
                    "rlimit {}: hard limit {} is above the current hard limit {} and raising it needs CAP_SYS_RESOURCE, which this host does not grant",
                    r.kind, r.hard, cur.rlim_max
                )));
            }
            return Err(Error::sys(format!("rlimit {}", r.kind), err));
        }
    }
    Ok(())
}

fn prlimit_name(kind: &str) -> String {
    match kind {
        "RLIMIT_NOFILE" => "nofile".into(),
        "RLIMIT_NPROC" => "nproc".into(),
        other => other.trim_start_matches("RLIMIT_").to_ascii_lowercase(),
    }
}

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
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return check_file(&p)
            .map(|_| p)
            .map_err(|why| Error::Init(format!("exec {arg0}: {why}")));
    }
    let path = env_get(env, "PATH").unwrap_or(DEFAULT_PATH);
    let mut first_err = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        match check_file(&p) {
            Ok(()) => return Ok(p),
            Err(why) if p.exists() && first_err.is_none() => {
                first_err = Some(format!("exec {}: {why}", p.display()))
            }
            Err(_) => {}
        }
    }
    Err(Error::Init(first_err.unwrap_or_else(|| {
        format!("exec {arg0:?}: executable file not found in $PATH")
    })))
}

/// Parses capability names into a bit mask; unknown names are reported and skipped, as runc
/// does, so a spec written for a newer kernel still runs.
fn cap_mask(names: &[String]) -> u64 {
    names
        .iter()
        .fold(0, |mask, n| match Capability::from_str(n) {
            Ok(c) => mask | c.bitmask(),
            Err(_) => {
                tracing::warn!("ignoring unknown capability {n}");
                mask
            }
        })
}

/// Drops every capability not in the spec's bounding set (needs CAP_SETPCAP, so this happens
/// before the user switch).
pub fn drop_bounding(c: &Capabilities) -> Result<()> {
    let keep = cap_mask(&c.bounding);
    let current = caps::read(None, caps::CapSet::Bounding)
        .map_err(|e| Error::Init(format!("read bounding set: {e}")))?;
    let mut dropped = Vec::new();
    for cap in current {
        if keep & cap.bitmask() == 0 {
            caps::drop(None, caps::CapSet::Bounding, cap)
                .map_err(|e| Error::Init(format!("drop {cap} from bounding set: {e}")))?;
            dropped.push(cap.to_string().to_ascii_lowercase());
        }
    }
    if !dropped.is_empty() {
        dropped.sort();
        explain!("capsh --drop={}", dropped.join(","));
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets effective, permitted and inheritable in one capset(2) (setting them one at a time can
/// fail in between, when effective would exceed permitted), then raises the ambient ones.
pub fn set_capabilities(c: &Capabilities) -> Result<()> {
    // An inheritable capability outside the bounding set could come back at the next
    // execve (through ambient or file capabilities): the kernel refuses it with EPERM unless
    // this process already had it inheritable, so refuse it always, the same way. (An ambient
    // one needs to be inheritable too; if it is not, it cannot be raised: see below.)
    let bounding = cap_mask(&c.bounding);
    let outside = |n: &&String| cap_mask(std::slice::from_ref(*n)) & !bounding != 0;
    if let Some(n) = c.inheritable.iter().find(outside) {
        let set = if c.ambient.contains(n) {
            "ambient and inheritable"
        } else {
            "inheritable"
        };
        return Err(Error::sys(
            format!("capability {n} is {set} but not in the bounding set"),
            std::io::Error::from_raw_os_error(libc::EPERM),
        ));
    }
    for n in c.ambient.iter().filter(outside) {
        tracing::warn!("ambient capability {n} is not in the bounding set: not raised");
    }
    let (e, p, i) = (
        cap_mask(&c.effective),
        cap_mask(&c.permitted),
        cap_mask(&c.inheritable),
    );
    let hdr = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    explain!(
        "capsh --caps=\"{}+eip\"   # effective {e:#x}, permitted {p:#x}, inheritable {i:#x}",
        c.permitted.join(",").to_ascii_lowercase()
    );
    // SAFETY: header and two data structs as capset v3 expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    check(r as i32, || "capset".into())?;
    for name in &c.ambient {
        if let Ok(cap) = Capability::from_str(name) {
            // SAFETY: prctl with integer arguments.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap.index() as libc::c_ulong,
                    0,
                    0,
                )
            };
            // Ambient needs the capability in inheritable too; runc's own default spec lists
            // ambient without inheritable, so like runc, skip what cannot be raised.
            if r < 0 {
                tracing::debug!("cannot raise ambient {name}: not inheritable");
            }
        }
    }
    Ok(())
}

/// Switches to the spec's user. Capabilities survive the switch (PR_SET_KEEPCAPS) so that
/// `set_capabilities` can then set exactly the spec's sets.
pub fn set_user(p: &Process) -> Result<()> {
    let u = &p.user;
    explain!(
        "setpriv --reuid={} --regid={} --groups={}",
        u.uid,
        u.gid,
        if u.additional_gids.is_empty() {
            "-".to_string()
        } else {
            u.additional_gids
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    );
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0), || {
            "keepcaps".into()
        })?;
        check(
            libc::setgroups(u.additional_gids.len(), u.additional_gids.as_ptr()),
            || "setgroups".into(),
        )?;
        check(libc::setgid(u.gid), || format!("setgid {}", u.gid))?;
        check(libc::setuid(u.uid), || format!("setuid {}", u.uid))?;
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0), || {
            "keepcaps".into()
        })?;
        if let Some(mask) = u.umask {
            libc::umask(mask);
        }
    }
    Ok(())
}

pub fn set_no_new_privileges() -> Result<()> {
    explain!("setpriv --no-new-privs");
    // SAFETY: prctl with integer arguments.
    check(
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
        || "no_new_privs".into(),
    )
    .map(|_| ())
}

/// The environment the process gets: the spec's, plus HOME when it is missing (from the
/// container's /etc/passwd, else `/`), as runc does.
pub fn environment(p: &Process) -> Vec<String> {
    let mut env = p.env.clone();
    if env_get(&env, "HOME").is_none() {
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| {
                passwd.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 5 && f[2].parse() == Ok(p.user.uid)).then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

/// Replaces this process with the container's program. Returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> Error {
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
    let cargs: Vec<CString> = args.iter().map(|a| to_c(a)).collect();
    let cenv: Vec<CString> = env.iter().map(|a| to_c(a)).collect();
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: null-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(cpath.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Error::last(format!("exec {}", path.display()))
}

/// Undoes what the Rust runtime and the parent set up that must not leak into the container:
/// SIGPIPE ignored (std does that at startup) and the blocked signal mask.
pub fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of this thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
    fn cap_names() {
        assert_eq!(cap_mask(&["CAP_KILL".into(), "CAP_BOGUS".into()]), 1 << 5);
    }
}
