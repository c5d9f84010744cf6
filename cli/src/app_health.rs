//! The app registration's health in the listings: `mssp status` checks the credentials now (one
//! request in the app's home tenant), `mssp refresh` shows what its cycle found. When it says
//! something (a refusal, a warning, a check that could not tell), lines go to stdout above a
//! table, or to stderr when stdout carries JSON.

use shared::flows::app_health::{self, AppHealth};

use crate::backend::Backend;
use crate::error::CliError;
use crate::output::wrap;

/// The app's health now.
pub async fn current(b: &Backend) -> Result<AppHealth, CliError> {
    let active = b.deps.registry.list_active().await?;
    Ok(app_health::current(&b.deps, &active).await)
}

/// `App registration: …` and one indented, wrapped line per warning.
pub fn lines(app: &AppHealth) -> Vec<String> {
    let head = wrap(
        &format!("App registration: {}", app.credentials_line()),
        100,
    );
    let mut out: Vec<String> = head
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("  {l}")
            }
        })
        .collect();
    for warning in &app.warnings {
        if app.problem() == Some(warning.as_str()) {
            continue;
        }
        let text = wrap(warning, 96);
        for (i, line) in text.lines().enumerate() {
            out.push(format!("{} {line}", if i == 0 { "  !" } else { "   " }));
        }
    }
    out
}

/// Prints [`lines`] when the health is notable ([`AppHealth::notable`]): on stderr when `json`
/// (stdout is the JSON document), else on stdout with a blank line after.
pub fn print(app: &AppHealth, json: bool) {
    if !app.notable() {
        return;
    }
    for line in lines(app) {
        if json {
            eprintln!("mssp: {line}");
        } else {
            println!("{line}");
        }
    }
    if !json {
        println!();
    }
}
