//! `ferrovsadm`: ipvsadm's command line against a running ferrovs. The
//! command line goes to the daemon as it is; the daemon parses and runs it
//! as ipvsadm would, so the output formats and error messages are one
//! implementation.

use ferrovs_controlplane::northbound::ctl::{call_and_exit, CtlRequest};
use std::io::Read;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // `-R` / `--restore` reads rules from standard input, as ipvsadm does.
    let stdin = if argv.iter().any(|a| a == "-R" || a == "--restore") {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("ferrovsadm: reading standard input: {e}");
            std::process::exit(1);
        }
        Some(s)
    } else {
        None
    };
    // ipvsadm's wording when the kernel module is absent.
    call_and_exit(
        &CtlRequest {
            argv,
            stdin,
            op: None,
        },
        |path, e| {
            format!(
                "Can't initialize ipvs: {e} ({}). Is ferrovs running?",
                path.display()
            )
        },
    )
}
