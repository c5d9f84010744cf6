//! Jobs over the past — the reconciliation sweep and backfill — run in slices under the tenant's
//! lease, between regular fetches. A job's window is drained oldest first in chunks of at most
//! `chunk_target` alerts; every version listed is looked up in the delivery index of its chunk's
//! days (and the keys in hand), and only a missing one is delivered. A slice ends at its own
//! deadline with a checkpoint ([`Job::progress`]); the next slice resumes there, so a job of any
//! size finishes by slices and never holds a tenant for long.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::FetchFlowError;
use super::drain::Drain;
use super::plan;
use super::session::Session;
use crate::microsoft::alerts::{FetchError, Window};
use crate::ports::{Cursor, Job, JobSummary, Progress};

/// Which job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The reconciliation sweep: what it finds is delivered marked late.
    Sweep,
    /// A backfill: ordinary records.
    Backfill,
}

impl Kind {
    fn state(self, c: &Cursor) -> Option<&Job> {
        match self {
            Kind::Sweep => c.sweep.as_ref(),
            Kind::Backfill => c.backfill.as_ref(),
        }
    }

    fn state_mut(self, c: &mut Cursor) -> &mut Option<Job> {
        match self {
            Kind::Sweep => &mut c.sweep,
            Kind::Backfill => &mut c.backfill,
        }
    }

    fn last_mut(self, c: &mut Cursor) -> &mut Option<JobSummary> {
        match self {
            Kind::Sweep => &mut c.last_sweep,
            Kind::Backfill => &mut c.last_backfill,
        }
    }
}

/// How a slice ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slice {
    /// The job is done.
    Finished(JobSummary),
    /// The slice's time is up; the job goes on from its checkpoint.
    Continues(Job),
}

/// A new job over `window`, started `now`.
pub fn start(window: Window, now: DateTime<Utc>) -> Job {
    Job {
        window,
        done_until: window.since,
        progress: None,
        started: now,
        checked: 0,
        delivered: 0,
        requests: 0,
    }
}

/// Runs `kind`'s job in `s` (whose cursor holds the job's state) until it is done or
/// `slice_end` comes.
pub async fn run_slice(
    s: &mut Session<'_>,
    kind: Kind,
    slice_end: Instant,
) -> Result<Slice, FetchFlowError> {
    let mut job = kind
        .state(&s.cursor)
        .cloned()
        .ok_or_else(|| FetchFlowError::Store(crate::ports::StoreError::NotFound))?;
    let requests_before = s.requests();
    // What a killed slice delivered is read back: it counts as the job's.
    job.delivered += s.resumed_in(Window {
        since: job.done_until,
        until: job.window.until,
    });
    let so_far = |job: &Job, s: &Session<'_>| Job {
        requests: job.requests + s.requests() - requests_before,
        ..job.clone()
    };
    while job.done_until < job.window.until {
        if Instant::now() >= slice_end {
            return pause(s, kind, so_far(&job, s)).await;
        }
        let remaining = Window {
            since: job.done_until,
            until: job.window.until,
        };
        let (chunk, expected) = next_chunk(s, remaining, job.progress.as_ref()).await?;
        match drain_chunk(s, kind, &mut job, chunk, expected, slice_end).await {
            Ok(true) => {
                job.done_until = chunk.until;
                job.progress = None;
                save(s, kind, &so_far(&job, s)).await?;
            }
            // The slice's end, or the run's deadline (or the budget's next slot past it), ends
            // the slice: the job goes on next slice from its checkpoint.
            Ok(false)
            | Err(FetchFlowError::Incomplete {
                error: FetchError::Deadline,
                ..
            }) => return pause(s, kind, so_far(&job, s)).await,
            // Stopped early: what was delivered, and where, is kept for the next slice.
            Err(e @ FetchFlowError::Incomplete { .. }) => {
                save(s, kind, &so_far(&job, s)).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    let job = so_far(&job, s);
    finish(s, kind, job).await
}

/// Ends the slice with `job` saved as its checkpoint.
async fn pause(s: &mut Session<'_>, kind: Kind, job: Job) -> Result<Slice, FetchFlowError> {
    save(s, kind, &job).await?;
    Ok(Slice::Continues(job))
}

/// The oldest chunk of `remaining` to drain: the one a checkpoint left half drained, else the
/// oldest piece of at most `chunk_target` alerts (whole when the API cannot count).
async fn next_chunk(
    s: &mut Session<'_>,
    remaining: Window,
    progress: Option<&Progress>,
) -> Result<(Window, Option<u64>), FetchFlowError> {
    if let Some(p) = progress {
        return Ok((p.window, None));
    }
    let target = s.d.settings.fetch.chunk_target;
    let count = s.count(remaining).await?;
    if count.is_none_or(|n| n <= target) {
        return Ok((remaining, count));
    }
    let mut chunks = plan::chunks(s, remaining, count, target).await?;
    Ok(chunks.remove(0))
}

/// Drains `chunk` (from the job's checkpoint, if any), delivering what the index lacks, until
/// the chunk is done (`true`) or the slice ends (`false`, with the checkpoint in `job`).
async fn drain_chunk(
    s: &mut Session<'_>,
    kind: Kind,
    job: &mut Job,
    chunk: Window,
    expected: Option<u64>,
    slice_end: Instant,
) -> Result<bool, FetchFlowError> {
    let mut index = index_of(s, chunk).await?;
    let mut drain = match job.progress.clone() {
        Some(p) => Drain::resume(p),
        None => Drain::new(chunk),
    };
    while !drain.done() {
        if Instant::now() >= slice_end {
            job.progress = Some(drain.progress.clone());
            return Ok(false);
        }
        let before = drain.progress.clone();
        let delivered_before = s.report.delivered;
        let page = match s.page(&mut drain).await {
            Ok(alerts) => {
                s.deliver(alerts, chunk, Some(&mut index), kind == Kind::Sweep)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = page {
            // The page that failed is listed again: the checkpoint is where it began.
            job.progress = Some(before);
            return Err(e);
        }
        job.checked += drain.progress.listed - before.listed;
        job.delivered += s.report.delivered - delivered_before;
    }
    s.check_complete(&drain, expected).await?;
    Ok(true)
}

/// The delivery index of the days `chunk` spans.
async fn index_of(s: &Session<'_>, chunk: Window) -> Result<HashSet<u64>, FetchFlowError> {
    let (tenant, api) = (&s.tenant.id, s.tenant.alert_api);
    let last = chunk.until - chrono::Duration::nanoseconds(100);
    let days =
        s.d.index
            .days(tenant, api, chunk.since.date_naive(), last.date_naive());
    Ok(days.await?)
}

/// Commits the job's state as it stands.
async fn save(s: &mut Session<'_>, kind: Kind, job: &Job) -> Result<(), FetchFlowError> {
    let job = job.clone();
    s.commit(|c| *kind.state_mut(c) = Some(job)).await
}

/// Commits the job as finished, with its summary.
async fn finish(s: &mut Session<'_>, kind: Kind, job: Job) -> Result<Slice, FetchFlowError> {
    let summary = JobSummary {
        window: job.window,
        started: job.started,
        finished: s.d.clock.now(),
        checked: job.checked,
        delivered: job.delivered,
        requests: job.requests,
        elsewhere: None,
    };
    let last = summary.clone();
    s.commit(|c| {
        *kind.state_mut(c) = None;
        *kind.last_mut(c) = Some(last);
    })
    .await?;
    Ok(Slice::Finished(summary))
}
