//! Identity's words, free of SQL, gRPC and I/O. A [`Username`], [`Email`]
//! or [`NewPassword`] exists only if it passed its rules: `parse` is the
//! only way to make one.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use shop_platform::error::Invalid;
use unicode_normalization::UnicodeNormalization as _;
use unicode_security::MixedScript as _;

/// A user as identity keeps it (never with the password hash).
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// 1–150 characters of letters, digits and `@.+-_` (Django's username rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MAX_CHARS: usize = 150;

    /// Letters, digits and `@ . + - _`: a username's characters.
    fn is_allowed_char(c: char) -> bool {
        c.is_alphanumeric() || "@.+-_".contains(c)
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let length = raw.chars().count();
        if length == 0 {
            return Err(Invalid::new("is required"));
        }
        if length > Self::MAX_CHARS {
            return Err(Invalid::new("must be at most 150 characters"));
        }
        if !raw.chars().all(Self::is_allowed_char) {
            return Err(Invalid::new("may contain only letters, digits and @ . + - _"));
        }
        // Full-width and other compatibility forms become their plain
        // letters ("ＡＬＩＣＥ" is "ALICE"), so they meet the case-blind
        // uniqueness of the name they look like.
        let normalized: String = raw.nfkc().collect();
        if normalized.chars().any(Self::reads_as_something_else) {
            return Err(Invalid::new(
                "must not contain blank, phonetic (small capital) or deprecated letters that read as other characters",
            ));
        }
        if Self::marks_an_ascii_character(&normalized) {
            return Err(Invalid::new("must not put combining marks on Latin letters or digits"));
        }
        if !normalized.is_single_script() {
            return Err(Invalid::new("must not mix scripts (such as Latin and Cyrillic letters)"));
        }
        Ok(Self(normalized))
    }

    /// Letters (to `char::is_alphanumeric`) that a name must not hold,
    /// by their identifier type (Unicode's UTS #39): blank fillers and other
    /// default-ignorable ones (`ㅤ`, U+3164, shows as nothing), phonetic and
    /// technical letters such as small capitals (`ʀ`, `ᴛ` read as `R`,
    /// `T`), deprecated ones and those outside identifiers altogether. Whole
    /// scripts of limited use (Cherokee, say) stay allowed on their own.
    fn reads_as_something_else(c: char) -> bool {
        use unicode_security::GeneralSecurityProfile as _;
        use unicode_security::general_security_profile::IdentifierType;
        c.is_alphanumeric()
            && matches!(
                c.identifier_type(),
                Some(
                    IdentifierType::Default_Ignorable
                        | IdentifierType::Technical
                        | IdentifierType::Deprecated
                        | IdentifierType::Not_Character
                        | IdentifierType::Not_XID
                )
            )
    }

    /// Whether a combining mark sits on an ASCII letter or digit (`rooͣt`):
    /// Latin needs none that NFKC did not fold into a letter of its own
    /// (`é`), and a stacked mark makes a name read as another.
    fn marks_an_ascii_character(normalized: &str) -> bool {
        let mut previous_is_ascii = false;
        for c in normalized.chars() {
            if unicode_normalization::char::is_combining_mark(c) && previous_is_ascii {
                return true;
            }
            // A mark on a mark on ASCII is caught at the first one.
            previous_is_ascii = c.is_ascii_alphanumeric();
        }
        false
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the name looks like (Unicode's confusable skeleton, UTS #39,
    /// case folded): two names with one skeleton read alike ("aIice" and
    /// "alice", or a Cyrillic "асе" and a Latin "ace"), and only one may exist.
    pub fn skeleton(&self) -> String {
        Self::skeleton_of(&self.0)
    }

    /// The skeleton of any stored name, valid by today's rules or not.
    pub fn skeleton_of(name: &str) -> String {
        unicode_security::skeleton(name).collect::<String>().to_lowercase()
    }

    /// What the name looks like written in capitals: digits and letters
    /// that pass for capitals (`1` for `I`, `0` for `O`) meet the name they
    /// imitate here (`AL1CE` and `alice` are both `ALlCE`), where the
    /// lowercase [`Self::skeleton`] keeps them apart (`1` reads as `l`).
    /// Both must be free for a new name.
    pub fn capital_skeleton(&self) -> String {
        Self::capital_skeleton_of(&self.0)
    }

    /// [`Self::capital_skeleton`] of any stored name.
    pub fn capital_skeleton_of(name: &str) -> String {
        unicode_security::skeleton(&name.to_uppercase()).collect()
    }

    /// Whether some user could have this name, by the rules of any time
    /// (length and characters; today's script rule aside, so names
    /// registered before it can still log in).
    pub fn could_be_stored(raw: &str) -> bool {
        let length = raw.chars().count();
        (1..=Self::MAX_CHARS).contains(&length) && raw.chars().all(Self::is_allowed_char)
    }

    /// The form a login looks a name up by: the same normalization as at
    /// registration, without refusing anything (a refused name just finds
    /// no user).
    pub fn lookup_form(raw: &str) -> String {
        raw.nfkc().collect()
    }
}

/// An address of the usual `local@domain.tld` shape, at most 254 characters.
/// The domain is stored lowercased (it is case-insensitive; the local part
/// keeps its case, and uniqueness ignores case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new("is required"));
        }
        if raw.len() > 254 {
            return Err(Invalid::new("must be at most 254 characters"));
        }
        let not_valid = || Invalid::new("is not a valid email address");
        let (local, domain) = raw.rsplit_once('@').ok_or_else(not_valid)?;
        let local_is_valid = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_is_valid = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if !local_is_valid || !domain_is_valid {
            return Err(not_valid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Django's list of 20,000 common passwords, the one the old backend used.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().map(str::trim).collect());

/// A password that passed every rule of API.md. It is never logged: `Debug`
/// prints nothing of it.
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([REDACTED])")
    }
}

