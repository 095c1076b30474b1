//! ExaBGP's process API (ExaBGP 4, as packaged in Debian): ferrovs writes
//! ExaBGP's configuration, in which a `process` relays the lines ferrovs
//! sends to ExaBGP's API and ExaBGP's acknowledgements back. Announcements
//! and withdrawals are text commands (`announce route 198.18.0.100/32
//! next-hop self`); ExaBGP keeps what was announced through the API and
//! gives it again to a peer whose session comes back, so a session flap
//! needs nothing from us, while a restart of ExaBGP does
//! ([`super::announcer::Input::SpeakerUp`]).

use super::announcer::Output;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Route attributes every director gives its VIPs alike, so that a router
/// sees equal paths and balances over them (ECMP needs equal AS paths,
/// MED and next-hop kind).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `next-hop self` when None.
    pub next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    /// `ASN:value` pairs.
    pub communities: Vec<(u16, u16)>,
}

/// The API command for one change of the announcer, without its newline.
pub fn command(o: &Output, attrs: &Attributes) -> String {
    let (verb, vip) = match o {
        Output::Announce(a) => ("announce", a),
        Output::Withdraw(a) => ("withdraw", a),
    };
    let len = if vip.is_ipv6() { 128 } else { 32 };
    let mut s = format!("{verb} route {vip}/{len} next-hop ");
    match attrs.next_hop {
        Some(nh) => write!(s, "{nh}").unwrap(),
        None => s.push_str("self"),
    }
    if let Some(m) = attrs.med {
        write!(s, " med {m}").unwrap();
    }
    if !attrs.communities.is_empty() {
        s.push_str(" community [");
        for (i, (asn, v)) in attrs.communities.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            write!(s, "{asn}:{v}").unwrap();
        }
        s.push(']');
    }
    s
}

/// What ExaBGP answered to one command (with `exabgp.api.ack`, its default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Done,
    Error,
    /// A peer's session went up or down (`neighbor ADDR up|down`, sent with
    /// `neighbor-changes`).
    Neighbor {
        addr: IpAddr,
        up: bool,
    },
    /// Anything else ExaBGP says (logged).
    Other(String),
}

pub fn parse_reply(line: &str) -> Reply {
    let line = line.trim();
    match line {
        "done" => return Reply::Done,
        "error" => return Reply::Error,
        _ => {}
    }
    let w: Vec<&str> = line.split_whitespace().collect();
    if let ["neighbor", addr, state, ..] = w[..] {
        if let (Ok(addr), "up" | "down" | "connected") = (addr.parse(), state) {
            return Reply::Neighbor {
                addr,
                up: state == "up",
            };
        }
    }
    Reply::Other(line.to_string())
}

/// One BGP peer (a router).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub peer_as: u32,
    pub local_address: IpAddr,
    /// Seconds; 0 turns keepalives off (RFC 4271 §4.2).
    pub hold_time: u16,
    pub md5_password: Option<String>,
}

/// What ExaBGP's configuration says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Speaker {
    pub router_id: std::net::Ipv4Addr,
    pub local_as: u32,
    pub neighbors: Vec<Neighbor>,
    /// The command line of the relay process (ferrovs's own `bgp-relay`),
    /// which ExaBGP starts and whose output it reads as API commands.
    pub relay: Vec<String>,
}

impl Speaker {
    /// ExaBGP's configuration file.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# Written by ferrovs; changes are lost at its next start.\n");
        s.push_str("process ferrovs {\n    run");
        for a in &self.relay {
            write!(s, " {}", quote(a)).unwrap();
        }
        s.push_str(";\n    encoder text;\n}\n");
        for n in &self.neighbors {
            write!(s, "\nneighbor {} {{\n", n.address).unwrap();
            writeln!(s, "    router-id {};", self.router_id).unwrap();
            writeln!(s, "    local-address {};", n.local_address).unwrap();
            writeln!(s, "    local-as {};", self.local_as).unwrap();
            writeln!(s, "    peer-as {};", n.peer_as).unwrap();
            writeln!(s, "    hold-time {};", n.hold_time).unwrap();
            if let Some(p) = &n.md5_password {
                writeln!(s, "    md5-password {};", quote(p)).unwrap();
            }
            s.push_str("    family {\n        ipv4 unicast;\n        ipv6 unicast;\n    }\n");
            s.push_str(
                "    api {\n        processes [ ferrovs ];\n        neighbor-changes;\n    }\n}\n",
            );
        }
        s
    }
}

