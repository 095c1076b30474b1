//! A sync daemon's settings, from keepalived's `lvs_sync_daemon` (or the
//! ferrovs block's `sync_active_active`) or
//! ipvsadm's `--start-daemon`, with the kernel's defaults, and how
//! `ipvsadm -L --daemon` shows them.

use super::message::{DEFAULT_GROUP, DEFAULT_PORT, HEADER_LEN};
use ferrovs_config::ipvsadm::{DaemonOptions, SyncDaemon};
use ferrovs_config::SyncOptions;
use std::net::IpAddr;

/// IP and UDP headers: the message fits the interface MTU less these
/// (the kernel's `sync_maxlen` default, by the group's family).
const IP_UDP: u32 = 20 + 8;
const IP6_UDP: u32 = 40 + 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub ifname: String,
    pub syncid: u8,
    /// 0: the interface's MTU less the IP and UDP headers.
    pub maxlen: u16,
    /// IPv4 (224.0.0.81 by default) or IPv6 (no default: ipvsadm and
    /// keepalived name it), as the kernel takes either.
    pub group: IpAddr,
    pub port: u16,
    pub ttl: u8,
}

impl Settings {
    /// keepalived's `lvs_sync_daemon` or the ferrovs block's
    /// `sync_active_active`. Without `id`, `default_syncid`: keepalived
    /// takes the VRRP instance's VRID, active-active ipvsadm's 0.
    pub fn from_config(o: &SyncOptions, default_syncid: u8) -> Result<Settings, String> {
        Ok(Settings {
            ifname: o.interface.clone(),
            syncid: o.sync_id.unwrap_or(default_syncid),
            maxlen: o.maxlen.unwrap_or(0),
            group: multicast(o.group)?,
            port: o.port,
            ttl: o.ttl,
        })
    }

    /// ipvsadm's `--start-daemon`: the interface is needed (the kernel
    /// refuses a daemon without one).
    pub fn from_ipvsadm(o: &DaemonOptions) -> Result<Settings, String> {
        let ifname = o
            .mcast_ifn
            .clone()
            .ok_or("--start-daemon needs --mcast-interface")?;
        Ok(Settings {
            ifname,
            syncid: o.syncid.unwrap_or(0),
            maxlen: o.maxlen.unwrap_or(0),
            group: multicast(o.group.unwrap_or(IpAddr::V4(DEFAULT_GROUP)))?,
            port: o.port.unwrap_or(DEFAULT_PORT),
            ttl: o.ttl.unwrap_or(1),
        })
    }

    /// The message size for an interface of `mtu` bytes.
    pub fn effective_maxlen(&self, mtu: Option<u32>) -> usize {
        let headers = if self.group.is_ipv6() {
            IP6_UDP
        } else {
            IP_UDP
        };
        let auto = mtu.unwrap_or(1500).saturating_sub(headers) as usize;
        let m = if self.maxlen == 0 {
            auto
        } else {
            self.maxlen as usize
        };
        m.max(HEADER_LEN + super::message::ENTRY_V6_LEN)
    }

    /// As `ipvsadm -L --daemon` prints it.
    pub fn listing(&self, master: bool, mtu: Option<u32>) -> SyncDaemon {
        SyncDaemon {
            master,
            mcast_ifn: self.ifname.clone(),
            syncid: self.syncid,
            maxlen: self.effective_maxlen(mtu) as u16,
            group: Some(self.group),
            port: self.port,
            ttl: self.ttl,
        }
    }
}

fn multicast(g: IpAddr) -> Result<IpAddr, String> {
    if g.is_multicast() {
        Ok(g)
    } else {
        Err(format!("sync group {g} is not a multicast address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovs_config::ipvsadm::format_daemons;

    #[test]
    fn keepalived_defaults_take_the_vrid_and_list_as_ipvsadm() {
        let sd = SyncOptions::on("eth0".into());
        let s = Settings::from_config(&sd, 51).unwrap();
        assert_eq!(s.syncid, 51);
        assert_eq!(
            format_daemons(&[s.listing(true, Some(1500))]),
            "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        );
        let sd = SyncOptions {
            sync_id: Some(0),
            maxlen: Some(1000),
            ..sd
        };
        let s = Settings::from_config(&sd, 51).unwrap();
        assert_eq!(
            format_daemons(&[s.listing(false, Some(9000))]),
            "backup sync daemon (mcast=eth0, syncid=0, maxlen=1000, group=224.0.0.81, port=8848, ttl=1)\n"
        );
    }

    #[test]
    fn ipvsadm_needs_an_interface_and_a_multicast_group_of_either_family() {
        let mut o = DaemonOptions {
            master: true,
            ..Default::default()
        };
        assert!(Settings::from_ipvsadm(&o)
            .unwrap_err()
            .contains("--mcast-interface"));
        o.mcast_ifn = Some("eth1".into());
        let s = Settings::from_ipvsadm(&o).unwrap();
        assert_eq!(
            (s.syncid, s.port, s.ttl, s.group),
            (0, 8848, 1, IpAddr::V4(DEFAULT_GROUP))
        );
        o.group = Some("ff02::81".parse().unwrap());
        let s = Settings::from_ipvsadm(&o).unwrap();
        // IPv6's 40-byte header comes off the MTU, as the kernel counts.
        assert_eq!(
            format_daemons(&[s.listing(true, Some(1500))]),
            "master sync daemon (mcast=eth1, syncid=0, maxlen=1452, group=ff02::81, port=8848, ttl=1)\n"
        );
        o.group = Some("198.18.1.1".parse().unwrap());
        assert!(Settings::from_ipvsadm(&o)
            .unwrap_err()
            .contains("not a multicast"));
        o.group = Some("2001:db8::1".parse().unwrap());
        assert!(Settings::from_ipvsadm(&o)
            .unwrap_err()
            .contains("not a multicast"));
    }
}
