//! `chatctl`: the supervisor (issue 2/5). Not built yet; see README.md for the interim run script.
fn main() {
    eprintln!("chatctl is not implemented yet: use scripts/run-dev.sh (see README.md)");
    std::process::exit(1);
}