/// Which of the two password fields a rule failed on.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordProblem {
    Password(Invalid),
    Confirmation(Invalid),
}

impl NewPassword {
    pub const MIN_CHARS: usize = 8;
    /// Bounds hashing work per request.
    pub const MAX_CHARS: usize = 128;
    /// Django's UserAttributeSimilarityValidator threshold.
    const MAX_SIMILARITY: f64 = 0.7;

    pub fn parse(
        password: &str,
        confirmation: &str,
        username: &Username,
        email: &Email,
    ) -> Result<Self, PasswordProblem> {
        let refuse = |reason: &'static str| Err(PasswordProblem::Password(Invalid::new(reason)));
        let length = password.chars().count();
        if length < Self::MIN_CHARS {
            return refuse("must be at least 8 characters");
        }
        if length > Self::MAX_CHARS {
            return refuse("must be at most 128 characters");
        }
        if password.chars().all(|c| c.is_ascii_digit()) {
            return refuse("must not be entirely numeric");
        }
        if let Err(reason) = shop_platform::kernel::text::single_line(password) {
            return Err(PasswordProblem::Password(reason));
        }
        let lowered = password.trim().to_lowercase();
        if COMMON_PASSWORDS.contains(lowered.as_str()) {
            return refuse("is too common");
        }
        let attributes = [username.as_str(), email.as_str()];
        if attributes.iter().any(|attribute| is_too_similar(&lowered, attribute)) {
            return refuse("is too similar to the username or email");
        }
        if password != confirmation {
            return Err(PasswordProblem::Confirmation(Invalid::new("must equal password")));
        }
        Ok(Self(password.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Like Django: the password is compared with the whole attribute and with
/// each of its word parts (split on non-word characters), both lowercased.
fn is_too_similar(lowered_password: &str, attribute: &str) -> bool {
    let attribute = attribute.to_lowercase();
    let parts = attribute.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|part| !part.is_empty());
    std::iter::once(attribute.as_str())
        .chain(parts)
        .any(|part| quick_ratio(lowered_password, part) >= NewPassword::MAX_SIMILARITY)
}

/// Python's `SequenceMatcher.quick_ratio`: 2·(shared characters, counted as a
/// multiset) / (total length). An upper bound on the similarity ratio.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_default() += 1;
    }
    let mut shared = 0;
    for c in a.chars() {
        if let Some(count) = available.get_mut(&c).filter(|count| **count > 0) {
            *count -= 1;
            shared += 1;
        }
    }
    2.0 * shared as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> (Username, Email) {
        (Username::parse("ann").unwrap(), Email::parse("ann@example.com").unwrap())
    }

    fn password_problem(password: &str) -> PasswordProblem {
        let (username, email) = ann();
        NewPassword::parse(password, password, &username, &email).unwrap_err()
    }

    #[test]
    fn usernames_of_letters_digits_and_the_five_symbols_are_accepted() {
        for name in ["ann", "Ann.Lee+shop@x-y_z", "ñandú", &"a".repeat(150)] {
            assert!(Username::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn look_alike_usernames_are_normalized_refused_or_share_a_skeleton() {
        assert_eq!(Username::parse("ＡＬＩＣＥ").unwrap().as_str(), "ALICE", "full width is plain letters");
        assert!(Username::parse("\u{430}lice").is_err(), "a Cyrillic а among Latin letters");
        let alice = Username::parse("alice").unwrap().skeleton();
        assert_eq!(Username::parse("aIice").unwrap().skeleton(), alice, "capital I for l");
        assert_ne!(Username::parse("alicia").unwrap().skeleton(), alice);
        // One script throughout is fine, and its look-alikes share a skeleton.
        let cyrillic = Username::parse("\u{430}\u{441}\u{435}").unwrap();
        assert_eq!(cyrillic.skeleton(), Username::parse("ace").unwrap().skeleton());
        assert!(Username::parse("ユーザー名123").is_ok(), "Japanese scripts mix as Japanese does");
    }

    #[test]
    fn blank_phonetic_and_marked_look_alikes_are_refused() {
        for name in [
            "\u{3164}", // a Hangul filler: shows as nothing
            "ann\u{3164}",
            "\u{FFA0}",          // a half-width Hangul filler
            "\u{280}oo\u{1D1B}", // small capitals ʀooᴛ
            "roo\u{363}t",       // a combining a on an o
            "1\u{301}23",        // an accent on a digit
        ] {
            assert!(Username::parse(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn whole_scripts_stay_welcome_on_their_own() {
        for name in ["한국어", "\u{13A1}\u{13BE}\u{13BE}\u{13A2}", "café", "Đorđe", "ελληνικά", "भारत", "ภาษาไทย"]
        {
            assert!(Username::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn digits_that_read_as_capitals_meet_the_name_they_imitate() {
        let alice = Username::parse("alice").unwrap();
        let imitation = Username::parse("AL1CE").unwrap();
        assert_ne!(imitation.skeleton(), alice.skeleton(), "in lowercase, 1 reads as l");
        assert_eq!(imitation.capital_skeleton(), alice.capital_skeleton(), "in capitals, 1 reads as I");
        assert_eq!(
            Username::parse("R00T").unwrap().capital_skeleton(),
            Username::parse("root").unwrap().capital_skeleton()
        );
        assert_ne!(
            Username::parse("ali").unwrap().capital_skeleton(),
            Username::parse("all").unwrap().capital_skeleton(),
            "ALI and ALL read apart"
        );
    }

    #[test]
    fn empty_long_or_spaced_usernames_are_refused() {
        for name in ["", &"a".repeat(151), "ann lee", "ann!", "ann/lee"] {
            assert!(Username::parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn ordinary_emails_are_accepted_with_the_domain_lowercased() {
        assert_eq!(Email::parse("Ann.Lee+x@Example.COM").unwrap().as_str(), "Ann.Lee+x@example.com");
        assert!(Email::parse("a@b.co").is_ok());
    }

    #[test]
    fn malformed_emails_are_refused() {
        for email in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@@example.com",
            "ann@exa mple.com",
            "a..b@example.com",
            "ann@-example.com",
            "ann@example.c0m",
            &format!("{}@example.com", "a".repeat(250)),
        ] {
            assert!(Email::parse(email).is_err(), "{email}");
        }
    }

    #[test]
    fn a_password_of_seven_characters_is_refused() {
        assert!(matches!(password_problem("Xk9#mQ2"), PasswordProblem::Password(_)));
    }

    #[test]
    fn an_all_digit_password_is_refused() {
        assert_eq!(
            password_problem("93718264"),
            PasswordProblem::Password(Invalid::new("must not be entirely numeric"))
        );
    }

    #[test]
    fn a_common_password_is_refused_in_any_case() {
        assert_eq!(password_problem("PassWord123"), PasswordProblem::Password(Invalid::new("is too common")));
        assert_eq!(password_problem("qwertyuiop"), PasswordProblem::Password(Invalid::new("is too common")));
    }

    #[test]
    fn a_password_like_the_username_or_email_is_refused() {
        let username = Username::parse("margarethe").unwrap();
        let email = Email::parse("m.schulz@example.com").unwrap();
        for password in ["margarethe1", "Margarethe!", "schulz-example"] {
            assert!(NewPassword::parse(password, password, &username, &email).is_err(), "{password}");
        }
    }

    #[test]
    fn a_mismatched_confirmation_names_the_confirmation() {
        let (username, email) = ann();
        let problem = NewPassword::parse("tulip-Orbit-42", "tulip-orbit-42", &username, &email).unwrap_err();
        assert!(matches!(problem, PasswordProblem::Confirmation(_)));
    }

    #[test]
    fn a_strong_password_is_accepted() {
        let (username, email) = ann();
        assert!(NewPassword::parse("tulip-Orbit-42", "tulip-Orbit-42", &username, &email).is_ok());
    }

    #[test]
    fn quick_ratio_matches_python() {
        // SequenceMatcher(None, "abcd", "bcde").quick_ratio() == 0.75
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert!((quick_ratio("abc", "xyz")).abs() < 1e-9);
    }
}
