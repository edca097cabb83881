//! What free text a request may carry, the same rule for every service:
//! no control characters (NUL, escape sequences, …) in a name, title, key or
//! password, and none but tabs and line breaks in text that may span lines.
//! Postgres cannot store NUL at all; the rest would let a client write
//! terminal escapes into everyone's logs and screens.

use crate::error::Invalid;

/// One line of text: no control characters at all.
pub fn single_line(raw: &str) -> Result<&str, Invalid> {
    if raw.chars().any(char::is_control) {
        return Err(Invalid::new("must not contain control characters (such as NUL or line breaks)"));
    }
    Ok(raw)
}

/// Text that may span lines: tabs and line breaks, but no other control characters.
pub fn multi_line(raw: &str) -> Result<&str, Invalid> {
    if raw.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Invalid::new("must not contain control characters other than tabs and line breaks"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_every_script_is_welcome() {
        assert!(single_line("Ωmega кириллица 中文 🛒").is_ok());
        for bad in ["a\0b", "a\nb", "\u{1b}[2J", "x\u{7f}", "\u{85}"] {
            assert!(single_line(bad).is_err(), "{bad:?}");
        }
        assert!(multi_line("line one\r\n\tline two").is_ok());
        assert!(multi_line("a\0b").is_err());
        assert!(multi_line("\u{1b}[31m").is_err());
    }
}
