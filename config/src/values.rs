//! Parsing of single values (numbers, timers, addresses, booleans, scripts)
//! with located errors.

use crate::ast::{Arg, Node};
use crate::diag::{Diagnostics, Location};
use crate::model::{Script, ScriptUser};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// keepalived's boolean words.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" => Some(true),
        "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// Decimal seconds with up to 6 fractional digits (keepalived's timers).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 6 {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    if secs > u32::MAX as u64 {
        return None;
    }
    let mut micros: u32 = 0;
    for (i, b) in frac.bytes().enumerate() {
        micros += (b - b'0') as u32 * 10u32.pow(5 - i as u32);
    }
    Some(Duration::new(secs, micros * 1000))
}

/// An IPv4/IPv6 address (no host names: ferrovs check must not need DNS).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// Helpers bound to the diagnostics of one conversion.
pub struct Vals<'d> {
    pub d: &'d mut Diagnostics,
}

impl Vals<'_> {
    /// The n-th argument, or an error "KEY: missing WHAT".
    pub fn arg<'n>(&mut self, n: &'n Node, i: usize, what: &str) -> Option<&'n Arg> {
        let a = n.args.get(i);
        if a.is_none() {
            let loc = n.args.last().map(|a| &a.loc).unwrap_or(&n.loc);
            self.d.error(loc, format!("{}: missing {}", n.key, what));
        }
        a
    }

    /// Exactly one argument expected; extra ones are warned about.
    pub fn one<'n>(&mut self, n: &'n Node, what: &str) -> Option<&'n Arg> {
        if n.args.len() > 1 {
            self.d.warn(
                &n.args[1].loc,
                format!("{}: extra argument '{}' - ignoring", n.key, n.args[1].text),
            );
        }
        self.arg(n, 0, what)
    }

    pub fn uint(&mut self, a: &Arg, key: &str, min: u64, max: u64) -> Option<u64> {
        match a.text.parse::<u64>() {
            Ok(v) if v >= min && v <= max => Some(v),
            _ => {
                self.d.error(
                    &a.loc,
                    format!("{key}: '{}' is not a number in {min}-{max}", a.text),
                );
                None
            }
        }
    }

    pub fn int(&mut self, a: &Arg, key: &str, min: i64, max: i64) -> Option<i64> {
        match a.text.parse::<i64>() {
            Ok(v) if v >= min && v <= max => Some(v),
            _ => {
                self.d.error(
                    &a.loc,
                    format!("{key}: '{}' is not a number in {min}-{max}", a.text),
                );
                None
            }
        }
    }

    pub fn one_uint(&mut self, n: &Node, min: u64, max: u64) -> Option<u64> {
        let a = self.one(n, "value")?;
        self.uint(a, &n.key, min, max)
    }

    pub fn duration(&mut self, a: &Arg, key: &str) -> Option<Duration> {
        let d = parse_duration(&a.text);
        if d.is_none() {
            self.d.error(
                &a.loc,
                format!("{key}: '{}' is not a duration in seconds", a.text),
            );
        }
        d
    }

    pub fn one_duration(&mut self, n: &Node) -> Option<Duration> {
        let a = self.one(n, "value")?;
        self.duration(a, &n.key)
    }

    pub fn ip(&mut self, a: &Arg, key: &str) -> Option<IpAddr> {
        let ip = parse_ip(&a.text);
        if ip.is_none() {
            self.d
                .error(&a.loc, format!("{key}: invalid IP address '{}'", a.text));
        }
        ip
    }

    pub fn ipv4(&mut self, a: &Arg, key: &str) -> Option<Ipv4Addr> {
        let ip = a.text.parse::<Ipv4Addr>().ok();
        if ip.is_none() {
            self.d
                .error(&a.loc, format!("{key}: invalid IPv4 address '{}'", a.text));
        }
        ip
    }

    pub fn port(&mut self, a: &Arg, key: &str) -> Option<u16> {
        self.uint(a, key, 0, 65535).map(|v| v as u16)
    }

    /// A flag keyword: present = true, or an explicit on/off argument.
    pub fn flag(&mut self, n: &Node) -> bool {
        match n.args.first() {
            None => true,
            Some(a) => match parse_bool(&a.text) {
                Some(b) => b,
                None => {
                    self.d.error(
                        &a.loc,
                        format!(
                            "{}: '{}' is not a boolean (on/off/yes/no/true/false)",
                            n.key, a.text
                        ),
                    );
                    true
                }
            },
        }
    }

    /// The rest of the line as a command: one quoted argument is split like a
    /// shell would split it, several words are taken as they are.
    pub fn script(&mut self, n: &Node, args: &[Arg]) -> Option<Script> {
        if args.is_empty() {
            self.d.error(&n.loc, format!("{}: missing script", n.key));
            return None;
        }
        let argv = if args.len() == 1 && args[0].quoted {
            match split_command(&args[0].text) {
                Some(v) => v,
                None => {
                    self.d.error(
                        &args[0].loc,
                        format!("{}: unbalanced quotes in command", n.key),
                    );
                    return None;
                }
            }
        } else {
            args.iter().map(|a| a.text.clone()).collect()
        };
        if argv.is_empty() {
            self.d
                .error(&args[0].loc, format!("{}: empty command", n.key));
            return None;
        }
        Some(Script { argv, user: None })
    }

    pub fn script_user(&mut self, n: &Node) -> Option<ScriptUser> {
        let user = self.arg(n, 0, "user name")?.text.clone();
        let group = n.args.get(1).map(|a| a.text.clone());
        Some(ScriptUser { user, group })
    }
}

/// Splits a command line on white space, honouring '...' and "..." quoting
/// and backslash escapes. None if a quote is unbalanced.
pub fn split_command(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => cur.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => cur.push(chars.next()?),
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

/// Location helper for nodes without arguments.
pub fn loc_of(n: &Node, i: usize) -> &Location {
    n.args.get(i).map(|a| &a.loc).unwrap_or(&n.loc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1."), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("1.0000001"), None);
    }

    #[test]
    fn commands() {
        assert_eq!(
            split_command("/bin/x 'a b' \"c\\\"d\" e\\ f").unwrap(),
            ["/bin/x", "a b", "c\"d", "e f"]
        );
        assert_eq!(split_command("'x"), None);
    }
}
