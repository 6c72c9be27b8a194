//! The loader: the program in a bundle's stub region. It carries the runtime
//! (`airbin-stub`) zstd-compressed, unpacks it into memory and runs it there with the same
//! arguments and environment, so that every bundle carries about 1 MB of runtime where the
//! static binary itself takes 2.3 MB.
//!
//! The runtime runs from a memfd. Where the kernel refuses that (`vm.memfd_noexec`, a
//! security policy), the loader writes it into the directory the launcher made for it
//! (`--launcher-tmp`, which the launcher has already seen programs run from); the runtime
//! removes that directory as soon as it starts, as it does the loader's own copy.
//!
//! `no_std` on musl's libc: a `std` program doing as much is 386 KB here; this one, with
//! the decoder, is 125 KB.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_uint, c_void, CStr};

/// The runtime, one zstd frame with its checksum, as builder/build.rs packed it.
static PACKED: &[u8] = include_bytes!(env!("AIRBIN_PACKED_STUB"));

/// `PACKED` as the file on disk has it. Read through a volatile load: the compiler knows
/// what it included and would fold checks of it away, but a copied bundle can differ.
fn packed() -> &'static [u8] {
    unsafe { core::ptr::read_volatile(&PACKED) }
}

/// The exit codes the runtime documents for these failures (the README's "Exit codes").
const EXIT_INTEGRITY: c_int = 3;
const EXIT_HOST_NOT_READY: c_int = 7;

/// Linux 6.3+: ask for an executable memfd explicitly, so `vm.memfd_noexec=1` does not
/// seal it; older kernels reject the flag with EINVAL and make every memfd executable.
const MFD_EXEC: c_uint = 0x0010;

/// Far above the runtime's 2.3 MB, far below what a small host can allocate.
const MAX_RUNTIME: u64 = 64 << 20;

/// The name the runtime gets when it has to run from a file.
const RUNTIME_FILE: &str = "airbin-runtime";

struct Malloc;

unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 {
            return libc::malloc(layout.size()).cast();
        }
        let mut ptr: *mut c_void = core::ptr::null_mut();
        if libc::posix_memalign(&mut ptr, layout.align(), layout.size()) == 0 {
            ptr.cast()
        } else {
            core::ptr::null_mut()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        libc::free(ptr.cast());
    }
}

#[global_allocator]
static ALLOCATOR: Malloc = Malloc;

// The precompiled `core` and `alloc` were built to unwind, so they refer to the
// unwinder; here nothing unwinds (panic = "abort"), and these are never called.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[no_mangle]
extern "C" fn _Unwind_Resume() -> ! {
    unsafe { libc::abort() }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // Only an allocation failure can get here: the runtime needs about 3 MB to unpack.
    let message = format!("airbin: cannot start the runtime ({}); free some memory and run the bundle again\n", info.message());
    write_all(2, message.as_bytes()).ok();
    unsafe { libc::_exit(EXIT_HOST_NOT_READY) }
}

/// The command line as C gave it, kept as pointers so it can be passed on unchanged.
struct Args {
    argv: *const *const c_char,
    envp: *const *const c_char,
    list: &'static [*const c_char],
}

impl Args {
    fn get(&self, at: usize) -> Option<&'static [u8]> {
        self.list.get(at).map(|&arg| unsafe { CStr::from_ptr(arg) }.to_bytes())
    }

    fn has(&self, flag: &[u8]) -> bool {
        (1..self.list.len()).any(|at| self.get(at) == Some(flag))
    }

    fn value_of(&self, flag: &[u8]) -> Option<&'static [u8]> {
        let at = (1..self.list.len()).find(|&at| self.get(at) == Some(flag))?;
        self.get(at + 1)
    }
}

