//! The tests that drive many machines, in one binary so that they run side by side
//! (each mostly waits on its machines): `airbin lab` on every backend (lab.rs) and
//! fleets through the Ansible collection (fleet.rs).

#[path = "../support/mod.rs"]
mod support;

mod fleet;
mod lab;
