//! Requests: creation (with its `RequestProposed` event), reads by id, finding and state,
//! votes and the transitions they cause, compare-and-swap transitions, updates, expiry, and
//! the execution claim ([`Store::start_execution`]). Each change commits with its audit event.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::approval::{
    self, Decided, Policy, Refusal, Request, RequestKind, RequestState, VoteInput,
};
use crate::audit::{Actor, AuditEvent, EventKind, NewEvent};
use crate::finding::Finding;

use super::{
    abort, decision_name, event_for_request, request_key_name, requests_by_finding_prefix,
    requests_by_state_prefix, uuid_at, vote_event, ExecutionStart, StartRefusal, Store, StoreError,
    StoredFinding, TxError, TxResult, VoteAbort, TREE_FINDINGS, TREE_REQUESTS_BY_FINDING,
    TREE_REQUESTS_BY_STATE,
};

impl Store {
    /// Stores a new request with its `RequestProposed` (or `RevertProposed`) event; flushes.
    pub fn create_request(
        &self,
        req: &Request,
        now: DateTime<Utc>,
    ) -> Result<AuditEvent, StoreError> {
        let event = self.create_request_deferred(req, now)?;
        self.flush()?;
        Ok(event)
    }

    /// [`Store::create_request`] without the flush, for callers that store many findings and
    /// flush once before they acknowledge them (ingest).
    pub fn create_request_deferred(
        &self,
        req: &Request,
        now: DateTime<Utc>,
    ) -> Result<AuditEvent, StoreError> {
        self.transact(|tx| tx.insert_request(req, now))
    }

    pub fn get_request(&self, id: Uuid) -> Result<Option<Request>, StoreError> {
        self.get(&self.inner.trees.requests, id.as_bytes(), || {
            request_key_name(id)
        })
    }

    /// Every request for a finding, oldest first.
    pub fn requests_for_finding(&self, finding_id: &str) -> Result<Vec<Request>, StoreError> {
        let prefix = requests_by_finding_prefix(finding_id);
        let mut out = Vec::new();
        for item in self.inner.trees.requests_by_finding.scan_prefix(&prefix) {
            let (key, _) = item?;
            if key.len() != prefix.len() + 8 + 16 {
                continue; // another finding whose id starts with this one and a 0 byte
            }
            let id = uuid_at(&key, prefix.len() + 8);
            let req = self.get_request(id)?.ok_or_else(|| StoreError::Corrupt {
                key: format!("{TREE_REQUESTS_BY_FINDING}/{finding_id}/{id}"),
                message: "indexed request is missing".into(),
            })?;
            if req.finding_id == finding_id {
                out.push(req);
            }
        }
        Ok(out)
    }

