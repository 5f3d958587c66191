//! Model-age warnings: rewards decay with the age of the served model, so a miner that
//! runs for months is told, in its log, when the model passes 45, 60, 75 and 90 days,
//! and again every day while it stays past 45.

use std::time::{Duration, Instant};

/// The ages, in days, that start a warning band.
pub const BANDS: [f64; 4] = [45.0, 60.0, 75.0, 90.0];

/// How often a warning repeats while the model stays in a band.
pub const REPEAT: Duration = Duration::from_secs(24 * 60 * 60);

/// When the next age warning is due.
#[derive(Debug, Default)]
pub struct AgeWarnings {
    /// The band of the last warning, and when it was given.
    last: Option<(usize, Instant)>,
}

/// The band a model of `days` is in (index into [`BANDS`]), if any.
pub fn band(days: f64) -> Option<usize> {
    BANDS.iter().rposition(|&b| days >= b)
}

impl AgeWarnings {
    /// The warning due at `now` for a model `days` old (`None`: unknown age or under
    /// 45 days, or warned within [`REPEAT`] in the same band). A model that enters a
    /// higher band is warned about at once; a new, younger model resets the schedule.
    pub fn due(&mut self, days: Option<f64>, now: Instant) -> Option<String> {
        let Some((days, b)) = days.and_then(|d| Some((d, band(d)?))) else {
            self.last = None;
            return None;
        };
        let warn = match self.last {
            None => true,
            Some((last_band, at)) => b != last_band || now.duration_since(at) >= REPEAT,
        };
        if !warn {
            return None;
        }
        self.last = Some((b, now));
        Some(format!(
            "sv-miner: warning: the model is {days:.0} days old (past {:.0}); rewards decay with model age, retrain and publish",
            BANDS[b]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_come_at_each_band_and_daily_within_one() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut w = AgeWarnings::default();
        assert_eq!(w.due(None, t0), None);
        assert_eq!(w.due(Some(44.9), t0), None);
        let first = w.due(Some(45.0), t0).unwrap();
        assert!(first.contains("45 days old (past 45)"), "{first}");
        assert_eq!(w.due(Some(45.5), t0 + 23 * hour), None, "not twice a day");
        assert!(w.due(Some(46.0), t0 + 24 * hour).is_some(), "daily");
        let sixty = w.due(Some(60.0), t0 + 25 * hour).unwrap();
        assert!(sixty.contains("past 60"), "{sixty}");
        assert!(
            w.due(Some(91.0), t0 + 26 * hour)
                .unwrap()
                .contains("past 90")
        );
        // A new model resets the schedule.
        assert_eq!(w.due(Some(1.0), t0 + 27 * hour), None);
        assert!(
            w.due(Some(75.0), t0 + 28 * hour)
                .unwrap()
                .contains("past 75")
        );
    }
}
