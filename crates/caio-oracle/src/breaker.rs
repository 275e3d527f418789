//! An explicit state model of the circuit breaker, from the specification:
//!
//! | state                 | event              | condition                                   | next state            | answer  |
//! |-----------------------|--------------------|---------------------------------------------|-----------------------|---------|
//! | closed                | acquire            |                                             | closed                | admit   |
//! | closed                | record             | window full enough and a rate at threshold  | open until now+open   |         |
//! | closed                | record             | otherwise                                   | closed (outcome kept) |         |
//! | open until t          | any, now >= t      |                                             | half-open (0 probes), then the event | |
//! | open until t          | acquire, now < t   |                                             | open                  | refuse  |
//! | open until t          | record, now < t    | a late result                               | open                  |         |
//! | half-open (a, s)      | acquire            | a < probes                                  | half-open (a+1, s)    | admit   |
//! | half-open (a, s)      | acquire            | a = probes                                  | half-open (a, s)      | refuse  |
//! | half-open (a, s)      | record             | failed or slow                              | open until now+open   |         |
//! | half-open (a, s)      | record             | succeeded, s+1 = probes                     | closed, empty window  |         |
//! | half-open (a, s)      | record             | succeeded, s+1 < probes                     | half-open (a, s+1)    |         |
//!
//! The closed window holds the last `calls` outcomes (count window) or those
//! recorded at most `millis` ago (time window); the rates count failures and
//! slow calls (longer than `slow_call_ms`) over the outcomes in the window,
//! and matter once it holds at least `minimum_calls` (and at least one).
//! Every transition to open or closed empties the window. Written apart from
//! the calculus's breaker and run in lockstep with it.

use caio_calculus::breaker::{BreakerConfig, Window};

/// The model's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    /// Calls pass.
    Closed,
    /// Refusing until the time.
    Open(u64),
    /// Probing: (admitted, succeeded).
    HalfOpen(usize, usize),
}

/// The breaker, as a table.
#[derive(Debug, Clone)]
pub struct Model {
    config: BreakerConfig,
    /// The current state.
    pub state: ModelState,
    /// (time, failed, slow) of the outcomes in the closed window.
    window: Vec<(u64, bool, bool)>,
}

impl Model {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Model {
        Model { config, state: ModelState::Closed, window: Vec::new() }
    }

    /// The state as seen at `now` (an expired open state is half-open).
    pub fn at(&self, now: u64) -> ModelState {
        match self.state {
            ModelState::Open(until) if now >= until => ModelState::HalfOpen(0, 0),
            state => state,
        }
    }

    fn open(&mut self, now: u64) {
        self.state = ModelState::Open(now.saturating_add(self.config.open_ms));
        self.window.clear();
    }

    /// Asks to make a call; `true` if admitted.
    pub fn acquire(&mut self, now: u64) -> bool {
        self.state = self.at(now);
        match self.state {
            ModelState::Closed => true,
            ModelState::Open(_) => false,
            ModelState::HalfOpen(admitted, succeeded) => {
                if admitted < self.config.half_open_probes {
                    self.state = ModelState::HalfOpen(admitted + 1, succeeded);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Records the outcome of an admitted call.
    pub fn record(&mut self, now: u64, success: bool, duration_ms: u64) {
        self.state = self.at(now);
        let slow = duration_ms > self.config.slow_call_ms;
        match self.state {
            ModelState::Open(_) => {}
            ModelState::HalfOpen(admitted, succeeded) => {
                if !success || slow {
                    self.open(now);
                } else if succeeded + 1 >= self.config.half_open_probes {
                    self.state = ModelState::Closed;
                    self.window.clear();
                } else {
                    self.state = ModelState::HalfOpen(admitted, succeeded + 1);
                }
            }
            ModelState::Closed => {
                self.window.push((now, !success, slow));
                let kept: Vec<(u64, bool, bool)> = match self.config.window {
                    Window::Count { calls } => {
                        let keep = calls.max(1);
                        let skip = self.window.len().saturating_sub(keep);
                        self.window[skip..].to_vec()
                    }
                    Window::Time { millis } => {
                        self.window.iter().copied().filter(|(at, _, _)| now.saturating_sub(*at) <= millis).collect()
                    }
                };
                self.window = kept;
                let calls = self.window.len();
                if calls >= self.config.minimum_calls.max(1) {
                    let failed = self.window.iter().filter(|o| o.1).count() as f64;
                    let slow_calls = self.window.iter().filter(|o| o.2).count() as f64;
                    if failed / calls as f64 >= self.config.failure_rate
                        || slow_calls / calls as f64 >= self.config.slow_call_rate
                    {
                        self.open(now);
                    }
                }
            }
        }
    }
}
