//! A service's recent calls as an inline SVG sparkline: latency as a line,
//! each failed call as a red mark. Drawn on the server, so the page needs
//! no script and no image request.
//!
//! This module only draws: it must never decide whether a service is
//! healthy (its breaker and the score do).

use caio_gateway::RecentCall;

/// Width and height of the drawing, in SVG user units.
pub const WIDTH: f64 = 120.0;
/// See [`WIDTH`].
pub const HEIGHT: f64 = 24.0;

/// A sparkline ready for the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparkline {
    /// `x,y` pairs of the latency line (successful calls).
    pub points: String,
    /// `x` positions of failed calls.
    pub failures: Vec<String>,
    /// What it shows, for people and screen readers.
    pub label: String,
}

/// Draws `calls` (oldest first), or `None` when there are none.
pub fn draw(calls: &[RecentCall]) -> Option<Sparkline> {
    if calls.is_empty() {
        return None;
    }
    let slowest = calls.iter().filter(|c| c.success).map(|c| c.latency_ms).fold(0.0, f64::max).max(1.0);
    let step = if calls.len() > 1 { WIDTH / (calls.len() - 1) as f64 } else { 0.0 };
    let x = |i: usize| format!("{:.1}", i as f64 * step);
    let points = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.success)
        .map(|(i, c)| format!("{},{:.1}", x(i), HEIGHT - 1.0 - (c.latency_ms / slowest) * (HEIGHT - 2.0)))
        .collect::<Vec<_>>()
        .join(" ");
    let failures: Vec<String> = calls.iter().enumerate().filter(|(_, c)| !c.success).map(|(i, _)| x(i)).collect();
    let label = format!(
        "last {} calls: {} failed, slowest success {:.0} ms",
        calls.len(),
        failures.len(),
        calls.iter().filter(|c| c.success).map(|c| c.latency_ms).fold(0.0, f64::max)
    );
    Some(Sparkline { points, failures, label })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(success: bool, latency_ms: f64) -> RecentCall {
        RecentCall { success, latency_ms }
    }

    #[test]
    fn the_slowest_success_touches_the_top_and_failures_are_marked_where_they_happened() {
        let line = draw(&[call(true, 10.0), call(false, 3.0), call(true, 40.0)]).unwrap();
        assert_eq!(line.points, "0.0,17.5 120.0,1.0");
        assert_eq!(line.failures, vec!["60.0".to_string()]);
        assert_eq!(line.label, "last 3 calls: 1 failed, slowest success 40 ms");
    }

    #[test]
    fn no_calls_draw_nothing_and_one_call_sits_at_the_left() {
        assert_eq!(draw(&[]), None);
        assert_eq!(draw(&[call(false, 1.0)]).unwrap().failures, vec!["0.0".to_string()]);
    }
}
