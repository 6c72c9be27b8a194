//! Compressing members: choosing the codec (`auto` stores inputs that are already
//! compressed or do not compress) and the streaming encoders, multi-threaded on the
//! build host's cores.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use airbin_format::Codec;

use crate::assemble::spec::Compression;

/// zstd's default level here: most of level 19's ratio on typical image layers at a
/// fraction of its time (see hack/bench.sh).
pub(crate) const ZSTD_DEFAULT_LEVEL: i32 = 12;
pub(crate) const XZ_DEFAULT_PRESET: u32 = 6;
/// The window of zstd members: 16 MiB, what the stub's decoder holds per member.
const ZSTD_WINDOW_LOG: u32 = 24;
/// `auto` test-compresses this many pieces of an input, spread evenly from its start
/// to its end (a registry pack's tar headers and text sit between gzip'd blobs; a
/// `docker save` archive mixes text, binary and incompressible layers)...
const SAMPLES: u64 = 16;
/// ...of this many bytes each (4 MiB in all; an input no larger is taken whole).
const SAMPLE_PIECE: u64 = 256 << 10;
/// `auto` keeps zstd when it saves at least this much of the samples.
const AUTO_MIN_SAVING: f64 = 0.01;

fn threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
}

/// A compressed stream, known by its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compressed {
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

/// What compressed `head`, the first bytes of a stream, if anything did.
pub(crate) fn compressed_as(head: &[u8]) -> Option<Compressed> {
    const MAGIC: [(&[u8], Compressed); 4] = [
        (&[0x1f, 0x8b], Compressed::Gzip),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], Compressed::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd], Compressed::Zstd),
        (b"BZh", Compressed::Bzip2),
    ];
    MAGIC.iter().find(|(magic, _)| head.starts_with(magic)).map(|(_, kind)| *kind)
}

/// Picks the codec for a member. `sample` is pieces spread over the whole input (for a
/// directory, over its largest file: `sample_file`); `auto` compresses them with fast
/// zstd and keeps zstd when that saves at least 1%, else stores the member as it is.
/// Magic numbers decide only for a sample too small to measure: an input that is
/// compressed already can still save (a tar of gzip'd blobs, a gzip of a tar of gzips).
pub(crate) fn choose(compression: Compression, sample: &[u8]) -> io::Result<Codec> {
    Ok(match compression {
        Compression::Xz => Codec::Xz,
        Compression::Zstd => Codec::Zstd,
        Compression::None => Codec::None,
        Compression::Auto if sample.len() < 64 && compressed_as(sample).is_some() => Codec::None,
        Compression::Auto if sample.len() < 64 => Codec::Zstd,
        Compression::Auto => {
            let packed = zstd::bulk::compress(sample, 3)?;
            if (packed.len() as f64) <= sample.len() as f64 * (1.0 - AUTO_MIN_SAVING) {
                Codec::Zstd
            } else {
                Codec::None
            }
        }
    })
}

/// `SAMPLES` pieces of a file spread evenly from its start to its end, one after the
/// other; the whole file when it is no larger than they are.
pub(crate) fn sample_file(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut sample = Vec::new();
    if len <= SAMPLES * SAMPLE_PIECE {
        file.read_to_end(&mut sample)?;
        return Ok(sample);
    }
    let stride = (len - SAMPLE_PIECE) / (SAMPLES - 1);
    for i in 0..SAMPLES {
        let at = if i == SAMPLES - 1 { len - SAMPLE_PIECE } else { i * stride };
        file.seek(SeekFrom::Start(at))?;
        (&mut file).take(SAMPLE_PIECE).read_to_end(&mut sample)?;
    }
    Ok(sample)
}

/// A streaming encoder of any codec; `finish` ends the stream.
pub(crate) enum Encoder<W: Write> {
    Stored(W),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Xz(liblzma::write::XzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(codec: Codec, level: Option<i32>, out: W) -> io::Result<Encoder<W>> {
        Ok(match codec {
            Codec::None => Encoder::Stored(out),
            Codec::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_DEFAULT_LEVEL))?;
                encoder.multithread(threads())?;
                encoder.include_checksum(true)?;
                // Long-distance matching finds what repeats megabytes apart (the same
                // binaries in two images' layers, in a tool); the window the decoder
                // must hold stays small, so the stub's memory stays flat.
                encoder.long_distance_matching(true)?;
                encoder.window_log(ZSTD_WINDOW_LOG)?;
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

    pub(crate) fn finish(self) -> io::Result<W> {
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

    /// xorshift bytes: they do not compress.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x: u64 = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn auto_stores_what_is_compressed_or_random() {
        assert_eq!(choose(Compression::Auto, &[0x1f, 0x8b, 8, 0]).unwrap(), Codec::None);
        assert_eq!(choose(Compression::Auto, &[0x28, 0xb5, 0x2f, 0xfd, 1]).unwrap(), Codec::None);
        let text = b"lorem ipsum dolor sit amet ".repeat(4000);
        assert_eq!(choose(Compression::Auto, &text).unwrap(), Codec::Zstd);
        let random = random(1 << 20, 0x9e3779b97f4a7c15);
        assert_eq!(choose(Compression::Auto, &random).unwrap(), Codec::None);
        assert_eq!(choose(Compression::Xz, &random).unwrap(), Codec::Xz);
    }

    #[test]
    fn auto_keeps_zstd_for_a_few_percent_and_looks_past_the_start() {
        // Incompressible blobs with 3% text between them, like a registry pack's gzip'd
        // layers among its tar headers and manifests: it saves, though barely.
        let mut mixed = Vec::new();
        for i in 0..64 {
            mixed.extend(random(97 << 10, i + 1));
            mixed.extend(format!("{{\"schemaVersion\": 2, \"layer\": {i}}}\n").repeat(120).as_bytes()[..3 << 10].to_vec());
        }
        assert_eq!(choose(Compression::Auto, &mixed).unwrap(), Codec::Zstd);
        // A file whose first 8 MiB do not compress, and whose other 24 MiB are text.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("member");
        let mut data = random(8 << 20, 7);
        data.extend(b"log line: request served in 3 ms\n".repeat((24 << 20) / 33));
        std::fs::write(&path, &data).unwrap();
        let sample = sample_file(&path).unwrap();
        assert_eq!(sample.len() as u64, SAMPLES * SAMPLE_PIECE);
        assert_eq!(&sample[..1024], &data[..1024], "the first piece is the start");
        assert_eq!(&sample[sample.len() - 1024..], &data[data.len() - 1024..], "the last piece is the end");
        assert_eq!(choose(Compression::Auto, &sample).unwrap(), Codec::Zstd);
        // A small file is taken whole.
        std::fs::write(&path, b"small").unwrap();
        assert_eq!(sample_file(&path).unwrap(), b"small");
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
