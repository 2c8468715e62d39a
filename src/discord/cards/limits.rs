//! Every card within Discord's limits: [`enforce_limits`] cuts rather than fails, and
//! [`total_chars`] counts what Discord counts towards [`MAX_TOTAL`].
//!
//! Pure, like all of [`super`].

use super::{Card, Field};
use crate::discord::text::{
    truncate, MAX_BUTTONS_PER_ROW, MAX_BUTTON_LABEL, MAX_CUSTOM_ID_LEN, MAX_DESCRIPTION,
    MAX_FIELDS, MAX_FIELD_NAME, MAX_FIELD_VALUE, MAX_FOOTER, MAX_ROWS, MAX_TITLE, MAX_TOTAL,
    MAX_URL, TRUNCATION_MARKER,
};

/// The characters Discord counts towards [`MAX_TOTAL`]: title, description, field names and
/// values, footer.
pub fn total_chars(card: &Card) -> usize {
    let n = |s: &str| s.chars().count();
    n(&card.title)
        + n(&card.description)
        + card
            .fields
            .iter()
            .map(|f| n(&f.name) + n(&f.value))
            .sum::<usize>()
        + n(&card.footer)
}

/// Brings `card` within every Discord limit, cutting rather than failing. Applied by every
/// constructor; call it again after editing a card by hand.
pub fn enforce_limits(card: &mut Card) {
    card.title = truncate(&card.title, MAX_TITLE);
    card.description = truncate(&card.description, MAX_DESCRIPTION);
    card.footer = truncate(&card.footer, MAX_FOOTER);
    if card.fields.len() > MAX_FIELDS {
        let left = card.fields.len() - (MAX_FIELDS - 1);
        card.fields.truncate(MAX_FIELDS - 1);
        card.fields.push(Field {
            name: TRUNCATION_MARKER.to_string(),
            value: format!("(+{left} more fields)"),
            inline: false,
        });
    }
    for f in &mut card.fields {
        // Discord refuses empty field names and values.
        if f.name.trim().is_empty() {
            f.name = "—".to_string();
        }
        if f.value.trim().is_empty() {
            f.value = "—".to_string();
        }
        f.name = truncate(&f.name, MAX_FIELD_NAME);
        f.value = truncate(&f.value, MAX_FIELD_VALUE);
    }
    if let Some(url) = &card.url {
        let valid = url.starts_with("https://")
            && url.len() <= MAX_URL
            && url.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            card.url = None;
        }
    }
    shrink_to_total(card);

    let mut seen = std::collections::HashSet::new();
    card.buttons.retain(|b| {
        !b.id.is_empty() && b.id.chars().count() <= MAX_CUSTOM_ID_LEN && seen.insert(b.id.clone())
    });
    card.buttons.truncate(MAX_ROWS * MAX_BUTTONS_PER_ROW);
    for b in &mut card.buttons {
        if b.label.trim().is_empty() {
            b.label = TRUNCATION_MARKER.to_string();
        }
        b.label = truncate(&b.label, MAX_BUTTON_LABEL);
    }
}

/// Which text of a card [`shrink_to_total`] cuts.
#[derive(Clone, Copy)]
enum Slot {
    Title,
    Description,
    Footer,
    Name(usize),
    Value(usize),
}

/// Cuts the longest texts first, each down to a floor that keeps it useful, until the card is
/// within [`MAX_TOTAL`]. The floors sum to far less than the limit, so it always ends.
fn shrink_to_total(card: &mut Card) {
    const FLOOR_TITLE: usize = 64;
    const FLOOR_DESCRIPTION: usize = 256;
    const FLOOR_FOOTER: usize = 64;
    const FLOOR_NAME: usize = 32;
    const FLOOR_VALUE: usize = 64;
    loop {
        let total = total_chars(card);
        if total <= MAX_TOTAL {
            return;
        }
        let excess = total - MAX_TOTAL;
        let n = |s: &str| s.chars().count();
        let mut candidates = vec![
            (Slot::Title, n(&card.title), FLOOR_TITLE),
            (Slot::Description, n(&card.description), FLOOR_DESCRIPTION),
            (Slot::Footer, n(&card.footer), FLOOR_FOOTER),
        ];
        for (i, f) in card.fields.iter().enumerate() {
            candidates.push((Slot::Name(i), n(&f.name), FLOOR_NAME));
            candidates.push((Slot::Value(i), n(&f.value), FLOOR_VALUE));
        }
        let best = candidates
            .into_iter()
            .filter(|(_, len, floor)| len > floor)
            .max_by_key(|(_, len, floor)| len - floor);
        match best {
            Some((slot, len, floor)) => {
                let target = floor.max(len.saturating_sub(excess));
                let text = match slot {
                    Slot::Title => &mut card.title,
                    Slot::Description => &mut card.description,
                    Slot::Footer => &mut card.footer,
                    Slot::Name(i) => &mut card.fields[i].name,
                    Slot::Value(i) => &mut card.fields[i].value,
                };
                *text = truncate(text, target);
            }
            None => {
                // Unreachable with the floors above (they sum to under 2,800), kept so the
                // loop provably ends.
                if card.fields.pop().is_none() {
                    card.title = truncate(&card.title, 0);
                    card.description = truncate(&card.description, MAX_TOTAL / 2);
                    card.footer = truncate(&card.footer, 0);
                    return;
                }
            }
        }
    }
}
