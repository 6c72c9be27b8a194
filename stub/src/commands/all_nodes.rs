//! The `--all-nodes` forms of `install`, `status` and `support`: one command on one node
//! for every node the config lists (`fan_out` does the reaching and driving).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{open, options, tarball, trust, Context};
use crate::fan_out::{self as nodes, NodeOutcome, NodeStatus, Target};
use crate::install::config::{self, ProductConfig};
use crate::ui::{out_line, print_json, Envelope};
use airbin_format::error::{Error, ExitClass, IoContext, Result};
use airbin_format::Bundle;

/// What every `--all-nodes` document says besides the envelope: each node's outcome.
#[derive(Serialize)]
struct AllNodes<'a, T: Serialize> {
    all_nodes: bool,
    nodes: &'a [NodeOutcome],
    #[serde(flatten)]
    more: T,
}

#[derive(Serialize)]
struct InstallMore<'a> {
    bundle: &'a airbin_format::BundleMeta,
}

#[derive(Serialize)]
struct SupportMore<'a> {
    file: &'a Path,
    contents: &'a [String],
}

/// The product's config, which holds the node list: `--config`, or `config` beside the bundle.
fn node_config(bundle: &Bundle, explicit: Option<&Path>, use_sample: bool) -> Result<ProductConfig> {
    if bundle.index.config.management_nodes_key.is_none() {
        return Err(nodes::no_node_list());
    }
    if use_sample {
        let sample = bundle.index.config_sample().ok_or_else(|| Error::usage("--use-sample: this bundle carries no config sample"))?;
        return crate::install::config::sample_config(bundle, sample);
    }
    match config::locate(explicit, &bundle.path) {
        Some((path, source)) => config::load(&path, source),
        None => Err(Error::usage(format!(
            "--all-nodes: the product's config lists the nodes, and there is none; put it beside the bundle as `{}` or give --config FILE",
            config::beside_bundle(&bundle.path).display()
        ))),
    }
}

/// Every node, and shared SSH connections to the others (closed when dropped).
fn targets(bundle: &Bundle, config: Option<&Path>, fan: &mut nodes::FanOut) -> Result<(Vec<Target>, nodes::Connections)> {
    let config = node_config(bundle, config, false)?;
    let targets = nodes::targets(bundle, &config, fan)?;
    let connections = nodes::Connections::open(&targets, fan)?;
    Ok((targets, connections))
}

/// The worst node's exit code as an error, or Ok when every node is.
fn worst_error(outcomes: &[NodeOutcome], what: &str) -> Result<()> {
    let code = nodes::worst(outcomes);
    if code == 0 {
        return Ok(());
    }
    let bad: Vec<String> =
        outcomes.iter().filter(|o| o.exit_code != 0).map(|o| format!("{} {} (exit {})", o.role, o.node, o.exit_code)).collect();
    let class = ExitClass::from_code(code);
    Err(Error::new(
        class,
        format!(
            "{what} did not finish on {} of {} nodes: {}; fix what each says, then run again: every node resumes from its own journal",
            bad.len(),
            outcomes.len(),
            bad.join(", ")
        ),
    ))
}

fn print_outcomes(outcomes: &[NodeOutcome]) {
    let width = outcomes.iter().map(|o| o.role.as_str().len() + 1 + o.node.len()).max().unwrap_or(0);
    for o in outcomes {
        let label = format!("{} {}", o.role, o.node);
        let status = o.status.label();
        out_line(&format!("  {label:width$}  {status:11}  {}", o.summary.lines().next().unwrap_or("")));
    }
}

