//! Text for Discord, in one place: Discord's limits, escaping of untrusted text, and cutting
//! text to a limit.
//!
//! * Limits ([`MAX_TITLE`], [`MAX_CONTENT`], [`MAX_CUSTOM_ID_LEN`], ...): what Discord refuses
//!   and serenity does not check. Discord counts characters as Unicode code points
//!   (discord-api-docs#1315), and so does every function here.
//! * Escaping: text that comes from a finding, AWS or a person (titles, names, reasons, error
//!   messages) goes through [`plain`] or [`code`] before it is shown, so a crafted tag value or
//!   reject reason cannot render a masked link, a fake mention or an unclosed code span.
//! * Cutting: [`truncate`] never splits a character and ends with a visible
//!   [`TRUNCATION_MARKER`]; [`fit_lines`] keeps whole lines and says how many it left out.
//!
//! Used by the cards, the slash command answers, the interactions and the outbox. Pure: no
//! serenity, no I/O, no other hanko module.

// Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// and the message components page).
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;
/// The sum of title, description, field names and values, and footer.
pub const MAX_TOTAL: usize = 6000;
pub const MAX_BUTTONS_PER_ROW: usize = 5;
pub const MAX_ROWS: usize = 5;
pub const MAX_BUTTON_LABEL: usize = 80;
/// Longer URLs are dropped rather than risk a refused message.
pub const MAX_URL: usize = 2048;
/// Discord's limit on a component's `custom_id`.
pub const MAX_CUSTOM_ID_LEN: usize = 100;
/// Discord's limit on a message's `content`, in characters (code points).
pub const MAX_CONTENT: usize = 2000;
/// Discord's limit on autocomplete choices.
pub const MAX_CHOICES: usize = 25;
/// Discord's limit on a choice's name and (string) value.
pub const MAX_CHOICE_LEN: usize = 100;

/// Ends every cut text.
pub const TRUNCATION_MARKER: &str = "…";

/// A value shown in a code span by [`code`] is cut to this many characters before it is
/// wrapped, so a huge id never leaves a code span open.
pub const CODE_CAP: usize = 120;

/// Cuts `s` to at most `max` characters (code points, as Discord counts), ending with
/// [`TRUNCATION_MARKER`] when something was cut. Never splits a UTF-8 sequence.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push_str(TRUNCATION_MARKER);
    out
}

/// Untrusted text for one line: control characters become spaces, and markdown, masked-link,
/// mention and timestamp markup is neutralised with backslashes (`\[x\](y)` is not a link,
/// `\<@1\>` is not a mention). `#` and `-` only matter at the start of a line.
pub fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' | '>' | '@' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '-' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// [`plain`], cut to `max` characters of the original first (escapes are not counted).
pub fn plain_capped(s: &str, max: usize) -> String {
    plain(&truncate(s, max))
}

/// An identifier in a code span: cut to [`CODE_CAP`] characters first, backticks and control
/// characters replaced, so the span always closes.
pub fn code(s: &str) -> String {
    code_capped(s, CODE_CAP)
}

/// [`code`], cut to `max` characters.
pub fn code_capped(s: &str, max: usize) -> String {
    format!("`{}`", code_inner(s, max))
}

