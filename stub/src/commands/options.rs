//! The command line's values, typed once into what the install and the fan-out take:
//! nothing deeper reads a flag.

use airbin_format::error::{Error, Result};
use airbin_format::Bundle;
use airbin_format::RestoreRegistryAction;

use crate::cli::{AnswersArgs, EngineArgs, FanOutArgs, InstallArgs, PlanArgs, PreflightArgs, UninstallArgs};
use crate::fan_out::FanOut;
use crate::install::{self, answers::Given, Options};
use crate::steps::Overrides;

/// Where the values come from, typed once. The registry flags are `--set`s of the keys
/// the restore steps read them from (so every step using the key sees them), and stand
/// in for a root or an address the spec fixes.
fn given(bundle: &Bundle, answers: &AnswersArgs, json: bool, noexec: bool) -> Result<(Given, Overrides)> {
    let mut sets = answers.set.iter().map(|s| install::param_values::parse_set(s)).collect::<Result<Vec<_>>>()?;
    if let Some(from) = &answers.set_from {
        sets.extend(read_set_from(from)?);
    }
    for step in &bundle.index.steps {
        if let airbin_format::Action::RestoreRegistry(RestoreRegistryAction { root_from_config, address_from_config, .. }) = &step.action {
            if let (Some(key), Some(root)) = (root_from_config, &answers.registry_root) {
                sets.push((key.clone(), crate::fsx::absolute(root).display().to_string()));
            }
            if let (Some(key), Some(address)) = (address_from_config, &answers.registry_address) {
                sets.push((key.clone(), address.clone()));
            }
        }
    }
    // Someone at a terminal: stdin is one (stderr may go to a file).
    let terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let given = Given {
        config: answers.config.clone(),
        use_sample: answers.use_sample,
        sets,
        interactive: terminal && !answers.yes && !json,
        answered: Vec::new(),
        forget_secrets: answers.forget_secrets,
        noexec,
    };
    let overrides =
        Overrides { engine: None, registry_root: answers.registry_root.clone(), registry_address: answers.registry_address.clone() };
    Ok((given, overrides))
}

/// The `KEY=VALUE` lines of `--set-from` (blank lines and `#` comments skipped). A bad
/// line is named by its number only: its text may be a secret.
fn read_set_from(from: &std::path::Path) -> Result<Vec<(String, String)>> {
    use std::io::Read;
    let mut text = String::new();
    let read = match from.as_os_str() == "-" {
        true => std::io::stdin().take(1 << 20).read_to_string(&mut text),
        false => std::fs::File::open(from).and_then(|f| f.take(1 << 20).read_to_string(&mut text)),
    };
    read.map_err(|e| Error::usage(format!("--set-from {}: {e}; give a file of KEY=VALUE lines, or - for stdin", from.display())))?;
    let mut sets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::usage(format!("--set-from {} line {}: not KEY=VALUE; give one KEY=VALUE a line", from.display(), n + 1))
        })?;
        sets.push((key.trim().to_string(), value.to_string()));
    }
    Ok(sets)
}

/// The install's options from its arguments (`plan`'s and `preflight`'s are a part of them).
pub(crate) fn install_options(bundle: &Bundle, args: &InstallArgs, json: bool) -> Result<Options> {
    let (given, mut overrides) = given(bundle, &args.answers, json, args.noexec)?;
    overrides.engine = args.engine.engine.clone();
    Ok(Options {
        target: args.target.clone(),
        keep: args.keep,
        noexec: args.noexec,
        redo: install::plan::Redo { force: args.redo.force, from: args.redo.from.clone() },
        overrides,
        containerd_namespace: args.engine.containerd_namespace.clone(),
        given,
        skip_preflight: args.skip_preflight.clone(),
        role: args.role.role,
        allow_downgrade: args.redo.allow_downgrade,
        fan_out: std::env::var("AIRBIN_FAN_OUT").ok().filter(|t| !t.is_empty() && t.len() < 100),
        // Loaded now: a wrong key or password stops the run before anything lands.
        receipt_key: args.receipt.receipt_key.as_deref().map(install::receipt::ReceiptKey::load).transpose()?,
    })
}

/// `plan`'s arguments, as the install they describe.
pub(crate) fn planned_install(args: &PlanArgs) -> InstallArgs {
    InstallArgs {
        target: args.target.clone(),
        answers: args.answers.clone(),
        role: args.role.clone(),
        engine: EngineArgs { engine: args.engine.clone(), ..EngineArgs::default() },
        redo: args.redo.clone(),
        trust: args.trust.clone(),
        ..InstallArgs::default()
    }
}