#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    let list = unsafe { core::slice::from_raw_parts(argv, argc.max(0) as usize) };
    let args = Args { argv, envp, list };
    // The launcher's check that the runtime can start from its directory; a "no" makes it
    // try the next one. Answered without unpacking, which would slow every start down.
    if args.get(1) == Some(b"--launcher-probe") {
        return if can_start_here(&args) { 0 } else { 1 };
    }
    let launcher_dir = args.value_of(b"--launcher-tmp").map(lossy);
    if let Some(dir) = &launcher_dir {
        // The launcher's copy of this program: running now, the kernel keeps it alive.
        remove(&format!("{dir}/airbin-stub"), libc::unlink);
    }
    let bundle = args.value_of(b"--bundle").map_or_else(|| String::from("BUNDLE.bin"), lossy);

    let runtime = match unpack() {
        Ok(runtime) => runtime,
        Err(why) => fail(
            &args,
            EXIT_INTEGRITY,
            "integrity",
            &format!(
                "{bundle} is damaged: its runtime does not unpack ({why}); copy the bundle again and compare it with its .sha256 file"
            ),
        ),
    };
    let from_memory = run_from_memory(&runtime, &args);
    let Some(dir) = launcher_dir else {
        fail(
            &args,
            EXIT_HOST_NOT_READY,
            "host-not-ready",
            &format!("cannot run the runtime from memory ({from_memory}); run the bundle through its launcher: sh {bundle}"),
        )
    };
    let from_file = run_from_file(&runtime, &dir, &args);
    fail(
        &args,
        EXIT_HOST_NOT_READY,
        "host-not-ready",
        &format!(
            "cannot start the runtime: from memory: {from_memory}; from {dir}: {from_file}; \
             point TMPDIR at a directory with 5 MB free where programs may run, e.g.: TMPDIR=/root sh {bundle}"
        ),
    )
}

/// From memory when the kernel gives an executable memfd; else from a file beside this
/// program, which needs room for the runtime.
fn can_start_here(args: &Args) -> bool {
    if let Ok(fd) = executable_memfd() {
        unsafe { libc::close(fd) };
        return true;
    }
    let Some(dir) = args.get(0).and_then(|path| path.iter().rposition(|&b| b == b'/').map(|end| &path[..end.max(1)])) else {
        return false;
    };
    let Ok(dir) = alloc::ffi::CString::new(dir) else { return false };
    let mut stats: libc::statvfs = unsafe { core::mem::zeroed() };
    if unsafe { libc::statvfs(dir.as_ptr(), &mut stats) } != 0 {
        return false;
    }
    let free = (stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64);
    // A margin for the file system's own blocks.
    runtime_size().and_then(|size| size.checked_add(256 * 1024)).is_some_and(|needed| free >= needed)
}

/// The runtime's size as its frame records it; `None` when the frame records none.
fn runtime_size() -> Option<u64> {
    let packed = packed();
    let size = unsafe { zstd_sys::ZSTD_getFrameContentSize(packed.as_ptr().cast(), packed.len()) };
    let unusable = [zstd_sys::ZSTD_CONTENTSIZE_ERROR as u64, zstd_sys::ZSTD_CONTENTSIZE_UNKNOWN as u64, 0];
    (!unusable.contains(&size)).then_some(size)
}

/// The runtime's bytes, checked against the frame's checksum: the launcher's `cksum`
/// is skipped on hosts without `cksum`, and a damaged runtime must not run.
fn unpack() -> Result<Vec<u8>, String> {
    let packed = packed();
    // The frame header descriptor, after the 4-byte magic, holds the checksum flag.
    if packed.get(4).is_none_or(|descriptor| descriptor & 0b100 == 0) {
        return Err(String::from("its frame has no checksum"));
    }
    let size = runtime_size().ok_or_else(|| String::from("its frame records no size"))?;
    // Checked before it becomes an allocation: a damaged size is damage, not a lack of memory.
    if size > MAX_RUNTIME {
        return Err(format!("its frame records {size} bytes, more than a runtime can be"));
    }
    let size = size as usize;
    let mut runtime: Vec<u8> = Vec::with_capacity(size);
    // ZSTD_decompress checks the frame's checksum itself.
    let written = unsafe { zstd_sys::ZSTD_decompress(runtime.as_mut_ptr().cast(), size, packed.as_ptr().cast(), packed.len()) };
    if unsafe { zstd_sys::ZSTD_isError(written) } != 0 {
        return Err(lossy(unsafe { CStr::from_ptr(zstd_sys::ZSTD_getErrorName(written)) }.to_bytes()));
    }
    if written != size {
        return Err(String::from("it is shorter than its frame says"));
    }
    // SAFETY: ZSTD_decompress wrote `written` == `size` bytes, within the capacity.
    unsafe { runtime.set_len(size) };
    Ok(runtime)
}

