//! Decompressing on one thread while another consumes: a member's decoding overlaps the
//! writes that unpack it, so two cores take about the time of the slower half rather
//! than of both (a registry pack's restore, a member's extract, an image streamed into
//! its engine: the next chunk is decoded while the engine reads this one).

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes handed over at a time...
const CHUNK: usize = 1 << 20;
/// ...and how many chunks may wait: memory stays at a few MiB whatever the member's size.
const IN_FLIGHT: usize = 4;

/// Runs `consume` on the bytes of `inner`, which are read on a thread of their own.
/// `inner`'s errors reach `consume` as they were; when `consume` returns early, the
/// reading thread stops at its next chunk.
pub fn read_ahead<R: Read + Send, T>(inner: R, consume: impl FnOnce(&mut (dyn Read + Send)) -> T) -> T {
    let (full_tx, full_rx) = sync_channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
    // Chunks come back to be filled again: no allocation (an mmap each, with musl) per MiB.
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        scope.spawn(move || produce(inner, &full_tx, &empty_rx));
        let mut reader = Ahead { full: full_rx, empty: empty_tx, current: Vec::new(), pos: 0, done: false };
        let result = consume(&mut reader);
        drop(reader); // the producer's next send fails: it stops
        result
    })
}

fn produce<R: Read>(mut inner: R, full: &SyncSender<io::Result<Vec<u8>>>, empty: &Receiver<Vec<u8>>) {
    loop {
        let mut chunk = empty.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        chunk.resize(CHUNK, 0);
        // Whole chunks: a decoder gives a block (128 KiB for zstd) a read.
        let mut filled = 0;
        let mut failed = None;
        while filled < CHUNK {
            match inner.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        chunk.truncate(filled);
        let last = filled < CHUNK;
        if filled > 0 && full.send(Ok(chunk)).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = full.send(Err(e));
            return;
        }
        if last {
            let _ = full.send(Ok(Vec::new()));
            return;
        }
    }
}

struct Ahead {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for Ahead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            let next = match self.full.recv() {
                Ok(next) => next,
                Err(_) => return Err(io::Error::other("the reading thread stopped")),
            };
            let used = std::mem::replace(&mut self.current, next.inspect_err(|_| self.done = true)?);
            let _ = self.empty.try_send(used);
            self.pos = 0;
            if self.current.is_empty() {
                self.done = true;
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `bytes` in reads of `step`, then fails if `fail` is set.
    struct Source {
        bytes: Vec<u8>,
        pos: usize,
        step: usize,
        fail: bool,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.bytes.len() && self.fail {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "damaged at the end"));
            }
            let n = buf.len().min(self.step).min(self.bytes.len() - self.pos);
            buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn every_byte_arrives_in_order_and_errors_pass_through() {
        let bytes: Vec<u8> = (0..(5 * CHUNK + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        for step in [7, 4096, CHUNK, 3 * CHUNK] {
            let source = Source { bytes: bytes.clone(), pos: 0, step, fail: false };
            let got = read_ahead(source, |r| {
                let mut all = Vec::new();
                r.read_to_end(&mut all).map(|_| all)
            });
            assert_eq!(got.unwrap(), bytes, "reads of {step}");
        }
        let failing = Source { bytes: bytes.clone(), pos: 0, step: 65536, fail: true };
        let got = read_ahead(failing, |r| r.read_to_end(&mut Vec::new()));
        assert_eq!(got.unwrap_err().to_string(), "damaged at the end");
    }

    #[test]
    fn a_consumer_that_stops_early_stops_the_reader() {
        // An endless source: read_ahead returns only if the reading thread stops.
        let endless = io::repeat(7);
        let first = read_ahead(endless, |r| {
            let mut some = [0u8; 10];
            r.read_exact(&mut some).map(|_| some)
        });
        assert_eq!(first.unwrap(), [7; 10]);
    }
}
