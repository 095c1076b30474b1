//! The connection tables as files, read back by the next process (issue
//! 17): after an upgrade, a restart or a crash, the established flows go on.
//!
//! Why files and not a hand-over over a socket: the one mechanism serves
//! all three cases. A worker's slab (`conn::table`) lives in a shared
//! mapping of a file on tmpfs (`port::shm`), so every connection is in the
//! page cache the moment the worker writes it, and what a `kill -9` leaves
//! is as good as what a clean stop leaves, at no cost per packet. A socket
//! hand-over needs the old process alive and well to send its state; a
//! crash would lose everything.
//!
//! The next process never maps the old files as its tables: it reads them
//! as bytes, decodes every entry field by field (an enum is never trusted
//! from a file), checks it, and inserts what passes into fresh tables with
//! their own hash keys, indexes and expiry wheels. So a file from an older
//! layout, or a torn one, can make the new process refuse entries, never
//! misbehave.
//!
//! What makes an entry trustworthy after a crash: a worker writes a new
//! entry whole with its "used" flag clear and sets the flag last
//! (`ConnTable::insert_with`, a compiler fence between), and clears the
//! flag first when it frees one. A process killed at any instruction
//! leaves each entry either unused or complete; the fields that change
//! later (state, flags, timeout, expiry, a SYN proxy's sequence delta) are
//! single aligned stores, and the SYN proxy's delta is stored before the
//! flag that says it is one. The entry's addresses and real server never
//! change after it is made.
//!
//! Layout: a header page, then the array (`port::shm`). The header names
//! the layout version, the element, the capacity, the worker, the boot
//! (CLOCK_MONOTONIC is only shared within one) and the process's clock
//! epoch, which turns an entry's expiry tick into a moment the next
//! process understands. A clean stop stamps the header.

use crate::conn::timer::TICK_MS;
use crate::conn::{Addrs6, Conn};
use crate::service::FwdMethod;
use std::mem::{offset_of, size_of};

/// `FRVSTATE`: a ferrovs state file.
pub const MAGIC: [u8; 8] = *b"FRVSTATE";
/// Bumped whenever `Conn`, the IPv6 slot or this header changes shape; a
/// process reads only its own version (the upgrade check says so first).
pub const LAYOUT: u32 = 1;
/// Bytes before the array (`port::shm::HEADER_BYTES`).
pub const HEADER_BYTES: usize = crate::port::shm::HEADER_BYTES;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// A worker's IPv4 slab.
    Conn4 = 1,
    /// A worker's IPv6 slab.
    Conn6 = 2,
    /// The IPv6 slab's addresses (client inline, the rest pool indices).
    Slots6 = 3,
    /// The IPv6 table's pooled addresses, by index.
    Pool6 = 4,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            1 => Kind::Conn4,
            2 => Kind::Conn6,
            3 => Kind::Slots6,
            4 => Kind::Pool6,
            _ => return None,
        })
    }
    /// The file name for worker `w`.
    pub fn file_name(self, w: usize) -> String {
        let ext = match self {
            Kind::Conn4 => "conn4",
            Kind::Conn6 => "conn6",
            Kind::Slots6 => "slots6",
            Kind::Pool6 => "pool6",
        };
        format!("w{w}.{ext}")
    }
    /// The size of one element of this kind, as this binary lays it out.
    pub fn elem_size(self) -> usize {
        match self {
            Kind::Conn4 | Kind::Conn6 => size_of::<Conn>(),
            Kind::Slots6 => SLOT6_BYTES,
            Kind::Pool6 => 16,
        }
    }
}

/// An IPv6 slot: the client's address, then the VIP's, the server's and
/// the local address's pool indices (u16 each, native order).
pub const SLOT6_BYTES: usize = 22;
/// The local-address index that means "the client's own address".
pub const SLOT6_CLIENT: u16 = u16::MAX;

/// Where the clean-stop stamp is written (`u64`, CLOCK_MONOTONIC ms; 0
/// while the process runs).
pub const CLEAN_AT: usize = 128;
/// Where a clean stop writes one more than the highest slab index ever
/// used (`u64`; 0: unknown, as after a crash). Entries at and beyond it
/// were never written, so a reader stops there instead of walking the whole
/// capacity: the hand-over's pause then grows with the connections, not
/// with the table's size.
pub const USED_BELOW_AT: usize = 136;

