//! The `qemu` backend: VMs booted from a base image (`airbin lab image`, or any image
//! whose `image.json` names its disk, kernel, initrd and kernel arguments) with a
//! copy-on-write overlay each, the image's kernel booted directly, the serial console
//! kept per VM. A power cut is the VM's process killed at once; booting again reuses the
//! overlay. KVM when a bounded probe boots under it; otherwise TCG, and the lab says so.
//!
//! Networking: each VM's sshd is forwarded to a loopback port of this host (user-mode
//! network); a pair also shares a private link (a socket netdev between the two VMs)
//! with the addresses the scenario's config names.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;

use airbin_format::error::{Error, IoContext, Result};

use super::{Backend, Machines};
use crate::lab::machine::{lab_key, Endpoint, Machine};

/// How long a VM may take from power on to sshd (TCG on a busy 2-core host is slow).
const BOOT_LIMIT: Duration = Duration::from_secs(240);
/// How long a guest under KVM gets to reach its init before KVM is judged not to work.
const KVM_PROBE: Duration = Duration::from_secs(25);
/// What the lab's init prints on the console once the VM is up.
pub(crate) const UP_MARK: &str = "airbin-lab: ";

/// A base image's description, `image.json` beside its files.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Image {
    pub(crate) disk: PathBuf,
    #[serde(default = "raw")]
    pub(crate) format: String,
    pub(crate) kernel: PathBuf,
    pub(crate) initrd: Option<PathBuf>,
    pub(crate) append: String,
    #[serde(default = "memory")]
    pub(crate) memory_mb: u32,
}

fn raw() -> String {
    "raw".into()
}

fn memory() -> u32 {
    1024
}

impl Image {
    pub(crate) fn load(dir: &Path) -> Result<Image> {
        let file = dir.join("image.json");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::usage(format!("{}: {e}; give the directory `airbin lab image -o DIR` wrote", file.display())))?;
        let mut image: Image = serde_json::from_str(&text).map_err(|e| Error::usage(format!("{}: {e}", file.display())))?;
        for path in [&mut image.disk, &mut image.kernel].into_iter().chain(image.initrd.as_mut()) {
            *path = airbin_format::files::absolute(&dir.join(&*path));
            if !path.is_file() {
                return Err(Error::usage(format!("{}: {} is missing", file.display(), path.display())));
            }
        }
        Ok(image)
    }
}

/// TCG or KVM, and why.
#[derive(Clone, Debug)]
pub(crate) struct Accel {
    pub(crate) kvm: bool,
    pub(crate) why: String,
}

pub(crate) struct Qemu {
    image: Image,
    work: PathBuf,
    key: PathBuf,
    accel: OnceLock<Accel>,
}

impl Qemu {
    pub(crate) fn open(dir: &Path, work: &Path) -> Result<Qemu> {
        for tool in ["qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen"] {
            if !airbin_format::files::on_path(tool) {
                return Err(Error::usage(format!(
                    "--backend qemu needs {tool} on this host: apt-get install qemu-system-x86 qemu-utils openssh-client"
                )));
            }
        }
        let image = Image::load(dir)?;
        let work = work.join("qemu");
        std::fs::create_dir_all(&work).ctx("creating", &work)?;
        let key = work.join("lab_ed25519");
        lab_key(&key)?;
        Ok(Qemu { image, work, key, accel: OnceLock::new() })
    }

    /// KVM if a guest boots under it within the probe's time; TCG otherwise. Decided once.
    pub(crate) fn accel(&self) -> Accel {
        self.accel.get_or_init(|| probe(self)).clone()
    }

    fn public_key(&self) -> Result<String> {
        let text = std::fs::read_to_string(self.key.with_extension("pub")).ctx("reading", &self.key)?;
        Ok(text.split_whitespace().nth(1).unwrap_or_default().to_string())
    }
}

