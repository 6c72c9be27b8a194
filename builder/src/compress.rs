//! Compressing members: choosing the codec (`auto` stores inputs that are already
//! compressed or do not compress) and the streaming encoders, multi-threaded on the
//! build host's cores.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use airbin_stub::format::Codec;

use crate::spec::Compression;

/// zstd's default level here: most of level 19's ratio on typical image layers at a
/// fraction of its time (see hack/bench.sh).
pub const ZSTD_DEFAULT_LEVEL: i32 = 12;
pub const XZ_DEFAULT_PRESET: u32 = 6;
/// How much of an input `auto` test-compresses to see whether compression pays.
const SAMPLE: usize = 4 << 20;

fn threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
}

/// A compressed stream, known by its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressed {
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

/// What compressed `head`, the first bytes of a stream, if anything did.
pub fn compressed_as(head: &[u8]) -> Option<Compressed> {
    const MAGIC: [(&[u8], Compressed); 4] = [
        (&[0x1f, 0x8b], Compressed::Gzip),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], Compressed::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd], Compressed::Zstd),
        (b"BZh", Compressed::Bzip2),
    ];
    MAGIC.iter().find(|(magic, _)| head.starts_with(magic)).map(|(_, kind)| *kind)
}

/// Picks the codec for a member. `sample` is the input's first bytes (for a directory,
/// the start of its largest file); `auto` compresses a sample with fast zstd and
/// stores the member as it is when that saves under 3%.
pub fn choose(compression: Compression, sample: &[u8]) -> io::Result<Codec> {
    Ok(match compression {
        Compression::Xz => Codec::Xz,
        Compression::Zstd => Codec::Zstd,
        Compression::None => Codec::None,
        Compression::Auto if compressed_as(sample).is_some() => Codec::None,
        Compression::Auto if sample.len() < 64 => Codec::Zstd,
        Compression::Auto => {
            let packed = zstd::bulk::compress(sample, 3)?;
            if packed.len() as f64 > sample.len() as f64 * 0.97 {
                Codec::None
            } else {
                Codec::Zstd
            }
        }
    })
}

/// Reads up to the auto sample size from the start of a file.
pub fn sample_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut sample = Vec::new();
    File::open(path)?.take(SAMPLE as u64).read_to_end(&mut sample)?;
    Ok(sample)
}

/// A streaming encoder of any codec; `finish` ends the stream.
pub enum Encoder<W: Write> {
    Stored(W),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Xz(liblzma::write::XzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(codec: Codec, level: Option<i32>, out: W) -> io::Result<Encoder<W>> {
        Ok(match codec {
            Codec::None => Encoder::Stored(out),
            Codec::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_DEFAULT_LEVEL))?;
                encoder.multithread(threads())?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
            Codec::Xz => {
                // The threaded encoder writes a multi-block stream, which is what lets the
                // stub's threaded decoder use several cores.
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(threads())
                    .preset(level.map_or(XZ_DEFAULT_PRESET, |l| l as u32))
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(io::Error::other)?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
            }
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Stored(out) => Ok(out),
            Encoder::Zstd(encoder) => encoder.finish(),
            Encoder::Xz(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Stored(out) => out.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
            Encoder::Xz(encoder) => encoder.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Stored(out) => out.flush(),
            Encoder::Zstd(encoder) => encoder.flush(),
            Encoder::Xz(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_stores_what_is_compressed_or_random() {
        assert_eq!(choose(Compression::Auto, &[0x1f, 0x8b, 8, 0]).unwrap(), Codec::None);
        assert_eq!(choose(Compression::Auto, &[0x28, 0xb5, 0x2f, 0xfd, 1]).unwrap(), Codec::None);
        let text = b"lorem ipsum dolor sit amet ".repeat(4000);
        assert_eq!(choose(Compression::Auto, &text).unwrap(), Codec::Zstd);
        // xorshift bytes do not compress.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let random: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(choose(Compression::Auto, &random).unwrap(), Codec::None);
        assert_eq!(choose(Compression::Xz, &random).unwrap(), Codec::Xz);
    }

    #[test]
    fn every_codec_round_trips_through_the_stub_decoders() {
        let data = b"airbin ".repeat(100_000);
        for codec in [Codec::None, Codec::Zstd, Codec::Xz] {
            let mut encoder = Encoder::new(codec, None, Vec::new()).unwrap();
            encoder.write_all(&data).unwrap();
            let packed = encoder.finish().unwrap();
            let decoded = match codec {
                Codec::None => packed,
                Codec::Zstd => zstd::decode_all(&packed[..]).unwrap(),
                Codec::Xz => {
                    let mut out = Vec::new();
                    liblzma::read::XzDecoder::new(&packed[..]).read_to_end(&mut out).unwrap();
                    out
                }
            };
            assert_eq!(decoded, data, "{codec:?}");
        }
    }
}