/// A state file's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub elem_size: u32,
    pub capacity: u64,
    pub worker: u32,
    pub workers: u32,
    pub pid: u32,
    /// CLOCK_MONOTONIC (ms) at the process's clock epoch: a worker's
    /// `now_ms` plus this is CLOCK_MONOTONIC.
    pub epoch_mono_ms: u64,
    pub tick_ms: u64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: [u8; 36],
    /// When the process stopped cleanly (CLOCK_MONOTONIC ms), or 0.
    pub clean_at_mono_ms: u64,
    /// Entries `used_below..capacity` were never used (None: unknown).
    pub used_below: Option<u64>,
}

/// Why a state file was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadFile {
    Short,
    Magic,
    /// Another layout version (the number found).
    Layout(u32),
    Kind(u32),
    /// The element size disagrees with the kind in this binary.
    ElemSize {
        kind: Kind,
        found: u32,
    },
    /// The array is shorter than the capacity says.
    Truncated,
    /// Written in another boot: its clock means nothing now.
    OtherBoot,
}

impl std::fmt::Display for BadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFile::Short => write!(f, "shorter than its header"),
            BadFile::Magic => write!(f, "not a ferrovs state file"),
            BadFile::Layout(v) => write!(f, "layout version {v}; this binary reads {LAYOUT}"),
            BadFile::Kind(k) => write!(f, "unknown kind {k}"),
            BadFile::ElemSize { kind, found } => write!(
                f,
                "{kind:?} entries of {found} bytes; this binary's are {}",
                kind.elem_size()
            ),
            BadFile::Truncated => write!(f, "truncated"),
            BadFile::OtherBoot => write!(f, "written before the last reboot"),
        }
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default())
}

/// The stored form of [`Header::used_below`]: one more than the count, 0
/// for unknown.
pub fn encode_used_below(n: Option<u64>) -> u64 {
    n.map_or(0, |n| n + 1)
}

impl Header {
    /// The header bytes (little-endian fields at fixed offsets).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; USED_BELOW_AT + 8];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&LAYOUT.to_le_bytes());
        b[12..16].copy_from_slice(&(self.kind as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.elem_size.to_le_bytes());
        b[20..24].copy_from_slice(&self.worker.to_le_bytes());
        b[24..28].copy_from_slice(&self.workers.to_le_bytes());
        b[28..32].copy_from_slice(&self.pid.to_le_bytes());
        b[32..40].copy_from_slice(&self.capacity.to_le_bytes());
        b[40..48].copy_from_slice(&self.epoch_mono_ms.to_le_bytes());
        b[48..56].copy_from_slice(&self.tick_ms.to_le_bytes());
        b[56..92].copy_from_slice(&self.boot_id);
        b[CLEAN_AT..CLEAN_AT + 8].copy_from_slice(&self.clean_at_mono_ms.to_le_bytes());
        b[USED_BELOW_AT..USED_BELOW_AT + 8]
            .copy_from_slice(&encode_used_below(self.used_below).to_le_bytes());
        b
    }

    /// Reads a header, checked against this binary's layout; `boot_id`
    /// is this boot's.
    pub fn decode(b: &[u8], boot_id: &[u8; 36]) -> Result<Header, BadFile> {
        if b.len() < HEADER_BYTES {
            return Err(BadFile::Short);
        }
        if b[0..8] != MAGIC {
            return Err(BadFile::Magic);
        }
        let layout = u32_at(b, 8);
        if layout != LAYOUT {
            return Err(BadFile::Layout(layout));
        }
        let kind = Kind::from_u32(u32_at(b, 12)).ok_or(BadFile::Kind(u32_at(b, 12)))?;
        let elem_size = u32_at(b, 16);
        if elem_size as usize != kind.elem_size() {
            return Err(BadFile::ElemSize {
                kind,
                found: elem_size,
            });
        }
        let mut boot = [0u8; 36];
        boot.copy_from_slice(&b[56..92]);
        if &boot != boot_id {
            return Err(BadFile::OtherBoot);
        }
        let h = Header {
            kind,
            elem_size,
            worker: u32_at(b, 20),
            workers: u32_at(b, 24),
            pid: u32_at(b, 28),
            capacity: u64_at(b, 32),
            epoch_mono_ms: u64_at(b, 40),
            tick_ms: u64_at(b, 48),
            boot_id: boot,
            clean_at_mono_ms: u64_at(b, CLEAN_AT),
            used_below: u64_at(b, USED_BELOW_AT).checked_sub(1),
        };
        let need = (h.capacity as usize)
            .checked_mul(elem_size as usize)
            .and_then(|n| n.checked_add(HEADER_BYTES))
            .ok_or(BadFile::Truncated)?;
        if b.len() < need {
            return Err(BadFile::Truncated);
        }
        Ok(h)
    }
}