fn probe(qemu: &Qemu) -> Accel {
    let usable = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    if !usable {
        return Accel { kvm: false, why: "no usable /dev/kvm: TCG (emulation: boots take tens of seconds, not a few)".into() };
    }
    // What a probe found holds until the host boots again: later labs skip its wait.
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let known = Path::new(super::RUN_DIR).join("kvm-probe");
    if let Ok(text) = std::fs::read_to_string(&known) {
        let mut lines = text.splitn(3, '\n');
        if let (Some(boot), Some(verdict), Some(why)) = (lines.next(), lines.next(), lines.next()) {
            if boot == boot_id.trim() {
                return Accel { kvm: verdict == "kvm", why: format!("{why} (probed earlier since this host booted)") };
            }
        }
    }
    let accel = probe_boot(qemu);
    let verdict = if accel.kvm { "kvm" } else { "tcg" };
    let _ = std::fs::create_dir_all(super::RUN_DIR);
    let _ = airbin_format::files::write_atomic(&known, format!("{}\n{verdict}\n{}", boot_id.trim(), accel.why).as_bytes(), 0o644);
    accel
}

/// Boots the image under KVM, bounded: does the guest reach its init?
fn probe_boot(qemu: &Qemu) -> Accel {
    let dir = qemu.work.join("kvm-probe");
    let _ = std::fs::remove_dir_all(&dir);
    let booted = std::fs::create_dir_all(&dir).ok().and_then(|_| {
        let mut vm = Vm::create(qemu, &dir, "probe", None, true).ok()?;
        vm.start().ok()?;
        let deadline = Instant::now() + KVM_PROBE;
        while Instant::now() < deadline {
            if std::fs::read_to_string(&vm.console).is_ok_and(|c| c.contains(UP_MARK)) {
                return Some(());
            }
            if vm.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    });
    let _ = std::fs::remove_dir_all(&dir);
    match booted {
        Some(()) => Accel { kvm: true, why: "KVM: a probe guest booted under it".into() },
        None => Accel {
            kvm: false,
            why: format!(
                "/dev/kvm is there but a guest under KVM did not reach its init within {} s (nested KVM hangs after the BIOS on some hosts): TCG, about 5-10x slower to boot",
                KVM_PROBE.as_secs()
            ),
        },
    }
}

impl Backend for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn describe(&self) -> String {
        format!("VMs from {} ({})", self.image.disk.display(), self.accel().why)
    }

    fn no_power_cut(&self) -> Option<String> {
        None
    }

    fn provision(&self, slot: usize, count: usize, dir: &Path) -> Result<Box<dyn Machines + '_>> {
        if count > 2 {
            return Err(Error::usage("the qemu backend gives a scenario one machine or a pair"));
        }
        let kvm = self.accel().kvm;
        // A pair's private link: the first VM listens on a loopback port, the second connects.
        let link = (count == 2).then(free_port).transpose()?;
        let mut vms = Vec::new();
        for k in 1..=count {
            let lan = link.map(|port| (format!("10.250.{}.{}", slot % 250, 10 + k), port, k == 1));
            let mut vm = Vm::create(self, dir, &format!("node{k}"), lan, kvm)?;
            vm.start()?;
            vms.push(vm);
        }
        let mut owned = Vms { vms, machines: Vec::new() };
        for vm in &owned.vms {
            let machine = vm.machine(self);
            machine.wait_for_ssh(BOOT_LIMIT).map_err(|e| Error::host(format!("{}; its console: {}", e.message, tail(&vm.console))))?;
            owned.machines.push(machine);
        }
        Ok(Box::new(owned))
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::host(format!("no free loopback port ({e})")))?;
    Ok(listener.local_addr().map_err(|e| Error::host(e.to_string()))?.port())
}

