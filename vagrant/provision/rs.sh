#!/usr/bin/env bash
# Provisions real server N of the Vagrant lab (run by the Vagrantfile, as
# root, from the synced folder /vagrant):
#
#   rs.sh N
#
# Two units, both started at boot:
#   ferrovs-lab-rs.service     rs-up.sh N: the lab NIC's address and the LVS
#                              real-server setup, by scripts/rs-config.sh
#   ferrovs-lab-httpd.service  scripts/lab-rs-httpd.py, the namespace lab's
#                              HTTP server, on ports LAB_DR_PORT and
#                              LAB_FNAT_PORT (GET / answers "rsN")
# Its switch files live in /run/ferrovs-lab-rs: `echo 500 >
# /run/ferrovs-lab-rs/fail` makes every path but /status/ answer 500 (the
# directors' health checks then remove this server), removing it undoes that.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=rs.sh
LAB_ROOT=${LAB_ROOT:-/vagrant}
# shellcheck source=lib.sh
. "$LAB_ROOT/vagrant/provision/lib.sh"
need_root
[ $# -eq 1 ] || die "usage: $PROG N"
n=$1
case $n in 1) rip=$LAB_RS1 ;; 2) rip=$LAB_RS2 ;; 3) rip=$LAB_RS3 ;; *) die "real server number 1, 2 or 3" ;; esac

apt_install iproute2 procps ethtool curl python3 tcpdump

cat >/etc/systemd/system/ferrovs-lab-rs.service <<UNIT
[Unit]
Description=ferrovs lab: real server rs$n (scripts/rs-config.sh dr)
After=network.target
Before=ferrovs-lab-httpd.service
RequiresMountsFor=$LAB_ROOT

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$LAB_ROOT/vagrant/provision/rs-up.sh $n

[Install]
WantedBy=multi-user.target
UNIT

cat >/etc/systemd/system/ferrovs-lab-httpd.service <<UNIT
[Unit]
Description=ferrovs lab: HTTP server of rs$n (scripts/lab-rs-httpd.py)
Requires=ferrovs-lab-rs.service
After=ferrovs-lab-rs.service

[Service]
RuntimeDirectory=ferrovs-lab-rs
ExecStart=/usr/bin/python3 $LAB_ROOT/scripts/lab-rs-httpd.py --name rs$n --port $LAB_DR_PORT --port $LAB_FNAT_PORT --run-dir /run/ferrovs-lab-rs --big-mib 64
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable ferrovs-lab-rs.service ferrovs-lab-httpd.service
systemctl restart ferrovs-lab-rs.service
systemctl restart ferrovs-lab-httpd.service

# Check what the directors will rely on: the HTTP server answers on the real
# server's address on both ports, and on the VIP (DR).
for _ in $(seq 1 50); do [ -s /run/ferrovs-lab-rs/ready ] && break; sleep 0.2; done
for url in "http://$rip:$LAB_DR_PORT/" "http://$rip:$LAB_FNAT_PORT/" "http://$LAB_VIP:$LAB_DR_PORT/"; do
    got=$(curl -sS --max-time 5 "$url") || die "rs$n: no answer from $url"
    [ "$got" = "rs$n" ] || die "rs$n: $url answered '$got'"
done
log "rs$n ready: $rip (HTTP on $LAB_DR_PORT and $LAB_FNAT_PORT), VIP $LAB_VIP on lo"
