//! The digest card ([`digest_card`]): the findings folded during a burst, most severe first,
//! each reachable with `/finding <id>`, and how many were left out.
//!
//! Pure, like all of [`super`].

use super::{enforce_limits, severity_color, Card, Field, COLOR_NEUTRAL, FIELD_BY_SEVERITY};
use crate::discord::text::{
    code, code_inner, fit_lines, CODE_CAP, MAX_DESCRIPTION, TRUNCATION_MARKER,
};
use crate::finding::SeverityLabel;

/// The digest of findings folded during a burst: `(finding id, finding type, severity)` for
/// each listed finding, most severe first, each reachable with `/finding <id>`; `omitted` more
/// were not even listed. Every one of them is stored; only the post was saved.
pub fn digest_card(findings: &[(String, String, SeverityLabel)], omitted: usize) -> Card {
    let total = findings.len() + omitted;
    let mut sorted: Vec<&(String, String, SeverityLabel)> = findings.iter().collect();
    // Stable: equal severities keep their arrival order.
    sorted.sort_by_key(|f| std::cmp::Reverse(f.2));

    let lines: Vec<String> = sorted
        .iter()
        .map(|(id, kind, sev)| {
            format!(
                "**{}** {} · `/finding {}`",
                sev.as_str(),
                code(kind),
                code_inner(id, CODE_CAP)
            )
        })
        .collect();
    // Findings not even listed count as left out: the marker always says how many are not
    // shown, and room for it is kept when every listed line fits.
    let more = |left: usize| {
        format!(
            "{TRUNCATION_MARKER} (+{} more, see `/findings`)",
            left + omitted
        )
    };
    let reserve = if omitted > 0 {
        more(0).chars().count() + 1
    } else {
        0
    };
    let (mut description, left) = fit_lines("", &lines, MAX_DESCRIPTION - reserve, more);
    if left == 0 && omitted > 0 {
        if !description.is_empty() {
            description.push('\n');
        }
        description.push_str(&more(0));
    }

    let count = |label| findings.iter().filter(|f| f.2 == label).count();
    let mut by_severity = [
        SeverityLabel::Critical,
        SeverityLabel::High,
        SeverityLabel::Medium,
        SeverityLabel::Low,
    ]
    .iter()
    .map(|&l| format!("{} {}", l.as_str(), count(l)))
    .collect::<Vec<_>>()
    .join(" · ");
    if omitted > 0 {
        by_severity.push_str(&format!(" · {omitted} not listed"));
    }

    let color = findings
        .iter()
        .map(|f| f.2)
        .max()
        .map(severity_color)
        .unwrap_or(COLOR_NEUTRAL);
    let mut card = Card {
        title: format!("Digest: {total} findings held back during a burst"),
        url: None,
        description,
        color,
        fields: vec![Field::new(FIELD_BY_SEVERITY, by_severity, false)],
        footer: "Every finding is stored and has its request; open one with /finding <id>."
            .to_string(),
        buttons: Vec::new(),
    };
    enforce_limits(&mut card);
    card
}
