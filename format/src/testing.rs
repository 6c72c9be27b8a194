//! Test helpers of the format crate's unit tests.

use std::io::{self, Read};

/// A reader that returns short reads of pseudo-random sizes (at least one byte, often
/// far less than asked for), as a pipe or a decompressor may: parsers that assume full
/// buffers fail here first (tar-rs's `RandomReader` is the model).
pub struct ShortReads<R> {
    inner: R,
    state: u64,
}

impl<R: Read> ShortReads<R> {
    pub fn new(inner: R, seed: u64) -> ShortReads<R> {
        ShortReads { inner, state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1 }
    }
}

impl<R: Read> Read for ShortReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // xorshift64: a cheap, reproducible sequence.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let cap = 1 + (self.state % 700) as usize;
        let len = buf.len().min(cap);
        self.inner.read(&mut buf[..len])
    }
}

/// A tar stream of regular files (name, content), each mode 0644.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, *data).unwrap();
    }
    tar.into_inner().unwrap()
}
