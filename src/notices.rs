//! Notices: what changed, broadcast to whoever shows it (the outbox edits or posts cards, the
//! request lifecycle task starts approved requests after `/resume`).
//!
//! The store remains the source of truth: a notice only says "look again". Senders are the
//! pipeline, the application layer ([`crate::actions`]), ingest and posture sync; nothing here
//! knows about Discord. Uses only tokio's broadcast channel and serde.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Something the chat adapter may want to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// A finding was stored for the first time; `request` is its new request, if any.
    FindingNew {
        finding_id: String,
        request: Option<Uuid>,
    },
    /// A known finding changed (count, time, archived); its card should be edited.
    FindingUpdated {
        finding_id: String,
        request: Option<Uuid>,
    },
    /// A request changed state (vote, execution, supersession).
    RequestChanged { request: Uuid },
    /// The Security Hub control findings of a posture group changed
    /// ([`crate::posture::GroupKey::encode`]).
    PostureChanged { group: String },
    /// `/resume` lifted the pause: every Approved request should start now (`hanko run`
    /// starts them: [`crate::actions::execute`]).
    ExecutionResumed,
    /// The CloudTrail investigation of a finding's access key changed
    /// ([`crate::actions::investigate`]): the finding's cards should be edited.
    InvestigationChanged { finding_id: String },
    /// The outbox posted the card of a finding as a message of its own (not a line of a burst
    /// digest): what follows a card, the CloudTrail investigation of its key, starts now and
    /// never delays it.
    CardPosted { finding_id: String },
}

/// A broadcast channel of [`Notice`]s. Cheap to clone; sending never blocks and never fails
/// (with no receiver, notices are dropped: the store remains the source of truth).
#[derive(Debug, Clone)]
pub struct Notices {
    tx: broadcast::Sender<Notice>,
}

impl Default for Notices {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Notices {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Notices { tx }
    }

    pub fn send(&self, notice: Notice) {
        let _ = self.tx.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
}
