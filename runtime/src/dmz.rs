//! Running the container's program without exposing minc's own binary (CVE-2019-5736).
//!
//! The init and the `exec` helper are forks of the host's minc. If either execve()d a program
//! that turns out to be `#!/proc/self/exe`, the kernel would resolve /proc/self/exe in that
//! process and run the host's minc inside the container, where it can be grabbed and
//! overwritten. So both processes (1) make themselves non-dumpable as soon as they exist
//! (prctl(PR_SET_DUMPABLE, 0): their /proc files become inaccessible to the container's
//! processes, which lack CAP_SYS_PTRACE), and (2) exec the program through minc-dmz, a
//! few-kilobyte stub (runtime/dmz/main.rs) run from a memfd sealed against any change. In
//! the container, /proc/self/exe can then only ever name that sealed memfd.
//!
//! Cost: one memfd with a 6 KB copy per container, and one extra execve of a 6 KB static
//! program. runc (libcontainer/exeseal) and crun (cloned_binary.c) copy their whole binary
//! into a memfd instead. Man pages: memfd_create(2), fcntl(2) (file seals), execveat(2),
//! prctl(2) (PR_SET_DUMPABLE), proc(5) (/proc/pid/exe).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::{check, Error, Result};

static DMZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/minc-dmz"));

/// The sealed stub, ready to be exec'd.
pub struct Dmz(OwnedFd);

const MFD_CLOEXEC: libc::c_uint = 0x1;
const MFD_ALLOW_SEALING: libc::c_uint = 0x2;
const MFD_EXEC: libc::c_uint = 0x10;
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

impl Dmz {
    /// Copies the stub into a new memfd and seals it: from here on nobody, root included,
    /// can change its contents.
    pub fn new() -> Result<Dmz> {
        let name = c"minc-dmz";
        let create = |flags: libc::c_uint| {
            // SAFETY: valid name; returns a fresh fd or -1.
            unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) as RawFd }
        };
        // MFD_EXEC (Linux 6.3) keeps the memfd executable where vm.memfd_noexec asks for
        // non-executable memfds by default; older kernels reject the flag.
        let mut fd = create(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
        if fd < 0 {
            fd = create(MFD_CLOEXEC | MFD_ALLOW_SEALING);
        }
        check(fd, || "memfd_create for minc-dmz".into())?;
        // SAFETY: fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, DMZ).map_err(|e| Error::sys("write minc-dmz", e))?;
        let fd = OwnedFd::from(f);
        // SAFETY: fcntl on our fd.
        check(
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) },
            || "seal minc-dmz".into(),
        )?;
        Ok(Dmz(fd))
    }

    /// Replaces this process with the stub, which marks `errfd` close-on-exec and execs
    /// `program`; a failure of that execve comes back on `errfd` as `Msg::ExecFailed`.
    /// Returns only if the stub itself could not be executed.
    pub fn exec(&self, errfd: RawFd, program: &Path, args: &[String], env: &[String]) -> Error {
        use std::os::unix::ffi::OsStrExt;
        // The stub must inherit errfd; it sets close-on-exec again itself.
        // SAFETY: fcntl on an fd we hold.
        unsafe { libc::fcntl(errfd, libc::F_SETFD, 0) };
        let c = |b: &[u8]| CString::new(b).unwrap_or_default();
        let mut argv: Vec<CString> = vec![
            c(b"minc-dmz"),
            c(errfd.to_string().as_bytes()),
            c(program.as_os_str().as_bytes()),
        ];
        argv.extend(args.iter().map(|a| c(a.as_bytes())));
        let envp: Vec<CString> = env.iter().map(|e| c(e.as_bytes())).collect();
        let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
        envp_p.push(std::ptr::null());
        // SAFETY: null-terminated arrays of valid C strings that outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.0.as_raw_fd(),
                c"".as_ptr(),
                argv_p.as_ptr(),
                envp_p.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        Error::last("exec minc-dmz")
    }
}

/// Makes this process non-dumpable: its /proc/PID entries (exe, fd, mem, ...) become
/// reachable only with CAP_SYS_PTRACE. execve() of the program makes it dumpable again.
pub fn make_non_dumpable() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    check(
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) },
        || "make the process non-dumpable".into(),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_memfd_refuses_writes() {
        let d = Dmz::new().unwrap();
        let path = format!("/proc/self/fd/{}", d.0.as_raw_fd());
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let err = std::io::Write::write_all(&mut f, b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), DMZ);
    }
}
