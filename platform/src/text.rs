//! What free text a request may carry, the same rule for every service:
//! no control characters (NUL, escape sequences, …) in a name, title, key or
//! password, and none but tabs and line breaks in text that may span lines.
//! Postgres cannot store NUL at all; the rest would let a client write
//! terminal escapes into everyone's logs and screens. Nor may text carry
//! the invisible characters that make it read other than it is: bidi
//! embeddings, overrides and isolates (a title shown backwards) and
//! zero-width spaces (two names that look alike). What languages need stays:
//! the zero-width joiner and non-joiner (Persian, Indic scripts, emoji) and
//! the left-to-right and right-to-left marks.

use crate::error::Invalid;

/// Characters that change how text reads without being seen.
fn is_hidden_formatting(c: char) -> bool {
    matches!(
        c,
        // Bidi embeddings and overrides (LRE RLE PDF LRO RLO), isolates (LRI RLI FSI PDI).
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        // Zero-width space, word joiner and invisible operators, BOM, Mongolian vowel separator.
        | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}'
    )
}

fn refuse_hidden_formatting(raw: &str) -> Result<(), Invalid> {
    if raw.chars().any(is_hidden_formatting) {
        return Err(Invalid::new(
            "must not contain invisible formatting characters (bidi overrides, embeddings, isolates or zero-width spaces)",
        ));
    }
    Ok(())
}

/// One line of text: no control characters at all.
pub fn single_line(raw: &str) -> Result<&str, Invalid> {
    if raw.chars().any(char::is_control) {
        return Err(Invalid::new("must not contain control characters (such as NUL or line breaks)"));
    }
    refuse_hidden_formatting(raw)?;
    Ok(raw)
}

/// Text that may span lines: tabs and line breaks, but no other control characters.
pub fn multi_line(raw: &str) -> Result<&str, Invalid> {
    if raw.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Invalid::new("must not contain control characters other than tabs and line breaks"));
    }
    refuse_hidden_formatting(raw)?;
    Ok(raw)
}

/// Longest part of a client's value an error message repeats.
const ECHO_CHARS: usize = 40;

/// A client's value as an error message repeats it: quoted, and cut to its
/// first few characters. An answer's status travels in its HTTP/2 headers,
/// so a message that repeated a huge value whole would make the client pay
/// nothing and the connection carrying the answer pay everything.
pub fn echo(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(ECHO_CHARS).collect();
    match chars.count() {
        0 => format!("{head:?}"),
        more => format!("{head:?}… ({} characters)", ECHO_CHARS + more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_formatting_is_refused_and_what_languages_need_stays() {
        for bad in ["abc\u{202E}txt.exe", "a\u{2066}b\u{2069}", "ali\u{200B}ce", "\u{FEFF}title", "x\u{2060}y"] {
            assert!(single_line(bad).is_err(), "{bad:?}");
            assert!(multi_line(bad).is_err(), "{bad:?}");
        }
        // ZWNJ in Persian, ZWJ in an emoji sequence, RLM in mixed text.
        for good in ["می\u{200C}خواهم", "👩\u{200D}💻", "שלום\u{200F} 2024", "Ωmega"] {
            assert!(single_line(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn an_echoed_value_is_quoted_and_cut_short() {
        assert_eq!(echo("price"), "\"price\"");
        let long = "a".repeat(70_000);
        let echoed = echo(&long);
        assert!(echoed.len() < 80, "{echoed}");
        assert!(echoed.ends_with("… (70000 characters)"), "{echoed}");
        assert!(echo(&"é".repeat(41)).ends_with("(41 characters)"));
    }

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
