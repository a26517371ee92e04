//! A progress line for imports that take more than a moment, on a terminal only:
//! `minc: importing blob 3/5: 48.2 MB`. Plain `\r` updates at most ten times a second; no
//! thread, no dependency.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    start: Instant,
    last: Instant,
    bytes: u64,
    label: String,
    shown: bool,
}

impl Progress {
    /// Shows progress only if asked and stderr is a terminal.
    pub fn new(wanted: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            start: now,
            last: now,
            bytes: 0,
            label: String::new(),
            shown: false,
        }
    }

    pub fn stage(&mut self, label: String) {
        self.label = label;
    }

    fn add(&mut self, n: usize) {
        self.bytes += n as u64;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        // Quiet for quick imports; then at most ten updates a second.
        if now - self.start < Duration::from_millis(500)
            || now - self.last < Duration::from_millis(100)
        {
            return;
        }
        self.last = now;
        self.shown = true;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Kminc: {}: {:.1} MB",
            self.label,
            self.bytes as f64 / 1e6
        );
        let _ = err.flush();
    }

    /// Wraps a reader so what it reads counts.
    pub fn reader<'a, R: Read + 'a>(&'a mut self, inner: R) -> impl Read + 'a {
        Counting {
            inner,
            progress: self,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.shown {
            let _ = writeln!(
                std::io::stderr(),
                "\r\x1b[Kminc: imported {:.1} MB",
                self.bytes as f64 / 1e6
            );
        }
    }
}

struct Counting<'a, R> {
    inner: R,
    progress: &'a mut Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n);
        Ok(n)
    }
}