/// The bytes one worker's files take for a table of `capacity` IPv4 and
/// `capacity6` IPv6 entries (headers, slabs, IPv6 slots, the address pool).
pub fn bytes_per_worker(capacity: usize, capacity6: usize) -> u64 {
    let c = size_of::<Conn>() as u64;
    4 * HEADER_BYTES as u64
        + capacity as u64 * c
        + capacity6 as u64 * (c + SLOT6_BYTES as u64)
        + crate::conn::addr_pool::MAX as u64 * 16
}

/// This boot's id, as the header keeps it.
pub fn boot_id() -> [u8; 36] {
    let mut id = [0u8; 36];
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let s = s.trim().as_bytes();
        let n = s.len().min(36);
        id[..n].copy_from_slice(&s[..n]);
    }
    id
}

/// Where a worker's tables keep their files, and what their headers say.
#[derive(Clone, Debug)]
pub struct Store {
    pub dir: std::path::PathBuf,
    pub worker: usize,
    pub workers: usize,
    /// CLOCK_MONOTONIC (ms) at the workers' clock epoch.
    pub epoch_mono_ms: u64,
    pub boot_id: [u8; 36],
}

impl Store {
    /// The same store for worker `w`.
    pub fn for_worker(&self, w: usize) -> Store {
        Store {
            worker: w,
            ..self.clone()
        }
    }

    pub fn path(&self, kind: Kind) -> std::path::PathBuf {
        self.dir.join(kind.file_name(self.worker))
    }

    /// A new file of `len` elements for `kind`, mapped.
    pub fn region<T: Copy>(
        &self,
        kind: Kind,
        len: usize,
        fill: T,
    ) -> std::io::Result<crate::port::shm::Region<T>> {
        debug_assert_eq!(size_of::<T>(), kind.elem_size());
        let h = Header {
            kind,
            elem_size: size_of::<T>() as u32,
            capacity: len as u64,
            worker: self.worker as u32,
            workers: self.workers as u32,
            pid: std::process::id(),
            epoch_mono_ms: self.epoch_mono_ms,
            tick_ms: TICK_MS,
            boot_id: self.boot_id,
            clean_at_mono_ms: 0,
            used_below: None,
        };
        let path = self.path(kind);
        crate::port::shm::Region::create(&path, &h.encode(), len, fill)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }
}

/// A connection read back from a file.
#[derive(Clone, Copy, Debug)]
pub struct Saved {
    /// The entry as it was, less what belongs to the old table (its list
    /// links, expiry tick, template slot, eviction ticket).
    pub conn: Conn,
    /// An IPv6 table's entry: its addresses.
    pub addrs6: Option<Addrs6>,
    /// How long it had left to live when read (ms).
    pub remaining_ms: u64,
}

/// Why an entry of a file was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadEntry {
    /// A field holds a value no entry of ours has (a torn or foreign one).
    Field,
    /// It had expired.
    Expired,
    /// An IPv6 entry's address index names nothing in the pool file.
    Addr,
}

/// Counts of what a file held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub taken: usize,
    pub bad: usize,
    pub expired: usize,
}

const F_USED: u8 = crate::conn::entry::F_USED;

