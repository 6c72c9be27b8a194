//! The keys this host pins, and the rule they bring: where any is pinned, a bundle is
//! verified (every byte, then its signature) before anything else, before a node, the
//! engine, the network or the disk is touched. `airbin-run` refuses to run without one.

use std::sync::atomic::{AtomicBool, Ordering};

use airbin_format::error::{Error, ExitClass, Result};
use airbin_format::signature::{self, Signer, TrustedKey};
use airbin_format::Bundle;

use super::Context;
use crate::cli::TrustArgs;

static TRUSTED_RUNNER: AtomicBool = AtomicBool::new(false);

/// This is `airbin-run`: every command verifies the bundle against the pinned keys first.
pub(crate) fn set_trusted_runner() {
    TRUSTED_RUNNER.store(true, Ordering::SeqCst);
}

pub(crate) fn is_trusted_runner() -> bool {
    TRUSTED_RUNNER.load(Ordering::SeqCst)
}

/// The keys this host pins: `--trusted-key` files and `/etc/airbin/trusted-keys/*.pub`
/// (`AIRBIN_TRUSTED_KEYS_DIR` stands in for that directory). The trusted runner runs
/// only bundles signed by one of them: it refuses to run without any.
pub(crate) fn trusted_keys(trust: &TrustArgs) -> Result<Vec<TrustedKey>> {
    let dir = signature::pinned_keys_dir();
    let keys = signature::trusted_keys(&trust.trusted_key, &dir)?;
    if keys.is_empty() && is_trusted_runner() {
        return Err(Error::usage(format!(
            "airbin-run runs only bundles signed by a key this host pins, and none is pinned: copy the maker's public key into {} (or give --trusted-key FILE)",
            dir.display()
        )));
    }
    Ok(keys)
}

/// Where keys are pinned, the bundle is verified before anything else. Returns the
/// keys, for what verifies again as it goes (it takes this verdict).
pub(crate) fn verified_first_where_pinned(ctx: &Context, bundle: &Bundle, trust: &TrustArgs) -> Result<Vec<TrustedKey>> {
    let keys = trusted_keys(trust)?;
    if !keys.is_empty() && !bundle.verified_whole() {
        let progress = ctx.ui.progress("check", bundle.digested_len());
        bundle.verify(&keys, &|n| progress.inc(n))?;
        progress.finish();
    }
    Ok(keys)
}

/// The digest of every byte, then the signature against the pinned keys: nothing on
/// the host changes before both pass.
pub(crate) fn verify(ctx: &Context, bundle: &Bundle, trust: &TrustArgs) -> Result<Signer> {
    let keys = trusted_keys(trust)?;
    if bundle.verified_whole() {
        return bundle.signer(&keys);
    }
    let progress = ctx.ui.progress("check", bundle.digested_len());
    let signer = bundle.verify(&keys, &|n| progress.inc(n))?;
    progress.finish();
    Ok(signer)
}

/// Damage explains whatever else went wrong: when the bundle's verdict (being reached
/// on another thread) fails, its error wins over `error`.
pub(crate) fn damage_first(bundle: &Bundle, error: Error) -> Error {
    match bundle.await_verified() {
        Err(damage) if damage.class != ExitClass::Interrupted => damage,
        _ => error,
    }
}
