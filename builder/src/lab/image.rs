//! `airbin lab image`: the qemu backend's base image, built from Debian packages only
//! (a site with a Debian mirror needs nothing else): mmdebstrap makes the root (a
//! kernel, the Docker Engine, docker-registry, sshd, busybox), the lab's init goes in,
//! `mkfs.ext4 -d` makes the disk, and the kernel and initrd are set beside it for a
//! direct kernel boot. `image.json` describes it.

use std::path::Path;
use std::process::{Command, Stdio};

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, IoContext, Result};

use super::backend::qemu::UP_MARK;
use crate::cli::LabImageArgs;

const PACKAGES: &str = "linux-image-amd64,mount,kmod,iproute2,openssh-server,busybox,docker.io,docker-registry,ca-certificates,procps";

/// PID 1 of a lab VM: mounts, the addresses and SSH key the lab gives on the kernel
/// command line (`airbin.name=`, `airbin.key=`, `airbin.lan=`), then sshd, the Docker
/// Engine and docker-registry; it reaps orphans for ever after. No service manager:
/// a VM is up in seconds, and a power cut has nothing to shut down.
const INIT: &str = r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# The initrd may have mounted these already.
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -o remount,rw /
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
key= lan= name=lab
for arg in $(cat /proc/cmdline); do
    case $arg in
    airbin.key=*) key=${arg#airbin.key=} ;;
    airbin.lan=*) lan=${arg#airbin.lan=} ;;
    airbin.name=*) name=${arg#airbin.name=} ;;
    esac
done
hostname "$name"
echo "$name" >/etc/hostname
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
if [ -n "$lan" ]; then
    ip link set eth1 up
    ip addr add "$lan/24" dev eth1
fi
mkdir -p /root/.ssh /run/sshd
chmod 700 /root/.ssh
[ -z "$key" ] || echo "ssh-ed25519 $key airbin-lab" >/root/.ssh/authorized_keys
ssh-keygen -A >/dev/null 2>&1
/usr/sbin/sshd -E /var/log/sshd.log
dockerd >/var/log/dockerd.log 2>&1 &
mkdir -p /srv/registry
docker-registry serve /etc/airbin-lab/registry.yml >/var/log/registry.log 2>&1 &
echo "@UP@$name is up"
while :; do wait; sleep 1; done
"#;

const REGISTRY: &str = "version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: /srv/registry}\n  delete: {enabled: true}\nhttp:\n  addr: :5000\n";
/// No iptables or bridge: the lab loads images and serves a registry, runs no
/// containers' networks, and needs no netfilter modules for that.
const DOCKER: &str = "{\"iptables\": false, \"bridge\": \"none\"}\n";
const APPEND: &str = "console=ttyS0 root=/dev/vda rw init=/sbin/airbin-lab-init net.ifnames=0 panic=-1 quiet";

pub(crate) fn build(args: &LabImageArgs, ui: &Ui) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::usage("airbin lab image runs mmdebstrap and makes a file system: run it as root"));
    }
    for (tool, package) in [("mmdebstrap", "mmdebstrap"), ("mkfs.ext4", "e2fsprogs")] {
        if !airbin_format::files::on_path(tool) && !Path::new("/usr/sbin").join(tool).is_file() {
            return Err(Error::usage(format!("airbin lab image needs {tool}: apt-get install {package}")));
        }
    }
    let out = &args.out;
    std::fs::create_dir_all(out).ctx("creating", out)?;
    let root = out.join(".root");
    let _ = std::fs::remove_dir_all(&root);
    let started = std::time::Instant::now();
    ui.status(format!("lab image: mmdebstrap {} ({PACKAGES})", args.suite));
    let result = make(args, &root, ui);
    let _ = std::fs::remove_dir_all(&root);
    result?;
    let seconds = started.elapsed().as_secs_f64();
    if ui.json {
        print_json(&Envelope::ok("lab image", serde_json::json!({"image": out, "seconds": seconds})));
    } else if !ui.quiet {
        out_line(&format!("{} ({seconds:.0} s)", out.join("image.json").display()));
    }
    Ok(())
}

