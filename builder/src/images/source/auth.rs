//! A registry's credentials and its token challenge: `~/.docker/config.json` (or
//! `$DOCKER_CONFIG/config.json`) as `docker login` writes it, and the Bearer realm a
//! registry names in its `WWW-Authenticate` answer.

use ct_codecs::{Base64, Decoder, Encoder};

/// The user and password `docker login` stored for `host`, if any (credential helpers
/// are not run: give `username`/`password` in the spec for those).
pub(crate) fn docker_config_credentials(host: &str) -> Option<(String, String)> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let keys = [host.to_string(), format!("https://{host}"), format!("http://{host}"), format!("https://{host}/v1/")];
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    if let (Some(user), Some(password)) = (entry.get("username").and_then(|v| v.as_str()), entry.get("password").and_then(|v| v.as_str())) {
        return Some((user.to_string(), password.to_string()));
    }
    let decoded = Base64::decode_to_vec(entry.get("auth")?.as_str()?, None).ok()?;
    let (user, password) = String::from_utf8(decoded).ok()?.split_once(':').map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some((user, password))
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", Base64::encode_to_string(format!("{user}:{password}")).expect("base64 of text"))
}

/// A `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenge.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) realm: String,
    pub(crate) service: Option<String>,
    pub(crate) scope: Option<String>,
}

pub(crate) fn bearer_challenge(header: &str) -> Option<Challenge> {
    let rest = header.trim().strip_prefix("Bearer ").or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut realm = None;
    let (mut service, mut scope) = (None, None);
    for part in split_params(rest) {
        let (key, value) = part.split_once('=')?;
        let value = value.trim().trim_matches('"').to_string();
        match key.trim() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            "scope" => scope = Some(value),
            _ => {}
        }
    }
    Some(Challenge { realm: realm?, service, scope })
}

/// `a="x,y",b=z` split at the commas outside quotes.
fn split_params(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_with_commas_in_its_scope() {
        let c =
            bearer_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#)
                .unwrap();
        assert_eq!(c.realm, "https://auth.example/token");
        assert_eq!(c.service.as_deref(), Some("registry.example"));
        assert_eq!(c.scope.as_deref(), Some("repository:a/b:pull,push"));
        assert!(bearer_challenge(r#"Basic realm="x""#).is_none());
    }
}