/// `preflight`'s arguments, as the install it checks the host for.
pub(crate) fn preflighted_install(args: &PreflightArgs) -> InstallArgs {
    InstallArgs {
        target: args.target.clone(),
        skip_preflight: args.skip_preflight.clone(),
        answers: args.answers.clone(),
        role: args.role.clone(),
        engine: args.engine.clone(),
        redo: args.redo.clone(),
        trust: args.trust.clone(),
        ..InstallArgs::default()
    }
}

/// `uninstall`'s arguments, as the install whose values it resolves.
pub(crate) fn uninstalled_install(args: &UninstallArgs) -> InstallArgs {
    InstallArgs {
        answers: args.answers.clone(),
        role: args.role.clone(),
        engine: args.engine.clone(),
        redo: crate::cli::RedoArgs { force: args.force, from: None, allow_downgrade: false },
        skip_preflight: args.skip_preflight.clone(),
        trust: args.trust.clone(),
        receipt: args.receipt.clone(),
        ..Default::default()
    }
}

/// The fan-out of `status` and `support`: how the nodes are reached.
pub(crate) fn gathering(args: &FanOutArgs) -> FanOut {
    FanOut { parallel: args.parallel, ssh_options: args.ssh_option.clone(), remote_dir: args.remote_dir.clone(), ..FanOut::default() }
}

/// The fan-out flags of a command run on this host alone.
pub(crate) fn refuse_fan_out_flags(args: &FanOutArgs, command: &str) -> Result<()> {
    if args.parallel != 0 || !args.ssh_option.is_empty() || args.remote_dir.is_some() {
        return Err(Error::usage(format!(
            "--parallel, --ssh-option and --remote-dir go with {command} --all-nodes; add it, or leave them out"
        )));
    }
    Ok(())
}

/// The command line's values for the fan-out, and the flags every node's run is given.
pub(crate) fn fan_out(args: &InstallArgs) -> FanOut {
    let mut pass = Vec::new();
    let mut flag = |name: &str, value: Option<&str>| {
        pass.push(name.to_string());
        pass.extend(value.map(str::to_string));
    };
    if let Some(engine) = &args.engine.engine {
        flag("--engine", Some(engine));
    }
    if args.engine.containerd_namespace != EngineArgs::default().containerd_namespace {
        flag("--containerd-namespace", Some(&args.engine.containerd_namespace));
    }
    if args.redo.force {
        flag("--force", None);
    }
    if let Some(from) = &args.redo.from {
        flag("--from", Some(from));
    }
    for skip in &args.skip_preflight {
        flag("--skip-preflight", Some(skip));
    }
    if let Some(root) = &args.answers.registry_root {
        flag("--registry-root", Some(&root.display().to_string()));
    }
    if let Some(address) = &args.answers.registry_address {
        flag("--registry-address", Some(address));
    }
    if args.keep {
        flag("--keep", None);
    }
    if args.redo.allow_downgrade {
        flag("--allow-downgrade", None);
    }
    for set in &args.answers.set {
        flag("--set", Some(set));
    }
    if args.noexec {
        flag("--noexec", None);
    }
    if args.answers.forget_secrets {
        flag("--forget-secrets", None);
    }
    FanOut {
        parallel: args.fan_out.parallel,
        ssh_options: args.fan_out.ssh_option.clone(),
        remote_dir: args.fan_out.remote_dir.clone(),
        pass,
        control_dir: None,
        keys: Vec::new(),
        tag: format!("{}-{}", crate::ui::timestamp().replace(':', ""), crate::fsx::random_hex()),
    }
}

/// Flags that mean something only with --all-nodes.
pub(crate) fn check_fan_out_flags(args: &InstallArgs) -> Result<()> {
    let f = &args.fan_out;
    if !f.all_nodes && (f.parallel != 0 || !f.ssh_option.is_empty() || f.remote_dir.is_some()) {
        return Err(Error::usage("--parallel, --ssh-option and --remote-dir go with --all-nodes; add it, or leave them out"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_from_reads_key_value_lines_and_never_echoes_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("values");
        std::fs::write(&file, "# site values\ncluster_name=prod\r\n\nadmin_password=a=b c\n").unwrap();
        let sets = read_set_from(&file).unwrap();
        assert_eq!(sets, [("cluster_name".to_string(), "prod".to_string()), ("admin_password".to_string(), "a=b c".to_string())]);
        std::fs::write(&file, "cluster_name=prod\nhunter2-secret\n").unwrap();
        let err = read_set_from(&file).unwrap_err();
        assert!(err.message.contains("line 2") && !err.message.contains("hunter2"), "{}", err.message);
        assert_eq!(err.class, airbin_format::error::ExitClass::Usage);
    }
}
