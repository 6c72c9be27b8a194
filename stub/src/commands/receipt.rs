//! `receipt`: what the last run of this product on this host left for the auditors.

use std::path::PathBuf;

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope};
use airbin_format::error::{Error, IoContext, Result};

use super::{open, trust, Context};
use crate::cli::ReceiptShowArgs;
use crate::install::receipt;
use crate::install::state::StateDir;

#[derive(Serialize)]
struct Shown {
    receipt: PathBuf,
    /// The `.minisig` beside it, where the run had --receipt-key.
    signature: Option<PathBuf>,
    statement: serde_json::Value,
}

/// `receipt`: the newest receipt (an in-toto statement) of this bundle's product, as
/// written; `--all` lists every receipt's path, oldest first.
pub(crate) fn receipt(ctx: &Context, args: &ReceiptShowArgs) -> Result<()> {
    let bundle = open(ctx)?;
    trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let name = &bundle.index.bundle.name;
    let state = StateDir::for_bundle(name);
    let none = || {
        Error::usage(format!(
            "no receipt of {name} on this host (in {}): install, upgrade, hotfix and uninstall leave one; run one of them first",
            receipt::dir_of(&state, name).display()
        ))
    };
    if args.all {
        let all = receipt::all(&state, name);
        if all.is_empty() {
            return Err(none());
        }
        match ctx.ui.json {
            true => print_json(&Envelope::ok("receipt", serde_json::json!({"receipts": all}))),
            false => all.iter().for_each(|p| out_line(&p.display().to_string())),
        }
        return Ok(());
    }
    let path = receipt::latest(&state, name).ok_or_else(none)?;
    let text = std::fs::read(&path).ctx("reading", &path)?;
    let mut signature = path.as_os_str().to_owned();
    signature.push(".minisig");
    let signature = Some(PathBuf::from(signature)).filter(|p| p.is_file());
    match ctx.ui.json {
        true => {
            let statement = serde_json::from_slice(&text).map_err(|e| Error::integrity(format!("{} is not JSON ({e})", path.display())))?;
            print_json(&Envelope::ok("receipt", Shown { receipt: path, signature, statement }));
        }
        false => out_line(String::from_utf8_lossy(&text).trim_end()),
    }
    Ok(())
}