/// `install --all-nodes`: reach, copy, preflight, then every node's part.
pub(crate) fn install(ctx: &Context, args: &crate::cli::InstallArgs) -> Result<()> {
    if args.role.role.is_some() {
        return Err(Error::usage(
            "--all-nodes and --role: with --all-nodes every node's role comes from the config's node list; leave out --role",
        ));
    }
    let bundle = open(ctx)?;
    if bundle.files().len() > 1 {
        return Err(Error::usage(format!(
            "{} came in {} parts, and --all-nodes copies one file to each node: join them first (cat {} > whole.bin), then run sh whole.bin install --all-nodes",
            ctx.bundle_path.display(),
            bundle.files().len(),
            bundle.files().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ")
        )));
    }
    // Where keys are pinned, the bundle is verified here before any node is reached, and
    // the keys go with it to every node, whose own run checks its copy against them.
    let keys = trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let meta = &bundle.index.bundle;
    if args.answers.set_from.is_some() {
        return Err(Error::usage("--set-from with --all-nodes: put the values in the config, which is copied to each node as a 0600 file"));
    }
    // Every node's run is an ssh command line, which the nodes' users can read.
    for set in &args.answers.set {
        let (key, _) = crate::install::param_values::parse_set(set)?;
        if bundle.index.parameters.iter().any(|p| p.secret && (p.name == key || p.key() == key)) {
            return Err(Error::usage(format!(
                "--set {key} with --all-nodes would put a secret on the other nodes' command lines; put it in the config, which is copied to each node as a 0600 file"
            )));
        }
    }
    let mut fan = options::fan_out(args);
    fan.keys = keys.iter().map(|k| k.file.clone()).collect();
    let config = node_config(&bundle, args.answers.config.as_deref(), args.answers.use_sample)?;
    let targets = nodes::targets(&bundle, &config, &fan)?;
    let _connections = nodes::Connections::open(&targets, &mut fan)?;
    let names: Vec<String> = targets.iter().map(|t| format!("{}{}", t.label(), if t.local { " (this host)" } else { "" })).collect();
    ctx.ui.status(format!("{} {}: installing on {} node(s): {}", meta.name, meta.version, targets.len(), names.join(", ")));
    crate::interrupt::ignore_hangup();
    let result = (|| {
        let has_copy = nodes::reach(&bundle, &targets, &fan, &ctx.ui)?;
        nodes::copy_and_check(&bundle, &config, &targets, &has_copy, &fan, &ctx.ui)
    })();
    if let Err(error) = result {
        if ctx.ui.json {
            print_json(&Envelope::ended(
                "install",
                Some(&error),
                AllNodes { all_nodes: true, nodes: &[], more: InstallMore { bundle: meta } },
            ));
        }
        return Err(error);
    }
    let outcomes = nodes::run(&targets, &fan, "install", &["--yes", "--json"], &ctx.ui);
    let error = worst_error(&outcomes, "the install").err();
    if ctx.ui.json {
        let body = AllNodes { all_nodes: true, nodes: &outcomes, more: InstallMore { bundle: meta } };
        print_json(&Envelope::ended("install", error.as_ref(), body));
    } else if !ctx.ui.quiet {
        let ok = outcomes.iter().filter(|o| o.exit_code == 0).count();
        let headline = if error.is_none() {
            "install finished on every node".to_string()
        } else {
            format!("install FAILED on {} of {} nodes", outcomes.len() - ok, outcomes.len())
        };
        out_line(&format!("{} {}: {headline}", meta.name, meta.version));
        print_outcomes(&outcomes);
        let bin = crate::shell::bundle();
        out_line(&match &error {
            None => format!("next: {bin} status --all-nodes shows every node's last run"),
            Some(_) => format!("next: fix what each node says, then run {bin} install --all-nodes again: each node resumes ({bin} support --all-nodes collects every node's logs)"),
        });
    }
    error.map_or(Ok(()), Err)
}

/// `status --all-nodes`: every node's last run, side by side.
pub(crate) fn status(ctx: &Context, args: &crate::cli::StatusArgs) -> Result<()> {
    let bundle = open(ctx)?;
    let mut fan = options::gathering(&args.fan_out);
    let (targets, _connections) = targets(&bundle, args.config.as_deref(), &mut fan)?;
    let mut command = vec!["status".to_string()];
    if args.verify {
        command.push("--verify".into());
    }
    let outcomes = nodes::gather(&targets, &fan, |_| command.clone());
    let unreachable: Vec<&NodeOutcome> = outcomes.iter().filter(|o| o.status == NodeStatus::Unreachable).collect();
    if ctx.ui.json {
        print_json(&Envelope::ok("status", AllNodes { all_nodes: true, nodes: &outcomes, more: crate::ui::Empty {} }));
    } else {
        let meta = &bundle.index.bundle;
        out_line(&format!("{} {}: the last run on each of {} node(s)", meta.name, meta.version, outcomes.len()));
        for o in &outcomes {
            let label = format!("{} {}", o.role, o.node);
            let Some(doc) = &o.doc else {
                out_line(&format!("  {label}: {}", o.summary));
                continue;
            };
            match &doc.body.last_run {
                None => out_line(&format!("  {label}: no install has run there")),
                Some(last) => {
                    let states: Vec<String> = doc.steps.iter().map(|s| format!("{} {}", s.name, s.label)).collect();
                    out_line(&format!("  {label}: started {}: {}", last.started, last.result));
                    out_line(&format!("      {}", states.join("; ")));
                    out_line(&format!("      log: {}", last.log.as_deref().map_or("?".into(), |l| l.display().to_string())));
                }
            }
        }
    }
    if unreachable.is_empty() {
        return Ok(());
    }
    Err(Error::host(format!(
        "{} node(s) could not be asked: {}",
        unreachable.len(),
        unreachable.iter().map(|o| o.summary.as_str()).collect::<Vec<_>>().join("; ")
    )))
}

