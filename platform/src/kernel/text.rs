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
        // Deprecated format characters (symmetric swapping, digit shapes, …).
        | '\u{206A}'..='\u{206F}'
        // Interlinear annotation: text that shows, or not, beside other text.
        | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// A tag character (U+E0000 block): invisible ASCII riding along in text.
fn is_tag(c: char) -> bool {
    ('\u{E0000}'..='\u{E007F}').contains(&c)
}

/// The black flag that an emoji tag sequence (🏴 + tag letters + cancel
/// tag: the flags of Scotland, Wales, England) starts with.
const TAG_SEQUENCE_BASE: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

/// Whether every tag character in `raw` belongs to a well-formed emoji tag
/// sequence: after the black flag, tag letters and digits, then the cancel tag.
fn tags_are_only_flags(raw: &str) -> bool {
    let mut in_sequence = false;
    let mut previous = None;
    for c in raw.chars() {
        if is_tag(c) {
            let continues = in_sequence || previous == Some(TAG_SEQUENCE_BASE);
            if !continues || !(c == CANCEL_TAG || ('\u{E0030}'..='\u{E007A}').contains(&c)) {
                return false;
            }
            in_sequence = c != CANCEL_TAG;
        } else if in_sequence {
            return false; // a sequence must end with its cancel tag
        }
        previous = Some(c);
    }
    !in_sequence
}

fn refuse_hidden_formatting(raw: &str) -> Result<(), Invalid> {
    if raw.chars().any(is_hidden_formatting) || !tags_are_only_flags(raw) {
        return Err(Invalid::new(
            "must not contain invisible formatting characters (bidi overrides, embeddings, isolates, zero-width spaces, tag or annotation characters)",
        ));
    }
    Ok(())
}

/// Characters that take room or none but show nothing: white space, the
/// Hangul and Braille blanks (which count as letters), and every
/// default-ignorable character (joiners, marks, variation selectors, …).
fn shows_nothing(c: char) -> bool {
    use unicode_security::GeneralSecurityProfile as _;
    c.is_whitespace()
        || matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}')
        || c.identifier_type() == Some(unicode_security::general_security_profile::IdentifierType::Default_Ignorable)
}

/// Whether `raw` shows anything at all: a title or name of only blanks
/// (spaces, a Hangul filler, joiners) is no title.
pub fn shows_something(raw: &str) -> bool {
    !raw.chars().all(shows_nothing)
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
    fn tag_annotation_and_deprecated_format_characters_are_refused() {
        for bad in [
            "title\u{E0041}\u{E0042}",     // tag letters riding along
            "\u{E0001}hello",              // the language tag
            "a\u{FFF9}b\u{FFFA}c\u{FFFB}", // interlinear annotation
            "x\u{206A}y",                  // inhibit symmetric swapping
            "\u{1F3F4}\u{E0067}\u{E0062}", // a flag sequence never ended
        ] {
            assert!(single_line(bad).is_err(), "{bad:?}");
            assert!(multi_line(bad).is_err(), "{bad:?}");
        }
        // The flag of Scotland is an emoji tag sequence, and stays.
        assert!(single_line("Tartan \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} scarf").is_ok());
    }

    #[test]
    fn blank_only_text_shows_nothing() {
        for blank in
            ["", "   ", "\u{3164}", "\u{3164} \u{3164}", "\u{115F}\u{1160}", "\u{FFA0}", "\u{2800}", "\u{200C}\u{200D}"]
        {
            assert!(!shows_something(blank), "{blank:?}");
        }
        for text in ["a", " \u{3164}x", "한국어", "👩\u{200D}💻"] {
            assert!(shows_something(text), "{text:?}");
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
