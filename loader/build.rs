// musl's libc.a goes last on the link line: the C decoder (zstd-sys) needs memcpy and
// friends from it, and a `#[link]` in main.rs would put it before zstd-sys.
fn main() {
    println!("cargo:rustc-link-arg-bins=-lc");
    println!("cargo:rerun-if-changed=build.rs");
}
