//! `ferrovsadm`'s changes: exact table changes, timeouts, zeroing
//! counters, a restore. (Its reads, listings and `-S`, are served from
//! the state as it stands; see `daemon.rs`.)

use super::{Core, CoreError, TableChange};
use crate::ipvs_state::{carried_dest, carried_key, Unforwardable};
use ferrovs_config::ipvs::ServiceKey;
use ferrovs_config::ipvsadm::rules::{parse_rules, Command};

/// An administrator's change.
#[derive(Clone, Debug, PartialEq)]
pub enum AdminCommand {
    Change(TableChange),
    /// `-Z [SERVICE]`: zero the counters of one service or all.
    Zero(Option<ServiceKey>),
    /// `-R`: these changes in order, up to the first refused.
    Restore(Vec<TableChange>),
}

impl AdminCommand {
    /// The change an ipvsadm command line asks for, if it asks for one
    /// (`-L` and `-S` only read); `-R` takes its rules from `stdin`.
    pub fn from_command(
        c: &Command,
        stdin: Option<&str>,
    ) -> Option<Result<AdminCommand, CoreError>> {
        match c {
            Command::Zero(k) => Some(Ok(AdminCommand::Zero(k.clone()))),
            Command::Restore => {
                let text = stdin.unwrap_or("");
                Some(parse_rules(text).map_err(CoreError::Rules).map(|cmds| {
                    AdminCommand::Restore(
                        cmds.iter().filter_map(TableChange::from_command).collect(),
                    )
                }))
            }
            other => TableChange::from_command(other).map(|t| Ok(AdminCommand::Change(t))),
        }
    }
}

impl Core {
    pub(super) fn admin(&mut self, cmd: AdminCommand) -> Result<(), CoreError> {
        match cmd {
            AdminCommand::Change(c) => self.admin_change(&c),
            AdminCommand::Zero(k) => self.state.zero(k.as_ref()).map_err(CoreError::Table),
            AdminCommand::Restore(cs) => cs.iter().try_for_each(|c| self.admin_change(c)),
        }
    }

    /// One change, published; a change the dataplane cannot forward by is
    /// refused and leaves the table as it was.
    fn admin_change(&mut self, c: &TableChange) -> Result<(), CoreError> {
        if let TableChange::SetTimeouts { tcp, tcpfin, udp } = *c {
            self.state.timeouts.set(tcp, tcpfin, udp);
            return self.publish();
        }
        let mut t = self.state.table.clone();
        c.apply(&mut t)?;
        // The snapshot skips what the dataplane cannot carry (a
        // configuration may name it); an administrator's command for it
        // is refused instead.
        let refused = t.services.iter().any(|s| match &s.key {
            ServiceKey::Addr { addr, .. } if carried_key(&s.key) => {
                s.dests.iter().any(|d| !carried_dest(addr, d))
            }
            _ => true,
        });
        if refused {
            return Err(CoreError::Unforwardable(Unforwardable::Family));
        }
        let before = self.state.table.clone();
        self.state.replace_table(t);
        if let Err(e) = self.publish() {
            self.state.replace_table(before);
            return Err(e);
        }
        Ok(())
    }
}
