//! Every blob the images need, fetched into the cache a few at a time, each retried when
//! a download breaks off; what the cache has already is not fetched again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use airbin_format::console::Ui;

use super::cache::Cache;
use super::reference::Reference;
use super::source::ImageSource;

/// Downloads at once.
const PARALLEL: usize = 4;
/// Attempts a blob gets when its download breaks off or arrives damaged.
const ATTEMPTS: u32 = 3;

/// One blob to have: which source and repository serve it, and how big it is.
pub(crate) struct Want<'a> {
    pub(crate) source: &'a dyn ImageSource,
    pub(crate) reference: &'a Reference,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

/// Fetches every wanted blob the cache lacks; the failures, each with its digest.
/// `images` holds each image's blobs, for the count of images done the progress shows.
pub(crate) fn fetch_all(wants: &[Want], images: &[Vec<String>], cache: &Cache, ui: &Ui) -> Vec<(String, String)> {
    let missing: Vec<&Want> = wants.iter().filter(|w| !cache.has(&w.digest, w.size)).collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let progress = ui.progress("fetch", missing.iter().map(|w| w.size).sum());
    ui.status(format!("fetching {} blob(s) ({} in the cache already)", missing.len(), wants.len() - missing.len()));
    let done = Done::new(images, &missing);
    progress.relabel(done.label());
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(missing.len()) {
            scope.spawn(|| {
                while let Some(want) = missing.get(next.fetch_add(1, Ordering::SeqCst)) {
                    if airbin_format::cancel::requested() {
                        break;
                    }
                    if let Err(why) = fetch_one(want, cache, &progress) {
                        failures.lock().expect("no panic holding it").push((want.digest.clone(), why));
                    }
                    progress.relabel(done.blob_done(&want.digest));
                }
            });
        }
    });
    progress.finish();
    failures.into_inner().expect("no panic holding it")
}

/// Images done of the total: an image is done when the last of its blobs is.
struct Done {
    pending: Mutex<Vec<std::collections::BTreeSet<String>>>,
    total: usize,
}

impl Done {
    fn new(images: &[Vec<String>], missing: &[&Want]) -> Done {
        let missing: std::collections::BTreeSet<&str> = missing.iter().map(|w| w.digest.as_str()).collect();
        let pending = images.iter().map(|blobs| blobs.iter().filter(|b| missing.contains(b.as_str())).cloned().collect()).collect();
        Done { pending: Mutex::new(pending), total: images.len() }
    }

    fn blob_done(&self, digest: &str) -> String {
        for blobs in self.pending.lock().expect("no panic holding it").iter_mut() {
            blobs.remove(digest);
        }
        self.label()
    }

    fn label(&self) -> String {
        let pending = self.pending.lock().expect("no panic holding it");
        format!("fetch {}/{} images", pending.iter().filter(|b| b.is_empty()).count(), self.total)
    }
}

fn fetch_one(want: &Want, cache: &Cache, progress: &airbin_format::console::Progress) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut fill = |out: &mut dyn std::io::Write| {
            let mut counted = airbin_format::console::ProgressWriter::new(out, progress);
            want.source.blob(want.reference, &want.digest, &mut counted)
        };
        match cache.store(&want.digest, &mut fill) {
            Ok(_) => return Ok(()),
            Err(why) => last = why,
        }
        std::thread::sleep(std::time::Duration::from_millis(500 << attempt));
    }
    Err(last)
}
