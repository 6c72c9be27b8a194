//! A token realm, as a registry behind token auth names in its `WWW-Authenticate`
//! challenge: it takes one user's basic credentials and issues ES256 JWTs granting the
//! scope asked for, signed with the key of a self-signed certificate the registry trusts
//! (its `rootcertbundle`). Small, but it is the protocol Docker Hub and Harbor speak.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ct_codecs::{Base64, Base64UrlSafeNoPadding, Encoder};

pub const SERVICE: &str = "airbin-test-registry";
pub const ISSUER: &str = "airbin-test-realm";

/// Runs until the test process ends; `issued` counts the tokens given.
pub struct Realm {
    pub url: String,
    /// The certificate whose key signs the tokens (PEM), for the registry to trust.
    pub cert_pem: String,
    pub issued: Arc<AtomicUsize>,
}

impl Realm {
    pub fn start(user: &str, password: &str) -> Realm {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["airbin-test-realm".to_string()]).unwrap().self_signed(&key).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let signer =
            ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
                .unwrap();
        let issuer = Issuer { signer, x5c: Base64::encode_to_string(cert.der()).unwrap(), expected: basic(user, password) };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                issuer.answer(stream, &counter);
            }
        });
        Realm { url, cert_pem: cert.pem(), issued }
    }
}

struct Issuer {
    signer: ring::signature::EcdsaKeyPair,
    x5c: String,
    expected: String,
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", Base64::encode_to_string(format!("{user}:{password}")).unwrap())
}

fn b64url(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

impl Issuer {
    fn answer(&self, stream: TcpStream, issued: &AtomicUsize) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request = String::new();
        let _ = reader.read_line(&mut request);
        let mut authorization = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("authorization") {
                    authorization = value.trim().to_string();
                }
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("");
        let query = path.split_once('?').map_or("", |(_, q)| q);
        let scope = query.split('&').find_map(|kv| kv.strip_prefix("scope=")).map(decode).unwrap_or_default();
        let (status, body) = match authorization == self.expected {
            true => {
                issued.fetch_add(1, Ordering::SeqCst);
                ("200 OK", serde_json::json!({"token": self.token(&scope)}).to_string())
            }
            false => ("401 Unauthorized", r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.to_string()),
        };
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    /// A JWT granting `scope` (`repository:NAME:ACTIONS`), as distribution checks it.
    fn token(&self, scope: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let access: Vec<serde_json::Value> = scope
            .split(' ')
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "tester", "aud": SERVICE, "exp": now + 300, "nbf": now - 60, "iat": now,
            "jti": format!("{now}-{}", std::process::id()), "access": access,
        });
        let signing_input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let signature = self.signer.sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", b64url(signature.as_ref()))
    }
}

/// `%XX` and `+` of a query value.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("20");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b' '));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}