/// Quotes a word for ExaBGP's configuration when it has spaces or quotes.
fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != ';' && c != '{' && c != '}')
    {
        a.to_string()
    } else {
        format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let v4: IpAddr = "198.18.0.100".parse().unwrap();
        let v6: IpAddr = "2001:db8::64".parse().unwrap();
        let plain = Attributes::default();
        assert_eq!(
            command(&Output::Announce(v4), &plain),
            "announce route 198.18.0.100/32 next-hop self"
        );
        assert_eq!(
            command(&Output::Withdraw(v6), &plain),
            "withdraw route 2001:db8::64/128 next-hop self"
        );
        let a = Attributes {
            next_hop: Some("198.18.0.1".parse().unwrap()),
            med: Some(10),
            communities: vec![(65000, 1), (65000, 2)],
        };
        assert_eq!(
            command(&Output::Announce(v4), &a),
            "announce route 198.18.0.100/32 next-hop 198.18.0.1 med 10 community [65000:1 65000:2]"
        );
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply("done\n"), Reply::Done);
        assert_eq!(parse_reply("error"), Reply::Error);
        assert_eq!(
            parse_reply("neighbor 198.18.0.254 up"),
            Reply::Neighbor {
                addr: "198.18.0.254".parse().unwrap(),
                up: true
            }
        );
        assert_eq!(
            parse_reply("neighbor 198.18.0.254 down - peer reset"),
            Reply::Neighbor {
                addr: "198.18.0.254".parse().unwrap(),
                up: false
            }
        );
        assert_eq!(parse_reply("shutdown"), Reply::Other("shutdown".into()));
    }

    #[test]
    fn configuration() {
        let s = Speaker {
            router_id: "198.18.0.1".parse().unwrap(),
            local_as: 65001,
            neighbors: vec![Neighbor {
                address: "198.18.0.254".parse().unwrap(),
                peer_as: 65000,
                local_address: "198.18.0.1".parse().unwrap(),
                hold_time: 9,
                md5_password: Some("s3cret word".into()),
            }],
            relay: vec![
                "/usr/sbin/ferrovs".into(),
                "bgp-relay".into(),
                "/run/ferrovs/bgp.sock".into(),
            ],
        };
        let want = "# Written by ferrovs; changes are lost at its next start.
process ferrovs {
    run /usr/sbin/ferrovs bgp-relay /run/ferrovs/bgp.sock;
    encoder text;
}

neighbor 198.18.0.254 {
    router-id 198.18.0.1;
    local-address 198.18.0.1;
    local-as 65001;
    peer-as 65000;
    hold-time 9;
    md5-password \"s3cret word\";
    family {
        ipv4 unicast;
        ipv6 unicast;
    }
    api {
        processes [ ferrovs ];
        neighbor-changes;
    }
}
";
        assert_eq!(s.render(), want);
    }

    /// ExaBGP itself accepts the configuration (`exabgp --validate`).
    /// scripts/test.sh installs exabgp; without it the check is skipped.
    #[test]
    fn exabgp_validates_the_configuration() {
        if std::process::Command::new("exabgp")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("exabgp not installed: configuration not validated");
            return;
        }
        let s = Speaker {
            router_id: "198.18.0.1".parse().unwrap(),
            local_as: 4_200_000_001,
            neighbors: vec![
                Neighbor {
                    address: "198.18.0.254".parse().unwrap(),
                    peer_as: 65000,
                    local_address: "198.18.0.1".parse().unwrap(),
                    hold_time: 3,
                    md5_password: None,
                },
                Neighbor {
                    address: "2001:db8::fe".parse().unwrap(),
                    peer_as: 65000,
                    local_address: "2001:db8::1".parse().unwrap(),
                    hold_time: 0,
                    md5_password: Some("a \"quoted\" word".into()),
                },
            ],
            relay: vec!["/bin/cat".into()],
        };
        let dir = std::env::temp_dir().join(format!("ferrovs-exabgp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exabgp.conf");
        std::fs::write(&path, s.render()).unwrap();
        let out = std::process::Command::new("exabgp")
            .arg("--validate")
            .arg(&path)
            .current_dir(&dir)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "exabgp refused:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
