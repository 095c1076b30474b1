//! Mixed traffic: what one lap of a worker's trace carries, in which order.
//!
//! The client side (port 0) of a lap is, by packet count:
//!
//! | share | what |
//! |---|---|
//! | 80 % | segments of established TCP flows (each flow equally often) |
//! | 10 % | new TCP connections: SYN, ACK, PSH-ACK, then FIN-ACK (three in four) or RST (one in four) |
//! | 5 % | UDP datagrams to VIP:53 on established UDP flows |
//! | 2 % | ICMP echo requests to the VIP (the director answers) |
//! | 3 % | junk the director must drop: 1 % bad IP header checksum, 1 % not ours (a TCP segment to an address the director does not have), 1 % truncated (a frame cut inside the IP header) |
//!
//! With NAT and FULLNAT the server side (port 1) carries, at the same rate:
//! 92 % replies on the established TCP flows, 5 % UDP replies, 3 % junk (as
//! above). DR and TUN see no server side.
//!
//! A new connection's packets come in order within a lap, interleaved with
//! those of other new connections; the generator gives them a fresh client
//! tuple on every lap (`genport::Renew`), so each lap opens new connections.

/// One packet of a lap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// A segment of established flow `n` (an index into the worker's flows).
    Est(u32),
    /// Step `step` (0 SYN, 1 ACK, 2 PSH-ACK, 3 FIN-ACK or RST) of the lap's
    /// new connection `conn`.
    New { conn: u32, step: u8 },
    /// A datagram of UDP flow `n`.
    Udp(u32),
    /// An echo request from the client of flow `n`.
    Icmp(u32),
    /// Flow `n`'s segment with a corrupted IP header checksum.
    BadChecksum(u32),
    /// Flow `n`'s segment to an address that is not the director's.
    NotOurs(u32),
    /// Flow `n`'s segment cut short inside the IP header.
    Truncated(u32),
}

/// Which side of the director a lap is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Percent of a lap's packets: established TCP, new TCP connections, UDP,
/// ICMP echo, junk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shares {
    pub est: u32,
    pub new: u32,
    pub udp: u32,
    pub icmp: u32,
    pub junk: u32,
}

pub const CLIENT: Shares = Shares {
    est: 80,
    new: 10,
    udp: 5,
    icmp: 2,
    junk: 3,
};
pub const SERVER: Shares = Shares {
    est: 92,
    new: 0,
    udp: 5,
    icmp: 0,
    junk: 3,
};

/// Packets of one new connection.
pub const CONN_STEPS: u32 = 4;
/// New connections open at once: the lap's new-connection packets go in
/// groups of `WINDOW` connections (all their SYNs, then their ACKs, ...).
pub const WINDOW: u32 = 16;
/// The shortest lap: small flow counts repeat their flows to fill it, so
/// that the other kinds of packet keep their shares with enough variety.
pub const MIN_LAP: usize = 65_536;

/// One lap of one side.
#[derive(Clone, Debug)]
pub struct Plan {
    pub items: Vec<Item>,
    /// New connections per lap.
    pub conns: u32,
    /// Distinct UDP flows the lap uses (flows `0..udp_flows`).
    pub udp_flows: u32,
}

/// Whether a new connection ends with an RST rather than a FIN.
pub fn closes_with_rst(conn: u32) -> bool {
    conn % 4 == 3
}

/// Plans a lap for `flows` established flows. On the server side
/// `udp_flows` is the client side's (replies go to those flows); on the
/// client side it is ignored and the plan gives every UDP flow one datagram.
pub fn plan(side: Side, flows: usize, udp_flows: u32, seed: u64) -> Plan {
    let sh = match side {
        Side::Client => CLIENT,
        Side::Server => SERVER,
    };
    let flows = flows.max(1);
    let want_est = MIN_LAP * sh.est as usize / 100;
    let rep = want_est.div_ceil(flows).max(1);
    let est = flows * rep;
    let total = est * 100 / sh.est as usize;
    let group = (CONN_STEPS * WINDOW) as usize;
    let new = total * sh.new as usize / 100 / group * group;
    let udp = (total * sh.udp as usize / 100).max(1);
    let icmp = total * sh.icmp as usize / 100;
    let junk = (total * sh.junk as usize / 100 / 3).max(1);
    let udp_flows = match side {
        Side::Client => udp as u32,
        Side::Server => udp_flows.max(1),
    };
    let mut items = Vec::with_capacity(est + new + udp + icmp + 3 * junk);
    for _ in 0..rep {
        items.extend((0..flows as u32).map(Item::Est));
    }
    items.extend((0..new).map(|_| Item::New { conn: 0, step: 0 }));
    items.extend((0..udp as u32).map(|k| Item::Udp(k % udp_flows)));
    items.extend((0..icmp as u32).map(|k| Item::Icmp(k % flows as u32)));
    // Junk borrows flows spread over the whole range.
    let spread = |k: usize| ((k as u64 * 0x9e37_79b9) % flows as u64) as u32;
    items.extend((0..junk).map(|k| Item::BadChecksum(spread(3 * k))));
    items.extend((0..junk).map(|k| Item::NotOurs(spread(3 * k + 1))));
    items.extend((0..junk).map(|k| Item::Truncated(spread(3 * k + 2))));
    shuffle(&mut items, seed);
    // Now that the order is fixed, give the new-connection slots their
    // connection and step, in order.
    let mut t = 0u32;
    for it in items.iter_mut() {
        if let Item::New { conn, step } = it {
            let g = t / (CONN_STEPS * WINDOW);
            let r = t % (CONN_STEPS * WINDOW);
            *step = (r / WINDOW) as u8;
            *conn = g * WINDOW + r % WINDOW;
            t += 1;
        }
    }
    Plan {
        items,
        conns: (new as u32) / CONN_STEPS,
        udp_flows,
    }
}

