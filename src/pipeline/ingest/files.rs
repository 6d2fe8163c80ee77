//! The files driver: reads an NDJSON files source to its end (or shutdown) into the version
//! writer, with JSON decoding one batch ahead on the blocking pool ([`DecodeAhead`]).
//!
//! Invariant: batches reach the writer in the source's order; the writer commits at least
//! every `max_age`, when its buffers are over budget, and at the end.

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::decode::RecordDecoder;
use crate::decode::json::Decoded;
use crate::error::Result;
use crate::pipeline::ingest::report::Stop;
use crate::pipeline::ingest::writer::{VersionWriter, decode_blocking};
use crate::shutdown::Shutdown;
use crate::source::SourceBatch;
use crate::source::files::FilesSource;

/// Writes the files' records until their end or shutdown.
pub(super) async fn run(
    w: &mut VersionWriter<'_>,
    source: FilesSource,
    shutdown: &mut Shutdown,
) -> Result<Stop> {
    let mut deadline = Instant::now() + w.table.writer.max_age;
    let mut decoded = DecodeAhead::start(source, w.decoder.clone());
    // A files source is one partition, held from the start.
    w.metrics.assigned(1);
    let interrupted = loop {
        let next = tokio::select! {
            biased;
            () = shutdown.wait() => break true,
            () = tokio::time::sleep_until(deadline) => None,
            b = decoded.next() => match b {
                Some(b) => Some(b?),
                None => break false,
            },
        };
        if let Some((batch, events)) = next {
            w.report.records += batch.records.len() as u64;
            w.write_decoded(&batch, events, &batch.partition).await?;
        }
        deadline = w.commit_when_due(deadline).await?;
    };
    w.commit().await?;
    Ok(if interrupted {
        Stop::Interrupted
    } else {
        Stop::End
    })
}

/// A files source with JSON decoding one batch ahead of the writer, on the blocking pool: the
/// parse of batch N+1 overlaps the encoding of batch N, so a rebuild keeps both cores busy.
struct DecodeAhead {
    rx: mpsc::Receiver<Result<(SourceBatch, Decoded)>>,
    pump: tokio::task::JoinHandle<()>,
}

impl DecodeAhead {
    fn start(mut source: FilesSource, decoder: RecordDecoder) -> DecodeAhead {
        let (tx, rx) = mpsc::channel(1);
        let pump = tokio::spawn(async move {
            while let Some(next) = source.next().await {
                let item = match next {
                    Ok(batch) => decode_blocking(decoder.clone(), batch).await,
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        DecodeAhead { rx, pump }
    }

    async fn next(&mut self) -> Option<Result<(SourceBatch, Decoded)>> {
        self.rx.recv().await
    }
}

impl Drop for DecodeAhead {
    fn drop(&mut self) {
        // Stops reading (the source's thread ends when its channel closes).
        self.pump.abort();
    }
}
