//! A real `docker-registry` (Debian's distribution) on a free loopback port, with its
//! storage in a directory of the test's; optionally behind basic auth (htpasswd), a
//! token realm, or TLS.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::scratch;

/// Stopped on drop.
pub struct Registry {
    child: Child,
    pub address: String,
    _config: tempfile::TempDir,
}

impl Registry {
    pub fn start(root: &Path) -> Registry {
        Registry::start_with(root, None)
    }

    /// With `user` set, the registry takes only that user and password (htpasswd, bcrypt).
    pub fn start_with(root: &Path, user: Option<(&str, &str)>) -> Registry {
        let config = scratch();
        let auth = match user {
            Some((name, password)) => {
                let htpasswd = config.path().join("htpasswd");
                fs::write(&htpasswd, format!("{name}:{}\n", bcrypt::hash(password, 5).unwrap())).unwrap();
                format!("auth:\n  htpasswd: {{realm: airbin-test, path: {}}}\n", htpasswd.display())
            }
            None => String::new(),
        };
        Registry::start_configured(root, config, &auth, None, None)
    }

    /// Plain, at `address` (a registry started again where a spec expects it).
    pub fn start_at(root: &Path, address: &str) -> Registry {
        let port = address.rsplit_once(':').unwrap().1.parse().unwrap();
        Registry::start_configured(root, scratch(), "", None, Some(port))
    }

    /// Behind a token realm: the registry takes the tokens `realm` issues (signed with the
    /// key of the certificate `cert_pem`) for the service `service`.
    pub fn start_with_tokens(root: &Path, realm: &str, service: &str, issuer: &str, cert_pem: &str) -> Registry {
        let config = scratch();
        let bundle = config.path().join("token-ca.pem");
        fs::write(&bundle, cert_pem).unwrap();
        let auth =
            format!("auth:\n  token: {{realm: '{realm}', service: {service}, issuer: {issuer}, rootcertbundle: {}}}\n", bundle.display());
        Registry::start_configured(root, config, &auth, None, None)
    }

    /// Over TLS, with this certificate (PEM) and key (PEM).
    pub fn start_tls(root: &Path, cert_pem: &str, key_pem: &str) -> Registry {
        let config = scratch();
        let (cert, key) = (config.path().join("cert.pem"), config.path().join("key.pem"));
        fs::write(&cert, cert_pem).unwrap();
        fs::write(&key, key_pem).unwrap();
        Registry::start_configured(root, config, "", Some((cert.as_path(), key.as_path())), None)
    }

    fn start_configured(root: &Path, config: tempfile::TempDir, auth: &str, tls: Option<(&Path, &Path)>, port: Option<u16>) -> Registry {
        let port = port.unwrap_or_else(|| TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
        let file = config.path().join("config.yml");
        let tls = tls.map_or(String::new(), |(cert, key)| format!("  tls: {{certificate: {}, key: {}}}\n", cert.display(), key.display()));
        fs::write(
            &file,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n{tls}{auth}",
                root.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry").arg("serve").arg(&file).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start on {address}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry { child, address, _config: config }
    }

    /// The HTTP status of a manifest GET for `repo:tag`.
    pub fn manifest_status(&self, repo: &str, tag: &str) -> u16 {
        let accept = "application/vnd.docker.distribution.manifest.v2+json";
        // HTTP/1.0: the registry closes the connection after its answer.
        let mut stream = std::net::TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let request = format!("GET /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {}\r\nAccept: {accept}\r\n\r\n", self.address);
        std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
        answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("an HTTP status line")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
