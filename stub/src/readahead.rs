//! Decompressing on one thread while another consumes: a member's decoding overlaps the
//! writes that unpack it, so two cores take about the time of the slower half rather
//! than of both (a registry pack's restore, a member's extract, an image streamed into
//! its engine: the next chunk is decoded while the engine reads this one). A second
//! reader of the same bytes can run beside the first (`read_ahead_shared`): a restore
//! hashes the pack's blobs there while it writes them.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// Bytes handed over at a time...
const CHUNK: usize = 1 << 20;
/// ...and how many chunks may wait: memory stays at a few MiB whatever the member's size.
const IN_FLIGHT: usize = 4;

type Chunk = io::Result<Arc<Vec<u8>>>;

/// Runs `consume` on the bytes of `inner`, which are read on a thread of their own.
/// `inner`'s errors reach `consume` as they were; when `consume` returns early, the
/// reading thread stops at its next chunk.
pub(crate) fn read_ahead<R: Read + Send, T>(inner: R, consume: impl FnOnce(&mut (dyn Read + Send)) -> T) -> T {
    let no_side: Option<fn(&mut (dyn Read + Send))> = None;
    read_ahead_with(inner, no_side, consume).0
}

/// As `read_ahead`, with `side` reading the same bytes on a third thread. The two share
/// each chunk (no copy). `side` falling behind holds the reading back (memory stays
/// bounded); `side` stopping early does not stop `consume`, which still gets every byte.
/// `side` sees an error, not the end, if `inner` fails or `consume` stops early.
pub(crate) fn read_ahead_shared<R: Read + Send, S: Send, T>(
    inner: R,
    side: impl FnOnce(&mut (dyn Read + Send)) -> S + Send,
    consume: impl FnOnce(&mut (dyn Read + Send)) -> T,
) -> (T, S) {
    let (result, side) = read_ahead_with(inner, Some(side), consume);
    (result, side.expect("a side reader was given"))
}

/// The reading thread, `consume` here, and `side` (when given) on a thread of its own.
fn read_ahead_with<R: Read + Send, S: Send, T>(
    inner: R,
    side: Option<impl FnOnce(&mut (dyn Read + Send)) -> S + Send>,
    consume: impl FnOnce(&mut (dyn Read + Send)) -> T,
) -> (T, Option<S>) {
    let (main_tx, main_rx) = sync_channel::<Chunk>(IN_FLIGHT);
    // Chunks come back to be filled again: no allocation (an mmap each, with musl) per MiB.
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        let side = side.map(|side| {
            let (side_tx, side_rx) = sync_channel::<Chunk>(IN_FLIGHT);
            let side_empty = empty_tx.clone();
            (side_tx, scope.spawn(move || side(&mut Ahead::new(side_rx, side_empty))))
        });
        let (side_tx, side) = side.unzip();
        scope.spawn(move || produce(inner, &main_tx, side_tx, &empty_rx));
        let mut reader = Ahead::new(main_rx, empty_tx);
        let result = consume(&mut reader);
        drop(reader); // the producer's next send fails: it stops
        let side = side.map(|side| side.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        (result, side)
    })
}

fn produce<R: Read>(mut inner: R, main: &SyncSender<Chunk>, mut side: Option<SyncSender<Chunk>>, empty: &Receiver<Vec<u8>>) {
    // A side reader that stopped is let go; the main one decides when reading ends.
    let mut send = |chunk: Chunk| -> bool {
        if let Some(tx) = &side {
            let copy = match &chunk {
                Ok(bytes) => Ok(Arc::clone(bytes)),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            if tx.send(copy).is_err() {
                side = None;
            }
        }
        main.send(chunk).is_ok()
    };
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
        if filled > 0 && !send(Ok(Arc::new(chunk))) {
            return;
        }
        if let Some(e) = failed {
            send(Err(e));
            return;
        }
        if last {
            send(Ok(Arc::new(Vec::new())));
            return;
        }
    }
}

struct Ahead {
    full: Receiver<Chunk>,
    empty: SyncSender<Vec<u8>>,
    current: Arc<Vec<u8>>,
    pos: usize,
    done: bool,
}

impl Ahead {
    fn new(full: Receiver<Chunk>, empty: SyncSender<Vec<u8>>) -> Ahead {
        Ahead { full, empty, current: Arc::new(Vec::new()), pos: 0, done: false }
    }
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
            // The last of the readers done with a chunk sends it back.
            if let Some(used) = Arc::into_inner(used) {
                let _ = self.empty.try_send(used);
            }
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

    #[test]
    fn a_side_reader_gets_every_byte_too_and_may_stop_early() {
        let bytes: Vec<u8> = (0..(3 * CHUNK + 999)).map(|i| (i * 13 % 251) as u8).collect();
        let all = |r: &mut (dyn Read + Send)| {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map(|_| all)
        };
        let source = Source { bytes: bytes.clone(), pos: 0, step: 5000, fail: false };
        let (main, side) = read_ahead_shared(source, all, all);
        assert_eq!(main.unwrap(), bytes);
        assert_eq!(side.unwrap(), bytes);

        // A side reader that gives up after a few bytes leaves the main one whole.
        let source = Source { bytes: bytes.clone(), pos: 0, step: 5000, fail: false };
        let (main, side) = read_ahead_shared(source, |r: &mut (dyn Read + Send)| r.read_exact(&mut [0u8; 10]), all);
        assert_eq!(main.unwrap(), bytes);
        side.unwrap();

        // The source's error reaches both; a main reader that stops early ends the side's stream with an error.
        let failing = Source { bytes: bytes.clone(), pos: 0, step: 65536, fail: true };
        let (main, side) = read_ahead_shared(failing, all, all);
        assert_eq!(main.unwrap_err().to_string(), "damaged at the end");
        assert_eq!(side.unwrap_err().to_string(), "damaged at the end");
        let (_, side) = read_ahead_shared(io::repeat(1), all, |r: &mut (dyn Read + Send)| r.read_exact(&mut [0u8; 10]));
        assert!(side.is_err());
    }
}
