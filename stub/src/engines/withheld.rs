//! The end of an image stream, held back until the bundle is verified.
//!
//! An install streams an image member into the engine while the whole file is still
//! being verified on another thread. No engine commits anything before it has read the
//! archive to its end (dockerd unpacks the whole archive into a temporary directory
//! first; podman copies it to a file first; `ctr import` ingests under a lease it drops
//! when the import fails), so the last bytes wait here until the whole file's digest
//! (which covers the member's bytes) and its signature have passed, or, when nothing
//! verifies in the background, the member's own digest. Should the verdict fail, the
//! engine gets a stream cut off in the middle of a 512-byte tar block: a truncated
//! archive to every tar reader, never one that merely ends early.

use std::io::{self, Read};

use airbin_format::error::Error;
use airbin_format::Bundle;

/// Held back at the end of every stream: well past an archive's end-of-archive blocks
/// and record padding, and never a multiple of 512, so a cut never falls between
/// two tar blocks.
const HELD_BACK: u64 = (1 << 20) + 256;

pub(crate) struct WithheldTail<'a, R> {
    inner: R,
    bundle: &'a Bundle,
    /// Called once, when the engine has had the last byte.
    on_end: &'a (dyn Fn() + Sync),
    ended: bool,
    /// Bytes passed through before the tail is held back.
    release_at: u64,
    passed: u64,
    tail: Option<io::Cursor<Vec<u8>>>,
    /// What stopped the stream, when it was ours (damage, the verdict, an interrupt).
    pub(crate) failure: Option<Error>,
}

impl<'a, R: Read> WithheldTail<'a, R> {
    /// `size` is the content's length from the index; `on_end` hears when the whole
    /// stream has been read (every byte before it, written to the engine).
    pub(crate) fn new(inner: R, bundle: &'a Bundle, size: u64, on_end: &'a (dyn Fn() + Sync)) -> Self {
        WithheldTail {
            inner,
            bundle,
            on_end,
            ended: false,
            release_at: size.saturating_sub(HELD_BACK),
            passed: 0,
            tail: None,
            failure: None,
        }
    }

    /// Keeps our own errors (damage, the verdict, an interrupt) to report as they are.
    fn fail(&mut self, e: io::Error) -> io::Error {
        if let Some(ours) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            self.failure = Some(ours.clone());
        }
        e
    }

    /// Reads the rest of the content (its size, and its digest unless the whole file's
    /// vouches for it, are checked at its end), then waits for the whole file's verdict.
    fn fill_tail(&mut self) -> io::Result<()> {
        let mut tail = Vec::with_capacity(HELD_BACK as usize);
        if let Err(e) = self.inner.read_to_end(&mut tail) {
            return Err(self.fail(e));
        }
        if let Err(verdict) = self.bundle.await_verified() {
            return Err(self.fail(verdict.into()));
        }
        self.tail = Some(io::Cursor::new(tail));
        Ok(())
    }
}

impl<R: Read> Read for WithheldTail<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(tail) = &mut self.tail {
            let n = tail.read(buf)?;
            if n == 0 && !buf.is_empty() && !self.ended {
                self.ended = true;
                (self.on_end)();
            }
            return Ok(n);
        }
        // A failed verdict stops the stream at once, not only at its end.
        if let Some(verdict) = self.bundle.verification_failed() {
            return Err(self.fail(verdict.into()));
        }
        if self.passed < self.release_at {
            let want = (self.release_at - self.passed).min(buf.len() as u64) as usize;
            // A content reader that ends early says so itself: zero is never silent.
            let n = self.inner.read(&mut buf[..want]).map_err(|e| self.fail(e))?;
            self.passed += n as u64;
            return Ok(n);
        }
        self.fill_tail()?;
        self.read(buf)
    }
}