/// A small xorshift shuffle (deterministic for a seed).
pub fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Client tuples for new connections: `laps` × `per_lap` of them, lap `l`'s
/// connection `j` at `l * per_lap + j`, all from `new_conn_flow`'s range and
/// all accepted by `mine` (the worker's share of it).
pub struct NewConnTuples {
    pub tuples: Vec<crate::traffic::Flow>,
    pub per_lap: usize,
    pub laps: usize,
}

/// At least this many tuples, so that a tuple comes back only after its
/// connection expired (seconds later).
pub const MIN_TUPLES: usize = 1 << 21;

impl NewConnTuples {
    pub fn new(per_lap: usize, mut mine: impl FnMut(crate::traffic::Flow) -> bool) -> Self {
        let per_lap = per_lap.max(1);
        let laps = MIN_TUPLES.div_ceil(per_lap).max(2);
        let mut tuples = Vec::with_capacity(laps * per_lap);
        let mut n = 0u64;
        while tuples.len() < laps * per_lap {
            let f = crate::traffic::new_conn_flow(n);
            n += 1;
            if mine(f) {
                tuples.push(f);
            }
        }
        NewConnTuples {
            tuples,
            per_lap,
            laps,
        }
    }
    #[inline(always)]
    pub fn at(&self, lap: u64, conn: u32) -> crate::traffic::Flow {
        let l = (lap % self.laps as u64) as usize;
        self.tuples[l * self.per_lap + conn as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn count(p: &Plan) -> [usize; 7] {
        let mut c = [0; 7];
        for it in &p.items {
            c[match it {
                Item::Est(_) => 0,
                Item::New { .. } => 1,
                Item::Udp(_) => 2,
                Item::Icmp(_) => 3,
                Item::BadChecksum(_) => 4,
                Item::NotOurs(_) => 5,
                Item::Truncated(_) => 6,
            }] += 1;
        }
        c
    }

    fn pct(n: usize, total: usize) -> f64 {
        n as f64 * 100.0 / total as f64
    }

    #[test]
    fn client_lap_has_the_documented_shares() {
        for flows in [1, 1000, 100_000, 1_000_000] {
            let p = plan(Side::Client, flows, 0, 7);
            let c = count(&p);
            let t = p.items.len();
            assert!(t >= MIN_LAP * 99 / 100, "{flows}: lap of {t}");
            for (i, want) in [80.0, 10.0, 5.0, 2.0, 1.0, 1.0, 1.0].iter().enumerate() {
                let got = pct(c[i], t);
                assert!(
                    (got - want).abs() < 0.3,
                    "{flows} flows, kind {i}: {got:.2} %"
                );
            }
            assert_eq!(c[1] as u32, p.conns * CONN_STEPS);
            assert_eq!(p.udp_flows as usize, c[2]);
        }
    }

    #[test]
    fn server_lap_has_replies_and_junk_only() {
        let p = plan(Side::Server, 5000, 300, 9);
        let c = count(&p);
        let t = p.items.len();
        assert_eq!((c[1], c[3]), (0, 0));
        assert!((pct(c[0], t) - 92.0).abs() < 0.3);
        assert!((pct(c[2], t) - 5.0).abs() < 0.3);
        assert!(p
            .items
            .iter()
            .all(|i| !matches!(i, Item::Udp(n) if *n >= 300)));
    }

    #[test]
    fn every_flow_equally_often() {
        let p = plan(Side::Client, 3000, 0, 1);
        let mut seen = vec![0usize; 3000];
        for it in &p.items {
            if let Item::Est(n) = it {
                seen[*n as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == seen[0] && s > 0));
        // Shuffled: not in flow order.
        let est: Vec<u32> = p
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Est(n) => Some(*n),
                _ => None,
            })
            .take(100)
            .collect();
        assert!(est.windows(2).any(|w| w[1] != w[0] + 1));
    }

    #[test]
    fn new_connections_run_their_steps_in_order() {
        let p = plan(Side::Client, 1000, 0, 3);
        let mut next: HashMap<u32, u8> = HashMap::new();
        for it in &p.items {
            if let Item::New { conn, step } = *it {
                let n = next.entry(conn).or_insert(0);
                assert_eq!(step, *n, "conn {conn}");
                *n += 1;
            }
        }
        assert_eq!(next.len() as u32, p.conns);
        assert!(next.values().all(|&s| s as u32 == CONN_STEPS));
        let rst = (0..p.conns).filter(|&c| closes_with_rst(c)).count();
        assert_eq!(rst, p.conns as usize / 4);
    }

    #[test]
    fn plans_are_deterministic_per_seed() {
        assert_eq!(
            plan(Side::Client, 100, 0, 5).items,
            plan(Side::Client, 100, 0, 5).items
        );
        assert_ne!(
            plan(Side::Client, 100, 0, 5).items,
            plan(Side::Client, 100, 0, 6).items
        );
    }

    #[test]
    fn new_connection_tuples_are_distinct_and_filtered() {
        let t = NewConnTuples::new(100_000, |f| f.cport % 2 == 0);
        assert!(t.laps * t.per_lap >= MIN_TUPLES);
        assert!(t.tuples.iter().all(|f| f.cport % 2 == 0));
        let distinct: std::collections::HashSet<_> = t.tuples.iter().collect();
        assert_eq!(distinct.len(), t.tuples.len());
        assert_eq!(t.at(0, 5), t.tuples[5]);
        assert_eq!(t.at(1, 5), t.tuples[100_005]);
        assert_eq!(t.at(t.laps as u64, 5), t.tuples[5]);
    }
}
