//! An install cut off at a point spread over the journal's records: `kill -9` of the
//! installer, or (VM backends) the machine's power cut at once, page cache and all,
//! then booted again. After it, the journal is intact (every record that was surely on
//! disk is still there, in order; at most a torn last line), the rerun completes and
//! redoes no step the journal calls done, and the record and `status --verify` are right.

use std::time::{Duration, Instant};

use super::{code, last_line, Outcome, Scene, Step, STAGE};

const CUT: &str = "AIRBIN-LAB-CUT";
const MISSED: &str = "AIRBIN-LAB-MISSED";
const JOURNAL: &str = "AIRBIN-LAB-JOURNAL";
const END: &str = "AIRBIN-LAB-END";
/// Runs at one point before the lab gives up on cutting it: the second right at the record.
const MAX_TRIES: usize = 2;

/// Where point `point` (1-based) of `points` falls: after which journal record, and how
/// long after it, given the reference run's `records` and `seconds`. The first point
/// is right after the first record, the last right after the last one (the run done,
/// its record written), the others spread between, inside the steps.
pub(crate) fn point(point: usize, points: usize, records: usize, seconds: f64) -> (usize, f64) {
    if records < 2 || points < 2 {
        return (records.max(1), 0.0);
    }
    let span = (records - 1) as f64;
    let x = 1.0 + point.saturating_sub(1).min(points - 1) as f64 * span / (points - 1) as f64;
    let after = x.floor() as usize;
    (after, (x - x.floor()) * seconds / span)
}

pub(crate) fn interrupted(s: &mut Scene, power: bool) -> Step {
    let lab = s.lab;
    let bundle = &lab.bundle;
    let mut measured = false;
    let (records, seconds) = lab.reference_or(|| {
        measured = true;
        s.stage(0, bundle)?;
        let started = Instant::now();
        let ran = s.bundle_run(0, &bundle.file, "install --yes", "reference install")?;
        s.expect_ok(&ran, "the reference install")?;
        Ok((s.journal(0)?.len(), started.elapsed().as_secs_f64()))
    })?;
    if measured {
        s.fresh()?;
    }
    let (after, delay) = point(s.case.point.unwrap_or(1), lab.points, records, seconds);
    let how = if power { "power cut" } else { "kill -9" };
    let seen = frozen_at(s, after, delay, power)?;
    if power {
        s.power_cut(0)?;
        s.boot(0)?;
    }
    let after_cut = s.journal(0)?;
    check_journal(&seen, &after_cut, power)?;
    let done: Vec<String> = after_cut
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == "step-done")
        .filter_map(|r| r["step"].as_str().map(str::to_string))
        .collect();
    let rerun = s.bundle_run(0, &bundle.file, "install --yes", "rerun")?;
    s.expect_ok(&rerun, &format!("the rerun after the {how}"))?;
    let redone: Vec<String> = rerun.json()["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|step| step["name"].as_str().is_some_and(|n| done.iter().any(|d| d == n)) && step["state"] != "already-done")
        .filter_map(|step| step["name"].as_str().map(str::to_string))
        .collect();
    if !redone.is_empty() {
        return Err(format!("the rerun redid step(s) the journal called done: {}", redone.join(", ")));
    }
    let (complete, version) = s.status(0, &bundle.file)?;
    if !complete || version != bundle.version {
        return Err(format!("after the rerun, status says complete={complete}, version '{version}'"));
    }
    let verify = s.bundle_run(0, &bundle.file, "status --verify", "status --verify")?;
    if !verify.ok() {
        return Err(format!("status --verify after the rerun: exit {}, {}", code(&verify), last_line(&verify)));
    }
    Ok(Outcome::passed(format!(
        "{how} after record {after} (+{delay:.2} s) with {} record(s) written and {} step(s) done; the rerun finished the rest",
        seen.len(),
        done.len()
    )))
}

/// Starts the install and freezes it at the point; the journal as it was then. A run
/// faster than the reference may end before a point inside a step: then the same point
/// right at the record, on fresh machines.
fn frozen_at(s: &mut Scene, after: usize, mut delay: f64, power: bool) -> std::result::Result<Vec<String>, String> {
    let how = if power { "power cut" } else { "kill -9" };
    for tried in 0..MAX_TRIES {
        if tried > 0 {
            delay = 0.0;
            s.fresh()?;
        }
        s.stage(0, &s.lab.bundle)?;
        let script = watcher(s, after, delay, power);
        let started = Instant::now();
        let ran = s.machine(0).run_watching(&script, Duration::from_secs(1800), &mut |line| line == CUT).map_err(|e| e.message)?;
        s.keep_run(0, &format!("install, {how} after record {after} + {delay:.2} s"), &ran, started.elapsed().as_secs_f64());
        if !ran.stdout.lines().any(|l| l == MISSED) {
            return Ok(ran
                .stdout
                .lines()
                .skip_while(|l| *l != JOURNAL)
                .skip(1)
                .take_while(|l| *l != END)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect());
        }
    }
    Err(format!("the install ended before record {after} in {MAX_TRIES} tries: nothing was cut"))
}

