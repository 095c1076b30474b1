//! One checker's own state, without I/O: what a probe reported and how
//! keepalived's checkers count failures before they call a server down.
//!
//! keepalived's TCP, HTTP/SSL, DNS and MISC checkers share one scheme (the
//! epilog functions of check_tcp.c, check_http.c, check_dns.c and
//! check_misc.c): a success clears the retry counter; a failure while the
//! checker is up (or before it has run) is retried `retry` times, each after
//! `delay_before_retry`, and only the failure after the last retry marks
//! the checker down. A checker that is already down is not retried. At
//! start the counter is preset to `retry`, so one failure is enough for a
//! server that was never seen up.

use ferrovs_config::model::Checker;
use serde::Serialize;
use std::time::Duration;

/// What one probe found, in the words keepalived logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The check passed. For HTTP_GET / SSL_GET, what each url matched on
    /// (`"HTTP status code"` or `"MD5 digest"`) and its path, for
    /// keepalived's "... success to ... url(...)" line.
    Up { urls: Vec<(&'static str, String)> },
    /// The check failed; keepalived's phrase for why, e.g. `"failed"` /
    /// `"timeout"` (TCP_CHECK), `"HTTP status code error to"` (HTTP_GET),
    /// `"read timeout from socket"` (DNS_CHECK).
    Down(String),
    /// MISC_CHECK: the script exited with this status.
    Exit(i32),
    /// MISC_CHECK: the script was killed by this signal.
    Signal(i32),
    /// MISC_CHECK: the script overran misc_timeout and was killed.
    TimedOut,
}

impl Probe {
    pub fn up() -> Probe {
        Probe::Up { urls: Vec::new() }
    }
    pub fn down(reason: impl Into<String>) -> Probe {
        Probe::Down(reason.into())
    }
}

/// Where a result leaves the checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Success while already up: nothing to do.
    Steady,
    /// Success while down, or the first result: report the checker up.
    Up,
    /// A failure counted; try again after delay_before_retry. `attempt` is
    /// the retry about to be made (1..=retry).
    Retry { attempt: u32 },
    /// The last allowed failure: report the checker down.
    Down,
    /// A failure while already known down: nothing to do.
    StillDown,
}

/// The per-checker state keepalived keeps in `checker_t`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckerState {
    /// The checker's own verdict (`is_up`).
    pub is_up: bool,
    /// At least one result was handled (`has_run`).
    pub has_run: bool,
    /// Failures counted towards `retry` (`retry_it`).
    pub retry_it: u32,
}

impl CheckerState {
    /// A checker as configured at start: up unless alpha, and one failure
    /// enough to call it down (keepalived presets retry_it to retry).
    pub fn at_start(c: &Checker) -> CheckerState {
        CheckerState {
            is_up: !c.common.alpha,
            has_run: false,
            retry_it: c.common.retry,
        }
    }

    /// A checker that appears with a reload: keepalived leaves retry_it at 0
    /// then (only the start presets it), and decides alpha afterwards.
    pub fn at_reload() -> CheckerState {
        CheckerState {
            is_up: true,
            has_run: false,
            retry_it: 0,
        }
    }

    /// Counts one result. The caller reports `Up`/`Down` to the real
    /// server, then calls [`CheckerState::finish`].
    pub fn step(&mut self, ok: bool, retry: u32) -> Step {
        if ok {
            self.retry_it = 0;
            if !self.is_up || !self.has_run {
                Step::Up
            } else {
                Step::Steady
            }
        } else if self.is_up || !self.has_run {
            if self.retry_it < retry {
                self.retry_it += 1;
                Step::Retry {
                    attempt: self.retry_it,
                }
            } else {
                self.retry_it = 0;
                Step::Down
            }
        } else {
            Step::StillDown
        }
    }

    /// Marks the result handled (keepalived sets has_run after it updated
    /// the server, whose first-result logic reads the old value).
    pub fn finish(&mut self) {
        self.has_run = true;
    }
}

/// When the next check of a checker starts, after `step` said `s`
/// (check_tcp.c / check_http.c / check_dns.c / check_misc.c timers).
pub fn next_delay(c: &Checker, s: Step) -> Duration {
    let lp = c.common.delay_loop;
    let dbr = c.common.delay_before_retry;
    let http = matches!(c.kind, ferrovs_config::model::CheckerKind::Http(_));
    match s {
        Step::Retry { .. } => dbr,
        // HTTP_GET keeps polling a failed url no faster than the larger of
        // the two delays (check_http.c epilog with failed_url set).
        Step::Down | Step::StillDown if http => dbr.max(lp),
        _ => lp,
    }
}

