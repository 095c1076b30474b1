fn main() {
    eprintln!("ferrovs: no subcommands yet");
    std::process::exit(2);
}