fn tail(console: &Path) -> String {
    let text = std::fs::read_to_string(console).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// One VM: how to start it (again), and its process while it runs.
struct Vm {
    name: String,
    address: String,
    ssh_port: u16,
    console: PathBuf,
    overlay: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Vm {
    /// Its overlay over the base image, and its command line; `lan` is the pair's
    /// link: (address, port, whether this VM listens).
    fn create(qemu: &Qemu, dir: &Path, name: &str, lan: Option<(String, u16, bool)>, kvm: bool) -> Result<Vm> {
        let overlay = dir.join(format!("{name}.qcow2"));
        let made = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", &qemu.image.format, "-b"])
            .arg(&qemu.image.disk)
            .arg(&overlay)
            .output()
            .map_err(|e| Error::host(format!("cannot run qemu-img ({e})")))?;
        if !made.status.success() {
            return Err(Error::host(format!("qemu-img create: {}", String::from_utf8_lossy(&made.stderr).trim())));
        }
        let ssh_port = free_port()?;
        let console = dir.join(format!("{name}-console.log"));
        let address = lan.as_ref().map_or_else(|| "10.0.2.15".to_string(), |(a, _, _)| a.clone());
        let mut append = format!("{} airbin.name={name} airbin.key={}", qemu.image.append, qemu.public_key()?);
        let image = &qemu.image;
        let mut args: Vec<String> = vec![
            "-accel".into(),
            if kvm { "kvm" } else { "tcg" }.into(),
            "-m".into(),
            image.memory_mb.to_string(),
            "-smp".into(),
            "2".into(),
            "-nographic".into(),
            "-no-reboot".into(),
            "-monitor".into(),
            "none".into(),
            "-kernel".into(),
            image.kernel.display().to_string(),
            "-drive".into(),
            format!("file={},format=qcow2,if=virtio", overlay.display()),
            "-netdev".into(),
            format!("user,id=u,hostfwd=tcp:127.0.0.1:{ssh_port}-:22"),
            "-device".into(),
            "virtio-net-pci,netdev=u".into(),
            "-chardev".into(),
            format!("file,id=console,path={},append=on", console.display()),
            "-serial".into(),
            "chardev:console".into(),
        ];
        if let Some(initrd) = &image.initrd {
            args.extend(["-initrd".into(), initrd.display().to_string()]);
        }
        if let Some((ip, port, listens)) = &lan {
            append.push_str(&format!(" airbin.lan={ip}"));
            let end = if *listens { format!("listen=127.0.0.1:{port}") } else { format!("connect=127.0.0.1:{port}") };
            let mac = format!("52:54:00:a1:{:02x}:{:02x}", port % 256, u8::from(*listens));
            args.extend([
                "-netdev".into(),
                format!("socket,id=lan,{end}"),
                "-device".into(),
                format!("virtio-net-pci,netdev=lan,mac={mac}"),
            ]);
        }
        args.extend(["-append".into(), append]);
        Ok(Vm { name: name.into(), address, ssh_port, console, overlay, args, child: None })
    }

    fn start(&mut self) -> Result<()> {
        let child = Command::new("qemu-system-x86_64")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::host(format!("cannot run qemu-system-x86_64 ({e})")))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn machine(&self, qemu: &Qemu) -> Machine {
        let ssh = Endpoint {
            host: "127.0.0.1".into(),
            port: self.ssh_port,
            user: "root".into(),
            identity: qemu.key.clone(),
            known_hosts: qemu.work.join("known_hosts"),
        };
        Machine { name: self.name.clone(), address: self.address.clone(), ssh }
    }
}

/// A scenario's VMs (each thrown away when dropped).
struct Vms {
    vms: Vec<Vm>,
    machines: Vec<Machine>,
}

impl Machines for Vms {
    fn machines(&self) -> &[Machine] {
        &self.machines
    }

    fn power_cut(&mut self, i: usize) -> Result<()> {
        self.vms[i].kill();
        Ok(())
    }

    fn boot(&mut self, i: usize) -> Result<()> {
        self.vms[i].start()?;
        let machine = self.machines[i].clone();
        machine.wait_for_ssh(BOOT_LIMIT).map_err(|e| Error::host(format!("{}; its console: {}", e.message, tail(&self.vms[i].console))))
    }

    fn keep(&self, i: usize, dir: &Path) -> Vec<String> {
        let name = "console.log".to_string();
        match std::fs::copy(&self.vms[i].console, dir.join(&name)) {
            Ok(_) => vec![name],
            Err(_) => Vec::new(),
        }
    }
}

/// A VM is thrown away with its value: killed, its overlay removed.
impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.overlay);
    }
}
