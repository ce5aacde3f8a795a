//! A map's lag and throughput over time, for the dashboard's chart and
//! `/api/v1/maps/{map}/history`: a sample every `--history-every-seconds`
//! (10: the last `KEPT` are an hour), in memory (a restart starts a new history).

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Samples kept per map.
pub const KEPT: usize = 360;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since 1970.
    pub at: u64,
    /// Captured changes waiting, per app (None: an app could not be asked).
    pub backlog: Option<[u64; 2]>,
    /// Changes applied per second since the sample before.
    pub per_second: f64,
}

#[derive(Default)]
pub struct History {
    maps: Mutex<HashMap<String, Track>>,
}

/// A map's samples, and the counter and instant (ms) the last rate was taken from.
#[derive(Default)]
struct Track {
    samples: VecDeque<Sample>,
    counted: u64,
    counted_at_ms: u128,
}

impl History {
    /// Records a map's backlog and its applied-changes counter now.
    pub fn record(&self, map: &str, backlog: Option<[u64; 2]>, applied_total: u64) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        self.record_at(map, backlog, applied_total, now_ms);
    }

    fn record_at(&self, map: &str, backlog: Option<[u64; 2]>, applied_total: u64, now_ms: u128) {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let track = maps.entry(map.to_string()).or_default();
        let first = track.samples.is_empty();
        let elapsed_ms = now_ms.saturating_sub(track.counted_at_ms);
        // Two samples in one millisecond (a late tick) keep the count for the
        // next one: the changes between them are never dropped from the rate.
        let per_second = if first || elapsed_ms == 0 {
            track.samples.back().map_or(0.0, |s| s.per_second)
        } else {
            applied_total.saturating_sub(track.counted) as f64 * 1000.0 / elapsed_ms as f64
        };
        if first || elapsed_ms > 0 {
            track.counted = applied_total;
            track.counted_at_ms = now_ms;
        }
        track.samples.push_back(Sample { at: (now_ms / 1000) as u64, backlog, per_second });
        if track.samples.len() > KEPT {
            track.samples.pop_front();
        }
    }

    pub fn of(&self, map: &str) -> Vec<Sample> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner()).get(map).map(|t| t.samples.iter().copied().collect()).unwrap_or_default()
    }

    pub fn json(&self, map: &str) -> Value {
        json!(self
            .of(map)
            .iter()
            .map(|s| json!({ "at": s.at, "backlog": s.backlog, "applied_per_second": s.per_second }))
            .collect::<Vec<_>>())
    }
}

/// The samples as an SVG chart: changes waiting (solid) and applied per second
/// (dashed), each on its own scale, labelled, so that it reads without colour.
pub fn svg(samples: &[Sample]) -> String {
    if samples.len() < 2 {
        return r#"<p class="empty">The chart fills in as the service runs.</p>"#.into();
    }
    let (w, h, pad) = (600.0, 160.0, 30.0);
    let (t0, t1) = (samples[0].at as f64, samples[samples.len() - 1].at as f64);
    let x = |at: u64| pad + (at as f64 - t0) / (t1 - t0).max(1.0) * (w - 2.0 * pad);
    let waiting: Vec<f64> = samples.iter().map(|s| s.backlog.map_or(0, |b| b[0] + b[1]) as f64).collect();
    let rate: Vec<f64> = samples.iter().map(|s| s.per_second).collect();
    let line = |values: &[f64]| {
        let top = values.iter().copied().fold(1.0, f64::max);
        let points: Vec<String> =
            samples.iter().zip(values).map(|(s, v)| format!("{:.1},{:.1}", x(s.at), h - pad - v / top * (h - 2.0 * pad))).collect();
        (points.join(" "), top)
    };
    let (waiting_points, waiting_top) = line(&waiting);
    let (rate_points, rate_top) = line(&rate);
    let minutes = (t1 - t0) / 60.0;
    format!(
        r#"<figure class="chart"><svg viewBox="0 0 {w} {h}" role="img" aria-label="changes waiting and applied per second over the last {minutes:.0} minutes">
<line x1="{pad}" y1="{base}" x2="{right}" y2="{base}" class="axis"/>
<polyline points="{waiting_points}" class="waiting"/>
<polyline points="{rate_points}" class="rate"/>
<text x="{pad}" y="14">changes waiting (solid, top {waiting_top:.0})</text>
<text x="{right}" y="14" text-anchor="end">applied per second (dashed, top {rate_top:.0})</text>
<text x="{pad}" y="{h}" dy="-6">{minutes:.0} min ago</text><text x="{right}" y="{h}" dy="-6" text-anchor="end">now</text>
</svg></figure>"#,
        base = h - pad,
        right = w - pad,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_is_the_applied_count_over_time_and_the_history_is_bounded() {
        let history = History::default();
        history.record("m", Some([1, 2]), 0);
        assert_eq!(history.of("m")[0].per_second, 0.0);
        for i in 0..(KEPT + 10) {
            history.record("m", None, i as u64 * 100);
        }
        assert_eq!(history.of("m").len(), KEPT);
        assert!(svg(&history.of("m")).contains("<polyline"));
        assert!(svg(&history.of("other")).contains("fills in"));
    }

    #[test]
    fn changes_between_two_samples_in_one_instant_count_in_the_next_rate() {
        let history = History::default();
        history.record_at("m", None, 0, 10_000);
        history.record_at("m", None, 0, 11_000);
        // A late tick: two samples in the same millisecond, 5 changes applied between them.
        history.record_at("m", None, 5, 11_000);
        history.record_at("m", None, 5, 11_500);
        let rates: Vec<f64> = history.of("m").iter().map(|s| s.per_second).collect();
        assert_eq!(rates, [0.0, 0.0, 0.0, 10.0]);
    }
}
