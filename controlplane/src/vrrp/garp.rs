//! Gratuitous ARP and unsolicited neighbour advertisement pacing. A new
//! master sends `garp_master_repeat` GARPs for every IPv4 VIP,
//! `vrrp_garp_interval` apart on one interface, and as many unsolicited
//! NAs for every IPv6 one, `vrrp_gna_interval` apart (keepalived's
//! per-interface delays, one for each kind, running independently; 0 sends
//! them back to back). The interfaces of a `garp_group` share its timers
//! and take its intervals instead, as in keepalived. The frames leave
//! through a worker's request queue, which is small (16): what does not
//! fit waits here and goes at the next try, a millisecond later, so every
//! VIP gets all its repeats however many VIPs an instance holds.
//!
//! Sans-IO: frames and time in, frames out through the caller's `send`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How soon to try again when the worker's queue was full.
pub const RETRY: Duration = Duration::from_millis(1);
/// Frames held at most; beyond, new ones are refused (and counted by the
/// caller). 64k covers 13,000 VIPs at 5 repeats.
pub const MAX_QUEUED: usize = 65536;

/// What a frame announces, for its pacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Announce {
    /// Gratuitous ARP (IPv4): `vrrp_garp_interval`.
    Arp,
    /// Unsolicited neighbour advertisement (IPv6): `vrrp_gna_interval`.
    Na,
}

/// How a port in a `garp_group` is paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupPacing {
    /// The group's index: its ports share one timer per kind.
    pub group: u32,
    /// The group's intervals; one it does not set is zero (keepalived's
    /// `have_garp_interval` / `have_gna_interval` false: no delay).
    pub garp_interval: Duration,
    pub gna_interval: Duration,
}

#[derive(Debug, Default)]
pub struct GarpPacer {
    queue: VecDeque<((u16, Announce), Vec<u8>)>,
    garp_interval: Duration,
    gna_interval: Duration,
    /// Ports in a garp_group.
    groups: HashMap<u16, GroupPacing>,
    /// Per timer (a port's own, or its group's) and kind: not before this
    /// instant (the interval since the last one).
    next_free: HashMap<(u32, Announce), Instant>,
    /// The worker's queue was full: not before this instant.
    retry_at: Option<Instant>,
}

impl GarpPacer {
    /// `vrrp_garp_interval` and `vrrp_gna_interval`.
    pub fn new(garp_interval: Duration, gna_interval: Duration) -> GarpPacer {
        GarpPacer {
            garp_interval,
            gna_interval,
            ..GarpPacer::default()
        }
    }

    /// The intervals, after a reload.
    pub fn set_intervals(&mut self, garp_interval: Duration, gna_interval: Duration) {
        self.garp_interval = garp_interval;
        self.gna_interval = gna_interval;
    }

    /// The ports in garp_groups (a reload gives them again).
    pub fn set_groups(&mut self, groups: HashMap<u16, GroupPacing>) {
        self.groups = groups;
    }

    /// The timer a port's frames of a kind wait on, and their interval:
    /// the port's own with the global intervals, or its group's.
    fn pacing(&self, port: u16, kind: Announce) -> ((u32, Announce), Duration) {
        let (timer, garp, gna) = match self.groups.get(&port) {
            // Past every port number: a group's timer is no port's.
            Some(g) => (0x1_0000 + g.group, g.garp_interval, g.gna_interval),
            None => (port as u32, self.garp_interval, self.gna_interval),
        };
        let iv = match kind {
            Announce::Arp => garp,
            Announce::Na => gna,
        };
        ((timer, kind), iv)
    }

    /// Queues one frame for `port`; false when the queue is full.
    pub fn push(&mut self, port: u16, kind: Announce, frame: Vec<u8>) -> bool {
        if self.queue.len() >= MAX_QUEUED {
            return false;
        }
        self.queue.push_back(((port, kind), frame));
        true
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// When [`poll`](Self::poll) has something to do: `None` with nothing
    /// queued. A frame pushed since the last poll is due at once (`now`).
    pub fn deadline(&self, now: Instant) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        let mut t = self
            .queue
            .iter()
            .map(|((port, kind), _)| {
                let (timer, _) = self.pacing(*port, *kind);
                self.next_free.get(&timer).copied().unwrap_or(now)
            })
            .min()
            .unwrap_or(now);
        if let Some(r) = self.retry_at {
            t = t.max(r);
        }
        Some(t)
    }