/// The shell run on the machine: the install in the background, frozen by the
/// runtime's own fault hook right after it appended journal record `after`, let run
/// `delay` seconds more (then frozen again); the journal printed, and the cut made (or
/// asked of this host).
fn watcher(s: &Scene, after: usize, delay: f64, power: bool) -> String {
    let journal = format!("{}/journal.jsonl", s.lab.bundle.state_dir());
    let config = if s.lab.template.is_some() { " --config ./config" } else { "" };
    let bundle = crate::lab::machine::shell_quote(&format!("./{}", s.lab.bundle.file));
    let cut = match power {
        true => format!("echo {CUT}; sleep 600"),
        false => "kill -9 $pid; echo AIRBIN-LAB-KILLED".to_string(),
    };
    // The launcher execs the runtime: $pid is the installer itself.
    format!(
        "cd {STAGE} && J={journal}
AIRBIN_TEST_STOP_AT=journal-appended#{after} sh {bundle} install --yes --json{config} > cut.out 2> cut.err &
pid=$!
stopped() {{ grep -q '^State:.*T' /proc/$pid/status 2>/dev/null; }}
alive() {{ kill -0 $pid 2>/dev/null && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; }}
while alive && ! stopped; do sleep 0.01; done
if stopped && [ {delay:.3} != 0.000 ]; then
  kill -CONT $pid; sleep {delay:.3}; kill -STOP $pid 2>/dev/null
  sleep 0.05
fi
if stopped; then
  echo {JOURNAL}; cat \"$J\" 2>/dev/null; echo; echo {END}
  {cut}
else
  wait $pid
  echo {MISSED}
fi"
    )
}

/// The journal after the cut against what it held at the cut: every record surely on
/// disk kept, in order (after a power cut the last one may not have been synced yet,
/// and a torn last line is what the next run repairs).
fn check_journal(seen: &[String], after: &[String], power: bool) -> std::result::Result<(), String> {
    let torn_allowed = usize::from(power);
    for (n, line) in after.iter().enumerate() {
        if serde_json::from_str::<serde_json::Value>(line).is_err() && n + torn_allowed < after.len() {
            return Err(format!("journal line {} is not a record after the cut: {}", n + 1, line.chars().take(120).collect::<String>()));
        }
    }
    let sure = seen.len().saturating_sub(torn_allowed);
    for (n, record) in seen.iter().take(sure).enumerate() {
        if after.get(n) != Some(record) {
            return Err(format!(
                "journal record {} of {} written before the cut is {} after it",
                n + 1,
                seen.len(),
                if after.len() <= n { "gone" } else { "changed" }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_spread_over_the_records_from_the_first_to_the_last() {
        assert_eq!(point(1, 3, 13, 6.0), (1, 0.0));
        assert_eq!(point(2, 3, 13, 6.0), (7, 0.0));
        assert_eq!(point(3, 3, 13, 6.0), (13, 0.0));
        // Between two records: a time into the step.
        let (after, delay) = point(2, 4, 12, 5.5);
        assert_eq!(after, 4);
        assert!((delay - 2.0 / 3.0 * 0.5).abs() < 1e-9, "{delay}");
        // Two records (a bundle without steps): the start, half way, the end.
        assert_eq!(point(1, 3, 2, 3.0), (1, 0.0));
        let (after, delay) = point(2, 3, 2, 3.0);
        assert_eq!(after, 1);
        assert!((delay - 1.5).abs() < 1e-9);
        assert_eq!(point(3, 3, 2, 3.0), (2, 0.0));
    }

    #[test]
    fn a_journal_that_lost_a_synced_record_is_refused() {
        let seen: Vec<String> = ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"].iter().map(|s| s.to_string()).collect();
        assert!(check_journal(&seen, &seen, false).is_ok());
        assert!(check_journal(&seen, &seen[..2], true).is_ok(), "the last record may not have been synced");
        assert!(check_journal(&seen, &seen[..1], true).is_err());
        let torn = vec![seen[0].clone(), seen[1].clone(), "{\"a\":".to_string()];
        assert!(check_journal(&seen, &torn, true).is_ok());
        assert!(check_journal(&seen, &torn, false).is_err());
    }
}
