//! What the kernel knows about the director's interfaces: MAC, MTU, IPv4
//! addresses and routes, read once at start and on reload through
//! iproute2's JSON output (`ip -j`), which every director has.

use ferrovs_dataplane::route::Route;
use ferrovs_dataplane::snapshot::PortConf;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::process::Command;

#[derive(Deserialize)]
struct Link {
    ifname: String,
    mtu: Option<u32>,
    address: Option<String>,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    family: String,
    local: String,
    prefixlen: u8,
}

#[derive(Deserialize)]
struct RouteJson {
    dst: String,
    gateway: Option<String>,
    dev: Option<String>,
}

fn ip_json(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip(8): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}

/// The port description of one interface.
pub fn port(ifname: &str) -> Result<PortConf, String> {
    // Without -4: with it, iproute2 leaves out the link address.
    let j = ip_json(&["addr", "show", "dev", ifname])?;
    port_from_json(ifname, &j)
}

fn port_from_json(ifname: &str, j: &str) -> Result<PortConf, String> {
    let links: Vec<Link> = serde_json::from_str(j).map_err(|e| format!("ip addr output: {e}"))?;
    let l = links
        .into_iter()
        .find(|l| l.ifname == ifname)
        .ok_or_else(|| format!("no interface {ifname}"))?;
    let mac = l
        .address
        .as_deref()
        .and_then(parse_mac)
        .ok_or_else(|| format!("{ifname} has no MAC address"))?;
    let addrs = l
        .addr_info
        .iter()
        .filter(|a| a.family == "inet")
        .filter_map(|a| a.local.parse::<Ipv4Addr>().ok().map(|ip| (ip, a.prefixlen)))
        .collect();
    Ok(PortConf {
        name: ifname.to_string(),
        mac,
        addrs,
        mtu: l.mtu.unwrap_or(1500).min(65535) as u16,
    })
}

/// Gateway routes of the main table through the given ports (connected
/// routes come from the ports' own addresses).
pub fn routes(ports: &[PortConf]) -> Result<Vec<Route>, String> {
    let j = ip_json(&["-4", "route", "show", "table", "main"])?;
    routes_from_json(ports, &j)
}

fn routes_from_json(ports: &[PortConf], j: &str) -> Result<Vec<Route>, String> {
    let rs: Vec<RouteJson> =
        serde_json::from_str(j).map_err(|e| format!("ip route output: {e}"))?;
    let mut out = Vec::new();
    for r in rs {
        let (Some(gw), Some(dev)) = (r.gateway, r.dev) else {
            continue;
        };
        let Some(port) = ports.iter().position(|p| p.name == dev) else {
            continue;
        };
        let Ok(via) = gw.parse::<Ipv4Addr>() else {
            continue;
        };
        let (prefix, len) = if r.dst == "default" {
            (Ipv4Addr::UNSPECIFIED, 0)
        } else {
            let (a, l) = r.dst.split_once('/').unwrap_or((&r.dst, "32"));
            match (a.parse::<Ipv4Addr>(), l.parse::<u8>()) {
                (Ok(a), Ok(l)) if l <= 32 => (a, l),
                _ => continue,
            }
        };
        out.push(Route {
            prefix,
            len,
            port: port as u16,
            via: Some(via),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let j = r#"[{"ifindex":5,"ifname":"veth0","flags":["UP"],"mtu":1500,"address":"02:00:00:00:00:01",
            "addr_info":[{"family":"inet","local":"198.18.0.1","prefixlen":24,"scope":"global"}]}]"#;
        let p = port_from_json("veth0", j).unwrap();
        assert_eq!(p.mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.addrs, vec![(Ipv4Addr::new(198, 18, 0, 1), 24)]);
        let r = r#"[{"dst":"default","gateway":"198.18.0.254","dev":"veth0"},
                    {"dst":"198.19.0.0/16","gateway":"198.18.0.253","dev":"veth0"},
                    {"dst":"198.18.0.0/24","dev":"veth0","protocol":"kernel","scope":"link"},
                    {"dst":"default","gateway":"198.18.9.1","dev":"other"}]"#;
        let rs = routes_from_json(&[p], r).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].via, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(
            (rs[1].prefix, rs[1].len),
            (Ipv4Addr::new(198, 19, 0, 0), 16)
        );
        assert!(port_from_json("nope", j).is_err());
    }
}
