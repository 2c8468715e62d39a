//! The JSON object builder the pollers use to turn an SDK finding back into the document its
//! parser reads ([`super::guardduty::finding_to_json`], [`super::securityhub::asff_to_json`])
//! now lives beside the reader, in [`crate::finding::json`]; this alias keeps the pollers'
//! `super::json::Obj` working.

pub(super) use crate::finding::json::ObjectBuilder as Obj;
