//! Step 2 of a fetch: drain a window page by page. The drain keeps which alerts of the window it
//! listed (alerts repeat across pages: at keyset boundaries, or when the API's paging shifts),
//! asks the source where the next page starts, and at the end checks completeness against the
//! API's count. Its [`Progress`] is what a checkpoint stores, so a run stopped after any page
//! resumes there instead of listing the window again.

use tokio::time::Instant;

use crate::microsoft::alerts::{
    AlertSource, DrainStats, FetchError, Page, Position, SourceAlert, Window,
};
use crate::ports::Progress;
use crate::secret::AccessToken;

/// The drain of one window.
pub struct Drain {
    /// Where it stands (stored by checkpoints).
    pub progress: Progress,
    /// Record ids listed by this run (the progress carries only those at the current boundary).
    seen: foldhash::HashSet<String>,
    /// Whether the last page ended the window.
    done: bool,
    /// Whether the window's first page ended it (nothing to check then).
    one_page: bool,
    /// Partial answers (206) in a row at the current position, and the last one's warning.
    partial: (u32, String),
}

impl Drain {
    /// A drain of `window` from its first page.
    pub fn new(window: Window) -> Self {
        Drain::resume(Progress {
            window,
            at: Position::Start,
            listed: 0,
            boundary: Vec::new(),
        })
    }

    /// A drain continuing where `progress` (a checkpoint) left it.
    pub fn resume(progress: Progress) -> Self {
        Drain {
            seen: progress.boundary.iter().cloned().collect(),
            progress,
            done: false,
            one_page: false,
            partial: (0, String::new()),
        }
    }

    /// The window.
    pub fn window(&self) -> Window {
        self.progress.window
    }

    /// Whether the window is drained.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Reads the next page from `source`.
    pub async fn page(
        &self,
        source: &mut dyn AlertSource,
        token: &AccessToken,
        deadline: Instant,
        stats: &mut DrainStats,
    ) -> Result<Page, FetchError> {
        let p = &self.progress;
        source.page(token, p.window, &p.at, deadline, stats).await
    }

    /// Partial answers in a row at the current position, and the last one's `Warning`.
    pub fn partial_streak(&self) -> (u32, &str) {
        (self.partial.0, &self.partial.1)
    }

    /// Takes `page`: returns its alerts not listed before in this window, and moves on to where
    /// the next page starts — unless the page is partial (206): its alerts are real and taken,
    /// and the same page is asked for again.
    pub fn take(
        &mut self,
        source: &dyn AlertSource,
        mut page: Page,
        stats: &mut DrainStats,
    ) -> Result<Vec<SourceAlert>, FetchError> {
        let oldest = page.alerts.iter().filter_map(|a| a.created).min();
        let alerts = std::mem::take(&mut page.alerts);
        let boundary: Vec<String> = alerts
            .iter()
            .filter(|a| a.created.is_some() && a.created == oldest)
            .map(|a| a.record_id.clone())
            .collect();
        // By record: one SIEM alert is several records (one per detection part).
        let fresh: Vec<SourceAlert> = alerts
            .into_iter()
            .filter(|a| self.seen.insert(a.record_id.clone()))
            .collect();
        self.progress.listed += fresh.len() as u64;
        stats.alerts += fresh.len() as u64;
        if let Some(warning) = page.partial.take() {
            self.partial = (self.partial.0 + 1, warning);
            return Ok(fresh);
        }
        self.partial.0 = 0;
        let next = source.next(&self.progress.at, &page, fresh.len(), oldest)?;
        match next {
            Some(at) => {
                // Only a keyset position repeats alerts of the page it follows: those at its bound.
                let keyset = !matches!(at, Position::Link(_) | Position::Start);
                self.progress.boundary = if keyset { boundary } else { Vec::new() };
                self.progress.at = at;
            }
            None => {
                self.done = true;
                self.one_page = self.progress.at == Position::Start;
            }
        }
        Ok(fresh)
    }

    /// Starts the window over from its first page (a stored next link the API no longer takes).
    pub fn restart(&mut self) {
        *self = Drain::new(self.progress.window);
    }

    /// Checks that the drain listed every alert the window holds: at least `expected` (the
    /// planning count, if any) or, when short of it or unknown, the count now — alerts updated
    /// meanwhile leave the window legitimately. A drain that ended on its first page needs no
    /// check: a page shorter than asked without a next link is complete by itself.
    pub async fn check_complete(
        &self,
        expected: Option<u64>,
        source: &mut dyn AlertSource,
        token: &AccessToken,
        deadline: Instant,
        stats: &mut DrainStats,
    ) -> Result<(), FetchError> {
        let listed = self.progress.listed;
        if self.one_page || expected.is_some_and(|n| listed >= n) {
            return Ok(());
        }
        match source.count(token, self.window(), deadline, stats).await? {
            Some(now) if listed < now => Err(FetchError::ShortListing {
                listed,
                counted: now,
            }),
            _ => Ok(()),
        }
    }
}
