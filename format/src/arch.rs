//! The architectures a bundle may be for. Specs and the index name them as Debian and
//! Docker do (`amd64`, `arm64`); `uname -m` and Rust name the same machines `x86_64` and
//! `aarch64`. Both spellings are accepted where people write them; the index records
//! the first.

pub struct Arch {
    /// The bundle's name for it: specs, the index, file names, image configs.
    pub name: &'static str,
    /// What `uname -m` prints on a Linux host of this architecture.
    pub machine: &'static str,
}

pub const ARCHES: [Arch; 2] = [Arch { name: "amd64", machine: "x86_64" }, Arch { name: "arm64", machine: "aarch64" }];

/// The bundle name for an arch written either way (`aarch64` → `arm64`).
pub fn canonical(written: &str) -> Option<&'static str> {
    ARCHES.iter().find(|arch| arch.name == written || arch.machine == written).map(|arch| arch.name)
}

/// The `uname -m` machine of a bundle arch.
pub fn machine(name: &str) -> Option<&'static str> {
    ARCHES.iter().find(|arch| arch.name == name).map(|arch| arch.machine)
}

/// The bundle arch this program was built for: what its own stub runs on.
pub fn native() -> &'static str {
    ARCHES.iter().find(|arch| arch.machine == std::env::consts::ARCH).map_or(std::env::consts::ARCH, |arch| arch.name)
}

/// Every accepted spelling, for messages: "amd64 (or x86_64) or arm64 (or aarch64)".
pub fn spellings() -> String {
    ARCHES.iter().map(|arch| format!("{} (or {})", arch.name, arch.machine)).collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_name_one_arch() {
        assert_eq!(canonical("aarch64"), Some("arm64"));
        assert_eq!(canonical("arm64"), Some("arm64"));
        assert_eq!(canonical("x86_64"), Some("amd64"));
        assert_eq!(canonical("amd64"), Some("amd64"));
        assert_eq!(canonical("arm"), None);
        assert_eq!(canonical("AMD64"), None);
        assert_eq!(machine("arm64"), Some("aarch64"));
        assert_eq!(canonical(native()), Some(native()));
        assert_eq!(spellings(), "amd64 (or x86_64) or arm64 (or aarch64)");
    }
}