/// `support --all-nodes`: each node writes its own tarball; this one gathers them into one.
pub(crate) fn support(ctx: &Context, args: &crate::cli::SupportArgs) -> Result<()> {
    let output = args.output.as_deref();
    let bundle = open(ctx)?;
    let meta = &bundle.index.bundle;
    let mut fan = options::gathering(&args.fan_out);
    let (targets, _connections) = targets(&bundle, args.config.as_deref(), &mut fan)?;
    let stamp = crate::ui::timestamp().replace(':', "");
    let work = std::env::temp_dir().join(crate::fsx::temp_name(".airbin-support", ".airbin-partial-"));
    std::fs::create_dir(&work).ctx("creating", &work)?;
    let work = crate::fsx::RemoveOnDrop::new(work);
    // Each node writes beside its bundle; this host into the work directory.
    let node_file = |t: &Target| -> String {
        let dir = if t.local {
            work.path().display().to_string()
        } else {
            Path::new(&t.bin).parent().map_or("/var/tmp".into(), |d| d.display().to_string())
        };
        format!("{dir}/airbin-support-{}-{}.tar.gz", meta.name, t.node.host)
    };
    let outcomes = nodes::gather(&targets, &fan, |t| vec!["support".into(), "-o".into(), node_file(t)]);
    let out = output.map_or_else(|| PathBuf::from(format!("airbin-support-{}-all-nodes-{stamp}.tar.gz", meta.name)), Path::to_path_buf);
    let prefix = format!("airbin-support-{}-all-nodes-{stamp}", meta.name);
    let file = std::fs::File::create(&out).ctx("creating", &out)?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    let mut fetched = Vec::new();
    for (target, outcome) in targets.iter().zip(&outcomes) {
        if outcome.exit_code != 0 || outcome.report.is_none() {
            continue;
        }
        let local = work.path().join(format!("{}.tar.gz", target.node.host));
        let remote = node_file(target);
        if target.local {
            std::fs::rename(&remote, &local).ctx("moving", Path::new(&remote))?;
        } else {
            nodes::fetch(target, &fan, &remote, &local)?;
        }
        let name = format!("{prefix}/{}-{}/support.tar.gz", target.node.role, target.node.host);
        tar.append_path_with_name(&local, &name).ctx("writing", &out)?;
        fetched.push(name);
    }
    let summary = serde_json::to_vec_pretty(&outcomes).expect("outcomes serialize");
    tarball::append_bytes(&mut tar, &format!("{prefix}/nodes.json"), &summary).ctx("writing", &out)?;
    tar.into_inner().ctx("writing", &out)?.finish().ctx("writing", &out)?;
    if ctx.ui.json {
        let body = AllNodes { all_nodes: true, nodes: &outcomes, more: SupportMore { file: &out, contents: &fetched } };
        print_json(&Envelope::ok("support", body));
    } else {
        out_line(&out.display().to_string());
        ctx.ui.status(format!(
            "wrote {} with {} of {} nodes' tarballs: send it to the vendor",
            out.display(),
            fetched.len(),
            targets.len()
        ));
    }
    let missing: Vec<String> = outcomes
        .iter()
        .filter(|o| o.exit_code != 0 || o.report.is_none())
        .map(|o| format!("{} {}: {}", o.role, o.node, o.summary))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::host(format!("the tarball lacks {} node(s): {}", missing.len(), missing.join("; "))))
}
