//! The gateway's configuration from any text: a configuration or an error
//! naming a line of the text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = samverka_gateway::Config::from_toml(text, std::path::Path::new("/etc/samverka"))
        && let Some(line) = e.line
    {
        assert!(line >= 1 && line <= text.matches('\n').count() + 1);
    }
});
