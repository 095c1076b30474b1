//! The health checkers of a real server (TCP_CHECK, HTTP_GET, SSL_GET,
//! MISC_CHECK, DNS_CHECK) and HTTP's url blocks.

use super::*;

/// A checker before the inherited values are known.
pub(super) struct RawChecker {
    pub(super) kind: CheckerKind,
    pub(super) common: CheckerCommon,
    pub(super) timing: Timing,
}

impl Conv<'_> {
    pub(super) fn checker(&mut self, n: &Node) -> Option<RawChecker> {
        let mut b = CheckerDraft {
            common: CheckerCommon {
                connect_ip: None,
                connect_port: None,
                bindto: None,
                bind_port: None,
                bind_if: None,
                connect_timeout: Duration::ZERO,
                retry: 0,
                delay_before_retry: Duration::ZERO,
                warmup: Duration::ZERO,
                delay_loop: Duration::ZERO,
                alpha: false,
                fwmark: None,
            },
            timing: Timing::default(),
            http: HttpCheck {
                tls: n.key == "SSL_GET",
                urls: Vec::new(),
                virtualhost: None,
                http_protocol: None,
                enable_sni: false,
            },
            misc: MiscCheck {
                path: Script {
                    argv: Vec::new(),
                    user: None,
                },
                timeout: None,
                dynamic: false,
            },
            misc_path: None,
            misc_user: None,
            dns: DnsCheck {
                qtype: "SOA".into(),
                name: ".".into(),
            },
        };
        let table = match n.key.as_str() {
            "TCP_CHECK" => TCP_CHECK,
            "HTTP_GET" | "SSL_GET" => HTTP_GET,
            "MISC_CHECK" => MISC_CHECK,
            _ => DNS_CHECK,
        };
        let misc = n.key == "MISC_CHECK";
        let Some(block) = &n.block else {
            if misc {
                self.d().error(&n.loc, "MISC_CHECK: no misc_path given");
                return None;
            }
            return Some(b.finish(&n.key));
        };
        self.read(block, table, &mut b);
        if misc {
            match b.misc_path.take() {
                Some(mut p) => {
                    p.user = b.misc_user.take();
                    b.misc.path = p;
                }
                None => {
                    self.d().error(&n.loc, "MISC_CHECK: no misc_path given");
                    return None;
                }
            }
        }
        if matches!(n.key.as_str(), "HTTP_GET" | "SSL_GET") && b.http.urls.is_empty() {
            self.d().error(&n.loc, format!("{}: no url given", n.key));
            return None;
        }
        Some(b.finish(&n.key))
    }

    fn url(&mut self, n: &Node) -> Option<HttpUrl> {
        let mut b = UrlDraft {
            u: HttpUrl {
                path: String::new(),
                digest: None,
                status_code: Vec::new(),
                virtualhost: None,
            },
            have_path: false,
        };
        let block = self.block(n);
        self.read(block, URL, &mut b);
        let UrlDraft { mut u, have_path } = b;
        if !have_path {
            self.d().error(&n.loc, "url: no path given");
            return None;
        }
        if u.status_code.is_empty() {
            u.status_code.push(StatusRange { min: 200, max: 299 });
        }
        Some(u)
    }
}

/// A checker as it is read; the settings of every kind are at hand, the
/// checker's keyword table says which of them a block can set.
struct CheckerDraft {
    common: CheckerCommon,
    timing: Timing,
    http: HttpCheck,
    misc: MiscCheck,
    misc_path: Option<Script>,
    misc_user: Option<ScriptUser>,
    dns: DnsCheck,
}

impl CheckerDraft {
    /// The checker a block of keyword `key` describes.
    fn finish(self, key: &str) -> RawChecker {
        let kind = match key {
            "TCP_CHECK" => CheckerKind::Tcp,
            "HTTP_GET" | "SSL_GET" => CheckerKind::Http(self.http),
            "MISC_CHECK" => CheckerKind::Misc(self.misc),
            _ => CheckerKind::Dns(self.dns),
        };
        RawChecker {
            kind,
            common: self.common,
            timing: self.timing,
        }
    }
}

/// What every checker knows.
const CHECKER: &Keywords<CheckerDraft> = &[
    ("", Read::Timing(|b| &mut b.timing)),
    (
        "connect_ip",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                b.common.connect_ip = c.v.ip(a, &s.key);
            }
        }),
    ),
    (
        "connect_port",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, 65535) {
                b.common.connect_port = Some(v as u16);
            }
        }),
    ),
    (
        "bindto",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "address") {
                b.common.bindto = c.v.ip(a, &s.key);
            }
        }),
    ),
    (
        "bind_port",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, 65535) {
                b.common.bind_port = Some(v as u16);
            }
        }),
    ),
    (
        "bind_if",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "interface") {
                b.common.bind_if = Some(a.text.clone());
            }
        }),
    ),
    (
        "fwmark",
        With(|c, s, b| {
            if let Some(v) = c.v.one_uint(s, 1, u32::MAX as u64) {
                b.common.fwmark = Some(v as u32);
            }
        }),
    ),
    ("log_all_failures", NoEffect),
];

