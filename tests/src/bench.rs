//! What the bench binaries (`tests/benches/*.rs`) share besides [`crate::fleet`]'s measures:
//! their command-line flags, their verdict marks and the machine's load.

/// The value after flag `name` on the command line (`--tenants 100` → `100`), if given.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A target's mark in a bench's table: `ok`, or `MISS`.
pub fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISS" }
}

/// The 1-minute load average (`/proc/loadavg`), or `?`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
