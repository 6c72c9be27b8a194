//! `load-images`: an image member streamed into the container engine (no copy on
//! disk), then every recorded tag checked for the recorded image ID; nothing streamed
//! when every tag is there with its ID already, or once the engine has finished the
//! load of a stream a killed run had handed over whole.

use std::time::{Duration, Instant};

use super::placed::{Change, EngineRecord, PlacedImage};
use super::HandedOver;
use super::{Inputs, Needs, RunContext};
use crate::engines;
use airbin_format::error::{Error, Result};

fn strip_sha(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// How often the engine is asked while an earlier load may still be committing.
const POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub(crate) struct LoadImages {
    pub(crate) member: String,
    /// The engine asked for: the command line's, else the spec's, else auto.
    pub(crate) engine: Option<String>,
    references: Vec<String>,
}

pub(crate) fn prepare(inputs: &Inputs, member: &str, engine: Option<&str>) -> LoadImages {
    let record = inputs.bundle.index.member(member).expect("prepare checked the member");
    LoadImages {
        member: member.to_string(),
        engine: inputs.overrides.engine.clone().or(engine.map(str::to_string)),
        references: engines::member_references(record).into_iter().map(str::to_string).collect(),
    }
}

/// How long the engine may take to commit what a killed run handed over, against the
/// time the stream took to hand over: past that, the engine is taken to have dropped
/// it (an engine restarted, a load that failed), and the images are loaded again.
const COMMIT_TIME_PER_STREAM_TIME: f64 = 10.0;
const COMMIT_WAIT_AT_LEAST: Duration = Duration::from_secs(20);
const COMMIT_WAIT_AT_MOST: Duration = Duration::from_secs(30 * 60);

impl LoadImages {
    /// A killed run handed the engine the whole stream, and the engine goes on with it
    /// after its client has gone: waits for its images to appear with the recorded IDs
    /// rather than streaming the archive again. `None`: they did not, in time.
    fn await_earlier_load(
        &self,
        ctx: &RunContext,
        engine: &engines::Engine,
        member: &airbin_format::Member,
        earlier: &HandedOver,
    ) -> Result<Option<Vec<String>>> {
        let wait = Duration::from_secs_f64(earlier.seconds.max(0.0) * COMMIT_TIME_PER_STREAM_TIME)
            .clamp(COMMIT_WAIT_AT_LEAST, COMMIT_WAIT_AT_MOST);
        ctx.ui.status(format!(
            "a killed run handed {} whole to {} at {}: waiting up to {} for the engine to finish that load before loading again",
            member.name,
            engine.name(),
            earlier.at,
            humantime::format_duration(wait)
        ));
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(refs) = engines::verify(engine, &member.images) {
                return Ok(Some(refs));
            }
            if Instant::now() >= deadline {
                ctx.ui.status(format!("{} did not finish the earlier load of {} in time: loading again", engine.name(), member.name));
                return Ok(None);
            }
            crate::interrupt::check()?;
            std::thread::sleep(POLL);
        }
    }

    pub(crate) fn describe(&self) -> String {
        let engine = self.engine.as_deref().filter(|e| *e != "auto").unwrap_or("the engine found on this host");
        format!("load the images of {} ({}) into {engine}", self.member, self.references.join(", "))
    }

    pub(crate) fn needs(&self) -> Needs {
        Needs {
            engine: Some(self.engine.clone()),
            loads: vec![format!("{} ({})", self.member, self.references.join(", "))],
            ..Needs::default()
        }
    }

    /// Records, before anything is loaded, each reference this step needs, and whether
    /// it creates it (absent, or naming another image) or the host had it with the
    /// bundle's ID already (the host's, unless an earlier run of this product put it there).
    fn record_what_it_places(&self, ctx: &RunContext, engine: &engines::Engine, member: &airbin_format::Member) -> Result<()> {
        let store = EngineRecord::of(engine);
        let before = ctx.placed.snapshot();
        for image in &member.images {
            for reference in image.references() {
                let there = engines::image_id(engine, reference)?;
                let present = there.as_deref().map(strip_sha) == Some(strip_sha(&image.id));
                let placed = match before.image(&store, reference) {
                    Some(earlier) => earlier.placed || !present,
                    None => !present,
                };
                let step = ctx.step_name.to_string();
                let record = PlacedImage { engine: store.clone(), reference: reference.to_string(), id: image.id.clone(), step, placed };
                ctx.placed.add(Change::Image(record))?;
            }
        }
        Ok(())
    }

    pub(crate) fn run(&self, ctx: &RunContext) -> Result<String> {
        let member = ctx.bundle.member(&self.member)?;
        let engine = ctx.engine.ok_or_else(|| Error::internal("preflight found no engine for a load-images step"))?;
        self.record_what_it_places(ctx, engine, member)?;
        // Every tag there with the recorded image ID (which digests the layers): the load
        // would change nothing. So a rerun after a kill that came once the engine had
        // committed does not stream the images again. Still, no step is done before the
        // bundle's verdict.
        if !ctx.redo {
            if let Ok(refs) = engines::verify(engine, &member.images) {
                ctx.bundle.await_verified()?;
                return Ok(format!("{} in {} already, with the recorded IDs: not loaded again", refs.join(", "), engine.name()));
            }
            if let Some(earlier) = ctx.handed_over_before {
                if let Some(refs) = self.await_earlier_load(ctx, engine, member, earlier)? {
                    ctx.bundle.await_verified()?;
                    return Ok(format!(
                        "{} in {}, loaded from the stream a killed run had handed over whole (at {}), with the recorded IDs",
                        refs.join(", "),
                        engine.name(),
                        earlier.at
                    ));
                }
            }
        }
        ctx.ui.status(format!("loading the images of {} into {}", member.name, engine.name()));
        let refs = engines::load(engine, ctx.bundle, member, ctx.ui, ctx.hand_over)?;
        Ok(format!("{} in {}, IDs checked", refs.join(", "), engine.name()))
    }
}
