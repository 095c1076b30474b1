//! The IPVS TCP connection state machine (ip_vs_proto_tcp.c, the non-secure
//! `tcp_states` table of current kernels) and the protocol timeouts that
//! `ipvsadm --set` changes.

/// IPVS TCP states, in the kernel's order (`IP_VS_TCP_S_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

/// How many TCP states there are (their numbers are `0..TCP_STATES`).
pub const TCP_STATES: usize = 11;

const STATES: [TcpState; TCP_STATES] = [
    TcpState::None,
    TcpState::Established,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::FinWait,
    TcpState::TimeWait,
    TcpState::Close,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::Listen,
    TcpState::SynAck,
];

impl TcpState {
    pub fn from_u8(v: u8) -> TcpState {
        STATES
            .get((v & 0x0f) as usize)
            .copied()
            .unwrap_or(TcpState::Close)
    }
    /// A handshake that has not completed: what a spoofed SYN leaves
    /// behind, and what goes first when the table is full.
    #[inline(always)]
    pub fn is_half_open(self) -> bool {
        matches!(
            self,
            TcpState::None | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }
    /// The name `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

/// Which table a packet is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to real server, for modes that also see replies (NAT, FULLNAT).
    Input,
    /// Real server to client.
    Output,
    /// Client to real server for DR and TUN, which never see replies
    /// (IPVS `IP_VS_CONN_F_NOOUTPUT`).
    InputOnly,
}

use TcpState::{
    CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, SynRecv as SR,
    SynSent as SS, TimeWait as TW,
};
const CL: TcpState = TcpState::Close;

// Rows: syn, fin, ack, rst. Columns: the current state in kernel order
// NO ES SS SR FW TW CL CW LA LI SA.
const INPUT: [[TcpState; 11]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [[TcpState; 11]; 4] = [
    [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const INPUT_ONLY: [[TcpState; 11]; 4] = [
    [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The next state after a segment with `flags` in direction `dir`. The event
/// is the first of RST, SYN, FIN, ACK present; a segment with none of them
/// moves the connection to CLOSE, as IPVS does.
#[inline]
pub fn tcp_next(cur: TcpState, dir: Dir, flags: u8) -> TcpState {
    use crate::wire::l4::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
    let ev = if flags & TCP_RST != 0 {
        3
    } else if flags & TCP_SYN != 0 {
        0
    } else if flags & TCP_FIN != 0 {
        1
    } else if flags & TCP_ACK != 0 {
        2
    } else {
        return TcpState::Close;
    };
    let t = match dir {
        Dir::Input => &INPUT,
        Dir::Output => &OUTPUT,
        Dir::InputOnly => &INPUT_ONLY,
    };
    t[ev][cur as usize]
}

/// [`tcp_next`] under IPVS's `secure_tcp` rule, which the director applies
/// while its table is under pressure (see `conn::pressure`): in the modes
/// that see replies (NAT, FULLNAT), a client segment moves a half-open
/// connection to ESTABLISHED only once the real server has answered
/// (`replied`: its SYN-ACK passed the director). A spoofed SYN followed by a
/// spoofed ACK then stays half-open, and evictable. IPVS does this with a
/// second state table (`tcp_states_dos`, where the server's SYN-ACK leads to
/// SYNACK); here a flag on the entry records the reply, so a connection
/// whose SYN-ACK passed before the pressure began is not held back.
#[inline]
pub fn tcp_next_secure(cur: TcpState, dir: Dir, flags: u8, replied: bool) -> TcpState {
    let next = tcp_next(cur, dir, flags);
    if dir == Dir::Input && !replied && cur.is_half_open() && next == TcpState::Established {
        cur
    } else {
        next
    }
}

/// Protocol timeouts in seconds (IPVS defaults; `ipvsadm --set tcp tcpfin udp`
/// changes ESTABLISHED, FIN_WAIT and UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: [u32; 11],
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        let mut tcp = [0u32; 11];
        tcp[TcpState::None as usize] = 2;
        tcp[TcpState::Established as usize] = 900;
        tcp[TcpState::SynSent as usize] = 120;
        tcp[TcpState::SynRecv as usize] = 60;
        tcp[TcpState::FinWait as usize] = 120;
        tcp[TcpState::TimeWait as usize] = 120;
        tcp[TcpState::Close as usize] = 10;
        tcp[TcpState::CloseWait as usize] = 60;
        tcp[TcpState::LastAck as usize] = 30;
        tcp[TcpState::Listen as usize] = 120;
        tcp[TcpState::SynAck as usize] = 120;
        Timeouts { tcp, udp: 300 }
    }
}

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp`: zero leaves a value unchanged.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp > 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin > 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp > 0 {
            self.udp = udp;
        }
    }
    /// What `ipvsadm --timeout` prints: (tcp, tcpfin, udp).
    pub fn get(&self) -> (u32, u32, u32) {
        (
            self.tcp[TcpState::Established as usize],
            self.tcp[TcpState::FinWait as usize],
            self.udp,
        )
    }
    #[inline]
    pub fn tcp(&self, s: TcpState) -> u32 {
        self.tcp[s as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::l4::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

    #[test]
    fn nat_handshake_and_close() {
        // Client SYN, server SYN-ACK, client ACK: ESTABLISHED.
        let mut s = TcpState::None;
        s = tcp_next(s, Dir::Input, TCP_SYN);
        assert_eq!(s, TcpState::SynRecv);
        s = tcp_next(s, Dir::Output, TCP_SYN | TCP_ACK);
        assert_eq!(s, TcpState::SynRecv);
        s = tcp_next(s, Dir::Input, TCP_ACK);
        assert_eq!(s, TcpState::Established);
        // Server closes first: FIN_WAIT, then the client's FIN: TIME_WAIT.
        s = tcp_next(s, Dir::Output, TCP_FIN | TCP_ACK);
        assert_eq!(s, TcpState::FinWait);
        s = tcp_next(s, Dir::Input, TCP_FIN | TCP_ACK);
        assert_eq!(s, TcpState::TimeWait);
    }

    #[test]
    fn client_closes_first_nat() {
        let s = tcp_next(TcpState::Established, Dir::Input, TCP_FIN | TCP_ACK);
        assert_eq!(s, TcpState::CloseWait);
        let s = tcp_next(s, Dir::Output, TCP_FIN | TCP_ACK);
        assert_eq!(s, TcpState::TimeWait);
    }

    #[test]
    fn input_only_dr() {
        let mut s = tcp_next(TcpState::None, Dir::InputOnly, TCP_SYN);
        assert_eq!(s, TcpState::SynRecv);
        s = tcp_next(s, Dir::InputOnly, TCP_ACK);
        assert_eq!(s, TcpState::Established);
        s = tcp_next(s, Dir::InputOnly, TCP_FIN | TCP_ACK);
        assert_eq!(s, TcpState::FinWait);
        s = tcp_next(s, Dir::InputOnly, TCP_RST);
        assert_eq!(s, TcpState::Close);
        assert_eq!(
            tcp_next(TcpState::Established, Dir::InputOnly, 0),
            TcpState::Close
        );
    }

    #[test]
    fn secure_rule_needs_the_servers_answer() {
        // NAT under pressure: a client ACK without the server's SYN-ACK
        // leaves the entry in SYN_RECV.
        let s = tcp_next(TcpState::None, Dir::Input, TCP_SYN);
        assert_eq!(tcp_next_secure(s, Dir::Input, TCP_ACK, false), s);
        assert_eq!(
            tcp_next_secure(s, Dir::Input, TCP_ACK, true),
            TcpState::Established
        );
        // Other transitions are the plain table's.
        assert_eq!(
            tcp_next_secure(s, Dir::Input, TCP_FIN | TCP_ACK, false),
            TcpState::TimeWait
        );
        assert_eq!(
            tcp_next_secure(TcpState::Established, Dir::Input, TCP_ACK, false),
            TcpState::Established
        );
        // DR and TUN never see the answer: the rule does not apply.
        assert_eq!(
            tcp_next_secure(s, Dir::InputOnly, TCP_ACK, false),
            TcpState::Established
        );
        assert!(TcpState::SynRecv.is_half_open() && TcpState::SynAck.is_half_open());
        assert!(!TcpState::Established.is_half_open() && !TcpState::TimeWait.is_half_open());
    }

    #[test]
    fn set_timeouts() {
        let mut t = Timeouts::default();
        assert_eq!(t.get(), (900, 120, 300));
        t.set(600, 0, 60);
        assert_eq!(t.get(), (600, 120, 60));
        assert_eq!(t.tcp(TcpState::SynRecv), 60);
        assert_eq!(t.tcp(TcpState::Close), 10);
    }
}