/// What goes between the backticks of [`code_capped`]; `?` when nothing would show. For a
/// code span that holds more than the value (`` `/finding <id>` ``).
pub fn code_inner(s: &str, max: usize) -> String {
    let inner: String = truncate(s, max)
        .chars()
        .map(|c| match c {
            '`' => 'ˋ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if inner.trim().is_empty() {
        "?".to_string()
    } else {
        inner
    }
}

/// Joins `header` (left out when empty) and as many whole `lines` as fit in `max` characters.
/// When they do not all fit, the last line is `more(n)`, `n` being how many lines were left
/// out, and `n` is returned too. A single line longer than a third of `max` is cut, so that
/// one monster cannot hide all the others. The result never exceeds `max` characters.
pub fn fit_lines(
    header: &str,
    lines: &[String],
    max: usize,
    more: impl Fn(usize) -> String,
) -> (String, usize) {
    let len = |s: &str| s.chars().count();
    let line_cap = (max / 3).max(1);
    let lines: Vec<String> = lines.iter().map(|l| truncate(l, line_cap)).collect();
    let header = truncate(header, max);
    // A line is preceded by a newline unless it is the very first text.
    let sep = |kept: usize| usize::from(!header.is_empty() || kept > 0);

    let mut all = header.clone();
    for (i, line) in lines.iter().enumerate() {
        if sep(i) == 1 {
            all.push('\n');
        }
        all.push_str(line);
    }
    if len(&all) <= max {
        return (all, 0);
    }

    let mut out = header.clone();
    let mut used = len(&out);
    let mut kept = 0;
    for line in &lines {
        let sep = sep(kept);
        // Room for this line, and for the marker of what would still be left after it.
        let marker = len(&more(lines.len() - kept - 1)) + 1;
        if used + sep + len(line) + marker > max {
            break;
        }
        if sep == 1 {
            out.push('\n');
        }
        out.push_str(line);
        used += sep + len(line);
        kept += 1;
    }
    let left = lines.len() - kept;
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&more(left));
    (truncate(&out, max), left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        let table = [
            ("hello", 10, "hello"),
            ("hello", 5, "hello"),
            ("hello", 4, "hel…"),
            ("hello", 1, "…"),
            ("hello", 0, ""),
            ("🦀🦀🦀🦀", 3, "🦀🦀…"),
            ("é🦀あ", 2, "é…"),
        ];
        for (s, max, want) in table {
            assert_eq!(truncate(s, max), want, "{s} {max}");
        }
        let cut = truncate(&"🦀".repeat(10_000), MAX_FIELD_VALUE);
        assert_eq!(cut.chars().count(), MAX_FIELD_VALUE);
        assert_eq!(
            cut.len(),
            4 * (MAX_FIELD_VALUE - 1) + TRUNCATION_MARKER.len()
        );
    }

    #[test]
    fn escaping_neutralises_markup() {
        assert_eq!(plain("@everyone"), "\\@everyone");
        assert_eq!(plain("[x](http://e)"), "\\[x\\](http://e)");
        assert_eq!(plain("<@123>"), "\\<\\@123\\>");
        assert_eq!(plain("# big"), "\\# big");
        assert_eq!(plain("- item"), "\\- item");
        assert_eq!(plain("a-b #c"), "a-b #c");
        assert_eq!(plain("a\nb"), "a b");
        assert_eq!(plain("a\nb\tc"), "a b c");
        assert_eq!(plain_capped("**bold**", 4), "\\*\\*b…");
        assert_eq!(code("a`b"), "`aˋb`");
        assert_eq!(code(""), "`?`");
        assert_eq!(code(" \n"), "`?`");
        assert_eq!(code_capped("abcdef", 4), "`abc…`");
        assert_eq!(code(&"x".repeat(500)).chars().count(), CODE_CAP + 2);
        assert_eq!(code_inner("a\nb", 10), "a b");
    }

    #[test]
    fn fit_lines_keeps_whole_lines_and_says_how_many_are_left() {
        let lines: Vec<String> = (0..10).map(|i| format!("line {i:02}")).collect();
        let more = |n: usize| format!("+{n} more");
        let (all, left) = fit_lines("head", &lines, 2000, more);
        assert_eq!(left, 0);
        assert_eq!(all.lines().count(), 11);
        // "head" + 3 lines of 7 = 4 + 3*8 = 28, plus "\n+7 more" = 8 -> 36 of 39.
        let (some, left) = fit_lines("head", &lines, 39, more);
        assert_eq!(left, 7);
        assert_eq!(some, "head\nline 00\nline 01\nline 02\n+7 more");
        // Without a header the first line has no newline before it.
        let (some, left) = fit_lines("", &lines, 39, more);
        assert_eq!(left, 6);
        assert_eq!(some, "line 00\nline 01\nline 02\nline 03\n+6 more");
        for header in ["", "head"] {
            for max in 0..60 {
                let (t, left) = fit_lines(header, &lines, max, more);
                assert!(t.chars().count() <= max, "{max}: {t:?}");
                assert!(left <= lines.len());
            }
        }
    }

    #[test]
    fn fit_lines_shows_everything_that_fits_even_without_room_for_a_marker() {
        // All of it fits in 15 characters; a marker would not: nothing is left out.
        let lines = vec!["a".to_string(), "b".to_string()];
        let (t, left) = fit_lines("header", &lines, 10, |n| format!("… {n} more not shown"));
        assert_eq!((t.as_str(), left), ("header\na\nb", 0));
    }

    #[test]
    fn fit_lines_cuts_one_monster_line_so_the_others_still_show() {
        let lines = vec!["x".repeat(5000), "small".to_string(), "tiny".to_string()];
        let (t, left) = fit_lines("", &lines, 300, |n| format!("+{n} more"));
        assert_eq!(left, 0, "{t}");
        let first = t.lines().next().unwrap_or_default();
        assert_eq!(first.chars().count(), 100);
        assert!(first.ends_with(TRUNCATION_MARKER));
        assert!(t.ends_with("\nsmall\ntiny"));
    }

    #[test]
    fn fit_lines_with_empty_lines_keeps_the_line_structure() {
        let lines = vec![String::new(), "b".to_string()];
        assert_eq!(fit_lines("", &lines, 100, |_| String::new()).0, "\nb");
        assert_eq!(fit_lines("h", &lines, 100, |_| String::new()).0, "h\n\nb");
    }
}