    /// Sends what is due at `now`, in the order queued (the frames of a
    /// kind on one timer never overtake each other). `send` returns false
    /// when the worker's queue is full: the rest waits [`RETRY`]. Returns
    /// how many went.
    pub fn poll(&mut self, now: Instant, mut send: impl FnMut(u16, &[u8]) -> bool) -> usize {
        if self.retry_at.is_some_and(|r| r > now) {
            return 0;
        }
        self.retry_at = None;
        let mut sent = 0;
        let mut blocked: Vec<(u32, Announce)> = Vec::new();
        let mut keep = VecDeque::with_capacity(self.queue.len());
        let mut full = false;
        while let Some((key, frame)) = self.queue.pop_front() {
            let (timer, iv) = self.pacing(key.0, key.1);
            let free = self.next_free.get(&timer).is_none_or(|t| *t <= now);
            if full || blocked.contains(&timer) || !free {
                if !blocked.contains(&timer) {
                    blocked.push(timer);
                }
                keep.push_back((key, frame));
                continue;
            }
            if !send(key.0, &frame) {
                full = true;
                self.retry_at = Some(now + RETRY);
                keep.push_back((key, frame));
                continue;
            }
            sent += 1;
            if !iv.is_zero() {
                self.next_free.insert(timer, now + iv);
                blocked.push(timer);
            }
        }
        self.queue = keep;
        // Forget timers whose interval is over, so the map stays small.
        self.next_free.retain(|_, t| *t > now);
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(vip: u8, rep: u8) -> Vec<u8> {
        vec![vip, rep]
    }

    #[test]
    fn back_to_back_without_an_interval_and_retried_when_the_queue_is_full() {
        let t = Instant::now();
        let mut p = GarpPacer::new(Duration::ZERO, Duration::ZERO);
        // 40 VIPs, 5 repeats: 200 frames through a 16-slot queue.
        for rep in 0..5 {
            for vip in 0..40 {
                assert!(p.push(0, Announce::Arp, frame(vip, rep)));
            }
        }
        assert_eq!(p.deadline(t), Some(t));
        let mut out = Vec::new();
        let mut now = t;
        let mut rounds = 0;
        while p.queued() > 0 {
            let mut room = 16;
            p.poll(now, |_, f| {
                if room == 0 {
                    return false;
                }
                room -= 1;
                out.push(f.to_vec());
                true
            });
            if p.queued() > 0 {
                assert_eq!(p.deadline(now), Some(now + RETRY));
                assert_eq!(p.poll(now, |_, _| true), 0, "not before the retry");
            }
            now += RETRY;
            rounds += 1;
        }
        assert_eq!(rounds, 13);
        assert_eq!(out.len(), 200);
        // In keepalived's order: every VIP once, then the next repeat.
        for (i, f) in out.iter().enumerate() {
            assert_eq!(f, &frame((i % 40) as u8, (i / 40) as u8));
        }
    }

    #[test]
    fn an_interval_spaces_each_port_and_not_the_others() {
        let t = Instant::now();
        let iv = Duration::from_millis(10);
        let mut p = GarpPacer::new(iv, Duration::ZERO);
        for vip in 0..3 {
            p.push(0, Announce::Arp, frame(vip, 0));
            p.push(1, Announce::Arp, frame(vip, 0));
        }
        let mut sent: Vec<(Instant, u16, Vec<u8>)> = Vec::new();
        let mut now = t;
        while let Some(d) = p.deadline(now) {
            now = now.max(d);
            p.poll(now, |port, f| {
                sent.push((now, port, f.to_vec()));
                true
            });
        }
        assert_eq!(sent.len(), 6);
        for port in [0, 1] {
            let times: Vec<Instant> = sent.iter().filter(|s| s.1 == port).map(|s| s.0).collect();
            assert_eq!(times, vec![t, t + iv, t + 2 * iv]);
            let order: Vec<u8> = sent
                .iter()
                .filter(|s| s.1 == port)
                .map(|s| s.2[0])
                .collect();
            assert_eq!(order, vec![0, 1, 2]);
        }
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut p = GarpPacer::new(Duration::ZERO, Duration::ZERO);
        for _ in 0..MAX_QUEUED {
            assert!(p.push(0, Announce::Arp, vec![]));
        }
        assert!(!p.push(0, Announce::Na, vec![]));
    }

    #[test]
    fn arps_and_nas_are_paced_by_their_own_intervals() {
        // keepalived keeps garp_next_time and gna_next_time per interface:
        // ARPs vrrp_garp_interval apart, NAs vrrp_gna_interval apart, the
        // one not waiting on the other.
        let t = Instant::now();
        let (garp, gna) = (Duration::from_millis(10), Duration::from_millis(25));
        let mut p = GarpPacer::new(garp, gna);
        for vip in 0..3 {
            p.push(0, Announce::Arp, frame(vip, 4));
            p.push(0, Announce::Na, frame(vip, 6));
        }
        let mut sent: Vec<(Instant, Vec<u8>)> = Vec::new();
        let mut now = t;
        while let Some(d) = p.deadline(now) {
            now = now.max(d);
            p.poll(now, |_, f| {
                sent.push((now, f.to_vec()));
                true
            });
        }
        let times = |kind: u8| -> Vec<Instant> {
            sent.iter()
                .filter(|s| s.1[1] == kind)
                .map(|s| s.0)
                .collect()
        };
        assert_eq!(times(4), vec![t, t + garp, t + 2 * garp]);
        assert_eq!(times(6), vec![t, t + gna, t + 2 * gna]);
        // Zero NA interval: back to back whatever the ARP interval.
        p.set_intervals(garp, Duration::ZERO);
        for vip in 0..3 {
            p.push(0, Announce::Na, frame(vip, 6));
        }
        let later = t + Duration::from_secs(1);
        assert_eq!(p.poll(later, |_, _| true), 3);
    }

    #[test]
    fn a_garp_group_shares_its_timer_and_intervals_across_its_ports() {
        // keepalived: the interfaces of a garp_group share its garp_delay
        // (one timer per kind); an interval it does not set is no delay.
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut p = GarpPacer::new(ms(50), ms(50));
        let g = GroupPacing {
            group: 0,
            garp_interval: ms(10),
            gna_interval: Duration::ZERO,
        };
        p.set_groups([(0, g), (1, g)].into_iter().collect());
        for vip in 0..2 {
            p.push(0, Announce::Arp, frame(vip, 4));
            p.push(1, Announce::Arp, frame(vip, 4));
            p.push(0, Announce::Na, frame(vip, 6));
            p.push(2, Announce::Arp, frame(vip, 2));
        }
        type Sent = (Instant, u16, Vec<u8>);
        let mut sent: Vec<Sent> = Vec::new();
        let mut now = t;
        while let Some(d) = p.deadline(now) {
            now = now.max(d);
            p.poll(now, |port, f| {
                sent.push((now, port, f.to_vec()));
                true
            });
        }
        let at = |pred: &dyn Fn(&Sent) -> bool| -> Vec<Instant> {
            sent.iter().filter(|s| pred(s)).map(|s| s.0).collect()
        };
        // Ports 0 and 1: four ARPs on one 10 ms timer, in queue order.
        assert_eq!(
            at(&|s| s.1 < 2 && s.2[1] == 4),
            vec![t, t + ms(10), t + ms(20), t + ms(30)]
        );
        let order: Vec<(u16, u8)> = sent
            .iter()
            .filter(|s| s.1 < 2 && s.2[1] == 4)
            .map(|s| (s.1, s.2[0]))
            .collect();
        assert_eq!(order, vec![(0, 0), (1, 0), (0, 1), (1, 1)]);
        // The group sets no gna_interval: its NAs go back to back.
        assert_eq!(at(&|s| s.2[1] == 6), vec![t, t]);
        // Port 2 is in no group: the global 50 ms.
        assert_eq!(at(&|s| s.1 == 2), vec![t, t + ms(50)]);
    }
}