/// Runs the runtime from an anonymous memory file; returns only why it could not.
fn run_from_memory(runtime: &[u8], args: &Args) -> String {
    let fd = match executable_memfd() {
        Ok(fd) => fd,
        Err(why) => return why,
    };
    if let Err(e) = write_all(fd, runtime) {
        unsafe { libc::close(fd) };
        return format!("writing the memfd: {}", describe(e));
    }
    // Close-on-exec is safe here: an ELF binary is mapped before the fd closes.
    unsafe { libc::fexecve(fd, args.argv, args.envp) };
    let why = format!("exec: {}", last_error());
    unsafe { libc::close(fd) };
    why
}

fn executable_memfd() -> Result<c_int, String> {
    let name = c"airbin-stub";
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | MFD_EXEC) };
    if fd < 0 && errno() == libc::EINVAL {
        fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    }
    if fd < 0 {
        return Err(format!("memfd_create: {}", last_error()));
    }
    Ok(fd)
}

/// Runs the runtime from a file in the launcher's directory; returns only why it could not.
fn run_from_file(runtime: &[u8], dir: &str, args: &Args) -> String {
    let Ok(path) = alloc::ffi::CString::new(format!("{dir}/{RUNTIME_FILE}")) else {
        return String::from("the directory's name holds a NUL byte");
    };
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC, 0o700) };
    if fd < 0 {
        return format!("creating {RUNTIME_FILE}: {}", last_error());
    }
    let written = write_all(fd, runtime);
    let closed = unsafe { libc::close(fd) };
    let why = match (written, closed) {
        (Err(e), _) => format!("writing {RUNTIME_FILE}: {}", describe(e)),
        (Ok(()), 0) => {
            unsafe { libc::execve(path.as_ptr(), args.argv, args.envp) };
            format!("exec: {}", last_error())
        }
        (Ok(()), _) => format!("writing {RUNTIME_FILE}: {}", last_error()),
    };
    unsafe { libc::unlink(path.as_ptr()) };
    why
}

/// One line on stderr, and with `--json` one document on stdout, as the launcher and
/// the runtime fail; then exits, leaving nothing of the launcher's behind.
fn fail(args: &Args, code: c_int, class: &str, message: &str) -> ! {
    if let Some(dir) = args.value_of(b"--launcher-tmp") {
        remove(&lossy(dir), libc::rmdir);
    }
    write_all(2, format!("airbin: {message}\n").as_bytes()).ok();
    if args.has(b"--json") {
        let document = format!(
            "{{\"command\":\"\",\"status\":\"failed\",\"exit_code\":{code},\"steps\":[],\"error\":{{\"class\":\"{class}\",\"message\":\"{}\"}},\"log\":null}}\n",
            json_escaped(message)
        );
        write_all(1, document.as_bytes()).ok();
    }
    unsafe { libc::_exit(code) }
}

fn remove(path: &str, how: unsafe extern "C" fn(*const c_char) -> c_int) {
    if let Ok(path) = alloc::ffi::CString::new(path) {
        unsafe { how(path.as_ptr()) };
    }
}

fn write_all(fd: c_int, mut bytes: &[u8]) -> Result<(), c_int> {
    while !bytes.is_empty() {
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        if n == 0 {
            return Err(libc::EIO);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

fn errno() -> c_int {
    unsafe { *libc::__errno_location() }
}

fn last_error() -> String {
    describe(errno())
}

fn describe(code: c_int) -> String {
    lossy(unsafe { CStr::from_ptr(libc::strerror(code)) }.to_bytes())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