/// Decodes entry `rec` (the 64 bytes of one slab slot) with the time it
/// has left (ms), or None for a free slot. `epoch_mono_ms` is the
/// writer's epoch, `now_mono_ms` now. The entry's own list links, expiry
/// tick and template slot belong to the old table and are not read.
pub fn decode_conn(
    rec: &[u8],
    tick_ms: u64,
    epoch_mono_ms: u64,
    now_mono_ms: u64,
) -> Option<Result<(Conn, u64), BadEntry>> {
    if rec.len() < size_of::<Conn>() {
        return Some(Err(BadEntry::Field));
    }
    let flags = rec[offset_of!(Conn, flags)];
    if flags & F_USED == 0 {
        return None;
    }
    let a4 = |o: usize| -> [u8; 4] { rec[o..o + 4].try_into().unwrap_or_default() };
    let u16n = |o: usize| u16::from_ne_bytes([rec[o], rec[o + 1]]);
    let u32n = |o: usize| u32::from_ne_bytes(rec[o..o + 4].try_into().unwrap_or_default());
    let fwd = match rec[offset_of!(Conn, fwd)] {
        0 => FwdMethod::Dr,
        1 => FwdMethod::Nat,
        2 => FwdMethod::FullNat,
        3 => FwdMethod::Tun,
        _ => return Some(Err(BadEntry::Field)),
    };
    let proto = rec[offset_of!(Conn, proto)];
    if proto != crate::wire::ipv4::PROTO_TCP && proto != crate::wire::ipv4::PROTO_UDP {
        return Some(Err(BadEntry::Field));
    }
    let state = rec[offset_of!(Conn, state)];
    if proto == crate::wire::ipv4::PROTO_TCP && (state & 0x0f) as usize >= crate::conn::TCP_STATES {
        return Some(Err(BadEntry::Field));
    }
    let timeout_s = u32n(offset_of!(Conn, timeout_s));
    let expires = u32n(offset_of!(Conn, expires));
    // Tick to CLOCK_MONOTONIC, against the writer's epoch.
    let at = epoch_mono_ms.saturating_add(expires as u64 * tick_ms);
    if at <= now_mono_ms {
        return Some(Err(BadEntry::Expired));
    }
    // Never longer than its own timeout from now: an expiry beyond it is
    // not one this entry could have had.
    if at - now_mono_ms > timeout_s as u64 * 1000 + tick_ms * 2 {
        return Some(Err(BadEntry::Field));
    }
    let c = Conn {
        caddr: a4(offset_of!(Conn, caddr)),
        vaddr: a4(offset_of!(Conn, vaddr)),
        daddr: a4(offset_of!(Conn, daddr)),
        laddr: a4(offset_of!(Conn, laddr)),
        cport: u16n(offset_of!(Conn, cport)),
        vport: u16n(offset_of!(Conn, vport)),
        dport: u16n(offset_of!(Conn, dport)),
        lport: u16n(offset_of!(Conn, lport)),
        proto,
        state,
        fwd,
        flags,
        dest_id: u32n(offset_of!(Conn, dest_id)),
        svc_id: u32n(offset_of!(Conn, svc_id)),
        timeout_s,
        ring_seq: u32n(offset_of!(Conn, ring_seq)),
        ..Conn::EMPTY
    };
    Some(Ok((c, at - now_mono_ms)))
}

/// The files of one worker's table, as bytes.
pub struct TableFiles<'a> {
    pub conns: &'a [u8],
    /// An IPv6 table's slots and pool (both, or neither).
    pub v6: Option<(&'a [u8], &'a [u8])>,
}

/// Reads one worker's table: every used entry that decodes, checks and
/// has not expired, in slab order. `boot_id` is this boot's; `now_mono_ms`
/// is CLOCK_MONOTONIC now.
pub fn read_table(
    files: &TableFiles,
    boot_id: &[u8; 36],
    now_mono_ms: u64,
    mut take: impl FnMut(Saved),
) -> Result<(Header, ReadStats), BadFile> {
    let h = Header::decode(files.conns, boot_id)?;
    let v6 = match files.v6 {
        Some((slots, pool)) => {
            let hs = Header::decode(slots, boot_id)?;
            let hp = Header::decode(pool, boot_id)?;
            if hs.kind != Kind::Slots6 || hp.kind != Kind::Pool6 || hs.capacity < h.capacity {
                return Err(BadFile::Truncated);
            }
            Some((
                &slots[HEADER_BYTES..],
                &pool[HEADER_BYTES..],
                hp.capacity as usize,
            ))
        }
        None => None,
    };
    let mut st = ReadStats::default();
    let body = &files.conns[HEADER_BYTES..];
    let es = size_of::<Conn>();
    // A clean stop says how far entries were ever used; after a crash the
    // whole slab is walked.
    let end = match (h.clean_at_mono_ms, h.used_below) {
        (c, Some(n)) if c != 0 => n.min(h.capacity),
        _ => h.capacity,
    };
    for i in 0..end as usize {
        let rec = &body[i * es..(i + 1) * es];
        let (conn, remaining_ms) = match decode_conn(rec, h.tick_ms, h.epoch_mono_ms, now_mono_ms) {
            None => continue,
            Some(Ok(c)) => c,
            Some(Err(BadEntry::Expired)) => {
                st.expired += 1;
                continue;
            }
            Some(Err(_)) => {
                st.bad += 1;
                continue;
            }
        };
        let addrs6 = match v6 {
            None => None,
            Some((slots, pool, pool_cap)) => {
                match slot6(
                    &slots[i * SLOT6_BYTES..(i + 1) * SLOT6_BYTES],
                    pool,
                    pool_cap,
                ) {
                    Some(a) => Some(a),
                    None => {
                        st.bad += 1;
                        continue;
                    }
                }
            }
        };
        st.taken += 1;
        take(Saved {
            conn,
            addrs6,
            remaining_ms,
        });
    }
    Ok((h, st))
}

