//! The uncompressed stream of a layer or archive as the tar parser reads it: decompressed
//! (gzip or zstd, by magic bytes), bounded (a 5 MB gzip can expand to terabytes), hashed
//! (the diff_id is the sha256 of the uncompressed tar), and, where the writer stopped right
//! after the last entry's data (umoci `insert` does), padded to the 512-byte block the tar
//! parser expects. The padding is never hashed and never taken as file data.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// What happened to a stream, readable while the parser holds it.
#[derive(Debug, Default)]
pub struct Meter {
    exceeded: Cell<bool>,
    padded: Cell<u64>,
}

impl Meter {
    /// The size bound was hit.
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// Zero bytes supplied past the real end of the stream.
    pub fn padded(&self) -> u64 {
        self.padded.get()
    }
}

/// Reads at most `limit` bytes of `inner`; one more is an error (and sets the meter).
pub struct Limited<R> {
    inner: R,
    left: u64,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte past the limit: if it comes, the stream is too large.
        let want = buf.len().min(self.left.saturating_add(1) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.meter.exceeded.set(true);
            return Err(io::Error::other("size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A reader that hashes what passes through.
pub struct Hashing<R> {
    pub inner: R,
    hash: Sha256,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: Sha256::new(),
        }
    }

    /// Reads what is left (so the digest covers the whole stream) and returns
    /// `sha256:HEX`.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{:x}", self.hash.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// After the real end, zeros up to the next 512-byte boundary (then the end): a tar whose
/// writer left out the padding of the last entry and the end-of-archive blocks parses.
pub struct EndPad<R> {
    pub inner: R,
    pos: u64,
    pad: u64,
    ended: bool,
    meter: Rc<Meter>,
}

impl<R: Read> Read for EndPad<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.ended {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.pos += n as u64;
                return Ok(n);
            }
            self.ended = true;
            self.pad = (512 - self.pos % 512) % 512;
        }
        let n = buf.len().min(self.pad as usize);
        buf[..n].fill(0);
        self.pad -= n as u64;
        self.meter.padded.set(self.meter.padded.get() + n as u64);
        Ok(n)
    }
}

/// The tar stream of a blob: decompressed, at most `limit` bytes, hashed, end-padded.
pub type TarStream<'a> = EndPad<Hashing<Limited<Box<dyn Read + 'a>>>>;

/// Wraps a blob (compressed or not) for the tar parser; the meter tells whether the limit
/// was hit and whether padding was supplied.
pub fn tar_stream<'a>(blob: impl Read + 'a, limit: u64) -> io::Result<(TarStream<'a>, Rc<Meter>)> {
    let meter = Rc::new(Meter::default());
    let stream = crate::digest::decompress(blob)?;
    let limited = Limited {
        inner: stream,
        left: limit,
        meter: meter.clone(),
    };
    let pad = EndPad {
        inner: Hashing::new(limited),
        pos: 0,
        pad: 0,
        ended: false,
        meter: meter.clone(),
    };
    Ok((pad, meter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_hashed_and_padded() {
        let data = vec![7u8; 700];
        let (mut s, meter) = tar_stream(&data[..], 1000).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1024, "padded to the block");
        assert_eq!(meter.padded(), 324);
        let digest = s.inner.finish().unwrap();
        let (want, _) = crate::digest::copy_hashing(&mut &data[..], &mut io::sink()).unwrap();
        assert_eq!(digest, want, "the padding is not hashed");

        let (mut s, meter) = tar_stream(&data[..], 699).unwrap();
        assert!(s.read_to_end(&mut Vec::new()).is_err());
        assert!(meter.exceeded());
        let (mut s, meter) = tar_stream(&data[..], 700).unwrap();
        s.read_to_end(&mut Vec::new()).unwrap();
        assert!(!meter.exceeded(), "exactly the limit is fine");
    }
}
