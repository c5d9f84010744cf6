//! Step 1 of a fetch: plan the window. The window is `[watermark − overlap, now)` on the API's
//! update timestamp (the first run starts `initial_lookback` before now); a window holding more
//! than [`super::FetchSettings::chunk_target`] alerts is split by count into chunks, oldest
//! first, each drained and committed on its own.

use chrono::{DateTime, Duration, Utc};

use super::session::Session;
use super::{FetchFlowError, FetchSettings};
use crate::microsoft::alerts::{Window, tick};
use crate::ports::Cursor;

/// The window a run covers: from the overlap below the watermark (or the initial lookback) to
/// `now`.
pub fn window(cursor: &Cursor, now: DateTime<Utc>, settings: &FetchSettings) -> Window {
    let watermark = cursor.watermark.unwrap_or(now - settings.initial_lookback);
    Window {
        since: watermark - settings.overlap,
        until: now,
    }
}

/// Splits `window`, which holds `count` alerts, into chunks of at most `target` alerts by
/// counting halves, oldest first; each chunk comes with its count.
pub async fn chunks(
    s: &mut Session<'_>,
    window: Window,
    count: Option<u64>,
    target: u64,
) -> Result<Vec<(Window, Option<u64>)>, FetchFlowError> {
    let mut out = Vec::new();
    let mut todo = vec![(window, count)];
    while let Some((w, n)) = todo.pop() {
        let n = match n {
            Some(n) => Some(n),
            None => s.count(w).await?,
        };
        let splittable = w.until - w.since >= tick() * 2;
        match n {
            Some(n) if n > target && splittable => {
                let (older, newer) = halves(w);
                // Pushed newest first so the oldest half is drained first.
                todo.push((newer, None));
                todo.push((older, None));
            }
            _ => out.push((w, n)),
        }
    }
    Ok(out)
}

/// `w` cut in two at a whole tick (100 ns, the precision of Microsoft's timestamps).
fn halves(w: Window) -> (Window, Window) {
    let half = (w.until - w.since) / 2;
    let mid = w.since + half - Duration::nanoseconds(half.subsec_nanos() as i64 % 100);
    (
        Window {
            since: w.since,
            until: mid,
        },
        Window {
            since: mid,
            until: w.until,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertApi, TenantId};

    #[test]
    fn the_window_starts_an_overlap_below_the_watermark_or_a_lookback_before_now() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        let settings = FetchSettings::default();
        let tid = TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid");
        let mut c = Cursor::new(tid, AlertApi::Graph);
        let first = window(&c, now, &settings);
        assert_eq!(
            first.since,
            now - settings.initial_lookback - settings.overlap
        );
        assert_eq!(first.until, now);
        c.watermark = Some(now - Duration::minutes(5));
        assert_eq!(
            window(&c, now, &settings).since,
            now - Duration::minutes(5) - settings.overlap
        );
    }

    #[test]
    fn halves_meet_on_a_whole_tick() {
        let since = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        let w = Window {
            since,
            until: since + Duration::nanoseconds(1_000_000_300),
        };
        let (a, b) = halves(w);
        assert_eq!(a.since, w.since);
        assert_eq!(a.until, b.since);
        assert_eq!(b.until, w.until);
        assert_eq!(a.until.timestamp_subsec_nanos() % 100, 0);
    }
}
