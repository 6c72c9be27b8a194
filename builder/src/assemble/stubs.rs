//! The stubs this builder carries, one per architecture a bundle may be for (built by
//! builder/build.rs); a bundle gets the one for its arch.

pub(crate) struct Stub {
    /// The bundle arch it runs on (`amd64`, `arm64`).
    pub(crate) arch: &'static str,
    /// The Rust target it was built for.
    pub(crate) target: &'static str,
    /// The loader with the packed runtime inside: what goes into the bundle.
    pub(crate) bytes: &'static [u8],
    /// How big the runtime the loader unpacks is.
    pub(crate) runtime_len: &'static str,
    /// Where the packed runtime lies in `bytes`, and how long it is.
    pub(crate) packed_at: &'static str,
    pub(crate) packed_len: &'static str,
}

impl Stub {
    /// The runtime itself (what `airbin-run` is), unpacked from the stub.
    pub(crate) fn runtime(&self) -> std::io::Result<Vec<u8>> {
        let at: usize = self.packed_at.parse().expect("build.rs writes a number");
        let len: usize = self.packed_len.parse().expect("build.rs writes a number");
        let runtime_len: usize = self.runtime_len.parse().expect("build.rs writes a number");
        zstd::bulk::decompress(&self.bytes[at..at + len], runtime_len)
    }
}

pub(crate) static STUBS: [Stub; 2] = [
    Stub {
        arch: "amd64",
        target: env!("AIRBIN_STUB_AMD64_TARGET"),
        bytes: include_bytes!(env!("AIRBIN_STUB_AMD64_PATH")),
        runtime_len: env!("AIRBIN_RUNTIME_AMD64_LEN"),
        packed_at: env!("AIRBIN_RUNTIME_AMD64_AT"),
        packed_len: env!("AIRBIN_RUNTIME_AMD64_PACKED_LEN"),
    },
    Stub {
        arch: "arm64",
        target: env!("AIRBIN_STUB_ARM64_TARGET"),
        bytes: include_bytes!(env!("AIRBIN_STUB_ARM64_PATH")),
        runtime_len: env!("AIRBIN_RUNTIME_ARM64_LEN"),
        packed_at: env!("AIRBIN_RUNTIME_ARM64_AT"),
        packed_len: env!("AIRBIN_RUNTIME_ARM64_PACKED_LEN"),
    },
];

/// The stub for a canonical bundle arch (the spec has been checked against the same list).
pub(crate) fn for_arch(arch: &str) -> &'static Stub {
    STUBS.iter().find(|stub| stub.arch == arch).unwrap_or_else(|| panic!("no stub for arch {arch}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_a_bundle_may_name_has_its_stub() {
        for arch in airbin_format::arch::ARCHES {
            let stub = for_arch(arch.name);
            assert!(stub.target.starts_with(arch.machine), "{} is built for {}", arch.name, stub.target);
            // ELF, and e_machine says which machine: 62 is x86-64, 183 AArch64.
            assert_eq!(&stub.bytes[..4], b"\x7fELF");
            let e_machine = u16::from_le_bytes([stub.bytes[18], stub.bytes[19]]);
            assert_eq!(e_machine, if arch.name == "amd64" { 62 } else { 183 }, "{}", arch.name);
            // The runtime unpacks from it, for the same machine.
            let runtime = stub.runtime().unwrap();
            assert_eq!(&runtime[..4], b"\x7fELF");
            assert_eq!(u16::from_le_bytes([runtime[18], runtime[19]]), e_machine, "{}", arch.name);
        }
    }
}