/// check_misc.c's wording for a failed script: ", will do 1 retry",
/// " on retry 1/2", " after 2 retries" or " with retry disabled".
pub fn misc_retry_text(retry: u32, retry_it: u32) -> String {
    let plural = |n: u32| if n == 1 { "retry" } else { "retries" };
    if retry == 0 {
        " with retry disabled".into()
    } else if retry_it == 1 {
        format!(", will do {retry} {}", plural(retry))
    } else if retry_it > 1 {
        format!(" on retry {}/{retry}", retry_it - 1)
    } else {
        format!(" after {retry} {}", plural(retry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::model::{CheckerCommon, CheckerKind, HttpCheck};

    fn checker(retry: u32, alpha: bool) -> Checker {
        Checker {
            kind: CheckerKind::Tcp,
            common: CheckerCommon {
                connect_ip: None,
                connect_port: None,
                bindto: None,
                bind_port: None,
                bind_if: None,
                connect_timeout: Duration::from_secs(5),
                retry,
                delay_before_retry: Duration::from_secs(1),
                warmup: Duration::ZERO,
                delay_loop: Duration::from_secs(60),
                alpha,
                fwmark: None,
            },
        }
    }

    fn run(st: &mut CheckerState, ok: bool, retry: u32) -> Step {
        let s = st.step(ok, retry);
        match s {
            Step::Up => st.is_up = true,
            Step::Down => st.is_up = false,
            _ => {}
        }
        st.finish();
        s
    }

    #[test]
    fn one_failure_is_enough_at_start() {
        let c = checker(3, false);
        let mut st = CheckerState::at_start(&c);
        assert_eq!(run(&mut st, false, 3), Step::Down);
        assert!(!st.is_up);
    }

    #[test]
    fn first_success_of_a_non_alpha_checker_is_reported() {
        let c = checker(1, false);
        let mut st = CheckerState::at_start(&c);
        assert_eq!(run(&mut st, true, 1), Step::Up);
        assert_eq!(run(&mut st, true, 1), Step::Steady);
    }

    #[test]
    fn retries_are_counted_after_the_first_run() {
        let c = checker(2, false);
        let mut st = CheckerState::at_start(&c);
        run(&mut st, true, 2);
        assert_eq!(run(&mut st, false, 2), Step::Retry { attempt: 1 });
        assert_eq!(
            next_delay(&c, Step::Retry { attempt: 1 }),
            c.common.delay_before_retry
        );
        assert_eq!(run(&mut st, false, 2), Step::Retry { attempt: 2 });
        assert!(st.is_up);
        assert_eq!(run(&mut st, false, 2), Step::Down);
        assert!(!st.is_up);
        assert_eq!(st.retry_it, 0);
        // Known down: no retries, no further report.
        assert_eq!(run(&mut st, false, 2), Step::StillDown);
        assert_eq!(next_delay(&c, Step::StillDown), c.common.delay_loop);
        assert_eq!(run(&mut st, true, 2), Step::Up);
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let c = checker(1, false);
        let mut st = CheckerState::at_start(&c);
        run(&mut st, true, 1);
        assert_eq!(run(&mut st, false, 1), Step::Retry { attempt: 1 });
        assert_eq!(run(&mut st, true, 1), Step::Steady);
        assert_eq!(run(&mut st, false, 1), Step::Retry { attempt: 1 });
        assert_eq!(run(&mut st, false, 1), Step::Down);
    }

    #[test]
    fn alpha_starts_down_and_first_failure_confirms_it() {
        let c = checker(1, true);
        let mut st = CheckerState::at_start(&c);
        assert!(!st.is_up);
        // Not yet run: the failure is final at once (retry_it preset).
        assert_eq!(st.step(false, 1), Step::Down);
    }

    #[test]
    fn http_polls_a_failed_server_at_the_larger_delay() {
        let mut c = checker(1, false);
        c.kind = CheckerKind::Http(HttpCheck {
            tls: false,
            urls: Vec::new(),
            virtualhost: None,
            http_protocol: None,
            enable_sni: false,
        });
        c.common.delay_before_retry = Duration::from_secs(90);
        assert_eq!(next_delay(&c, Step::Down), Duration::from_secs(90));
        c.common.delay_before_retry = Duration::from_secs(3);
        assert_eq!(next_delay(&c, Step::StillDown), Duration::from_secs(60));
        assert_eq!(
            next_delay(&c, Step::Retry { attempt: 1 }),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn misc_retry_wording() {
        assert_eq!(misc_retry_text(0, 0), " with retry disabled");
        assert_eq!(misc_retry_text(1, 1), ", will do 1 retry");
        assert_eq!(misc_retry_text(3, 1), ", will do 3 retries");
        assert_eq!(misc_retry_text(3, 2), " on retry 1/3");
        assert_eq!(misc_retry_text(3, 0), " after 3 retries");
        assert_eq!(misc_retry_text(1, 0), " after 1 retry");
    }
}