    /// Every request in one of `states`, oldest first.
    pub fn requests_in_states(&self, states: &[RequestState]) -> Result<Vec<Request>, StoreError> {
        let mut out: Vec<Request> = Vec::new();
        self.each_request_in_states(states, |req| {
            out.push(req);
            Ok(())
        })?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Calls `f` with every request in `states`, one at a time, in index order (not by
    /// creation), without holding them all: for callers that keep only a little of each (a
    /// poll that needs the finding ids of tens of thousands of pending requests).
    pub fn each_request_in_states(
        &self,
        states: &[RequestState],
        mut f: impl FnMut(Request) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut seen = Vec::new();
        for &state in states {
            if seen.contains(&state) {
                continue;
            }
            seen.push(state);
            let prefix = requests_by_state_prefix(state);
            for item in self.inner.trees.requests_by_state.scan_prefix(&prefix) {
                let (key, _) = item?;
                if key.len() != prefix.len() + 16 {
                    return Err(StoreError::Corrupt {
                        key: format!("{TREE_REQUESTS_BY_STATE}/{state}"),
                        message: format!("index key of {} bytes", key.len()),
                    });
                }
                let id = uuid_at(&key, prefix.len());
                let req = self.get_request(id)?.ok_or_else(|| StoreError::Corrupt {
                    key: format!("{TREE_REQUESTS_BY_STATE}/{state}/{id}"),
                    message: "indexed request is missing".into(),
                })?;
                if req.state != state {
                    return Err(StoreError::Corrupt {
                        key: format!("{TREE_REQUESTS_BY_STATE}/{state}/{id}"),
                        message: format!("indexed as {state} but the request is {}", req.state),
                    });
                }
                f(req)?;
            }
        }
        Ok(())
    }

    /// How many requests are in each state (every state listed, zeros included). Walks only
    /// the state index's keys, no request is decoded: cheap enough for every metrics scrape.
    pub fn request_counts(&self) -> Result<Vec<(RequestState, u64)>, StoreError> {
        let mut out = Vec::with_capacity(RequestState::ALL.len());
        for state in RequestState::ALL {
            let mut n = 0;
            for item in self
                .inner
                .trees
                .requests_by_state
                .scan_prefix(requests_by_state_prefix(state))
            {
                item?;
                n += 1;
            }
            out.push((state, n));
        }
        Ok(out)
    }

    /// Applies a vote in one transaction: reads the request, runs [`approval::decide`],
    /// writes the request, its state index and the audit event (`VoteRecorded`,
    /// `ApprovalGranted` or `RequestRejected`). A refused vote changes nothing but is audited
    /// as `VoteRefused`. Flushes before returning, so an approval is durable before anyone is
    /// told about it.
    pub fn vote(
        &self,
        policy: &Policy,
        request_id: Uuid,
        vote: &VoteInput,
        now: DateTime<Utc>,
    ) -> Result<Result<Decided, Refusal>, StoreError> {
        let answer = self.vote_unflushed(policy, request_id, vote, now)?;
        self.flush()?;
        Ok(answer)
    }

    /// [`Store::vote`] without its flush, for a caller that flushes before it tells anyone
    /// about the vote and whose run of an approved request makes no mutating call before a
    /// flush of its own: the engine's first step record (`Captured`) is flushed before its
    /// first change, and a flush makes every earlier write durable. A crash before either
    /// flush loses the vote, and nothing was changed or shown on its strength.
    pub fn vote_unflushed(
        &self,
        policy: &Policy,
        request_id: Uuid,
        vote: &VoteInput,
        now: DateTime<Utc>,
    ) -> Result<Result<Decided, Refusal>, StoreError> {
        let result = self.transact(|tx| -> TxResult<Decided, VoteAbort> {
            let Some(request) = tx.get_request(request_id)? else {
                return abort(StoreError::NotFound {
                    what: format!("request {request_id}"),
                });
            };
            let decided = match approval::decide(policy, &request, vote, now) {
                Ok(decided) => decided,
                Err(refusal) => {
                    return Err(TxError::Abort(VoteAbort::Refused {
                        refusal,
                        finding_id: request.finding_id.clone(),
                    }))
                }
            };
            tx.put_request(&decided.request, Some(&request))?;
            tx.append(vote_event(&decided, vote, now))?;
            Ok(decided)
        });
        let answer = match result {
            Ok(decided) => Ok(decided),
            Err(VoteAbort::Store(e)) => return Err(e),
            Err(VoteAbort::Refused {
                refusal,
                finding_id,
            }) => {
                let event = NewEvent::new(now, vote.voter.actor.clone(), EventKind::VoteRefused)
                    .finding(finding_id)
                    .request(request_id)
                    .detail(serde_json::json!({
                        "code": refusal.code(),
                        "message": refusal.to_string(),
                        "decision": decision_name(&vote.decision),
                        "plan_hash": vote.plan_hash,
                    }));
                self.append_audit(event)?;
                Err(refusal)
            }
        };
        Ok(answer)
    }

    /// Moves a request from `from` to `to` (compare-and-swap on its state) with its audit
    /// event, in one transaction; flushes. [`StoreError::Conflict`] when the request is not
    /// in `from`; [`StoreError::InvalidTransition`] for a move [`approval::can_transition`]
    /// refuses.
    pub fn transition(
        &self,
        id: Uuid,
        from: RequestState,
        to: RequestState,
        ev: NewEvent,
    ) -> Result<Request, StoreError> {
        if !approval::can_transition(from, to) {
            return Err(StoreError::InvalidTransition {
                request_id: id,
                from,
                to,
            });
        }
        let request = self.transact(|tx| {
            let Some(current) = tx.get_request(id)? else {
                return abort(StoreError::NotFound {
                    what: format!("request {id}"),
                });
            };
            if current.state != from {
                return abort(StoreError::Conflict {
                    request_id: id,
                    expected: from,
                    found: current.state,
                });
            }
            let mut next = current.clone();
            next.state = to;
            if from == RequestState::Pending && next.decided_at.is_none() {
                next.decided_at = Some(ev.at);
            }
            tx.put_request(&next, Some(&current))?;
            tx.append(event_for_request(ev.clone(), &next))?;
            Ok(next)
        })?;
        self.flush()?;
        Ok(request)
    }

    /// Replaces a request if its stored state is still `expected` (compare-and-swap), with an
    /// optional audit event; flushes. For fields such as `override_evidence`, or a state
    /// change that comes with other edits (supersession).
    pub fn update_request(
        &self,
        req: &Request,
        expected: RequestState,
        ev: Option<NewEvent>,
    ) -> Result<(), StoreError> {
        if req.state != expected && !approval::can_transition(expected, req.state) {
            return Err(StoreError::InvalidTransition {
                request_id: req.id,
                from: expected,
                to: req.state,
            });
        }
        self.transact(|tx| {
            let Some(current) = tx.get_request(req.id)? else {
                return abort(StoreError::NotFound {
                    what: format!("request {}", req.id),
                });
            };
            if current.state != expected {
                return abort(StoreError::Conflict {
                    request_id: req.id,
                    expected,
                    found: current.state,
                });
            }
            tx.put_request(req, Some(&current))?;
            if let Some(ev) = &ev {
                tx.append(event_for_request(ev.clone(), req))?;
            }
            Ok(())
        })?;
        self.flush()
    }

    /// Expires a Pending request whose `expires_at` has passed ([`approval::expire`]), with its
    /// `RequestExpired` event, in one transaction; flushes. `Ok(None)` when it is not due, or no
    /// longer Pending (a vote or another sweep got there first): nothing is written then.
    pub fn expire_request(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Request>, StoreError> {
        let expired = self.transact(|tx| {
            let Some(current) = tx.get_request(id)? else {
                return abort(StoreError::NotFound {
                    what: format!("request {id}"),
                });
            };
            let Some(next) = approval::expire(&current, now) else {
                return Ok(None);
            };
            tx.put_request(&next, Some(&current))?;
            tx.append(
                NewEvent::new(now, Actor::System, EventKind::RequestExpired)
                    .finding(next.finding_id.clone())
                    .request(next.id)
                    .detail(serde_json::json!({
                        "code": "ttl_elapsed",
                        "reason": "not approved before it expired",
                        "expires_at": current.expires_at,
                        "approvals": current.approvers().len(),
                        "plan_hash": current.plan.plan_hash,
                    })),
            )?;
            Ok(Some(next))
        })?;
        if expired.is_some() {
            self.flush()?;
        }
        Ok(expired)
    }

    /// Moves an Approved request to Executing with its `started` event, in one transaction,
    /// after `check` looked at the request and its stored finding (`None` for a request whose
    /// subject is not a stored finding, such as a posture group). When `check` refuses, the
    /// request moves to the refusal's state instead, with its [`approval::Closure`] and event,
    /// in the same transaction. A refusal is flushed; a start is durable at the next flush,
    /// which comes before any mutating call (the first step's `Captured` record flushes, and
    /// everything written before it with it): a crash before then leaves the request Approved,
    /// and nothing has been done to it, so it simply starts again. This keeps an fsync off the
    /// path from the approval to the first AWS call. [`StoreError::Conflict`] when the request
    /// is not Approved (another run started it first).
    ///
    /// `check` runs inside the transaction and may run more than once: it must only compute
    /// from its arguments (and values captured before, such as `now`).
    pub fn start_execution(
        &self,
        id: Uuid,
        started: NewEvent,
        check: impl Fn(&Request, Option<&Finding>) -> Option<StartRefusal>,
    ) -> Result<ExecutionStart, StoreError> {
        let start = self.transact(|tx| {
            let Some(current) = tx.get_request(id)? else {
                return abort(StoreError::NotFound {
                    what: format!("request {id}"),
                });
            };
            if current.state != RequestState::Approved {
                return abort(StoreError::Conflict {
                    request_id: id,
                    expected: RequestState::Approved,
                    found: current.state,
                });
            }
            let stored: Option<StoredFinding> =
                tx.get(tx.findings, current.finding_id.as_bytes(), || {
                    format!("{TREE_FINDINGS}/{}", current.finding_id)
                })?;
            let mut next = current.clone();
            match check(&current, stored.as_ref().map(|s| &s.finding)) {
                None => {
                    next.state = RequestState::Executing;
                    tx.put_request(&next, Some(&current))?;
                    tx.append(event_for_request(started.clone(), &next))?;
                    Ok(ExecutionStart::Started(next))
                }
                Some(refusal) => {
                    if !approval::can_transition(RequestState::Approved, refusal.to) {
                        return abort(StoreError::InvalidTransition {
                            request_id: id,
                            from: RequestState::Approved,
                            to: refusal.to,
                        });
                    }
                    next.state = refusal.to;
                    next.closure = Some(refusal.closure);
                    tx.put_request(&next, Some(&current))?;
                    tx.append(event_for_request(refusal.event, &next))?;
                    Ok(ExecutionStart::Refused(next))
                }
            }
        })?;
        if matches!(start, ExecutionStart::Refused(_)) {
            self.flush()?;
        }
        Ok(start)
    }
}

impl super::Tx<'_> {
    /// Inserts a new request with its `RequestProposed` (or `RevertProposed`) event; a request
    /// id already stored is a [`StoreError::Duplicate`]. Shared by every way a request is created.
    pub(super) fn insert_request<E: From<StoreError>>(
        &self,
        req: &Request,
        now: DateTime<Utc>,
    ) -> TxResult<AuditEvent, E> {
        if self.requests.get(req.id.as_bytes())?.is_some() {
            return abort(StoreError::Duplicate {
                what: format!("request {}", req.id),
            });
        }
        self.put_request(req, None)?;
        let (kind, reverts) = match req.kind {
            RequestKind::Contain => (EventKind::RequestProposed, None),
            RequestKind::Revert { of } => (EventKind::RevertProposed, Some(of)),
        };
        let detail = serde_json::json!({
            "plan_hash": req.plan.plan_hash,
            "steps": req.plan.steps.len(),
            "risk": req.plan.max_risk(),
            "expires_at": req.expires_at,
            "reverts": reverts,
        });
        self.append(
            NewEvent::new(now, req.proposer.clone(), kind)
                .finding(req.finding_id.clone())
                .request(req.id)
                .detail(detail),
        )
    }
}
