//! The regular fetch: from the watermark (less the overlap) to now. An interrupted window
//! (a checkpoint) is finished first. A window's first page decides how it is drained: a page
//! that ends it completes it — one request for an idle tenant — otherwise it is counted, and
//! drained whole or split into chunks of at most `chunk_target` alerts, each committed on its own.

use chrono::{DateTime, Utc};

use super::drain::Drain;
use super::session::Session;
use super::{FetchFlowError, FetchOptions, FetchReport, plan};
use crate::domain::Tenant;
use crate::flows::Deps;
use crate::microsoft::alerts::Window;
use crate::ports::{Cursor, Progress};

/// Runs the regular fetch of `tenant` on `cursor` (leased by `opts.owner`).
pub async fn run(
    d: &Deps,
    tenant: &Tenant,
    cursor: Cursor,
    opts: &FetchOptions<'_>,
) -> Result<FetchReport, FetchFlowError> {
    let now = d.clock.now();
    let window = plan::window(&cursor, now, &d.settings.fetch);
    let resumed = cursor.progress.clone();
    let mut s = Session::open(d, tenant, cursor, opts, window.since).await?;
    if let Some(progress) = resumed {
        // A checkpoint left a window half drained: finish it first, then what followed it.
        drain_window(&mut s, Drain::resume(progress), None, false).await?;
    }
    let window = plan::window(&s.cursor, now, &d.settings.fetch);
    fetch_window(&mut s, window).await?;
    Ok(s.finish())
}

/// Fetches `window`; its first page decides (see the module docs).
async fn fetch_window(s: &mut Session<'_>, window: Window) -> Result<(), FetchFlowError> {
    let mut first = Drain::new(window);
    let alerts = s.page(&mut first).await?;
    s.deliver(alerts, window, None, false).await?;
    if first.done() {
        return advance(s, window.until, None, true).await;
    }
    let target = s.d.settings.fetch.chunk_target;
    let count = s.count(window).await?;
    if count.is_none_or(|n| n <= target) {
        s.report.chunks_planned = 1;
        return drain_window(s, first, count, true).await;
    }
    let chunks = plan::chunks(s, window, count, target).await?;
    s.report.chunks_planned = chunks.len() as u64;
    let n = chunks.len();
    for (i, (chunk, expected)) in chunks.into_iter().enumerate() {
        drain_window(s, Drain::new(chunk), expected, i + 1 == n).await?;
    }
    Ok(())
}

/// Drains `drain` to the end of its window, delivering page by page and checkpointing every
/// `checkpoint_pages` pages and when it stops early; then checks it is complete and commits
/// (`last`: as the run's last write).
async fn drain_window(
    s: &mut Session<'_>,
    mut drain: Drain,
    expected: Option<u64>,
    last: bool,
) -> Result<(), FetchFlowError> {
    let window = drain.window();
    let every = s.d.settings.fetch.checkpoint_pages.max(1);
    let mut pages = 0u32;
    while !drain.done() {
        let before = drain.progress.clone();
        let page = match s.page(&mut drain).await {
            Ok(alerts) => s.deliver(alerts, window, None, false).await,
            Err(e) => Err(e),
        };
        if let Err(e) = page {
            // The page that failed is listed again next run: the checkpoint is where it began.
            drain.progress = before;
            if !matches!(e, FetchFlowError::Interrupted(_)) && drain.progress.listed > 0 {
                checkpoint(s, &drain).await?;
            }
            return Err(e);
        }
        pages += 1;
        if !drain.done() && pages.is_multiple_of(every) {
            checkpoint(s, &drain).await?;
        }
    }
    if let Err(e) = s.check_complete(&drain, expected).await {
        // What was delivered stays committed; the window is listed again from its start.
        advance(s, window.since, None, false).await?;
        return Err(e);
    }
    advance(s, window.until, None, last).await
}

/// Commits what was delivered with the drain's position; the watermark stays.
async fn checkpoint(s: &mut Session<'_>, drain: &Drain) -> Result<(), FetchFlowError> {
    let progress = drain.progress.clone();
    let at = s.cursor.watermark.unwrap_or(s.index_from);
    advance(s, at, Some(progress), false).await
}

/// Commits the watermark moved up to `until` (never back), with `progress` if a window is half
/// drained; `last`: as the run's last write, releasing the lease.
async fn advance(
    s: &mut Session<'_>,
    until: DateTime<Utc>,
    progress: Option<Progress>,
    last: bool,
) -> Result<(), FetchFlowError> {
    let now = s.now;
    let change = |c: &mut Cursor| {
        c.watermark = Some(c.watermark.map_or(until, |w| w.max(until)));
        if until >= now {
            // The run's whole window is done: everything before its start is delivered.
            c.checked_at = Some(now);
        }
        c.progress = progress;
    };
    if last {
        s.commit_last(change).await
    } else {
        s.commit(change).await
    }
}