/// An IPv6 slot's addresses, through the pool file.
fn slot6(s: &[u8], pool: &[u8], pool_cap: usize) -> Option<Addrs6> {
    let idx = |o: usize| u16::from_ne_bytes([s[o], s[o + 1]]);
    let caddr: [u8; 16] = s[0..16].try_into().ok()?;
    let get = |i: u16| -> Option<[u8; 16]> {
        let i = i as usize;
        if i >= pool_cap {
            return None;
        }
        let a: [u8; 16] = pool.get(i * 16..i * 16 + 16)?.try_into().ok()?;
        // A pooled address is a VIP, a server or a local address: never
        // all zeros, which is what an index nothing was written to reads.
        (a != [0; 16]).then_some(a)
    };
    let l = idx(20);
    Some(Addrs6 {
        caddr,
        vaddr: get(idx(16))?,
        daddr: get(idx(18))?,
        laddr: if l == SLOT6_CLIENT { caddr } else { get(l)? },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::entry::{F_INACTIVE, F_OUT_INDEXED};

    const BOOT: [u8; 36] = *b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    fn header(kind: Kind, cap: u64) -> Header {
        Header {
            kind,
            elem_size: kind.elem_size() as u32,
            capacity: cap,
            worker: 0,
            workers: 1,
            pid: 42,
            epoch_mono_ms: 1_000_000,
            tick_ms: TICK_MS,
            boot_id: BOOT,
            clean_at_mono_ms: 0,
            used_below: None,
        }
    }

    /// A file as a worker leaves it, built by hand: the header page, then
    /// entries written at the `Conn` field offsets.
    fn file(h: &Header, entries: &[(usize, Conn)]) -> Vec<u8> {
        let mut b = h.encode();
        b.resize(HEADER_BYTES + h.capacity as usize * 64, 0);
        for (i, c) in entries {
            let r = &mut b[HEADER_BYTES + i * 64..HEADER_BYTES + (i + 1) * 64];
            r[0..4].copy_from_slice(&c.caddr);
            r[4..8].copy_from_slice(&c.vaddr);
            r[8..12].copy_from_slice(&c.daddr);
            r[12..16].copy_from_slice(&c.laddr);
            r[16..18].copy_from_slice(&c.cport.to_ne_bytes());
            r[18..20].copy_from_slice(&c.vport.to_ne_bytes());
            r[20..22].copy_from_slice(&c.dport.to_ne_bytes());
            r[22..24].copy_from_slice(&c.lport.to_ne_bytes());
            r[24] = c.proto;
            r[25] = c.state;
            r[26] = c.fwd as u8;
            r[27] = c.flags;
            r[28..32].copy_from_slice(&c.dest_id.to_ne_bytes());
            r[32..36].copy_from_slice(&c.svc_id.to_ne_bytes());
            r[36..40].copy_from_slice(&c.timeout_s.to_ne_bytes());
            r[40..44].copy_from_slice(&c.expires.to_ne_bytes());
            r[60..64].copy_from_slice(&c.ring_seq.to_ne_bytes());
        }
        b
    }

    fn conn(cport: u16, expires_tick: u32) -> Conn {
        Conn {
            caddr: [198, 18, 0, 10],
            vaddr: [198, 18, 0, 100],
            daddr: [198, 18, 1, 11],
            laddr: [198, 18, 1, 1],
            cport,
            vport: 80,
            dport: 8080,
            lport: 5000,
            proto: 6,
            state: 1,
            fwd: FwdMethod::FullNat,
            flags: F_USED | F_OUT_INDEXED,
            dest_id: 7,
            svc_id: 3,
            timeout_s: 900,
            expires: expires_tick,
            ring_seq: 0xdead_beef,
            ..Conn::EMPTY
        }
    }

    #[test]
    fn the_field_offsets_are_the_ones_the_files_hold() {
        // The hand-written files above put the fields here; a change of
        // `Conn` must change LAYOUT too.
        assert_eq!(offset_of!(Conn, cport), 16);
        assert_eq!(offset_of!(Conn, proto), 24);
        assert_eq!(offset_of!(Conn, flags), 27);
        assert_eq!(offset_of!(Conn, dest_id), 28);
        assert_eq!(offset_of!(Conn, timeout_s), 36);
        assert_eq!(offset_of!(Conn, expires), 40);
        assert_eq!(offset_of!(Conn, ring_seq), 60);
        assert_eq!(LAYOUT, 1);
    }

    #[test]
    fn a_header_round_trips_and_is_checked() {
        let h = header(Kind::Conn4, 4);
        let b = file(&h, &[]);
        assert_eq!(Header::decode(&b, &BOOT).unwrap(), h);
        assert_eq!(Header::decode(&b[..100], &BOOT), Err(BadFile::Short));
        let other = *b"ffffffff-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(Header::decode(&b, &other), Err(BadFile::OtherBoot));
        let mut x = b.clone();
        x[8] = 9;
        assert_eq!(Header::decode(&x, &BOOT), Err(BadFile::Layout(9)));
        let mut x = b.clone();
        x[0] = b'X';
        assert_eq!(Header::decode(&x, &BOOT), Err(BadFile::Magic));
        let mut x = b.clone();
        x[16] = 63;
        assert!(matches!(
            Header::decode(&x, &BOOT),
            Err(BadFile::ElemSize { .. })
        ));
        assert_eq!(
            Header::decode(&b[..b.len() - 1], &BOOT),
            Err(BadFile::Truncated)
        );
    }

    #[test]
    fn used_entries_come_back_with_their_time_left() {
        let h = header(Kind::Conn4, 8);
        // Epoch 1_000_000 ms; tick 2000 expires at 1_000_000 + 2000×TICK.
        let exp = 2000;
        let b = file(&h, &[(1, conn(1000, exp)), (5, conn(1001, exp))]);
        let now = 1_000_000 + exp as u64 * TICK_MS - 30_000;
        let mut got = Vec::new();
        let files = TableFiles {
            conns: &b,
            v6: None,
        };
        let (_, st) = read_table(&files, &BOOT, now, |s| got.push(s)).unwrap();
        assert_eq!(
            st,
            ReadStats {
                taken: 2,
                bad: 0,
                expired: 0
            }
        );
        assert_eq!(got[0].conn.cport, 1000);
        assert_eq!(got[1].conn.cport, 1001);
        assert_eq!(got[0].remaining_ms, 30_000);
        let c = got[0].conn;
        assert_eq!(
            (c.caddr, c.laddr, c.lport, c.fwd),
            ([198, 18, 0, 10], [198, 18, 1, 1], 5000, FwdMethod::FullNat)
        );
        assert_eq!(
            (c.dest_id, c.svc_id, c.ring_seq, c.timeout_s),
            (7, 3, 0xdead_beef, 900)
        );
        assert_eq!(c.flags, F_USED | F_OUT_INDEXED);
    }

    #[test]
    fn a_clean_stop_says_how_far_to_read_and_a_crash_does_not() {
        let exp = 2000;
        let now = 1_000_000 + exp as u64 * TICK_MS - 30_000;
        let mut h = header(Kind::Conn4, 8);
        // Entry 5 lies beyond the mark: never used as far as the writer
        // knew, so never read (a clean stop's mark is exact).
        let entries = [(1, conn(1000, exp)), (5, conn(1001, exp))];
        let count = |h: &Header| {
            let b = file(h, &entries);
            let files = TableFiles {
                conns: &b,
                v6: None,
            };
            let mut n = 0;
            read_table(&files, &BOOT, now, |_| n += 1).unwrap();
            n
        };
        h.used_below = Some(2);
        assert_eq!(count(&h), 2, "not stamped clean: the mark is not trusted");
        h.clean_at_mono_ms = 999_000;
        assert_eq!(count(&h), 1);
        assert_eq!(
            Header::decode(&file(&h, &[]), &BOOT).unwrap().used_below,
            Some(2)
        );
        h.used_below = None;
        assert_eq!(count(&h), 2);
        h.used_below = Some(0);
        assert_eq!(count(&h), 0, "an empty table is read in no time");
    }

    #[test]
    fn torn_foreign_and_expired_entries_are_refused_and_counted() {
        let h = header(Kind::Conn4, 8);
        let exp = 2000;
        let now = 1_000_000 + exp as u64 * TICK_MS - 30_000;
        let mut bad_fwd = conn(1, exp);
        bad_fwd.flags |= F_INACTIVE;
        let mut b = file(
            &h,
            &[
                (0, bad_fwd),
                (1, conn(2, exp)),
                (2, conn(3, 10)),
                (3, conn(4, exp)),
            ],
        );
        // Slot 0: a forwarding method no entry has.
        b[HEADER_BYTES + 26] = 9;
        // Slot 3: an expiry far beyond its timeout (a foreign value).
        b[HEADER_BYTES + 3 * 64 + 36..HEADER_BYTES + 3 * 64 + 40]
            .copy_from_slice(&1u32.to_ne_bytes());
        let mut got = Vec::new();
        let files = TableFiles {
            conns: &b,
            v6: None,
        };
        let (_, st) = read_table(&files, &BOOT, now, |s| got.push(s.conn.cport)).unwrap();
        assert_eq!(got, vec![2]);
        assert_eq!(
            st,
            ReadStats {
                taken: 1,
                bad: 2,
                expired: 1
            }
        );
    }

    #[test]
    fn ipv6_entries_take_their_addresses_from_the_slots_and_the_pool() {
        let exp = 2000;
        let now = 1_000_000 + exp as u64 * TICK_MS - 1000;
        let mut c = conn(1000, exp);
        c.fwd = FwdMethod::Nat;
        let conns = file(&header(Kind::Conn6, 2), &[(1, c)]);
        let mut slots = header(Kind::Slots6, 2).encode();
        slots.resize(HEADER_BYTES + 2 * SLOT6_BYTES, 0);
        let client = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let s = &mut slots[HEADER_BYTES + SLOT6_BYTES..HEADER_BYTES + 2 * SLOT6_BYTES];
        s[0..16].copy_from_slice(&client);
        s[16..18].copy_from_slice(&0u16.to_ne_bytes());
        s[18..20].copy_from_slice(&1u16.to_ne_bytes());
        s[20..22].copy_from_slice(&SLOT6_CLIENT.to_ne_bytes());
        let mut pool = header(Kind::Pool6, 4).encode();
        pool.resize(HEADER_BYTES + 4 * 16, 0);
        let vip = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
        ];
        let rs = [
            0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b,
        ];
        pool[HEADER_BYTES..HEADER_BYTES + 16].copy_from_slice(&vip);
        pool[HEADER_BYTES + 16..HEADER_BYTES + 32].copy_from_slice(&rs);
        let files = TableFiles {
            conns: &conns,
            v6: Some((&slots, &pool)),
        };
        let mut got = Vec::new();
        read_table(&files, &BOOT, now, |s| got.push(s.addrs6.unwrap())).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].caddr, got[0].vaddr, got[0].daddr, got[0].laddr),
            (client, vip, rs, client)
        );
        // An index to an unwritten pool entry: refused.
        let s = &mut slots[HEADER_BYTES + SLOT6_BYTES + 18..HEADER_BYTES + SLOT6_BYTES + 20];
        s.copy_from_slice(&3u16.to_ne_bytes());
        let files = TableFiles {
            conns: &conns,
            v6: Some((&slots, &pool)),
        };
        let (_, st) = read_table(&files, &BOOT, now, |_| ()).unwrap();
        assert_eq!(st.bad, 1);
    }
}
