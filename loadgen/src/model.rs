//! The reference model: a deliberately naive, independent statement of
//! logwarden's window semantics (see the README), used to write the alerts a
//! correct engine must raise.
//!
//! Per client, T is the newest event time; the window holds events in
//! [T - window, T]; an event older than T - window is late and ignored; an
//! event that makes the window hold >= threshold events alerts unless the
//! client alerted at T_a with T < T_a + cooldown.

use std::collections::HashMap;

/// One expected alert.
pub struct Expected {
    pub key: String,
    pub line: u64,
    pub count: usize,
    pub time: i64,
}

impl Expected {
    /// `{"key":…,"line":…,"count":…,"time_unix":…}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({"key": self.key, "line": self.line, "count": self.count, "time_unix": self.time})
            .to_string()
    }
}

#[derive(Default)]
struct Client {
    times: Vec<i64>,
    newest: Option<i64>,
    alerted: Option<i64>,
}

/// Every client's event times and the alerts so far.
pub struct Model {
    threshold: usize,
    window: i64,
    cooldown: i64,
    clients: HashMap<String, Client>,
    /// Alerts in line order.
    pub alerts: Vec<Expected>,
}

impl Model {
    pub fn new(threshold: u32, window: u32, cooldown: u32) -> Model {
        Model {
            threshold: threshold as usize,
            window: i64::from(window),
            cooldown: i64::from(cooldown),
            clients: HashMap::new(),
            alerts: Vec::new(),
        }
    }

    /// Applies the event of line `line` (client `key` at time `t`).
    pub fn record(&mut self, key: String, t: i64, line: u64) {
        let c = self.clients.entry(key.clone()).or_default();
        if c.newest.is_some_and(|n| t < n - self.window) {
            return;
        }
        let newest = c.newest.map_or(t, |n| n.max(t));
        c.newest = Some(newest);
        c.times.push(t);
        c.times.retain(|&x| x >= newest - self.window);
        let count = c.times.len();
        let cooling = c.alerted.is_some_and(|a| newest < a + self.cooldown);
        if count >= self.threshold && !cooling {
            c.alerted = Some(newest);
            self.alerts.push(Expected { key, line, count, time: t });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_late_and_cooldown() {
        let mut m = Model::new(3, 10, 10);
        for (i, t) in [100, 105, 110, 111, 90, 121, 121].iter().enumerate() {
            m.record("a".into(), *t, i as u64 + 1);
        }
        let got: Vec<(u64, usize)> = m.alerts.iter().map(|a| (a.line, a.count)).collect();
        // line 3: 100,105,110; line 5 (t=90) is late; line 7: T=121 >= 110+10 with 111,121,121.
        assert_eq!(got, vec![(3, 3), (7, 3)]);
    }
}
