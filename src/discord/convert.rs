//! The thin edge between plain [`Card`]s and serenity 0.12's builders.
//!
//! No decision is made here: the card already holds the final text, within Discord's limits
//! ([`super::cards::enforce_limits`], [`super::text`]), and this module only maps it field by
//! field. It uses serenity, the cards and the text limits; it must never import the AWS SDK
//! or sled, nor render text itself.

use serenity::builder::{CreateActionRow, CreateButton, CreateEmbed, CreateEmbedFooter};
use serenity::model::application::ButtonStyle as SerenityButtonStyle;

use super::cards::{ButtonStyle, Card};
use super::text::{MAX_BUTTONS_PER_ROW, MAX_ROWS};

/// The card's embed. Empty texts are left out (Discord refuses empty strings where it wants
/// text).
pub fn to_embed(card: &Card) -> CreateEmbed {
    let mut embed = CreateEmbed::new().colour(card.color);
    if !card.title.is_empty() {
        embed = embed.title(&card.title);
    }
    if let Some(url) = &card.url {
        embed = embed.url(url);
    }
    if !card.description.is_empty() {
        embed = embed.description(&card.description);
    }
    embed = embed.fields(
        card.fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str(), f.inline)),
    );
    if !card.footer.is_empty() {
        embed = embed.footer(CreateEmbedFooter::new(&card.footer));
    }
    embed
}

/// The card's buttons, five to a row, at most five rows. A card without buttons gets no row
/// at all (editing a message with an empty list removes its old buttons).
pub fn to_components(card: &Card) -> Vec<CreateActionRow> {
    card.buttons
        .chunks(MAX_BUTTONS_PER_ROW)
        .take(MAX_ROWS)
        .map(|row| {
            CreateActionRow::Buttons(
                row.iter()
                    .map(|b| {
                        CreateButton::new(&b.id)
                            .label(&b.label)
                            .style(style(b.style))
                            .disabled(b.disabled)
                    })
                    .collect(),
            )
        })
        .collect()
}

fn style(s: ButtonStyle) -> SerenityButtonStyle {
    match s {
        ButtonStyle::Primary => SerenityButtonStyle::Primary,
        ButtonStyle::Success => SerenityButtonStyle::Success,
        ButtonStyle::Danger => SerenityButtonStyle::Danger,
        ButtonStyle::Secondary => SerenityButtonStyle::Secondary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::cards::{Button, Field};
    use serde_json::json;

    fn card(buttons: usize) -> Card {
        Card {
            title: "Recon:IAMUser/MaliciousIPCaller".into(),
            url: Some("https://us-east-1.console.aws.amazon.com/guardduty/home".into()),
            description: "desc".into(),
            color: 0xD13212,
            fields: vec![Field {
                name: "Severity".into(),
                value: "High 8.0".into(),
                inline: true,
            }],
            footer: "finding f1".into(),
            buttons: (0..buttons)
                .map(|i| Button {
                    id: format!("id{i}"),
                    label: format!("B{i}"),
                    style: if i == 0 {
                        ButtonStyle::Success
                    } else {
                        ButtonStyle::Danger
                    },
                    disabled: i == 1,
                })
                .collect(),
        }
    }

    #[test]
    fn embed_carries_every_part_of_the_card() {
        let v = serde_json::to_value(to_embed(&card(0))).unwrap();
        assert_eq!(v["title"], "Recon:IAMUser/MaliciousIPCaller");
        assert_eq!(
            v["url"],
            "https://us-east-1.console.aws.amazon.com/guardduty/home"
        );
        assert_eq!(v["description"], "desc");
        assert_eq!(v["color"], 0xD13212);
        assert_eq!(
            v["fields"],
            json!([{"name": "Severity", "value": "High 8.0", "inline": true}])
        );
        assert_eq!(v["footer"]["text"], "finding f1");
    }

    #[test]
    fn empty_texts_are_left_out() {
        let mut c = card(0);
        c.title.clear();
        c.description.clear();
        c.footer.clear();
        c.url = None;
        let v = serde_json::to_value(to_embed(&c)).unwrap();
        for key in ["title", "description", "footer", "url"] {
            assert!(v.get(key).is_none(), "{key}: {v}");
        }
    }

    #[test]
    fn buttons_go_five_to_a_row() {
        let table = [
            (0, vec![]),
            (3, vec![3]),
            (5, vec![5]),
            (7, vec![5, 2]),
            (25, vec![5; 5]),
        ];
        for (n, want) in table {
            let rows = serde_json::to_value(to_components(&card(n))).unwrap();
            let got: Vec<usize> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    assert_eq!(r["type"], 1, "action row");
                    r["components"].as_array().unwrap().len()
                })
                .collect();
            assert_eq!(got, want, "{n} buttons");
        }
        let rows = serde_json::to_value(to_components(&card(2))).unwrap();
        let first = &rows[0]["components"][0];
        assert_eq!(first["custom_id"], "id0");
        assert_eq!(first["label"], "B0");
        assert_eq!(first["style"], 3, "Success");
        assert_eq!(first["disabled"], false);
        assert_eq!(rows[0]["components"][1]["style"], 4, "Danger");
        assert_eq!(rows[0]["components"][1]["disabled"], true);
    }
}
