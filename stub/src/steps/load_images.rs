//! `load-images`: an image member streamed into the container engine (no copy on
//! disk), then every recorded tag checked for the recorded image ID; nothing streamed
//! when every tag is there with its ID already.

use super::{Inputs, Needs, RunContext};
use crate::engines;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct LoadImages {
    pub member: String,
    /// The engine asked for: the command line's, else the spec's, else auto.
    pub engine: Option<String>,
    references: Vec<String>,
}

pub fn prepare(inputs: &Inputs, member: &str, engine: Option<&str>) -> LoadImages {
    let record = inputs.bundle.index.member(member).expect("prepare checked the member");
    LoadImages {
        member: member.to_string(),
        engine: inputs.overrides.engine.clone().or(engine.map(str::to_string)),
        references: engines::member_references(record).into_iter().map(str::to_string).collect(),
    }
}

impl LoadImages {
    pub fn describe(&self) -> String {
        let engine = self.engine.as_deref().filter(|e| *e != "auto").unwrap_or("the engine found on this host");
        format!("load the images of {} ({}) into {engine}", self.member, self.references.join(", "))
    }

    pub fn needs(&self) -> Needs {
        Needs {
            engine: Some(self.engine.clone()),
            loads: vec![format!("{} ({})", self.member, self.references.join(", "))],
            ..Needs::default()
        }
    }

    pub fn run(&self, ctx: &RunContext) -> Result<String> {
        let member = ctx.bundle.member(&self.member)?;
        let engine = ctx.engine.ok_or_else(|| Error::internal("preflight found no engine for a load-images step"))?;
        // Every tag there with the recorded image ID (which digests the layers): the load
        // would change nothing. So a rerun after a kill that came once the engine had
        // committed does not stream the images again. Still, no step is done before the
        // bundle's verdict.
        if !ctx.redo {
            if let Ok(refs) = engines::verify(engine, &member.images) {
                ctx.bundle.await_verified()?;
                return Ok(format!("{} in {} already, with the recorded IDs: not loaded again", refs.join(", "), engine.name()));
            }
        }
        ctx.ui.status(format!("loading the images of {} into {}", member.name, engine.name()));
        let refs = engines::load(engine, ctx.bundle, member, ctx.ui)?;
        Ok(format!("{} in {}, IDs checked", refs.join(", "), engine.name()))
    }
}
