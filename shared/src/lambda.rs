//! Helpers of the Lambda edges: when to stop starting new work before the invocation's deadline,
//! and which events are EventBridge schedules.

/// Upper bound of the time kept in reserve before the Lambda deadline (a fifth of the time
/// left, at least 1 s, at most this): in-flight work finishes and the answer is returned.
pub const SAFETY_MARGIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// The instant to stop starting new work: the Lambda deadline (milliseconds since the Unix
/// epoch, as the Runtime API gives it) minus the safety margin; `None` without a deadline (0).
pub fn stop_at(deadline_ms: u64, now: std::time::SystemTime) -> Option<tokio::time::Instant> {
    use std::time::{Duration, UNIX_EPOCH};
    if deadline_ms == 0 {
        return None;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(now).unwrap_or_default();
    let margin = (left / 5).clamp(Duration::from_secs(1), SAFETY_MARGIN_MAX);
    Some(tokio::time::Instant::now() + left.saturating_sub(margin))
}

/// Whether `event` is an EventBridge event: `None` if not; `Some(Ok(()))` for the scheduled
/// event (`"source": "aws.events"`, `"detail-type": "Scheduled Event"`); `Some(Err(reason))` for
/// any other EventBridge event.
pub fn scheduled_event(event: &serde_json::Value) -> Option<Result<(), String>> {
    let object = event.as_object()?;
    if !object.contains_key("detail-type") {
        return None;
    }
    let text = |k: &str| object.get(k).and_then(serde_json::Value::as_str);
    Some(match (text("source"), text("detail-type")) {
        (Some("aws.events"), Some("Scheduled Event")) => Ok(()),
        (Some(source), Some(kind)) => Err(format!(
            "an EventBridge event of source {:?} and detail-type {:?}",
            crate::flows::onboarding::sanitize(source, 64),
            crate::flows::onboarding::sanitize(kind, 64)
        )),
        _ => Err("an EventBridge event without source or detail-type".into()),
    })
}
