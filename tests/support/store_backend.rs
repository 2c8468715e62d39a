//! The store's two engines for the conformance suite (`tests/core/store.rs`): sled in a
//! temporary directory, and DynamoDB in a table of its own on the binary's shared moto server
//! ([`super::moto::shared`]), behind the serializing proxy, created by the same code as
//! `hanko store init`.
//!
//! moto is required for the DynamoDB half: when `moto_server` is missing the test fails with
//! the install command ([`super::moto`]), it never skips.

use std::sync::atomic::{AtomicU64, Ordering};

use hanko::store::dynamo::DynamoTarget;
use hanko::store::Store;

/// Which engine a conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sled,
    Dynamo,
}

/// Where a store lives, so a test can open it again (a "reopen").
pub enum Place {
    Sled(tempfile::TempDir),
    Dynamo {
        target: DynamoTarget,
        conf: Box<aws_config::SdkConfig>,
    },
}

impl Backend {
    /// A new, empty store.
    pub fn fresh(self) -> Store {
        match self {
            Backend::Sled => Store::open_temporary().unwrap(),
            Backend::Dynamo => self.place().open(),
        }
    }

    /// A new, empty place for a store.
    pub fn place(self) -> Place {
        match self {
            Backend::Sled => Place::Sled(tempfile::tempdir().unwrap()),
            Backend::Dynamo => {
                let (target, conf) = fresh_table();
                Place::Dynamo {
                    target,
                    conf: Box::new(conf),
                }
            }
        }
    }

    /// `n` on sled; fewer on DynamoDB, where every round creates a table and every call
    /// crosses HTTP to moto (a race still runs several rounds).
    pub fn rounds(self, n: usize) -> usize {
        match self {
            Backend::Sled => n,
            Backend::Dynamo => n.div_ceil(5).max(2),
        }
    }
}

impl Place {
    /// A DynamoDB place reached through `endpoint` (a proxy in front of the shared moto).
    pub fn dynamo_at(endpoint: String) -> Place {
        let (target, conf) = fresh_table_at(Some(endpoint));
        Place::Dynamo {
            target,
            conf: Box::new(conf),
        }
    }

    /// Opens the store here (again).
    pub fn open(&self) -> Store {
        match self {
            Place::Sled(dir) => Store::open(dir.path()).unwrap(),
            Place::Dynamo { target, conf } => {
                Store::open_dynamodb(target, Some((**conf).clone())).unwrap()
            }
        }
    }
}

/// A table no other test uses, created on the shared moto server as `hanko store init` does,
/// reached through the binary's [`super::dynamo_proxy::Proxy`]: moto alone does not isolate
/// concurrent transactions as DynamoDB does, and the concurrent votes would race inside moto.
pub fn fresh_table() -> (DynamoTarget, aws_config::SdkConfig) {
    static PROXY: std::sync::OnceLock<super::dynamo_proxy::Proxy> = std::sync::OnceLock::new();
    let proxy = PROXY.get_or_init(|| super::dynamo_proxy::Proxy::start(super::moto::shared().port));
    fresh_table_at(Some(proxy.endpoint()))
}

/// [`fresh_table`], reached through `endpoint` (a proxy in front of the shared moto) when
/// given.
pub fn fresh_table_at(endpoint: Option<String>) -> (DynamoTarget, aws_config::SdkConfig) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let moto = super::moto::shared();
    let endpoint = endpoint.unwrap_or_else(|| moto.endpoint());
    let target = DynamoTarget {
        table: format!(
            "hanko-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint.clone()),
    };
    let conf = sdk_config(&moto)
        .to_builder()
        .endpoint_url(endpoint)
        .build();
    assert!(
        Store::init_dynamodb(&target, Some(conf.clone())).unwrap(),
        "a new table"
    );
    (target, conf)
}

/// moto's SDK config, built outside any runtime.
fn sdk_config(moto: &super::moto::Moto) -> aws_config::SdkConfig {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(moto.sdk_config())
}