fn make(args: &LabImageArgs, root: &Path, ui: &Ui) -> Result<()> {
    let sources = match &args.mirror {
        Some(mirror) if mirror.contains("://") => format!("deb {mirror} {} main", args.suite),
        Some(file) => file.clone(),
        None => ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]
            .into_iter()
            .find(|f| Path::new(f).is_file())
            .map_or_else(|| format!("deb http://deb.debian.org/debian {} main", args.suite), str::to_string),
    };
    let log = args.out.join("mmdebstrap.log");
    let logged = std::fs::File::create(&log).ctx("writing", &log)?;
    let status = Command::new("mmdebstrap")
        .args(["--variant=apt", &format!("--include={PACKAGES}"), &args.suite])
        .arg(root)
        .arg(&sources)
        .stdin(Stdio::null())
        .stdout(logged.try_clone().ctx("writing", &log)?)
        .stderr(logged)
        .status()
        .map_err(|e| Error::host(format!("cannot run mmdebstrap ({e})")))?;
    if !status.success() {
        return Err(Error::host(format!("mmdebstrap failed: see {} (is the Debian mirror reachable? --mirror URL)", log.display())));
    }
    let write = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("under the root")).ctx("creating", &path)?;
        std::fs::write(&path, text).ctx("writing", &path)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).ctx("writing", &path)
    };
    write("sbin/airbin-lab-init", &INIT.replace("@UP@", UP_MARK), 0o755)?;
    write("etc/airbin-lab/registry.yml", REGISTRY, 0o644)?;
    write("etc/docker/daemon.json", DOCKER, 0o644)?;
    // A small initrd: the modules that find the root disk, not every driver (under TCG
    // each boot unpacks it, and a quarter of a boot was the full one's 36 MB).
    write("etc/initramfs-tools/conf.d/airbin-lab", "MODULES=list\n", 0o644)?;
    let modules = root.join("etc/initramfs-tools/modules");
    let listed = std::fs::read_to_string(&modules).unwrap_or_default();
    write("etc/initramfs-tools/modules", &format!("{listed}virtio_pci\nvirtio_blk\nvirtio_net\next4\n"), 0o644)?;
    let initrd = Command::new("chroot")
        .arg(root)
        .args(["update-initramfs", "-u", "-k", "all"])
        .output()
        .map_err(|e| Error::host(format!("cannot run chroot ({e})")))?;
    if !initrd.status.success() {
        return Err(Error::host(format!("update-initramfs in the image failed: {}", String::from_utf8_lossy(&initrd.stderr).trim())));
    }
    let boot = root.join("boot");
    for (prefix, name) in [("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img")] {
        let found = std::fs::read_dir(&boot)
            .ctx("reading", &boot)?
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
            .ok_or_else(|| Error::host(format!("the image has no {}* under /boot: did linux-image-amd64 install?", prefix)))?;
        std::fs::copy(&found, args.out.join(name)).ctx("copying", &found)?;
    }
    ui.status(format!("lab image: mkfs.ext4 -d, {}", args.size));
    let disk = args.out.join("disk.img");
    let _ = std::fs::remove_file(&disk);
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "airbin-lab", "-d"])
        .arg(root)
        .arg(&disk)
        .arg(&args.size)
        .output()
        .map_err(|e| Error::host(format!("cannot run mkfs.ext4 ({e})")))?;
    if !made.status.success() {
        return Err(Error::host(format!("mkfs.ext4 failed: {}", String::from_utf8_lossy(&made.stderr).trim())));
    }
    let description = serde_json::json!({
        "disk": "disk.img", "format": "raw", "kernel": "vmlinuz", "initrd": "initrd.img", "append": APPEND, "memory_mb": 1024,
    });
    let json = serde_json::to_vec_pretty(&description).expect("json");
    airbin_format::files::write_atomic(&args.out.join("image.json"), &json, 0o644)
}