const TCP_CHECK: &Keywords<CheckerDraft> = &[
    (
        "nb_get_retry",
        With(|c, s, b| {
            // keepalived 2.2.7 no longer knows it here; older configs use it.
            c.d().warn(
                &s.loc,
                "nb_get_retry is deprecated (keepalived 2.2 ignores it in TCP_CHECK) - taken as retry",
            );
            c.retry(s, &mut b.timing);
        }),
    ),
    ("", Table(CHECKER)),
];

/// HTTP_GET and SSL_GET.
const HTTP_GET: &Keywords<CheckerDraft> = &[
    ("", Table(CHECKER)),
    (
        "url",
        With(|c, s, b| {
            if let Some(u) = c.url(s) {
                b.http.urls.push(u);
            }
        }),
    ),
    (
        "virtualhost",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "host name") {
                b.http.virtualhost = Some(a.text.clone());
            }
        }),
    ),
    (
        "http_protocol",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "protocol") {
                match a.text.as_str() {
                    "1.0" | "1.1" | "1.0C" | "1.0c" => b.http.http_protocol = Some(a.text.clone()),
                    o => c.d().error(
                        &a.loc,
                        format!("http_protocol: unknown version '{o}' (1.0, 1.0C, 1.1)"),
                    ),
                }
            }
        }),
    ),
    (
        "enable_sni",
        With(|c, s, b| b.http.enable_sni = c.v.flag(s)),
    ),
    ("fast_recovery", NoEffect),
];

const MISC_CHECK: &Keywords<CheckerDraft> = &[
    ("", Table(CHECKER)),
    (
        "misc_path",
        With(|c, s, b| b.misc_path = c.v.script(s, &s.args)),
    ),
    (
        "misc_timeout",
        With(|c, s, b| b.misc.timeout = c.v.one_duration(s)),
    ),
    ("misc_dynamic", With(|c, s, b| b.misc.dynamic = c.v.flag(s))),
    ("user", With(|c, s, b| b.misc_user = c.v.script_user(s))),
];

const DNS_CHECK: &Keywords<CheckerDraft> = &[
    ("", Table(CHECKER)),
    (
        "type",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "query type") {
                let t = a.text.to_ascii_uppercase();
                if ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"].contains(&t.as_str()) {
                    b.dns.qtype = t;
                } else {
                    c.d()
                        .error(&a.loc, format!("type: unknown DNS query type '{}'", a.text));
                }
            }
        }),
    ),
    (
        "name",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "query name") {
                b.dns.name = a.text.clone();
            }
        }),
    ),
];

/// An HTTP checker's url block as it is read.
struct UrlDraft {
    u: HttpUrl,
    have_path: bool,
}

const URL: &Keywords<UrlDraft> = &[
    (
        "path",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "path") {
                b.u.path = a.text.clone();
                b.have_path = true;
            }
        }),
    ),
    (
        "digest",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "digest") {
                if a.text.len() == 32 && a.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    b.u.digest = Some(a.text.to_ascii_lowercase());
                } else {
                    c.d().error(
                        &a.loc,
                        format!(
                            "digest: '{}' is not an MD5 hex digest (32 hex digits)",
                            a.text
                        ),
                    );
                }
            }
        }),
    ),
    ("status_code", With(|c, s, b| c.status_code(s, b))),
    (
        "virtualhost",
        With(|c, s, b| {
            if let Some(a) = c.v.one(s, "host name") {
                b.u.virtualhost = Some(a.text.clone());
            }
        }),
    ),
    ("regex", Unsupported),
    ("regex_no_match", Unsupported),
    ("regex_options", Unsupported),
    ("regex_min_offset", Unsupported),
    ("regex_max_offset", Unsupported),
    ("regex_stack", Unsupported),
];

impl Conv<'_> {
    fn status_code(&mut self, s: &Node, b: &mut UrlDraft) {
        if s.args.is_empty() {
            self.d().error(&s.loc, "status_code: missing value");
        }
        for a in &s.args {
            let (lo, hi) = match a.text.split_once('-') {
                Some((l, h)) => (l, h),
                None => (a.text.as_str(), a.text.as_str()),
            };
            match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(l), Ok(h)) if (100..=599).contains(&l) && (l..=599).contains(&h) => {
                    b.u.status_code.push(StatusRange { min: l, max: h })
                }
                _ => self.d().error(
                    &a.loc,
                    format!(
                        "status_code: '{}' is not a status code or range in 100-599",
                        a.text
                    ),
                ),
            }
        }
    }
}
