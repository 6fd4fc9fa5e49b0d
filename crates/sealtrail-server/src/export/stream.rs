//! Exports on the reader pool, as a stream of chunks (one page each) for `GET /v1/export`.
//!
//! [`start`] fixes the window (on the reader pool, so that a failure is still an HTTP
//! status), then a task reads a page, encodes it and sends it on a channel of
//! [`CHUNKS_AHEAD`] chunks; it waits while the client reads slower than the log, and stops
//! when the client goes away (the channel closes). Memory is a few pages per export, whatever
//! its size. Each page is one short read on the pool, so an export never holds a store
//! connection while the client reads and never keeps a search or a proof waiting for long.

use tokio::sync::mpsc;

use super::{Encoder, ExportError, Filter, Format, PAGE_ENTRIES, Window, read_page, window};
use crate::readers::Readers;

/// Encoded pages that may wait for the client at once.
pub const CHUNKS_AHEAD: usize = 2;

/// A running export: its window, and its chunks in order. A chunk that is an error ends it.
pub struct Running {
    pub window: Window,
    pub chunks: mpsc::Receiver<Result<Vec<u8>, ExportError>>,
}

/// Starts the export of `tenant`'s log after seq `after` (from the start when `None`).
pub async fn start(
    readers: &Readers,
    tenant: &str,
    after: Option<u64>,
    format: Format,
    filter: Filter,
) -> Result<Running, ExportError> {
    let owned = tenant.to_string();
    let window = readers.read(move |log| window(log, &owned, after)).await?;
    let (sender, chunks) = mpsc::channel(CHUNKS_AHEAD);
    let (readers, tenant) = (readers.clone(), tenant.to_string());
    tokio::spawn(async move {
        let mut encoder = Encoder::new(&tenant, format, filter);
        let mut first = Vec::new();
        if let Err(error) = encoder.header(&mut first) {
            let _ = sender.send(Err(error)).await;
            return;
        }
        if !first.is_empty() && sender.send(Ok(first)).await.is_err() {
            return;
        }
        let mut next = window.start;
        while next < window.end {
            let owned = tenant.clone();
            let from = next;
            let page = readers
                .read(move |log| read_page(log, &owned, from, window.end, PAGE_ENTRIES))
                .await;
            let chunk = page.and_then(|entries| {
                let mut chunk = Vec::new();
                encoder.page(&entries, &mut chunk)?;
                Ok((entries.last().map(|(seq, _)| *seq), chunk))
            });
            let (last, chunk) = match chunk {
                Ok(done) => done,
                Err(error) => {
                    tracing::error!(%error, tenant, "export stopped");
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            let Some(last) = last else { break };
            next = last + 1;
            if !chunk.is_empty() && sender.send(Ok(chunk)).await.is_err() {
                // The client went away.
                return;
            }
        }
    });
    Ok(Running { window, chunks })
}
