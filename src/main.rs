//! The `samverka` command: parse the arguments, run the command (see
//! [`samverka::cli`]), print what it says and exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let (command, json) = samverka::cli::parse();
    let label = command.label();
    match command.run() {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}", e.report(label, json));
            e.exit_code()
        }
    }
}
